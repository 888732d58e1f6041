//! The bad-input corpus (`fixtures/corpus`, written by
//! `fixtures/corpus.py`): documents, images, mails, templates and bot
//! files that are broken or hostile, each with what clerk must say about it
//! (`fixtures/corpus/expected.tsv`).
//!
//! Documents and mails go the way users send them: through a real
//! `clerk serve` process, mails into a real Dovecot and taken by a mailbox
//! trigger. Each ends as its line says, with a message that names the
//! problem, and the process is still running at the end: no bad input
//! crashes a worker. Templates and bot files are read as `clerk extract`
//! and `clerk bots validate` read them.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clerk::jobs::JobState;
use common::dovecot::{self, Dovecot};
use common::{Kind, TestDb, intake_bot, write_bot};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/corpus")
}

/// `file → (outcome, words the message must hold)`.
fn expected() -> BTreeMap<String, (String, String)> {
    let text = std::fs::read_to_string(corpus().join("expected.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split('\t');
            let file = f.next().unwrap().to_string();
            let outcome = f.next().unwrap_or_else(|| panic!("{l}")).to_string();
            let words = f.next().unwrap_or_else(|| panic!("{l}")).to_string();
            (file, (outcome, words))
        })
        .collect()
}

fn files_in(folder: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(corpus().join(folder))
        .unwrap()
        .flatten()
        .map(|e| format!("{folder}/{}", e.file_name().to_string_lossy()))
        .collect();
    files.sort();
    files
}

#[test]
fn the_corpus_has_forty_files_and_an_expectation_for_each() {
    let expected = expected();
    let files: Vec<String> = ["documents", "mail", "templates", "bots"]
        .iter()
        .flat_map(|f| files_in(f))
        .collect();
    assert!(files.len() >= 40, "{}", files.len());
    for f in &files {
        assert!(expected.contains_key(f), "no expectation for {f}");
    }
    for f in expected.keys() {
        assert!(files.contains(f), "{f} is expected but not in the corpus");
    }
}

#[test]
fn every_bad_template_is_refused_with_its_reason() {
    let expected = expected();
    for file in files_in("templates") {
        let (outcome, words) = &expected[&file];
        assert_eq!(outcome, "error");
        let path = corpus().join(&file);
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        let err = clerk::extract::template::parse_template(&path, &text)
            .err()
            .unwrap_or_else(|| panic!("{file} was accepted"));
        assert!(err.to_string().contains(words.as_str()), "{file}: {err}");
    }
}

#[test]
fn every_bad_bot_file_is_refused_at_its_place() {
    let expected = expected();
    for file in files_in("bots") {
        let (outcome, words) = &expected[&file];
        assert_eq!(outcome, "error");
        let path = corpus().join(&file);
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        let diags = clerk::bot::parse_manifest(&path, &text)
            .err()
            .unwrap_or_else(|| panic!("{file} was accepted"));
        assert!(
            diags.iter().any(|d| d.to_string().contains(words.as_str())),
            "{file}: {diags:#?}"
        );
    }
}

/// Messages in a maildir folder (`cur` and `new`), as raw bytes.
fn maildir_messages(dir: &Path) -> Vec<Vec<u8>> {
    ["cur", "new"]
        .iter()
        .flat_map(|s| {
            std::fs::read_dir(dir.join(s))
                .into_iter()
                .flatten()
                .flatten()
        })
        .filter_map(|e| std::fs::read(e.path()).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_documents_and_mails_end_clearly_and_crash_no_worker() {
    let expected = expected();
    let imap = Dovecot::start();
    let t = TestDb::new(Kind::Sqlite).await;
    // The example bot's templates, then a command that prints what it got.
    let bots = write_bot(
        t.path(),
        "intake",
        &intake_bot(&format!(
            r#"secrets = ["IMAP_PASSWORD"]
[retry]
max_attempts = 2
backoff = "100ms"
jitter = 0
[[triggers]]
kind = "mailbox"
host = "127.0.0.1"
port = {}
tls = "plain"
allow_plain = true
user = "{}"
password = "${{secret:IMAP_PASSWORD}}"
every = "1s""#,
            imap.port,
            dovecot::USER
        )),
    );
    let url = format!("sqlite://{}", t.path().join("clerk.db").display());
    let log = t.path().join("serve.log");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_clerk"))
        .args([
            "serve",
            "--no-web",
            "--poll-interval",
            "100ms",
            "--database",
            &url,
        ])
        .arg("--bots")
        .arg(&bots)
        .arg("--data-dir")
        .arg(t.path().join("data"))
        .env_remove("DATABASE_URL")
        .env("IMAP_PASSWORD", dovecot::PASSWORD)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();

    // Documents as a user hands them in: `clerk run` with the file.
    let mut documents = BTreeMap::new();
    for file in files_in("documents") {
        let input = serde_json::json!({ "file": corpus().join(&file) }).to_string();
        let out = Command::new(env!("CARGO_BIN_EXE_clerk"))
            .args([
                "run",
                "intake",
                "--json",
                "--database",
                &url,
                "--input",
                &input,
            ])
            .arg("--bots")
            .arg(&bots)
            .arg("--data-dir")
            .arg(t.path().join("data"))
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        documents.insert(file, run["id"].as_i64().unwrap());
    }
    // Mails into the inbox; what the IMAP server itself refuses is noted.
    let mut refused_by_imap = Vec::new();
    let mut session = clerk::mail::imap::connect(&imap.account()).unwrap();
    for file in files_in("mail") {
        let raw = std::fs::read(corpus().join(&file)).unwrap();
        if session.append("INBOX", &raw).is_err() {
            refused_by_imap.push(file);
            session.logout();
            session = clerk::mail::imap::connect(&imap.account()).unwrap();
        }
    }
    session.logout();

    let db = t.open().await;
    let start = Instant::now();
    loop {
        let mut open = 0;
        for id in documents.values() {
            let state = db.job(*id).await.unwrap().unwrap().summary.state;
            if !matches!(state, JobState::Failed | JobState::WaitingReview) {
                open += 1;
            }
        }
        let inbox = maildir_messages(&imap.maildir()).len();
        if open == 0 && inbox == 0 {
            break;
        }
        assert!(
            serve.try_wait().unwrap().is_none(),
            "clerk serve ended: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{open} documents and {inbox} mails still open:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let the jobs of the mails that brought documents run too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        serve.try_wait().unwrap().is_none(),
        "clerk serve ended: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    let mut wrong = Vec::new();
    for (file, id) in &documents {
        let (outcome, words) = &expected[file];
        let job = db.job(*id).await.unwrap().unwrap();
        let state = match job.summary.state {
            JobState::Failed => "failed",
            JobState::WaitingReview => "review",
            _ => "other",
        };
        let said = format!(
            "{} {}",
            job.summary.last_error.clone().unwrap_or_default(),
            job.review
                .as_ref()
                .map(|r| r.to_string())
                .unwrap_or_default()
        );
        if state != outcome || !said.contains(words.as_str()) {
            wrong.push(format!(
                "{file}: expected {outcome} «{words}», got {state} «{said}»"
            ));
        }
    }

    // Each mail's outcome, told apart by its Message-ID (or its bytes).
    let failed_folder = maildir_messages(&imap.maildir().join(".Failed"));
    let jobs = db
        .list(&clerk::jobs::ListFilter {
            bot: Some("intake".into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut mail_jobs = Vec::new();
    for j in &jobs {
        let job = db.job(j.id).await.unwrap().unwrap();
        if job.input.get("mail").is_some() {
            mail_jobs.push(job);
        }
    }
    for file in files_in("mail") {
        let (outcome, words) = &expected[&file];
        let raw = std::fs::read(corpus().join(&file)).unwrap();
        let id = String::from_utf8_lossy(&raw)
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: <"))
            .and_then(|l| l.split('@').next())
            .map(str::to_string);
        // The server stores lines ending in CRLF.
        let bare = |m: &[u8]| {
            m.iter()
                .copied()
                .filter(|&b| b != b'\r')
                .collect::<Vec<u8>>()
        };
        let got = if refused_by_imap.contains(&file) {
            ("imap-refused".to_string(), String::new())
        } else if failed_folder.iter().any(|m| {
            bare(m) == bare(&raw)
                || id
                    .as_ref()
                    .is_some_and(|id| String::from_utf8_lossy(m).contains(&format!("<{id}@")))
        }) {
            ("failed-folder".to_string(), String::new())
        } else if let Some(job) = mail_jobs.iter().find(|j| {
            let mail = &j.input["mail"];
            match (mail["message_id"].as_str(), &id) {
                (Some(mid), Some(id)) => mid.starts_with(&format!("{id}@")),
                // Without a Message-ID: the same sender and subject.
                (None, None) => clerk::mail::parse(&raw, &Default::default()).is_ok_and(|m| {
                    mail["from"].as_str() == m.from.as_deref()
                        && mail["subject"].as_str() == m.subject.as_deref()
                }),
                _ => false,
            }
        }) {
            let said = job.summary.last_error.clone().unwrap_or_default();
            // A document job names its document by hash.
            if job.input.get("sha256").is_none() {
                ("no-document".to_string(), said)
            } else {
                ("job".to_string(), said)
            }
        } else {
            ("nothing".to_string(), String::new())
        };
        if got.0 != *outcome || !got.1.contains(words.as_str()) {
            wrong.push(format!(
                "{file}: expected {outcome} «{words}», got {} «{}»",
                got.0, got.1
            ));
        }
    }
    common::signal(&serve, libc::SIGTERM);
    let _ = serve.wait();
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!log.contains("panicked"), "{log}");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
