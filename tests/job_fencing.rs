//! Leases that hold under faults: a heartbeat renews only the attempts its
//! process holds; a worker that cannot reach the database stops its steps
//! before its lease ends, so no other worker runs the job at the same
//! time; and on PostgreSQL leases are timed by the database's clock, so a
//! node whose clock is off neither loses its jobs to a rescuer nor keeps
//! them past its death.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clerk::jobs::{BotClaim, JobState};
use common::proxy::CuttingProxy;
use common::*;
use serde_json::json;

const LONG: Duration = Duration::from_secs(60);

fn claim_of(name: &str) -> Vec<BotClaim> {
    vec![BotClaim {
        name: name.into(),
        concurrency: None,
    }]
}

/// A process that gave up on a job (or a process of the same name before
/// it) does not keep the job's lease alive: the heartbeat names the
/// attempts it holds, and only those are renewed.
async fn a_heartbeat_renews_only_the_attempts_it_holds(kind: Kind) {
    let s = setup(
        kind,
        "b",
        "name = \"b\"\n[[steps]]\nname = \"s\"\nkind = \"command\"\nargv = [\"true\"]\n",
    )
    .await;
    let bot = s.registry.get("b").unwrap().clone();
    let ids = enqueue_ids(&s.db, &[new_job(&bot, json!({})), new_job(&bot, json!({}))]).await;
    let short = Duration::from_millis(800);
    let held = s.db.claim("w", &claim_of("b"), 2, short).await.unwrap();
    assert_eq!(held.len(), 2);
    let keep = held.iter().find(|j| j.id == ids[0]).unwrap();
    let beat =
        s.db.heartbeat("w", &[(keep.id, keep.attempt)], Duration::from_secs(60))
            .await
            .unwrap();
    assert!(beat.gone.is_empty() && beat.cancel.is_empty(), "{beat:?}");
    // A heartbeat naming a stale attempt of a held job renews nothing and
    // says it is gone.
    let stale =
        s.db.heartbeat("w", &[(keep.id, keep.attempt + 1)], Duration::from_secs(60))
            .await
            .unwrap();
    assert_eq!(stale.gone, [keep.id]);
    tokio::time::sleep(short + Duration::from_millis(300)).await;
    let rescued = s.db.rescue_expired("rescuer:test", 10).await.unwrap();
    let rescued: Vec<i64> = rescued.iter().map(|r| r.id).collect();
    assert_eq!(rescued, [ids[1]], "only the job not renewed is rescued");
    assert_eq!(s.db.state(ids[0]).await.unwrap(), Some(JobState::Running));
}

/// A step that records its runs in `dir`: the first run writes its shell's
/// pid and sleeps long; later runs succeed at once.
fn slow_first_run(dir: &Path) -> String {
    let dir = dir.display();
    format!(
        r#"
name = "slow"
[retry]
max_attempts = 3
max_lost = 3
[[steps]]
name = "work"
kind = "command"
timeout = "2m"
argv = ["sh", "-c", "if [ -e {dir}/runs ]; then echo again >> {dir}/runs; exit 0; fi; echo first > {dir}/runs; echo $$ > {dir}/pid; sleep 40; echo finished >> {dir}/runs"]
"#
    )
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// The database URL through `port` instead of PostgreSQL's own.
fn through(url: &str, port: u16) -> String {
    let (head, tail) = url.split_once('@').expect("user@host in the URL");
    let (_, path) = tail.split_once('/').expect("a database in the URL");
    format!("{head}@127.0.0.1:{port}/{path}")
}

fn pg_port() -> u16 {
    let admin = pg_admin_url();
    admin
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next()?.parse().ok())
        .unwrap_or(5432)
}

/// A worker cut off from the database stops its step before its lease
/// ends; the job is rescued and run once more elsewhere, and the cut-off
/// worker, back on the network, commits nothing for the attempt it lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_cut_off_stops_its_steps_before_its_lease_ends() {
    let t = TestDb::new(Kind::Postgres).await;
    let bots = write_bot(t.path(), "slow", &slow_first_run(t.path()));
    let registry = load_bots(&bots);
    let db = t.open().await;
    let id = enqueue_ids(&db, &[new_job(registry.get("slow").unwrap(), json!({}))]).await[0];

    let proxy = CuttingProxy::start(pg_port());
    let cut_off = clerk::jobs::connect(&through(&t.url, proxy.port))
        .await
        .unwrap();
    let mut cfg = fast_config(1);
    cfg.lease = Duration::from_secs(3);
    let a = RunningWorker::start(cut_off, registry.clone(), cfg);
    let pid_file = t.path().join("pid");
    let start = Instant::now();
    while !pid_file.exists() {
        assert!(start.elapsed() < LONG, "the step never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    proxy.down();
    let cut = Instant::now();
    while alive(pid) {
        assert!(
            cut.elapsed() < Duration::from_secs(3),
            "the step still runs {:?} after the worker lost the database; its lease has ended",
            cut.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Another worker rescues the job once the lease has ended and runs it.
    let b = RunningWorker::start(db.clone(), registry.clone(), fast_config(1));
    wait_for(&db, id, &[JobState::Succeeded], LONG).await;
    proxy.up();
    tokio::time::sleep(Duration::from_secs(1)).await;
    b.shutdown().await;
    a.shutdown().await;
    let runs = std::fs::read_to_string(t.path().join("runs")).unwrap();
    assert_eq!(runs, "first\nagain\n", "the first run was not stopped");
    let detail = db.job(id).await.unwrap().unwrap();
    let outcomes: Vec<Option<String>> = detail.attempts.iter().map(|a| a.outcome.clone()).collect();
    assert_eq!(
        outcomes,
        [Some("lost".into()), Some("succeeded".into())],
        "{:?}",
        detail.attempts
    );
    assert_eq!(detail.summary.state, JobState::Succeeded);
}

/// The preload library that fakes a process's clock (Debian's
/// `libfaketime`, installed by scripts/setup.sh).
fn faketime_library() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("faketime/libfaketime.so.1"))
        .chain(std::iter::once(PathBuf::from(
            "/usr/lib/faketime/libfaketime.so.1",
        )))
        .find(|p| p.exists());
    found.expect("libfaketime is needed: run scripts/setup.sh")
}

/// A worker whose clock is an hour behind the others: its leases are
/// timed by the database, so the other nodes' rescuers leave its running
/// job alone and the job runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_clock_is_off_keeps_its_leases_by_the_database_clock() {
    let t = TestDb::new(Kind::Postgres).await;
    let runs = t.path().join("runs");
    let bots = write_bot(
        t.path(),
        "slow",
        &format!(
            r#"
name = "slow"
[retry]
max_lost = 3
[[steps]]
name = "work"
kind = "command"
argv = ["sh", "-c", "echo run >> {}; sleep 3"]
"#,
            runs.display()
        ),
    );
    let registry = load_bots(&bots);
    let db = t.open().await;
    let id = enqueue_ids(&db, &[new_job(registry.get("slow").unwrap(), json!({}))]).await[0];
    let log = std::fs::File::create(t.path().join("worker.log")).unwrap();
    let behind = std::process::Command::new(env!("CARGO_BIN_EXE_clerk"))
        .args([
            "worker",
            "-c",
            "1",
            "--lease",
            "2s",
            "--poll-interval",
            "100ms",
        ])
        .args(["--database", &t.url])
        .arg("--bots")
        .arg(&bots)
        .env_remove("DATABASE_URL")
        .env("LD_PRELOAD", faketime_library())
        .env("FAKETIME", "-1h")
        .env("DONT_FAKE_MONOTONIC", "1")
        .stderr(log)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Stopped however the test ends.
    let behind = common::Stopped([behind]);
    // While it runs, a rescuer on a node with the right time looks for
    // expired leases again and again.
    let start = Instant::now();
    let mut rescued = Vec::new();
    loop {
        rescued.extend(db.rescue_expired("rescuer:test", 10).await.unwrap());
        let state = db.state(id).await.unwrap();
        if state == Some(JobState::Succeeded) {
            break;
        }
        assert!(
            start.elapsed() < LONG,
            "job {id} stayed {state:?}: {}",
            std::fs::read_to_string(t.path().join("worker.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(behind);
    assert!(
        rescued.is_empty(),
        "a live lease was taken as expired: {rescued:?}"
    );
    assert_eq!(std::fs::read_to_string(&runs).unwrap(), "run\n");
}

both_backends!(a_heartbeat_renews_only_the_attempts_it_holds);
