//! The job database and worker, end to end, on a real SQLite file and on the
//! real PostgreSQL: every test runs against both.

mod common;

use std::time::Duration;

use clerk::jobs::{CancelOutcome, JobState, ListFilter, NewJob, Outcome};
use clerk::scheduler::Scheduler;
use common::*;
use serde_json::json;

const LONG: Duration = Duration::from_secs(20);

/// A command step that fails transiently on its first two attempts.
async fn transient_failures_are_retried_then_succeed(kind: Kind) {
    let t = TestDb::new(kind).await;
    let bots = write_bot(
        t.path(),
        "flaky",
        r#"
name = "flaky"
[retry]
max_attempts = 5
backoff = "50ms"
jitter = 0.0
[[steps]]
name = "call"
kind = "command"
argv = ["./flaky.sh"]
"#,
    );
    write_script(
        t.path(),
        "flaky",
        "flaky.sh",
        r#"if [ "$CLERK_ATTEMPT" -lt 3 ]; then echo "ERP timeout" >&2; exit 75; fi; echo '{"booked": true}'"#,
    );
    let registry = load_bots(&bots);
    let db = t.open().await;
    let bot = registry.get("flaky").unwrap().clone();
    let id = db.enqueue(&[new_job(&bot, json!({}))]).await.unwrap()[0].id;
    let w = RunningWorker::start(db.clone(), registry, fast_config(2));
    wait_for(&db, id, &[JobState::Succeeded], LONG).await;
    w.shutdown().await;

    let d = db.job(id).await.unwrap().unwrap();
    assert_eq!(d.summary.attempt, 3);
    assert_eq!(d.errors, 2);
    let outcomes: Vec<_> = d
        .attempts
        .iter()
        .map(|a| a.outcome.clone().unwrap())
        .collect();
    assert_eq!(outcomes, vec!["error", "error", "succeeded"]);
    assert!(
        d.attempts[0]
            .error
            .as_deref()
            .unwrap()
            .contains("ERP timeout")
    );
    assert_eq!(d.output, Some(json!({"booked": true})));
    // The earlier attempts' errors stay with them; the job that succeeded
    // shows none (as `clerk runs list` would print it).
    assert_eq!(d.summary.last_error, None);
    // Every transition is in the audit trail.
    let transitions: Vec<_> = d.events.iter().map(|e| e.to_state.as_str()).collect();
    assert_eq!(
        transitions,
        vec![
            "queued",
            "running",
            "queued",
            "running",
            "queued",
            "running",
            "succeeded"
        ]
    );
}

async fn exhausted_attempts_make_the_job_dead(kind: Kind) {
    let Setup {
        t: _t,
        bots: _,
        registry,
        db,
    } = setup(
        kind,
        "down",
        r#"
name = "down"
[retry]
max_attempts = 3
backoff = "20ms"
[[steps]]
name = "call"
kind = "command"
argv = ["sh", "-c", "echo 'connection refused' >&2; exit 1"]
failure = "transient"
"#,
    )
    .await;
    let id = db
        .enqueue(&[new_job(registry.get("down").unwrap(), json!({}))])
        .await
        .unwrap()[0]
        .id;
    let w = RunningWorker::start(db.clone(), registry, fast_config(1));
    wait_for(&db, id, &[JobState::Dead], LONG).await;
    w.shutdown().await;
    let d = db.job(id).await.unwrap().unwrap();
    assert_eq!(d.summary.attempt, 3);
    assert!(
        d.summary
            .last_error
            .as_deref()
            .unwrap()
            .contains("connection refused")
    );
    assert!(
        d.events
            .last()
            .unwrap()
            .reason
            .contains("attempts exhausted (3 of 3)")
    );
}

async fn business_errors_fail_without_retry(kind: Kind) {
    let Setup {
        t: _t,
        bots: _,
        registry,
        db,
    } = setup(
        kind,
        "strict",
        r#"
name = "strict"
[retry]
max_attempts = 5
backoff = "20ms"
[[steps]]
name = "check"
kind = "command"
argv = ["sh", "-c", "echo 'unknown vendor ACME' >&2; exit 3"]
failure = "business"
"#,
    )
    .await;
    let id = db
        .enqueue(&[new_job(registry.get("strict").unwrap(), json!({}))])
        .await
        .unwrap()[0]
        .id;
    let w = RunningWorker::start(db.clone(), registry, fast_config(1));
    wait_for(&db, id, &[JobState::Failed], LONG).await;
    // Give a wrong retry every chance to happen.
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.shutdown().await;
    let d = db.job(id).await.unwrap().unwrap();
    assert_eq!(d.summary.state, JobState::Failed);
    assert_eq!(d.summary.attempt, 1);
    assert_eq!(d.attempts[0].outcome.as_deref(), Some("failed"));
    assert!(
        d.summary
            .last_error
            .as_deref()
            .unwrap()
            .contains("unknown vendor ACME")
    );
}

/// Step one counts its runs in a file; step two fails once. The retry must
/// start at step two, with step one's output.
async fn a_retry_resumes_at_the_failed_step(kind: Kind) {
    let Setup {
        t: _t,
        bots,
        registry,
        db,
    } = setup(
        kind,
        "twostep",
        r#"
name = "twostep"
[retry]
backoff = "20ms"
[[steps]]
name = "ocr"
kind = "command"
argv = ["sh", "-c", "echo run >> ocr-runs.txt; echo '{\"total\": \"61.25\"}'"]
[[steps]]
name = "book"
kind = "command"
argv = ["sh", "-c", "if [ \"$CLERK_ATTEMPT\" = 1 ]; then exit 75; fi; cat"]
"#,
    )
    .await;
    let id = db
        .enqueue(&[new_job(
            registry.get("twostep").unwrap(),
            json!({"file": "inv-1.pdf"}),
        )])
        .await
        .unwrap()[0]
        .id;
    let w = RunningWorker::start(db.clone(), registry, fast_config(1));
    wait_for(&db, id, &[JobState::Succeeded], LONG).await;
    w.shutdown().await;

    let runs = std::fs::read_to_string(bots.join("twostep/ocr-runs.txt")).unwrap();
    assert_eq!(runs.lines().count(), 1, "the OCR step ran again on retry");
    let d = db.job(id).await.unwrap().unwrap();
    assert_eq!(d.attempts.len(), 2);
    let second: Vec<_> = d.attempts[1]
        .steps
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(second, vec!["book"]);
    // The book step echoed its stdin: it saw the input and step one's output.
    let out = d.output.unwrap();
    assert_eq!(out["input"]["file"], "inv-1.pdf");
    assert_eq!(out["steps"]["ocr"]["total"], "61.25");
    assert_eq!(out["job"]["attempt"], 2);
}

async fn idempotency_keys_return_the_existing_job(kind: Kind) {
    let t = TestDb::new(kind).await;
    let db = t.open().await;
    let job = |key: Option<&str>| NewJob {
        bot: "b".into(),
        input: json!({}),
        idempotency_key: key.map(String::from),
        max_attempts: 3,
        max_lost: 3,
        run_after: None,
        created_by: "test".into(),
        refused: None,
    };
    let first = db
        .enqueue(&[job(Some("INBOX:7:42")), job(None)])
        .await
        .unwrap();
    assert!(first.iter().all(|e| e.created));
    let again = db
        .enqueue(&[job(None), job(Some("INBOX:7:42")), job(Some("INBOX:7:43"))])
        .await
        .unwrap();
    assert!(again[0].created);
    assert_eq!(again[1].id, first[0].id);
    assert!(!again[1].created);
    assert!(again[2].created);
    // Ids come back in the order the jobs were given.
    assert!(first[1].id < again[0].id && again[0].id < again[2].id);
    // The same key under another bot is another job.
    let mut other = job(Some("INBOX:7:42"));
    other.bot = "c".into();
    assert!(db.enqueue(&[other]).await.unwrap()[0].created);
}

async fn cancel_a_queued_and_a_running_job(kind: Kind) {
    let Setup {
        t: _t,
        bots,
        registry,
        db,
    } = setup(
        kind,
        "slow",
        r#"
name = "slow"
[[steps]]
name = "wait"
kind = "command"
argv = ["sh", "-c", "touch started; sleep 30; touch finished"]
"#,
    )
    .await;
    let bot = registry.get("slow").unwrap().clone();
    let queued = db.enqueue(&[new_job(&bot, json!({}))]).await.unwrap()[0].id;
    assert_eq!(
        db.cancel(queued, "test").await.unwrap(),
        CancelOutcome::Cancelled
    );
    assert_eq!(db.state(queued).await.unwrap(), Some(JobState::Cancelled));

    let running = db.enqueue(&[new_job(&bot, json!({}))]).await.unwrap()[0].id;
    let w = RunningWorker::start(db.clone(), registry, fast_config(1));
    wait_for(&db, running, &[JobState::Running], LONG).await;
    let marker = bots.join("slow/started");
    for _ in 0..100 {
        if marker.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The claim is in the trail while the attempt runs.
    let claim = db.job(running).await.unwrap().unwrap().events;
    assert_eq!(
        claim.last().map(|e| e.reason.as_str()),
        Some("claimed, attempt 1"),
        "{claim:#?}"
    );
    assert_eq!(
        db.cancel(running, "test").await.unwrap(),
        CancelOutcome::Requested
    );
    wait_for(
        &db,
        running,
        &[JobState::Cancelled],
        Duration::from_secs(10),
    )
    .await;
    w.shutdown().await;
    assert!(
        !bots.join("slow/finished").exists(),
        "the step's process was not stopped"
    );
    let d = db.job(running).await.unwrap().unwrap();
    assert_eq!(d.attempts[0].outcome.as_deref(), Some("cancelled"));
    // The trail in the order it happened, the request made while the
    // attempt ran between the attempt's start and its end.
    let worker = d.attempts[0].worker.as_str();
    let trail: Vec<_> = d
        .events
        .iter()
        .map(|e| {
            (
                e.actor.as_str(),
                e.from_state.as_deref(),
                e.to_state.as_str(),
            )
        })
        .collect();
    assert_eq!(
        trail,
        vec![
            ("test", None, "queued"),
            (worker, Some("queued"), "running"),
            ("test", Some("running"), "running"),
            (worker, Some("running"), "cancelled"),
        ],
        "{:#?}",
        d.events
    );
    // A finished job cannot be cancelled, and says why.
    let err = db.cancel(running, "test").await.unwrap_err().to_string();
    assert!(err.contains("cancelled"), "{err}");
    // The queued one never ran.
    assert_eq!(db.job(queued).await.unwrap().unwrap().summary.attempt, 0);
}

/// A worker whose lease expires (it stopped heart-beating) loses the job to
/// another worker; the late result of the first is discarded.
async fn an_expired_lease_is_rescued_and_recorded_as_lost(kind: Kind) {
    let Setup {
        t: _t,
        bots: _,
        registry,
        db,
    } = setup(
        kind,
        "quick",
        r#"
name = "quick"
[retry]
max_lost = 2
[[steps]]
name = "s"
kind = "command"
argv = ["sh", "-c", "echo ok"]
"#,
    )
    .await;
    let bot = registry.get("quick").unwrap().clone();
    let id = db.enqueue(&[new_job(&bot, json!({}))]).await.unwrap()[0].id;
    // A worker claims and then vanishes without a heartbeat.
    let claimed = db
        .claim(
            "ghost",
            &[clerk::jobs::BotClaim {
                name: "quick".into(),
                concurrency: None,
            }],
            10,
            Duration::from_millis(100),
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rescued = db.rescue_expired("test", 10).await.unwrap();
    assert_eq!(rescued.len(), 1);
    assert_eq!(rescued[0].state, JobState::Queued);
    // The ghost comes back and tries to finish: refused.
    let late = clerk::jobs::Completion {
        job_id: id,
        attempt: claimed[0].attempt,
        state: JobState::Succeeded,
        attempt_outcome: Outcome::Succeeded,
        run_after: 0,
        errors: 0,
        next_step: 1,
        error: None,
        output: None,
        review: None,
        reason: "late".into(),
        steps: vec![],
    };
    assert_eq!(db.complete("ghost", &[late]).await.unwrap(), vec![false]);
    // Lost twice in a row makes it dead (max_lost = 2).
    db.claim(
        "ghost",
        &[clerk::jobs::BotClaim {
            name: "quick".into(),
            concurrency: None,
        }],
        10,
        Duration::from_millis(50),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let rescued = db.rescue_expired("test", 10).await.unwrap();
    assert_eq!(rescued[0].state, JobState::Dead);
    let d = db.job(id).await.unwrap().unwrap();
    let outcomes: Vec<_> = d
        .attempts
        .iter()
        .map(|a| a.outcome.clone().unwrap())
        .collect();
    assert_eq!(outcomes, vec!["lost", "lost"]);
    assert_eq!(d.lost, 2);
    // Each attempt's start by the worker that claimed it, its end by the
    // rescuer that found it lost.
    let trail: Vec<_> = d
        .events
        .iter()
        .map(|e| (e.actor.as_str(), e.to_state.as_str(), e.reason.as_str()))
        .collect();
    assert_eq!(trail.len(), 5, "{trail:#?}");
    assert_eq!(trail[1], ("ghost", "running", "claimed, attempt 1"));
    assert_eq!(trail[3], ("ghost", "running", "claimed, attempt 2"));
    assert_eq!((trail[2].0, trail[2].1), ("test", "queued"));
    assert_eq!((trail[4].0, trail[4].1), ("test", "dead"));
    assert!(trail[4].2.contains("lost"), "{trail:#?}");
}

/// Two schedulers (separate connections, as two processes would have) race
/// for the same slots: each slot becomes one job.
async fn two_schedulers_do_not_double_fire_a_slot(kind: Kind) {
    let t = TestDb::new(kind).await;
    let bots = write_bot(
        t.path(),
        "report",
        r#"
name = "report"
[[triggers]]
kind = "cron"
schedule = "0 */5 * * * *"
timezone = "Europe/Berlin"
[[steps]]
name = "s"
kind = "command"
argv = ["true"]
"#,
    );
    let registry = load_bots(&bots);
    let a = Scheduler::new(t.open().await, registry.clone(), "a");
    let b = Scheduler::new(t.open().await, registry.clone(), "b");
    let db = t.open().await;
    let minute = 60_000i64;
    let base = 1_800_000_000_000i64 / (5 * minute) * (5 * minute);
    let mut created = 0;
    for slot in 0..10 {
        let now = base + slot * 5 * minute + 1500;
        let (x, y) = tokio::join!(a.tick(now), b.tick(now));
        created += x.len() + y.len();
    }
    // The first tick only sets the baseline when it is late; here it is on
    // time, so every one of the ten slots fires exactly once.
    assert_eq!(created, 10);
    let jobs = db
        .list(&ListFilter {
            bot: Some("report".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(jobs.len(), 10);
    let mut keys: Vec<_> = jobs
        .iter()
        .map(|j| j.idempotency_key.clone().unwrap())
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 10);

    // Downtime: three hours later the latest missed slot runs once.
    let later = base + 10 * 5 * minute + 3 * 3_600_000 + 2 * minute;
    let (x, y) = tokio::join!(a.tick(later), b.tick(later));
    assert_eq!(x.len() + y.len(), 1);
    let (x, y) = tokio::join!(a.tick(later + 1000), b.tick(later + 1000));
    assert_eq!(x.len() + y.len(), 0);

    // Paused, its slots pass unfired; resumed, it fires on the next slot
    // and does not catch up on those it passed.
    db.pause_bot("report", "cli:op", "month-end freeze")
        .await
        .unwrap();
    let next = later - later % (5 * minute) + 5 * minute + 1500;
    for n in 0..3 {
        let (x, y) = tokio::join!(a.tick(next + n * 5 * minute), b.tick(next + n * 5 * minute));
        assert_eq!(x.len() + y.len(), 0, "a paused bot's slot fired");
    }
    db.resume_bot("report", "cli:op", "freeze over")
        .await
        .unwrap();
    let resumed = next + 2 * 5 * minute + 30_000;
    assert_eq!(a.tick(resumed).await.len(), 0, "a passed slot caught up");
    assert_eq!(a.tick(next + 3 * 5 * minute).await.len(), 1);
}

async fn concurrency_limit_holds_across_workers(kind: Kind) {
    let Setup { t, bots, registry, db } = setup(
        kind,
        "single",
        r#"
name = "single"
concurrency = 1
[[steps]]
name = "s"
kind = "command"
argv = ["sh", "-c", "if ! mkdir lock 2>/dev/null; then echo overlap >> overlaps; fi; sleep 0.2; rmdir lock"]
"#,
    )
    .await;
    let bot = registry.get("single").unwrap().clone();
    let jobs: Vec<_> = (0..6).map(|_| new_job(&bot, json!({}))).collect();
    let ids = enqueue_ids(&db, &jobs).await;
    let w1 = RunningWorker::start(t.open().await, registry.clone(), fast_config(3));
    let w2 = RunningWorker::start(t.open().await, registry.clone(), fast_config(3));
    for id in &ids {
        wait_for(&db, *id, &[JobState::Succeeded], LONG).await;
    }
    w1.shutdown().await;
    w2.shutdown().await;
    assert!(
        !bots.join("single/overlaps").exists(),
        "two jobs of a concurrency-1 bot overlapped"
    );
}

async fn retry_by_hand_and_retention(kind: Kind) {
    let Setup {
        t: _t,
        bots,
        registry,
        db,
    } = setup(
        kind,
        "once",
        r#"
name = "once"
[[steps]]
name = "a"
kind = "command"
argv = ["sh", "-c", "echo a"]
[[steps]]
name = "b"
kind = "command"
argv = ["sh", "-c", "test -f ok || exit 2"]
failure = "business"
"#,
    )
    .await;
    let id = db
        .enqueue(&[new_job(registry.get("once").unwrap(), json!({}))])
        .await
        .unwrap()[0]
        .id;
    let w = RunningWorker::start(db.clone(), registry, fast_config(1));
    wait_for(&db, id, &[JobState::Failed], LONG).await;
    // Retrying a failed job is refused only for unfinished ones.
    let queued_err = db.retry(id + 1000, "test").await.unwrap_err().to_string();
    assert!(queued_err.contains("does not exist"), "{queued_err}");
    std::fs::write(bots.join("once/ok"), "").unwrap();
    db.retry(id, "test").await.unwrap();
    wait_for(&db, id, &[JobState::Succeeded], LONG).await;
    w.shutdown().await;
    let d = db.job(id).await.unwrap().unwrap();
    assert_eq!(
        d.attempts[1].steps.len(),
        1,
        "retry by hand resumes at the failed step"
    );
    assert!(
        d.events
            .iter()
            .any(|e| e.reason == "retried by hand" && e.actor == "test")
    );

    // Retention: nothing is younger than "now + 1 min"… so all finished go.
    assert_eq!(
        db.prune(clerk::jobs::now_ms() - 60_000, 100).await.unwrap(),
        0
    );
    assert_eq!(
        db.prune(clerk::jobs::now_ms() + 60_000, 100).await.unwrap(),
        1
    );
    assert!(db.job(id).await.unwrap().is_none());
}

/// Writers on separate connections (as separate processes would be) keep
/// enqueueing while a worker claims and completes: nobody sees "database is
/// locked", nothing is lost.
async fn concurrent_writers_never_fail_or_lose_jobs(kind: Kind) {
    let t = TestDb::new(kind).await;
    let bots = write_bot(
        t.path(),
        "fast",
        "name = \"fast\"\n[[steps]]\nname = \"s\"\nkind = \"command\"\nargv = [\"true\"]\n",
    );
    let registry = load_bots(&bots);
    let db = t.open().await;
    let bot = registry.get("fast").unwrap().clone();
    let w = RunningWorker::start(t.open().await, registry.clone(), fast_config(8));
    let mut writers = Vec::new();
    for _ in 0..4 {
        let conn = t.open().await;
        let bot = bot.clone();
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..40 {
                let e = conn
                    .enqueue(&[new_job(&bot, json!({}))])
                    .await
                    .expect("enqueue under load");
                ids.push(e[0].id);
                conn.list(&ListFilter {
                    limit: 5,
                    ..Default::default()
                })
                .await
                .expect("list under load");
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for h in writers {
        ids.extend(h.await.unwrap());
    }
    assert_eq!(ids.len(), 160);
    for id in &ids {
        wait_for(&db, *id, &[JobState::Succeeded], Duration::from_secs(60)).await;
    }
    let report = w.shutdown().await;
    assert_eq!(report.completed, 160);
}

/// Secrets reach the program, never the job record; a missing one fails the
/// job with its name.
async fn secrets_are_resolved_and_never_stored(kind: Kind) {
    let t = TestDb::new(kind).await;
    let bots = write_bot(
        t.path(),
        "erp",
        r#"
name = "erp"
secrets = ["CLERK_TEST_ERP_PASSWORD"]
[[steps]]
name = "login"
kind = "command"
argv = ["sh", "-c", "echo \"{\\\"echo\\\": \\\"$ERP_PASSWORD\\\"}\"; echo \"logged in with $ERP_PASSWORD\" >&2"]
env = { ERP_PASSWORD = "${secret:CLERK_TEST_ERP_PASSWORD}" }
[[steps]]
name = "fail"
kind = "command"
argv = ["sh", "-c", "echo \"rejected password $ERP_PASSWORD\" >&2; exit 2"]
env = { ERP_PASSWORD = "${secret:CLERK_TEST_ERP_PASSWORD}" }
failure = "business"
"#,
    );
    write_bot(
        t.path(),
        "nosecret",
        r#"
name = "nosecret"
secrets = ["CLERK_TEST_NEVER_SET"]
[[steps]]
name = "s"
kind = "command"
argv = ["echo", "${secret:CLERK_TEST_NEVER_SET}"]
"#,
    );
    let secrets_file = t.path().join("secrets.env");
    std::fs::write(
        &secrets_file,
        "CLERK_TEST_ERP_PASSWORD=hunter2-very-secret\n",
    )
    .unwrap();
    let registry = load_bots(&bots);
    let db = t.open().await;
    let erp = db
        .enqueue(&[new_job(registry.get("erp").unwrap(), json!({}))])
        .await
        .unwrap()[0]
        .id;
    let missing = db
        .enqueue(&[new_job(registry.get("nosecret").unwrap(), json!({}))])
        .await
        .unwrap()[0]
        .id;
    let mut cfg = fast_config(2);
    cfg.secrets =
        std::sync::Arc::new(clerk::config::secrets::Secrets::with_file(&secrets_file).unwrap());
    let w = RunningWorker::start(db.clone(), registry, cfg);
    wait_for(&db, erp, &[JobState::Failed], LONG).await;
    wait_for(&db, missing, &[JobState::Failed], LONG).await;
    w.shutdown().await;

    let d = db.job(erp).await.unwrap().unwrap();
    let record = serde_json::to_string(&d).unwrap();
    assert!(!record.contains("hunter2"), "secret stored: {record}");
    // The program did get it: its output and error show where it was.
    assert_eq!(d.attempts[0].steps[0].output, Some(json!({"echo": "***"})));
    assert!(
        d.summary
            .last_error
            .unwrap()
            .contains("rejected password ***")
    );
    let m = db.job(missing).await.unwrap().unwrap();
    assert!(
        m.summary
            .last_error
            .unwrap()
            .contains("secret `CLERK_TEST_NEVER_SET` is not set"),
        "{:?}",
        m.attempts
    );
}

/// The extract step: a clean invoice passes with its fields as output; one
/// no template fits waits for review with the reason; a damaged PDF fails
/// at once with the file and what is wrong with it.
async fn the_extract_step_passes_holds_for_review_or_fails(kind: Kind) {
    let t = TestDb::new(kind).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let bots = write_bot(t.path(), "intake", &intake_bot(""));
    let registry = load_bots(&bots);
    let db = t.open().await;
    let bot = registry.get("intake").unwrap().clone();
    let file = |rel: &str| json!({ "file": root.join(rel).to_str().unwrap() });
    let ids = enqueue_ids(
        &db,
        &[
            new_job(&bot, file("fixtures/invoices/papeterie-lumiere/F27669.pdf")),
            new_job(&bot, file("fixtures/bad/owner-only.pdf")),
            new_job(&bot, file("fixtures/bad/truncated.pdf")),
        ],
    )
    .await;
    let w = RunningWorker::start(db.clone(), registry, fast_config(2));
    wait_for(&db, ids[0], &[JobState::Succeeded], LONG).await;
    wait_for(&db, ids[1], &[JobState::WaitingReview], LONG).await;
    wait_for(&db, ids[2], &[JobState::Failed], LONG).await;

    let ok = db.job(ids[0]).await.unwrap().unwrap();
    // The book step got the extracted values.
    let booked = &ok.output.unwrap()["steps"]["extract"]["values"];
    assert_eq!(booked["invoice_number"], "F27669");
    assert_eq!(booked["amount"], 14885.21);
    assert_eq!(booked["date"], "2026-04-13");

    let held = db.job(ids[1]).await.unwrap().unwrap();
    assert_eq!(
        held.review.as_ref().unwrap()["reasons"][0],
        "no template matched this document"
    );
    assert_eq!(held.next_step, 1);
    assert!(
        held.worker.is_none(),
        "a job waiting for review holds no worker"
    );

    // A reviewer approves: the job goes on at the next step.
    db.approve(ids[1], "reviewer:ana", "checked by hand")
        .await
        .unwrap();
    wait_for(&db, ids[1], &[JobState::Succeeded], LONG).await;
    let approved = db.job(ids[1]).await.unwrap().unwrap();
    let steps: Vec<_> = approved
        .attempts
        .last()
        .unwrap()
        .steps
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(steps, vec!["book"]);

    let bad = db.job(ids[2]).await.unwrap().unwrap();
    let err = bad.summary.last_error.unwrap();
    assert!(err.contains("truncated.pdf: the PDF is damaged"), "{err}");
    assert_eq!(bad.summary.attempt, 1);
    w.shutdown().await;
}

both_backends!(
    the_extract_step_passes_holds_for_review_or_fails,
    secrets_are_resolved_and_never_stored,
    concurrent_writers_never_fail_or_lose_jobs,
    transient_failures_are_retried_then_succeed,
    exhausted_attempts_make_the_job_dead,
    business_errors_fail_without_retry,
    a_retry_resumes_at_the_failed_step,
    idempotency_keys_return_the_existing_job,
    cancel_a_queued_and_a_running_job,
    an_expired_lease_is_rescued_and_recorded_as_lost,
    two_schedulers_do_not_double_fire_a_slot,
    concurrency_limit_holds_across_workers,
    retry_by_hand_and_retention,
);
