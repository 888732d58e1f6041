//! One run as a page: what it is, its attempts and steps with durations
//! and errors, the review history, the audit trail, the files kept, and
//! retry and cancel for operators (confirmed, with the page's CSRF token).

use maud::{Markup, html};

use super::runs::took;
use crate::jobs::{EventRecord, JobDetail, JobState, Role, time_text};
use crate::server::auth::Caller;

/// A kept file: (attempt, name, address, whether it is an image).
pub type Kept = (i64, String, String, bool);

fn done_text(done: &str) -> Option<&'static str> {
    match done {
        "retried" => Some("Queued again; it resumes at the step that failed."),
        "cancelled" => Some("Cancelled."),
        "cancel-requested" => Some("Cancel asked for; its worker stops it at the next heartbeat."),
        _ => None,
    }
}

fn actions(caller: &Caller, d: &JobDetail) -> Markup {
    let id = d.summary.id;
    let state = d.summary.state;
    let may = caller.role.allows(Role::Operator);
    let retry = matches!(
        state,
        JobState::Failed | JobState::Dead | JobState::Cancelled
    );
    let cancel = matches!(
        state,
        JobState::Queued | JobState::Running | JobState::WaitingReview
    ) && !d.cancel_requested;
    html! {
        @if may && (retry || cancel) {
            div.actions {
                @if retry {
                    form method="post" action={ "/runs/" (id) "/retry" }
                        data-confirm={ "Run job " (id) " again from the step that failed?" } {
                        input type="hidden" name="csrf" value=(caller.csrf());
                        button type="submit" { "Retry" }
                    }
                }
                @if cancel {
                    form method="post" action={ "/runs/" (id) "/cancel" }
                        data-confirm={ "Cancel job " (id) "?" } {
                        input type="hidden" name="csrf" value=(caller.csrf());
                        button.danger type="submit" { "Cancel" }
                    }
                }
            }
        }
    }
}

fn review_history(events: &[EventRecord]) -> Markup {
    let reviews: Vec<&EventRecord> = events
        .iter()
        .filter(|e| {
            e.detail.is_some()
                || e.to_state == "waiting_review"
                || e.from_state.as_deref() == Some("waiting_review")
        })
        .collect();
    html! {
        @if !reviews.is_empty() {
            h2 { "Review history" }
            table.queue {
                thead { tr { th { "When" } th { "Who" } th { "What" } th { "Details" } } }
                tbody { @for e in reviews {
                    tr {
                        td { (time_text(e.at)) }
                        td { (e.actor) }
                        td { (e.reason) }
                        td.detail { @if let Some(d) = &e.detail { code { (d.to_string()) } } }
                    }
                } }
            }
        }
    }
}

pub fn render(
    caller: &Caller,
    d: &JobDetail,
    kept: &[Kept],
    done: Option<&str>,
    now: i64,
) -> Markup {
    let s = &d.summary;
    html! {
        div.run-head {
            h1 { "Run " (s.id) " · " (s.bot) " " span class={ "state " (s.state.as_str()) } { (s.state.as_str().replace('_', " ")) } }
            @if let Some(text) = done.and_then(done_text) { p.ok { (text) } }
            p.meta {
                "Created " (time_text(s.created_at)) " by " (d.created_by)
                @if let Some(f) = s.finished_at { " · finished " (time_text(f)) " · took " (took(f - s.created_at)) }
                @else if let Some(st) = s.started_at { " · running for " (took(now - st)) }
                " · attempt " (s.attempt) " of at most " (d.max_attempts)
                @if d.lost > 0 { " · " (d.lost) " lost" }
                @if d.cancel_requested { " · cancel asked for" }
            }
            @if let Some(e) = &s.last_error { p.error { (e) } }
            @if s.state == JobState::WaitingReview {
                p { a href={ "/reviews/" (s.id) } { "Open the review" } }
            }
            (actions(caller, d))
        }
        h2 { "Attempts" }
        @if d.attempts.is_empty() { p.empty { "Not run yet." } }
        @for a in &d.attempts {
            section.attempt {
                h3 { "Attempt " (a.attempt) " on " (a.worker) " · " (a.outcome.as_deref().unwrap_or("running"))
                    @if let Some(f) = a.finished_at { " · " (took(f - a.started_at)) } }
                @if let Some(e) = &a.error { p.error { (e) } }
                @if !a.steps.is_empty() {
                    table.queue {
                        thead { tr { th { "#" } th { "Step" } th { "Outcome" } th { "Took" } th { "Error" } } }
                        tbody { @for st in &a.steps {
                            tr {
                                td { (st.index) }
                                td { (st.name) }
                                td { (st.outcome.as_str()) }
                                td { (took(st.finished_at - st.started_at)) }
                                td.error { (st.error.as_deref().unwrap_or("")) }
                            }
                        } }
                    }
                }
                @let files: Vec<&Kept> = kept.iter().filter(|k| k.0 == a.attempt).collect();
                @if !files.is_empty() {
                    div.artifacts {
                        @for (_, name, href, image) in files {
                            @if *image {
                                figure { a href=(href) { img src=(href) alt=(name); } figcaption { (name) } }
                            } @else {
                                a.download href=(href) download=(name) { "Download " (name) }
                            }
                        }
                    }
                }
            }
        }
        (review_history(&d.events))
        h2 { "Audit trail" }
        table.queue {
            thead { tr { th { "When" } th { "Who" } th { "From" } th { "To" } th { "Why" } } }
            tbody { @for e in &d.events {
                tr {
                    td { (time_text(e.at)) }
                    td { (e.actor) }
                    td { (e.from_state.as_deref().unwrap_or("")) }
                    td { (e.to_state) }
                    td { (e.reason) }
                }
            } }
        }
        h2 { "Input" }
        pre.json { (serde_json::to_string_pretty(&d.input).unwrap_or_default()) }
        @if let Some(o) = &d.output {
            h2 { "Output" }
            pre.json { (serde_json::to_string_pretty(o).unwrap_or_default()) }
        }
    }
}
