//! Owners and reviewers are mailed through a real SMTP server (aiosmtpd)
//! about the jobs that need them, on both back ends: failures at once and
//! together, reviews in batches, nothing twice, nothing lost while the
//! server is down.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clerk::config::secrets::Secrets;
use clerk::jobs::{JobDb, JobState};
use clerk::mail::notify::{Notifier, Report};
use common::smtp::SmtpServer;
use common::{Kind, RunningWorker, Setup, fast_config, new_job, setup, wait_for};

fn manifest(port: u16, templates: &Path, top: &str) -> String {
    format!(
        r#"
name = "ap"
{top}
owners = ["Finance Ops <ops@clerk.example>"]
reviewers = ["ap-review@clerk.example", "lead@clerk.example"]

[notify]
host = "127.0.0.1"
port = {port}
tls = "plain"
allow_plain = true
from = "clerk <clerk@clerk.example>"
review_every = "1h"

[[steps]]
name = "extract"
kind = "extract"
templates = "{templates}"

[[steps]]
name = "book"
kind = "command"
argv = ["sh", "-c", "echo 'the ledger is closed for the year' >&2; exit 3"]
failure = "business"
"#,
        templates = templates.display()
    )
}

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Acme invoices match the only template and then fail to book; the
/// Papeterie ones match nothing and wait for review.
const ACME: &str = "fixtures/invoices/acme-office/RE-2026-67181.pdf";
const PAPETERIE: &str = "fixtures/invoices/papeterie-lumiere";

fn papeterie(n: usize) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixture(PAPETERIE))
        .expect("fixtures")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pdf"))
        .collect();
    files.sort();
    files[n % files.len()].clone()
}

struct Harness {
    s: Setup,
    smtp: SmtpServer,
    _templates: tempfile::TempDir,
}

async fn start(kind: Kind) -> Harness {
    start_with(kind, "").await
}

async fn start_with(kind: Kind, top: &str) -> Harness {
    let smtp = SmtpServer::start();
    let templates = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        fixture("bots/invoice-intake/templates/acme-office.yml"),
        templates.path().join("acme-office.yml"),
    )
    .expect("template");
    let s = setup(kind, "ap", &manifest(smtp.port, templates.path(), top)).await;
    Harness {
        s,
        smtp,
        _templates: templates,
    }
}

fn notifier(db: &JobDb, h: &Harness, name: &str) -> Notifier {
    Notifier::new(
        db.clone(),
        h.s.registry.clone(),
        Arc::new(Secrets::default()),
        name,
    )
    .with_retry_pause(Duration::from_millis(300))
}

/// Run jobs of the given documents to their end; returns their ids.
async fn run_jobs(h: &Harness, files: &[PathBuf]) -> Vec<i64> {
    let bot = h.s.registry.get("ap").expect("bot");
    let jobs: Vec<_> = files
        .iter()
        .map(|f| new_job(bot, serde_json::json!({ "file": f, "name": f.file_name().map(|n| n.to_string_lossy().into_owned()) })))
        .collect();
    let ids = common::enqueue_ids(&h.s.db, &jobs).await;
    let w = RunningWorker::start(h.s.db.clone(), h.s.registry.clone(), fast_config(2));
    for &id in &ids {
        wait_for(
            &h.s.db,
            id,
            &[JobState::Failed, JobState::WaitingReview],
            Duration::from_secs(60),
        )
        .await;
    }
    w.shutdown().await;
    ids
}

struct Mail {
    to: Vec<String>,
    subject: String,
    body: String,
    message_id: String,
}

fn mails(smtp: &SmtpServer) -> Vec<Mail> {
    smtp.messages()
        .iter()
        .map(|raw| {
            let m = mail_parser::MessageParser::default()
                .parse(raw)
                .expect("a message");
            Mail {
                to: m
                    .to()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.address().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                subject: m.subject().unwrap_or_default().to_string(),
                body: m.body_text(0).unwrap_or_default().to_string(),
                message_id: m.message_id().unwrap_or_default().to_string(),
            }
        })
        .collect()
}

async fn failures_and_reviews_reach_the_right_people(kind: Kind) {
    let h = start(kind).await;
    let mut files = vec![fixture(ACME); 3];
    files.extend((0..3).map(papeterie));
    let ids = run_jobs(&h, &files).await;

    let n = notifier(&h.s.db, &h, "one");
    let report = n.check().await.expect("check");
    assert_eq!(
        report,
        Report {
            sent: 2,
            notices: 6,
            ..Report::default()
        }
    );
    let got = mails(&h.smtp);
    assert_eq!(got.len(), 2);
    let owners = got
        .iter()
        .find(|m| m.to == ["ops@clerk.example"])
        .expect("a mail to the owners");
    assert_eq!(
        owners.subject,
        "[clerk] ap: 3 jobs need attention (3 failed)"
    );
    for id in &ids[..3] {
        assert!(
            owners.body.contains(&format!("clerk runs retry {id}")),
            "{}",
            owners.body
        );
    }
    assert!(
        owners.body.contains("the ledger is closed for the year"),
        "{}",
        owners.body
    );
    assert!(owners.body.contains("RE-2026-67181.pdf"), "{}", owners.body);
    let reviewers = got
        .iter()
        .find(|m| m.to == ["ap-review@clerk.example", "lead@clerk.example"])
        .expect("one mail to both reviewers");
    assert_eq!(reviewers.subject, "[clerk] ap: 3 jobs wait for review");
    for id in &ids[3..] {
        assert!(
            reviewers.body.contains(&format!("clerk runs approve {id}")),
            "{}",
            reviewers.body
        );
    }
    assert!(
        reviewers.body.contains("no template matched"),
        "{}",
        reviewers.body
    );

    // Looking again sends nothing new.
    assert_eq!(n.check().await.expect("check"), Report::default());
    assert_eq!(mails(&h.smtp).len(), 2);

    // A new review within `review_every` waits for the next batch; a new
    // failure is mailed at once, by exactly one of two notifiers racing
    // (two `clerk serve` processes).
    let more = run_jobs(&h, &[papeterie(3), fixture(ACME)]).await;
    let other = notifier(&h.s.db, &h, "two");
    let (a, b) = tokio::join!(n.check(), other.check());
    let (a, b) = (a.expect("check"), b.expect("check"));
    assert_eq!(a.sent + b.sent, 1, "{a:?} {b:?}");
    let got = mails(&h.smtp);
    assert_eq!(got.len(), 3);
    let latest = got
        .iter()
        .find(|m| m.subject == format!("[clerk] ap: job {} failed", more[1]))
        .expect("the failure mail");
    assert!(!latest.body.contains(&format!("job {}", more[0])));
    assert_ne!(latest.message_id, owners.message_id);
}

async fn nothing_is_lost_while_the_mail_server_is_down(kind: Kind) {
    let mut h = start(kind).await;
    h.smtp.stop();
    let ids = run_jobs(&h, &[fixture(ACME)]).await;
    let n = notifier(&h.s.db, &h, "one");
    let report = n.check().await.expect("check");
    assert_eq!(report.failed, 1, "{report:?}");
    assert_eq!(report.sent, 0);
    // Until the pause is over, the notice is not tried again.
    assert_eq!(n.check().await.expect("check"), Report::default());

    h.smtp.restart();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let report = n.check().await.expect("check");
    assert_eq!(report.sent, 1, "{report:?}");
    let got = mails(&h.smtp);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].subject, format!("[clerk] ap: job {} failed", ids[0]));
}

/// A review past the bot's `review_within` is mailed to its owners and
/// reviewers together, once, however many notifiers look.
async fn an_overdue_review_is_told_once(kind: Kind) {
    let h = start_with(kind, "review_within = \"1s\"").await;
    let ids = run_jobs(&h, &[papeterie(0)]).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (one, two) = (notifier(&h.s.db, &h, "one"), notifier(&h.s.db, &h, "two"));
    let (a, b) = tokio::join!(one.check(), two.check());
    let (a, b) = (a.expect("check"), b.expect("check"));
    // The review's own mail, and the overdue one.
    assert_eq!(a.sent + b.sent, 2, "{a:?} {b:?}");
    assert_eq!(one.check().await.expect("check"), Report::default());
    let got = mails(&h.smtp);
    let overdue: Vec<&Mail> = got
        .iter()
        .filter(|m| m.subject.contains("overdue"))
        .collect();
    assert_eq!(overdue.len(), 1);
    assert_eq!(
        overdue[0].subject,
        format!("[clerk] ap: the review of job {} is overdue", ids[0])
    );
    assert_eq!(
        overdue[0].to,
        [
            "ops@clerk.example",
            "ap-review@clerk.example",
            "lead@clerk.example"
        ]
    );
    assert!(
        overdue[0].body.contains("is overdue for review"),
        "{}",
        overdue[0].body
    );
    assert!(
        overdue[0].body.contains("review overdue: it was due by"),
        "{}",
        overdue[0].body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_overdue_review_is_told_once() {
    an_overdue_review_is_told_once(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_overdue_review_is_told_once() {
    an_overdue_review_is_told_once(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_failures_and_reviews_reach_the_right_people() {
    failures_and_reviews_reach_the_right_people(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_failures_and_reviews_reach_the_right_people() {
    failures_and_reviews_reach_the_right_people(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_nothing_is_lost_while_the_mail_server_is_down() {
    nothing_is_lost_while_the_mail_server_is_down(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_nothing_is_lost_while_the_mail_server_is_down() {
    nothing_is_lost_while_the_mail_server_is_down(Kind::Postgres).await;
}
