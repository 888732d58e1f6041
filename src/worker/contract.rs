//! The contract every step kind keeps, run for each kind of the registry
//! through a real worker and a real SQLite job database:
//!
//! - a cancel stops a running step within seconds, and the kind works for
//!   the next job afterwards;
//! - the value of a secret the step was given is in nothing stored;
//! - a business error fails the job at once, without a retry.
//!
//! The cases come from each kind (`StepKind::contract`), so a kind cannot
//! be added without them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{Worker, WorkerConfig};
use crate::bot::{BotRegistry, kinds, parse_manifest};
use crate::config::secrets::Secrets;
use crate::jobs::{JobDb, JobState, NewJob};
use crate::step::StepKind;
use crate::step::kind::contract::Case;

const SECRET: &str = "contract-s3cr3t-4711";

/// A listener that takes connections and never says a word: a server that
/// hangs.
fn silent_listener() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

struct Harness {
    dir: tempfile::TempDir,
    db: JobDb,
    port: u16,
}

impl Harness {
    fn fill(&self, text: &str) -> String {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        text.replace("{fixtures}", &fixtures.display().to_string())
            .replace("{silent_port}", &self.port.to_string())
    }

    /// A bot of one step, the case's, with quick retries, so a retried
    /// business error would show as a second attempt within the test.
    fn bot_file(&self, name: &str, case: &Case) -> PathBuf {
        let dir = self.dir.path().join("bots").join(name);
        std::fs::create_dir_all(&dir).expect("bot folder");
        let text = format!(
            "name = \"{name}\"\nsecrets = [\"CONTRACT_SECRET\"]\n[retry]\nmax_attempts = 3\nbackoff = \"10ms\"\nbackoff_cap = \"10ms\"\n\n[[steps]]\nname = \"contract\"\n{}\n",
            self.fill(case.step)
        );
        let file = dir.join("bot.toml");
        std::fs::write(&file, text).expect("bot file");
        file
    }

    async fn enqueue(&self, bot: &str, case: &Case) -> i64 {
        let input = serde_json::from_str(&self.fill(case.input)).expect("case input is JSON");
        let job = NewJob {
            bot: bot.to_string(),
            input,
            idempotency_key: None,
            max_attempts: 3,
            max_lost: 3,
            run_after: None,
            created_by: "contract".into(),
            refused: None,
        };
        self.db.enqueue(&[job]).await.expect("enqueue")[0].id
    }

    /// Wait until job `id` is in a state `done` accepts, for at most `limit`.
    async fn wait(&self, id: i64, limit: Duration, done: impl Fn(JobState) -> bool) -> JobState {
        let start = Instant::now();
        loop {
            let state = self.db.state(id).await.expect("state").expect("job");
            if done(state) {
                return state;
            }
            if start.elapsed() > limit {
                let detail = self.db.job(id).await.ok().flatten();
                panic!("job {id} is still {state} after {limit:?}: {detail:#?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The three bots of one kind, loaded the way bot files are.
fn load(h: &Harness, kind: &dyn StepKind) -> Vec<Arc<crate::bot::Bot>> {
    let cases = kind.contract();
    let name = kind.name();
    let mut files = vec![
        h.bot_file(&format!("{name}-stopped"), &cases.runs_until_stopped),
        h.bot_file(&format!("{name}-business"), &cases.business_error),
    ];
    if let Ok(case) = &cases.reports_a_secret {
        files.push(h.bot_file(&format!("{name}-secret"), case));
    }
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file).expect("bot file");
            match parse_manifest(file, &text) {
                Ok(bot) => Arc::new(bot),
                Err(diags) => panic!("the contract cases of `{name}` do not load: {diags:#?}"),
            }
        })
        .collect()
}

async fn keeps_the_contract(h: &Harness, kind: &dyn StepKind) {
    let name = kind.name();
    let cases = kind.contract();

    // A cancel stops a running step.
    let id = h
        .enqueue(&format!("{name}-stopped"), &cases.runs_until_stopped)
        .await;
    h.wait(id, Duration::from_secs(30), |s| s == JobState::Running)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    h.db.cancel(id, "contract").await.expect("cancel");
    let state = h
        .wait(id, Duration::from_secs(10), JobState::is_finished)
        .await;
    assert_eq!(
        state,
        JobState::Cancelled,
        "`{name}`: a cancel ends the job as cancelled"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "`{name}`: the cancel took {:?}",
        asked.elapsed()
    );

    // A business error fails at once; the kind works after the cancel.
    let id = h
        .enqueue(&format!("{name}-business"), &cases.business_error)
        .await;
    let state = h
        .wait(id, Duration::from_secs(60), JobState::is_finished)
        .await;
    let detail = h.db.job(id).await.expect("job").expect("job");
    assert_eq!(state, JobState::Failed, "`{name}`: {detail:#?}");
    assert_eq!(
        detail.attempts.len(),
        1,
        "`{name}`: a business error is not retried: {detail:#?}"
    );
    assert_eq!(detail.errors, 0, "`{name}`: {detail:#?}");

    // A secret stays out of what is stored.
    match &cases.reports_a_secret {
        Ok(case) => {
            let id = h.enqueue(&format!("{name}-secret"), case).await;
            h.wait(id, Duration::from_secs(60), |s| {
                s.is_finished() || s == JobState::WaitingReview
            })
            .await;
            let detail = h.db.job(id).await.expect("job").expect("job");
            let stored = serde_json::to_string(&detail).expect("json");
            assert!(
                !stored.contains(SECRET),
                "`{name}` stored the secret's value: {stored}"
            );
        }
        Err(why) => assert!(!why.is_empty(), "`{name}` says why it takes no secret"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_kind_keeps_the_contract() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secrets_file = dir.path().join("secrets");
    std::fs::write(&secrets_file, format!("CONTRACT_SECRET={SECRET}\n")).expect("secrets");
    let db = crate::jobs::connect(&format!(
        "sqlite://{}",
        dir.path().join("jobs.db").display()
    ))
    .await
    .expect("database");
    db.migrate().await.expect("migrate");
    let h = Harness {
        dir,
        db,
        port: silent_listener(),
    };
    let bots: Vec<_> = kinds::KINDS.iter().flat_map(|k| load(&h, *k)).collect();
    let mut config = WorkerConfig::new(4);
    config.heartbeat = Duration::from_millis(100);
    config.poll_interval = Duration::from_millis(50);
    config.grace = Duration::from_secs(2);
    config.secrets = Arc::new(Secrets::with_file(&secrets_file).expect("secrets file"));
    let stop = CancellationToken::new();
    let worker = tokio::spawn(
        Worker::new(h.db.clone(), Arc::new(BotRegistry::new(bots)), config).run(stop.clone()),
    );
    for kind in kinds::KINDS {
        keeps_the_contract(&h, *kind).await;
    }
    stop.cancel();
    let _ = worker.await;
}
