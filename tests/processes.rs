//! The `clerk` binary as users and operators run it: several processes on one
//! job database, killed with SIGKILL, stopped with SIGTERM, and the CLI's
//! exit codes. Each test runs on SQLite and on PostgreSQL.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use clerk::jobs::JobState;
use common::*;
use serde_json::json;

fn clerk(db_url: &str, bots: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_clerk"));
    c.env("DATABASE_URL", db_url)
        .env("CLERK_BOTS", bots)
        .env("RUST_LOG", "clerk=debug");
    c
}

fn spawn_worker(db_url: &str, bots: &Path, log: &Path, extra: &[&str]) -> Child {
    let log = std::fs::File::create(log).expect("log file");
    clerk(db_url, bots)
        .args([
            "worker",
            "--lease",
            "2s",
            "--heartbeat",
            "300ms",
            "--poll-interval",
            "100ms",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start clerk worker")
}

async fn wait_file(path: &Path, limit: Duration) {
    let start = Instant::now();
    while !path.exists() {
        assert!(start.elapsed() < limit, "{} never appeared", path.display());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

const BOOKING_BOT: &str = r#"
name = "booking"
[retry]
max_lost = 3
[[steps]]
name = "book"
kind = "command"
argv = ["sh", "-c", "echo $CLERK_ATTEMPT >> started; sleep 2; echo booked >> bookings; echo '{\"booking\": 1}'"]
"#;

/// kill -9 of a worker in the middle of a step: its lease expires, another
/// worker takes the job, and the booking happens exactly once.
async fn a_killed_worker_loses_its_job_to_another_exactly_once(kind: Kind) {
    let Setup {
        t,
        bots,
        registry,
        db,
    } = setup(kind, "booking", BOOKING_BOT).await;
    let id = db
        .enqueue(&[new_job(registry.get("booking").unwrap(), json!({}))])
        .await
        .unwrap()[0]
        .id;
    let mut a = spawn_worker(&t.url, &bots, &t.path().join("a.log"), &[]);
    wait_file(&bots.join("booking/started"), Duration::from_secs(20)).await;
    assert_eq!(db.state(id).await.unwrap(), Some(JobState::Running));
    signal(&a, libc::SIGKILL);
    a.wait().expect("reap worker a");

    let mut b = spawn_worker(&t.url, &bots, &t.path().join("b.log"), &[]);
    wait_for(&db, id, &[JobState::Succeeded], Duration::from_secs(30)).await;
    signal(&b, libc::SIGTERM);
    assert!(wait_exit(&mut b, Duration::from_secs(10)).success());
    // The killed worker's step died with it: one booking, by attempt 2.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let bookings = std::fs::read_to_string(bots.join("booking/bookings")).unwrap();
    assert_eq!(
        bookings.lines().count(),
        1,
        "booked {} times",
        bookings.lines().count()
    );
    let started = std::fs::read_to_string(bots.join("booking/started")).unwrap();
    assert_eq!(started.lines().collect::<Vec<_>>(), vec!["1", "2"]);
    let d = db.job(id).await.unwrap().unwrap();
    let outcomes: Vec<_> = d
        .attempts
        .iter()
        .map(|a| a.outcome.clone().unwrap())
        .collect();
    assert_eq!(outcomes, vec!["lost", "succeeded"]);
    assert_eq!(d.lost, 1);
    assert_ne!(d.attempts[0].worker, d.attempts[1].worker);
}

/// SIGTERM: running steps finish within the grace period, jobs not started
/// go back to the queue at once, and the process exits cleanly.
async fn sigterm_drains_running_jobs_and_gives_back_the_rest(kind: Kind) {
    let Setup {
        t,
        bots,
        registry,
        db,
    } = setup(kind, "booking", BOOKING_BOT).await;
    let bot = registry.get("booking").unwrap().clone();
    let ids = enqueue_ids(&db, &[new_job(&bot, json!({})), new_job(&bot, json!({}))]).await;
    // One slot, one prefetched: the second job is claimed but not started.
    let mut w = spawn_worker(
        &t.url,
        &bots,
        &t.path().join("w.log"),
        &["--concurrency", "1", "--prefetch", "1"],
    );
    wait_file(&bots.join("booking/started"), Duration::from_secs(20)).await;
    signal(&w, libc::SIGTERM);
    let status = wait_exit(&mut w, Duration::from_secs(15));
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(db.state(ids[0]).await.unwrap(), Some(JobState::Succeeded));
    let second = db.job(ids[1]).await.unwrap().unwrap();
    assert_eq!(second.summary.state, JobState::Queued);
    assert!(second.worker.is_none(), "lease not released");
    assert!(
        second
            .attempts
            .iter()
            .all(|a| a.outcome.as_deref() == Some("interrupted"))
    );
    let log = std::fs::read_to_string(t.path().join("w.log")).unwrap();
    assert!(log.contains("worker stopped"), "{log}");
}

/// Past the grace period a running step is interrupted and its job queued
/// again for another worker; the attempt does not count as an error.
async fn sigterm_past_the_grace_period_requeues_the_job(kind: Kind) {
    let Setup {
        t,
        bots,
        registry,
        db,
    } = setup(
        kind,
        "long",
        r#"
name = "long"
[[steps]]
name = "wait"
kind = "command"
argv = ["sh", "-c", "touch started; sleep 60"]
"#,
    )
    .await;
    let id = db
        .enqueue(&[new_job(registry.get("long").unwrap(), json!({}))])
        .await
        .unwrap()[0]
        .id;
    let mut w = spawn_worker(
        &t.url,
        &bots,
        &t.path().join("w.log"),
        &["--grace", "500ms"],
    );
    wait_file(&bots.join("long/started"), Duration::from_secs(20)).await;
    let stopped = Instant::now();
    signal(&w, libc::SIGTERM);
    assert!(wait_exit(&mut w, Duration::from_secs(10)).success());
    assert!(stopped.elapsed() < Duration::from_secs(8));
    let d = db.job(id).await.unwrap().unwrap();
    assert_eq!(d.summary.state, JobState::Queued);
    assert_eq!(d.errors, 0);
    assert_eq!(d.attempts[0].outcome.as_deref(), Some("interrupted"));
}

fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `clerk run --wait` reports the outcome in its exit code; a bad bot file
/// next to good ones does not stop `serve` from running the good ones.
async fn run_wait_exit_codes_with_serve(kind: Kind) {
    let t = TestDb::new(kind).await;
    let bots = write_bot(
        t.path(),
        "hello",
        r#"
name = "hello"
[[steps]]
name = "greet"
kind = "command"
argv = ["sh", "-c", "echo '{\"greeting\": \"hello\"}'"]
"#,
    );
    write_bot(
        t.path(),
        "broken",
        r#"
name = "broken"
[[steps]]
name = "x"
kind = "command"
argv = ["sh", "-c", "echo 'no such vendor' >&2; exit 1"]
failure = "business"
"#,
    );
    write_bot(t.path(), "typo", "name = \"typo\"\n[[stepz]]\n");
    let log = std::fs::File::create(t.path().join("serve.log")).unwrap();
    let mut serve = clerk(&t.url, &bots)
        .args(["serve", "--poll-interval", "100ms", "--no-web"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();

    let ok = clerk(&t.url, &bots)
        .args(["run", "hello", "--wait", "--timeout", "30s"])
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0), "{}", output_text(&ok));
    assert!(
        output_text(&ok).contains("\"greeting\": \"hello\""),
        "{}",
        output_text(&ok)
    );

    let bad = clerk(&t.url, &bots)
        .args(["run", "broken", "--wait", "--json"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(3), "{}", output_text(&bad));
    let detail: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(detail["state"], "failed");
    assert!(
        detail["last_error"]
            .as_str()
            .unwrap()
            .contains("no such vendor")
    );

    let unknown = clerk(&t.url, &bots).args(["run", "helo"]).output().unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        output_text(&unknown).contains("did you mean `hello`"),
        "{}",
        output_text(&unknown)
    );

    let list = clerk(&t.url, &bots)
        .args(["runs", "list", "--json"])
        .output()
        .unwrap();
    let jobs: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(jobs.as_array().unwrap().len(), 2);
    let id = detail["id"].as_i64().unwrap().to_string();
    let show = clerk(&t.url, &bots)
        .args(["runs", "show", &id])
        .output()
        .unwrap();
    let text = output_text(&show);
    assert!(
        text.contains("attempt 1  failed") && text.contains("no such vendor"),
        "{text}"
    );

    signal(&serve, libc::SIGTERM);
    assert!(wait_exit(&mut serve, Duration::from_secs(15)).success());
    let log = std::fs::read_to_string(t.path().join("serve.log")).unwrap();
    assert!(
        log.contains("typo/bot.toml"),
        "the bad bot was not reported: {log}"
    );
}

/// Two `clerk serve` processes on one database with a one-second interval
/// trigger: every slot while they ran became exactly one job.
async fn two_serve_processes_fire_each_slot_once(kind: Kind) {
    let t = TestDb::new(kind).await;
    let bots = write_bot(
        t.path(),
        "tick",
        r#"
name = "tick"
[[triggers]]
kind = "interval"
every = "1s"
[[steps]]
name = "s"
kind = "command"
argv = ["true"]
"#,
    );
    let start = |name: &str| {
        let log = std::fs::File::create(t.path().join(name)).unwrap();
        clerk(&t.url, &bots)
            .args(["serve", "--poll-interval", "100ms", "--no-web"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    };
    let mut a = start("a.log");
    let mut b = start("b.log");
    tokio::time::sleep(Duration::from_millis(4500)).await;
    signal(&a, libc::SIGTERM);
    signal(&b, libc::SIGTERM);
    assert!(wait_exit(&mut a, Duration::from_secs(10)).success());
    assert!(wait_exit(&mut b, Duration::from_secs(10)).success());
    let db = t.open().await;
    let jobs = db
        .list(&clerk::jobs::ListFilter {
            bot: Some("tick".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut slots: Vec<String> = jobs
        .iter()
        .map(|j| j.idempotency_key.clone().unwrap())
        .collect();
    slots.sort();
    let n = slots.len();
    slots.dedup();
    assert_eq!(slots.len(), n, "a slot fired twice");
    assert!((3..=6).contains(&n), "{n} slots fired in 4.5 s: {slots:?}");
    // Consecutive seconds, none skipped.
    let secs: Vec<i64> = jobs.iter().map(|j| j.created_at / 1000).collect();
    let (lo, hi) = (secs.iter().min().unwrap(), secs.iter().max().unwrap());
    assert!((hi - lo) as usize <= n, "gaps between slots: {slots:?}");
    for name in ["a.log", "b.log"] {
        let log = std::fs::read_to_string(t.path().join(name)).unwrap();
        assert!(
            !log.contains("ERROR") && !log.contains("scheduling failed"),
            "{log}"
        );
    }
}

both_backends!(
    two_serve_processes_fire_each_slot_once,
    a_killed_worker_loses_its_job_to_another_exactly_once,
    sigterm_drains_running_jobs_and_gives_back_the_rest,
    sigterm_past_the_grace_period_requeues_the_job,
    run_wait_exit_codes_with_serve,
);

#[test]
fn validate_reports_every_problem_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let bots = write_bot(
        dir.path(),
        "bad",
        "name = \"bad\"\n[retry]\nmax_atempts = 3\n[[steps]]\nname = \"s\"\nkind = \"command\"\n",
    );
    write_bot(
        dir.path(),
        "good",
        "name = \"good\"\nowners = [\"ops@example.com\"]\n[[steps]]\nname = \"s\"\nkind = \"command\"\nargv = [\"true\"]\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_clerk"))
        .args(["bots", "validate"])
        .arg(&bots)
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(
            "bad/bot.toml:3:1: unknown key `retry.max_atempts` (did you mean `max_attempts`?)"
        ),
        "{text}"
    );
    assert!(
        text.contains("bad/bot.toml:4:1: missing required key `argv` in step `s`"),
        "{text}"
    );
    assert!(
        text.contains("1 valid bot(s); 2 problem(s) in 1 file(s); 1 warning(s)"),
        "{text}"
    );
    // Owners with no way to reach them: the bot loads, with a warning.
    assert!(
        text.contains("warning: ") && text.contains("good/bot.toml: `owners` are mailed"),
        "{text}"
    );
}

/// Several processes that open a database file nobody created yet (a
/// `clerk serve` and a `clerk run` started together) all get in.
#[test]
fn processes_opening_a_new_sqlite_file_at_once_all_succeed() {
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let children: Vec<Child> = (0..6)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_clerk"))
                    .args(["runs", "list"])
                    .arg("--data-dir")
                    .arg(dir.path())
                    .env_remove("DATABASE_URL")
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// A command step starts with a clean environment: what programs need and
/// the job's identity, not the worker's own variables, where secrets
/// exported for clerk live.
#[test]
fn a_command_step_gets_no_secret_of_the_workers_environment() {
    let dir = tempfile::tempdir().unwrap();
    let bots = write_bot(
        dir.path(),
        "env",
        r#"
name = "env"
secrets = ["ERP_PASSWORD"]
[[steps]]
name = "show"
kind = "command"
env = { GIVEN = "${secret:ERP_PASSWORD}" }
argv = ["python3", "-c", "import json, os; print(json.dumps({'names': sorted(os.environ)}))"]
"#,
    );
    let url = format!("sqlite://{}", dir.path().join("clerk.db").display());
    let run = Command::new(env!("CARGO_BIN_EXE_clerk"))
        .args(["run", "env", "--json", "--database", &url])
        .arg("--bots")
        .arg(&bots)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", output_text(&run));
    let serve = Command::new(env!("CARGO_BIN_EXE_clerk"))
        .args([
            "serve",
            "--no-web",
            "--poll-interval",
            "100ms",
            "--database",
            &url,
        ])
        .arg("--bots")
        .arg(&bots)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("DATABASE_URL")
        .env("ERP_PASSWORD", "hunter2-from-the-environment")
        .env("AWS_SECRET_ACCESS_KEY", "not-for-steps")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let serve = common::Stopped([serve]);
    let show = |id: &str| {
        Command::new(env!("CARGO_BIN_EXE_clerk"))
            .args(["runs", "show", id, "--json", "--database", &url])
            .env_remove("DATABASE_URL")
            .output()
            .unwrap()
    };
    let start = std::time::Instant::now();
    let job = loop {
        let out = show("1");
        let job: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if job["state"] == "succeeded" {
            break job;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            output_text(&out)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    drop(serve);
    let names = job["output"]["names"].to_string();
    for kept in ["PATH", "HOME", "CLERK_JOB_ID", "CLERK_BOT", "GIVEN"] {
        assert!(
            names.contains(&format!("\"{kept}\"")),
            "{kept} missing: {names}"
        );
    }
    for gone in ["ERP_PASSWORD", "AWS_SECRET_ACCESS_KEY", "DATABASE_URL"] {
        assert!(
            !names.contains(&format!("\"{gone}\"")),
            "{gone} reached the step: {names}"
        );
    }
}

/// What clerk writes is its user's alone: the data folder 0700, the
/// database and a stored document 0600; a drop folder it creates keeps the
/// user's own mode, so others can still drop files into it. A secrets file
/// others can read is warned about. The audit trail names the OS user of
/// the process, whatever `$USER` says.
#[test]
fn files_are_the_users_alone_and_the_audit_names_the_os_user() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let bots = write_bot(
        dir.path(),
        "private",
        r#"
name = "private"
[[triggers]]
kind = "folder"
path = "inbox"
patterns = ["*.txt"]
settle = "200ms"
rescan = "1s"
[[steps]]
name = "read"
kind = "command"
argv = ["sh", "-c", "cat > /dev/null; echo '{}'"]
"#,
    );
    let secrets = dir.path().join("secrets.env");
    std::fs::write(&secrets, "UNUSED=x\n").unwrap();
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o644)).unwrap();
    let data = dir.path().join("data");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let clerk = || {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg("umask 022 && exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_clerk"))
            .env_remove("DATABASE_URL")
            .env("CLERK_BOTS", &bots)
            .env("CLERK_DATA_DIR", &data)
            .env("USER", "mallory")
            .env("LOGNAME", "mallory");
        c
    };
    let log = dir.path().join("serve.log");
    let serve = clerk()
        .args(["serve", "--no-web", "--poll-interval", "100ms", "--secrets"])
        .arg(&secrets)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let serve = common::Stopped([serve]);
    let inbox = bots.join("private/inbox");
    let start = Instant::now();
    while !inbox.is_dir() {
        assert!(start.elapsed() < Duration::from_secs(30), "no inbox made");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::write(
        inbox.join("invoice.txt"),
        "IBAN DE02 1203 0000 0000 2020 51",
    )
    .unwrap();
    let show = |id: &str| {
        let out = clerk()
            .args(["runs", "show", id, "--json"])
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()
    };
    while show("1")["state"] != "succeeded" {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let run = clerk().args(["run", "private", "--json"]).output().unwrap();
    assert!(run.status.success(), "{}", output_text(&run));
    drop(serve);

    assert_eq!(mode(&data), 0o700, "the data folder");
    assert_eq!(mode(&data.join("clerk.db")), 0o600, "the database");
    assert_eq!(
        mode(&inbox),
        0o755,
        "the drop folder keeps the user's umask"
    );
    let processed = inbox.join("processed");
    assert_eq!(mode(&processed), 0o700);
    let stored: Vec<_> = std::fs::read_dir(&processed)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(mode(&stored[0]), 0o600, "the stored document");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("the secrets file can be read by other users"),
        "{log}"
    );

    // A database made readable by others is warned about.
    std::fs::set_permissions(
        data.join("clerk.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let list = clerk().args(["runs", "list"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&list.stderr)
            .contains("the job database can be read by other users"),
        "{}",
        output_text(&list)
    );

    let me = Command::new("id").arg("-un").output().unwrap();
    let me = String::from_utf8_lossy(&me.stdout).trim().to_string();
    assert!(!me.is_empty() && me != "mallory");
    assert_eq!(show("2")["created_by"], format!("cli:{me}"));
}
