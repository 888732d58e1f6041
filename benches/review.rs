//! How fast reviewers' pages are, on SQLite and PostgreSQL, against a real
//! `clerk` web server over loopback. Prints figures; asserts nothing.
//!
//!   cargo bench --bench review
//!   cargo bench --bench review -- --waiting 10000 --rounds 50 --backends sqlite,postgres
//!
//! The queue: N jobs wait for review (run through a real worker by a step
//! that asks for review), then the queue is listed through the API (100 and
//! 1000 at a time, and only the caller's) and as the HTML queue page (500).
//! The review page: a 2-page scan (two scanned invoices in one PDF) is
//! extracted by a real extract step and waits for review; its page, the
//! first rendering of each page image, and a cached one are timed.
//!
//! Each figure is the server's own time (its `Server-Timing` header), with
//! the time the client saw beside it.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clerk::bot::{Bot, BotRegistry, RetryPolicy, StepDecl, Timeouts};
use clerk::jobs::{JobState, NewJob, Role};
use clerk::step::{Step, StepContext, StepError, StepOutcome};
use clerk::worker::{Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

/// A step that asks for review at once, with an extraction-shaped output.
#[derive(Debug)]
struct AsksForReview;

#[async_trait]
impl Step for AsksForReview {
    fn kind(&self) -> &'static str {
        "extract"
    }
    async fn run(&self, ctx: &StepContext) -> Result<StepOutcome, StepError> {
        let n = ctx.job_id;
        Ok(StepOutcome::NeedsReview {
            output: serde_json::json!({
                "values": { "invoice_number": format!("RE-{n}"), "amount": 100.0 + n as f64 },
                "fields": {},
                "review": ["`amount` has confidence 0.55"],
            }),
            reasons: vec!["`amount` has confidence 0.55".into()],
            review_by: if n % 2 == 0 {
                vec!["controllers".into()]
            } else {
                vec![]
            },
        })
    }
}

struct Args {
    waiting: usize,
    rounds: usize,
    backends: Vec<String>,
    pg: String,
}

fn parse_args() -> Args {
    let mut a = Args {
        waiting: 10_000,
        rounds: 30,
        backends: vec!["sqlite".into(), "postgres".into()],
        pg: std::env::var("CLERK_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().expect("a value after the flag");
        match arg.as_str() {
            "--waiting" => a.waiting = value().parse().expect("a number"),
            "--rounds" => a.rounds = value().parse().expect("a number"),
            "--backends" => a.backends = value().split(',').map(str::to_string).collect(),
            "--pg" => a.pg = value(),
            // `cargo bench` passes --bench.
            _ => {}
        }
    }
    a
}

fn bulk_bot() -> Arc<Bot> {
    let decl = StepDecl {
        name: "extract".into(),
        kind: "command",
        timeout: None,
        config: Arc::new(clerk::command::CommandConfig {
            argv: vec!["true".into()],
            env: Default::default(),
            workdir: None,
            failure: clerk::step::FailureKind::Transient,
        }),
    };
    Arc::new(Bot {
        name: "bulk".into(),
        description: String::new(),
        file: "bench".into(),
        dir: ".".into(),
        owners: vec![],
        reviewers: vec![],
        notify: None,
        secrets: Vec::new(),
        triggers: vec![],
        retry: RetryPolicy::default(),
        timeouts: Timeouts::default(),
        concurrency: None,
        review_within: Some(Duration::from_secs(4 * 3600)),
        review_by: None,
        dedupe: Default::default(),
        steps: vec![decl],
        runners: vec![Arc::new(AsksForReview)],
    })
}

/// The bot that reads the 2-page scan, in `dir`.
fn scan_bot(dir: &Path) -> Vec<Arc<Bot>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let folder = dir.join("bots/scan");
    std::fs::create_dir_all(&folder).expect("bot folder");
    std::fs::write(
        folder.join("bot.toml"),
        format!(
            r#"name = "scan"
[[steps]]
name = "extract"
kind = "extract"
templates = "{}"
[[steps.review_if]]
field = "amount"
above = 0
reason = "every scan is looked at"
"#,
            root.join("bots/invoice-intake/templates").display()
        ),
    )
    .expect("bot file");
    let report = clerk::bot::load_dir(&dir.join("bots"));
    assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
    report.bots
}

/// Two scanned invoices made one 2-page PDF.
fn two_page_scan(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = dir.join("two-page-scan.pdf");
    let status = std::process::Command::new("pdfunite")
        .arg(root.join("fixtures/scans/acme-office-degraded.pdf"))
        .arg(root.join("fixtures/scans/nordwind-logistics-degraded.pdf"))
        .arg(&out)
        .status()
        .expect("pdfunite (poppler-utils)");
    assert!(status.success());
    out
}

/// One GET: the server's time (ms) from `Server-Timing`, the client's, the
/// status and the body's size.
fn get(addr: SocketAddr, path: &str, token: &str) -> (f64, f64, u16, usize) {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let client = started.elapsed().as_secs_f64() * 1000.0;
    let text = String::from_utf8_lossy(&raw);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let server = head
        .lines()
        .find_map(|l| {
            let l = l.to_ascii_lowercase();
            l.strip_prefix("server-timing: app;dur=")
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .unwrap_or(f64::NAN);
    (server, client, status, raw.len())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Time `rounds` GETs of `path`; print p50, p95 and max of the server's time.
async fn timed(label: &str, addr: SocketAddr, path: &str, token: &str, rounds: usize) {
    let (path, token) = (path.to_string(), token.to_string());
    let results = tokio::task::spawn_blocking(move || {
        (0..rounds)
            .map(|_| get(addr, &path, &token))
            .collect::<Vec<_>>()
    })
    .await
    .expect("requests");
    let status = results[0].2;
    let bytes = results[0].3;
    let mut server: Vec<f64> = results.iter().map(|r| r.0).collect();
    let mut client: Vec<f64> = results.iter().map(|r| r.1).collect();
    server.sort_by(f64::total_cmp);
    client.sort_by(f64::total_cmp);
    println!(
        "  {label:<44} server p50 {:>7.1} ms  p95 {:>7.1} ms  max {:>7.1} ms   client p50 {:>7.1} ms   ({status}, {bytes} bytes, {rounds}x)",
        percentile(&server, 0.5),
        percentile(&server, 0.95),
        percentile(&server, 1.0),
        percentile(&client, 0.5),
    );
}

async fn bench(backend: &str, args: &Args, tmp: &Path) {
    let (db, _) = common::fresh_db(backend, &args.pg, tmp, "clerk_bench_review").await;
    let mut bots = scan_bot(tmp);
    bots.push(bulk_bot());
    let registry = Arc::new(BotRegistry::new(bots));

    // The queue: N waiting jobs, run through a real worker.
    let started = Instant::now();
    let jobs: Vec<NewJob> = (0..args.waiting)
        .map(|_| NewJob {
            bot: "bulk".into(),
            input: serde_json::json!({ "name": "invoice.pdf" }),
            idempotency_key: None,
            max_attempts: 5,
            max_lost: 3,
            run_after: None,
            created_by: "bench".into(),
            refused: None,
        })
        .collect();
    let mut last = 0;
    for chunk in jobs.chunks(2000) {
        last = db
            .enqueue(chunk)
            .await
            .expect("enqueue")
            .last()
            .map_or(0, |e| e.id);
    }
    let scan = two_page_scan(tmp);
    let scan_job = db
        .enqueue(&[NewJob {
            bot: "scan".into(),
            input: serde_json::json!({ "file": scan, "name": "two-page-scan.pdf" }),
            idempotency_key: None,
            max_attempts: 5,
            max_lost: 3,
            run_after: None,
            created_by: "bench".into(),
            refused: None,
        }])
        .await
        .expect("enqueue")[0]
        .id;
    let mut config = WorkerConfig::new(8);
    config.claim_batch = 64;
    config.prefetch = 64;
    let stop = CancellationToken::new();
    let worker = Worker::new(db.clone(), registry.clone(), config);
    let task = tokio::spawn(worker.run(stop.clone()));
    let all = clerk::jobs::ReviewFilter {
        limit: u32::try_from(args.waiting + 1).unwrap_or(u32::MAX),
        ..Default::default()
    };
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let ends = [
            db.state(last).await.expect("state"),
            db.state(scan_job).await.expect("state"),
        ];
        if ends.iter().any(|s| *s != Some(JobState::WaitingReview)) {
            continue;
        }
        if db.review_queue(&all).await.expect("queue").len() > args.waiting {
            break;
        }
    }
    stop.cancel();
    let _ = task.await;
    println!(
        "{backend}: {} jobs waiting for review after {:.1}s (run through a worker)",
        args.waiting + 1,
        started.elapsed().as_secs_f64()
    );

    let token = format!("clerk_{}", clerk::server::new_secret());
    db.add_token(
        "bench",
        Role::Admin,
        &clerk::server::digest(&token),
        "bench",
    )
    .await
    .expect("token");
    let reviewer = format!("clerk_{}", clerk::server::new_secret());
    db.add_token(
        "bench-reviewer",
        Role::Reviewer,
        &clerk::server::digest(&reviewer),
        "bench",
    )
    .await
    .expect("token");
    let config = clerk::server::WebConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        tls: None,
        behind_proxy: false,
        session_ttl: Duration::from_secs(3600),
        cache_dir: tmp.join(format!("pages-{backend}")),
        metrics_allow: Vec::new(),
    };
    let documents: Arc<dyn clerk::documents::store::DocumentStore> = Arc::new(
        clerk::documents::store::LocalStore::new(tmp.join(format!("documents-{backend}"))),
    );
    let app = clerk::server::App::new(db.clone(), registry, config, documents);
    let stop = CancellationToken::new();
    let (addr, _) = clerk::server::start(app, stop.clone())
        .await
        .expect("web server");
    let r = args.rounds;
    timed(
        "GET /api/v1/reviews (first 100)",
        addr,
        "/api/v1/reviews",
        &token,
        r,
    )
    .await;
    timed(
        "GET /api/v1/reviews?limit=1000",
        addr,
        "/api/v1/reviews?limit=1000",
        &token,
        r,
    )
    .await;
    timed(
        "GET /api/v1/reviews?bot=bulk&reason=confid",
        addr,
        "/api/v1/reviews?bot=bulk&reason=confid",
        &token,
        r,
    )
    .await;
    timed(
        "GET /api/v1/reviews?mine=true (reviewer)",
        addr,
        "/api/v1/reviews?mine=true",
        &reviewer,
        r,
    )
    .await;
    timed(
        "GET /api/v1/reviews?overdue=true",
        addr,
        "/api/v1/reviews?overdue=true",
        &token,
        r,
    )
    .await;
    timed(
        "GET /reviews (HTML queue, 500 rows)",
        addr,
        "/reviews",
        &token,
        r,
    )
    .await;

    println!("{backend}: the review page of a 2-page scan (job {scan_job})");
    let page = format!("/reviews/{scan_job}");
    timed("GET /reviews/ID (HTML review page)", addr, &page, &token, r).await;
    timed(
        "GET /api/v1/reviews/ID (JSON detail)",
        addr,
        &format!("/api/v1/reviews/{scan_job}"),
        &token,
        r,
    )
    .await;
    for n in 1..=2 {
        let image = format!("/documents/{scan_job}/pages/{n}");
        timed(
            &format!("GET page {n} image, first (rendered)"),
            addr,
            &image,
            &token,
            1,
        )
        .await;
        timed(
            &format!("GET page {n} image, again (cached)"),
            addr,
            &image,
            &token,
            r,
        )
        .await;
    }
    let words = format!("/documents/{scan_job}/words");
    timed(
        "GET words, first (the scan read by OCR)",
        addr,
        &words,
        &token,
        1,
    )
    .await;
    timed("GET words, again (cached)", addr, &words, &token, r).await;
    stop.cancel();
}

fn main() {
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let tmp = tempfile::tempdir().expect("temp dir");
    println!(
        "clerk review benchmark: {} waiting jobs, {} rounds per figure, {} cores",
        args.waiting,
        args.rounds,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    rt.block_on(async {
        for backend in &args.backends {
            bench(backend, &args, tmp.path()).await;
        }
    });
}
