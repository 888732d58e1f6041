//! Folder triggers on both back ends: every distinct file dropped becomes
//! one job, a second drop of the same content none, a crash at any point of
//! the intake nothing lost and nothing doubled; and `clerk serve` takes
//! files as they are dropped.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clerk::jobs::{JobState, ListFilter};
use clerk::scheduler::folder::{FolderIntake, Intake, Taken};
use common::{Kind, setup};

const BOT: &str = r#"
name = "inbox"

[[triggers]]
kind = "folder"
path = "drop"
settle = "200ms"
input = { source = "scanner" }

[[steps]]
name = "book"
kind = "command"
argv = ["true"]
"#;

fn drop_dir(bots: &Path) -> PathBuf {
    bots.join("inbox").join("drop")
}

/// Scan until nothing is left waiting to settle, collecting what was taken.
async fn scan_until_settled(intake: &mut FolderIntake) -> Vec<Intake> {
    let mut all = Vec::new();
    for _ in 0..20 {
        all.extend(intake.scan().await);
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    all
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

async fn jobs_of(db: &clerk::jobs::JobDb) -> Vec<clerk::jobs::JobSummary> {
    db.list(&ListFilter {
        bot: Some("inbox".into()),
        state: None,
        limit: 1000,
        before_id: None,
        ..Default::default()
    })
    .await
    .expect("list jobs")
}

async fn each_distinct_file_becomes_one_job(kind: Kind) {
    let s = setup(kind, "inbox", BOT).await;
    let drop = drop_dir(&s.bots);
    std::fs::create_dir_all(&drop).unwrap();
    std::fs::write(drop.join("a.pdf"), b"%PDF-1.4 invoice A").unwrap();
    std::fs::write(drop.join("b.PDF"), b"%PDF-1.4 invoice B").unwrap();
    // The same content under another name: booked once.
    std::fs::write(drop.join("a-again.pdf"), b"%PDF-1.4 invoice A").unwrap();
    std::fs::write(drop.join("empty.pdf"), b"").unwrap();
    std::fs::write(drop.join("notes.txt"), b"not a document").unwrap();
    std::fs::write(drop.join(".hidden.pdf"), b"%PDF-1.4 hidden").unwrap();

    let mut intake = FolderIntake::new(s.db.clone(), s.documents(), &s.registry, "test");
    let taken = scan_until_settled(&mut intake).await;
    let outcome = |name: &str| {
        taken
            .iter()
            .find(|i| i.file.file_name().is_some_and(|n| n == name))
            .map(|i| i.taken.clone())
    };
    let (Some(Taken::Job(a)), Some(Taken::Job(b))) = (outcome("a-again.pdf"), outcome("b.PDF"))
    else {
        panic!("{taken:#?}");
    };
    assert_ne!(a, b);
    assert_eq!(outcome("a.pdf"), Some(Taken::Duplicate(a)), "{taken:#?}");
    assert!(
        matches!(outcome("empty.pdf"), Some(Taken::Failed(ref why)) if why.contains("empty")),
        "{taken:#?}"
    );
    assert_eq!(outcome("notes.txt"), None);

    let jobs = jobs_of(&s.db).await;
    assert_eq!(jobs.len(), 2, "{jobs:#?}");
    let job = s.db.job(a).await.unwrap().unwrap();
    let input = &job.input;
    assert_eq!(input["source"], "scanner");
    assert_eq!(input["name"], "a-again.pdf");
    // The job names its document by hash, not by a path on this machine;
    // the store has it, as dropped.
    assert!(input.get("file").is_none(), "{input:#}");
    assert_eq!(input["media_type"], "application/pdf");
    let sha = input["sha256"].as_str().unwrap();
    let (kept, content) = s.documents().get(sha).await.unwrap().unwrap();
    assert_eq!(content, b"%PDF-1.4 invoice A");
    assert_eq!(kept.name, "a-again.pdf");
    // The folder keeps its own record of what it took.
    let processed = drop
        .join("processed")
        .join(format!("{}-a-again.pdf", &sha[..12]));
    assert_eq!(std::fs::read(&processed).unwrap(), b"%PDF-1.4 invoice A");

    // The drop folder keeps only what is not for this bot.
    assert_eq!(
        names_in(&drop),
        [".hidden.pdf", "failed", "notes.txt", "processed"]
    );
    assert_eq!(
        names_in(&drop.join("failed")),
        ["empty.pdf", "empty.pdf.error.txt"]
    );
    // Nothing more on the next scans.
    assert!(scan_until_settled(&mut intake).await.is_empty());
    assert_eq!(jobs_of(&s.db).await.len(), 2);
}

async fn a_crash_anywhere_in_the_intake_loses_and_doubles_nothing(kind: Kind) {
    let s = setup(kind, "inbox", BOT).await;
    let drop = drop_dir(&s.bots);
    std::fs::create_dir_all(&drop).unwrap();
    let mut intake = FolderIntake::new(s.db.clone(), s.documents(), &s.registry, "test");

    // Crash after the job was queued, before the dropped file was removed:
    // the file is still there, its document and its job exist.
    std::fs::write(drop.join("c.pdf"), b"%PDF-1.4 invoice C").unwrap();
    let first = scan_until_settled(&mut intake).await;
    assert!(matches!(first[0].taken, Taken::Job(_)), "{first:#?}");
    std::fs::write(drop.join("c.pdf"), b"%PDF-1.4 invoice C").unwrap();
    let again = scan_until_settled(&mut intake).await;
    assert!(matches!(again[0].taken, Taken::Duplicate(_)), "{again:#?}");
    assert_eq!(jobs_of(&s.db).await.len(), 1);
    assert!(!drop.join("c.pdf").exists());

    // Crash after the document was linked, before the job was queued: the
    // file and its document are there, its job is not. A fresh process
    // (nothing remembered) queues it once.
    std::fs::write(drop.join("e.pdf"), b"%PDF-1.4 invoice E").unwrap();
    let sha = {
        use sha2::Digest;
        let d = sha2::Sha256::digest(b"%PDF-1.4 invoice E");
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let processed = drop.join("processed");
    std::fs::hard_link(
        drop.join("e.pdf"),
        processed.join(format!("{}-e.pdf", &sha[..12])),
    )
    .unwrap();
    let mut restarted = FolderIntake::new(s.db.clone(), s.documents(), &s.registry, "test");
    let taken = scan_until_settled(&mut restarted).await;
    assert!(
        matches!(
            taken[..],
            [Intake {
                taken: Taken::Job(_),
                ..
            }]
        ),
        "{taken:#?}"
    );
    assert_eq!(jobs_of(&s.db).await.len(), 2);
    assert!(!drop.join("e.pdf").exists());
}

async fn a_file_still_being_written_waits_until_it_settles(kind: Kind) {
    let s = setup(kind, "inbox", BOT).await;
    let drop = drop_dir(&s.bots);
    std::fs::create_dir_all(&drop).unwrap();
    let mut intake = FolderIntake::new(s.db.clone(), s.documents(), &s.registry, "test");
    let path = drop.join("growing.pdf");
    let mut content = b"%PDF-1.4 ".to_vec();
    // Grow the file faster than it settles: it is never taken half-written.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(800) {
        content.extend_from_slice(b"more ");
        std::fs::write(&path, &content).unwrap();
        assert!(intake.scan().await.is_empty(), "taken while still growing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let taken = scan_until_settled(&mut intake).await;
    let [
        Intake {
            taken: Taken::Job(id),
            ..
        },
    ] = taken[..]
    else {
        panic!("{taken:#?}");
    };
    let job = s.db.job(id).await.unwrap().unwrap();
    assert_eq!(job.input["size"], content.len());
}

/// A paused bot's files wait in its folder; resumed, they are taken.
async fn a_paused_bot_leaves_its_files_in_the_folder(kind: Kind) {
    let s = setup(kind, "inbox", BOT).await;
    let drop = drop_dir(&s.bots);
    std::fs::create_dir_all(&drop).unwrap();
    let mut intake = FolderIntake::new(s.db.clone(), s.documents(), &s.registry, "test")
        .with_pauses(s.db.clone());
    s.db.pause_bot("inbox", "cli:op", "audit").await.unwrap();
    std::fs::write(drop.join("a.pdf"), b"%PDF-1.4 paused").unwrap();
    assert!(scan_until_settled(&mut intake).await.is_empty());
    assert_eq!(names_in(&drop), ["a.pdf"]);
    assert!(jobs_of(&s.db).await.is_empty());
    s.db.resume_bot("inbox", "cli:op", "audit done")
        .await
        .unwrap();
    assert_eq!(scan_until_settled(&mut intake).await.len(), 1);
    assert_eq!(jobs_of(&s.db).await.len(), 1);
}

both_backends!(
    a_paused_bot_leaves_its_files_in_the_folder,
    each_distinct_file_becomes_one_job,
    a_crash_anywhere_in_the_intake_loses_and_doubles_nothing,
    a_file_still_being_written_waits_until_it_settles,
);

/// `clerk serve` takes files the moment they settle (the rescan is set far
/// out, so only the system's change reports can wake it), and its jobs run.
#[test]
fn clerk_serve_takes_dropped_files_and_runs_their_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let bots = common::write_bot(
        dir.path(),
        "inbox",
        r#"
name = "inbox"

[[triggers]]
kind = "folder"
path = "drop"
settle = "300ms"
rescan = "10m"

[[steps]]
name = "book"
kind = "command"
argv = ["sh", "-c", "{ sed -n 's/.*\"sha256\":\"\\([0-9a-f]*\\)\".*/\\1/p'; echo; } >> ledger.txt"]
"#,
    );
    let drop = drop_dir(&bots);
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    // Run from the folder above `bots`, naming it relatively, as a user does.
    let mut serve = Command::new(env!("CARGO_BIN_EXE_clerk"))
        .current_dir(dir.path())
        .args(["serve", "--poll-interval", "100ms", "--no-web"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--bots", "bots"])
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "clerk=debug")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    // The folder is created by serve; wait for it, then drop.
    let start = Instant::now();
    while !drop.exists() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    for (name, body) in [
        ("one.pdf", "%PDF one"),
        ("two.pdf", "%PDF two"),
        ("one-copy.pdf", "%PDF one"),
    ] {
        std::fs::write(drop.join(name), body).unwrap();
    }
    let ledger = bots.join("inbox").join("ledger.txt");
    let start = Instant::now();
    let mut lines = Vec::new();
    while start.elapsed() < Duration::from_secs(30) {
        lines = std::fs::read_to_string(&ledger)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        if lines.len() >= 2 && names_in(&drop) == ["processed"] {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(serve.id() as i32, libc::SIGTERM);
    }
    let _ = serve.wait();
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
    assert_eq!(names_in(&drop), ["processed"], "{log}");
    lines.sort();
    lines.dedup();
    assert_eq!(lines.len(), 2, "{lines:?}\n{log}");
    let out = Command::new(env!("CARGO_BIN_EXE_clerk"))
        .args(["runs", "list", "--json"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert!(
        runs.iter()
            .all(|r| r["state"] == JobState::Succeeded.as_str()),
        "{runs:#?}"
    );
    // The job names its document by hash; the document store in the data
    // folder keeps it, and the copy its steps read is gone with its run.
    let id = runs[0]["id"].as_i64().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_clerk"))
        .args(["runs", "show", &id, "--json"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(job["input"].get("file").is_none(), "{job:#}");
    let sha = job["input"]["sha256"].as_str().unwrap();
    let kept = dir.path().join("data/documents").join(&sha[..2]).join(sha);
    assert!(kept.is_file(), "{kept:?}");
    let scratch: Vec<_> = std::fs::read_dir(dir.path().join("data/scratch"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(scratch.is_empty(), "{scratch:?}");
}

/// CPU time (user and system) a process has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are
    // the 12th and 13th of them, in clock ticks.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

/// A file with a name as long as a file system allows is taken (its kept
/// copy's name is shortened); a file that cannot be taken (here the
/// folder's `processed/` is not a folder) is tried again with backoff,
/// not in a loop woken by clerk's own reading of it.
#[test]
fn files_that_are_hard_to_take_are_taken_or_retried_calmly() {
    let dir = tempfile::tempdir().unwrap();
    let bots = common::write_bot(
        dir.path(),
        "inbox",
        r#"
name = "inbox"

[[triggers]]
kind = "folder"
path = "drop"
settle = "100ms"
rescan = "10m"

[[triggers]]
kind = "folder"
path = "jammed"
settle = "100ms"
rescan = "10m"

[[steps]]
name = "book"
kind = "command"
argv = ["true"]
"#,
    );
    let inbox = bots.join("inbox");
    std::fs::create_dir_all(inbox.join("jammed")).unwrap();
    std::fs::write(inbox.join("jammed/processed"), b"not a folder").unwrap();
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let serve = Command::new(env!("CARGO_BIN_EXE_clerk"))
        .current_dir(dir.path())
        .args(["serve", "--poll-interval", "100ms", "--no-web"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--bots", "bots"])
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = serve.id();
    let serve = common::Stopped([serve]);
    let into = drop_dir(&bots);
    let start = Instant::now();
    while !into.exists() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let long = format!("{}.pdf", "x".repeat(250));
    std::fs::write(into.join(&long), b"%PDF-1.4 long name").unwrap();
    std::fs::write(inbox.join("jammed/invoice.pdf"), b"%PDF-1.4 jammed").unwrap();
    let before = cpu_time(pid);
    let start = Instant::now();
    while into.join(&long).exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the long-named file was not taken: {}",
            std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(5).saturating_sub(start.elapsed()));
    let used = cpu_time(pid) - before;
    drop(serve);
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
    let tries = log.matches("cannot take the file").count();
    assert!(
        used < Duration::from_secs(2),
        "clerk serve used {used:?} of CPU in 5 s with a file it cannot take ({tries} tries)"
    );
    assert!((1..=5).contains(&tries), "{tries} tries in 5 s:\n{log}");
    assert!(
        inbox.join("jammed/invoice.pdf").exists(),
        "the jammed file is kept"
    );
}
