//! The operations commands as an ops engineer types them, on both back
//! ends: `clerk stats`, `clerk report` in every format (the PDF printed by
//! headless Chromium), `clerk bots pause|resume`, and their exit codes.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use clerk::jobs::JobState;
use common::*;
use serde_json::json;

fn clerk(s: &Setup, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clerk"))
        .args(args)
        .args(["--database", s.t.url.as_str()])
        .env_remove("DATABASE_URL")
        .env("CLERK_BOTS", &s.bots)
        .output()
        .expect("clerk runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn the_figures_reach_the_terminal_and_the_report(kind: Kind) {
    let s = setup(kind, "ops", OPS_BOT).await;
    let bot = s.registry.get("ops").unwrap().clone();
    let jobs: Vec<_> = ["ok", "ok", "ok", "business"]
        .iter()
        .map(|m| new_job(&bot, json!({ "mode": m })))
        .collect();
    let ids = enqueue_ids(&s.db, &jobs).await;
    let w = RunningWorker::start(s.db.clone(), s.registry.clone(), fast_config(2));
    for id in &ids {
        wait_for(
            &s.db,
            *id,
            &[JobState::Succeeded, JobState::Failed],
            Duration::from_secs(60),
        )
        .await;
    }
    w.shutdown().await;

    let table = clerk(&s, &["stats", "--days", "1"]);
    assert!(table.status.success(), "{}", stderr(&table));
    let line = stdout(&table)
        .lines()
        .find(|l| l.starts_with("ops "))
        .map(str::to_string)
        .unwrap_or_default();
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        cells[..5],
        ["ops", "4", "4", "75.0%", "25.0%"],
        "{}",
        stdout(&table)
    );
    let json = clerk(&s, &["stats", "--json", "--bot", "ops"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["overall"]["straight_through"], 3);
    assert_eq!(v["overall"]["top_failures"][0]["examples"][0], ids[3]);

    let csv = clerk(&s, &["report", "--format", "csv"]);
    assert!(csv.status.success(), "{}", stderr(&csv));
    assert!(
        stdout(&csv).lines().nth(1).unwrap().starts_with("ops,"),
        "{}",
        stdout(&csv)
    );
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("health.html");
    let out = clerk(&s, &["report", "--output", html.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read_to_string(&html).unwrap().contains("<svg"));
    let pdf = dir.path().join("health.pdf");
    let out = clerk(
        &s,
        &["report", "--format", "pdf", "-o", pdf.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let bytes = std::fs::read(&pdf).unwrap();
    assert!(bytes.starts_with(b"%PDF-"), "not a PDF");
    assert!(
        bytes.len() > 5_000,
        "a PDF of {} bytes has no report in it",
        bytes.len()
    );

    // Mistakes get exit code 2 and say what is wrong.
    let no_file = clerk(&s, &["report", "--format", "pdf"]);
    assert_eq!(no_file.status.code(), Some(2));
    assert!(
        stderr(&no_file).contains("--output"),
        "{}",
        stderr(&no_file)
    );
    let reversed = clerk(&s, &["stats", "--from", "2026-12-01", "--to", "2026-11-01"]);
    assert_eq!(reversed.status.code(), Some(2));
    assert!(stderr(&reversed).contains("empty"), "{}", stderr(&reversed));
    let typo = clerk(&s, &["bots", "pause", "opps"]);
    assert_eq!(typo.status.code(), Some(2));
    assert!(
        stderr(&typo).contains("the bots are: ops"),
        "{}",
        stderr(&typo)
    );

    let paused = clerk(&s, &["bots", "pause", "ops", "--reason", "month-end"]);
    assert!(
        stdout(&paused).contains("ops paused"),
        "{}",
        stderr(&paused)
    );
    assert_eq!(s.db.paused().await.unwrap()[0].reason, "month-end");
    let resumed = clerk(&s, &["bots", "resume", "ops"]);
    assert!(
        stdout(&resumed).contains("ops resumed"),
        "{}",
        stderr(&resumed)
    );
    assert!(s.db.paused().await.unwrap().is_empty());
}

both_backends!(the_figures_reach_the_terminal_and_the_report);
