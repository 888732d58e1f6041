//! Queue throughput and pickup latency of the job database, on SQLite and
//! PostgreSQL. Prints figures; asserts nothing.
//!
//!   cargo bench --bench queue
//!   cargo bench --bench queue -- --jobs 20000 --workers 1,4,16 --prefetch default,500 --backends sqlite,postgres
//!
//! Throughput: enqueue N no-op jobs (in batches), then time one worker
//! process with C concurrent slots draining them, until every completion is
//! committed; the share of the machine's CPU time that was busy meanwhile
//! says whether the drain was bound by work or by waiting, and on
//! PostgreSQL the WAL written per job says how much work each job costs
//! the server, a figure that does not drift with the machine's speed.
//! Latency: into an
//! idle worker, enqueue single jobs one at a time and measure from just
//! before the enqueue call to the moment the step starts, twice: back to
//! back, the next job as soon as the last one started (how
//! `benches/graphile_worker.mjs` measures its peer), and after 10 ms of
//! quiet, when the processes involved have gone to sleep.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clerk::bot::{Bot, BotRegistry, RetryPolicy, StepDecl, Timeouts};
use clerk::jobs::{self, NewJob};
use clerk::step::{Step, StepContext, StepError, StepOutcome};
use clerk::worker::{Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

/// A step that does nothing but note when it ran.
#[derive(Debug, Default)]
struct Noop {
    ran: AtomicUsize,
    started: Mutex<HashMap<i64, Instant>>,
    all_done: tokio::sync::Notify,
    target: AtomicUsize,
    record: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Step for Noop {
    fn kind(&self) -> &'static str {
        "noop"
    }
    async fn run(&self, ctx: &StepContext) -> Result<StepOutcome, StepError> {
        if self.record.load(Ordering::Relaxed)
            && let Ok(mut m) = self.started.lock()
        {
            m.insert(ctx.job_id, Instant::now());
        }
        let n = self.ran.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= self.target.load(Ordering::SeqCst) {
            self.all_done.notify_one();
        }
        Ok(StepOutcome::Done(serde_json::Value::Null))
    }
}

struct Args {
    jobs: usize,
    workers: Vec<usize>,
    backends: Vec<String>,
    /// Prefetch settings to run; 0 stands for the CLI's default (as many
    /// as the concurrency).
    prefetch: Vec<usize>,
    samples: usize,
    pg: String,
}

fn parse_args() -> Args {
    let mut a = Args {
        jobs: 20_000,
        workers: vec![1, 4, 16],
        backends: vec!["sqlite".into(), "postgres".into()],
        prefetch: vec![0, 500],
        samples: 300,
        pg: std::env::var("CLERK_BENCH_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().unwrap_or_default();
        match arg.as_str() {
            "--jobs" => a.jobs = val().parse().unwrap_or(a.jobs),
            "--workers" => a.workers = val().split(',').filter_map(|s| s.parse().ok()).collect(),
            "--backends" => a.backends = val().split(',').map(String::from).collect(),
            "--prefetch" => {
                a.prefetch = val()
                    .split(',')
                    .map(|s| {
                        if s == "default" {
                            Some(0)
                        } else {
                            s.parse().ok()
                        }
                    })
                    .collect::<Option<Vec<_>>>()
                    .unwrap_or_else(|| a.prefetch.clone())
            }
            "--samples" => a.samples = val().parse().unwrap_or(a.samples),
            "--pg" => a.pg = val(),
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

fn bot(step: Arc<Noop>) -> Arc<BotRegistry> {
    let decl = StepDecl {
        name: "noop".into(),
        kind: "command",
        timeout: None,
        config: Arc::new(clerk::command::CommandConfig {
            argv: vec!["true".into()],
            env: Default::default(),
            workdir: None,
            failure: clerk::step::FailureKind::Transient,
        }),
    };
    let bot = Bot {
        name: "noop".into(),
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
        review_within: None,
        review_by: None,
        dedupe: Default::default(),
        steps: vec![decl],
        runners: vec![step],
    };
    Arc::new(BotRegistry::new([Arc::new(bot)]))
}

fn new_job() -> NewJob {
    NewJob {
        bot: "noop".into(),
        input: serde_json::json!({}),
        idempotency_key: None,
        max_attempts: 5,
        max_lost: 3,
        run_after: None,
        created_by: "bench".into(),
        refused: None,
    }
}

fn worker_config(concurrency: usize, prefetch: usize) -> WorkerConfig {
    let mut cfg = WorkerConfig::new(concurrency);
    cfg.prefetch = prefetch;
    cfg.claim_batch = prefetch.max(concurrency).max(1);
    cfg.poll_interval = Duration::from_millis(200);
    cfg
}

async fn throughput(
    backend: &str,
    args: &Args,
    concurrency: usize,
    prefetch: usize,
    tmp: &std::path::Path,
) {
    let prefetch = if prefetch == 0 { concurrency } else { prefetch };
    let name = format!("clerk_bench_{backend}_t{concurrency}_{prefetch}");
    let (db, url) = common::fresh_db(backend, &args.pg, tmp, &name).await;
    let step = Arc::new(Noop::default());
    step.target.store(args.jobs, Ordering::SeqCst);
    let registry = bot(step.clone());
    let t0 = Instant::now();
    for chunk in (0..args.jobs).collect::<Vec<_>>().chunks(1000) {
        let batch: Vec<NewJob> = chunk.iter().map(|_| new_job()).collect();
        db.enqueue(&batch).await.expect("enqueue");
    }
    let enqueue_s = t0.elapsed().as_secs_f64();

    let stop = CancellationToken::new();
    let wal0 = wal_position(&url).await;
    let cpu0 = cpu_times();
    let own0 = own_cpu_ticks();
    let t1 = Instant::now();
    let handle = tokio::spawn(
        Worker::new(db.clone(), registry, worker_config(concurrency, prefetch)).run(stop.clone()),
    );
    step.all_done.notified().await;
    stop.cancel();
    let report = handle.await.expect("worker");
    let drain_s = t1.elapsed().as_secs_f64();
    let busy = cpu_busy(
        cpu0,
        cpu_times(),
        own_cpu_ticks().saturating_sub(own0),
        report.completed as usize,
    );
    let wal = match (wal0, wal_position(&url).await) {
        (Some(a), Some(b)) => format!(", WAL {:.0} bytes/job", (b - a) / args.jobs as f64),
        _ => String::new(),
    };
    let done = db
        .list(&jobs::ListFilter {
            state: Some(jobs::JobState::Succeeded),
            limit: 1,
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(!done.is_empty());
    println!(
        "{backend:<9} workers={concurrency:<3} prefetch={prefetch:<4} jobs={:<6} enqueue {:>8.0} jobs/s   drain {:>8.0} jobs/s   ({} completions committed in {:.2}s, CPU {busy}{wal})",
        args.jobs,
        args.jobs as f64 / enqueue_s,
        report.completed as f64 / drain_s,
        report.completed,
        drain_s
    );
}

async fn latency(backend: &str, args: &Args, tmp: &std::path::Path) {
    let name = format!("clerk_bench_{backend}_latency");
    let (db, _) = common::fresh_db(backend, &args.pg, tmp, &name).await;
    let step = Arc::new(Noop::default());
    step.record.store(true, Ordering::SeqCst);
    step.target.store(usize::MAX, Ordering::SeqCst);
    let registry = bot(step.clone());
    let stop = CancellationToken::new();
    let handle =
        tokio::spawn(Worker::new(db.clone(), registry, worker_config(4, 4)).run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (how, gap) in [
        ("back to back", None),
        ("after 10 ms quiet", Some(Duration::from_millis(10))),
    ] {
        let mut lat = Vec::with_capacity(args.samples);
        for _ in 0..args.samples {
            if let Some(gap) = gap {
                tokio::time::sleep(gap).await;
            }
            let before = Instant::now();
            let id = db.enqueue(&[new_job()]).await.expect("enqueue")[0].id;
            // The step notes when it started, so this wait's coarse timer
            // does not blur the figure; spinning would take a core from
            // the processes measured.
            let started = loop {
                if let Some(t) = step.started.lock().ok().and_then(|m| m.get(&id).copied()) {
                    break t;
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
            };
            lat.push(started.duration_since(before).as_secs_f64() * 1000.0);
        }
        lat.sort_by(f64::total_cmp);
        let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "{backend:<9} pickup latency into an idle worker, {how} ({} single jobs): p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms",
            lat.len(),
            pct(0.5),
            pct(0.9),
            pct(0.99)
        );
    }
    stop.cancel();
    let _ = handle.await;
}

/// PostgreSQL's WAL insert position in bytes; none on SQLite. Read around
/// a drain, the difference is what the drain wrote (and whatever else the
/// server did meanwhile, so run it on a quiet server): unlike the drain
/// rate, it does not drift with the machine's speed, so it shows small
/// changes to the statements that timing cannot.
async fn wal_position(url: &str) -> Option<f64> {
    use sqlx::Connection;
    if !url.starts_with("postgres") {
        return None;
    }
    let mut conn = sqlx::PgConnection::connect(url).await.ok()?;
    sqlx::query_scalar::<_, f64>(
        "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::float8",
    )
    .fetch_one(&mut conn)
    .await
    .ok()
}

/// The machine's CPU time so far from /proc/stat, in ticks: all of it,
/// and the busy part (neither idle, nor waiting on I/O, nor stolen by the
/// host); zeros where there is none.
fn cpu_times() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    let at = |i: usize| ticks.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    let busy = at(0) + at(1) + at(2) + at(5) + at(6);
    (ticks.iter().take(8).sum(), busy)
}

/// This process's CPU time so far (user and system), in ticks from
/// /proc/self/stat; zero where there is none.
fn own_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may
    // hold spaces: utime and stime are the 14th and 15th of the line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse().ok())
        .collect();
    fields.iter().sum()
}

/// The busy share of the machine between two readings, and the busy CPU
/// time per job in microseconds, in words. The machine's speed drifts (the
/// host takes time back), so a drain's rate swings by a third from run to
/// run; the CPU time a job costs, all processes together, swings far less,
/// and on a machine the queue keeps busy it is what bounds the rate.
fn cpu_busy(before: (u64, u64), after: (u64, u64), own: u64, jobs: usize) -> String {
    let all = after.0.saturating_sub(before.0);
    let busy = after.1.saturating_sub(before.1);
    if all == 0 || jobs == 0 {
        return "busy: unknown".into();
    }
    // /proc/stat counts in USER_HZ, 100 per second on Linux.
    let per_job_us = |ticks: u64| ticks as f64 * 10_000.0 / jobs as f64;
    format!(
        "{:.0}% busy, {:.0} µs CPU/job of which the worker {:.0}",
        100.0 * busy as f64 / all as f64,
        per_job_us(busy),
        per_job_us(own)
    )
}

fn main() {
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let tmp = tempfile::tempdir().expect("temp dir");
    println!(
        "clerk queue benchmark: {} no-op jobs, prefetch {:?} (0: as many as the workers), {} cores",
        args.jobs,
        args.prefetch,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    rt.block_on(async {
        for backend in &args.backends {
            for &p in &args.prefetch {
                for &c in &args.workers {
                    throughput(backend, &args, c, p, tmp.path()).await;
                }
            }
            latency(backend, &args, tmp.path()).await;
        }
    });
}
