//! The web pages: sign-in, the review queue and the review page, the
//! runs, the bots and the dashboard, rendered
//! on the server with maud (every value written is escaped), with a style
//! sheet and a little JavaScript embedded in the binary. A page asked for
//! without signing in answers 401 with the sign-in form.

mod bots;
mod dashboard;
mod login;
mod queue;
mod review;
mod run_detail;
mod runs;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};

use super::App;
use super::auth::Caller;
use crate::jobs::Role;

/// The style sheet and the pages' scripts, served from the binary.
const STYLE: &str = include_str!("../assets/style.css");
const SCRIPT: &str = include_str!("../assets/review.js");
/// Confirmation of forms, and live updates of lists and the dashboard.
const LIVE: &str = include_str!("../assets/live.js");

/// No script but clerk's own, no styles inline, no framing: a value that
/// slipped past escaping still could not run.
const POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                      object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub fn routes() -> Router<App> {
    Router::new()
        .route("/", get(home))
        .route("/runs", get(runs::list))
        .route("/runs/{id}", get(runs::show))
        .route("/runs/{id}/{action}", post(runs::act))
        .route("/runs/{id}/artifacts/{attempt}/{name}", get(runs::artifact))
        .route("/bots", get(bots::page))
        .route("/bots/{name}/{action}", post(bots::act))
        .route("/dashboard", get(dashboard::page))
        .route("/login", get(login::form).post(login::sign_in))
        .route("/logout", post(login::sign_out))
        .route("/reviews", get(queue::page))
        .route("/reviews/{id}", get(review::page))
        .route("/documents/{id}/pages/{page}", get(review::page_image))
        .route("/documents/{id}/words", get(review::words))
        .route(
            "/assets/style.css",
            get(|| async { asset(STYLE, "text/css") }),
        )
        .route(
            "/assets/review.js",
            get(|| async { asset(SCRIPT, "text/javascript") }),
        )
        .route(
            "/assets/live.js",
            get(|| async { asset(LIVE, "text/javascript") }),
        )
}

/// Reviewers start at their queue; everyone else at the dashboard.
async fn home(caller: Option<axum::Extension<Caller>>) -> Redirect {
    match caller {
        Some(c) if c.role == Role::Reviewer => Redirect::to("/reviews"),
        _ => Redirect::to("/dashboard"),
    }
}

fn asset(body: &'static str, media_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, media_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// A page's response: the HTML with the security headers every page has.
fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The frame of every signed-in page.
fn layout(title: &str, caller: &Caller, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="csrf-token" content=(caller.csrf());
                title { (title) " · clerk" }
                link rel="stylesheet" href="/assets/style.css";
                script src="/assets/live.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "clerk" }
                    nav {
                        a href="/dashboard" { "Dashboard" }
                        a href="/runs" { "Runs" }
                        a href="/bots" { "Bots" }
                        a href="/reviews" { "Reviews" }
                    }
                    div.who {
                        span { (caller.name) " · " (caller.role.as_str()) }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(caller.csrf());
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// An error page, for a signed-in caller.
fn error_page(status: StatusCode, caller: &Caller, message: &str) -> Response {
    respond(
        status,
        layout(
            "Error",
            caller,
            html! {
                h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
                p.error { (message) }
                p { a href="/reviews" { "Back to the review queue" } }
            },
        ),
    )
}

/// The caller of a page, or the sign-in form (401) for one not signed in,
/// or 403 for one whose role does not allow the page.
fn page_caller(caller: Option<Caller>, needed: Role, path: &str) -> Result<Caller, Box<Response>> {
    let Some(caller) = caller else {
        return Err(Box::new(login::challenge(path)));
    };
    if !caller.role.allows(needed) {
        let message = format!("this page needs the role `{needed}` or above");
        return Err(Box::new(error_page(
            StatusCode::FORBIDDEN,
            &caller,
            &message,
        )));
    }
    Ok(caller)
}

/// How long ago a time was, in words: `3 min`, `2 h 5 min`, `4 days`.
fn age(since: i64, now: i64) -> String {
    let minutes = (now - since).max(0) / 60_000;
    match minutes {
        0 => "just now".into(),
        m if m < 60 => format!("{m} min"),
        m if m < 48 * 60 => format!("{} h {} min", m / 60, m % 60),
        m => format!("{} days", m / (24 * 60)),
    }
}

/// How long ago, in words: `just now`, `3 min ago`.
fn ago(since: i64, now: i64) -> String {
    match age(since, now) {
        a if a == "just now" => a,
        a => format!("{a} ago"),
    }
}

/// A value as a reviewer reads it: text as it is, numbers and dates plain.
fn shown(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
