//! `clerk events export` of a known mix of jobs, on both back ends, read
//! back by PM4Py (an independent reader, in a private virtualenv that
//! scripts/setup.sh makes): the OCEL 2.0 JSON and SQLite logs hold the
//! expected events, objects and types, and the flat CSV the expected
//! cases and variants.

mod common;

use std::process::Command;
use std::time::Duration;

use clerk::jobs::JobState;
use common::*;
use serde_json::json;

async fn run_until(s: &Setup, ids: &[i64], states: &[JobState]) {
    let w = RunningWorker::start(s.db.clone(), s.registry.clone(), fast_config(4));
    for id in ids {
        wait_for(&s.db, *id, states, Duration::from_secs(60)).await;
    }
    w.shutdown().await;
}

async fn the_event_log_reads_in_pm4py(kind: Kind) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv-pm4py/bin/python");
    assert!(
        python.exists(),
        "run scripts/setup.sh: it makes .venv-pm4py"
    );
    let mut s = setup(kind, "ops", OPS_BOT).await;
    write_bot(s.t.path(), "intake", &intake_bot(""));
    s.registry = load_bots(&s.bots);
    let ops = s.registry.get("ops").unwrap().clone();
    let intake = s.registry.get("intake").unwrap().clone();
    let doc = json!({ "file": root.join("fixtures/bad/owner-only.pdf"), "name": "scan.pdf" });
    let mut jobs: Vec<_> = ["ok", "ok", "ok", "business"]
        .iter()
        .map(|m| new_job(&ops, json!({ "mode": m })))
        .collect();
    jobs.push(new_job(&intake, doc.clone()));
    jobs.push(new_job(&intake, doc));
    let ids = enqueue_ids(&s.db, &jobs).await;
    run_until(
        &s,
        &ids,
        &[
            JobState::Succeeded,
            JobState::Failed,
            JobState::WaitingReview,
        ],
    )
    .await;
    s.db.approve(ids[4], "ana", "checked").await.unwrap();
    let version = s.db.review(ids[5]).await.unwrap().unwrap().item.version;
    let rejected = clerk::review::reject("not ours").unwrap();
    s.db.finish_review(ids[5], "bob", version, &rejected)
        .await
        .unwrap();
    run_until(&s, &[ids[4]], &[JobState::Succeeded]).await;

    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| dir.path().join(name);
    for (format, name) in [
        ("ocel2-json", "log.json"),
        ("ocel2-sqlite", "log.sqlite"),
        ("csv", "log.csv"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_clerk"))
            .args(["events", "export", "--format", format, "--output"])
            .arg(file(name))
            .args(["--database", s.t.url.as_str()])
            .arg("--bots")
            .arg(&s.bots)
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("21 events of 7 objects"), "{format}: {said}");
    }
    let read = Command::new(&python)
        .arg(root.join("tests/pm4py_read.py"))
        .args([file("log.json"), file("log.sqlite"), file("log.csv")])
        .output()
        .unwrap();
    assert!(
        read.status.success(),
        "PM4Py: {}",
        String::from_utf8_lossy(&read.stderr)
    );
    let found: serde_json::Value = serde_json::from_slice(&read.stdout).unwrap();
    // Three straight through: received, the step, completed; a business
    // error: received, failed; approved: received, extracted, review
    // started and finished, the booking step, completed; rejected:
    // received, extracted, review started and finished.
    for log in ["json", "sqlite"] {
        let f = &found[log];
        assert_eq!(f["events"], 21, "{log}: {found}");
        assert_eq!(
            f["objects"], 7,
            "{log}: six jobs and the one document: {found}"
        );
        assert_eq!(
            f["object_types"],
            json!(["document", "job"]),
            "{log}: {found}"
        );
        assert_eq!(
            f["activities"],
            json!([
                "completed",
                "extracted",
                "failed",
                "received",
                "review finished",
                "review started",
                "step book",
                "step work"
            ]),
            "{log}: {found}"
        );
    }
    // PM4Py writes the same log with the same fields and value types;
    // clerk also writes an object's relationships when it has none.
    assert_eq!(found["json"]["only_pm4py"], json!([]), "{found}");
    let only_ours = found["json"]["only_ours"].as_array().unwrap();
    assert!(
        only_ours
            .iter()
            .all(|p| p == "$.objects[].relationships (array)"),
        "{found}"
    );
    assert_eq!(
        found["sqlite"]["broken_constraints"],
        json!([]),
        "the SQLite log breaks constraints of the OCEL 2.0 relational schema: {found}"
    );
    assert_eq!(
        found["csv"],
        json!({ "cases": 6, "events": 21, "variants": 4 }),
        "{found}"
    );
}

both_backends!(the_event_log_reads_in_pm4py);
