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
        (1, "jobs", include_str!("migrations/sqlite/0001_jobs.sql")),
        (
            2,
            "checkpoints",
            include_str!("migrations/sqlite/0002_checkpoints.sql"),
        ),
        (
            3,
            "notifications",
            include_str!("migrations/sqlite/0003_notifications.sql"),
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
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO jobs (bot, state, input, idempotency_key, max_attempts, max_lost, run_after, created_by, created_at, updated_at)
         VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (bot, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
         RETURNING id",
    )
    .bind(&job.bot)
    .bind(job.input.to_string())
    .bind(&job.idempotency_key)
    .bind(i64::from(job.max_attempts))
    .bind(i64::from(job.max_lost))
    .bind(job.run_after.unwrap_or(now))
    .bind(&job.created_by)
    .bind(now)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(id) = inserted {
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
        return Ok(Enqueued {
            id,
            created: true,
            state: JobState::Queued,
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

#[async_trait]
impl JobStore for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn migrate(&self) -> Result<()> {
        // SQLite has no advisory locks, so processes that start together
        // (`clerk serve` and a `clerk run`) take turns through a lock file.
        let lock = FileLock::acquire(&self.path.with_extension("lock")).await?;
        let result = migrator().run(&self.writer).await;
        drop(lock);
        result?;
        Ok(())
    }

    async fn enqueue(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            out.push(enqueue_in(&mut tx, job, now).await?);
        }
        tx.commit().await?;
        self.poke();
        Ok(out)
    }

    async fn claim(
        &self,
        worker: &str,
        bots: &[BotClaim],
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<ClaimedJob>> {
        if limit == 0 || bots.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.write().await?;
        // Timed once the write lock is held: a job claimed the moment another
        // of its bot ended must not seem to start before that one ended.
        let now = now_ms();
        let expires = now + duration_ms(lease);
        let mut claimed: Vec<ClaimedJob> = Vec::new();
        let free: Vec<&BotClaim> = bots.iter().filter(|b| b.concurrency.is_none()).collect();
        // One claim query for every bot without a limit; one per limited bot,
        // after counting its running jobs. The single writer makes the count
        // and the claim one atomic step.
        let mut groups: Vec<(Vec<&str>, i64)> = Vec::new();
        if !free.is_empty() {
            groups.push((
                free.iter().map(|b| b.name.as_str()).collect(),
                i64::from(limit),
            ));
        }
        for b in bots.iter().filter(|b| b.concurrency.is_some()) {
            let running: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE bot = ? AND state = 'running'")
                    .bind(&b.name)
                    .fetch_one(&mut *tx)
                    .await?;
            let room = i64::from(b.concurrency.unwrap_or(0)) - running;
            if room > 0 {
                groups.push((vec![b.name.as_str()], room));
            }
        }
        for (names, room) in groups {
            let want = room.min(i64::from(limit) - claimed.len() as i64);
            if want <= 0 {
                break;
            }
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "UPDATE jobs SET state = 'running', attempt = attempt + 1, worker = ",
            );
            q.push_bind(worker)
                .push(", lease_expires_at = ")
                .push_bind(expires)
                .push(", started_at = COALESCE(started_at, ")
                .push_bind(now)
                .push("), attempt_started_at = (")
                .push_bind(now)
                .push("), updated_at = ")
                .push_bind(now)
                .push(" WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' AND run_after <= ")
                .push_bind(now)
                .push(" AND bot IN (");
            let mut sep = q.separated(", ");
            for n in &names {
                sep.push_bind(*n);
            }
            q.push(") ORDER BY run_after, id LIMIT ")
                .push_bind(want)
                .push(") ")
                .push(SELECT_CLAIMED);
            let rows = q.build().fetch_all(&mut *tx).await?;
            for row in &rows {
                claimed.push(rows::claimed(row)?);
            }
        }
        claimed.sort_by_key(|j| (j.run_after, j.id));
        for chunk in claimed.chunks(200) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO events (job_id, at, actor, from_state, to_state, reason) ",
            );
            q.push_values(chunk, |mut b, j| {
                b.push_bind(j.id)
                    .push_bind(now)
                    .push_bind(worker)
                    .push_bind("queued")
                    .push_bind("running")
                    .push_bind(format!("claimed, attempt {}", j.attempt));
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(claimed)
    }

    async fn save_steps(&self, worker: &str, saves: &[StepSave]) -> Result<Vec<bool>> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let mut out = Vec::with_capacity(saves.len());
        for s in saves {
            let held = sqlx::query(
                "UPDATE jobs SET next_step = MAX(next_step, ?), updated_at = ?
                 WHERE id = ? AND worker = ? AND attempt = ? AND state = 'running'",
            )
            .bind(s.step.index + 1)
            .bind(now)
            .bind(s.job_id)
            .bind(worker)
            .bind(s.attempt)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if held {
                insert_step(&mut tx, s.job_id, s.attempt, &s.step).await?;
            }
            out.push(held);
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn complete(&self, worker: &str, completions: &[Completion]) -> Result<Vec<bool>> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let mut applied: HashMap<i64, i64> = HashMap::new();
        // Multi-row statements, a chunk at a time: one statement per table
        // per chunk instead of four per job.
        for chunk in completions.chunks(200) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "UPDATE jobs SET state = c.column3, run_after = c.column4, errors = c.column5, next_step = c.column6,
                    last_error = COALESCE(c.column7, last_error), output = COALESCE(c.column8, output),
                    review = c.column9, finished_at = c.column10, worker = NULL, lease_expires_at = NULL,
                    updated_at = ",
            );
            q.push_bind(now).push(" FROM (");
            q.push_values(chunk, |mut b, c| {
                b.push_bind(c.job_id)
                    .push_bind(c.attempt)
                    .push_bind(c.state.as_str())
                    .push_bind(c.run_after)
                    .push_bind(c.errors)
                    .push_bind(c.next_step)
                    .push_bind(c.error.clone())
                    .push_bind(c.output.as_ref().map(|v| v.to_string()))
                    .push_bind(c.review.as_ref().map(|v| v.to_string()))
                    .push_bind(c.state.is_finished().then_some(now));
            });
            q.push(
                ") AS c WHERE jobs.id = c.column1 AND jobs.attempt = c.column2 AND jobs.worker = ",
            )
            .push_bind(worker)
            .push(" AND jobs.state = 'running' RETURNING jobs.id, jobs.attempt_started_at");
            for row in q.build().fetch_all(&mut *tx).await? {
                let started: Option<i64> = row.try_get("attempt_started_at")?;
                applied.insert(row.try_get("id")?, started.unwrap_or(now));
            }
            let done: Vec<&Completion> = chunk
                .iter()
                .filter(|c| applied.contains_key(&c.job_id))
                .collect();
            if done.is_empty() {
                continue;
            }
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT OR REPLACE INTO attempts (job_id, attempt, worker, started_at, finished_at, outcome, error) ",
            );
            q.push_values(&done, |mut b, c| {
                b.push_bind(c.job_id)
                    .push_bind(c.attempt)
                    .push_bind(worker)
                    .push_bind(applied.get(&c.job_id).copied().unwrap_or(now))
                    .push_bind(now)
                    .push_bind(c.attempt_outcome.as_str())
                    .push_bind(c.error.clone());
            });
            q.build().execute(&mut *tx).await?;
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO events (job_id, at, actor, from_state, to_state, reason) ",
            );
            q.push_values(&done, |mut b, c| {
                b.push_bind(c.job_id)
                    .push_bind(now)
                    .push_bind(worker)
                    .push_bind("running")
                    .push_bind(c.state.as_str())
                    .push_bind(c.reason.clone());
            });
            q.build().execute(&mut *tx).await?;
            let steps: Vec<(&Completion, &StepRecord)> = done
                .iter()
                .flat_map(|c| c.steps.iter().map(move |s| (*c, s)))
                .collect();
            if !steps.is_empty() {
                let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                    "INSERT OR REPLACE INTO step_runs (job_id, attempt, step_index, step_name, started_at, finished_at, outcome, error, output) ",
                );
                q.push_values(&steps, |mut b, (c, s)| {
                    b.push_bind(c.job_id)
                        .push_bind(c.attempt)
                        .push_bind(s.index)
                        .push_bind(s.name.clone())
                        .push_bind(s.started_at)
                        .push_bind(s.finished_at)
                        .push_bind(s.outcome.as_str())
                        .push_bind(s.error.clone())
                        .push_bind(s.output.as_ref().map(|v| v.to_string()));
                });
                q.build().execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        if completions.iter().any(|c| {
            applied.contains_key(&c.job_id) && c.state == JobState::Queued && c.run_after <= now
        }) {
            self.poke();
        }
        Ok(completions
            .iter()
            .map(|c| applied.contains_key(&c.job_id))
            .collect())
    }

    async fn heartbeat(
        &self,
        worker: &str,
        held: &[(i64, i64)],
        lease: Duration,
    ) -> Result<Heartbeat> {
        if held.is_empty() {
            return Ok(Heartbeat::default());
        }
        let now = now_ms();
        let mut tx = self.write().await?;
        let rows = sqlx::query(
            "UPDATE jobs SET lease_expires_at = ? WHERE worker = ? AND state = 'running'
             RETURNING id, attempt, cancel_requested",
        )
        .bind(now + duration_ms(lease))
        .bind(worker)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows::heartbeat(held, &rows)
    }

    async fn release(&self, worker: &str, held: &[(i64, i64)], reason: &str) -> Result<u64> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let mut n = 0;
        for &(id, attempt) in held {
            let applied = sqlx::query(
                "UPDATE jobs SET state = 'queued', run_after = ?, worker = NULL, lease_expires_at = NULL, updated_at = ?
                 WHERE id = ? AND worker = ? AND attempt = ? AND state = 'running'",
            )
            .bind(now)
            .bind(now)
            .bind(id)
            .bind(worker)
            .bind(attempt)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if applied {
                end_attempt(
                    &mut tx,
                    id,
                    attempt,
                    worker,
                    now,
                    Outcome::Interrupted,
                    Some(reason),
                )
                .await?;
                event(
                    &mut tx,
                    id,
                    now,
                    worker,
                    Some(JobState::Running),
                    JobState::Queued,
                    reason,
                )
                .await?;
                n += 1;
            }
        }
        tx.commit().await?;
        if n > 0 {
            self.poke();
        }
        Ok(n)
    }

    async fn rescue_expired(&self, actor: &str, limit: u32) -> Result<Vec<Rescued>> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let rows = sqlx::query(
            "SELECT id, bot, worker, attempt, lost, max_lost, cancel_requested FROM jobs
             WHERE state = 'running' AND lease_expires_at < ? ORDER BY lease_expires_at LIMIT ?",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Vec::new();
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let worker: Option<String> = row.try_get("worker")?;
            let attempt: i64 = row.try_get("attempt")?;
            let lost: i64 = row.try_get::<i64, _>("lost")? + 1;
            let max_lost: i64 = row.try_get("max_lost")?;
            let cancel: bool = row.try_get("cancel_requested")?;
            let (state, reason) = lost_verdict(worker.as_deref(), lost, max_lost, cancel);
            let finished = state.is_finished().then_some(now);
            sqlx::query(
                "UPDATE jobs SET state = ?, lost = ?, worker = NULL, lease_expires_at = NULL, run_after = ?,
                        finished_at = ?, updated_at = ?, last_error = CASE WHEN ? = 'dead' THEN ? ELSE last_error END
                 WHERE id = ?",
            )
            .bind(state.as_str())
            .bind(lost)
            .bind(now)
            .bind(finished)
            .bind(now)
            .bind(state.as_str())
            .bind(&reason)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            end_attempt(
                &mut tx,
                id,
                attempt,
                worker.as_deref().unwrap_or("unknown"),
                now,
                Outcome::Lost,
                Some(&reason),
            )
            .await?;
            event(
                &mut tx,
                id,
                now,
                actor,
                Some(JobState::Running),
                state,
                &reason,
            )
            .await?;
            out.push(Rescued {
                id,
                bot: row.try_get("bot")?,
                worker,
                state,
            });
        }
        tx.commit().await?;
        if !out.is_empty() {
            self.poke();
        }
        Ok(out)
    }

    async fn step_outputs(&self, job_id: i64) -> Result<Vec<(i64, String, Value)>> {
        let rows = sqlx::query(
            "SELECT step_index, step_name, output FROM step_runs
             WHERE job_id = ? AND outcome IN ('succeeded', 'waiting_review') ORDER BY step_index, attempt",
        )
        .bind(job_id)
        .fetch_all(&self.reader)
        .await?;
        let mut out: Vec<(i64, String, Value)> = Vec::new();
        for row in &rows {
            let index: i64 = row.try_get("step_index")?;
            let output = parse_json(row.try_get("output")?).unwrap_or(Value::Null);
            // A later attempt's output of the same step replaces an earlier one.
            out.retain(|(i, _, _)| *i != index);
            out.push((index, row.try_get("step_name")?, output));
        }
        Ok(out)
    }

    async fn cancel(&self, id: i64, actor: &str) -> Result<CancelOutcome> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let state = parse_state(&state.ok_or(JobsError::NotFound(id))?)?;
        let outcome = match state {
            JobState::Queued | JobState::WaitingReview => {
                sqlx::query(
                    "UPDATE jobs SET state = 'cancelled', finished_at = ?, updated_at = ? WHERE id = ?",
                )
                .bind(now)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                event(
                    &mut tx,
                    id,
                    now,
                    actor,
                    Some(state),
                    JobState::Cancelled,
                    "cancelled",
                )
                .await?;
                CancelOutcome::Cancelled
            }
            JobState::Running => {
                sqlx::query("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                event(
                    &mut tx,
                    id,
                    now,
                    actor,
                    Some(state),
                    state,
                    "cancel requested",
                )
                .await?;
                CancelOutcome::Requested
            }
            _ => {
                return Err(JobsError::WrongState {
                    id,
                    state,
                    what: "only queued, running or waiting jobs can be cancelled",
                });
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn retry(&self, id: i64, actor: &str) -> Result<()> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let state = parse_state(&state.ok_or(JobsError::NotFound(id))?)?;
        if !matches!(
            state,
            JobState::Failed | JobState::Dead | JobState::Cancelled
        ) {
            return Err(JobsError::WrongState {
                id,
                state,
                what: "only failed, dead or cancelled jobs can be retried",
            });
        }
        sqlx::query(
            "UPDATE jobs SET state = 'queued', run_after = ?, errors = 0, lost = 0, cancel_requested = 0,
                    finished_at = NULL, updated_at = ? WHERE id = ?",
        )
        .bind(now)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        event(
            &mut tx,
            id,
            now,
            actor,
            Some(state),
            JobState::Queued,
            "retried by hand",
        )
        .await?;
        tx.commit().await?;
        self.poke();
        Ok(())
    }

    async fn approve(&self, id: i64, actor: &str, reason: &str) -> Result<()> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let state = parse_state(&state.ok_or(JobsError::NotFound(id))?)?;
        if state != JobState::WaitingReview {
            return Err(JobsError::WrongState {
                id,
                state,
                what: "only jobs waiting for review can be approved",
            });
        }
        sqlx::query("UPDATE jobs SET state = 'queued', run_after = ?, updated_at = ? WHERE id = ?")
            .bind(now)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        event(
            &mut tx,
            id,
            now,
            actor,
            Some(state),
            JobState::Queued,
            reason,
        )
        .await?;
        tx.commit().await?;
        self.poke();
        Ok(())
    }

    async fn job(&self, id: i64) -> Result<Option<JobDetail>> {
        let sql = format!(
            "SELECT {}, input, output, review, errors, lost, max_attempts, max_lost, next_step,
                    worker, lease_expires_at, cancel_requested, created_by, attempt_started_at FROM jobs WHERE id = ?",
            rows::SUMMARY_COLUMNS
        );
        let Some(job) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
        else {
            return Ok(None);
        };
        let attempts = sqlx::query(
            "SELECT attempt, worker, started_at, finished_at, outcome, error FROM attempts WHERE job_id = ? ORDER BY attempt",
        )
        .bind(id)
        .fetch_all(&self.reader)
        .await?;
        let steps = sqlx::query(
            "SELECT attempt, step_index, step_name, started_at, finished_at, outcome, error, output
             FROM step_runs WHERE job_id = ? ORDER BY attempt, step_index",
        )
        .bind(id)
        .fetch_all(&self.reader)
        .await?;
        let events = sqlx::query(
            "SELECT at, actor, from_state, to_state, reason FROM events WHERE job_id = ? ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.reader)
        .await?;
        rows::detail(&job, &attempts, &steps, &events).map(Some)
    }

    async fn state(&self, id: i64) -> Result<Option<JobState>> {
        let s: Option<String> = sqlx::query_scalar("SELECT state FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        s.map(|s| parse_state(&s)).transpose()
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<JobSummary>> {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {} FROM jobs WHERE 1 = 1",
            rows::SUMMARY_COLUMNS
        ));
        if let Some(bot) = &filter.bot {
            q.push(" AND bot = ").push_bind(bot.clone());
        }
        if let Some(state) = filter.state {
            q.push(" AND state = ").push_bind(state.as_str());
        }
        if let Some(before) = filter.before_id {
            q.push(" AND id < ").push_bind(before);
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(filter.limit.max(1)));
        let rows = q.build().fetch_all(&self.reader).await?;
        rows.iter().map(rows::summary).collect()
    }

    async fn prune(&self, finished_before: i64, batch: u32) -> Result<u64> {
        let mut tx = self.write().await?;
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ?
             AND state IN ('succeeded', 'failed', 'dead', 'cancelled') ORDER BY finished_at LIMIT ?",
        )
        .bind(finished_before)
        .bind(i64::from(batch))
        .fetch_all(&mut *tx)
        .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let list = ids
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        for table in ["events", "attempts", "step_runs", "notifications"] {
            let sql = format!("DELETE FROM {table} WHERE job_id IN ({list})");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await?;
        }
        let sql = format!("DELETE FROM jobs WHERE id IN ({list})");
        let n = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    async fn fire_slot(&self, trigger_id: &str, slot: i64, job: &NewJob) -> Result<Enqueued> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let enq = enqueue_in(&mut tx, job, now).await?;
        sqlx::query(
            "INSERT INTO schedules (bot, trigger_id, last_slot) VALUES (?, ?, ?)
             ON CONFLICT (bot, trigger_id) DO UPDATE SET last_slot = MAX(last_slot, excluded.last_slot)",
        )
        .bind(&job.bot)
        .bind(trigger_id)
        .bind(slot)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if enq.created {
            self.poke();
        }
        Ok(enq)
    }

    async fn mark_slot(&self, bot: &str, trigger_id: &str, slot: i64) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO schedules (bot, trigger_id, last_slot) VALUES (?, ?, ?)
             ON CONFLICT (bot, trigger_id) DO UPDATE SET last_slot = MAX(last_slot, excluded.last_slot)",
        )
        .bind(bot)
        .bind(trigger_id)
        .bind(slot)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn last_slot(&self, bot: &str, trigger_id: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT last_slot FROM schedules WHERE bot = ? AND trigger_id = ?")
                .bind(bot)
                .bind(trigger_id)
                .fetch_optional(&self.reader)
                .await?,
        )
    }

    async fn checkpoint(&self, bot: &str, name: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM checkpoints WHERE bot = ? AND name = ?")
                .bind(bot)
                .bind(name)
                .fetch_optional(&self.reader)
                .await?,
        )
    }

    async fn set_checkpoint(&self, bot: &str, name: &str, value: &str) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO checkpoints (bot, name, value, updated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (bot, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(bot)
        .bind(name)
        .bind(value)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_notices(
        &self,
        bot: &str,
        kinds: &[JobState],
        worker: &str,
        hold: Duration,
        limit: u32,
    ) -> Result<Vec<Notice>> {
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let mut tx = self.write().await?;
        let mut q = QueryBuilder::<Sqlite>::new("UPDATE notifications SET claimed_by = ");
        q.push_bind(worker)
            .push(", claimed_until = ")
            .push_bind(now.saturating_add(duration_ms(hold)))
            .push(" WHERE id IN (SELECT id FROM notifications WHERE done_at IS NULL AND bot = ")
            .push_bind(bot)
            .push(" AND kind IN (");
        let mut list = q.separated(", ");
        for kind in kinds {
            list.push_bind(kind.as_str());
        }
        q.push(") AND (claimed_until IS NULL OR claimed_until <= ")
            .push_bind(now)
            .push(") ORDER BY id LIMIT ")
            .push_bind(i64::from(limit.max(1)))
            .push(") RETURNING ")
            .push(rows::NOTICE_COLUMNS);
        let found = q.build().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        let mut notices = found.iter().map(rows::notice).collect::<Result<Vec<_>>>()?;
        notices.sort_by_key(|n| n.id);
        Ok(notices)
    }

    async fn finish_notices(&self, ids: &[i64], outcome: &str) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        let mut q = QueryBuilder::<Sqlite>::new("UPDATE notifications SET done_at = ");
        q.push_bind(now_ms())
            .push(", outcome = ")
            .push_bind(outcome)
            .push(", claimed_by = NULL, claimed_until = NULL WHERE id IN (");
        push_ids(&mut q, ids);
        q.build().execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn postpone_notices(&self, ids: &[i64], error: &str, retry_at: i64) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        let mut q = QueryBuilder::<Sqlite>::new(
            "UPDATE notifications SET tries = tries + 1, claimed_by = NULL, last_error = ",
        );
        q.push_bind(error)
            .push(", claimed_until = ")
            .push_bind(retry_at)
            .push(" WHERE done_at IS NULL AND id IN (");
        push_ids(&mut q, ids);
        q.build().execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn last_notice_sent(&self, bot: &str, kind: JobState) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MAX(done_at) FROM notifications WHERE bot = ? AND kind = ? AND outcome = 'sent'",
        )
        .bind(bot)
        .bind(kind.as_str())
        .fetch_one(&self.reader)
        .await?)
    }

    fn wakeups(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }

    async fn listen(&self) -> Result<()> {
        // SQLite cannot signal another process, but `PRAGMA data_version`
        // changes on a connection whenever any other connection commits.
        // Watching it on a connection of its own turns a `clerk run` next to
        // `clerk serve` into a wake-up within a few milliseconds instead of a
        // poll interval. Commits of this process wake it too; a claim that
        // finds nothing is cheap.
        if self
            .listening
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Ok(());
        }
        let mut conn = self.reader.acquire().await?.detach();
        let wake = self.wake.clone();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let mut last: Option<i64> = None;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
                match sqlx::query_scalar::<_, i64>("PRAGMA data_version")
                    .fetch_one(&mut conn)
                    .await
                {
                    Ok(v) => {
                        if last.is_some_and(|l| l != v) {
                            wake.send_modify(|n| *n = n.wrapping_add(1));
                        }
                        last = Some(v);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "watching the database for changes failed; polling only");
                        return;
                    }
                }
            }
        });
        Ok(())
    }
}

/// `id1, id2, …)`: the end of an `IN (` list of ids.
fn push_ids(q: &mut QueryBuilder<Sqlite>, ids: &[i64]) {
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    q.push(")");
}
