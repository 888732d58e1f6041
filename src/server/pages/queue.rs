//! The review queue: every job waiting for a person, oldest first, with
//! its bot, document, why it waits, how long, and who holds it.

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::{age, error_page, layout, page_caller, respond};
use crate::jobs::{ReviewFilter, Role};
use crate::server::App;
use crate::server::auth::Caller;

#[derive(Debug, Deserialize)]
pub struct Filter {
    bot: Option<String>,
    reason: Option<String>,
}

pub async fn page(
    State(app): State<App>,
    caller: Option<Extension<Caller>>,
    Query(f): Query<Filter>,
) -> Response {
    let caller = match page_caller(caller.map(|c| c.0), Role::Viewer, "/reviews") {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let bot = f.bot.filter(|b| !b.is_empty());
    let reason = f.reason.filter(|r| !r.is_empty());
    let filter = ReviewFilter {
        bot: bot.clone(),
        reason: reason.clone(),
        limit: 500,
    };
    let items = match app.db.review_queue(&filter).await {
        Ok(items) => items,
        Err(e) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &caller, &e.to_string()),
    };
    let now = crate::jobs::now_ms();
    let bots: Vec<&str> = app
        .bots
        .iter()
        .filter(|b| !b.is_mailbox_poll())
        .map(|b| b.name.as_str())
        .collect();
    let body = html! {
        h1 { "Review queue" }
        form.filters method="get" action="/reviews" {
            label { "Bot "
                select name="bot" {
                    option value="" { "all" }
                    @for b in &bots {
                        option value=(b) selected[bot.as_deref() == Some(*b)] { (b) }
                    }
                }
            }
            label { "Reason contains " input name="reason" value=(reason.as_deref().unwrap_or("")); }
            button type="submit" { "Filter" }
        }
        @if items.is_empty() {
            p.empty { "Nothing waits for review." }
        } @else {
            table.queue {
                thead { tr {
                    th { "Job" } th { "Bot" } th { "Document" } th { "Why" } th { "Waiting" } th { "Held by" } th { "Note" }
                } }
                tbody {
                    @for item in &items {
                        @let held = item.claimed_by.as_deref().filter(|_| item.claimed_until.is_some_and(|u| u > now));
                        tr {
                            td { a href={ "/reviews/" (item.job_id) } { (item.job_id) } }
                            td { (item.bot) }
                            td { a href={ "/reviews/" (item.job_id) } { (item.document.as_deref().unwrap_or("(no name)")) } }
                            td.reasons { @for r in &item.reasons { div { (r) } } }
                            td { (age(item.waiting_since, now)) }
                            td { (held.unwrap_or("")) }
                            td { (item.note.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
            p.count { (items.len()) " document(s) wait." }
        }
    };
    respond(StatusCode::OK, layout("Review queue", &caller, body))
}
