//! Shared harness for the integration tests: a fresh job database per test
//! on either back end, bot folders written on the fly, and waiting helpers.
#![allow(dead_code)]

pub mod browser;
pub mod dovecot;
pub mod erp;
pub mod http;
pub mod postgres;
pub mod proxy;
pub mod smtp;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clerk::bot::{Bot, BotRegistry};
use clerk::jobs::{self, JobDb, JobState, NewJob};
use clerk::worker::{Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// The server the PostgreSQL half of the suite runs against; each test gets
/// its own database on it, dropped at the end.
pub fn pg_admin_url() -> String {
    std::env::var("CLERK_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A job database for one test, and the folder its files live in.
pub struct TestDb {
    pub url: String,
    pub dir: tempfile::TempDir,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn new(kind: Kind) -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        match kind {
            Kind::Sqlite => TestDb {
                url: format!("sqlite://{}", dir.path().join("clerk.db").display()),
                dir,
                pg_name: None,
            },
            Kind::Postgres => {
                use sqlx::Connection;
                let name = format!(
                    "clerk_test_{}_{:08x}",
                    std::process::id(),
                    rand::random::<u32>()
                );
                let admin = pg_admin_url();
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL at {admin} is needed for this test: {e}")
                    });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let base = admin
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_string())
                    .unwrap_or(admin.clone());
                TestDb {
                    url: format!("{base}/{name}"),
                    dir,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// A new connection to the database, migrated.
    pub async fn open(&self) -> JobDb {
        let db = jobs::connect(&self.url).await.expect("connect");
        db.migrate().await.expect("migrate");
        db
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Best effort, outside the test's runtime.
            let admin = pg_admin_url();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    use sqlx::Connection;
                    let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await
                    .ok()
                })
            })
            .join();
        }
    }
}

/// Write `bots/<name>/bot.toml` (and return the bots folder).
pub fn write_bot(root: &Path, name: &str, manifest: &str) -> PathBuf {
    let bots = root.join("bots");
    let dir = bots.join(name);
    std::fs::create_dir_all(&dir).expect("bot dir");
    std::fs::write(dir.join("bot.toml"), manifest).expect("write bot.toml");
    bots
}

/// A bot `ops` whose one step exits by its input's `mode`: `ok` (also when
/// none is given) succeeds, `business` fails with a business error; one
/// attempt each.
pub const OPS_BOT: &str = r#"
name = "ops"
description = "Books what it is given"
[retry]
max_attempts = 1
[[steps]]
name = "work"
kind = "command"
failure = "business"
argv = ["python3", "-c", """
import json, sys
sys.exit({"ok": 0, "business": 3}[json.load(sys.stdin)["input"].get("mode", "ok")])
"""]
"#;

/// A bot named `intake` that extracts with the example bot's templates,
/// then hands what it got to a command that prints it back (`book`);
/// `top` goes at the top of the manifest (review rules, deadlines).
pub fn intake_bot(top: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    format!(
        r#"
name = "intake"
{top}
[[steps]]
name = "extract"
kind = "extract"
templates = "{}"
[[steps]]
name = "book"
kind = "command"
argv = ["sh", "-c", "cat"]
"#,
        root.join("bots/invoice-intake/templates").display()
    )
}

/// Write an executable shell script into a bot's folder.
pub fn write_script(root: &Path, bot: &str, file: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = root.join("bots").join(bot).join(file);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Load the bots folder, failing the test on any problem.
pub fn load_bots(bots: &Path) -> Arc<BotRegistry> {
    let report = clerk::bot::load_dir(bots);
    assert!(
        report.diagnostics.is_empty(),
        "bot files invalid: {:#?}",
        report.diagnostics
    );
    Arc::new(BotRegistry::new(report.bots))
}

pub fn new_job(bot: &Bot, input: serde_json::Value) -> NewJob {
    NewJob {
        bot: bot.name.clone(),
        input,
        idempotency_key: None,
        max_attempts: bot.retry.max_attempts,
        max_lost: bot.retry.max_lost,
        run_after: None,
        created_by: "test".into(),
        refused: None,
    }
}

/// Worker settings that make tests quick: short leases and polls.
pub fn fast_config(concurrency: usize) -> WorkerConfig {
    let mut cfg = WorkerConfig::new(concurrency);
    cfg.lease = Duration::from_secs(2);
    cfg.heartbeat = Duration::from_millis(300);
    cfg.poll_interval = Duration::from_millis(100);
    cfg.rescue_interval = Duration::from_millis(300);
    cfg.grace = Duration::from_secs(5);
    cfg
}

/// A worker running in this process until the handle is stopped.
pub struct RunningWorker {
    pub stop: CancellationToken,
    pub handle: tokio::task::JoinHandle<clerk::worker::WorkerReport>,
}

impl RunningWorker {
    pub fn start(db: JobDb, bots: Arc<BotRegistry>, cfg: WorkerConfig) -> Self {
        let stop = CancellationToken::new();
        let handle = tokio::spawn(Worker::new(db, bots, cfg).run(stop.clone()));
        RunningWorker { stop, handle }
    }

    pub async fn shutdown(self) -> clerk::worker::WorkerReport {
        self.stop.cancel();
        self.handle.await.expect("worker task")
    }
}

/// Wait until job `id` is in one of `states`; panics with its history after
/// `limit`.
pub async fn wait_for(db: &JobDb, id: i64, states: &[JobState], limit: Duration) -> JobState {
    let start = Instant::now();
    loop {
        let state = db.state(id).await.expect("state").expect("job exists");
        if states.contains(&state) {
            return state;
        }
        if start.elapsed() > limit {
            let detail = db.job(id).await.ok().flatten();
            panic!("job {id} still {state} after {limit:?}, wanted {states:?}: {detail:#?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Run the same async test body against both back ends.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::common::Kind::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::common::Kind::Postgres).await
                }
            }
        )*
    };
}

/// A fresh database with one bot written from `manifest`, the loaded
/// registry, and a connection: what most tests start from.
pub struct Setup {
    /// Keeps the database (and its folder) alive for the test.
    pub t: TestDb,
    pub bots: PathBuf,
    pub registry: Arc<BotRegistry>,
    pub db: JobDb,
}

impl Setup {
    /// The local document store in the test's folder.
    pub fn documents(&self) -> Arc<dyn clerk::documents::store::DocumentStore> {
        Arc::new(clerk::documents::store::LocalStore::new(
            self.t.path().join("documents"),
        ))
    }
}

pub async fn setup(kind: Kind, name: &str, manifest: &str) -> Setup {
    let t = TestDb::new(kind).await;
    let bots = write_bot(t.path(), name, manifest);
    let registry = load_bots(&bots);
    let db = t.open().await;
    Setup {
        t,
        bots,
        registry,
        db,
    }
}

/// A key and a certificate for 127.0.0.1 and localhost, made with the
/// openssl command; returns the certificate's path.
pub fn self_signed_certificate(dir: &Path) -> std::path::PathBuf {
    let cert = dir.join("cert.pem");
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl made no certificate");
    cert
}

/// Queue `jobs`; their ids, in order.
pub async fn enqueue_ids(db: &JobDb, jobs: &[NewJob]) -> Vec<i64> {
    db.enqueue(jobs)
        .await
        .expect("enqueue")
        .iter()
        .map(|e| e.id)
        .collect()
}

/// Send `sig` to a child process.
pub fn signal(child: &std::process::Child, sig: i32) {
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

/// Wait for a child to exit; kills it and panics after `limit`.
pub fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Processes stopped (SIGTERM, then reaped) when dropped, also when a test
/// fails half-way.
pub struct Stopped<const N: usize>(pub [std::process::Child; N]);

impl<const N: usize> Drop for Stopped<N> {
    fn drop(&mut self) {
        for p in &mut self.0 {
            // SAFETY: signalling our own child.
            unsafe {
                libc::kill(p.id() as i32, libc::SIGTERM);
            }
            let _ = p.wait();
        }
    }
}

/// A real S3-compatible server (s3s-fs, which scripts/setup.sh builds into
/// .tools/) on a loopback port, over a folder of the test's, with one
/// bucket; stopped when dropped.
pub struct S3Server {
    pub endpoint: String,
    pub bucket: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

pub const S3_KEY: &str = "clerk-test-key";
pub const S3_SECRET: &str = "clerk-test-secret";

impl S3Server {
    pub fn start() -> S3Server {
        let binary = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/s3s-fs");
        assert!(
            binary.is_file(),
            "{} is needed: run scripts/setup.sh",
            binary.display()
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let bucket = "clerk".to_string();
        std::fs::create_dir_all(dir.path().join(&bucket)).expect("bucket folder");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = std::process::Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", S3_KEY, "--secret-key", S3_SECRET])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "s3s-fs did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        S3Server {
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket,
            child,
            _dir: dir,
        }
    }

    /// The variables a clerk process needs to use this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", S3_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET.to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
