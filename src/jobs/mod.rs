//! The job database: schema and migrations for SQLite and PostgreSQL,
//! enqueue with idempotency keys, batched claims under leases, heartbeats,
//! group-committed completions, retries, cancel, rescue of lost leases,
//! retention, and the audit trail of every state change.
//!
//! All SQL lives in `sqlite.rs` and `postgres.rs` behind [`JobStore`];
//! nothing outside this module writes SQL.

mod backoff;
mod postgres;
mod rows;
mod sqlite;

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

pub use backoff::backoff_delay;

/// The states of a job. Every change between them is written as an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    WaitingReview,
    Succeeded,
    Failed,
    Dead,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        JobState::Queued,
        JobState::Running,
        JobState::WaitingReview,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Dead,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::WaitingReview => "waiting_review",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    /// A finished job changes no more unless a person retries it.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Dead | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<_> = JobState::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown state `{s}`; expected one of {}", all.join(", "))
            })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error("cannot open the job database {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("job database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrating the job database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("job {0} does not exist")]
    NotFound(i64),
    #[error("job {id} is {state}; {what}")]
    WrongState {
        id: i64,
        state: JobState,
        what: &'static str,
    },
    #[error("corrupt row in the job database: {0}")]
    Corrupt(String),
}

pub type Result<T, E = JobsError> = std::result::Result<T, E>;

/// A job to put in the queue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub bot: String,
    pub input: Value,
    /// Unique per bot: enqueueing a key that exists returns the existing job.
    pub idempotency_key: Option<String>,
    pub max_attempts: u32,
    pub max_lost: u32,
    /// Not before this time (Unix ms); `None` means now.
    pub run_after: Option<i64>,
    /// Who asked for it, for the audit trail (`cli:alice`, `scheduler:host`).
    pub created_by: String,
}

/// What `enqueue` did with one [`NewJob`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    pub id: i64,
    /// False when the idempotency key already existed.
    pub created: bool,
    pub state: JobState,
}

/// A bot a worker is able to run, with its concurrency limit.
#[derive(Debug, Clone)]
pub struct BotClaim {
    pub name: String,
    pub concurrency: Option<u32>,
}

/// A job a worker has claimed and holds a lease on.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: i64,
    pub bot: String,
    pub input: Value,
    /// Number of this attempt, from 1; fences every later write.
    pub attempt: i64,
    /// Earlier attempts that ended in a transient error.
    pub errors: i64,
    pub lost: i64,
    pub max_attempts: i64,
    /// First step that has not succeeded yet; a retry resumes here.
    pub next_step: i64,
    pub run_after: i64,
    pub created_at: i64,
}

/// How a step or an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    /// Transient error: retried later.
    Error,
    /// Business error: not retried.
    Failed,
    WaitingReview,
    Cancelled,
    /// Stopped by a worker shutdown; does not count against the attempts.
    Interrupted,
    /// The worker vanished and its lease expired.
    Lost,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Error => "error",
            Outcome::Failed => "failed",
            Outcome::WaitingReview => "waiting_review",
            Outcome::Cancelled => "cancelled",
            Outcome::Interrupted => "interrupted",
            Outcome::Lost => "lost",
        }
    }
}

/// One step's run, as stored.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub index: i64,
    pub name: String,
    pub started_at: i64,
    pub finished_at: i64,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub output: Option<Value>,
}

/// A step that succeeded and must be durable before the next one starts.
#[derive(Debug, Clone)]
pub struct StepSave {
    pub job_id: i64,
    pub attempt: i64,
    pub step: StepRecord,
}

/// The end of one attempt, decided by the worker and applied by the store
/// only if the worker still holds the job (same worker, same attempt).
#[derive(Debug, Clone)]
pub struct Completion {
    pub job_id: i64,
    pub attempt: i64,
    pub state: JobState,
    pub attempt_outcome: Outcome,
    /// For `queued`: when the next attempt may start.
    pub run_after: i64,
    /// The job's count of transient errors after this attempt.
    pub errors: i64,
    pub next_step: i64,
    pub error: Option<String>,
    pub output: Option<Value>,
    /// For `waiting_review`: why a person must look.
    pub review: Option<Value>,
    /// Why, in words, for the audit trail.
    pub reason: String,
    /// Step runs of this attempt not yet saved.
    pub steps: Vec<StepRecord>,
}

/// What a heartbeat learns about the jobs a worker holds.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    /// Held jobs someone asked to cancel.
    pub cancel: Vec<i64>,
    /// Held jobs the worker no longer owns (its lease expired and the job was
    /// rescued); their results would be discarded.
    pub gone: Vec<i64>,
}

/// A running job whose lease had expired.
#[derive(Debug, Clone, Serialize)]
pub struct Rescued {
    pub id: i64,
    pub bot: String,
    pub worker: Option<String>,
    pub state: JobState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelOutcome {
    /// It was queued or waiting for review and is cancelled now.
    Cancelled,
    /// It is running; its worker stops it at the next heartbeat.
    Requested,
}

/// Filter for listing jobs.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub bot: Option<String>,
    pub state: Option<JobState>,
    pub limit: u32,
    /// Only jobs with an id below this (for paging).
    pub before_id: Option<i64>,
}

/// One line of `clerk runs list`.
#[derive(Debug, Clone, Serialize)]
pub struct JobSummary {
    pub id: i64,
    pub bot: String,
    pub state: JobState,
    pub attempt: i64,
    pub idempotency_key: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub run_after: i64,
    pub last_error: Option<String>,
}

/// Everything known about one job: `clerk runs show`.
#[derive(Debug, Clone, Serialize)]
pub struct JobDetail {
    #[serde(flatten)]
    pub summary: JobSummary,
    pub input: Value,
    pub output: Option<Value>,
    pub review: Option<Value>,
    pub errors: i64,
    pub lost: i64,
    pub max_attempts: i64,
    pub max_lost: i64,
    pub next_step: i64,
    pub worker: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub cancel_requested: bool,
    pub created_by: String,
    pub attempts: Vec<AttemptRecord>,
    pub events: Vec<EventRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord {
    pub attempt: i64,
    pub worker: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub outcome: Option<String>,
    pub error: Option<String>,
    pub steps: Vec<StepRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    pub at: i64,
    pub actor: String,
    pub from_state: Option<String>,
    pub to_state: String,
    pub reason: String,
}

/// A change of a job that a person hears about: a failed or dead job
/// (the bot's owners) or one waiting for review (its reviewers). Written by
/// the database in the transaction that changed the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    pub id: i64,
    pub job_id: i64,
    pub bot: String,
    pub kind: JobState,
    /// The reason of the change, as in the job's audit trail.
    pub reason: String,
    pub at: i64,
    /// Earlier attempts to send it that failed.
    pub tries: i64,
}

/// Which database is behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The job database. Both back ends implement it with the same guarantees
/// and are run through the same test suite.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Apply pending migrations. Safe to call from several processes at once.
    async fn migrate(&self) -> Result<()>;

    /// Put jobs in the queue, in one transaction. A job whose idempotency key
    /// exists for its bot is not created again; the existing one is returned.
    async fn enqueue(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>>;

    /// Claim up to `limit` due jobs of the given bots for `worker`, holding a
    /// lease until now + `lease`, respecting each bot's concurrency limit.
    async fn claim(
        &self,
        worker: &str,
        bots: &[BotClaim],
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<ClaimedJob>>;

    /// Store steps that succeeded, so a retry resumes after them. Returns per
    /// save whether the worker still held the job.
    async fn save_steps(&self, worker: &str, saves: &[StepSave]) -> Result<Vec<bool>>;

    /// End attempts, in one transaction. Returns per completion whether it was
    /// applied (false: the worker had lost the job; nothing was written).
    async fn complete(&self, worker: &str, completions: &[Completion]) -> Result<Vec<bool>>;

    /// Renew the leases of the jobs `worker` holds.
    async fn heartbeat(
        &self,
        worker: &str,
        held: &[(i64, i64)],
        lease: Duration,
    ) -> Result<Heartbeat>;

    /// Give claimed jobs back at once (graceful shutdown): they are queued
    /// again, due now, and the attempt does not count.
    async fn release(&self, worker: &str, held: &[(i64, i64)], reason: &str) -> Result<u64>;

    /// Find running jobs whose lease expired, record the attempt as lost and
    /// queue them again, or mark them dead past their limit of lost attempts.
    async fn rescue_expired(&self, actor: &str, limit: u32) -> Result<Vec<Rescued>>;

    /// Outputs of the steps of a job that succeeded, by step index.
    async fn step_outputs(&self, job_id: i64) -> Result<Vec<(i64, String, Value)>>;

    async fn cancel(&self, id: i64, actor: &str) -> Result<CancelOutcome>;

    /// Queue a failed, dead or cancelled job again with fresh attempts; it
    /// resumes at the step that failed.
    async fn retry(&self, id: i64, actor: &str) -> Result<()>;

    /// A reviewer approved a job waiting for review: queue it to go on at
    /// its next step.
    async fn approve(&self, id: i64, actor: &str, reason: &str) -> Result<()>;

    async fn job(&self, id: i64) -> Result<Option<JobDetail>>;

    async fn state(&self, id: i64) -> Result<Option<JobState>>;

    async fn list(&self, filter: &ListFilter) -> Result<Vec<JobSummary>>;

    /// Delete up to `batch` finished jobs (with their attempts, steps and
    /// events) that finished before `finished_before`. Returns how many.
    async fn prune(&self, finished_before: i64, batch: u32) -> Result<u64>;

    /// Enqueue the job of one schedule slot and remember the slot as fired,
    /// in one transaction. The job's idempotency key makes a slot fire once
    /// however many schedulers race for it.
    async fn fire_slot(&self, trigger_id: &str, slot: i64, job: &NewJob) -> Result<Enqueued>;

    /// Remember a slot as seen without running it (a new trigger's baseline,
    /// or a missed slot skipped by `catch_up = "skip"`).
    async fn mark_slot(&self, bot: &str, trigger_id: &str, slot: i64) -> Result<()>;

    /// The last slot fired for a trigger of a bot.
    async fn last_slot(&self, bot: &str, trigger_id: &str) -> Result<Option<i64>>;

    /// Where an intake of a bot got to in its source (`name` says which).
    async fn checkpoint(&self, bot: &str, name: &str) -> Result<Option<String>>;

    /// Remember where an intake got to.
    async fn set_checkpoint(&self, bot: &str, name: &str, value: &str) -> Result<()>;

    /// Reserve for `worker`, until now + `hold`, up to `limit` notices of
    /// `bot` of the given kinds that are neither done nor held by another,
    /// oldest first.
    async fn claim_notices(
        &self,
        bot: &str,
        kinds: &[JobState],
        worker: &str,
        hold: Duration,
        limit: u32,
    ) -> Result<Vec<Notice>>;

    /// Mark notices done; `outcome` says how (`sent`, `no recipients`).
    async fn finish_notices(&self, ids: &[i64], outcome: &str) -> Result<()>;

    /// Sending failed: keep the notices pending, not to be claimed again
    /// before `retry_at`.
    async fn postpone_notices(&self, ids: &[i64], error: &str, retry_at: i64) -> Result<()>;

    /// When a notice of `kind` of `bot` was last sent.
    async fn last_notice_sent(&self, bot: &str, kind: JobState) -> Result<Option<i64>>;

    /// A counter that moves whenever jobs may have become claimable (an
    /// enqueue in this process, or a NOTIFY from another one on PostgreSQL).
    fn wakeups(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Start listening for other processes' enqueues, where the back end can.
    async fn listen(&self) -> Result<()>;
}

pub type JobDb = Arc<dyn JobStore>;

/// A back end's migrations, `(version, name, SQL)` in order; each back end
/// keeps its own SQL files.
fn migrator(migrations: &[(i64, &'static str, &'static str)]) -> sqlx::migrate::Migrator {
    use sqlx::SqlSafeStr;
    sqlx::migrate::Migrator::with_migrations(
        migrations
            .iter()
            .map(|&(version, name, sql)| {
                sqlx::migrate::Migration::new(
                    version,
                    name.into(),
                    sqlx::migrate::MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// Open the job database at `url`: `sqlite://PATH` (created if missing) or
/// `postgres://…`.
pub async fn connect(url: &str) -> Result<JobDb> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::connect(url).await?))
    } else if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        Ok(Arc::new(sqlite::SqliteStore::open(Path::new(path)).await?))
    } else {
        Err(JobsError::UnsupportedUrl(url.to_string()))
    }
}

/// A database URL without its password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].find(':') {
            Some(c) => format!("{}:***{}", &url[..s + 3 + c], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

/// The current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn parse_json(s: Option<String>) -> Option<Value> {
    s.map(|s| serde_json::from_str(&s).unwrap_or(Value::String(s)))
}

fn parse_state(s: &str) -> Result<JobState> {
    s.parse().map_err(JobsError::Corrupt)
}

fn parse_outcome(s: &str) -> Outcome {
    match s {
        "succeeded" => Outcome::Succeeded,
        "error" => Outcome::Error,
        "failed" => Outcome::Failed,
        "waiting_review" => Outcome::WaitingReview,
        "cancelled" => Outcome::Cancelled,
        "interrupted" => Outcome::Interrupted,
        _ => Outcome::Lost,
    }
}

/// What becomes of a job whose worker vanished.
fn lost_verdict(
    worker: Option<&str>,
    lost: i64,
    max_lost: i64,
    cancel_requested: bool,
) -> (JobState, String) {
    let who = worker.unwrap_or("unknown worker");
    if cancel_requested {
        (
            JobState::Cancelled,
            format!("lease of {who} expired while a cancel was pending"),
        )
    } else if lost >= max_lost {
        (
            JobState::Dead,
            format!("lease of {who} expired; lost {lost} of at most {max_lost} attempts"),
        )
    } else {
        (
            JobState::Queued,
            format!("lease of {who} expired; attempt recorded as lost ({lost} of {max_lost})"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_leave_in_urls() {
        assert_eq!(
            redact_url("postgres://clerk:s3cret@db:5432/jobs"),
            "postgres://clerk:***@db:5432/jobs"
        );
        assert_eq!(
            redact_url("postgres://clerk@db/jobs"),
            "postgres://clerk@db/jobs"
        );
        assert_eq!(
            redact_url("sqlite://data/clerk.db"),
            "sqlite://data/clerk.db"
        );
    }

    #[test]
    fn states_round_trip_through_text() {
        for s in JobState::ALL {
            assert_eq!(s.as_str().parse::<JobState>().ok(), Some(s));
        }
        let err = "runing".parse::<JobState>().unwrap_err();
        assert!(err.contains("waiting_review"), "{err}");
    }
}
