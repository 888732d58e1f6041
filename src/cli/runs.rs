//! `clerk run` and `clerk runs`: queue a job, wait for it, look at jobs
//! and act on them.

use std::time::{Duration, Instant};

use anyhow::Context;

use super::args::{RunArgs, RunsCommand};
use super::{exit, output, read_input, whoami};
use crate::bot;
use crate::jobs::{self, JobState, ListFilter};

pub(super) async fn run(args: RunArgs) -> anyhow::Result<u8> {
    let mut input = read_input(&args.input)?;
    let registry = args.bots.load();
    let Some(bot) = registry.get(&args.bot) else {
        let known = registry.names();
        let names: Vec<&str> = known.iter().map(String::as_str).collect();
        let hint = bot::closest(&args.bot, &names)
            .map(|n| format!("; did you mean `{n}`?"))
            .unwrap_or_default();
        eprintln!(
            "error: no valid bot named `{}` in {} (known: {}){hint}",
            args.bot,
            args.bots.bots.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
        return Ok(exit::USAGE);
    };
    let db = args.db.open().await?;
    let store = args
        .db
        .documents
        .open(&args.db.data_dir, &db)
        .map_err(anyhow::Error::msg)?;
    if let Err(e) = keep_input_document(&mut input, store.as_ref()).await {
        eprintln!("error: {e:#}");
        return Ok(exit::USAGE);
    }
    let actor = format!("cli:{}", whoami());
    let job = bot.job(input, args.key.clone(), actor.clone());
    let enq = db
        .enqueue(std::slice::from_ref(&job))
        .await?
        .into_iter()
        .next()
        .context("enqueue returned nothing")?;
    if enq.created {
        db.bot_event(
            &bot.name,
            &actor,
            "ran",
            &format!("job {} queued by hand", enq.id),
        )
        .await?;
    }
    if !args.wait {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&enq)?);
        } else if enq.created {
            println!("job {} queued for bot {}", enq.id, bot.name);
        } else {
            println!("job {} already exists for this key ({})", enq.id, enq.state);
        }
        return Ok(exit::OK);
    }
    if !args.json {
        eprintln!("job {} queued for bot {}; waiting", enq.id, bot.name);
    }
    let started = Instant::now();
    let mut hinted = false;
    let state = loop {
        let state = db
            .state(enq.id)
            .await?
            .context("the job vanished while waiting")?;
        if state.is_finished() || state == JobState::WaitingReview {
            break state;
        }
        if !hinted && state == JobState::Queued && started.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "job {} is still queued: is a worker running (`clerk serve`)?",
                enq.id
            );
            hinted = true;
        }
        if let Some(t) = args.timeout
            && started.elapsed() > t
        {
            eprintln!(
                "gave up waiting for job {} after {}; it is {state}",
                enq.id,
                humantime::format_duration(t)
            );
            return Ok(exit::WAIT_TIMEOUT);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let detail = db.job(enq.id).await?.context("the job vanished")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&detail)?);
    } else {
        output::print_outcome(&detail);
    }
    Ok(match state {
        JobState::Succeeded => exit::OK,
        JobState::WaitingReview => exit::JOB_IN_REVIEW,
        _ => exit::JOB_FAILED,
    })
}

/// A document given by its path (`"file"`) is put into the document store
/// and the job names it by hash too, as intake's jobs do (`name`,
/// `sha256`, `size`, `media_type`): a worker on another machine cannot
/// read a path on this one, and finds it in the store by its hash. The
/// path stays in the input as the user gave it, for the record, and so
/// does a `name` the user gave. An input that already names a `sha256` is
/// left alone.
async fn keep_input_document(
    input: &mut serde_json::Value,
    store: &dyn crate::documents::store::DocumentStore,
) -> anyhow::Result<()> {
    let serde_json::Value::Object(map) = input else {
        return Ok(());
    };
    if map.contains_key("sha256") {
        return Ok(());
    }
    let Some(file) = map.get("file").and_then(serde_json::Value::as_str) else {
        return Ok(());
    };
    let path = std::path::PathBuf::from(file);
    let content = std::fs::read(&path).with_context(|| {
        format!(
            "input.file {file:?} cannot be read on this machine; give a file here \
             (it is kept in the document store for the workers) or the sha256 of a stored document"
        )
    })?;
    // A name the user gave is the document's; else its file's.
    let name = match map.get("name").and_then(serde_json::Value::as_str) {
        Some(name) => name.to_string(),
        None => path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "document".into()),
    };
    let document = crate::documents::store::StoredDocument::of(&content, &name, None);
    store
        .put(&document, &content)
        .await
        .with_context(|| format!("keeping {file:?} for the job"))?;
    document.name_in(map);
    Ok(())
}

pub(super) async fn runs(cmd: RunsCommand) -> anyhow::Result<u8> {
    let actor = format!("cli:{}", whoami());
    match cmd {
        RunsCommand::List {
            db,
            bot,
            state,
            limit,
            polls,
            json,
        } => {
            let db = db.open().await?;
            let jobs = db
                .list(&ListFilter {
                    bot,
                    state,
                    limit,
                    before_id: None,
                    polls,
                    ..Default::default()
                })
                .await?;
            let unserved = crate::jobs::unserved(db.as_ref(), &jobs).await?;
            if json {
                let mut list = serde_json::to_value(&jobs)?;
                for item in list.as_array_mut().into_iter().flatten() {
                    let id = item["id"].as_i64().unwrap_or_default();
                    if let Some(why) = unserved.get(&id) {
                        item["unserved"] = serde_json::Value::String(why.clone());
                    }
                }
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                // Why each job waiting for review waits, and why a queued
                // job no worker serves does.
                let mut reasons = unserved;
                for j in jobs.iter().filter(|j| j.state == JobState::WaitingReview) {
                    if let Some(d) = db.job(j.id).await? {
                        reasons.insert(j.id, output::review_reasons(d.review.as_ref()).join("; "));
                    }
                }
                output::print_list(&jobs, &reasons);
            }
        }
        RunsCommand::Show { job, json, full } => {
            let id = job.id;
            let Some(detail) = job.db.open().await?.job(id).await? else {
                eprintln!("error: job {id} does not exist");
                return Ok(exit::ERROR);
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&detail)?);
            } else {
                output::print_detail(&detail, full);
            }
        }
        RunsCommand::Retry { job } => {
            job.db.open().await?.retry(job.id, &actor).await?;
            println!(
                "job {} queued again; it resumes at the step that failed",
                job.id
            );
        }
        RunsCommand::Approve { job, note } => {
            job.db.open().await?.approve(job.id, &actor, &note).await?;
            println!("job {} approved; it goes on at its next step", job.id);
        }
        RunsCommand::Cancel { job } => {
            let id = job.id;
            match job.db.open().await?.cancel(id, &actor).await? {
                jobs::CancelOutcome::Cancelled => println!("job {id} cancelled"),
                jobs::CancelOutcome::Requested => {
                    println!("job {id} is running; its worker stops it within a few seconds")
                }
            }
        }
    }
    Ok(exit::OK)
}
