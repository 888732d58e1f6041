//! The embedded job database: one SQLite file.
//!
//! SQLite allows one writer at a time. All writes of this process go through
//! one connection and start with `BEGIN IMMEDIATE`, so a transaction takes the
//! write lock up front and waits for it (busy timeout) instead of failing
//! half-way with "database is locked" when another process (a `clerk run`
//! next to `clerk serve`) writes too. Reads use a separate pool; WAL mode
//! lets them run while a write is in progress.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};
use std::collections::HashMap;

use tokio::sync::watch;

use super::*;

mod access;
mod admin;
mod documents;
mod intake;
mod notices;
mod queue;
mod reviews;
mod schedules;
mod stats;
mod workers;

const SELECT_CLAIMED: &str = "RETURNING id, bot, input, attempt, errors, lost, max_attempts, next_step, run_after, created_at";

pub struct SqliteStore {
    path: std::path::PathBuf,
    writer: SqlitePool,
    reader: SqlitePool,
    wake: watch::Sender<u64>,
    listening: std::sync::atomic::AtomicBool,
    /// Ends the change watcher when the store goes away.
    stop: tokio_util::sync::CancellationToken,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn migrator() -> sqlx::migrate::Migrator {
    super::migrator(&[
        (
            1,
            "jobs",
            include_str!("../migrations/sqlite/0001_jobs.sql"),
        ),
        (
            2,
            "checkpoints",
            include_str!("../migrations/sqlite/0002_checkpoints.sql"),
        ),
        (
            3,
            "notifications",
            include_str!("../migrations/sqlite/0003_notifications.sql"),
        ),
        (
            4,
            "review",
            include_str!("../migrations/sqlite/0004_review.sql"),
        ),
        (
            5,
            "review rules",
            include_str!("../migrations/sqlite/0005_review_rules.sql"),
        ),
        (
            6,
            "operations",
            include_str!("../migrations/sqlite/0006_operations.sql"),
        ),
        (
            7,
            "job keys",
            include_str!("../migrations/sqlite/0007_job_keys.sql"),
        ),
        (
            8,
            "documents",
            include_str!("../migrations/sqlite/0008_documents.sql"),
        ),
        (
            9,
            "workers",
            include_str!("../migrations/sqlite/0009_workers.sql"),
        ),
    ])
}

impl SqliteStore {
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| JobsError::Connect {
                url: format!("sqlite://{}", path.display()),
                source: sqlx::Error::Io(e),
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            // FULL: a commit is on disk before it is acknowledged. Group
            // commits keep the cost of the fsync per batch, not per job.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(60));
        let connect_err = |source| JobsError::Connect {
            url: format!("sqlite://{}", path.display()),
            source,
        };
        // Switching a new file to WAL takes an exclusive lock that SQLite's
        // busy timeout does not wait for, so processes opening the same file
        // at once take turns; WAL then stays set in the file.
        let lock = FileLock::acquire(&path.with_extension("lock")).await?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(120))
            .connect_with(options.clone().journal_mode(SqliteJournalMode::Wal))
            .await
            .map_err(connect_err)?;
        drop(lock);
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .map_err(connect_err)?;
        let (wake, _) = watch::channel(0);
        Ok(SqliteStore {
            listening: std::sync::atomic::AtomicBool::new(false),
            stop: tokio_util::sync::CancellationToken::new(),
            path: path.to_path_buf(),
            writer,
            reader,
            wake,
        })
    }

    async fn write(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    fn poke(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// An exclusive `flock` on a file next to the database, released on drop.
struct FileLock {
    _file: std::fs::File,
}

impl FileLock {
    async fn acquire(path: &Path) -> Result<FileLock> {
        let io = |e| JobsError::Database(sqlx::Error::Io(e));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io)?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        let locked = tokio::task::spawn_blocking(move || {
            // SAFETY: flock on a descriptor that stays open until the lock is
            // dropped; closing it releases the lock.
            if unsafe { libc::flock(fd, libc::LOCK_EX) } == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        })
        .await
        .map_err(|e| io(std::io::Error::other(e)))?;
        locked.map_err(io)?;
        Ok(FileLock { _file: file })
    }
}

async fn event(
    tx: &mut Transaction<'static, Sqlite>,
    job_id: i64,
    at: i64,
    actor: &str,
    from: Option<JobState>,
    to: JobState,
    reason: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO events (job_id, at, actor, from_state, to_state, reason) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(job_id)
    .bind(at)
    .bind(actor)
    .bind(from.map(|s| s.as_str()))
    .bind(to.as_str())
    .bind(reason)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Write a decided change of state into the audit trail, with its details.
async fn record(
    tx: &mut Transaction<'static, Sqlite>,
    job_id: i64,
    at: i64,
    actor: &str,
    change: &transitions::Transition,
    detail: Option<&Value>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO events (job_id, at, actor, from_state, to_state, reason, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(job_id)
    .bind(at)
    .bind(actor)
    .bind(change.from.as_str())
    .bind(change.to.as_str())
    .bind(&change.reason)
    .bind(detail.map(Value::to_string))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Record how an attempt ended. The attempt's row is written once, when it
/// ends; while it runs, the job row itself tells who runs it since when.
async fn end_attempt(
    tx: &mut Transaction<'static, Sqlite>,
    job_id: i64,
    attempt: i64,
    worker: &str,
    now: i64,
    outcome: Outcome,
    error: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT OR REPLACE INTO attempts (job_id, attempt, worker, started_at, finished_at, outcome, error)
         SELECT id, ?, ?, COALESCE(attempt_started_at, ?), ?, ?, ? FROM jobs WHERE id = ?",
    )
    .bind(attempt)
    .bind(worker)
    .bind(now)
    .bind(now)
    .bind(outcome.as_str())
    .bind(error)
    .bind(job_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_step(
    tx: &mut Transaction<'static, Sqlite>,
    job_id: i64,
    attempt: i64,
    s: &StepRecord,
) -> Result<()> {
    sqlx::query(
        "INSERT OR REPLACE INTO step_runs (job_id, attempt, step_index, step_name, started_at, finished_at, outcome, error, output)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(job_id)
    .bind(attempt)
    .bind(s.index)
    .bind(&s.name)
    .bind(s.started_at)
    .bind(s.finished_at)
    .bind(s.outcome.as_str())
    .bind(&s.error)
    .bind(s.output.as_ref().map(|v| v.to_string()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Enqueue inside an open transaction; shared by `enqueue` and `fire_slot`.
async fn enqueue_in(
    tx: &mut Transaction<'static, Sqlite>,
    job: &NewJob,
    now: i64,
) -> Result<Enqueued> {
    let job = &job.storable()?;
    if let Some(key) = &job.idempotency_key
        && let Some(known) = known_key(tx, &job.bot, key).await?
    {
        return Ok(known);
    }
    let state = job.first_state();
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO jobs (bot, state, input, idempotency_key, max_attempts, max_lost, run_after, created_by, created_at, updated_at,
                           last_error, finished_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (bot, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
         RETURNING id",
    )
    .bind(&job.bot)
    .bind(state.as_str())
    .bind(job.input.to_string())
    .bind(&job.idempotency_key)
    .bind(i64::from(job.max_attempts))
    .bind(i64::from(job.max_lost))
    .bind(job.run_after.unwrap_or(now))
    .bind(&job.created_by)
    .bind(now)
    .bind(now)
    .bind(&job.refused)
    .bind(job.refused.as_ref().map(|_| now))
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(id) = inserted {
        if let Some(key) = &job.idempotency_key {
            sqlx::query(
                "INSERT INTO job_keys (bot, key, job_id, created_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (bot, key) DO NOTHING",
            )
            .bind(&job.bot)
            .bind(key)
            .bind(id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        event(
            tx,
            id,
            now,
            &job.created_by,
            None,
            JobState::Queued,
            "enqueued",
        )
        .await?;
        if let Some(reason) = &job.refused {
            event(
                tx,
                id,
                now,
                &job.created_by,
                Some(JobState::Queued),
                JobState::Failed,
                reason,
            )
            .await?;
        }
        return Ok(Enqueued {
            id,
            created: true,
            state,
        });
    }
    let row = sqlx::query("SELECT id, state FROM jobs WHERE bot = ? AND idempotency_key = ?")
        .bind(&job.bot)
        .bind(&job.idempotency_key)
        .fetch_one(&mut **tx)
        .await?;
    let state: String = row.try_get("state")?;
    Ok(Enqueued {
        id: row.try_get("id")?,
        created: false,
        state: parse_state(&state)?,
    })
}

/// The job a key was given to, if the key is known: the job as it is, or
/// (pruned since) as it ended.
async fn known_key(
    tx: &mut Transaction<'static, Sqlite>,
    bot: &str,
    key: &str,
) -> Result<Option<Enqueued>> {
    let row = sqlx::query(
        "SELECT k.job_id, COALESCE(j.state, k.state) AS state FROM job_keys k
         LEFT JOIN jobs j ON j.id = k.job_id WHERE k.bot = ? AND k.key = ?",
    )
    .bind(bot)
    .bind(key)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let id: i64 = row.try_get("job_id")?;
    let state: Option<String> = row.try_get("state")?;
    let state = state.ok_or_else(|| {
        JobsError::Corrupt(format!(
            "key `{key}` of bot {bot}: job {id} is gone with no state kept"
        ))
    })?;
    Ok(Some(Enqueued {
        id,
        created: false,
        state: parse_state(&state)?,
    }))
}

/// `id1, id2, …)`: the end of an `IN (` list of ids.
fn push_ids(q: &mut QueryBuilder<Sqlite>, ids: &[i64]) {
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    q.push(")");
}

impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn migrate(&self) -> Result<()> {
        // SQLite has no advisory locks, so processes that start together
        // (`clerk serve` and a `clerk run`) take turns through a lock file.
        let lock = FileLock::acquire(&self.path.with_extension("lock")).await?;
        let result = migrator().run(&self.writer).await;
        drop(lock);
        result?;
        Ok(())
    }

    async fn ready(&self) -> Result<()> {
        let latest = migrator().iter().map(|m| m.version).max().unwrap_or(0);
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.reader)
                .await?;
        match applied {
            Some(v) if v >= latest => Ok(()),
            v => Err(JobsError::NotMigrated {
                have: v.unwrap_or(0),
                need: latest,
            }),
        }
    }
}
