//! `clerk review`: the review queue from the command line, for scripts. It
//! acts as a local admin named `cli:<user>`, through the same rules as the
//! web pages: claims are respected, values are typed and checked, an
//! approval with failing checks needs `--override`.

use std::path::Path;

use anyhow::{Context, bail};

use super::args::{BotsFolder, JobId, ReviewCommand};
use super::{exit, output, whoami};
use crate::jobs::{JobDb, Review, ReviewFilter};
use crate::review::{self, Correction};

/// The templates a review's values are typed and checked with.
fn templates_for(bots: &BotsFolder, review: &Review) -> Vec<crate::extract::Template> {
    bots.load()
        .get(&review.item.bot)
        .and_then(|b| b.templates(&review.item.step))
        .unwrap_or_default()
}

async fn load(db: &JobDb, id: i64) -> anyhow::Result<Review> {
    db.review(id)
        .await?
        .with_context(|| format!("job {id} is not waiting for review"))
}

fn today() -> chrono::NaiveDate {
    chrono::Local::now().date_naive()
}

pub(super) async fn review(cmd: ReviewCommand) -> anyhow::Result<u8> {
    let actor = format!("cli:{}", whoami());
    match cmd {
        ReviewCommand::List {
            db,
            bot,
            reason,
            overdue,
            limit,
            json,
        } => {
            let filter = ReviewFilter {
                bot,
                reason,
                overdue_at: overdue.then(crate::jobs::now_ms),
                limit,
                ..Default::default()
            };
            let items = db.open().await?.review_queue(&filter).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else {
                output::print_reviews(&items);
            }
        }
        ReviewCommand::Show { job, bots, json } => {
            let db = job.db.open().await?;
            let r = load(&db, job.id).await?;
            let view = review::view(&r, &templates_for(&bots, &r), today());
            if json {
                let both = serde_json::json!({ "review": r, "view": view });
                println!("{}", serde_json::to_string_pretty(&both)?);
            } else {
                output::print_review(&r, &view);
            }
        }
        ReviewCommand::Set {
            job,
            bots,
            field,
            value,
        } => return set(job, &bots, field, value, &actor).await,
        ReviewCommand::Approve {
            job,
            bots,
            note,
            override_note,
        } => return approve(job, &bots, &note, override_note.as_deref(), &actor).await,
        ReviewCommand::Reject { job, reason } => {
            let db = job.db.open().await?;
            let r = load(&db, job.id).await?;
            let outcome = review::reject(&reason).map_err(anyhow::Error::msg)?;
            db.finish_review(job.id, &actor, r.item.version, &outcome)
                .await?;
            println!("job {} rejected: {}", job.id, reason.trim());
        }
        ReviewCommand::Postpone { job, reason } => {
            let db = job.db.open().await?;
            let r = load(&db, job.id).await?;
            let outcome = review::postpone(&reason).map_err(anyhow::Error::msg)?;
            db.finish_review(job.id, &actor, r.item.version, &outcome)
                .await?;
            println!("job {} postponed: {}", job.id, reason.trim());
        }
        ReviewCommand::Export { db, since, dir } => {
            let since = parse_since(&since)?;
            let store = db.open().await?;
            let documents = db.documents(&store)?;
            let n = export(&store, documents.as_ref(), since, &dir).await?;
            println!("{n} corrected document(s) written to {}", dir.display());
        }
    }
    Ok(exit::OK)
}

/// `clerk review set`: one field corrected, typed as the template types it.
async fn set(
    job: JobId,
    bots: &BotsFolder,
    field: String,
    value: String,
    actor: &str,
) -> anyhow::Result<u8> {
    let db = job.db.open().await?;
    let r = load(&db, job.id).await?;
    // Line items are rows of column → text, given as JSON.
    let value = if field == "lines" {
        serde_json::from_str(&value).with_context(|| {
            format!("`lines` is given as JSON rows, e.g. '[{{\"qty\": \"25\", \"amount\": \"180.75\"}}]', not {value:?}")
        })?
    } else {
        serde_json::Value::String(value)
    };
    let correction = Correction {
        field: field.clone(),
        value,
    };
    let update = match review::correct(&r, &templates_for(bots, &r), &[correction]) {
        Ok(update) => update,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            return Ok(exit::USAGE);
        }
    };
    let version = db
        .save_review(job.id, actor, r.item.version, &update)
        .await?;
    match update.events.first() {
        Some(e) => println!("job {}: {} (version {version})", job.id, e.reason),
        None => println!("job {}: `{field}` unchanged", job.id),
    }
    Ok(exit::OK)
}

/// `clerk review approve`: refused while checks fail, unless overridden.
async fn approve(
    job: JobId,
    bots: &BotsFolder,
    note: &str,
    override_note: Option<&str>,
    actor: &str,
) -> anyhow::Result<u8> {
    let db = job.db.open().await?;
    let r = load(&db, job.id).await?;
    let templates = templates_for(bots, &r);
    let outcome = match review::approve(&r, &templates, actor, note, override_note, today()) {
        Ok(outcome) => outcome,
        Err(review::ApproveError::NeedsOverride { failures, missing }) => {
            for f in failures {
                eprintln!("check fails: {}", f.problem);
            }
            for m in missing {
                eprintln!("required field missing: {m}");
            }
            eprintln!("error: not approved; correct the values, or approve with --override WHY");
            return Ok(exit::USAGE);
        }
    };
    db.finish_review(job.id, actor, r.item.version, &outcome)
        .await?;
    println!(
        "job {} approved; it goes on at its next step with the reviewed values",
        job.id
    );
    Ok(exit::OK)
}

/// A date (its midnight, UTC) or an RFC 3339 time, in Unix ms.
fn parse_since(text: &str) -> anyhow::Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
    {
        Some(t) => Ok(t.and_utc().timestamp_millis()),
        None => bail!("--since must be a date such as 2026-12-01, found {text:?}"),
    }
}

/// Each document approved with corrections since `since`: the document,
/// its final values (as the fixtures' ground truth is written) and who
/// reviewed what.
async fn export(
    db: &JobDb,
    documents: &dyn crate::documents::store::DocumentStore,
    since: i64,
    dir: &Path,
) -> anyhow::Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot make {}", dir.display()))?;
    let mut written = 0;
    for approval in db.approvals_since(since, 100_000).await? {
        let corrections = approval.detail.get("corrections");
        if corrections.is_none_or(|c| c.as_object().is_none_or(|m| m.is_empty())) {
            continue;
        }
        let Some(job) = db.job(approval.job_id).await? else {
            continue;
        };
        // The reviewed output is the output of the step that asked.
        let reviewed = db
            .step_outputs(job.summary.id)
            .await?
            .into_iter()
            .map(|(_, _, output)| output)
            .find(|o| o.get("reviewed").is_some());
        let Some(output) = reviewed else { continue };
        let Some(file) = output.get("file").and_then(|f| f.as_str()) else {
            continue;
        };
        let source = Path::new(file);
        let stem = format!(
            "job-{}-{}",
            job.summary.id,
            source
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let safe = crate::mail::mime::safe_file_name(&stem);
        let extension = source
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default();
        // The document from the store when it is kept there (the file the
        // step read was a copy, gone since), else the file it names.
        let kept = match output.get("sha256").and_then(|s| s.as_str()) {
            Some(sha256) => documents.get(sha256).await?.map(|(_, content)| content),
            None => None,
        };
        let content = match kept {
            Some(content) => content,
            None => std::fs::read(source)
                .with_context(|| format!("cannot read {}", source.display()))?,
        };
        std::fs::write(dir.join(format!("{safe}{extension}")), content)?;
        let values = output.get("values").cloned().unwrap_or_default();
        std::fs::write(
            dir.join(format!("{safe}.json")),
            serde_json::to_string_pretty(&values)? + "\n",
        )?;
        let about = serde_json::json!({
            "job": job.summary.id,
            "bot": job.summary.bot,
            "document": file,
            "template": output.get("template"),
            "reviewed_by": approval.by,
            "reviewed_at": crate::jobs::time_text(approval.at),
            "corrections": corrections,
            "extracted": output.get("extracted").and_then(|e| e.get("values")),
        });
        std::fs::write(
            dir.join(format!("{safe}.review.json")),
            serde_json::to_string_pretty(&about)? + "\n",
        )?;
        written += 1;
    }
    Ok(written)
}
