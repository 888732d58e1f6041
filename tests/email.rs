//! The `email` step through a real SMTP server (aiosmtpd, delivering into a
//! maildir): the message has what the job says, its attachment, and the
//! same Message-ID however often the step runs.

mod common;

use std::time::Duration;

use clerk::jobs::JobState;
use clerk::mail::{AttachmentFilter, parse};
use common::smtp::{SmtpServer, SmtpTls};
use common::{Kind, RunningWorker, fast_config, new_job, setup, wait_for};

fn manifest(port: u16) -> String {
    format!(
        r#"
name = "confirm"

[[steps]]
name = "book"
kind = "command"
argv = ["sh", "-c", "echo '{{\"booking\": \"B00042\"}}'"]

[[steps]]
name = "reply"
kind = "email"
host = "127.0.0.1"
port = {port}
tls = "plain"
allow_plain = true
from = "clerk <clerk@clerk.example>"
to = ["{{{{input.mail.from}}}}"]
cc = ["finance-ops@clerk.example"]
subject = "Invoice {{{{invoice_number}}}} received"
body = "Thank you: invoice {{{{invoice_number}}}} is booked as {{{{booking}}}}."
attach = ["{{{{input.file}}}}"]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmation_arrives_with_the_jobs_fields_and_its_attachment() {
    let smtp = SmtpServer::start();
    let s = setup(Kind::Sqlite, "confirm", &manifest(smtp.port)).await;
    let pdf = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/invoices/acme-office/RE-2026-67181.pdf");
    let bot = s.registry.get("confirm").unwrap();
    let input = serde_json::json!({
        "invoice_number": "RE-2026-67181",
        "file": pdf,
        "mail": {"from": "ACME Billing <billing@acme.example>"},
    });
    let id = s.db.enqueue(&[new_job(bot, input)]).await.unwrap()[0].id;
    let w = RunningWorker::start(s.db.clone(), s.registry.clone(), fast_config(1));
    wait_for(&s.db, id, &[JobState::Succeeded], Duration::from_secs(30)).await;
    w.shutdown().await;

    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    let raw = &messages[0];
    let text = String::from_utf8_lossy(raw);
    assert!(
        text.contains("To: \"ACME Billing\" <billing@acme.example>")
            || text.contains("To: ACME Billing <billing@acme.example>"),
        "{text}"
    );
    assert!(text.contains("Cc: finance-ops@clerk.example"), "{text}");
    assert!(
        text.contains(&format!("Message-ID: <clerk-job-{id}-reply@clerk.example>")),
        "{text}"
    );
    let mail = parse(raw, &AttachmentFilter::default()).unwrap();
    assert_eq!(
        mail.subject.as_deref(),
        Some("Invoice RE-2026-67181 received")
    );
    assert!(text.contains("is booked as B00042."), "{text}");
    assert_eq!(mail.documents.len(), 1);
    assert_eq!(mail.documents[0].name, "RE-2026-67181.pdf");
    assert!(mail.documents[0].bytes == std::fs::read(&pdf).unwrap());
    // The step's output says what was sent.
    let job = s.db.job(id).await.unwrap().unwrap();
    let output = job.output.unwrap();
    assert_eq!(output["subject"], "Invoice RE-2026-67181 received");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placeholder_that_names_nothing_fails_the_job_and_sends_nothing() {
    let smtp = SmtpServer::start();
    let s = setup(Kind::Sqlite, "confirm", &manifest(smtp.port)).await;
    let bot = s.registry.get("confirm").unwrap();
    // No `mail.from` in the input: there is nobody to reply to.
    let input = serde_json::json!({"invoice_number": "RE-1", "file": "x.pdf"});
    let id = s.db.enqueue(&[new_job(bot, input)]).await.unwrap()[0].id;
    let w = RunningWorker::start(s.db.clone(), s.registry.clone(), fast_config(1));
    wait_for(&s.db, id, &[JobState::Failed], Duration::from_secs(30)).await;
    w.shutdown().await;
    let job = s.db.job(id).await.unwrap().unwrap();
    let error = job.summary.last_error.unwrap_or_default();
    assert!(error.contains("{{input.mail.from}}"), "{error}");
    assert!(smtp.messages().is_empty());
}

/// A path made from job data attaches files of the bot's folder only: a
/// value that climbs out (`../../etc/passwd`) fails the job and mails
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_templated_attachment_stays_in_the_bots_folder() {
    let smtp = SmtpServer::start();
    let manifest = manifest(smtp.port).replace(
        r#"attach = ["{{input.file}}"]"#,
        r#"attach = ["notes/{{input.note}}"]"#,
    );
    assert!(manifest.contains("notes/"));
    let s = setup(Kind::Sqlite, "confirm", &manifest).await;
    let bot = s.registry.get("confirm").unwrap();
    std::fs::create_dir_all(bot.dir.join("notes")).unwrap();
    std::fs::write(bot.dir.join("notes/terms.txt"), "Net 30").unwrap();
    let input = |note: &str| {
        serde_json::json!({
            "invoice_number": "RE-1",
            "note": note,
            "mail": {"from": "billing@acme.example"},
        })
    };
    let climbing = "../".repeat(20) + "etc/passwd";
    let ids =
        s.db.enqueue(&[
            new_job(bot, input(&climbing)),
            new_job(bot, input("terms.txt")),
        ])
        .await
        .unwrap();
    let w = RunningWorker::start(s.db.clone(), s.registry.clone(), fast_config(1));
    wait_for(
        &s.db,
        ids[0].id,
        &[JobState::Failed],
        Duration::from_secs(30),
    )
    .await;
    wait_for(
        &s.db,
        ids[1].id,
        &[JobState::Succeeded],
        Duration::from_secs(30),
    )
    .await;
    w.shutdown().await;
    let job = s.db.job(ids[0].id).await.unwrap().unwrap();
    let error = job.summary.last_error.unwrap_or_default();
    assert!(error.contains("outside the bot's folder"), "{error}");
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "only the second job mails");
    let text = String::from_utf8_lossy(&messages[0]);
    assert!(text.contains("terms.txt"), "{text}");
    assert!(!text.contains("passwd"), "{text}");
}

fn tls_manifest(port: u16, tls: &str, ca_file: Option<&std::path::Path>) -> String {
    let ca = ca_file.map_or(String::new(), |f| format!("ca_file = \"{}\"", f.display()));
    format!(
        r#"
name = "confirm"

[retry]
max_attempts = 1

[[steps]]
name = "reply"
kind = "email"
host = "127.0.0.1"
port = {port}
tls = "{tls}"
{ca}
from = "clerk@clerk.example"
to = ["billing@acme.example"]
subject = "Invoice received"
body = "Sent over TLS."
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_and_implicit_tls_send_when_the_certificate_is_trusted() {
    for (mode, tls) in [
        (SmtpTls::StartTls, "starttls"),
        (SmtpTls::Implicit, "implicit"),
    ] {
        let smtp = SmtpServer::start_with(mode);
        let s = setup(
            Kind::Sqlite,
            "confirm",
            &tls_manifest(smtp.port, tls, Some(&smtp.ca_file)),
        )
        .await;
        let bot = s.registry.get("confirm").unwrap();
        let id =
            s.db.enqueue(&[new_job(bot, serde_json::json!({}))])
                .await
                .unwrap()[0]
                .id;
        let w = RunningWorker::start(s.db.clone(), s.registry.clone(), fast_config(1));
        let state = wait_for(
            &s.db,
            id,
            &[JobState::Succeeded, JobState::Failed, JobState::Dead],
            Duration::from_secs(30),
        )
        .await;
        w.shutdown().await;
        let job = s.db.job(id).await.unwrap().unwrap();
        assert_eq!(
            state,
            JobState::Succeeded,
            "{tls}: {:?}",
            job.summary.last_error
        );
        let messages = smtp.messages();
        assert_eq!(messages.len(), 1, "{tls}");
        assert!(String::from_utf8_lossy(&messages[0]).contains("Sent over TLS."));

        // Without the certificate: refused, nothing sent, the reason said.
        let s = setup(Kind::Sqlite, "confirm", &tls_manifest(smtp.port, tls, None)).await;
        let bot = s.registry.get("confirm").unwrap();
        let id =
            s.db.enqueue(&[new_job(bot, serde_json::json!({}))])
                .await
                .unwrap()[0]
                .id;
        let w = RunningWorker::start(s.db.clone(), s.registry.clone(), fast_config(1));
        wait_for(
            &s.db,
            id,
            &[JobState::Failed, JobState::Dead],
            Duration::from_secs(30),
        )
        .await;
        w.shutdown().await;
        let job = s.db.job(id).await.unwrap().unwrap();
        let error = job.summary.last_error.unwrap_or_default();
        assert!(error.contains("certificate"), "{tls}: {error}");
        assert_eq!(smtp.messages().len(), 1, "{tls}");
    }
}
