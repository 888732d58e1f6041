//! The job database: schema and migrations for SQLite and PostgreSQL,
//! enqueue with idempotency keys, batched claims under leases, heartbeats,
//! group-committed completions, retries, cancel, rescue of lost leases,
//! retention, and the audit trail of every state change.
//!
//! - `model`: what the database holds and hands out;
//! - `store`: one narrow trait per use (worker, intake, scheduler, people,
//!   notifications);
//! - `transitions`: which state changes are allowed, decided once;
//! - `sqlite/` and `postgres/`: all SQL, one folder per back end, one file
//!   per trait; `rows` turns their rows into the model, the same for both.
//!
//! Nothing outside this module writes SQL.

mod access;
mod facts;
mod model;
mod postgres;
mod retry;
mod reviews;
mod roster;
mod rows;
mod sqlite;
mod storable;
mod store;
mod transitions;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use access::{ApiToken, Role, Session, User, answers_to, may_work};
pub use facts::{
    BotEvent, DailyRow, Ending, FinishedRow, JobFact, Live, Pause, Received, StepFact, TrailEvent,
    belongs_to, job_fact, source_of,
};
pub use model::*;
pub use retry::{RetryPolicy, backoff_delay};
pub use reviews::{
    Approval, Review, ReviewEvent, ReviewFilter, ReviewItem, ReviewOutcome, ReviewUpdate,
};
pub use roster::{WORKER_ANNOUNCE_EVERY, WORKER_GONE_AFTER, unserved};
pub use storable::{KEY_MAX_BYTES, nul_at, printable, printable_value, stored_key};
pub use store::{
    AccessStore, AdminStore, Backend, DocumentRows, IntakeStore, JobDb, JobStore, NoticeStore,
    QueueStore, ReviewStore, RosterStore, ScheduleStore, StatsStore, Store,
};
pub use transitions::{ChangeRequest, Decision, RowChange, Transition};

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
    #[error("{what} `{name}` exists already")]
    AlreadyExists { what: &'static str, name: String },
    #[error("job {id} is held for review by {by} until {until}; wait, or ask them to let go")]
    HeldBy { id: i64, by: String, until: String },
    #[error(
        "the review of job {id} changed since it was read (version {found}, not {expected}); reload it"
    )]
    Conflict { id: i64, expected: i64, found: i64 },
    #[error("job {0} is not waiting for review")]
    NoReview(i64),
    #[error(
        "the job database's schema is at version {have}, this clerk needs {need}: run `clerk db migrate`"
    )]
    NotMigrated { have: i64, need: i64 },
    /// A value no back end can keep, with where it is.
    #[error("{0}")]
    Unstorable(String),
}

pub type Result<T, E = JobsError> = std::result::Result<T, E>;

impl JobsError {
    /// Whether the database refused a value (not the connection): writing
    /// the same rows again cannot help. PostgreSQL's data exceptions
    /// (class 22: a NUL character in text or jsonb, a number out of range)
    /// and SQLite's value too big.
    pub fn is_refused_value(&self) -> bool {
        match self {
            JobsError::Unstorable(_) => true,
            JobsError::Database(sqlx::Error::Database(e)) => {
                let code = e.code().unwrap_or_default();
                match e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                    Some(_) => code.starts_with("22"),
                    None => code == "18",
                }
            }
            _ => false,
        }
    }
}

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

/// A time for messages: `2026-12-01 23:05:00Z`.
pub fn time_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
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

fn parse_outcome(s: &str) -> Result<Outcome> {
    s.parse().map_err(JobsError::Corrupt)
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
