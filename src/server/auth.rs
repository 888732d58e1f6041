//! Who is asking, and what they may do.
//!
//! A request is signed in by an API token (`Authorization: Bearer …`) or a
//! browser session (the `clerk_session` cookie: HttpOnly, SameSite=Strict,
//! Secure over TLS). Passwords are kept as argon2id hashes, tokens and
//! session ids as SHA-256 hashes: the database holds nothing that signs
//! anyone in. A session's state-changing request must carry the session's
//! CSRF token, as the `X-CSRF-Token` header or a `csrf` form field.
//! Failed sign-ins are limited per address and per name.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::App;
use super::error::ApiError;
use crate::jobs::Role;

/// The cookie a browser session rides on.
pub const SESSION_COOKIE: &str = "clerk_session";

/// The cookie that ties the sign-in form to the browser that got it.
pub const LOGIN_COOKIE: &str = "clerk_login";

/// The header a script sends the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// An argon2id hash of `password`, with a fresh salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` is the one `hash` was made from.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A fresh secret: 32 random bytes, URL-safe base64.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The SHA-256 of a secret, as stored: a token or session id is found by
/// its hash, never kept itself.
pub fn digest(secret: &str) -> String {
    crate::documents::store::hex(&Sha256::digest(secret.as_bytes()))
}

/// Compare two secrets in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// How a caller signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A browser session, with its CSRF token.
    Session { csrf: String },
    /// An API token.
    Token,
}

/// Who is asking: a person signed in, or a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user's name, or `token:NAME`: what the audit trail records.
    pub name: String,
    pub role: Role,
    /// The user's groups (tokens have none), which a review's `review_by`
    /// may name.
    pub groups: Vec<String>,
    pub via: Via,
}

impl Caller {
    /// Refuse with 403 unless the caller's role includes `needed`.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.role.allows(needed) {
            Ok(())
        } else {
            Err(ApiError::forbidden(needed))
        }
    }

    /// Whether the caller may work this review: a reviewer, and one of
    /// those its `review_by` names when it names any.
    pub fn may_work(&self, item: &crate::jobs::ReviewItem) -> bool {
        crate::jobs::may_work(self.role, &self.groups, &item.review_by)
    }

    /// The names in a `review_by` the caller answers to.
    pub fn answers_to(&self) -> Vec<String> {
        crate::jobs::answers_to(self.role, &self.groups)
    }

    /// Refuse with 403 unless the caller may work this review.
    pub fn require_work(&self, item: &crate::jobs::ReviewItem) -> Result<(), ApiError> {
        self.require(Role::Reviewer)?;
        if self.may_work(item) {
            Ok(())
        } else {
            Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                format!(
                    "job {} is reviewed by {}; you are none of them",
                    item.job_id,
                    item.review_by.join(", ")
                ),
            ))
        }
    }

    /// The session's CSRF token, for the forms of a page.
    pub fn csrf(&self) -> &str {
        match &self.via {
            Via::Session { csrf } => csrf,
            Via::Token => "",
        }
    }
}

/// A handler that takes a `Caller` needs one: without it the request is
/// refused with 401.
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(ApiError::unauthorized)
    }
}

/// The value of cookie `name` in the request's headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, for the whole site;
/// Secure when the browser reaches clerk over TLS.
pub fn set_cookie(name: &str, value: &str, max_age: Option<Duration>, secure: bool) -> String {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    match max_age {
        Some(age) => cookie.push_str(&format!("; Max-Age={}", age.as_secs())),
        None => cookie.push_str("; Max-Age=0"),
    }
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

/// Find the caller of a request and check a session's CSRF token on
/// anything but a read. The caller, if any, is put in the request's
/// extensions for the handlers (which decide whether one is needed).
pub async fn authenticate(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let caller = match caller(&app, req.headers()).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    // Signing in has its own check (a nonce in the form and a cookie).
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        && req.uri().path() != "/login";
    if let Some(Caller {
        via: Via::Session { csrf },
        ..
    }) = &caller
        && unsafe_method
    {
        let (checked, rebuilt) = csrf_given(req, csrf).await;
        if !checked {
            return ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "the form or request carries no valid CSRF token; reload the page and try again",
            )
            .into_response();
        }
        req = rebuilt;
    }
    if let Some(caller) = caller {
        req.extensions_mut().insert(caller);
    }
    next.run(req).await
}

/// The caller a request's token or session cookie names; `Ok(None)` when it
/// names none, an error when it names one that is not valid.
async fn caller(app: &App, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let Some(token) = value.strip_prefix("Bearer ") else {
            return Err(ApiError::unauthorized());
        };
        return match app.db.token_by_hash(&digest(token.trim())).await? {
            Some(t) => Ok(Some(Caller {
                name: format!("token:{}", t.name),
                role: t.role,
                groups: Vec::new(),
                via: Via::Token,
            })),
            None => Err(ApiError::unauthorized()),
        };
    }
    let Some(id) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let extend_to = crate::jobs::now_ms() + app.config.session_ttl.as_millis() as i64;
    Ok(app
        .db
        .session(&digest(&id), extend_to)
        .await?
        .map(|s| Caller {
            name: s.user.name,
            role: s.user.role,
            groups: s.user.groups,
            via: Via::Session { csrf: s.csrf },
        }))
}

/// Whether a request carries `csrf`: in the header, or as the `csrf` field
/// of a form body (read, then put back for the handler).
async fn csrf_given(req: Request, csrf: &str) -> (bool, Request) {
    if let Some(given) = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        let ok = same(given, csrf);
        return (ok, req);
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return (false, req);
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1024 * 1024).await else {
        return (false, Request::from_parts(parts, axum::body::Body::empty()));
    };
    let ok = form_urlencoded_field(&bytes, "csrf").is_some_and(|given| same(&given, csrf));
    (
        ok,
        Request::from_parts(parts, axum::body::Body::from(bytes)),
    )
}

/// The value of field `name` in a URL-encoded form body.
fn form_urlencoded_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Failed sign-ins per address and per name: after `LIMIT` within
/// `WINDOW`, further tries are refused until the oldest ages out.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

const LIMIT: usize = 5;
const WINDOW: Duration = Duration::from_secs(15 * 60);

impl LoginLimiter {
    /// How long `keys` must wait before the next try, if they must.
    pub fn wait(&self, keys: &[String]) -> Option<Duration> {
        let now = Instant::now();
        let mut map = self.failures.lock().ok()?;
        keys.iter()
            .filter_map(|k| {
                let times = map.get_mut(k)?;
                times.retain(|t| now.duration_since(*t) < WINDOW);
                (times.len() >= LIMIT)
                    .then(|| {
                        times
                            .first()
                            .map(|t| WINDOW.saturating_sub(now.duration_since(*t)))
                    })
                    .flatten()
            })
            .max()
    }

    pub fn failed(&self, keys: &[String]) {
        if let Ok(mut map) = self.failures.lock() {
            for k in keys {
                map.entry(k.clone()).or_default().push(Instant::now());
            }
        }
    }

    pub fn succeeded(&self, keys: &[String]) {
        if let Ok(mut map) = self.failures.lock() {
            for k in keys {
                map.remove(k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_kept_as_argon2id_hashes() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct hors", &hash));
        assert!(!verify_password("x", "not a hash"));
        assert_ne!(hash, hash_password("correct horse").unwrap(), "salted");
    }

    #[test]
    fn secrets_are_random_and_kept_by_their_hash() {
        let a = new_secret();
        assert_eq!(a.len(), 43);
        assert_ne!(a, new_secret());
        assert_eq!(digest(&a).len(), 64);
        assert!(same(&a, &a.clone()));
        assert!(!same(&a, &new_secret()));
    }

    #[test]
    fn cookies_are_read_and_written_strictly() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; clerk_session=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
        let set = set_cookie(SESSION_COOKIE, "v", Some(Duration::from_secs(60)), true);
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Secure")
        );
        assert!(set_cookie("x", "", None, false).contains("Max-Age=0"));
    }

    #[test]
    fn sign_in_failures_are_limited() {
        let limiter = LoginLimiter::default();
        let keys = vec!["ip:127.0.0.1".to_string(), "user:ana".to_string()];
        for _ in 0..LIMIT {
            assert!(limiter.wait(&keys).is_none());
            limiter.failed(&keys);
        }
        let wait = limiter.wait(&keys).expect("limited");
        assert!(wait > Duration::from_secs(14 * 60));
        assert!(limiter.wait(&["user:bob".to_string()]).is_none());
        limiter.succeeded(&keys);
        assert!(limiter.wait(&keys).is_none());
    }
}
