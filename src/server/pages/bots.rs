//! The bots: each with its triggers and when they fire next, how its last
//! job ended, its success rate over 7 days, its concurrency and queue;
//! operators run one now (with input), pause and resume it.

use axum::Extension;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::{error_page, layout, page_caller, respond};
use crate::jobs::{Role, now_ms, time_text};
use crate::server::App;
use crate::server::api::bots::{bot_infos, run_now, runnable};
use crate::server::auth::Caller;

#[derive(Debug, Deserialize)]
pub struct Done {
    done: Option<String>,
    job: Option<i64>,
}

fn percent(r: Option<f64>) -> String {
    r.map_or_else(|| "–".into(), |r| format!("{:.0}%", r * 100.0))
}

pub async fn page(
    State(app): State<App>,
    caller: Option<Extension<Caller>>,
    Query(done): Query<Done>,
) -> Response {
    let caller = match page_caller(caller.map(|c| c.0), Role::Viewer, "/bots") {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let infos = match bot_infos(&app).await {
        Ok(i) => i,
        Err(e) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &caller, &e.to_string()),
    };
    let operator = caller.role.allows(Role::Operator);
    let now = now_ms();
    let body = html! {
        h1 { "Bots" }
        @match (done.done.as_deref(), done.job) {
            (Some("ran"), Some(job)) => p.ok { "Job " a href={ "/runs/" (job) } { (job) } " queued." },
            (Some("paused"), _) => p.ok { "Paused: its triggers do not fire and its queued jobs wait; running jobs finish." },
            (Some("resumed"), _) => p.ok { "Resumed." },
            _ => {},
        }
        table.queue.bots {
            thead { tr {
                th { "Bot" } th { "Triggers" } th { "Next fire" } th { "Last outcome" }
                th { "Success (7 days)" } th { "Concurrency" } th { "Now" } th { "" }
            } }
            tbody {
                @for b in infos.iter().filter(|b| !b.mailbox_poll) {
                    tr.paused[b.paused.is_some()] {
                        td { strong { (b.name) } div.meta { (b.description) }
                            @if let Some(p) = &b.paused {
                                div.held { "Paused by " (p.paused_by) " " (time_text(p.paused_at)) ": " (p.reason) }
                            } }
                        td { @for t in &b.triggers { div { (t.describes) } } @if b.triggers.is_empty() { "by hand" } }
                        td { @for t in &b.triggers { div { (t.next_fire.map(time_text).unwrap_or_else(|| "–".into())) } } }
                        td { @if let Some(l) = &b.last_outcome {
                            a href={ "/runs/" (l.job_id) } { span class={ "state " (l.state.as_str()) } { (l.state.as_str()) } }
                            @if let Some(f) = l.finished_at { div.meta { (super::ago(f, now)) } }
                        } @else { "–" } }
                        td { (percent(b.success_rate_7d)) div.meta { "of " (b.finished_7d) } }
                        td { (b.concurrency.map(|c| c.to_string()).unwrap_or_else(|| "any".into())) }
                        td { a href={ "/runs?bot=" (b.name) "&state=queued" } { (b.now.queued) " queued" } br;
                             a href={ "/runs?bot=" (b.name) "&state=running" } { (b.now.running) " running" } br;
                             a href={ "/reviews?bot=" (b.name) } { (b.now.review_backlog) " in review" } }
                        td.ops { @if operator {
                            form method="post" action={ "/bots/" (b.name) "/run" } data-confirm={ "Run " (b.name) " now?" } {
                                input type="hidden" name="csrf" value=(caller.csrf());
                                label { "Input (JSON) " textarea name="input" rows="2" cols="24" { "{}" } }
                                button type="submit" { "Run now" }
                            }
                            @if b.paused.is_some() {
                                form method="post" action={ "/bots/" (b.name) "/resume" } data-confirm={ "Resume " (b.name) "?" } {
                                    input type="hidden" name="csrf" value=(caller.csrf());
                                    button type="submit" { "Resume" }
                                }
                            } @else {
                                form method="post" action={ "/bots/" (b.name) "/pause" } data-confirm={ "Pause " (b.name) "? Its triggers stop and its queued jobs wait." } {
                                    input type="hidden" name="csrf" value=(caller.csrf());
                                    input name="reason" placeholder="why";
                                    button type="submit" { "Pause" }
                                }
                            }
                        } }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, layout("Bots", &caller, body))
}

#[derive(Debug, Deserialize)]
pub struct ActForm {
    #[serde(default)]
    input: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// Run, pause or resume a bot (operators), then back to the bots page.
pub async fn act(
    State(app): State<App>,
    caller: Option<Extension<Caller>>,
    Path((name, action)): Path<(String, String)>,
    Form(form): Form<ActForm>,
) -> Response {
    let caller = match page_caller(caller.map(|c| c.0), Role::Operator, "/bots") {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Ok(bot) = runnable(&app, &name) else {
        return error_page(
            StatusCode::NOT_FOUND,
            &caller,
            &format!("no bot named `{name}`"),
        );
    };
    let reason = form.reason.filter(|r| !r.trim().is_empty());
    let result = match action.as_str() {
        "run" => {
            let text = form.input.unwrap_or_default();
            let input = if text.trim().is_empty() {
                Ok(serde_json::json!({}))
            } else {
                serde_json::from_str::<serde_json::Value>(&text)
                    .map_err(|e| format!("the input is not JSON: {e}"))
                    .and_then(|v| {
                        if v.is_object() {
                            Ok(v)
                        } else {
                            Err("the input must be a JSON object".into())
                        }
                    })
            };
            let input = match input {
                Ok(i) => i,
                Err(e) => return error_page(StatusCode::UNPROCESSABLE_ENTITY, &caller, &e),
            };
            run_now(&app, &caller.name, bot, input, None)
                .await
                .map(|e| format!("/bots?done=ran&job={}", e.id))
        }
        "pause" => app
            .db
            .pause_bot(
                &bot.name,
                &caller.name,
                reason.as_deref().unwrap_or("paused"),
            )
            .await
            .map(|_| "/bots?done=paused".to_string()),
        "resume" => app
            .db
            .resume_bot(
                &bot.name,
                &caller.name,
                reason.as_deref().unwrap_or("resumed"),
            )
            .await
            .map(|_| "/bots?done=resumed".to_string()),
        _ => return error_page(StatusCode::NOT_FOUND, &caller, "no such action"),
    };
    match result {
        Ok(to) => Redirect::to(&to).into_response(),
        Err(e) => error_page(StatusCode::SERVICE_UNAVAILABLE, &caller, &e.to_string()),
    }
}
