//! Workers by capability: a worker that does not run browser steps leaves
//! a browser bot's job queued (and `clerk runs list` says no running worker
//! serves it) while it runs the jobs it can; a browser-capable worker that
//! starts later takes the job. A worker whose OCR lacks the languages a
//! bot's templates read scans in leaves that bot to others too.

mod common;

use std::process::Command;
use std::time::Duration;

use clerk::bot::kinds::Served;
use clerk::jobs::JobState;
use common::{
    Kind, RunningWorker, enqueue_ids, fast_config, load_bots, new_job, wait_for, write_bot,
};

const BROWSER_BOT: &str = r##"
name = "look"
[[steps]]
name = "read"
kind = "browser"
action_timeout = "10s"
actions = [
  { goto = "data:text/html,<p id=greeting>hello from the page</p>" },
  { read = "#greeting", into = "greeting" },
]
"##;

const COMMAND_BOT: &str = r#"
name = "plain"
[[steps]]
name = "noop"
kind = "command"
argv = ["true"]
"#;

/// `clerk runs list --json` of the test's database.
fn runs_list(url: &str) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_clerk"))
        .args(["runs", "list", "--json", "--database", url])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .cloned()
        .unwrap()
}

/// With a worker running, queue a job of the bot `waiting` and one of
/// `plain`: the plain one is run while the other stays queued, and `clerk
/// runs list` says of it (only) that no running worker serves its bot.
/// The waiting job and that reason.
async fn left_queued(
    db: &clerk::jobs::JobDb,
    url: &str,
    registry: &clerk::bot::BotRegistry,
    waiting: &str,
) -> (i64, String) {
    let waiting = enqueue_ids(
        db,
        &[new_job(
            registry.get(waiting).unwrap(),
            serde_json::json!({}),
        )],
    )
    .await[0];
    let plain = enqueue_ids(
        db,
        &[new_job(
            registry.get("plain").unwrap(),
            serde_json::json!({}),
        )],
    )
    .await[0];
    let ended = wait_for(
        db,
        plain,
        &[JobState::Succeeded, JobState::Failed],
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(ended, JobState::Succeeded);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        db.job(waiting).await.unwrap().unwrap().summary.state,
        JobState::Queued
    );
    let runs = runs_list(url);
    let listed = runs.iter().find(|r| r["id"] == waiting).unwrap();
    let why = listed["unserved"].as_str().unwrap_or_default().to_string();
    assert!(
        why.contains("no running worker serves this bot"),
        "{listed:#}"
    );
    assert!(
        runs.iter()
            .find(|r| r["id"] == plain)
            .unwrap()
            .get("unserved")
            .is_none()
    );
    (waiting, why)
}

async fn a_browser_job_waits_for_a_worker_that_runs_browsers(kind: Kind) {
    let t = common::TestDb::new(kind).await;
    let bots = write_bot(t.path(), "look", BROWSER_BOT);
    write_bot(t.path(), "plain", COMMAND_BOT);
    let registry = load_bots(&bots);
    let db = t.open().await;

    let mut cfg = fast_config(2);
    cfg.served = Served::check(&["command".to_string()]).expect("command steps run anywhere");
    let plain_worker = RunningWorker::start(db.clone(), registry.clone(), cfg);
    // The job it can run is run; the browser job waits, and says why.
    let (look, why) = left_queued(&db, &t.url, &registry, "look").await;
    assert!(why.contains("command"), "{why}");

    // A worker that runs browsers (checked: chromium answers) takes it.
    let mut cfg = fast_config(1);
    cfg.served =
        Served::check(&["browser".to_string()]).expect("scripts/setup.sh installs chromium");
    let browser_worker = RunningWorker::start(db.clone(), registry.clone(), cfg);
    let ended = wait_for(
        &db,
        look,
        &[JobState::Succeeded, JobState::Failed, JobState::Dead],
        Duration::from_secs(60),
    )
    .await;
    let detail = db.job(look).await.unwrap().unwrap();
    assert_eq!(
        ended,
        JobState::Succeeded,
        "{:?}",
        detail.summary.last_error
    );
    assert!(
        detail
            .output
            .unwrap()
            .to_string()
            .contains("hello from the page")
    );
    let runs = runs_list(&t.url);
    assert!(
        runs.iter().all(|r| r.get("unserved").is_none()),
        "{runs:#?}"
    );
    browser_worker.shutdown().await;
    plain_worker.shutdown().await;
}

both_backends!(a_browser_job_waits_for_a_worker_that_runs_browsers);

#[test]
fn a_kind_that_is_no_kind_is_refused_with_the_kinds_there_are() {
    let e = Served::check(&["browsr".to_string()]).unwrap_err();
    assert!(
        e.contains("`browsr` is no step kind") && e.contains("browser"),
        "{e}"
    );
    // `ocr` is the extract kind: reading scans needs tesseract, tried here.
    let served = Served::check(&["ocr".to_string(), "command".to_string()]).unwrap();
    assert_eq!(served.kinds, ["extract", "command"]);
}

/// An extract bot whose one template reads scans in Italian, which
/// scripts/setup.sh does not install (`tesseract-ocr-ita`).
const ITALIAN_BOT: &str = r#"
name = "fatture"
[[steps]]
name = "extract"
kind = "extract"
templates = "templates"
"#;

const ITALIAN_TEMPLATE: &str = "issuer: Fornitore Italiano SRL
keywords:
  - Fornitore Italiano
fields:
  invoice_number: Fattura\\s+(\\S+)
options:
  languages:
    - it
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_leaves_a_bot_whose_templates_need_ocr_languages_it_lacks() {
    let t = common::TestDb::new(Kind::Sqlite).await;
    let bots = write_bot(t.path(), "fatture", ITALIAN_BOT);
    let templates = bots.join("fatture/templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(templates.join("fornitore.yml"), ITALIAN_TEMPLATE).unwrap();
    write_bot(t.path(), "plain", COMMAND_BOT);
    let registry = load_bots(&bots);

    // Tried on this machine: the extract kind runs (English loads), the
    // Italian template's step does not, and the reason names the package.
    let served = Served::check(&[]).expect("every kind named nothing");
    assert!(served.kinds.contains(&"extract"), "{served:?}");
    let why = served
        .cannot_run(registry.get("fatture").unwrap())
        .join("; ");
    assert!(
        why.contains("step `extract`") && why.contains("tesseract-ocr-ita"),
        "{why}"
    );
    assert!(served.cannot_run(registry.get("plain").unwrap()).is_empty());
    // The example bot's templates ask for German, French and Dutch, which
    // the setup installs: a worker here runs it.
    let example = load_bots(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bots"));
    assert_eq!(
        served.cannot_run(example.get("invoice-intake").unwrap()),
        Vec::<String>::new()
    );

    // Such a worker does not claim the bot's job, and `clerk runs list`
    // says no running worker serves it.
    let db = t.open().await;
    let mut cfg = fast_config(2);
    cfg.served = served;
    let worker = RunningWorker::start(db.clone(), registry.clone(), cfg);
    left_queued(&db, &t.url, &registry, "fatture").await;
    worker.shutdown().await;
}
