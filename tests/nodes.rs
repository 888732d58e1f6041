//! clerk on several machines, as an ops team runs it: two `clerk serve`
//! and three `clerk worker` processes, each with a data folder and a bots
//! folder of its own (nothing on disk shared), on one PostgreSQL. 200
//! invoices dropped into one node's folder are extracted and booked into
//! the legacy ERP through Chromium by the workers on the other nodes, the
//! documents reaching them through the document store: first the job
//! database, then a real S3-compatible server. A worker holding a job is
//! killed with SIGKILL mid-run.
//!
//! Afterwards: every invoice has one job and it succeeded; the ERP (which
//! books an invoice a second time if asked, so a double booking shows) has
//! each invoice once; no step ran on the nodes without workers; no more
//! invoice jobs ran at once than the bot allows; the documents are in the
//! shared store and no node's data folder kept them; the scratch copies
//! are gone. One more invoice, run by hand with `clerk run` on a machine
//! whose file the workers cannot see, is booked too.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::erp::{self, Erp, install_example};
use common::smtp::SmtpServer;
use common::{Kind, S3Server, TestDb};

/// Invoices dropped per run.
const INVOICES: usize = 200;
/// At most this many invoice jobs run at once, across every node.
const CONCURRENCY: usize = 4;

/// 200 generated invoices with distinct numbers (made once, kept in
/// target/).
fn invoices() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join(format!("target/invoices-{INVOICES}"));
    if !dir.join("done").exists() {
        let python = root.join(".venv-fixtures/bin/python");
        assert!(
            python.is_file(),
            "run scripts/setup.sh: it makes .venv-fixtures"
        );
        let made = Command::new(python)
            .arg(root.join("fixtures/generate.py"))
            .args(["--many", &INVOICES.to_string(), "--out"])
            .arg(&dir)
            .output()
            .expect("run the generator");
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        std::fs::write(dir.join("done"), b"").unwrap();
    }
    let mut pdfs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pdf"))
        .collect();
    pdfs.sort();
    assert_eq!(pdfs.len(), INVOICES);
    pdfs
}

/// One machine: its own data folder and bots folder, one clerk process.
struct Node {
    name: String,
    data: PathBuf,
    bots: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn start(&mut self, args: &[&str], env: &[(String, String)], logs: &Path) {
        let log = std::fs::File::create(logs.join(format!("{}.log", self.name))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_clerk"))
            .args(args)
            .args([
                "--worker-id",
                &self.name,
                "--lease",
                "8s",
                "--heartbeat",
                "1s",
            ])
            .args(["--poll-interval", "200ms"])
            .env_remove("DATABASE_URL")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("CLERK_DATA_DIR", &self.data)
            .env("CLERK_BOTS", &self.bots)
            .env("RUST_LOG", "clerk=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start clerk");
        self.child = Some(child);
    }
}

/// Every node's log, for a failure's message.
fn logs(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "log") {
            let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            text += &format!("--- {}\n", entry.path().display());
            text += &tail.into_iter().rev().collect::<Vec<_>>().join("\n");
            text += "\n";
        }
    }
    text
}

/// The invoice jobs: (id, state, worker of the last attempt).
async fn invoice_jobs(pool: &sqlx::PgPool) -> Vec<(i64, String, Option<String>)> {
    sqlx::query_as("SELECT id, state, worker FROM jobs WHERE bot = 'invoice-intake' ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap_or_default()
}

/// One run at a time: each needs the machine's cores to itself.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn two_schedulers_and_three_workers_book_every_invoice_once(
    store: &str,
    s3: Option<&S3Server>,
) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let docs = invoices();
    let t = TestDb::new(Kind::Postgres).await;
    let db = t.open().await; // migrated once, before five processes start
    let erp = Erp::start_with("0.05", true);
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![
        ("DATABASE_URL".to_string(), t.url.clone()),
        ("CLERK_DOCUMENTS".to_string(), store.to_string()),
        ("ERP_PASSWORD".to_string(), erp::PASSWORD.to_string()),
    ];
    if let Some(s3) = s3 {
        env.extend(s3.env().into_iter().map(|(k, v)| (k.to_string(), v)));
    }
    let mut nodes: Vec<Node> = ["node-a", "node-b", "node-c", "node-d", "node-e"]
        .iter()
        .map(|name| {
            let node = Node {
                name: name.to_string(),
                data: dir.path().join(name).join("data"),
                bots: dir.path().join(name).join("bots"),
                child: None,
            };
            // Each machine has its own copy of the bots, as shipped, with
            // room for several bookings at once and quick retries.
            install_example(&node.bots, &erp, &smtp);
            let file = node.bots.join("invoice-intake/bot.toml");
            let manifest = std::fs::read_to_string(&file)
                .unwrap()
                .replace("concurrency = 1", &format!("concurrency = {CONCURRENCY}"))
                .replace("backoff = \"30s\"", "backoff = \"2s\"");
            std::fs::write(&file, manifest).unwrap();
            node
        })
        .collect();
    for (i, node) in nodes.iter_mut().enumerate() {
        let args: &[&str] = if i < 2 {
            &["serve", "--no-web", "--no-workers"]
        } else {
            &["worker", "-c", "2"]
        };
        node.start(args, &env, dir.path());
    }
    let inbox = nodes[0].bots.join("invoice-intake/inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    for doc in &docs {
        std::fs::copy(doc, inbox.join(doc.file_name().unwrap())).unwrap();
    }

    // One more invoice, run by hand on a sixth machine that runs no
    // clerk process: the job names the document by hash and the workers
    // take it from the shared store, for the file is gone once queued.
    let by_hand_dir = dir.path().join("node-f");
    let by_hand_file = by_hand_dir.join("RE-2026-66261.pdf");
    std::fs::create_dir_all(&by_hand_dir).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/invoices/acme-office/RE-2026-66261.pdf"),
        &by_hand_file,
    )
    .unwrap();
    let ran = Command::new(env!("CARGO_BIN_EXE_clerk"))
        .args(["run", "invoice-intake", "--json", "--input"])
        .arg(serde_json::json!({ "file": by_hand_file }).to_string())
        .env_remove("DATABASE_URL")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("CLERK_DATA_DIR", by_hand_dir.join("data"))
        .env("CLERK_BOTS", &nodes[0].bots)
        .output()
        .unwrap();
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    std::fs::remove_file(&by_hand_file).unwrap();
    let by_hand: i64 = serde_json::from_slice::<serde_json::Value>(&ran.stdout).unwrap()["id"]
        .as_i64()
        .unwrap();

    let pool = sqlx::PgPool::connect(&t.url).await.unwrap();
    let started = Instant::now();
    let mut killed = None;
    loop {
        let jobs = invoice_jobs(&pool).await;
        let done = jobs
            .iter()
            .filter(|(_, s, _)| !matches!(s.as_str(), "queued" | "running"))
            .count();
        // A third of the way, kill a worker that holds a job, unannounced.
        if killed.is_none() && done >= INVOICES / 3 {
            let holder = jobs
                .iter()
                .filter(|(_, s, _)| s == "running")
                .find_map(|(_, _, w)| w.clone().filter(|w| w.starts_with("node-")));
            if let Some(holder) = holder {
                let name = holder.split(':').next().unwrap_or_default().to_string();
                let node = nodes.iter_mut().find(|n| n.name == name).unwrap();
                let mut child = node.child.take().unwrap();
                child.kill().unwrap();
                child.wait().unwrap();
                killed = Some(name);
            }
        }
        if jobs.len() == INVOICES + 1 && done == INVOICES + 1 && killed.is_some() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "{done} of {} jobs ended after 15 minutes\n{}",
            jobs.len(),
            logs(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let took = started.elapsed();
    for node in &mut nodes {
        if let Some(child) = &node.child {
            common::signal(child, libc::SIGTERM);
        }
    }
    for node in &mut nodes {
        if let Some(mut child) = node.child.take() {
            common::wait_exit(&mut child, Duration::from_secs(60));
        }
    }

    // Every invoice: one job, succeeded; booked once.
    let jobs = invoice_jobs(&pool).await;
    let failed: Vec<_> = jobs.iter().filter(|(_, s, _)| s != "succeeded").collect();
    assert!(failed.is_empty(), "{failed:?}\n{}", logs(dir.path()));
    let input: serde_json::Value =
        sqlx::query_scalar("SELECT input::jsonb FROM jobs WHERE id = $1")
            .bind(by_hand)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        input["sha256"].as_str().is_some_and(|h| h.len() == 64)
            && input["name"] == "RE-2026-66261.pdf",
        "{input}"
    );
    let bookings = erp.bookings();
    let mut per_invoice: BTreeMap<String, usize> = BTreeMap::new();
    for b in &bookings {
        *per_invoice
            .entry(format!("{} {}", b["vendor"], b["invoice"]))
            .or_default() += 1;
    }
    let twice: Vec<_> = per_invoice.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "booked twice: {twice:?}");
    assert_eq!(per_invoice.len(), INVOICES + 1);

    // Only the workers ran steps, never more at once than the bot allows;
    // the killed worker's attempt was lost and taken over.
    let attempts: Vec<(String, i64, Option<i64>, Option<String>)> = sqlx::query_as(
        "SELECT a.worker, a.started_at, a.finished_at, a.outcome FROM attempts a
         JOIN jobs j ON j.id = a.job_id WHERE j.bot = 'invoice-intake'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let node_of = |w: &str| w.split(':').next().unwrap_or_default().to_string();
    let on_serve: Vec<_> = attempts
        .iter()
        .filter(|(w, ..)| matches!(node_of(w).as_str(), "node-a" | "node-b"))
        .collect();
    assert!(on_serve.is_empty(), "{on_serve:?}");
    let killed = killed.unwrap();
    let lost: Vec<_> = attempts
        .iter()
        .filter(|(_, _, _, outcome)| outcome.as_deref() == Some("lost"))
        .collect();
    assert!(
        !lost.is_empty() && lost.iter().all(|(w, ..)| node_of(w) == killed),
        "{lost:?}"
    );
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for (_, start, end, _) in &attempts {
        edges.push((*start, 1));
        edges.push((end.unwrap_or(i64::MAX), -1));
    }
    edges.sort();
    let (mut now, mut most) = (0, 0);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    assert!(
        most as usize <= CONCURRENCY,
        "{most} invoice jobs ran at once"
    );

    // The documents are in the shared store; no node kept them, and the
    // workers that stopped cleanly left no copies.
    let documents: Vec<PathBuf> = nodes
        .iter()
        .map(|n| n.data.join("documents"))
        .chain([by_hand_dir.join("data/documents")])
        .filter(|d| d.exists())
        .collect();
    assert!(documents.is_empty(), "{documents:?}");
    let shared = match s3 {
        None => {
            let store = clerk::document_store::DatabaseStore::new(db.clone());
            clerk::documents::store::DocumentStore::list_after(&store, "", 1000)
                .await
                .unwrap()
                .len()
        }
        Some(s3) => {
            let env = s3.env();
            let store = clerk::documents::store::S3Store::with_settings(store, &|name| {
                env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
            })
            .unwrap();
            clerk::documents::store::DocumentStore::list_after(&store, "", 1000)
                .await
                .unwrap()
                .len()
        }
    };
    assert_eq!(shared, INVOICES + 1);
    for node in nodes.iter().filter(|n| n.name != killed) {
        let left: Vec<_> = std::fs::read_dir(node.data.join("scratch"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{}: {left:?}", node.name);
    }
    println!(
        "nodes figures: {}",
        serde_json::json!({
            "store": store,
            "invoices": INVOICES,
            "seconds": took.as_secs_f64(),
            "invoices_per_second": INVOICES as f64 / took.as_secs_f64(),
            "killed": killed,
            "lost_attempts": lost.len(),
            "most_at_once": most,
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_with_documents_in_the_job_database() {
    two_schedulers_and_three_workers_book_every_invoice_once("database", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_with_documents_in_s3() {
    let s3 = S3Server::start();
    let url = format!("s3://{}/clerk/documents", s3.bucket);
    two_schedulers_and_three_workers_book_every_invoice_once(&url, Some(&s3)).await;
}
