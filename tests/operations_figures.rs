//! The figures of a known mix of jobs, run by real `clerk serve` and
//! driven through its API as a script would: straight through with known
//! sleeps, a business error, retries run out, a failure fixed and retried
//! by hand, a document approved and one rejected in review. Every figure
//! ops teams read (the API's figures, the dashboard, `/metrics`,
//! `clerk stats --json`, `clerk report` as JSON and CSV) is checked
//! against the counts and the durations worked out from the jobs' own
//! records, on SQLite and PostgreSQL.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::browser::{Server, add_user, clerk, serve};
use common::http::{Response, send, sign_in};
use common::{Kind, TestDb, intake_bot, write_bot};
use serde_json::{Value, json};

/// Sleeps `sleep` seconds, then exits 0, 3 (a business error) or 75
/// (transient) by `mode`; `flaky` succeeds once the file `flag` exists.
const OPS: &str = r#"
name = "ops"
[retry]
max_attempts = 2
backoff = "100ms"
[[steps]]
name = "work"
kind = "command"
failure = "business"
argv = ["python3", "-c", """
import json, os, sys, time
i = json.load(sys.stdin)["input"]
time.sleep(i.get("sleep", 0))
m = i["mode"]
if m == "flaky":
    sys.exit(0 if os.path.exists(i["flag"]) else 3)
sys.exit({"ok": 0, "business": 3, "transient": 75}[m])
"""]
"#;

/// Seconds the straight-through jobs sleep in their step.
const SLEEPS: [f64; 4] = [0.2, 0.4, 0.7, 1.1];
const FINISHED: [&str; 3] = ["succeeded", "failed", "dead"];

struct Run {
    server: Server,
    token: String,
}

impl Run {
    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.server.port))
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Response {
        let auth = format!("Bearer {}", self.token);
        let text = body.map(|b| b.to_string());
        let body = text.as_deref().map(|t| ("application/json", t));
        send(self.addr(), method, path, &[("Authorization", &auth)], body).await
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let r = self.call(method, path, body).await;
        assert!(
            (200..300).contains(&r.status),
            "{method} {path}: {} {}",
            r.status,
            r.body
        );
        r.json()
    }

    async fn start_job(&self, bot: &str, input: Value) -> i64 {
        let path = format!("/api/v1/bots/{bot}/run");
        let v = self
            .ok("POST", &path, Some(json!({ "input": input })))
            .await;
        v["id"].as_i64().expect("the new job's id")
    }

    async fn job(&self, id: i64) -> Value {
        self.ok("GET", &format!("/api/v1/jobs/{id}"), None).await
    }

    /// Wait until job `id` is in one of `states`; its record.
    async fn wait(&self, id: i64, states: &[&str]) -> Value {
        let start = Instant::now();
        loop {
            let job = self.job(id).await;
            if states.contains(&job["state"].as_str().unwrap_or_default()) {
                return job;
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "job {id} stayed {}",
                job["state"]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn operator_token(url: &str) -> String {
    let out = clerk()
        .args(["tokens", "create", "figures", "--role", "operator"])
        .args(["--database", url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Time a job spent in `state`, from its audit trail.
fn time_in(job: &Value, state: &str) -> i64 {
    let mut spent = 0;
    let mut entered: Option<i64> = None;
    for e in job["events"].as_array().unwrap() {
        let at = e["at"].as_i64().unwrap();
        if e["from_state"] == e["to_state"] {
            continue;
        }
        if let Some(since) = entered.take() {
            spent += at - since;
        }
        if e["to_state"] == state {
            entered = Some(at);
        }
    }
    spent
}

/// The nearest-rank `q`-quantile of `values`, in ms.
fn quantile(values: &[i64], q: f64) -> i64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// A figure's percentiles agree with the durations behind them: each
/// falls in the histogram bucket of the exact value (buckets are at most
/// a quarter wide), and the mean is exact.
fn check_durations(figure: &Value, ms: &[i64], what: &str) {
    assert_eq!(figure["count"], ms.len() as u64, "{what}: {figure}");
    for (q, key) in [(0.5, "p50_seconds"), (0.95, "p95_seconds")] {
        let exact = quantile(ms, q);
        let shown = (figure[key].as_f64().unwrap() * 1000.0).round() as i64;
        assert_eq!(
            clerk::stats::bucket_of(shown),
            clerk::stats::bucket_of(exact),
            "{what} {key}: {shown} ms shown, {exact} ms exact, of {ms:?}"
        );
    }
    let mean = ms.iter().sum::<i64>() as f64 / ms.len() as f64 / 1000.0;
    let shown = figure["mean_seconds"].as_f64().unwrap();
    // Each duration is counted in whole milliseconds where the database
    // keeps finer times (less than 1 ms off), and the mean is their sum
    // divided in whole milliseconds (less than 1 ms off again).
    assert!(
        (shown - mean).abs() < 0.002,
        "{what} mean {shown} vs {mean}"
    );
}

/// The samples of one metric family, by their labels as written.
fn samples(text: &str, name: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some(labels) = key.strip_prefix(name) else {
            continue;
        };
        if labels.is_empty() || labels.starts_with('{') {
            out.insert(labels.to_string(), value.parse().unwrap());
        }
    }
    out
}

fn cli_json(args: &[&str], url: &str, bots: &Path) -> Value {
    let out = clerk()
        .args(args)
        .args(["--database", url])
        .arg("--bots")
        .arg(bots)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn cli_text(args: &[&str], url: &str, bots: &Path) -> String {
    let out = clerk()
        .args(args)
        .args(["--database", url])
        .arg("--bots")
        .arg(bots)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Run the mix; the records of every job once all have finished, ops's
/// first.
async fn run_the_mix(run: &Run, flag: &Path) -> (Vec<Value>, Vec<Value>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut ops = Vec::new();
    for sleep in SLEEPS {
        ops.push(
            run.start_job("ops", json!({"mode": "ok", "sleep": sleep}))
                .await,
        );
    }
    for mode in ["business", "transient", "flaky"] {
        ops.push(
            run.start_job("ops", json!({"mode": mode, "flag": flag}))
                .await,
        );
    }
    let doc = json!({ "file": root.join("fixtures/bad/owner-only.pdf"), "name": "scan.pdf" });
    let mut docs = Vec::new();
    for _ in 0..2 {
        docs.push(run.start_job("intake", doc.clone()).await);
    }
    for id in &ops {
        run.wait(*id, &FINISHED).await;
    }
    for id in &docs {
        run.wait(*id, &["waiting_review"]).await;
    }
    // A person fixes the cause and retries; a reviewer takes a moment.
    std::fs::write(flag, "fixed").unwrap();
    run.ok("POST", &format!("/api/v1/jobs/{}/retry", ops[6]), None)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let version = |v: Value| v["review"]["version"].as_i64().unwrap();
    let v = version(
        run.ok("GET", &format!("/api/v1/reviews/{}", docs[0]), None)
            .await,
    );
    let approve = json!({"version": v, "note": "checked", "override": "booked by hand before"});
    run.ok(
        "POST",
        &format!("/api/v1/reviews/{}/approve", docs[0]),
        Some(approve),
    )
    .await;
    let v = version(
        run.ok("GET", &format!("/api/v1/reviews/{}", docs[1]), None)
            .await,
    );
    let reject = json!({"version": v, "reason": "not our invoice"});
    run.ok(
        "POST",
        &format!("/api/v1/reviews/{}/reject", docs[1]),
        Some(reject),
    )
    .await;
    let mut ops_jobs = Vec::new();
    for id in &ops {
        ops_jobs.push(run.wait(*id, &FINISHED).await);
    }
    let mut doc_jobs = Vec::new();
    for id in &docs {
        doc_jobs.push(run.wait(*id, &FINISHED).await);
    }
    (ops_jobs, doc_jobs)
}

async fn the_figures_of_a_known_mix_through_clerk_serve(kind: Kind) {
    let t = TestDb::new(kind).await;
    let bots = write_bot(t.path(), "ops", OPS);
    write_bot(t.path(), "intake", &intake_bot(""));
    add_user(&t.url, "olga", "operator", "olga-password-1");
    let token = operator_token(&t.url);
    let server = serve(&t.url, t.path(), &bots, &[]);
    let run = Run { server, token };
    let (ops, docs) = run_the_mix(&run, &t.path().join("flag")).await;
    let all: Vec<&Value> = ops.iter().chain(&docs).collect();
    let state = |j: &Value| j["state"].as_str().unwrap().to_string();
    assert_eq!(
        all.iter().map(|j| state(j)).collect::<Vec<_>>(),
        [
            "succeeded",
            "succeeded",
            "succeeded",
            "succeeded",
            "failed",
            "dead",
            "succeeded",
            "succeeded",
            "failed"
        ]
    );

    // What the records say: the cycle of every job that succeeded, and
    // its parts.
    let succeeded: Vec<&Value> = all
        .iter()
        .copied()
        .filter(|j| j["state"] == "succeeded")
        .collect();
    let cycle: Vec<i64> = succeeded
        .iter()
        .map(|j| j["finished_at"].as_i64().unwrap() - j["created_at"].as_i64().unwrap())
        .collect();
    let ran: Vec<i64> = succeeded.iter().map(|j| time_in(j, "running")).collect();
    let queued: Vec<i64> = succeeded.iter().map(|j| time_in(j, "queued")).collect();
    let reviewed: Vec<i64> = docs.iter().map(|j| time_in(j, "waiting_review")).collect();
    for (sleep, ms) in SLEEPS.iter().zip(&ran) {
        assert!(*ms as f64 >= sleep * 1000.0, "ran {ms} ms, slept {sleep} s");
    }
    assert!(reviewed.iter().all(|ms| *ms >= 300), "{reviewed:?}");

    // The API's figures.
    let figures = run.ok("GET", "/api/v1/stats?days=7", None).await;
    let f = &figures["overall"];
    for (key, want) in [
        ("documents_in", 9),
        ("finished", 9),
        ("succeeded", 6),
        ("straight_through", 4),
        ("cancelled", 0),
        ("reviewed", 2),
    ] {
        assert_eq!(f[key], want, "{key} in {f}");
    }
    for (ending, want) in [
        ("straight_through", 4),
        ("touched", 2),
        ("business", 1),
        ("transient_exhausted", 1),
        ("dead", 0),
        ("rejected", 1),
    ] {
        assert_eq!(f["endings"][ending], want, "{ending} in {f}");
    }
    assert_eq!(f["straight_through_rate"], 4.0 / 9.0);
    assert_eq!(f["exception_rate"], 3.0 / 9.0);
    check_durations(&f["cycle"], &cycle, "cycle");
    check_durations(&f["run"], &ran, "run");
    check_durations(&f["queue_wait"], &queued, "queue wait");
    check_durations(&f["review_wait"], &reviewed, "review wait");
    let per_day: i64 = f["per_day"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["documents_in"].as_i64().unwrap())
        .sum();
    assert_eq!(per_day, 9);
    let steps = f["steps"].as_array().unwrap();
    let work = steps.iter().find(|s| s["step"] == "work").unwrap();
    // Four straight through, one business error, two transient attempts,
    // the flaky one's failure and its success.
    assert_eq!(
        (work["runs"].as_i64(), work["failed"].as_i64()),
        (Some(9), Some(4))
    );
    let id = |j: &Value| j["id"].as_i64().unwrap();
    assert_eq!(
        f["top_failures"],
        json!([
            {"message": "`python3` exited with code 3", "ending": "business", "count": 1, "examples": [id(&ops[4])]},
            {"message": "`python3` exited with code 75", "ending": "transient_exhausted", "count": 1, "examples": [id(&ops[5])]},
            {"message": "rejected in review: not our invoice", "ending": "rejected", "count": 1, "examples": [id(&docs[1])]},
        ])
    );
    let per_bot: BTreeMap<String, i64> = figures["bots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["bot"].as_str().unwrap().to_string(),
                b["documents_in"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        per_bot,
        BTreeMap::from([("intake".into(), 2), ("ops".into(), 7)])
    );
    assert_eq!(f["now"]["review_backlog"], 0);

    // `clerk stats --json` prints the same figures.
    let mut cli = cli_json(&["stats", "--json", "--days", "7"], &t.url, &bots);
    cli["at"] = figures["at"].clone();
    assert_eq!(cli, figures, "clerk stats and the API disagree");

    // The metrics.
    let metrics = run.call("GET", "/metrics", None).await;
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    let m = &metrics.body;
    let jobs = samples(m, "clerk_jobs_total");
    for (labels, want) in [
        (r#"{bot="ops",outcome="straight_through"}"#, 4.0),
        (r#"{bot="ops",outcome="touched"}"#, 1.0),
        (r#"{bot="ops",outcome="business"}"#, 1.0),
        (r#"{bot="ops",outcome="transient_exhausted"}"#, 1.0),
        (r#"{bot="intake",outcome="touched"}"#, 1.0),
        (r#"{bot="intake",outcome="rejected"}"#, 1.0),
    ] {
        assert_eq!(jobs.get(labels), Some(&want), "{labels} in {jobs:?}");
    }
    assert_eq!(jobs.values().sum::<f64>(), 9.0, "{jobs:?}");
    let intake_total = samples(m, "clerk_intake_documents_total");
    assert_eq!(
        intake_total.get(r#"{bot="ops",trigger="manual"}"#),
        Some(&7.0),
        "{intake_total:?}"
    );
    let ops_cycle: Vec<i64> = cycle[..5].to_vec();
    let count = samples(m, "clerk_job_duration_seconds_count");
    assert_eq!(count.get(r#"{bot="ops"}"#), Some(&5.0), "{count:?}");
    let sum = samples(m, "clerk_job_duration_seconds_sum")[r#"{bot="ops"}"#];
    let exact = ops_cycle.iter().sum::<i64>() as f64 / 1000.0;
    assert!((sum - exact).abs() < 1e-6, "sum {sum} vs {exact}");
    let buckets = samples(m, "clerk_job_duration_seconds_bucket");
    for le in ["0.5", "1.0", "2.5", "5.0"] {
        let bound = le.parse::<f64>().unwrap() * 1000.0;
        let want = ops_cycle.iter().filter(|ms| **ms as f64 <= bound).count() as f64;
        let key = format!(r#"{{le="{le}",bot="ops"}}"#);
        assert_eq!(buckets.get(&key), Some(&want), "{key} of {ops_cycle:?}");
    }
    let steps = samples(m, "clerk_step_duration_seconds_count");
    assert_eq!(
        steps.get(r#"{bot="ops",step="work",kind="command"}"#),
        Some(&9.0),
        "{steps:?}"
    );
    assert_eq!(samples(m, "clerk_review_backlog")[""], 0.0);
    assert_eq!(samples(m, "clerk_review_oldest_age_seconds")[""], 0.0);
    assert_eq!(samples(m, "clerk_bot_paused")[r#"{bot="ops"}"#], 0.0);
    assert!(samples(m, "clerk_queue_depth").is_empty(), "{m}");

    // The report, as JSON and CSV.
    let report = cli_json(
        &["report", "--format", "json", "--days", "7"],
        &t.url,
        &bots,
    );
    let mut current = report["current"].clone();
    current["at"] = figures["at"].clone();
    assert_eq!(current, figures, "the report and the API disagree");
    assert_eq!(report["previous"]["overall"]["documents_in"], 0);
    let csv = cli_text(&["report", "--format", "csv", "--days", "7"], &t.url, &bots);
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let all_row: Vec<&str> = lines.last().unwrap().split(',').collect();
    let cell = |name: &str| all_row[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(cell("bot"), "all");
    for (name, want) in [
        ("documents_in", "9".to_string()),
        ("straight_through_rate", "0.4444".into()),
        ("exception_rate", "0.3333".into()),
        ("rejected_rate", "0.1111".into()),
        ("reviewed", "2".into()),
        (
            "cycle_p50_seconds",
            format!("{:.4}", f["cycle"]["p50_seconds"].as_f64().unwrap()),
        ),
    ] {
        assert_eq!(cell(name), want, "{name} in {csv}");
    }

    // The dashboard shows them, each linked to the runs behind it.
    let olga = sign_in(run.addr(), "olga", "olga-password-1").await;
    let cookie = olga.cookie_header();
    let dash = send(
        run.addr(),
        "GET",
        "/dashboard?days=7",
        &[("Cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(dash.status, 200);
    for text in ["44.4%", "33.3%", "11.1%", "not our invoice", "/runs?"] {
        assert!(dash.body.contains(text), "{text} missing: {}", dash.body);
    }
}

both_backends!(the_figures_of_a_known_mix_through_clerk_serve);
