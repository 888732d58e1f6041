//! The figures of operations, on both back ends, from a known mix of jobs
//! run by a real worker: documents in, how each ended, straight-through
//! and exception rates, review effort, the figures kept past the pruning
//! of their jobs, the metrics, and a paused bot whose jobs wait.

mod common;

use std::time::Duration;

use clerk::jobs::{BotClaim, Ending, JobState, NewJob};
use clerk::stats::{self, Period};
use common::*;
use serde_json::json;

const LONG: Duration = Duration::from_secs(60);

/// Exit 0, 3 (a business error) or 75 (transient) by the input's `mode`;
/// `flaky` succeeds once the file its input names exists.
const OPS: &str = r#"
name = "ops"
[retry]
max_attempts = 2
backoff = "50ms"
[[steps]]
name = "work"
kind = "command"
failure = "business"
argv = ["python3", "-c", """
import json, os, sys
i = json.load(sys.stdin)["input"]
m = i["mode"]
if m == "flaky":
    sys.exit(0 if os.path.exists(i["flag"]) else 3)
sys.exit({"ok": 0, "business": 3, "transient": 75}[m])
"""]
"#;

fn job(s: &Setup, bot: &str, input: serde_json::Value) -> NewJob {
    new_job(s.registry.get(bot).unwrap(), input)
}

async fn run_until(s: &Setup, ids: &[i64], states: &[JobState]) {
    let w = RunningWorker::start(s.db.clone(), s.registry.clone(), fast_config(4));
    for id in ids {
        wait_for(&s.db, *id, states, LONG).await;
    }
    w.shutdown().await;
}

async fn a_known_mix_of_jobs_gives_known_figures(kind: Kind) {
    let mut s = setup(kind, "ops", OPS).await;
    write_bot(s.t.path(), "intake", &intake_bot(""));
    s.registry = load_bots(&s.bots);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let flag = s.t.path().join("flag");

    // Three straight through, a business error, retries run out, one that
    // fails until a person fixes its cause and retries it.
    let mut mix: Vec<NewJob> = (0..3)
        .map(|_| job(&s, "ops", json!({"mode": "ok"})))
        .collect();
    mix.push(job(&s, "ops", json!({"mode": "business"})));
    mix.push(job(&s, "ops", json!({"mode": "transient"})));
    mix.push(job(&s, "ops", json!({"mode": "flaky", "flag": flag})));
    // Two documents no template knows: one approved, one rejected.
    let doc = json!({ "file": root.join("fixtures/bad/owner-only.pdf"), "name": "scan.pdf" });
    mix.push(job(&s, "intake", doc.clone()));
    mix.push(job(&s, "intake", doc));
    let ids = enqueue_ids(&s.db, &mix).await;
    run_until(
        &s,
        &ids,
        &[
            JobState::Succeeded,
            JobState::Failed,
            JobState::Dead,
            JobState::WaitingReview,
        ],
    )
    .await;
    std::fs::write(&flag, "fixed").unwrap();
    s.db.retry(ids[5], "cli:op").await.unwrap();
    s.db.approve(ids[6], "ana", "looks right").await.unwrap();
    let version = s.db.review(ids[7]).await.unwrap().unwrap().item.version;
    let rejected = clerk::review::reject("not our invoice").unwrap();
    s.db.finish_review(ids[7], "bob", version, &rejected)
        .await
        .unwrap();
    run_until(&s, &[ids[5], ids[6]], &[JobState::Succeeded]).await;

    // A cancelled job, and one whose worker vanished once too often.
    let mut later = job(&s, "ops", json!({"mode": "ok"}));
    later.run_after = Some(clerk::jobs::now_ms() + 3_600_000);
    let mut lost = job(&s, "ops", json!({"mode": "ok"}));
    lost.max_lost = 1;
    let more = enqueue_ids(&s.db, &[later, lost]).await;
    s.db.cancel(more[0], "cli:op").await.unwrap();
    let ops = BotClaim {
        name: "ops".into(),
        concurrency: None,
    };
    let held =
        s.db.claim("ghost", &[ops], 1, Duration::from_millis(1))
            .await
            .unwrap();
    assert_eq!(held.iter().map(|j| j.id).collect::<Vec<_>>(), [more[1]]);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let rescued = s.db.rescue_expired("rescuer:test", 10).await.unwrap();
    assert_eq!(rescued[0].state, JobState::Dead);

    let now = clerk::jobs::now_ms();
    let period = Period::last_days(7, now);
    let known = vec!["ops".to_string(), "intake".to_string()];
    let o = stats::overview(s.db.as_ref(), period, None, &known, now)
        .await
        .unwrap();
    let f = &o.overall.figures;
    assert_eq!(f.documents_in, 10);
    assert_eq!(f.finished, 9, "cancelled jobs are not in the rates");
    let endings: Vec<(String, i64)> = f.endings.iter().map(|(k, v)| (k.clone(), *v)).collect();
    let want = [
        (Ending::StraightThrough, 3),
        (Ending::Touched, 2),
        (Ending::Business, 1),
        (Ending::TransientExhausted, 1),
        (Ending::Dead, 1),
        (Ending::Rejected, 1),
        (Ending::Cancelled, 1),
    ];
    for (ending, n) in want {
        assert_eq!(f.endings[ending.as_str()], n, "{ending:?} in {endings:?}");
    }
    assert_eq!(f.straight_through_rate, Some(3.0 / 9.0));
    assert_eq!(f.exception_rate, Some(4.0 / 9.0));
    assert_eq!(f.rate_of(Ending::Rejected), Some(1.0 / 9.0));
    assert_eq!(f.reviewed, 2);
    // The lost job at least; a slow machine can lose a lease of the others too.
    assert!(f.rescues >= 1, "{}", f.rescues);
    assert_eq!(f.cycle.count, 5, "cycle times are of jobs that succeeded");
    let (p50, p95) = (f.cycle.p50_seconds.unwrap(), f.cycle.p95_seconds.unwrap());
    assert!(p50 > 0.0 && p50 <= p95, "{:?}", f.cycle);
    assert_eq!(f.review_wait.count, 2);
    let reasons: Vec<&str> = f.top_failures.iter().map(|r| r.message.as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("not our invoice")),
        "{reasons:?}"
    );
    let business = f
        .top_failures
        .iter()
        .find(|r| r.ending.as_deref() == Some("business"))
        .expect("the business error's reason");
    assert_eq!(business.examples, [ids[3]]);
    let per_bot: Vec<(&str, i64)> = o
        .bots
        .iter()
        .map(|b| (b.bot.as_str(), b.figures.documents_in))
        .collect();
    assert_eq!(per_bot, [("intake", 2), ("ops", 8)]);
    assert_eq!(o.overall.now.review_backlog, 0);
    let today = f.per_day.last().unwrap();
    assert_eq!(
        (today.documents_in, today.succeeded, today.exceptions),
        (10, 5, 4)
    );
    assert_eq!(f.per_day.len(), 7);

    // The metrics say the same, and count the mailbox of no bot twice.
    let cache = Default::default();
    let totals = stats::metrics::totals(s.db.as_ref(), &cache, now)
        .await
        .unwrap();
    // Ten minutes on, the same jobs are summed once and kept between
    // scrapes instead of read again: the counters stay the same.
    let soon = now + 2 * stats::metrics::COUNTED_AFTER_MS;
    let kept = stats::metrics::totals(s.db.as_ref(), &cache, soon)
        .await
        .unwrap();
    assert_eq!(kept, totals);
    let text = stats::metrics::Snapshot {
        totals,
        live: s.db.live().await.unwrap(),
        bots: known.clone(),
        now,
        ..Default::default()
    }
    .render();
    for line in [
        r#"clerk_jobs_total{bot="ops",outcome="straight_through"} 3"#,
        r#"clerk_jobs_total{bot="intake",outcome="rejected"} 1"#,
        r#"clerk_intake_documents_total{bot="ops",trigger="manual"} 8"#,
        r#"clerk_lease_rescues_total{bot="ops"}"#,
        r#"clerk_job_duration_seconds_count{bot="ops"} 4"#,
        r#"clerk_step_duration_seconds_bucket{le="+Inf",bot="intake",step="book",kind="unknown"} 1"#,
        r#"clerk_step_duration_seconds_bucket{le="0.5",bot="intake",step="book",kind="unknown"} 1"#,
        "clerk_review_backlog 0",
        r#"clerk_queue_depth{bot="ops",state="queued"}"#,
    ] {
        if line.starts_with("clerk_queue_depth") {
            assert!(!text.contains(line), "nothing is queued:\n{text}");
        } else {
            assert!(text.contains(line), "{line} missing in:\n{text}");
        }
    }
    assert!(text.ends_with("# EOF\n"), "{text}");

    // The report says the same, against an empty period before.
    let report = stats::report::report(s.db.as_ref(), period, None, &known, now)
        .await
        .unwrap();
    assert_eq!(report.previous.overall.figures.documents_in, 0);
    let csv = report.csv();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let cell =
        |row: &[&str], name: &str| row[header.iter().position(|h| *h == name).unwrap()].to_string();
    assert_eq!(rows.len(), 3, "intake, ops and all: {csv}");
    let all = &rows[2];
    assert_eq!(cell(all, "bot"), "all");
    assert_eq!(cell(all, "documents_in"), "10");
    assert_eq!(cell(all, "straight_through_rate"), "0.3333");
    assert_eq!(cell(all, "rejected_rate"), "0.1111");
    assert_eq!(cell(all, "previous_documents_in"), "0");
    let json: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
    assert_eq!(json["current"]["overall"]["finished"], 9);
    let html = report.html();
    for needle in ["<svg", "Process health", "not our invoice", "33.3%"] {
        assert!(html.contains(needle), "{needle} missing in the report");
    }
    for outside in ["<script", "<link", "src=\"http", "href=\"http"] {
        assert!(
            !html.contains(outside),
            "the report reaches outside itself: {outside}"
        );
    }

    // Two days on, the day is settled; pruning its jobs keeps its figures.
    let later = now + 2 * stats::DAY_MS;
    let rolled = stats::rollup(s.db.as_ref(), later).await.unwrap();
    assert!(rolled.settled >= 1, "{rolled:?}");
    let pruned = s.db.prune(later, 1000).await.unwrap();
    assert_eq!(pruned, 10);
    let after = stats::overview(s.db.as_ref(), period, None, &known, later)
        .await
        .unwrap();
    assert_eq!(after.overall.figures, o.overall.figures);
    let totals = stats::metrics::totals(s.db.as_ref(), &cache, later)
        .await
        .unwrap();
    assert_eq!(totals["ops"].ended(Ending::StraightThrough), 3);
}

async fn a_paused_bot_waits_and_resumes(kind: Kind) {
    let s = setup(kind, "ops", OPS).await;
    assert!(
        s.db.pause_bot("ops", "cli:op", "ERP maintenance")
            .await
            .unwrap()
    );
    assert!(!s.db.pause_bot("ops", "cli:op", "again").await.unwrap());
    let id = enqueue_ids(&s.db, &[job(&s, "ops", json!({"mode": "ok"}))]).await[0];
    let w = RunningWorker::start(s.db.clone(), s.registry.clone(), fast_config(2));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(s.db.state(id).await.unwrap(), Some(JobState::Queued));
    let paused = s.db.paused().await.unwrap();
    assert_eq!(paused.len(), 1);
    assert_eq!(
        (paused[0].bot.as_str(), paused[0].reason.as_str()),
        ("ops", "ERP maintenance")
    );
    assert!(
        s.db.resume_bot("ops", "ana", "maintenance over")
            .await
            .unwrap()
    );
    wait_for(&s.db, id, &[JobState::Succeeded], LONG).await;
    w.shutdown().await;
    assert!(!s.db.resume_bot("ops", "ana", "twice").await.unwrap());
    let history = s.db.bot_events("ops", 10).await.unwrap();
    let actions: Vec<(&str, &str)> = history
        .iter()
        .map(|e| (e.action.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(actions, [("resumed", "ana"), ("paused", "cli:op")]);
}

/// A paused bot's mailbox polls pass unfired, and a poll queued before the
/// pause waits with the bot's jobs; resumed, polling goes on, one poll at
/// a time: a slot passes while a poll of the mailbox is queued or running,
/// so polls do not pile up behind a long one.
async fn a_paused_bots_mailbox_polls_wait_too(kind: Kind) {
    let s = setup(
        kind,
        "inbox",
        r#"
name = "inbox"
secrets = ["INBOX_PASSWORD"]
[[triggers]]
kind = "mailbox"
host = "127.0.0.1"
port = 9
tls = "plain"
allow_plain = true
user = "finance"
password = "${secret:INBOX_PASSWORD}"
every = "1m"

[[steps]]
name = "work"
kind = "command"
argv = ["true"]
"#,
    )
    .await;
    let poll = s
        .registry
        .iter()
        .find(|b| b.is_mailbox_poll())
        .expect("the mailbox's poll bot")
        .clone();
    assert!(poll.name.starts_with("inbox:"), "{}", poll.name);
    let claim = || {
        [BotClaim {
            name: poll.name.clone(),
            concurrency: None,
        }]
    };
    let scheduler = clerk::scheduler::Scheduler::new(s.db.clone(), s.registry.clone(), "test");
    let minute = 60_000i64;
    let base = clerk::jobs::now_ms() / minute * minute;
    // Before the pause, one poll queued; then none while paused.
    assert_eq!(scheduler.tick(base + 1000).await.len(), 1);
    s.db.pause_bot("inbox", "cli:op", "mail server move")
        .await
        .unwrap();
    for n in 1..4 {
        let fired = scheduler.tick(base + n * minute + 1000).await;
        assert!(fired.is_empty(), "a paused bot's mailbox was polled");
    }
    let lease = Duration::from_secs(30);
    let held = s.db.claim("w", &claim(), 5, lease).await.unwrap();
    assert!(
        held.is_empty(),
        "the queued poll of a paused bot was claimed"
    );
    s.db.resume_bot("inbox", "cli:op", "moved").await.unwrap();
    let held = s.db.claim("w", &claim(), 5, lease).await.unwrap();
    assert_eq!(held.len(), 1, "the waiting poll runs once resumed");
    // Its next slots pass while it runs: polls do not pile up.
    assert!(scheduler.tick(base + 5 * minute + 1000).await.is_empty());
    let done = clerk::jobs::Completion {
        job_id: held[0].id,
        attempt: held[0].attempt,
        state: JobState::Succeeded,
        attempt_outcome: clerk::jobs::Outcome::Succeeded,
        run_after: clerk::jobs::now_ms(),
        errors: 0,
        next_step: 1,
        error: None,
        output: None,
        review: None,
        reason: "polled".into(),
        steps: Vec::new(),
    };
    assert_eq!(s.db.complete("w", &[done]).await.unwrap(), [true]);
    assert_eq!(scheduler.tick(base + 6 * minute + 1000).await.len(), 1);
    assert!(
        scheduler.tick(base + 7 * minute + 1000).await.is_empty(),
        "a second poll queued behind the first"
    );
    // `clerk runs list` leaves polls out unless asked or their bot named.
    let list = |polls: bool, bot: Option<String>| clerk::jobs::ListFilter {
        limit: 100,
        polls,
        bot,
        ..Default::default()
    };
    assert!(s.db.list(&list(false, None)).await.unwrap().is_empty());
    assert_eq!(s.db.list(&list(true, None)).await.unwrap().len(), 2);
    let named =
        s.db.list(&list(false, Some(poll.name.clone())))
            .await
            .unwrap();
    assert_eq!(named.len(), 2);
}

both_backends!(
    a_known_mix_of_jobs_gives_known_figures,
    a_paused_bot_waits_and_resumes,
    a_paused_bots_mailbox_polls_wait_too,
);
