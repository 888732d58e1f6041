//! Mailbox triggers against a private Dovecot, on both back ends: every
//! document of every message becomes exactly one job, whatever is polled
//! again, crashes, or goes down in between.

mod common;

use std::sync::Arc;
use std::time::Duration;

use clerk::jobs::{JobDb, JobState, ListFilter};
use clerk::mail::imap;
use common::dovecot::{Dovecot, PASSWORD, append_all, append_raw, fixture_messages, mixed_batch};
use common::proxy::{Cut, CuttingProxy};
use common::{Kind, RunningWorker, fast_config, new_job, setup, wait_for};

const POLL_BOT: &str = "intake:mailbox:finance@127.0.0.1/INBOX";

fn manifest(port: u16, after: &str) -> String {
    format!(
        r#"
name = "intake"
secrets = ["IMAP_PASSWORD"]

[retry]
max_attempts = 10
backoff = "500ms"
backoff_cap = "1s"
jitter = 0

[[triggers]]
kind = "mailbox"
host = "127.0.0.1"
port = {port}
tls = "plain"
allow_plain = true
user = "finance"
password = "${{secret:IMAP_PASSWORD}}"
every = "1h"
after = "{after}"
timeout = "5s"
input = {{ source = "mail" }}

[[steps]]
name = "book"
kind = "command"
argv = ["true"]
"#
    )
}

fn fill(server: &Dovecot) {
    let messages = fixture_messages();
    let paths: Vec<&std::path::Path> = messages.iter().map(|p| p.as_path()).collect();
    append_all(&server.account(), "INBOX", &paths);
}

/// The jobs of the intake bot, and of those the ones of documents (not of
/// messages that held none).
async fn intake_jobs(db: &JobDb) -> Vec<clerk::jobs::JobSummary> {
    db.list(&ListFilter {
        bot: Some("intake".into()),
        state: None,
        limit: 1000,
        before_id: None,
        ..Default::default()
    })
    .await
    .expect("list")
}

async fn document_jobs(db: &JobDb) -> Vec<clerk::jobs::JobSummary> {
    let mut jobs = intake_jobs(db).await;
    jobs.retain(|j| {
        !j.idempotency_key
            .as_deref()
            .unwrap_or("")
            .ends_with(":none")
    });
    jobs
}

fn folder_size(server: &Dovecot, folder: &str) -> u32 {
    let mut session = imap::connect(&server.account()).expect("connect");
    let exists = session.select(folder).map(|s| s.exists).unwrap_or(0);
    session.logout();
    exists
}

/// A worker that knows the mailbox password from a secrets file.
fn worker(s: &common::Setup) -> RunningWorker {
    let secrets = s.t.path().join("secrets.env");
    std::fs::write(&secrets, format!("IMAP_PASSWORD={PASSWORD}\n")).unwrap();
    let mut cfg = fast_config(2);
    cfg.documents = s.documents();
    cfg.secrets = Arc::new(clerk::config::secrets::Secrets::with_file(&secrets).unwrap());
    RunningWorker::start(s.db.clone(), s.registry.clone(), cfg)
}

/// Queue one poll now; its job id.
async fn queue_poll(s: &common::Setup) -> i64 {
    let bot = s.registry.get(POLL_BOT).expect("the poll bot exists");
    s.db.enqueue(&[new_job(bot, serde_json::json!({}))])
        .await
        .unwrap()[0]
        .id
}

/// Queue one poll and wait for it to succeed; its output.
async fn poll(s: &common::Setup) -> serde_json::Value {
    let id = queue_poll(s).await;
    wait_for(&s.db, id, &[JobState::Succeeded], Duration::from_secs(60)).await;
    let job = s.db.job(id).await.unwrap().unwrap();
    job.output.clone().unwrap_or_default()
}

async fn each_document_of_each_message_becomes_one_job(kind: Kind) {
    let server = Dovecot::start();
    let s = setup(kind, "intake", &manifest(server.port, "move")).await;
    fill(&server);
    let w = worker(&s);

    let first = poll(&s).await;
    assert_eq!(first["messages"], 10, "{first:#}");
    assert_eq!(first["new_jobs"], 8, "{first:#}");
    assert_eq!(first["failed"], 1, "{first:#}");
    // The message with no document is not dropped in silence: a failed
    // job names it, and its bot's owners are told.
    assert_eq!(first["without_document"], 1, "{first:#}");
    let all = intake_jobs(&s.db).await;
    let told: Vec<_> = all.iter().filter(|j| j.state == JobState::Failed).collect();
    assert_eq!(told.len(), 1, "{all:?}");
    let error = told[0].last_error.clone().unwrap_or_default();
    assert!(
        error.contains("\"Lunch?\"")
            && error.contains("colleague@clerk.example")
            && error.contains("no attachment"),
        "{error}"
    );
    let jobs = document_jobs(&s.db).await;
    assert_eq!(jobs.len(), 8);
    // Each job has its document on disk and the message it came from.
    let mut subjects = Vec::new();
    for summary in &jobs {
        let job = s.db.job(summary.id).await.unwrap().unwrap();
        let sha = job.input["sha256"].as_str().unwrap();
        // The same content mailed under two names is kept once (under the
        // first name); each job keeps the name its own message gave.
        let (_, content) = s.documents().get(sha).await.unwrap().unwrap();
        assert_eq!(clerk::documents::store::sha256_hex(&content), sha);
        assert!(job.input.get("file").is_none(), "{:#}", job.input);
        assert_eq!(job.input["source"], "mail");
        subjects.push(
            job.input["mail"]["subject"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
    }
    assert!(
        subjects.contains(&"Rechnung für März".to_string()),
        "{subjects:?}"
    );
    assert!(
        subjects.contains(&"Fwd: Rechnung RE-2026-67181".to_string()),
        "{subjects:?}"
    );
    // Messages taken went to Processed, the one that is not a message to Failed.
    assert_eq!(folder_size(&server, "INBOX"), 0);
    assert_eq!(folder_size(&server, "Processed"), 9);
    assert_eq!(folder_size(&server, "Failed"), 1);

    // A second poll finds nothing new.
    let second = poll(&s).await;
    assert_eq!(second["messages"], 0, "{second:#}");
    assert_eq!(document_jobs(&s.db).await.len(), 8);
    w.shutdown().await;
}

async fn polling_again_after_a_crash_before_the_move_doubles_nothing(kind: Kind) {
    let server = Dovecot::start();
    // Messages stay where they are, as after a crash between queueing the
    // documents and moving the messages.
    let s = setup(kind, "intake", &manifest(server.port, "leave")).await;
    fill(&server);
    let w = worker(&s);
    let first = poll(&s).await;
    assert_eq!(first["new_jobs"], 8, "{first:#}");
    // Forget the checkpoint, as a crash before it was written would, or as a
    // mailbox whose UIDVALIDITY changed does: every message is read again.
    s.db.set_checkpoint(POLL_BOT, "mailbox:finance@127.0.0.1/INBOX:INBOX", "1:0")
        .await
        .unwrap();
    let again = poll(&s).await;
    // The one that is not a message went to Failed even so.
    assert_eq!(again["messages"], 9, "{again:#}");
    assert_eq!(again["new_jobs"], 0, "{again:#}");
    assert_eq!(document_jobs(&s.db).await.len(), 8);
    assert_eq!(folder_size(&server, "INBOX"), 9);
    w.shutdown().await;
}

async fn a_poll_while_the_server_is_down_retries_until_it_is_back(kind: Kind) {
    let mut server = Dovecot::start();
    let s = setup(kind, "intake", &manifest(server.port, "move")).await;
    fill(&server);
    server.stop();
    let w = worker(&s);
    let id = queue_poll(&s).await;
    // The first attempts fail as transient errors and are retried.
    let start = std::time::Instant::now();
    loop {
        let job = s.db.job(id).await.unwrap().unwrap();
        assert!(
            matches!(job.summary.state, JobState::Queued | JobState::Running),
            "{job:#?}"
        );
        // Two attempts ended, each waiting for its retry.
        if job.summary.attempt >= 2 && job.summary.state == JobState::Queued {
            let error = job.summary.last_error.clone().unwrap_or_default();
            assert!(error.contains("cannot reach the IMAP server"), "{error}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{job:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.restart();
    wait_for(&s.db, id, &[JobState::Succeeded], Duration::from_secs(60)).await;
    assert_eq!(document_jobs(&s.db).await.len(), 8);
    assert_eq!(folder_size(&server, "INBOX"), 0);
    w.shutdown().await;
}

async fn fifty_messages_through_connections_cut_mid_fetch_and_before_the_move(kind: Kind) {
    let server = Dovecot::start();
    let proxy = CuttingProxy::start(server.port);
    let s = setup(kind, "intake", &manifest(proxy.port, "move")).await;
    let batch = mixed_batch(40);
    append_raw(&server.account(), "INBOX", &batch.messages);
    fill(&server);
    assert_eq!(folder_size(&server, "INBOX"), 50);
    // The first poll loses its connection while the messages come in; the
    // second after queueing the documents, before moving the messages.
    proxy.plan([
        Cut::AfterServerBytes(100_000),
        Cut::OnClientText("UID MOVE"),
    ]);
    let w = worker(&s);
    let id = queue_poll(&s).await;
    wait_for(&s.db, id, &[JobState::Succeeded], Duration::from_secs(60)).await;
    w.shutdown().await;
    assert_eq!(proxy.cuts(), 2);
    let poll = s.db.job(id).await.unwrap().unwrap();
    assert_eq!(poll.summary.attempt, 3, "{poll:#?}");

    // Exactly the documents the messages hold: the 8 of the MIME cases and
    // those of the mixed batch, each once.
    let jobs = document_jobs(&s.db).await;
    let mut found = std::collections::BTreeSet::new();
    let mut keys = std::collections::BTreeSet::new();
    for summary in &jobs {
        let job = s.db.job(summary.id).await.unwrap().unwrap();
        let message_id = job.input["mail"]["message_id"].as_str().unwrap_or("");
        let sha = job.input["sha256"].as_str().unwrap_or("");
        found.insert((
            message_id.trim_matches(['<', '>']).to_string(),
            sha.to_string(),
        ));
        assert!(keys.insert(summary.idempotency_key.clone()), "{summary:?}");
    }
    assert_eq!(jobs.len(), 8 + batch.expected.len());
    let missing: Vec<_> = batch.expected.difference(&found).collect();
    assert!(missing.is_empty(), "documents without a job: {missing:?}");
    assert_eq!(folder_size(&server, "INBOX"), 0);
    assert_eq!(folder_size(&server, "Processed"), 49);
    assert_eq!(folder_size(&server, "Failed"), 1);
}

/// Two `clerk serve` processes on one database, each free to run four jobs
/// at once, with polls queued faster than they finish: the mailbox is
/// polled by one of them at a time, and each document is one job.
async fn two_processes_poll_one_mailbox_one_at_a_time(kind: Kind) {
    let server = Dovecot::start();
    let manifest = manifest(server.port, "leave").replace("every = \"1h\"", "every = \"1s\"");
    let s = setup(kind, "intake", &manifest).await;
    let batch = mixed_batch(40);
    append_raw(&server.account(), "INBOX", &batch.messages);
    fill(&server);
    let bot = s.registry.get(POLL_BOT).unwrap();
    let queued: Vec<_> = (0..6)
        .map(|_| new_job(bot, serde_json::json!({})))
        .collect();
    let polls = common::enqueue_ids(&s.db, &queued).await;
    let serve = |name: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_clerk"))
            .args([
                "serve",
                "-c",
                "4",
                "--poll-interval",
                "100ms",
                "--worker-id",
                name,
                "--no-web",
            ])
            .arg("--database")
            .arg(&s.t.url)
            .arg("--data-dir")
            .arg(s.t.path().join(name))
            .arg("--bots")
            .arg(&s.bots)
            .env("IMAP_PASSWORD", PASSWORD)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("clerk serve")
    };
    let processes = common::Stopped([serve("one"), serve("two")]);
    for &id in &polls {
        wait_for(&s.db, id, &[JobState::Succeeded], Duration::from_secs(90)).await;
    }
    // Let scheduled polls run as well (one queued at a time), until each
    // process has polled.
    let start = std::time::Instant::now();
    let (mut all_polls, mut spans, mut workers);
    loop {
        all_polls =
            s.db.list(&ListFilter {
                bot: Some(POLL_BOT.into()),
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        spans = Vec::new();
        workers = std::collections::BTreeSet::new();
        for summary in &all_polls {
            let job = s.db.job(summary.id).await.unwrap().unwrap();
            for a in &job.attempts {
                workers.insert(a.worker.clone());
                spans.push((
                    a.started_at,
                    a.finished_at.unwrap_or(i64::MAX),
                    a.worker.clone(),
                ));
            }
        }
        let scheduled = all_polls.len() > polls.len();
        if (workers.len() >= 2 && scheduled) || start.elapsed() > Duration::from_secs(30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(processes);
    assert!(all_polls.len() > polls.len(), "the schedule added polls");
    assert_eq!(workers.len(), 2, "both processes polled: {workers:?}");
    spans.sort();
    for pair in spans.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "two polls of one mailbox overlapped: {pair:?}"
        );
    }
    let jobs = document_jobs(&s.db).await;
    assert_eq!(jobs.len(), 8 + batch.expected.len());
}

/// With `idle = true`, one poll job listens: mail appended while it runs
/// becomes jobs at once, without another poll; a shutdown ends the
/// listening at once, the poll done.
async fn with_idle_mail_is_taken_as_it_arrives(kind: Kind) {
    let server = Dovecot::start();
    let manifest =
        manifest(server.port, "move").replace("every = \"1h\"", "every = \"1h\"\nidle = true");
    let s = setup(kind, "intake", &manifest).await;
    let w = worker(&s);
    let id = queue_poll(&s).await;
    wait_for(&s.db, id, &[JobState::Running], Duration::from_secs(30)).await;
    let messages = fixture_messages();
    for (n, message) in [&messages[0], &messages[1]].into_iter().enumerate() {
        append_all(&server.account(), "INBOX", &[message.as_path()]);
        let start = std::time::Instant::now();
        while document_jobs(&s.db).await.len() < n + 1 {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no job for message {n}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The same poll took it: it is still listening.
        assert_eq!(s.db.state(id).await.unwrap(), Some(JobState::Running));
        assert_eq!(
            s.db.list(&ListFilter {
                bot: Some(POLL_BOT.into()),
                state: None,
                limit: 10,
                before_id: None,
                ..Default::default()
            })
            .await
            .unwrap()
            .len(),
            1
        );
    }
    assert_eq!(folder_size(&server, "Processed"), 2);
    // A shutdown ends the listening at once: the poll is done, not kept
    // waiting for the grace period and interrupted.
    let start = std::time::Instant::now();
    w.shutdown().await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "the shutdown waited {:?} for a listening poll",
        start.elapsed()
    );
    assert_eq!(s.db.state(id).await.unwrap(), Some(JobState::Succeeded));
}

/// A message with one PDF attached.
fn message_with(id: &str, subject: &str, pdf: &[u8]) -> Vec<u8> {
    use lettre::message::header::ContentType;
    use lettre::message::{Attachment, MultiPart, SinglePart};
    let parts = MultiPart::mixed()
        .singlepart(SinglePart::plain("Invoice attached.".to_string()))
        .singlepart(
            Attachment::new("invoice.pdf".into())
                .body(pdf.to_vec(), ContentType::parse("application/pdf").unwrap()),
        );
    lettre::Message::builder()
        .from("Billing <billing@vendor.example>".parse().unwrap())
        .to("invoices@clerk.example".parse().unwrap())
        .subject(subject)
        .message_id(Some(format!("<{id}>")))
        .multipart(parts)
        .unwrap()
        .formatted()
}

fn invoice_pdf() -> Vec<u8> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read(root.join("fixtures/bad/owner-only.pdf")).unwrap()
}

/// With `dedupe = "content"`, a document mailed twice (two messages) and
/// dropped into the bot's folder as well is one job.
async fn a_document_mailed_twice_and_dropped_is_one_job(kind: Kind) {
    let server = Dovecot::start();
    let with_folder = manifest(server.port, "move").replace(
        "[[steps]]",
        "[[triggers]]\nkind = \"folder\"\npath = \"drop\"\nsettle = \"100ms\"\n\n[[steps]]",
    );
    let bot = with_folder.replace(
        "name = \"intake\"\n",
        "name = \"intake\"\ndedupe = \"content\"\n",
    );
    let s = setup(kind, "intake", &bot).await;
    let pdf = invoice_pdf();
    append_raw(
        &server.account(),
        "INBOX",
        &[
            message_with("first@vendor.example", "Invoice 7", &pdf),
            message_with("resent@vendor.example", "Invoice 7 (again)", &pdf),
        ],
    );
    let w = worker(&s);
    let polled = poll(&s).await;
    assert_eq!(
        (&polled["messages"], &polled["new_jobs"]),
        (&serde_json::json!(2), &serde_json::json!(1)),
        "{polled:#}"
    );
    w.shutdown().await;
    let drop = s.bots.join("intake/drop");
    std::fs::create_dir_all(&drop).unwrap();
    std::fs::write(drop.join("scan-of-invoice-7.pdf"), &pdf).unwrap();
    let mut folder = clerk::scheduler::folder::FolderIntake::new(
        s.db.clone(),
        s.documents(),
        &s.registry,
        "test",
    );
    let mut taken = Vec::new();
    for _ in 0..20 {
        taken.extend(folder.scan().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert!(
        matches!(
            taken[0].taken,
            clerk::scheduler::folder::Taken::Duplicate(_)
        ),
        "{taken:?}"
    );
    assert_eq!(document_jobs(&s.db).await.len(), 1);
}

/// A message whose header holds what the job database cannot keep (a NUL
/// character, encoded in its subject) goes to the failed folder with why;
/// the other messages of the batch become their jobs.
async fn a_message_that_cannot_be_stored_goes_to_the_failed_folder(kind: Kind) {
    let server = Dovecot::start();
    let s = setup(kind, "intake", &manifest(server.port, "move")).await;
    let pdf = invoice_pdf();
    let good = message_with("good@vendor.example", "Invoice 8", &pdf);
    let bad = String::from_utf8(message_with(
        "bad@vendor.example",
        "PLACEHOLDER",
        b"%PDF-1.4 other",
    ))
    .unwrap()
    .replace("Subject: PLACEHOLDER", "Subject: =?utf-8?q?Invoice=009?=")
    .into_bytes();
    append_raw(&server.account(), "INBOX", &[bad, good]);
    let w = worker(&s);
    let polled = poll(&s).await;
    w.shutdown().await;
    assert_eq!(polled["new_jobs"], 1, "{polled:#}");
    assert_eq!(polled["failed"], 1, "{polled:#}");
    let said = polled.to_string();
    assert!(said.contains("NUL"), "{said}");
    assert_eq!(folder_size(&server, "Failed"), 1);
    assert_eq!(folder_size(&server, "Processed"), 1);
    assert_eq!(document_jobs(&s.db).await.len(), 1);
}

both_backends!(
    with_idle_mail_is_taken_as_it_arrives,
    two_processes_poll_one_mailbox_one_at_a_time,
    fifty_messages_through_connections_cut_mid_fetch_and_before_the_move,
    each_document_of_each_message_becomes_one_job,
    polling_again_after_a_crash_before_the_move_doubles_nothing,
    a_poll_while_the_server_is_down_retries_until_it_is_back,
    a_document_mailed_twice_and_dropped_is_one_job,
    a_message_that_cannot_be_stored_goes_to_the_failed_folder,
);
