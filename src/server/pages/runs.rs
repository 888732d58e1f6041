//! The runs: every job, filtered by bot, state, dates and text, kept
//! current while the page is open; and one run with its attempts, steps,
//! durations, errors, audit trail, review history and kept artifacts.
//! Operators retry and cancel from here.

use std::collections::HashMap;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{ago, error_page, layout, page_caller, respond};
use crate::jobs::{JobDetail, JobState, JobSummary, ListFilter, Role, now_ms, time_text, unserved};
use crate::server::App;
use crate::server::api::jobs::parse_time;
use crate::server::auth::Caller;

/// Runs a list page shows at once.
const PAGE: u32 = 100;

#[derive(Debug, Default, Deserialize)]
pub struct RunFilter {
    bot: Option<String>,
    state: Option<String>,
    /// Created from this date or time on.
    from: Option<String>,
    /// Created before this date or time.
    to: Option<String>,
    /// Finished from / before (the dashboard's links).
    finished_from: Option<String>,
    finished_to: Option<String>,
    text: Option<String>,
    before: Option<i64>,
}

fn given(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl RunFilter {
    fn list_filter(&self) -> Result<ListFilter, String> {
        let time = |what: &str, v: &Option<String>| {
            given(v)
                .map(|t| parse_time(what, t).map_err(|e| e.message))
                .transpose()
        };
        Ok(ListFilter {
            bot: given(&self.bot).map(str::to_string),
            state: given(&self.state).map(str::parse::<JobState>).transpose()?,
            limit: PAGE,
            before_id: self.before,
            created_from: time("from", &self.from)?,
            created_to: time("to", &self.to)?,
            text: given(&self.text).map(str::to_string),
            finished_from: time("finished_from", &self.finished_from)?,
            finished_to: time("finished_to", &self.finished_to)?,
            // Polls show when their bot is chosen.
            polls: false,
        })
    }

    /// This filter as a query string, with `before` set to page on.
    fn query(&self, before: Option<i64>) -> String {
        let mut q: Vec<(&str, String)> = Vec::new();
        for (k, v) in [
            ("bot", &self.bot),
            ("state", &self.state),
            ("from", &self.from),
            ("to", &self.to),
            ("finished_from", &self.finished_from),
            ("finished_to", &self.finished_to),
            ("text", &self.text),
        ] {
            if let Some(v) = given(v) {
                q.push((k, v.to_string()));
            }
        }
        if let Some(b) = before {
            q.push(("before", b.to_string()));
        }
        serde_urlencoded::to_string(&q).unwrap_or_default()
    }
}

/// How long a run took, or runs: `1.2 s`, `3 min 10 s`.
pub(super) fn took(ms: i64) -> String {
    let s = ms.max(0) as f64 / 1000.0;
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{} min {} s", (s / 60.0) as i64, (s % 60.0) as i64)
    } else {
        format!(
            "{} h {} min",
            (s / 3600.0) as i64,
            ((s % 3600.0) / 60.0) as i64
        )
    }
}

fn state_badge(state: JobState) -> Markup {
    html! { span class={ "state " (state.as_str()) } { (state.as_str().replace('_', " ")) } }
}

fn rows(jobs: &[JobSummary], unserved: &HashMap<i64, String>, now: i64) -> Markup {
    html! {
        @for j in jobs {
            tr {
                td { a href={ "/runs/" (j.id) } { (j.id) } }
                td { (j.bot) }
                td { (state_badge(j.state)) }
                td { (j.attempt) }
                td title=(time_text(j.created_at)) { (ago(j.created_at, now)) }
                td { @match (j.started_at, j.finished_at) {
                    (Some(s), Some(f)) => (took(f - s)),
                    (Some(s), None) => { (took(now - s)) " so far" },
                    _ => "",
                } }
                @if let Some(why) = unserved.get(&j.id) {
                    td.unserved { (why) }
                } @else {
                    td.error { (j.last_error.as_deref().map(|e| e.chars().take(160).collect::<String>()).unwrap_or_default()) }
                }
            }
        }
    }
}

pub async fn list(
    State(app): State<App>,
    caller: Option<Extension<Caller>>,
    Query(f): Query<RunFilter>,
) -> Response {
    let caller = match page_caller(caller.map(|c| c.0), Role::Viewer, "/runs") {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let filter = match f.list_filter() {
        Ok(filter) => filter,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &caller, &e),
    };
    let jobs = match app.db.list(&filter).await {
        Ok(jobs) => jobs,
        Err(e) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &caller, &e.to_string()),
    };
    let now = now_ms();
    // A queued job no running worker serves says so, not silently stuck.
    let unserved = unserved(app.db.as_ref(), &jobs).await.unwrap_or_default();
    let bots: Vec<&str> = app.bots.iter().map(|b| b.name.as_str()).collect();
    let state = given(&f.state);
    let body = html! {
        h1 { "Runs" }
        form.filters method="get" action="/runs" {
            label { "Bot "
                select name="bot" {
                    option value="" { "all" }
                    @for b in &bots {
                        option value=(b) selected[given(&f.bot) == Some(*b)] { (b) }
                    }
                }
            }
            label { "State "
                select name="state" {
                    option value="" { "any" }
                    @for s in JobState::ALL {
                        option value=(s.as_str()) selected[state == Some(s.as_str())] { (s.as_str()) }
                    }
                }
            }
            label { "Created from " input type="date" name="from" value=(given(&f.from).unwrap_or("")); }
            label { "before " input type="date" name="to" value=(given(&f.to).unwrap_or("")); }
            label { "Text in input or error " input name="text" value=(given(&f.text).unwrap_or("")); }
            @if let Some(v) = given(&f.finished_from) { input type="hidden" name="finished_from" value=(v); }
            @if let Some(v) = given(&f.finished_to) { input type="hidden" name="finished_to" value=(v); }
            button type="submit" { "Filter" }
        }
        @if given(&f.finished_from).is_some() || given(&f.finished_to).is_some() {
            p.meta { "Finished from " (given(&f.finished_from).unwrap_or("the start"))
                " before " (given(&f.finished_to).unwrap_or("now")) ". "
                a href="/runs" { "All runs" } }
        }
        div #live data-live="5" {
            @if jobs.is_empty() {
                p.empty { "No runs match." }
            } @else {
                table.queue.runs {
                    thead { tr { th { "Job" } th { "Bot" } th { "State" } th { "Attempt" } th { "Created" } th { "Took" } th { "Last error" } } }
                    tbody { (rows(&jobs, &unserved, now)) }
                }
                p.count { (jobs.len()) " run(s) shown, newest first; updated " (time_text(now)) "."
                    @if jobs.len() as u32 == PAGE {
                        " " a href={ "/runs?" (f.query(jobs.last().map(|j| j.id))) } { "Older runs" }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, layout("Runs", &caller, body))
}

/// A file a browser step kept for an attempt, and whether it is an image.
struct Artifact {
    attempt: i64,
    name: String,
    image: bool,
}

/// The folder a job's attempt kept its files in.
fn artifact_dir(app: &App, bot: &str, job: i64, attempt: i64) -> Option<std::path::PathBuf> {
    let bot = app.bots.get(bot)?;
    Some(
        bot.dir
            .join("artifacts")
            .join(format!("job-{job}"))
            .join(format!("attempt-{attempt}")),
    )
}

fn artifacts(app: &App, d: &JobDetail) -> Vec<Artifact> {
    let mut out = Vec::new();
    for a in &d.attempts {
        let Some(dir) = artifact_dir(app, &d.summary.bot, d.summary.id, a.attempt) else {
            continue;
        };
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| safe_name(n))
            .collect();
        names.sort();
        out.extend(names.into_iter().map(|name| Artifact {
            attempt: a.attempt,
            image: name.ends_with(".png"),
            name,
        }));
    }
    out
}

/// A plain file name: no folders, no hidden files.
fn safe_name(name: &str) -> bool {
    !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

pub async fn show(
    State(app): State<App>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<i64>,
    Query(done): Query<Done>,
) -> Response {
    let path = format!("/runs/{id}");
    let caller = match page_caller(caller.map(|c| c.0), Role::Viewer, &path) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let d = match app.db.job(id).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            return error_page(
                StatusCode::NOT_FOUND,
                &caller,
                &format!("job {id} does not exist"),
            );
        }
        Err(e) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &caller, &e.to_string()),
    };
    let kept = artifacts(&app, &d);
    let body = super::run_detail::render(
        &caller,
        &d,
        &kept_view(&kept, id),
        done.done.as_deref(),
        now_ms(),
    );
    respond(StatusCode::OK, layout(&format!("Run {id}"), &caller, body))
}

fn kept_view(kept: &[Artifact], id: i64) -> Vec<(i64, String, String, bool)> {
    kept.iter()
        .map(|a| {
            (
                a.attempt,
                a.name.clone(),
                format!("/runs/{id}/artifacts/{}/{}", a.attempt, a.name),
                a.image,
            )
        })
        .collect()
}

/// What an action just did, said once on the page it returns to.
#[derive(Debug, Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// A kept file: screenshots shown, everything else downloaded (a page's
/// HTML is never rendered here: it came from another site).
pub async fn artifact(
    State(app): State<App>,
    caller: Option<Extension<Caller>>,
    Path((id, attempt, name)): Path<(i64, i64, String)>,
) -> Response {
    let path = format!("/runs/{id}");
    let caller = match page_caller(caller.map(|c| c.0), Role::Viewer, &path) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let missing = || error_page(StatusCode::NOT_FOUND, &caller, "no such file was kept");
    if !safe_name(&name) {
        return missing();
    }
    let bot = match app.db.job(id).await {
        Ok(Some(d)) => d.summary.bot,
        _ => return missing(),
    };
    let Some(dir) = artifact_dir(&app, &bot, id, attempt) else {
        return missing();
    };
    let Ok(bytes) = tokio::fs::read(dir.join(&name)).await else {
        return missing();
    };
    if name.ends_with(".png") {
        return ([(header::CONTENT_TYPE, "image/png".to_string())], bytes).into_response();
    }
    let disposition = format!("attachment; filename=\"job-{id}-attempt-{attempt}-{name}\"");
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response()
}

/// Retry or cancel a run (operators), then back to its page.
pub async fn act(
    State(app): State<App>,
    caller: Option<Extension<Caller>>,
    Path((id, action)): Path<(i64, String)>,
) -> Response {
    let path = format!("/runs/{id}");
    let caller = match page_caller(caller.map(|c| c.0), Role::Operator, &path) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let done = match action.as_str() {
        "retry" => app
            .db
            .retry(id, &caller.name)
            .await
            .map(|()| "retried".to_string()),
        "cancel" => app.db.cancel(id, &caller.name).await.map(|o| match o {
            crate::jobs::CancelOutcome::Cancelled => "cancelled".to_string(),
            crate::jobs::CancelOutcome::Requested => "cancel-requested".to_string(),
        }),
        _ => return error_page(StatusCode::NOT_FOUND, &caller, "no such action"),
    };
    match done {
        Ok(done) => Redirect::to(&format!("/runs/{id}?done={done}")).into_response(),
        Err(e) => error_page(StatusCode::CONFLICT, &caller, &e.to_string()),
    }
}
