//! The operations side of the web server on both back ends: the runs,
//! bots and dashboard pages and their actions (operators only, with the
//! session's CSRF token), kept files served safely, and the API to run,
//! pause and resume a bot and read the figures.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use clerk::jobs::{JobState, Role};
use common::http::{send, sign_in};
use common::*;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const LONG: Duration = Duration::from_secs(60);

struct Ops {
    s: Setup,
    addr: SocketAddr,
    stop: CancellationToken,
    operator: String,
    viewer: String,
}

impl Drop for Ops {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn token(s: &Setup, name: &str, role: Role) -> String {
    let token = format!("clerk_{}", clerk::server::new_secret());
    s.db.add_token(name, role, &clerk::server::digest(&token), "test")
        .await
        .unwrap();
    token
}

async fn start(kind: Kind) -> Ops {
    let s = setup(kind, "ops", OPS_BOT).await;
    for (name, role) in [("olga", Role::Operator), ("vic", Role::Viewer)] {
        let hash = clerk::server::hash_password("a-password-1").unwrap();
        s.db.add_user(name, role, &hash, "test").await.unwrap();
    }
    let operator = token(&s, "cron", Role::Operator).await;
    let viewer = token(&s, "wall", Role::Viewer).await;
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
    Ops {
        s,
        addr,
        stop,
        operator,
        viewer,
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn api(
    o: &Ops,
    token: &str,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> common::http::Response {
    let auth = bearer(token);
    let text = body.to_string();
    let body = (method == "POST").then_some(("application/json", text.as_str()));
    send(
        o.addr,
        method,
        path,
        &[("Authorization", auth.as_str())],
        body,
    )
    .await
}

/// Run jobs of these modes to their end; their ids.
async fn ran(o: &Ops, modes: &[&str]) -> Vec<i64> {
    let bot = o.s.registry.get("ops").unwrap().clone();
    let jobs: Vec<_> = modes
        .iter()
        .map(|m| new_job(&bot, json!({ "mode": m })))
        .collect();
    let ids = enqueue_ids(&o.s.db, &jobs).await;
    let w = RunningWorker::start(o.s.db.clone(), o.s.registry.clone(), fast_config(2));
    for id in &ids {
        wait_for(&o.s.db, *id, &[JobState::Succeeded, JobState::Failed], LONG).await;
    }
    w.shutdown().await;
    ids
}

async fn bots_are_run_paused_and_resumed_through_the_api(kind: Kind) {
    let o = start(kind).await;
    // A viewer reads, an operator acts; a bot that is not there is 404.
    let refused = api(
        &o,
        &o.viewer,
        "POST",
        "/api/v1/bots/ops/pause",
        json!({"reason": "x"}),
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let missing = api(&o, &o.operator, "POST", "/api/v1/bots/nope/run", json!({})).await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    let paused = api(
        &o,
        &o.operator,
        "POST",
        "/api/v1/bots/ops/pause",
        json!({"reason": "ERP upgrade"}),
    )
    .await;
    assert_eq!(paused.status, 200, "{}", paused.body);
    assert_eq!(paused.json()["changed"], true);
    let bots = api(&o, &o.viewer, "GET", "/api/v1/bots", json!(null))
        .await
        .json();
    assert_eq!(bots[0]["paused"]["reason"], "ERP upgrade");
    assert_eq!(bots[0]["paused"]["paused_by"], "token:cron");

    // Run now while paused: the job is queued and waits.
    let body = json!({"input": {"mode": "ok"}, "key": "by-hand-1"});
    let first = api(
        &o,
        &o.operator,
        "POST",
        "/api/v1/bots/ops/run",
        body.clone(),
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let id = first.json()["id"].as_i64().unwrap();
    let again = api(&o, &o.operator, "POST", "/api/v1/bots/ops/run", body).await;
    assert_eq!((again.status, again.json()["id"].as_i64()), (200, Some(id)));
    let w = RunningWorker::start(o.s.db.clone(), o.s.registry.clone(), fast_config(2));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(o.s.db.state(id).await.unwrap(), Some(JobState::Queued));
    let resumed = api(
        &o,
        &o.operator,
        "POST",
        "/api/v1/bots/ops/resume",
        json!({}),
    )
    .await;
    assert_eq!(resumed.status, 200, "{}", resumed.body);
    wait_for(&o.s.db, id, &[JobState::Succeeded], LONG).await;
    w.shutdown().await;
    let history: Vec<String> =
        o.s.db
            .bot_events("ops", 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
    assert_eq!(history, ["resumed", "ran", "paused"]);

    // The figures of the day, through the API.
    let stats = api(&o, &o.viewer, "GET", "/api/v1/stats?days=1", json!(null)).await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    let s = stats.json();
    assert_eq!(s["overall"]["documents_in"], 1);
    assert_eq!(s["overall"]["straight_through"], 1);
    assert_eq!(s["bots"][0]["bot"], "ops");
    let bad = api(
        &o,
        &o.viewer,
        "GET",
        "/api/v1/stats?from=yesterday",
        json!(null),
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
}

async fn runs_are_listed_shown_and_retried_from_the_pages(kind: Kind) {
    let o = start(kind).await;
    let ids = ran(&o, &["ok", "business"]).await;
    let failed = ids[1];
    let a = o.addr;
    let vic = sign_in(a, "vic", "a-password-1").await;
    let olga = sign_in(a, "olga", "a-password-1").await;
    let (vc, oc) = (vic.cookie_header(), olga.cookie_header());

    let list = send(a, "GET", "/runs?state=failed", &[("Cookie", &vc)], None).await;
    assert_eq!(list.status, 200);
    assert!(
        list.body.contains(&format!("href=\"/runs/{failed}\"")),
        "{}",
        list.body
    );
    assert!(!list.body.contains(&format!("href=\"/runs/{}\"", ids[0])));

    // A queued job with no worker running to take it says so.
    let bot = o.s.registry.get("ops").unwrap();
    let waiting = common::enqueue_ids(&o.s.db, &[common::new_job(bot, json!({}))]).await[0];
    let queued = send(a, "GET", "/runs?state=queued", &[("Cookie", &vc)], None).await;
    assert!(
        queued.body.contains(&format!("href=\"/runs/{waiting}\""))
            && queued
                .body
                .contains("<td class=\"unserved\">no worker is running</td>"),
        "{}",
        queued.body
    );

    // A browser step's kept files: the screenshot shown, the page's HTML
    // only downloaded, and no name that leaves the folder.
    let kept =
        o.s.bots
            .join("ops/artifacts")
            .join(format!("job-{failed}"))
            .join("attempt-1");
    std::fs::create_dir_all(&kept).unwrap();
    std::fs::write(kept.join("failure.png"), b"\x89PNG\r\n\x1a\n").unwrap();
    std::fs::write(kept.join("page.html"), "<script>alert(1)</script>").unwrap();
    let page = send(
        a,
        "GET",
        &format!("/runs/{failed}"),
        &[("Cookie", &vc)],
        None,
    )
    .await;
    assert_eq!(page.status, 200);
    let shot = format!("/runs/{failed}/artifacts/1/failure.png");
    assert!(
        page.body.contains(&format!("img src=\"{shot}\"")),
        "{}",
        page.body
    );
    assert!(page.body.contains("exited with code 3"), "{}", page.body);
    assert!(
        !page.body.contains("action=\"/runs/"),
        "a viewer gets no retry button"
    );
    let png = send(a, "GET", &shot, &[("Cookie", &vc)], None).await;
    assert_eq!(png.header("content-type"), Some("image/png"));
    let html = send(
        a,
        "GET",
        &format!("/runs/{failed}/artifacts/1/page.html"),
        &[("Cookie", &vc)],
        None,
    )
    .await;
    assert_eq!(
        html.header("content-type"),
        Some("application/octet-stream")
    );
    assert!(
        html.header("content-disposition")
            .unwrap()
            .starts_with("attachment")
    );
    for name in ["..%2F..%2Fbot.toml", ".hidden", "nope.png"] {
        let r = send(
            a,
            "GET",
            &format!("/runs/{failed}/artifacts/1/{name}"),
            &[("Cookie", &vc)],
            None,
        )
        .await;
        assert_eq!(r.status, 404, "{name}");
    }

    // Retry: not for a viewer, not without the page's CSRF token.
    let path = format!("/runs/{failed}/retry");
    let form = |csrf: &str| format!("csrf={csrf}");
    let viewer = send(
        a,
        "POST",
        &path,
        &[("Cookie", &vc)],
        Some(("application/x-www-form-urlencoded", &form(&vic.csrf))),
    )
    .await;
    assert_eq!(viewer.status, 403);
    let forged = send(
        a,
        "POST",
        &path,
        &[("Cookie", &oc)],
        Some(("application/x-www-form-urlencoded", "csrf=forged")),
    )
    .await;
    assert_eq!(forged.status, 403);
    assert_eq!(o.s.db.state(failed).await.unwrap(), Some(JobState::Failed));
    let page = send(
        a,
        "GET",
        &format!("/runs/{failed}"),
        &[("Cookie", &oc)],
        None,
    )
    .await;
    assert!(
        page.body.contains(&format!("action=\"{path}\"")),
        "{}",
        page.body
    );
    let done = send(
        a,
        "POST",
        &path,
        &[("Cookie", &oc)],
        Some(("application/x-www-form-urlencoded", &form(&olga.csrf))),
    )
    .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(
        done.header("location"),
        Some(format!("/runs/{failed}?done=retried").as_str())
    );
    assert_eq!(o.s.db.state(failed).await.unwrap(), Some(JobState::Queued));
    let trail = o.s.db.job(failed).await.unwrap().unwrap().events;
    assert_eq!(trail.last().unwrap().actor, "olga");
}

async fn the_bots_page_and_the_dashboard_show_the_figures(kind: Kind) {
    let o = start(kind).await;
    ran(&o, &["ok", "ok", "ok", "business"]).await;
    let a = o.addr;
    let olga = sign_in(a, "olga", "a-password-1").await;
    let oc = olga.cookie_header();
    let bots = send(a, "GET", "/bots", &[("Cookie", &oc)], None).await;
    assert_eq!(bots.status, 200);
    assert!(bots.body.contains("75%"), "3 of 4 succeeded: {}", bots.body);
    // Pause from the page, with the page's token.
    let form = format!("csrf={}&reason=month-end", olga.csrf);
    let paused = send(
        a,
        "POST",
        "/bots/ops/pause",
        &[("Cookie", &oc)],
        Some(("application/x-www-form-urlencoded", &form)),
    )
    .await;
    assert_eq!(paused.status, 303, "{}", paused.body);
    let bots = send(a, "GET", "/bots", &[("Cookie", &oc)], None).await;
    assert!(bots.body.contains("month-end"), "{}", bots.body);
    assert!(bots.body.contains("action=\"/bots/ops/resume\""));
    let run = format!("csrf={}&input=%7B%22mode%22%3A%22ok%22%7D", olga.csrf);
    let queued = send(
        a,
        "POST",
        "/bots/ops/run",
        &[("Cookie", &oc)],
        Some(("application/x-www-form-urlencoded", &run)),
    )
    .await;
    assert_eq!(queued.status, 303, "{}", queued.body);
    assert!(
        queued
            .header("location")
            .unwrap()
            .starts_with("/bots?done=ran&job=")
    );
    let bad = format!("csrf={}&input=not-json", olga.csrf);
    let refused = send(
        a,
        "POST",
        "/bots/ops/run",
        &[("Cookie", &oc)],
        Some(("application/x-www-form-urlencoded", &bad)),
    )
    .await;
    assert_eq!(refused.status, 422, "{}", refused.body);

    let dash = send(a, "GET", "/dashboard?days=7", &[("Cookie", &oc)], None).await;
    assert_eq!(dash.status, 200);
    for text in [
        "<svg",
        "75.0%",
        "25.0%",
        "Top failure reasons",
        "exited with code 3",
    ] {
        assert!(dash.body.contains(text), "{text} missing: {}", dash.body);
    }
    let bad = send(
        a,
        "GET",
        "/dashboard?from=2026-13-01",
        &[("Cookie", &oc)],
        None,
    )
    .await;
    assert_eq!(bad.status, 400);
}

both_backends!(
    bots_are_run_paused_and_resumed_through_the_api,
    runs_are_listed_shown_and_retried_from_the_pages,
    the_bots_page_and_the_dashboard_show_the_figures,
);
