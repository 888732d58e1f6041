//! The figures of operations over a long history, on SQLite and
//! PostgreSQL: a year of finished jobs (1,000,000 by default, a few
//! thousand of them today), then the time of the first roll-up, of the
//! dashboard's figures for 30 and 365 days, of the bots page's week, and
//! of a `/metrics` scrape (its first, and the following ones, which read
//! only the jobs of the last minutes). Prints figures; asserts nothing.
//!
//!   cargo bench --bench operations
//!   cargo bench --bench operations -- --jobs 100000 --today 2000 --rounds 10 --backends sqlite

mod common;

use std::path::Path;
use std::time::Instant;

use clerk::jobs::now_ms;
use clerk::stats::{self, Period, metrics};

struct Args {
    jobs: i64,
    today: i64,
    rounds: usize,
    backends: Vec<String>,
    pg: String,
}

fn parse_args() -> Args {
    let mut a = Args {
        jobs: 1_000_000,
        today: 3_000,
        rounds: 10,
        backends: vec!["sqlite".into(), "postgres".into()],
        pg: std::env::var("CLERK_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().expect("a value after the flag");
        match arg.as_str() {
            "--jobs" => a.jobs = value().parse().expect("a number"),
            "--today" => a.today = value().parse().expect("a number"),
            "--rounds" => a.rounds = value().parse().expect("a number"),
            "--backends" => a.backends = value().split(',').map(str::to_string).collect(),
            "--pg" => a.pg = value(),
            // `cargo bench` passes --bench.
            _ => {}
        }
    }
    a
}

/// The generated history, in SQL both back ends run: job `i` of bot
/// `bot-(i % 3)`, created over the year before today (the last `today`
/// jobs today), every 20th a business error, every 50th lost, every 10th
/// reviewed; three events each (five when reviewed) and one step run.
fn history_sql(backend: &str, n: i64, today: i64, now: i64) -> Vec<String> {
    let day = 86_400_000i64;
    let start = (now / day - 365) * day;
    let old = n - today;
    let today_start = now / day * day;
    let seq = if backend == "postgres" {
        format!("(SELECT i::BIGINT AS i FROM generate_series(1, {n}) AS g(i)) AS seq")
    } else {
        format!(
            "(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) SELECT i FROM s) AS seq"
        )
    };
    // Creation time: spread over the year, or over today so far.
    let created = format!(
        "(CASE WHEN i <= {old} THEN {start} + (i * {span} / {old}) ELSE {today_start} + ((i - {old}) * {tspan} / {today}) END)",
        span = 365 * day - day,
        tspan = (now - today_start - 60_000).max(1),
    );
    let state =
        "(CASE WHEN i % 20 = 0 THEN 'failed' WHEN i % 50 = 1 THEN 'dead' ELSE 'succeeded' END)";
    let finished = format!(
        "({created} + 5000 + (i % 7) * 1000 + (CASE WHEN i % 10 = 3 THEN 600000 ELSE 0 END))"
    );
    // PostgreSQL's ids are generated always; the history brings its own.
    let overriding = if backend == "postgres" {
        "OVERRIDING SYSTEM VALUE"
    } else {
        ""
    };
    let jobs = format!(
        "INSERT INTO jobs (id, bot, state, input, max_attempts, max_lost, run_after, created_by, created_at, updated_at, started_at, finished_at, attempt, last_error)
         {overriding} SELECT i, 'bot-' || (i % 3), {state}, '{{}}', 3, 3, {created}, 'folder:bench', {created}, {finished}, {created} + 2000, {finished}, 1,
                CASE WHEN i % 20 = 0 THEN 'no template matched invoice ' || i WHEN i % 50 = 1 THEN 'lease expired' ELSE NULL END
         FROM {seq}"
    );
    // Stored events, as an older release wrote every one of them (on
    // PostgreSQL, `events` is a view over these and the attempts).
    let events = if backend == "postgres" {
        "job_events"
    } else {
        "events"
    };
    let event = |at: &str, actor: &str, from: &str, to: &str, filter: &str| {
        format!(
            "INSERT INTO {events} (job_id, at, actor, from_state, to_state, reason)
             SELECT i, {at}, {actor}, {from}, {to}, 'bench' FROM {seq} WHERE {filter}"
        )
    };
    let end_actor =
        "(CASE WHEN i % 50 = 1 AND i % 20 <> 0 THEN 'rescuer:bench' ELSE 'worker:bench' END)";
    vec![
        jobs,
        event(&created, "'folder:bench'", "NULL", "'queued'", "1 = 1"),
        event(&format!("{created} + 2000"), "'worker:bench'", "'queued'", "'running'", "1 = 1"),
        event(&format!("{created} + 3000"), "'worker:bench'", "'running'", "'waiting_review'", "i % 10 = 3"),
        event(&format!("{finished} - 3000"), "'ana'", "'waiting_review'", "'queued'", "i % 10 = 3"),
        event(&format!("{finished} - 2000"), "'worker:bench'", "'queued'", "'running'", "i % 10 = 3"),
        event(&finished, end_actor, "'running'", state, "1 = 1"),
        format!(
            "INSERT INTO step_runs (job_id, attempt, step_index, step_name, started_at, finished_at, outcome)
             SELECT i, 1, 0, 'work', {finished} - 1500, {finished}, CASE WHEN i % 20 = 0 THEN 'failed' ELSE 'succeeded' END FROM {seq}"
        ),
    ]
}

async fn seed(backend: &str, url: &str, statements: &[String]) {
    for sql in statements {
        if backend == "postgres" {
            let pool = sqlx::PgPool::connect(url).await.expect("connect");
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&pool)
                .await
                .expect("seed");
            pool.close().await;
        } else {
            let path = url.trim_start_matches("sqlite://");
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{path}"))
                .await
                .expect("connect");
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&pool)
                .await
                .expect("seed");
            pool.close().await;
        }
    }
    if backend == "postgres" {
        // What autovacuum would have done on a table that grew over a year.
        let pool = sqlx::PgPool::connect(url).await.expect("connect");
        sqlx::query("ANALYZE")
            .execute(&pool)
            .await
            .expect("analyze");
        pool.close().await;
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn summary(mut xs: Vec<f64>) -> String {
    xs.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| xs[((xs.len() as f64 - 1.0) * q).round() as usize];
    format!(
        "p50 {:7.1} ms  p95 {:7.1} ms  max {:7.1} ms",
        at(0.5),
        at(0.95),
        at(1.0)
    )
}

async fn timed<F, Fut, T>(rounds: usize, mut f: F) -> (String, T)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut times = Vec::with_capacity(rounds);
    let mut last = None;
    for _ in 0..rounds {
        let t = Instant::now();
        last = Some(f().await);
        times.push(ms(t));
    }
    (summary(times), last.expect("at least one round"))
}

async fn bench(backend: &str, a: &Args, tmp: &Path) {
    let now = now_ms();
    let (db, url) = common::fresh_db(backend, &a.pg, tmp, "clerk_bench_operations").await;
    let t = Instant::now();
    seed(backend, &url, &history_sql(backend, a.jobs, a.today, now)).await;
    println!(
        "{backend}: {} finished jobs ({} today) written in {:.1} s",
        a.jobs,
        a.today,
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let rolled = stats::rollup(db.as_ref(), now).await.expect("roll up");
    println!(
        "{backend}: first roll-up of {} days ({} settled) in {:.1} s",
        rolled.days,
        rolled.settled,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    stats::rollup(db.as_ref(), now).await.expect("roll up");
    println!("{backend}: a later roll-up (today only) in {:.1} ms", ms(t));

    // Where a day not settled yet (today) spends its time.
    let day_ms = 86_400_000;
    let (from, to) = (now / day_ms * day_ms, now / day_ms * day_ms + day_ms);
    let t = Instant::now();
    let facts = db.finished_facts(from, to).await.expect("facts");
    let t_facts = ms(t);
    let t = Instant::now();
    let steps = db.step_facts(from, to).await.expect("steps");
    let t_steps = ms(t);
    let t = Instant::now();
    db.received(from, to).await.expect("received");
    let t_received = ms(t);
    let t = Instant::now();
    stats::compute_day(db.as_ref(), now / day_ms)
        .await
        .expect("day");
    let t_day = ms(t);
    let t = Instant::now();
    db.live().await.expect("live");
    println!(
        "{backend}: today ({} jobs, {} step runs): facts {t_facts:.1} ms, steps {t_steps:.1} ms, received {t_received:.1} ms, the whole day {t_day:.1} ms; the queue now {:.1} ms",
        facts.len(),
        steps.len(),
        ms(t)
    );
    let known = vec![
        "bot-0".to_string(),
        "bot-1".to_string(),
        "bot-2".to_string(),
    ];
    for days in [1, 30, 365] {
        let period = Period::last_days(days, now);
        let (figures, o) = timed(a.rounds, || {
            stats::overview(db.as_ref(), period, None, &known, now)
        })
        .await;
        let o = o.expect("overview");
        println!(
            "{backend}: dashboard, {days:>3} days: {figures}  ({} in, STP {:.1}%)",
            o.overall.figures.documents_in,
            o.overall.figures.straight_through_rate.unwrap_or(0.0) * 100.0
        );
    }
    let cache = tokio::sync::Mutex::new(metrics::CountedTotals::default());
    let scrape = || async {
        let totals = metrics::totals(db.as_ref(), &cache, now)
            .await
            .expect("totals");
        let snapshot = metrics::Snapshot {
            totals,
            live: db.live().await.expect("live"),
            paused: db.paused().await.expect("paused"),
            bots: known.clone(),
            now,
            ..Default::default()
        };
        snapshot.render().len()
    };
    let t = Instant::now();
    let size = scrape().await;
    println!(
        "{backend}: /metrics, first scrape: {:.1} ms ({size} bytes)",
        ms(t)
    );
    let (figures, _) = timed(a.rounds, scrape).await;
    println!("{backend}: /metrics, later scrapes: {figures}");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = parse_args();
    let tmp = tempfile::tempdir().expect("temp dir");
    for backend in &a.backends {
        bench(backend, &a, tmp.path()).await;
    }
}
