//! `clerk review` as a script meets it, through the real binary on both
//! back ends: the queue, a correction typed and checked, an approval
//! refused while a check fails (a bank account the vendor is not known
//! by) and given with an override, the reviewed
//! values going on to the next step, a rejection, and the corrected
//! document exported as a fixture.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use clerk::jobs::JobState;
use common::*;
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(90);

fn clerk(s: &Setup, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clerk"))
        .args(args)
        .args(["--database", s.t.url.as_str()])
        .env_remove("DATABASE_URL")
        .env("CLERK_BOTS", &s.bots)
        .output()
        .expect("clerk runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn run_to_review(s: &Setup, file: &str) -> i64 {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bot = s.registry.get("intake").unwrap().clone();
    let id = enqueue_ids(&s.db, &[new_job(&bot, json!({ "file": root.join(file) }))]).await[0];
    let w = RunningWorker::start(s.db.clone(), s.registry.clone(), fast_config(1));
    wait_for(&s.db, id, &[JobState::WaitingReview], LONG).await;
    w.shutdown().await;
    id
}

/// The example templates, but with the vendor's master data still holding
/// its former bank account: the scan's IBAN fails the `known` check, and
/// approving it needs a reason.
fn templates_with_a_former_account() -> (tempfile::TempDir, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("bots/invoice-intake/templates");
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&root).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let text = text.replace(
            "value: DE89 3704 0044 0532 0130 00",
            "value: DE02 1203 0000 0000 2020 51",
        );
        std::fs::write(dir.path().join(entry.file_name()), text).unwrap();
    }
    let manifest = intake_bot("").replace(
        &root.display().to_string(),
        &dir.path().display().to_string(),
    );
    assert!(manifest.contains(&dir.path().display().to_string()));
    (dir, manifest)
}

async fn a_script_reviews_corrects_approves_and_exports(kind: Kind) {
    let (_templates, manifest) = templates_with_a_former_account();
    let s = setup(kind, "intake", &manifest).await;
    let scan = run_to_review(&s, "fixtures/scans/acme-office-degraded.pdf").await;
    let other = run_to_review(&s, "fixtures/bad/owner-only.pdf").await;
    let (scan_arg, other_arg) = (scan.to_string(), other.to_string());

    let list = clerk(&s, &["review", "list", "--json"]);
    assert!(list.status.success(), "{}", text(&list));
    let items: Value = serde_json::from_slice(&list.stdout).unwrap();
    let ids: Vec<i64> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["job_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [scan, other], "oldest first");

    // `clerk runs show` puts why the job waits and what it read first, in
    // full; rules and boxes only with --full.
    let reasons: Vec<String> = items[0]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    assert!(!reasons.is_empty());
    let show = text(&clerk(&s, &["runs", "show", &scan_arg]));
    let at = |what: &str| {
        show.find(what)
            .unwrap_or_else(|| panic!("no {what:?} in\n{show}"))
    };
    assert!(
        at("waits for review because") < at("  values") && at("  values") < at("attempt 1"),
        "{show}"
    );
    for r in &reasons {
        assert!(show.contains(&format!("    - {r}")), "{r} in\n{show}");
    }
    assert!(
        show.contains("    invoice_number     RE-2026-67181"),
        "{show}"
    );
    assert!(!show.contains("rule: regex"), "{show}");
    let verbose = text(&clerk(&s, &["runs", "show", &scan_arg, "--full"]));
    assert!(
        verbose.contains("rule: regex") && verbose.contains("box {"),
        "{verbose}"
    );
    // `clerk runs list` says why each waiting job waits.
    let runs = text(&clerk(&s, &["runs", "list"]));
    let row = runs
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{scan} ")))
        .unwrap_or_else(|| panic!("no row for {scan} in\n{runs}"));
    let start: String = reasons[0].chars().take(40).collect();
    assert!(row.contains(&start), "{row}");

    // A value that is not a number is refused, saying why; nothing is saved.
    let bad = clerk(&s, &["review", "set", &scan_arg, "vat", "lots"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(text(&bad).contains("must be a number"), "{}", text(&bad));
    // The VAT the scan lost, as the invoice prints it.
    let set = clerk(&s, &["review", "set", &scan_arg, "vat", "1.094,08"]);
    assert!(set.status.success(), "{}", text(&set));
    assert!(text(&set).contains("(none) → 1094.08"), "{}", text(&set));

    // A failing check (an IBAN the vendor is not known by) needs a reason
    // to approve anyway.
    let refused = clerk(&s, &["review", "approve", &scan_arg]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused)
            .contains("check fails: iban `DE89 3704 0044 0532 0130 00` is not the vendor's known"),
        "{}",
        text(&refused)
    );
    let why = "new account confirmed by phone with the vendor";
    let approved = clerk(&s, &["review", "approve", &scan_arg, "--override", why]);
    assert!(approved.status.success(), "{}", text(&approved));

    let rejected = clerk(
        &s,
        &["review", "reject", &other_arg, "--reason", "not an invoice"],
    );
    assert!(rejected.status.success(), "{}", text(&rejected));

    let w = RunningWorker::start(s.db.clone(), s.registry.clone(), fast_config(1));
    wait_for(&s.db, scan, &[JobState::Succeeded], LONG).await;
    w.shutdown().await;
    assert_eq!(s.db.state(other).await.unwrap(), Some(JobState::Failed));
    let job = s.db.job(scan).await.unwrap().unwrap();
    // The booking step printed back what it was given: the reviewed values.
    let booked = &job.output.as_ref().unwrap()["steps"]["extract"]["values"];
    assert_eq!(booked["vat"], 1094.08);
    assert_eq!(booked["invoice_number"], "RE-2026-67181");
    let actor = job
        .events
        .iter()
        .rev()
        .find(|e| e.reason.contains(why))
        .unwrap();
    assert!(actor.actor.starts_with("cli:"), "{actor:?}");

    // The corrected document as a fixture: the file, its final values, and
    // what was corrected by whom.
    let dir = s.t.path().join("fixtures");
    let export = clerk(
        &s,
        &[
            "review",
            "export",
            "--since",
            "2026-01-01",
            dir.to_str().unwrap(),
        ],
    );
    assert!(export.status.success(), "{}", text(&export));
    assert!(
        text(&export).starts_with("1 corrected document"),
        "{}",
        text(&export)
    );
    let stem = format!("job-{scan}-acme-office-degraded");
    assert!(dir.join(format!("{stem}.pdf")).is_file());
    let values: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{stem}.json"))).unwrap())
            .unwrap();
    assert_eq!(values["vat"], 1094.08);
    let about: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("{stem}.review.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(about["corrections"]["vat"], 1094.08);
    assert!(about["extracted"]["vat"].is_null(), "{about}");
    assert!(about["reviewed_by"].as_str().unwrap().starts_with("cli:"));
}

both_backends!(a_script_reviews_corrects_approves_and_exports);
