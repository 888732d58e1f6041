//! The job database on PostgreSQL, for several workers on several machines.
//!
//! Claims use `FOR UPDATE SKIP LOCKED` so workers never wait on each other's
//! rows; enqueues send `NOTIFY clerk_jobs` so idle workers wake at once
//! (polling stays as the fallback). Batches travel as arrays through
//! `unnest`, so claiming, completing or enqueueing a hundred jobs costs one
//! round trip, not a hundred.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};
use tokio::sync::watch;

use super::*;

/// The channel enqueues notify and idle workers listen on.
const CHANNEL: &str = "clerk_jobs";

pub struct PgStore {
    pool: PgPool,
    /// Connections for claims only. They plan without bitmap scans: right
    /// after a burst of enqueues the table's statistics are stale, and the
    /// planner would sort every queued row for each claim (7 ms for 10,000
    /// rows) instead of walking the queue index and stopping at the limit.
    claim_pool: PgPool,
    wake: watch::Sender<u64>,
    listening: std::sync::atomic::AtomicBool,
}

fn migrator() -> sqlx::migrate::Migrator {
    super::migrator(&[
        (1, "jobs", include_str!("migrations/postgres/0001_jobs.sql")),
        (
            2,
            "checkpoints",
            include_str!("migrations/postgres/0002_checkpoints.sql"),
        ),
        (
            3,
            "notifications",
            include_str!("migrations/postgres/0003_notifications.sql"),
        ),
    ])
}

const CLAIM_SQL: &str = "
WITH picked AS (
    SELECT id FROM jobs
    WHERE state = 'queued' AND run_after <= $1 AND bot = ANY($2)
    ORDER BY run_after, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE jobs j SET state = 'running', attempt = j.attempt + 1, worker = $4, lease_expires_at = $5,
        started_at = COALESCE(j.started_at, $1), attempt_started_at = $1, updated_at = $1
    FROM picked WHERE j.id = picked.id
    RETURNING j.id, j.bot, j.input::text AS input, j.attempt, j.errors, j.lost, j.max_attempts,
        j.next_step, j.run_after, j.created_at
), event_rows AS (
    INSERT INTO events (job_id, at, actor, from_state, to_state, reason)
    SELECT id, $1, $4, 'queued', 'running', 'claimed, attempt ' || attempt FROM claimed
)
SELECT * FROM claimed";

const COMPLETE_SQL: &str = "
WITH c AS (
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[],
                         $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])
        AS t(id, attempt, state, run_after, errors, next_step, error, output, review, outcome, reason)
), done AS (
    UPDATE jobs j SET state = c.state, run_after = c.run_after, errors = c.errors, next_step = c.next_step,
        last_error = COALESCE(c.error, j.last_error), output = COALESCE(c.output::jsonb, j.output),
        review = c.review::jsonb, worker = NULL, lease_expires_at = NULL, updated_at = $12,
        finished_at = CASE WHEN c.state IN ('succeeded', 'failed', 'dead', 'cancelled') THEN $12 END
    FROM c
    WHERE j.id = c.id AND j.attempt = c.attempt AND j.worker = $13 AND j.state = 'running'
    RETURNING j.id, c.attempt, c.state, c.error, c.outcome, c.reason, c.run_after, j.attempt_started_at
), attempt_rows AS (
    INSERT INTO attempts (job_id, attempt, worker, started_at, finished_at, outcome, error)
    SELECT id, attempt, $13, COALESCE(attempt_started_at, $12), $12, outcome, error FROM done
    ON CONFLICT (job_id, attempt) DO UPDATE SET finished_at = excluded.finished_at,
        outcome = excluded.outcome, error = excluded.error
), event_rows AS (
    INSERT INTO events (job_id, at, actor, from_state, to_state, reason)
    SELECT id, $12, $13, 'running', state, reason FROM done
)
SELECT id, state, run_after FROM done";

const STEPS_SQL: &str = "
INSERT INTO step_runs (job_id, attempt, step_index, step_name, started_at, finished_at, outcome, error, output)
SELECT s.job_id, s.attempt, s.idx, s.name, s.started_at, s.finished_at, s.outcome, s.error, s.output::jsonb
FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[], $7::text[],
            $8::text[], $9::text[])
    AS s(job_id, attempt, idx, name, started_at, finished_at, outcome, error, output)
WHERE s.job_id = ANY($10)
ON CONFLICT (job_id, attempt, step_index) DO UPDATE SET finished_at = excluded.finished_at,
    outcome = excluded.outcome, error = excluded.error, output = excluded.output";

const ENQUEUE_SQL: &str = "
WITH ins AS (
    INSERT INTO jobs (bot, state, input, idempotency_key, max_attempts, max_lost, run_after, created_by,
                      created_at, updated_at)
    SELECT bot, 'queued', input::jsonb, key, max_attempts, max_lost, run_after, created_by, $8, $8
    FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[])
        WITH ORDINALITY AS t(bot, input, key, max_attempts, max_lost, run_after, created_by, ord)
    ORDER BY ord
    ON CONFLICT (bot, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id, bot, idempotency_key, created_by
), event_rows AS (
    INSERT INTO events (job_id, at, actor, from_state, to_state, reason)
    SELECT id, $8, created_by, NULL, 'queued', 'enqueued' FROM ins
)
SELECT id, bot, idempotency_key, (SELECT pg_notify('clerk_jobs', '')) AS notified FROM ins";

/// Rows of a batch of step records, as arrays for `unnest`.
#[derive(Default)]
struct StepArrays {
    job_id: Vec<i64>,
    attempt: Vec<i64>,
    idx: Vec<i64>,
    name: Vec<String>,
    started: Vec<i64>,
    finished: Vec<i64>,
    outcome: Vec<&'static str>,
    error: Vec<Option<String>>,
    output: Vec<Option<String>>,
}

impl StepArrays {
    fn push(&mut self, job_id: i64, attempt: i64, s: &StepRecord) {
        self.job_id.push(job_id);
        self.attempt.push(attempt);
        self.idx.push(s.index);
        self.name.push(s.name.clone());
        self.started.push(s.started_at);
        self.finished.push(s.finished_at);
        self.outcome.push(s.outcome.as_str());
        self.error.push(s.error.clone());
        self.output.push(s.output.as_ref().map(|v| v.to_string()));
    }

    async fn insert(self, tx: &mut Transaction<'static, Postgres>, held: &[i64]) -> Result<()> {
        if self.job_id.is_empty() || held.is_empty() {
            return Ok(());
        }
        sqlx::query(STEPS_SQL)
            .bind(self.job_id)
            .bind(self.attempt)
            .bind(self.idx)
            .bind(self.name)
            .bind(self.started)
            .bind(self.finished)
            .bind(self.outcome)
            .bind(self.error)
            .bind(self.output)
            .bind(held)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self> {
        use sqlx::Connection;
        let connect_err = |source| JobsError::Connect {
            url: redact_url(url),
            source,
        };
        // One plain connection first: a pool only says "timed out" where
        // this says "connection refused" or "password authentication failed".
        let probe = tokio::time::timeout(Duration::from_secs(15), sqlx::PgConnection::connect(url))
            .await
            .map_err(|_| connect_err(sqlx::Error::PoolTimedOut))?
            .map_err(connect_err)?;
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(12)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await
            .map_err(connect_err)?;
        let (wake, _) = watch::channel(0);
        let claim_options = url
            .parse::<sqlx::postgres::PgConnectOptions>()
            .map_err(connect_err)?
            .options([("enable_bitmapscan", "off")]);
        let claim_pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(claim_options)
            .await
            .map_err(connect_err)?;
        Ok(PgStore {
            pool,
            claim_pool,
            wake,
            listening: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn poke(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    async fn claim_group(
        &self,
        conn: &mut sqlx::PgConnection,
        worker: &str,
        names: &[String],
        want: i64,
        now: i64,
        expires: i64,
    ) -> Result<Vec<ClaimedJob>> {
        let rows = sqlx::query(CLAIM_SQL)
            .bind(now)
            .bind(names)
            .bind(want)
            .bind(worker)
            .bind(expires)
            .fetch_all(conn)
            .await?;
        rows.iter().map(rows::claimed).collect()
    }
}

async fn event(
    tx: &mut Transaction<'static, Postgres>,
    job_id: i64,
    at: i64,
    actor: &str,
    from: Option<JobState>,
    to: JobState,
    reason: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO events (job_id, at, actor, from_state, to_state, reason) VALUES ($1, $2, $3, $4, $5, $6)",
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
    tx: &mut Transaction<'static, Postgres>,
    job_id: i64,
    attempt: i64,
    worker: &str,
    now: i64,
    outcome: Outcome,
    error: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO attempts (job_id, attempt, worker, started_at, finished_at, outcome, error)
         SELECT id, $1, $2, COALESCE(attempt_started_at, $3), $3, $4, $5 FROM jobs WHERE id = $6
         ON CONFLICT (job_id, attempt) DO UPDATE SET finished_at = excluded.finished_at,
             outcome = excluded.outcome, error = excluded.error",
    )
    .bind(attempt)
    .bind(worker)
    .bind(now)
    .bind(outcome.as_str())
    .bind(error)
    .bind(job_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn notify(tx: &mut Transaction<'static, Postgres>) -> Result<()> {
    sqlx::query("SELECT pg_notify('clerk_jobs', '')")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Lock a job row and read its state, inside a transaction.
async fn lock_state(tx: &mut Transaction<'static, Postgres>, id: i64) -> Result<JobState> {
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    parse_state(&state.ok_or(JobsError::NotFound(id))?)
}

/// Enqueue one chunk of jobs in one statement on `conn` (a transaction or
/// not); shared by `enqueue` and `fire_slot`.
async fn enqueue_chunk(
    conn: &mut sqlx::PgConnection,
    chunk: &[NewJob],
    now: i64,
) -> Result<Vec<Enqueued>> {
    let mut out = Vec::with_capacity(chunk.len());
    let rows = sqlx::query(ENQUEUE_SQL)
        .bind(chunk.iter().map(|j| j.bot.as_str()).collect::<Vec<_>>())
        .bind(
            chunk
                .iter()
                .map(|j| j.input.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(
            chunk
                .iter()
                .map(|j| j.idempotency_key.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            chunk
                .iter()
                .map(|j| i64::from(j.max_attempts))
                .collect::<Vec<_>>(),
        )
        .bind(
            chunk
                .iter()
                .map(|j| i64::from(j.max_lost))
                .collect::<Vec<_>>(),
        )
        .bind(
            chunk
                .iter()
                .map(|j| j.run_after.unwrap_or(now))
                .collect::<Vec<_>>(),
        )
        .bind(
            chunk
                .iter()
                .map(|j| j.created_by.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
    // Identity values follow the ORDER BY of the insert, so the new
    // ids of keyless jobs, sorted, line up with those jobs in order.
    let mut keyless: Vec<i64> = Vec::new();
    let mut keyed = std::collections::HashMap::new();
    for row in &rows {
        let id: i64 = row.try_get("id")?;
        match row.try_get::<Option<String>, _>("idempotency_key")? {
            Some(k) => {
                keyed.insert((row.try_get::<String, _>("bot")?, k), id);
            }
            None => keyless.push(id),
        }
    }
    keyless.sort_unstable();
    let mut keyless = keyless.into_iter();
    for job in chunk {
        match &job.idempotency_key {
            None => {
                let id = keyless.next().ok_or_else(|| {
                    JobsError::Corrupt("enqueue returned fewer ids than jobs".into())
                })?;
                out.push(Enqueued {
                    id,
                    created: true,
                    state: JobState::Queued,
                });
            }
            Some(key) => {
                if let Some(id) = keyed.remove(&(job.bot.clone(), key.clone())) {
                    out.push(Enqueued {
                        id,
                        created: true,
                        state: JobState::Queued,
                    });
                } else {
                    let row = sqlx::query(
                        "SELECT id, state FROM jobs WHERE bot = $1 AND idempotency_key = $2",
                    )
                    .bind(&job.bot)
                    .bind(key)
                    .fetch_one(&mut *conn)
                    .await?;
                    let state: String = row.try_get("state")?;
                    out.push(Enqueued {
                        id: row.try_get("id")?,
                        created: false,
                        state: parse_state(&state)?,
                    });
                }
            }
        }
    }
    Ok(out)
}

#[async_trait]
impl JobStore for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn migrate(&self) -> Result<()> {
        // The migrator holds an advisory lock, so two processes starting at
        // once migrate one after the other.
        migrator().run(&self.pool).await?;
        Ok(())
    }

    async fn enqueue(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>> {
        let now = now_ms();
        let mut out = Vec::with_capacity(jobs.len());
        // One statement is atomic on its own; only several chunks need a
        // transaction around them (and its two extra round trips).
        const CHUNK: usize = 5000;
        let mut tx = if jobs.len() > CHUNK {
            Some(self.pool.begin().await?)
        } else {
            None
        };
        let mut plain = match tx {
            Some(_) => None,
            None => Some(self.pool.acquire().await?),
        };
        for chunk in jobs.chunks(CHUNK) {
            let conn: &mut sqlx::PgConnection = match (tx.as_mut(), plain.as_mut()) {
                (Some(t), _) => t,
                (None, Some(p)) => p,
                (None, None) => return Err(JobsError::Corrupt("no connection".into())),
            };
            out.extend(enqueue_chunk(conn, chunk, now).await?);
        }
        if let Some(tx) = tx {
            tx.commit().await?;
        }
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
        let now = now_ms();
        let expires = now + duration_ms(lease);
        let free: Vec<String> = bots
            .iter()
            .filter(|b| b.concurrency.is_none())
            .map(|b| b.name.clone())
            .collect();
        let mut claimed = Vec::new();
        if !free.is_empty() {
            let mut conn = self.claim_pool.acquire().await?;
            claimed = self
                .claim_group(&mut conn, worker, &free, i64::from(limit), now, expires)
                .await?;
        }
        for b in bots.iter().filter(|b| b.concurrency.is_some()) {
            let left = i64::from(limit) - claimed.len() as i64;
            if left <= 0 {
                break;
            }
            // Count and claim under a per-bot lock so two workers cannot both
            // see room for the last slot.
            let mut tx = self.claim_pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('clerk:bot:' || $1))")
                .bind(&b.name)
                .execute(&mut *tx)
                .await?;
            // Timed once the lock is held: a job claimed the moment another
            // of its bot ended must not seem to start before that one ended.
            let now = now_ms();
            let expires = now + duration_ms(lease);
            let running: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM jobs WHERE bot = $1 AND state = 'running'",
            )
            .bind(&b.name)
            .fetch_one(&mut *tx)
            .await?;
            let room = (i64::from(b.concurrency.unwrap_or(0)) - running).min(left);
            if room > 0 {
                let mut got = self
                    .claim_group(
                        &mut tx,
                        worker,
                        std::slice::from_ref(&b.name),
                        room,
                        now,
                        expires,
                    )
                    .await?;
                claimed.append(&mut got);
            }
            tx.commit().await?;
        }
        claimed.sort_by_key(|j| (j.run_after, j.id));
        Ok(claimed)
    }

    async fn save_steps(&self, worker: &str, saves: &[StepSave]) -> Result<Vec<bool>> {
        if saves.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let held: Vec<i64> = sqlx::query_scalar(
            "UPDATE jobs j SET next_step = GREATEST(j.next_step, s.next), updated_at = $4
             FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS s(id, attempt, next)
             WHERE j.id = s.id AND j.attempt = s.attempt AND j.worker = $5 AND j.state = 'running'
             RETURNING j.id",
        )
        .bind(saves.iter().map(|s| s.job_id).collect::<Vec<_>>())
        .bind(saves.iter().map(|s| s.attempt).collect::<Vec<_>>())
        .bind(saves.iter().map(|s| s.step.index + 1).collect::<Vec<_>>())
        .bind(now)
        .bind(worker)
        .fetch_all(&mut *tx)
        .await?;
        let mut steps = StepArrays::default();
        for s in saves {
            steps.push(s.job_id, s.attempt, &s.step);
        }
        steps.insert(&mut tx, &held).await?;
        tx.commit().await?;
        Ok(saves.iter().map(|s| held.contains(&s.job_id)).collect())
    }

    async fn complete(&self, worker: &str, completions: &[Completion]) -> Result<Vec<bool>> {
        if completions.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(COMPLETE_SQL)
            .bind(completions.iter().map(|c| c.job_id).collect::<Vec<_>>())
            .bind(completions.iter().map(|c| c.attempt).collect::<Vec<_>>())
            .bind(
                completions
                    .iter()
                    .map(|c| c.state.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(completions.iter().map(|c| c.run_after).collect::<Vec<_>>())
            .bind(completions.iter().map(|c| c.errors).collect::<Vec<_>>())
            .bind(completions.iter().map(|c| c.next_step).collect::<Vec<_>>())
            .bind(
                completions
                    .iter()
                    .map(|c| c.error.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(
                completions
                    .iter()
                    .map(|c| c.output.as_ref().map(|v| v.to_string()))
                    .collect::<Vec<_>>(),
            )
            .bind(
                completions
                    .iter()
                    .map(|c| c.review.as_ref().map(|v| v.to_string()))
                    .collect::<Vec<_>>(),
            )
            .bind(
                completions
                    .iter()
                    .map(|c| c.attempt_outcome.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                completions
                    .iter()
                    .map(|c| c.reason.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(now)
            .bind(worker)
            .fetch_all(&mut *tx)
            .await?;
        let mut held = Vec::with_capacity(rows.len());
        let mut requeued = false;
        for row in &rows {
            held.push(row.try_get::<i64, _>("id")?);
            let state: String = row.try_get("state")?;
            let run_after: i64 = row.try_get("run_after")?;
            requeued |= state == "queued" && run_after <= now;
        }
        let mut steps = StepArrays::default();
        for c in completions {
            for s in &c.steps {
                steps.push(c.job_id, c.attempt, s);
            }
        }
        steps.insert(&mut tx, &held).await?;
        if requeued {
            notify(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(completions
            .iter()
            .map(|c| held.contains(&c.job_id))
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
        let rows = sqlx::query(
            "UPDATE jobs SET lease_expires_at = $1 WHERE worker = $2 AND state = 'running'
             RETURNING id, attempt, cancel_requested",
        )
        .bind(now_ms() + duration_ms(lease))
        .bind(worker)
        .fetch_all(&self.pool)
        .await?;
        rows::heartbeat(held, &rows)
    }

    async fn release(&self, worker: &str, held: &[(i64, i64)], reason: &str) -> Result<u64> {
        if held.is_empty() {
            return Ok(0);
        }
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let released: Vec<(i64, i64)> = sqlx::query_as(
            "UPDATE jobs j SET state = 'queued', run_after = $3, worker = NULL, lease_expires_at = NULL, updated_at = $3
             FROM unnest($1::bigint[], $2::bigint[]) AS h(id, attempt)
             WHERE j.id = h.id AND j.attempt = h.attempt AND j.worker = $4 AND j.state = 'running'
             RETURNING j.id, j.attempt",
        )
        .bind(held.iter().map(|h| h.0).collect::<Vec<_>>())
        .bind(held.iter().map(|h| h.1).collect::<Vec<_>>())
        .bind(now)
        .bind(worker)
        .fetch_all(&mut *tx)
        .await?;
        for &(id, attempt) in &released {
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
        }
        if !released.is_empty() {
            notify(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(released.len() as u64)
    }

    async fn rescue_expired(&self, actor: &str, limit: u32) -> Result<Vec<Rescued>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT id, bot, worker, attempt, lost, max_lost, cancel_requested FROM jobs
             WHERE state = 'running' AND lease_expires_at < $1 ORDER BY lease_expires_at LIMIT $2
             FOR UPDATE SKIP LOCKED",
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
                "UPDATE jobs SET state = $1, lost = $2, worker = NULL, lease_expires_at = NULL, run_after = $3,
                        finished_at = $4, updated_at = $3,
                        last_error = CASE WHEN $1 = 'dead' THEN $5 ELSE last_error END
                 WHERE id = $6",
            )
            .bind(state.as_str())
            .bind(lost)
            .bind(now)
            .bind(finished)
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
        if !out.is_empty() {
            notify(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn step_outputs(&self, job_id: i64) -> Result<Vec<(i64, String, Value)>> {
        let rows = sqlx::query(
            "SELECT DISTINCT ON (step_index) step_index, step_name, output::text AS output FROM step_runs
             WHERE job_id = $1 AND outcome IN ('succeeded', 'waiting_review')
             ORDER BY step_index, attempt DESC",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for row in &rows {
            out.push((
                row.try_get("step_index")?,
                row.try_get("step_name")?,
                parse_json(row.try_get("output")?).unwrap_or(Value::Null),
            ));
        }
        Ok(out)
    }

    async fn cancel(&self, id: i64, actor: &str) -> Result<CancelOutcome> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let state = lock_state(&mut tx, id).await?;
        let outcome = match state {
            JobState::Queued | JobState::WaitingReview => {
                sqlx::query(
                    "UPDATE jobs SET state = 'cancelled', finished_at = $1, updated_at = $1 WHERE id = $2",
                )
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
                sqlx::query(
                    "UPDATE jobs SET cancel_requested = TRUE, updated_at = $1 WHERE id = $2",
                )
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
        let mut tx = self.pool.begin().await?;
        let state = lock_state(&mut tx, id).await?;
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
            "UPDATE jobs SET state = 'queued', run_after = $1, errors = 0, lost = 0, cancel_requested = FALSE,
                    finished_at = NULL, updated_at = $1 WHERE id = $2",
        )
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
        notify(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn approve(&self, id: i64, actor: &str, reason: &str) -> Result<()> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let state = lock_state(&mut tx, id).await?;
        if state != JobState::WaitingReview {
            return Err(JobsError::WrongState {
                id,
                state,
                what: "only jobs waiting for review can be approved",
            });
        }
        sqlx::query(
            "UPDATE jobs SET state = 'queued', run_after = $1, updated_at = $1 WHERE id = $2",
        )
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
        notify(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn job(&self, id: i64) -> Result<Option<JobDetail>> {
        let sql = format!(
            "SELECT {}, input::text AS input, output::text AS output, review::text AS review,
                    errors, lost, max_attempts, max_lost, next_step, worker, lease_expires_at,
                    cancel_requested, created_by, attempt_started_at FROM jobs WHERE id = $1",
            rows::SUMMARY_COLUMNS
        );
        let Some(job) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let attempts = sqlx::query(
            "SELECT attempt, worker, started_at, finished_at, outcome, error FROM attempts WHERE job_id = $1 ORDER BY attempt",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let steps = sqlx::query(
            "SELECT attempt, step_index, step_name, started_at, finished_at, outcome, error, output::text AS output
             FROM step_runs WHERE job_id = $1 ORDER BY attempt, step_index",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let events = sqlx::query(
            "SELECT at, actor, from_state, to_state, reason FROM events WHERE job_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows::detail(&job, &attempts, &steps, &events).map(Some)
    }

    async fn state(&self, id: i64) -> Result<Option<JobState>> {
        let s: Option<String> = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        s.map(|s| parse_state(&s)).transpose()
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<JobSummary>> {
        let sql = format!(
            "SELECT {} FROM jobs
             WHERE ($1::text IS NULL OR bot = $1) AND ($2::text IS NULL OR state = $2)
               AND ($3::bigint IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4",
            rows::SUMMARY_COLUMNS
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&filter.bot)
            .bind(filter.state.map(|s| s.as_str()))
            .bind(filter.before_id)
            .bind(i64::from(filter.limit.max(1)))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::summary).collect()
    }

    async fn prune(&self, finished_before: i64, batch: u32) -> Result<u64> {
        let n = sqlx::query(
            "WITH gone AS (
                DELETE FROM jobs WHERE id IN (
                    SELECT id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < $1
                    AND state IN ('succeeded', 'failed', 'dead', 'cancelled') ORDER BY finished_at LIMIT $2
                    FOR UPDATE SKIP LOCKED)
                RETURNING id
             ), e AS (DELETE FROM events WHERE job_id IN (SELECT id FROM gone)),
             a AS (DELETE FROM attempts WHERE job_id IN (SELECT id FROM gone)),
             s AS (DELETE FROM step_runs WHERE job_id IN (SELECT id FROM gone)),
             n AS (DELETE FROM notifications WHERE job_id IN (SELECT id FROM gone))
             SELECT id FROM gone",
        )
        .bind(finished_before)
        .bind(i64::from(batch))
        .fetch_all(&self.pool)
        .await?
        .len() as u64;
        Ok(n)
    }

    async fn fire_slot(&self, trigger_id: &str, slot: i64, job: &NewJob) -> Result<Enqueued> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let enq = enqueue_chunk(&mut tx, std::slice::from_ref(job), now)
            .await?
            .pop()
            .ok_or_else(|| JobsError::Corrupt("enqueue returned no job".into()))?;
        sqlx::query(
            "INSERT INTO schedules (bot, trigger_id, last_slot) VALUES ($1, $2, $3)
             ON CONFLICT (bot, trigger_id) DO UPDATE SET last_slot = GREATEST(schedules.last_slot, excluded.last_slot)",
        )
        .bind(&job.bot)
        .bind(trigger_id)
        .bind(slot)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(enq)
    }

    async fn mark_slot(&self, bot: &str, trigger_id: &str, slot: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO schedules (bot, trigger_id, last_slot) VALUES ($1, $2, $3)
             ON CONFLICT (bot, trigger_id) DO UPDATE SET last_slot = GREATEST(schedules.last_slot, excluded.last_slot)",
        )
        .bind(bot)
        .bind(trigger_id)
        .bind(slot)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn last_slot(&self, bot: &str, trigger_id: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar(
                "SELECT last_slot FROM schedules WHERE bot = $1 AND trigger_id = $2",
            )
            .bind(bot)
            .bind(trigger_id)
            .fetch_optional(&self.pool)
            .await?,
        )
    }

    async fn checkpoint(&self, bot: &str, name: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM checkpoints WHERE bot = $1 AND name = $2")
                .bind(bot)
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn set_checkpoint(&self, bot: &str, name: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO checkpoints (bot, name, value, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (bot, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(bot)
        .bind(name)
        .bind(value)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
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
        let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        let sql = format!(
            "UPDATE notifications SET claimed_by = $1, claimed_until = $2
             WHERE id IN (
                SELECT id FROM notifications WHERE done_at IS NULL AND bot = $3 AND kind = ANY($4)
                AND (claimed_until IS NULL OR claimed_until <= $5)
                ORDER BY id LIMIT $6 FOR UPDATE SKIP LOCKED)
             RETURNING {}",
            rows::NOTICE_COLUMNS
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(worker)
            .bind(now.saturating_add(duration_ms(hold)))
            .bind(bot)
            .bind(&kinds)
            .bind(now)
            .bind(i64::from(limit.max(1)))
            .fetch_all(&self.pool)
            .await?;
        let mut notices = found.iter().map(rows::notice).collect::<Result<Vec<_>>>()?;
        notices.sort_by_key(|n| n.id);
        Ok(notices)
    }

    async fn finish_notices(&self, ids: &[i64], outcome: &str) -> Result<()> {
        sqlx::query(
            "UPDATE notifications SET done_at = $1, outcome = $2, claimed_by = NULL, claimed_until = NULL
             WHERE id = ANY($3)",
        )
        .bind(now_ms())
        .bind(outcome)
        .bind(ids)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn postpone_notices(&self, ids: &[i64], error: &str, retry_at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE notifications SET tries = tries + 1, claimed_by = NULL, last_error = $1, claimed_until = $2
             WHERE done_at IS NULL AND id = ANY($3)",
        )
        .bind(error)
        .bind(retry_at)
        .bind(ids)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn last_notice_sent(&self, bot: &str, kind: JobState) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MAX(done_at) FROM notifications WHERE bot = $1 AND kind = $2 AND outcome = 'sent'",
        )
        .bind(bot)
        .bind(kind.as_str())
        .fetch_one(&self.pool)
        .await?)
    }

    fn wakeups(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }

    async fn listen(&self) -> Result<()> {
        use std::sync::atomic::Ordering;
        if self.listening.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANNEL).await?;
        let wake = self.wake.clone();
        tokio::spawn(async move {
            loop {
                match listener.recv().await {
                    Ok(_) => wake.send_modify(|n| *n = n.wrapping_add(1)),
                    Err(e) => {
                        // The listener reconnects on the next recv; until then
                        // the workers' polling picks up what was missed.
                        tracing::warn!(error = %e, "lost the LISTEN connection; reconnecting");
                        wake.send_modify(|n| *n = n.wrapping_add(1));
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        Ok(())
    }
}
