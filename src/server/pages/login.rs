//! Signing in and out. The sign-in form carries a nonce that must match a
//! cookie set with it, so another site cannot sign a browser in; failed
//! tries are limited per address and per name.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use super::respond;
use crate::server::App;
use crate::server::auth::{
    Caller, LOGIN_COOKIE, SESSION_COOKIE, cookie, digest, new_secret, same, set_cookie,
    verify_password,
};

#[derive(Debug, Deserialize)]
pub struct Next {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SignIn {
    name: String,
    password: String,
    login_token: String,
    next: Option<String>,
}

/// Only a path of this site to go on to: never another site (`//evil`).
fn local(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.to_string(),
        _ => "/reviews".into(),
    }
}

fn form_page(next: &str, nonce: &str, message: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Sign in · clerk" }
                link rel="stylesheet" href="/assets/style.css";
            }
            body.login {
                main {
                    h1 { "clerk" }
                    @if let Some(m) = message { p.error role="alert" { (m) } }
                    form method="post" action="/login" {
                        input type="hidden" name="login_token" value=(nonce);
                        input type="hidden" name="next" value=(next);
                        label { "Name" input name="name" autocomplete="username" required autofocus; }
                        label { "Password" input name="password" type="password" autocomplete="current-password" required; }
                        button type="submit" { "Sign in" }
                    }
                }
            }
        }
    }
}

/// The form, with a fresh nonce in it and in a cookie.
fn with_nonce(status: StatusCode, next: &str, message: Option<&str>, secure: bool) -> Response {
    let nonce = new_secret();
    let mut response = respond(status, form_page(next, &nonce, message));
    let cookie = set_cookie(
        LOGIN_COOKIE,
        &nonce,
        Some(std::time::Duration::from_secs(3600)),
        secure,
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// What a page answers a visitor who has not signed in: 401, with the form.
pub fn challenge(path: &str) -> Response {
    // Cookies of the challenge are not marked Secure: the page does not
    // know how it is reached; the form's own cookie is short-lived.
    with_nonce(StatusCode::UNAUTHORIZED, path, None, false)
}

pub async fn form(State(app): State<App>, Query(q): Query<Next>) -> Response {
    with_nonce(
        StatusCode::OK,
        &local(q.next.as_deref()),
        None,
        app.config.secure(),
    )
}

/// The address a request came from: the peer, or behind a proxy the last
/// hop it names.
fn client(app: &App, peer: SocketAddr, headers: &HeaderMap) -> String {
    if app.config.behind_proxy
        && let Some(forwarded) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
    {
        return forwarded.trim().to_string();
    }
    peer.ip().to_string()
}

pub async fn sign_in(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<SignIn>,
) -> Response {
    let next = local(f.next.as_deref());
    let secure = app.config.secure();
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same(&expected, &f.login_token) {
        return with_nonce(
            StatusCode::FORBIDDEN,
            &next,
            Some("the sign-in form has expired; please sign in again"),
            secure,
        );
    }
    let keys = vec![
        format!("ip:{}", client(&app, peer, &headers)),
        format!("user:{}", f.name.trim()),
    ];
    if let Some(wait) = app.limiter.wait(&keys) {
        let minutes = wait.as_secs().div_ceil(60);
        let message = format!("too many failed sign-ins; try again in {minutes} minute(s)");
        let mut response = with_nonce(StatusCode::TOO_MANY_REQUESTS, &next, Some(&message), secure);
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    }
    let found = match app.db.user_with_password(f.name.trim()).await {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "cannot read users");
            return with_nonce(
                StatusCode::SERVICE_UNAVAILABLE,
                &next,
                Some("the job database cannot be reached"),
                secure,
            );
        }
    };
    // A name that does not exist costs the same hashing as a wrong
    // password, so timing does not tell which names exist.
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), hash),
        None => (None, dummy_hash()),
    };
    let password = f.password;
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    let Some(user) = user.filter(|_| matches) else {
        app.limiter.failed(&keys);
        tracing::info!(name = %f.name.trim(), "sign-in refused");
        return with_nonce(
            StatusCode::UNAUTHORIZED,
            &next,
            Some("wrong name or password"),
            secure,
        );
    };
    app.limiter.succeeded(&keys);
    let session = new_secret();
    let ttl = app.config.session_ttl;
    let expires = crate::jobs::now_ms() + ttl.as_millis() as i64;
    if let Err(e) = app
        .db
        .add_session(&digest(&session), user.id, &new_secret(), expires)
        .await
    {
        tracing::error!(error = %e, "cannot start a session");
        return with_nonce(
            StatusCode::SERVICE_UNAVAILABLE,
            &next,
            Some("the job database cannot be reached"),
            secure,
        );
    }
    tracing::info!(user = %user.name, role = %user.role, "signed in");
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, next)]).into_response();
    for c in [
        set_cookie(SESSION_COOKIE, &session, Some(ttl), secure),
        set_cookie(LOGIN_COOKIE, "", None, secure),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// An argon2id hash of a password nobody has, checked when the name is
/// unknown; made once, with the same parameters as real ones.
fn dummy_hash() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| crate::server::auth::hash_password(&new_secret()).unwrap_or_default())
        .clone()
}

pub async fn sign_out(
    State(app): State<App>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
) -> Response {
    if caller.is_some()
        && let Some(id) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = app.db.end_session(&digest(&id)).await
    {
        tracing::warn!(error = %e, "cannot end a session");
    }
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/login")]).into_response();
    let clear = set_cookie(SESSION_COOKIE, "", None, app.config.secure());
    if let Ok(v) = HeaderValue::from_str(&clear) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}
