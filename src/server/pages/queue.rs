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
    /// `1`: only reviews past their deadline.
    overdue: Option<String>,
    /// `1`: every review, also those given to others.
    all: Option<String>,
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
    let overdue = f.overdue.is_some_and(|o| o == "1");
    // A reviewer sees the documents they may work; viewers and admins, and
    // anyone who asks, see them all.
    let everyone = f.all.is_some_and(|a| a == "1")
        || !caller.role.allows(Role::Reviewer)
        || caller.role == Role::Admin;
    let now = crate::jobs::now_ms();
    let filter = ReviewFilter {
        bot: bot.clone(),
        reason: reason.clone(),
        workable_by: (!everyone).then(|| caller.answers_to()),
        overdue_at: overdue.then_some(now),
        limit: 500,
    };
    let items = match app.db.review_queue(&filter).await {
        Ok(items) => items,
        Err(e) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &caller, &e.to_string()),
    };
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
            label { input type="checkbox" name="overdue" value="1" checked[overdue]; " overdue only" }
            @if caller.role.allows(Role::Reviewer) && caller.role != Role::Admin {
                label { input type="checkbox" name="all" value="1" checked[everyone]; " also those for others" }
            }
            button type="submit" { "Filter" }
        }
        @if items.is_empty() {
            p.empty { "Nothing waits for review." }
        } @else {
            table.queue {
                thead { tr {
                    th { "Job" } th { "Bot" } th { "Document" } th { "Why" } th { "Waiting" } th { "For" } th { "Held by" } th { "Note" }
                } }
                tbody {
                    @for item in &items {
                        @let held = item.claimed_by.as_deref().filter(|_| item.claimed_until.is_some_and(|u| u > now));
                        @let late = item.due_at.is_some_and(|d| d <= now);
                        tr.overdue[late] {
                            td { a href={ "/reviews/" (item.job_id) } { (item.job_id) } }
                            td { (item.bot) }
                            td { a href={ "/reviews/" (item.job_id) } { (item.document.as_deref().unwrap_or("(no name)")) } }
                            td.reasons { @for r in &item.reasons { div { (r) } } }
                            td { (age(item.waiting_since, now))
                                @if late { " " span.late title="past the bot's review_within" { "overdue" } } }
                            td { @if item.review_by.is_empty() { "anyone" } @else { (item.review_by.join(", ")) } }
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
