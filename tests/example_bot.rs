//! The example bot `bots/invoice-intake` as shipped, end to end: real PDF
//! invoices extracted with the vendors' templates, booked into the legacy
//! ERP fixture through its forms in headless Chromium (with the scan
//! attached), and confirmed by mail through a real SMTP server. Only the
//! addresses of the ERP and the mail server are changed, to free ports.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clerk::jobs::JobState;
use common::erp::{self, Erp, install_example};
use common::smtp::SmtpServer;
use common::{Kind, RunningWorker, TestDb, fast_config, load_bots, new_job, wait_for};
use sha2::Digest;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What a fixture invoice says it holds (`<name>.json` next to the PDF).
fn truth(pdf: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(pdf.with_extension("json")).unwrap()).unwrap()
}

/// "30208.34" as the ERP wants it: "30.208,34".
fn german_amount(amount: &str) -> String {
    let (units, cents) = amount.split_once('.').unwrap_or((amount, "00"));
    let mut grouped = Vec::new();
    let digits: Vec<char> = units.chars().collect();
    for chunk in digits.rchunks(3).rev() {
        grouped.push(chunk.iter().collect::<String>());
    }
    format!("{},{cents:0<2}", grouped.join("."))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_bot_extracts_books_once_and_confirms_by_mail() {
    let erp = Erp::start_with_delay("0.2");
    let smtp = SmtpServer::start();
    let t = TestDb::new(Kind::Sqlite).await;
    let bots = t.path().join("bots");
    install_example(&bots, &erp, &smtp);
    let registry = load_bots(&bots);
    let db = t.open().await;
    let secrets = t.path().join("secrets.env");
    std::fs::write(&secrets, format!("ERP_PASSWORD={}\n", erp::PASSWORD)).unwrap();
    let mut cfg = fast_config(2);
    cfg.secrets = Arc::new(clerk::config::secrets::Secrets::with_file(&secrets).unwrap());
    let w = RunningWorker::start(db.clone(), registry.clone(), cfg);
    let bot = registry.get("invoice-intake").unwrap();

    let invoices: Vec<PathBuf> = [
        "acme-office/RE-2026-66261.pdf",
        "blue-harbor/BH-13107.pdf",
        "nordwind-logistics/NWL13487.pdf",
        "papeterie-lumiere/F27669.pdf",
    ]
    .iter()
    .map(|p| root().join("fixtures/invoices").join(p))
    .collect();
    let mut inputs: Vec<serde_json::Value> = invoices
        .iter()
        .map(|p| serde_json::json!({ "file": p }))
        .collect();
    // The first invoice once more, and a document no template fits.
    inputs.push(inputs[0].clone());
    inputs.push(serde_json::json!({ "file": root().join("fixtures/bad/owner-only.pdf") }));
    let mut ids = Vec::new();
    for input in &inputs {
        // One at a time, so the repeated invoice comes after its booking.
        let id = db.enqueue(&[new_job(bot, input.clone())]).await.unwrap()[0].id;
        let end = [
            JobState::Succeeded,
            JobState::Failed,
            JobState::Dead,
            JobState::WaitingReview,
        ];
        wait_for(&db, id, &end, Duration::from_secs(120)).await;
        ids.push(id);
    }
    w.shutdown().await;

    let mut jobs = Vec::new();
    for id in &ids {
        jobs.push(db.job(*id).await.unwrap().unwrap());
    }
    for job in &jobs[..5] {
        assert_eq!(job.summary.state, JobState::Succeeded, "{job:#?}");
    }
    assert_eq!(jobs[5].summary.state, JobState::WaitingReview);

    // Each invoice booked once, with the values of the document in the
    // ERP's formats and the scan itself attached.
    let bookings = erp.bookings();
    assert_eq!(bookings.len(), 4, "{bookings:#?}");
    for (pdf, booking) in invoices.iter().zip(&bookings) {
        let truth = truth(pdf);
        assert_eq!(booking["invoice"], truth["invoice_number"], "{booking:#}");
        let iso = truth["date"].as_str().unwrap();
        let dmy = format!("{}.{}.{}", &iso[8..10], &iso[5..7], &iso[0..4]);
        assert_eq!(booking["date"], dmy.as_str());
        assert_eq!(
            booking["amount"],
            german_amount(truth["amount"].as_str().unwrap()).as_str()
        );
        let bytes = std::fs::read(pdf).unwrap();
        let sha = sha2::Sha256::digest(&bytes);
        let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(booking["scan"]["sha256"], hex.as_str(), "{booking:#}");
        assert_eq!(
            booking["scan"]["name"],
            pdf.file_name().unwrap().to_str().unwrap()
        );
    }
    let vendors: Vec<&str> = bookings
        .iter()
        .map(|b| b["vendor"].as_str().unwrap())
        .collect();
    assert_eq!(vendors, ["V100", "V200", "V300", "V400"]);

    // The repeat found its booking and booked nothing.
    let booked = |job: &clerk::jobs::JobDetail| {
        job.attempts[0]
            .steps
            .iter()
            .find(|s| s.name == "book")
            .and_then(|s| s.output.clone())
            .expect("the book step's output")
    };
    let (first, again) = (booked(&jobs[0]), booked(&jobs[4]));
    assert_eq!(again["skipped"], true, "{again:#}");
    assert_eq!(again["booking"], first["booking"]);

    // One confirmation per finished job, naming the booking.
    let mails: Vec<String> = smtp
        .messages()
        .iter()
        .map(|raw| {
            let m = mail_parser::MessageParser::default()
                .parse(raw)
                .expect("a mail");
            let to = m
                .to()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or_default()
                .to_string();
            format!(
                "To: {to}\nSubject: {}\n\n{}",
                m.subject().unwrap_or_default(),
                m.body_text(0).unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(mails.len(), 5, "{mails:#?}");
    for booking in &bookings {
        let number = booking["booking"].as_str().unwrap();
        let invoice = booking["invoice"].as_str().unwrap();
        assert!(
            mails
                .iter()
                .any(|m| m.contains(number) && m.contains(invoice)),
            "no confirmation of {number} ({invoice}) in {mails:#?}"
        );
    }
    assert!(
        mails
            .iter()
            .all(|m| m.contains("To: finance-ops@example.com"))
    );

    // The password is in no record of the jobs.
    for job in &jobs {
        let text = serde_json::to_string(job).unwrap();
        assert!(!text.contains(erp::PASSWORD), "{text}");
    }
}
