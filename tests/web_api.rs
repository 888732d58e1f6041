//! The web server in front of a real job database (SQLite and
//! PostgreSQL): who gets through (401 without signing in, 403 without the
//! role, no state change without the session's CSRF token), sign-in limits,
//! reviews through the API (stale pages refused, values typed), and every
//! value a document, a mail or a person gives shown as text.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clerk::jobs::{JobDb, JobState, Role};
use common::http::{self, send, sign_in, sign_in_response};
use common::*;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const LONG: Duration = Duration::from_secs(60);

/// A bot that extracts with the example templates, then prints what it got.
fn manifest() -> String {
    intake_bot("")
}

struct Web {
    s: Setup,
    addr: SocketAddr,
    stop: CancellationToken,
    /// An operator's token, a viewer's token.
    operator: String,
    viewer: String,
}

impl Drop for Web {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn user(db: &JobDb, name: &str, role: Role, password: &str) {
    let hash = clerk::server::hash_password(password).unwrap();
    db.add_user(name, role, &hash, "test").await.unwrap();
}

async fn token(db: &JobDb, name: &str, role: Role) -> String {
    let token = format!("clerk_{}", clerk::server::new_secret());
    db.add_token(name, role, &clerk::server::digest(&token), "test")
        .await
        .unwrap();
    token
}

/// A server with a reviewer `ana`, a viewer `vic`, and tokens.
async fn web(kind: Kind) -> Web {
    web_of(kind, &manifest()).await
}

async fn web_of(kind: Kind, manifest: &str) -> Web {
    let s = setup(kind, "intake", manifest).await;
    user(&s.db, "ana", Role::Reviewer, "ana-password-1").await;
    user(&s.db, "vic", Role::Viewer, "vic-password-1").await;
    let operator = token(&s.db, "ops", Role::Operator).await;
    let viewer = token(&s.db, "dash", Role::Viewer).await;
    let config = clerk::server::WebConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: None,
        behind_proxy: false,
        session_ttl: Duration::from_secs(3600),
        cache_dir: s.t.path().join("pages"),
        metrics_allow: Vec::new(),
    };
    let app = clerk::server::App::new(s.db.clone(), s.registry.clone(), config, s.documents());
    let stop = CancellationToken::new();
    let (addr, _) = clerk::server::start(app, stop.clone()).await.unwrap();
    Web {
        s,
        addr,
        stop,
        operator,
        viewer,
    }
}

/// Jobs of `inputs` run until they wait for review; their ids.
async fn waiting(w: &Web, inputs: Vec<serde_json::Value>) -> Vec<i64> {
    let bot = w.s.registry.get("intake").unwrap().clone();
    let jobs: Vec<_> = inputs.into_iter().map(|i| new_job(&bot, i)).collect();
    let ids = enqueue_ids(&w.s.db, &jobs).await;
    let worker = RunningWorker::start(w.s.db.clone(), w.s.registry.clone(), fast_config(2));
    for &id in &ids {
        wait_for(&w.s.db, id, &[JobState::WaitingReview], LONG).await;
    }
    worker.shutdown().await;
    ids
}

fn unknown_document(name: &str) -> serde_json::Value {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    json!({ "file": root.join("fixtures/bad/owner-only.pdf"), "name": name })
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn only_signed_in_callers_with_the_role_get_through(kind: Kind) {
    let w = web(kind).await;
    let id = waiting(&w, vec![unknown_document("scan.pdf")]).await[0];
    let a = w.addr;

    // Without signing in: 401 everywhere but the health checks and the
    // sign-in form.
    let anonymous: Vec<(&str, String)> = vec![
        ("GET", "/api/v1/jobs".into()),
        ("GET", format!("/api/v1/jobs/{id}")),
        ("POST", format!("/api/v1/jobs/{id}/retry")),
        ("POST", format!("/api/v1/jobs/{id}/cancel")),
        ("GET", "/api/v1/bots".into()),
        ("GET", "/api/v1/reviews".into()),
        ("GET", format!("/api/v1/reviews/{id}")),
        ("PUT", format!("/api/v1/reviews/{id}")),
        ("POST", format!("/api/v1/reviews/{id}/claim")),
        ("POST", format!("/api/v1/reviews/{id}/release")),
        ("POST", format!("/api/v1/reviews/{id}/approve")),
        ("POST", format!("/api/v1/reviews/{id}/reject")),
        ("POST", format!("/api/v1/reviews/{id}/postpone")),
        ("GET", "/api/v1/openapi.json".into()),
        ("GET", "/reviews".into()),
        ("GET", format!("/reviews/{id}")),
        ("GET", format!("/documents/{id}/pages/1")),
        ("GET", format!("/documents/{id}/words")),
        ("GET", "/metrics".into()),
    ];
    for (method, path) in &anonymous {
        let r = send(a, method, path, &[], None).await;
        assert_eq!(r.status, 401, "{method} {path}: {}", r.body);
    }
    let page = send(a, "GET", "/reviews", &[], None).await;
    assert!(
        page.body.contains("name=\"password\""),
        "a page asks to sign in"
    );
    for path in ["/livez", "/readyz", "/login"] {
        assert_eq!(send(a, "GET", path, &[], None).await.status, 200, "{path}");
    }
    let wrong = send(
        a,
        "GET",
        "/api/v1/jobs",
        &[("Authorization", "Bearer nope")],
        None,
    )
    .await;
    assert_eq!(wrong.status, 401);

    // A viewer reads, and may do nothing else.
    let viewer = bearer(&w.viewer);
    let v = [("Authorization", viewer.as_str())];
    assert_eq!(send(a, "GET", "/api/v1/jobs", &v, None).await.status, 200);
    let metrics = send(a, "GET", "/metrics", &v, None).await;
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    assert!(
        metrics
            .body
            .contains(r#"clerk_queue_depth{bot="intake",state="waiting_review"} 1"#),
        "{}",
        metrics.body
    );
    let spec = send(a, "GET", "/api/v1/openapi.json", &v, None).await;
    assert_eq!(spec.status, 200);
    assert!(spec.json()["paths"].as_object().unwrap().len() >= 10);
    let body = json!({ "version": 0 }).to_string();
    let refused = send(
        a,
        "POST",
        &format!("/api/v1/reviews/{id}/approve"),
        &v,
        Some(("application/json", &body)),
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(
        send(a, "POST", &format!("/api/v1/jobs/{id}/cancel"), &v, None)
            .await
            .status,
        403
    );
    let vic = sign_in(a, "vic", "vic-password-1").await;
    let cookie = vic.cookie_header();
    let as_vic = [
        ("Cookie", cookie.as_str()),
        ("X-CSRF-Token", vic.csrf.as_str()),
    ];
    let refused = send(
        a,
        "POST",
        &format!("/api/v1/reviews/{id}/approve"),
        &as_vic,
        Some(("application/json", &body)),
    )
    .await;
    assert_eq!(
        refused.status, 403,
        "a viewer may not approve: {}",
        refused.body
    );

    // A reviewer's session changes nothing without the CSRF token.
    let ana = sign_in(a, "ana", "ana-password-1").await;
    let cookie = ana.cookie_header();
    let no_token = [("Cookie", cookie.as_str())];
    let r = send(
        a,
        "POST",
        &format!("/api/v1/reviews/{id}/claim"),
        &no_token,
        None,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let bad_token = [("Cookie", cookie.as_str()), ("X-CSRF-Token", "forged")];
    assert_eq!(
        send(
            a,
            "POST",
            &format!("/api/v1/reviews/{id}/claim"),
            &bad_token,
            None
        )
        .await
        .status,
        403
    );
    let logout = send(
        a,
        "POST",
        "/logout",
        &no_token,
        Some(("application/x-www-form-urlencoded", "csrf=forged")),
    )
    .await;
    assert_eq!(logout.status, 403, "a form without its token is refused");
    let as_ana = [
        ("Cookie", cookie.as_str()),
        ("X-CSRF-Token", ana.csrf.as_str()),
    ];
    let claimed = send(
        a,
        "POST",
        &format!("/api/v1/reviews/{id}/claim"),
        &as_ana,
        None,
    )
    .await;
    assert_eq!(claimed.status, 200, "{}", claimed.body);
    assert_eq!(claimed.json()["claimed_by"], "ana");
    // Reviewers review; retrying and cancelling jobs is for operators.
    assert_eq!(
        send(
            a,
            "POST",
            &format!("/api/v1/jobs/{id}/cancel"),
            &as_ana,
            None
        )
        .await
        .status,
        403
    );

    // Saves are typed and checked, and refused from a stale page.
    let save = |version: i64, field: &str, value: &str| {
        json!({ "version": version, "corrections": [{ "field": field, "value": value }] })
            .to_string()
    };
    let put = format!("/api/v1/reviews/{id}");
    let ok = send(
        a,
        "PUT",
        &put,
        &as_ana,
        Some(("application/json", &save(0, "invoice_number", "X-1"))),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["review"]["version"], 1);
    let stale = send(
        a,
        "PUT",
        &put,
        &as_ana,
        Some(("application/json", &save(0, "invoice_number", "X-2"))),
    )
    .await;
    assert_eq!(stale.status, 409, "{}", stale.body);
    let mut picked = save(1, "invoice_number", "X-2");
    picked = picked.replace(
        "\"version\":1",
        "\"version\":1,\"template\":\"no-such-template\"",
    );
    assert_eq!(
        send(a, "PUT", &put, &as_ana, Some(("application/json", &picked)))
            .await
            .status,
        400
    );
    let bad = send(
        a,
        "PUT",
        &put,
        &as_ana,
        Some(("application/json", &save(1, "Bad Name", "x"))),
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(bad.json()["details"][0]["field"], "Bad Name");
    let garbage = send(
        a,
        "PUT",
        &put,
        &as_ana,
        Some(("application/json", "{not json")),
    )
    .await;
    assert!(
        garbage.status == 400 || garbage.status == 422,
        "{}",
        garbage.status
    );

    // The operator's token cancels; the audit trail names the token.
    let operator = bearer(&w.operator);
    let op = [("Authorization", operator.as_str())];
    let cancelled = send(a, "POST", &format!("/api/v1/jobs/{id}/cancel"), &op, None).await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    let job = w.s.db.job(id).await.unwrap().unwrap();
    assert_eq!(job.events.last().unwrap().actor, "token:ops");
    assert!(
        job.events
            .iter()
            .any(|e| e.actor == "ana" && e.reason.starts_with("corrected `invoice_number`"))
    );

    // Signing out ends the session.
    let form = format!("csrf={}", ana.csrf);
    let out = send(
        a,
        "POST",
        "/logout",
        &no_token,
        Some(("application/x-www-form-urlencoded", &form)),
    )
    .await;
    assert_eq!(out.status, 303);
    assert_eq!(
        send(a, "GET", "/api/v1/jobs", &no_token, None).await.status,
        401
    );
}

async fn sign_in_is_limited_and_tied_to_its_form(kind: Kind) {
    let w = web(kind).await;
    let a = w.addr;
    // A form posted without the cookie it came with (another site's form).
    let body = "name=ana&password=ana-password-1&login_token=guess&next=/reviews";
    let r = send(
        a,
        "POST",
        "/login",
        &[],
        Some(("application/x-www-form-urlencoded", body)),
    )
    .await;
    assert_eq!(r.status, 403);
    for _ in 0..5 {
        assert_eq!(sign_in_response(a, "ana", "wrong").await.status, 401);
    }
    let limited = sign_in_response(a, "ana", "ana-password-1").await;
    assert_eq!(limited.status, 429, "even the right password waits");
    assert!(limited.header("retry-after").is_some());
    // The limit is per name (and address): another user signs in... from
    // the same address it is limited too.
    assert_eq!(
        sign_in_response(a, "vic", "vic-password-1").await.status,
        429
    );
    // Redirects stay on this site.
    let form = send(a, "GET", "/login?next=//evil.example/x", &[], None).await;
    assert_eq!(
        http::form_value(&form.body, "next").as_deref(),
        Some("/reviews")
    );
}

/// Payloads that would run if a page wrote them as markup.
const XSS: &[&str] = &[
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "\"><script>alert(2)</script>",
    "'><svg onload=alert(3)>",
    "<svg><script>alert(4)</script></svg>",
    "javascript:alert(5)",
    "<iframe src=javascript:alert(6)>",
    "<body onload=alert(7)>",
    "<a href=\"javascript:alert(8)\">x</a>",
    "</title><script>alert(9)</script>",
    "</textarea><script>alert(10)</script>",
    "<style>@import 'x';</style>",
    "<math><mi xlink:href=\"javascript:alert(11)\">x",
    "<details open ontoggle=alert(12)>",
    "<input autofocus onfocus=alert(13)>",
    "<object data=javascript:alert(14)>",
    "<marquee onstart=alert(15)>",
    "<video><source onerror=alert(16)>",
    "\" onmouseover=\"alert(17)",
    "' onclick='alert(18)",
    "<scr<script>ipt>alert(19)</scr</script>ipt>",
    "&lt;script&gt;alert(20)&lt;/script&gt;",
    "<![CDATA[<script>alert(21)</script>]]>",
    "<base href=\"//evil.example/\">",
];

async fn values_from_documents_mails_and_people_are_shown_as_text(kind: Kind) {
    let w = web(kind).await;
    let a = w.addr;
    let inputs: Vec<_> = XSS
        .iter()
        .map(|p| unknown_document(&format!("{p}.pdf")))
        .collect();
    let ids = waiting(&w, inputs).await;
    let ana = sign_in(a, "ana", "ana-password-1").await;
    let cookie = ana.cookie_header();
    let as_ana = [
        ("Cookie", cookie.as_str()),
        ("X-CSRF-Token", ana.csrf.as_str()),
    ];
    for (id, payload) in ids.iter().zip(XSS) {
        // A value typed by a reviewer, a field name the page lists.
        let body =
            json!({ "version": 0, "corrections": [{ "field": "note_text", "value": payload }] })
                .to_string();
        let r = send(
            a,
            "PUT",
            &format!("/api/v1/reviews/{id}"),
            &as_ana,
            Some(("application/json", &body)),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // A note on a postponed one.
    let body = json!({ "version": 1, "reason": XSS[0] }).to_string();
    let r = send(
        a,
        "POST",
        &format!("/api/v1/reviews/{}/postpone", ids[0]),
        &as_ana,
        Some(("application/json", &body)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let queue = send(a, "GET", "/reviews", &[("Cookie", cookie.as_str())], None).await;
    assert_eq!(queue.status, 200);
    let csp = queue.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    for (id, payload) in ids.iter().zip(XSS) {
        let page = send(
            a,
            "GET",
            &format!("/reviews/{id}"),
            &[("Cookie", cookie.as_str())],
            None,
        )
        .await;
        assert_eq!(page.status, 200);
        // Attributes are always in double quotes, so a single quote cannot
        // end one; every other markup character must be escaped.
        for html in [&queue.body, &page.body] {
            if payload.contains(['<', '"', '&']) {
                assert!(!html.contains(payload), "{payload:?} is written as markup");
            }
        }
        let escaped = payload
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;");
        assert!(
            page.body.contains(&escaped),
            "{payload:?} is shown as text on the review page"
        );
    }
    // Only clerk's own scripts run: no script tag but theirs.
    let page = send(
        a,
        "GET",
        &format!("/reviews/{}", ids[0]),
        &[("Cookie", cookie.as_str())],
        None,
    )
    .await;
    let scripts = page.body.matches("<script").count();
    assert_eq!(
        page.body.matches("<script src=\"/assets/").count(),
        scripts,
        "{}",
        page.body
    );
    assert_eq!(scripts, 2, "the review page's and the pages' own");
}

/// A bot that gives its reviews to a group: reviewers outside it may read
/// but not work them, and their queue leaves them out; a member works them.
async fn reviews_go_to_the_group_the_bot_names(kind: Kind) {
    let w = web_of(kind, &intake_bot("review_by = \"controllers\"")).await;
    let id = waiting(&w, vec![unknown_document("scan.pdf")]).await[0];
    let a = w.addr;
    user(&w.s.db, "carla", Role::Reviewer, "carla-password-1").await;
    w.s.db
        .set_user("carla", None, Some(&["controllers".to_string()]))
        .await
        .unwrap();
    let as_user = |s: &http::Session| (s.cookie_header(), s.csrf.clone());
    let ana = sign_in(a, "ana", "ana-password-1").await;
    let (cookie, csrf) = as_user(&ana);
    let headers = [("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())];
    let claim = format!("/api/v1/reviews/{id}/claim");
    let refused = send(a, "POST", &claim, &headers, None).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("controllers"), "{}", refused.body);
    let op = bearer(&w.operator);
    let refused = send(a, "POST", &claim, &[("Authorization", op.as_str())], None).await;
    assert_eq!(refused.status, 403, "an operator is not in the group");
    // Ana may read it, and her own queue leaves it out.
    let read = send(a, "GET", &format!("/api/v1/reviews/{id}"), &headers, None).await;
    assert_eq!(read.status, 200);
    let mine = send(a, "GET", "/api/v1/reviews?mine=true", &headers, None).await;
    assert_eq!(
        mine.json().as_array().map(Vec::len),
        Some(0),
        "{}",
        mine.body
    );
    let page = send(a, "GET", &format!("/reviews/{id}"), &headers, None).await;
    assert!(
        page.body.contains("reviewed by controllers"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("id=\"approve\""), "no actions for Ana");

    let carla = sign_in(a, "carla", "carla-password-1").await;
    let (cookie, csrf) = as_user(&carla);
    let headers = [("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())];
    let mine = send(a, "GET", "/api/v1/reviews?mine=true", &headers, None).await;
    assert_eq!(mine.json()[0]["review_by"][0], "controllers");
    let claimed = send(a, "POST", &claim, &headers, None).await;
    assert_eq!(claimed.status, 200, "{}", claimed.body);
    assert_eq!(claimed.json()["claimed_by"], "carla");
}

both_backends!(
    reviews_go_to_the_group_the_bot_names,
    only_signed_in_callers_with_the_role_get_through,
    sign_in_is_limited_and_tied_to_its_form,
    values_from_documents_mails_and_people_are_shown_as_text,
);

#[test]
fn plain_http_on_a_reachable_address_is_refused() {
    let config = |listen: &str, proxy: bool| clerk::server::WebConfig {
        listen: listen.parse().unwrap(),
        tls: None,
        behind_proxy: proxy,
        session_ttl: Duration::from_secs(60),
        cache_dir: std::env::temp_dir(),
        metrics_allow: Vec::new(),
    };
    assert!(config("127.0.0.1:8080", false).check().is_ok());
    assert!(config("[::1]:8080", false).check().is_ok());
    let refused = config("0.0.0.0:8080", false).check().unwrap_err();
    assert!(
        refused.contains("--insecure-http-behind-proxy"),
        "{refused}"
    );
    assert!(config("0.0.0.0:8080", true).check().is_ok());
    let _ = Arc::new(());
}

/// A scraper on the allow list reads `/metrics` without a token; the
/// allow list opens nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_scraper_reads_metrics_without_a_token() {
    let s = setup(Kind::Sqlite, "intake", &manifest()).await;
    let config = clerk::server::WebConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: None,
        behind_proxy: false,
        session_ttl: Duration::from_secs(60),
        cache_dir: s.t.path().join("pages"),
        metrics_allow: vec!["127.0.0.0/8".parse().unwrap()],
    };
    let app = clerk::server::App::new(s.db.clone(), s.registry.clone(), config, s.documents());
    let stop = CancellationToken::new();
    let (a, _) = clerk::server::start(app, stop.clone()).await.unwrap();
    let r = send(a, "GET", "/metrics", &[], None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(r.body.contains("# TYPE clerk_jobs counter"), "{}", r.body);
    assert!(r.body.ends_with("# EOF\n"));
    assert_eq!(send(a, "GET", "/api/v1/jobs", &[], None).await.status, 401);
    stop.cancel();
}
