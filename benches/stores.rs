//! The invoice bot's extract step with its documents in each document
//! store: the local folder, PostgreSQL (the job database) and S3 (a real
//! s3s-fs server on loopback). Prints figures; asserts nothing.
//!
//!   cargo bench --bench stores
//!   cargo bench --bench stores -- --workers 1,2,3 --stores local,database,s3
//!
//! Per store: the cost of a worker's copy of one document (read from the
//! store, written to its scratch folder), then the extract step's
//! throughput with 1, 2 and 3 `clerk worker` processes (each one job at a
//! time, each with a data folder of its own) draining the jobs of the
//! invoices in target/invoices-200 (made by the nodes test or
//! `fixtures/generate.py --many 200`), else the 20 fixture invoices.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clerk::document_store::{DatabaseStore, fetch_copy};
use clerk::documents::store::{DocumentStore, LocalStore, S3Store, StoredDocument};
use clerk::jobs::{JobDb, NewJob};

const KEY: &str = "bench-key";
const SECRET: &str = "bench-secret";

struct Args {
    workers: Vec<usize>,
    stores: Vec<String>,
    pg: String,
}

fn parse_args() -> Args {
    let mut a = Args {
        workers: vec![1, 2, 3],
        stores: vec!["local".into(), "database".into(), "s3".into()],
        pg: std::env::var("CLERK_BENCH_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().unwrap_or_default();
        match arg.as_str() {
            "--workers" => a.workers = val().split(',').filter_map(|s| s.parse().ok()).collect(),
            "--stores" => a.stores = val().split(',').map(str::to_string).collect(),
            _ => {}
        }
    }
    a
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn invoices() -> Vec<PathBuf> {
    let generated = root().join("target/invoices-200");
    let mut found = Vec::new();
    let mut stack = vec![if generated.join("done").exists() {
        generated
    } else {
        root().join("fixtures/invoices")
    }];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("invoices").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "pdf") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// An s3s-fs server on a free loopback port, over a temporary folder.
struct S3 {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl S3 {
    fn start() -> S3 {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("bench")).expect("bucket");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let child = Command::new(root().join(".tools/bin/s3s-fs"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", KEY, "--secret-key", SECRET])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs: run scripts/setup.sh");
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::sleep(Duration::from_millis(50));
        }
        S3 {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The store a `--documents` value names, and the value.
fn open_store(kind: &str, dir: &Path, db: &JobDb, s3: &S3) -> (Arc<dyn DocumentStore>, String) {
    match kind {
        "local" => {
            let path = dir.join("documents");
            (
                Arc::new(LocalStore::new(&path)),
                format!("local:{}", path.display()),
            )
        }
        "database" => (Arc::new(DatabaseStore::new(db.clone())), "database".into()),
        _ => {
            let env = s3.env();
            let url = "s3://bench/documents".to_string();
            let store = S3Store::with_settings(&url, &|name| {
                env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
            })
            .expect("S3 store");
            (Arc::new(store), url)
        }
    }
}

fn write_bot(bots: &Path) {
    let dir = bots.join("extract-only");
    std::fs::create_dir_all(dir.join("templates")).expect("bot folder");
    let from = root().join("bots/invoice-intake/templates");
    for entry in std::fs::read_dir(from).expect("templates").flatten() {
        std::fs::copy(entry.path(), dir.join("templates").join(entry.file_name())).expect("copy");
    }
    std::fs::write(
        dir.join("bot.toml"),
        "name = \"extract-only\"\n[[steps]]\nname = \"extract\"\nkind = \"extract\"\ntemplates = \"templates\"\n",
    )
    .expect("bot file");
}

async fn drain(
    url: &str,
    db: &JobDb,
    documents: &str,
    jobs: &[NewJob],
    workers: usize,
    dir: &Path,
    s3: &S3,
) -> f64 {
    clerk::jobs::IntakeStore::enqueue(db.as_ref(), jobs)
        .await
        .expect("enqueue");
    let started = Instant::now();
    let mut children: Vec<Child> = (0..workers)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_clerk"))
                .args([
                    "worker",
                    "-c",
                    "1",
                    "--poll-interval",
                    "100ms",
                    "--kinds",
                    "extract",
                ])
                .env("DATABASE_URL", url)
                .env("CLERK_DOCUMENTS", documents)
                .env("CLERK_BOTS", dir.join("bots"))
                .env("CLERK_DATA_DIR", dir.join(format!("worker-{i}")))
                .envs(s3.env())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("clerk worker")
        })
        .collect();
    let pool = sqlx::PgPool::connect(url).await.expect("pool");
    loop {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')")
                .fetch_one(&pool)
                .await
                .expect("count");
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed().as_secs_f64();
    let failed: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state <> 'succeeded'")
        .fetch_one(&pool)
        .await
        .expect("count");
    if failed > 0 {
        eprintln!("  ({failed} jobs did not succeed)");
    }
    sqlx::query("DELETE FROM jobs")
        .execute(&pool)
        .await
        .expect("clear");
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    jobs.len() as f64 / took
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let docs = invoices();
    let contents: Vec<(String, Vec<u8>)> = docs
        .iter()
        .map(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, std::fs::read(p).expect("invoice"))
        })
        .collect();
    println!(
        "clerk document store benchmark: {} invoices, extract step, {} cores",
        docs.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let s3 = S3::start();
    for kind in &args.stores {
        let dir = tempfile::tempdir().expect("temp dir");
        write_bot(&dir.path().join("bots"));
        let name = format!("clerk_bench_stores_{}", std::process::id());
        let (db, url) = common::fresh_db("postgres", &args.pg, dir.path(), &name).await;
        let (store, documents) = open_store(kind, dir.path(), &db, &s3);
        let mut jobs = Vec::new();
        for (name, content) in &contents {
            let document = StoredDocument::of(content, name, None);
            store.put(&document, content).await.expect("put");
            jobs.push(NewJob {
                bot: "extract-only".into(),
                input: serde_json::json!({ "sha256": document.sha256, "name": name }),
                idempotency_key: None,
                max_attempts: 1,
                max_lost: 3,
                run_after: None,
                created_by: "bench".into(),
                refused: None,
            });
        }
        // A worker's copy of each document: from the store into scratch.
        let mut copies = Vec::new();
        for job in &jobs {
            let sha = job.input["sha256"].as_str().unwrap_or_default();
            let scratch = dir.path().join("scratch").join(sha);
            let t = Instant::now();
            fetch_copy(store.as_ref(), sha, &scratch)
                .await
                .expect("copy");
            copies.push(t.elapsed().as_secs_f64() * 1000.0);
            let _ = std::fs::remove_dir_all(&scratch);
        }
        copies.sort_by(f64::total_cmp);
        let mean = copies.iter().sum::<f64>() / copies.len() as f64;
        println!(
            "{kind:<9} copy of a document for a job: mean {mean:.2} ms  p50 {:.2} ms  p90 {:.2} ms",
            copies[copies.len() / 2],
            copies[copies.len() * 9 / 10]
        );
        for &workers in &args.workers {
            let rate = drain(&url, &db, &documents, &jobs, workers, dir.path(), &s3).await;
            println!(
                "{kind:<9} workers={workers}  extract {rate:>6.1} documents/s  ({:.1} ms per document)",
                1000.0 / rate
            );
        }
    }
}
