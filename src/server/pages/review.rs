//! The review page: the document's pages with a box on each field's words,
//! the fields (the unsure first) to correct from the keyboard, the line
//! items, the checks that still fail, and approve, reject, postpone. A
//! reviewer who opens a page holds it; others see it read-only meanwhile.

use std::path::PathBuf;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde_json::Value;

use super::{error_page, layout, page_caller, respond, shown};
use crate::jobs::{JobsError, Review, ReviewFilter, Role};
use crate::review::{FieldView, ReviewView};
use crate::server::App;
use crate::server::api::reviews::{HOLD, detail};
use crate::server::auth::Caller;
use crate::server::error::ApiError;

/// A page's size in points, and its number.
struct PageBox {
    number: u32,
    width: f64,
    height: f64,
}

/// The pages extraction saw; A4 for an output from before page sizes were
/// kept.
fn pages_of(review: &Review) -> Vec<PageBox> {
    let pages: Vec<PageBox> = review
        .extraction
        .get("pages")
        .and_then(Value::as_array)
        .map(|pages| {
            pages
                .iter()
                .filter_map(|p| {
                    Some(PageBox {
                        number: u32::try_from(p.get("number")?.as_u64()?).ok()?,
                        width: p.get("width")?.as_f64()?,
                        height: p.get("height")?.as_f64()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    if pages.is_empty() {
        vec![PageBox {
            number: 1,
            width: 595.0,
            height: 842.0,
        }]
    } else {
        pages
    }
}

fn page_view(job: i64, page: &PageBox, fields: &[FieldView]) -> Markup {
    html! {
        svg.page xmlns="http://www.w3.org/2000/svg" data-page=(page.number)
            viewBox={ "0 0 " (page.width) " " (page.height) } {
            image href={ "/documents/" (job) "/pages/" (page.number) } x="0" y="0"
                width=(page.width) height=(page.height) {}
            @for f in fields.iter().filter(|f| f.page == Some(page.number)) {
                @if let Some(b) = &f.bbox {
                    rect.box data-field=(f.name) x=(b.x0 - 2.0) y=(b.y0 - 2.0)
                        width=(b.x1 - b.x0 + 4.0) height=(b.y1 - b.y0 + 4.0) rx="2" {}
                }
            }
            g.words {}
        }
    }
}

fn field_view(f: &FieldView, editable: bool) -> Markup {
    let id = format!("f-{}", f.name);
    let unsure = f.confidence < 1.0 && !f.corrected;
    html! {
        div.field.unsure[unsure].corrected[f.corrected] data-name=(f.name) {
            label for=(id) {
                span.name { (f.name) }
                @if f.required { span.required title="required" { "*" } }
                span.kind { (f.kind) }
                @if f.corrected { span.badge { "corrected" } }
            }
            input id=(id) name=(f.name) value=(shown(&f.value)) data-value=(shown(&f.value))
                data-kind=(f.kind) autocomplete="off" readonly[!editable];
            div.confidence {
                meter min="0" max="1" low="0.8" high="0.95" optimum="1" value=(f.confidence) {}
                span { (format!("{:.0} %", f.confidence * 100.0)) }
                @if f.corrected && f.extracted != f.value {
                    span.was { "read: " (shown(&f.extracted)) }
                }
            }
            ul.reasons { @for r in &f.reasons { li { (r) } } }
            p.problem role="alert" {}
        }
    }
}

fn lines_view(lines: &[serde_json::Map<String, Value>], editable: bool) -> Markup {
    let mut columns: Vec<&str> = Vec::new();
    for row in lines {
        for k in row.keys() {
            if !columns.contains(&k.as_str()) {
                columns.push(k);
            }
        }
    }
    html! {
        section.lines {
            h2 { "Line items" }
            table #lines {
                thead { tr { th { "#" } @for c in &columns { th { (c) } } } }
                tbody {
                    @for (i, row) in lines.iter().enumerate() {
                        tr data-row=(i) {
                            td { (i + 1) }
                            @for c in &columns {
                                td { input data-col=(c) value=(row.get(*c).map(shown).unwrap_or_default())
                                    aria-label={ "row " (i + 1) " " (c) } readonly[!editable]; }
                            }
                        }
                    }
                }
            }
            p.problem role="alert" {}
        }
    }
}

fn checks_view(view: &ReviewView) -> Markup {
    html! {
        section.checks {
            h2 { "Checks" }
            ul #failures {
                @for f in &view.failures { li { (f.problem) } }
            }
            p #checks-ok.ok hidden[!view.failures.is_empty()] { "Every check passes." }
        }
    }
}

/// A field the template does not know (or a document without a
/// template): its name and value, typed by the reviewer.
fn add_field_view() -> Markup {
    html! {
        section.add-field {
            h2 { "Add a field" }
            div.row {
                input #new-field-name placeholder="name, e.g. erp_vendor" aria-label="field name" autocomplete="off";
                input #new-field-value placeholder="value" aria-label="field value" autocomplete="off";
                button #add-field type="button" { "Add" }
            }
        }
    }
}

fn templates_view(view: &ReviewView) -> Markup {
    html! {
        section.templates {
            h2 { "Template" }
            p { "Values come from: " strong { (view.issuer.as_deref().unwrap_or("no template")) } }
            label { "Read the document with "
                select #template {
                    @for t in &view.templates {
                        option value=(t.file) selected[view.template.as_deref() == Some(t.file.as_str())] { (t.issuer) }
                    }
                }
            }
            button #use-template type="button" { "Read with this template" }
            details {
                summary { "Keywords each template missed" }
                ul { @for t in &view.templates {
                    li { strong { (t.issuer) } ": "
                        @if t.missing_keywords.is_empty() { "none missing" }
                        @else { (t.missing_keywords.join(", ")) }
                    }
                } }
            }
        }
    }
}

fn actions_view(next: Option<i64>) -> Markup {
    html! {
        section.actions {
            div #override hidden {
                label for="override-note" { "Checks fail. Why approve anyway?" }
                textarea #override-note rows="2" {}
            }
            div #reason-box hidden {
                label for="reason" id="reason-label" { "Why?" }
                input #reason autocomplete="off";
            }
            button #approve type="button" { "Approve " kbd { "Alt+A" } }
            button #reject type="button" { "Reject " kbd { "Alt+R" } }
            button #postpone type="button" { "Postpone " kbd { "Alt+P" } }
            a #next href=(next.map_or("/reviews".to_string(), |n| format!("/reviews/{n}"))) { "Next document " kbd { "Alt+N" } }
            p #message role="status" {}
            p.keys { kbd { "Tab" } " next field · " kbd { "Enter" } " accept and go to the next unsure field · click a word to fill the field" }
        }
    }
}

/// The oldest other document waiting, for "next".
async fn next_review(app: &App, id: i64) -> Option<i64> {
    let filter = ReviewFilter {
        limit: 2,
        ..Default::default()
    };
    let items = app.db.review_queue(&filter).await.ok()?;
    items.into_iter().map(|i| i.job_id).find(|&j| j != id)
}

pub async fn page(
    State(app): State<App>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/reviews/{id}");
    let caller = match page_caller(caller.map(|c| c.0), Role::Viewer, &path) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Ok(id) = id.parse::<i64>() else {
        return error_page(StatusCode::NOT_FOUND, &caller, "no such review");
    };
    // A reviewer who opens the page holds the document; while another
    // holds it, or it is given to others, the page is for reading.
    let mut held_by_other = None;
    let given_to_others = match app.db.review(id).await {
        Ok(Some(r)) => (!r.item.review_by.is_empty() && !caller.may_work(&r.item))
            .then(|| r.item.review_by.join(", ")),
        Ok(None) => None,
        Err(e) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &caller, &e.to_string()),
    };
    if caller.role.allows(Role::Reviewer) && given_to_others.is_none() {
        match app.db.claim_review(id, &caller.name, HOLD).await {
            Ok(_) => {}
            Err(JobsError::HeldBy { by, until, .. }) => held_by_other = Some((by, until)),
            Err(JobsError::NoReview(_) | JobsError::NotFound(_)) => {
                return error_page(
                    StatusCode::NOT_FOUND,
                    &caller,
                    &format!("job {id} is not waiting for review"),
                );
            }
            Err(e) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &caller, &e.to_string()),
        }
    }
    let detail = match detail(&app, id).await {
        Ok(d) => d,
        Err(e) => return error_page(e.status, &caller, &e.message),
    };
    let editable =
        caller.role.allows(Role::Reviewer) && held_by_other.is_none() && given_to_others.is_none();
    let (review, view) = (&detail.review, &detail.view);
    let next = next_review(&app, id).await;
    let title = format!("Review of job {id}");
    let body = html! {
        div.review-head {
            h1 { "Job " (id) " · " (review.item.document.as_deref().unwrap_or("(no name)")) }
            p.meta { "Bot " strong { (review.item.bot) } " · step " (review.item.step)
                @if let Some(n) = &review.item.note { " · note: " em { (n) } } }
            ul.why { @for r in &review.item.reasons { li { (r) } } }
            @if let Some(who) = &given_to_others {
                @if caller.role.allows(Role::Reviewer) {
                    p.held role="alert" { "This document is reviewed by " (who) "; you can read it." }
                }
            }
            @if let Some((by, until)) = &held_by_other {
                p.held role="alert" { (by) " is reviewing this document until " (until) "; you can read it." }
            }
        }
        div.review data-job=(id) data-version=(review.item.version) data-editable=(editable) {
            section.pages {
                @for p in pages_of(review) { (page_view(id, &p, &view.fields)) }
            }
            section.fields {
                @if view.fields.is_empty() {
                    p.hint { "No template matched this document: read it with the vendor's template below, or add the fields the next steps need." }
                }
                form #fields {
                    @for f in &view.fields { (field_view(f, editable)) }
                }
                @if let Some(lines) = &view.lines { (lines_view(lines, editable)) }
                (checks_view(view))
                @if editable { (add_field_view()) }
                @if !view.templates.is_empty() && editable { (templates_view(view)) }
                @if editable { (actions_view(next)) }
            }
        }
        script src="/assets/review.js" {}
    };
    respond(StatusCode::OK, layout(&title, &caller, body))
}

/// The document a job read, as a file here: kept in the store under the
/// extraction's hash, else the file it names.
async fn document_of(app: &App, id: i64) -> Result<PathBuf, ApiError> {
    let job = app
        .db
        .job(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id} does not exist")))?;
    let extraction = app.db.review(id).await?.map(|r| r.extraction);
    app.document_file(extraction.as_ref(), &job.input)
        .await
        .ok_or_else(|| ApiError::not_found(format!("job {id} names no document")))
}

/// One page of a job's document as an image.
pub async fn page_image(
    State(app): State<App>,
    caller: Caller,
    Path((id, page)): Path<(i64, u32)>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let file = document_of(&app, id).await?;
    let images = app.images.clone();
    let image = tokio::task::spawn_blocking(move || images.page(&file, page.max(1)))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| ApiError::not_found(format!("page {page}: {e}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, image.media_type),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        image.bytes,
    )
        .into_response())
}

/// The words of a job's document with their boxes, for filling a field
/// by clicking a word.
pub async fn words(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let file = document_of(&app, id).await?;
    let images = app.images.clone();
    let words = tokio::task::spawn_blocking(move || images.words(&file))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| ApiError::not_found(format!("the document's words: {e}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        words,
    )
        .into_response())
}
