//! The job database on PostgreSQL, for several workers on several machines.
//!
//! Claims use `FOR UPDATE SKIP LOCKED` so workers never wait on each other's
//! rows; enqueues send `NOTIFY clerk_jobs` so idle workers wake at once
//! (polling stays as the fallback). Batches travel as arrays through
//! `unnest`, so claiming, completing or enqueueing a hundred jobs costs one
//! round trip, not a hundred.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};
use tokio::sync::watch;

use super::*;

mod access;
mod admin;
mod documents;
mod intake;
mod notices;
#[cfg(test)]
mod plans;
mod queue;
mod reviews;
mod schedules;
mod stats;
mod workers;

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
    /// When this process last summarised the new block ranges of
    /// `jobs_created` (Unix ms); see `summarize_created_ranges`.
    summarized_at: std::sync::atomic::AtomicI64,
}

fn migrator() -> sqlx::migrate::Migrator {
    super::migrator(&[
        (
            1,
            "jobs",
            include_str!("../migrations/postgres/0001_jobs.sql"),
        ),
        (
            2,
            "checkpoints",
            include_str!("../migrations/postgres/0002_checkpoints.sql"),
        ),
        (
            3,
            "notifications",
            include_str!("../migrations/postgres/0003_notifications.sql"),
        ),
        (
            4,
            "review",
            include_str!("../migrations/postgres/0004_review.sql"),
        ),
        (
            5,
            "review rules",
            include_str!("../migrations/postgres/0005_review_rules.sql"),
        ),
        (
            6,
            "operations",
            include_str!("../migrations/postgres/0006_operations.sql"),
        ),
        (
            7,
            "job keys",
            include_str!("../migrations/postgres/0007_job_keys.sql"),
        ),
        (
            8,
            "documents",
            include_str!("../migrations/postgres/0008_documents.sql"),
        ),
        (
            9,
            "workers",
            include_str!("../migrations/postgres/0009_workers.sql"),
        ),
        (
            10,
            "event key",
            include_str!("../migrations/postgres/0010_event_key.sql"),
        ),
        (
            11,
            "created range",
            include_str!("../migrations/postgres/0011_created_range.sql"),
        ),
        (
            12,
            "attempt events",
            include_str!("../migrations/postgres/0012_attempt_events.sql"),
        ),
    ])
}

/// Now in Unix ms by the database's clock: leases and due times are
/// judged by it, so nodes whose clocks differ agree on when a lease ends
/// and when a job is due (`CLAIM_SQL` spells it out, being a constant).
/// `now()` is the transaction's start, stable within a statement, so
/// the comparisons can use the indexes.
pub(super) const DB_NOW_MS: &str = "(EXTRACT(EPOCH FROM now()) * 1000)::bigint";

/// The fence of a statement that updates a batch `batch` of the jobs a
/// worker holds, joined to it by id: the job still runs the batch's
/// attempt for the worker `worker` (a parameter). One expression on
/// purpose. Split into conditions on the job alone, they let the planner
/// estimate that almost no job passes (its statistics were most likely
/// gathered while few jobs ran, or never), so it read the running jobs
/// first and compared each with every row of the batch: with 500 jobs
/// held, that took 54 ms of a 61 ms completion of 250. As one condition
/// over both sides, each job of the batch is found by its id (4 ms).
pub(super) fn held_by(batch: &str, worker: &str) -> String {
    format!(
        "CASE WHEN j.worker = {worker} AND j.state = 'running' THEN j.attempt END = {batch}.attempt"
    )
}

/// Claim up to `$3` due jobs of the bots `$2` that are not paused. A pause
/// holds a bot and its mailbox polls (`<bot>:<trigger>`), the rule of
/// `facts::belongs_to`, here in SQL so the claim stays one round trip.
/// The claim's event is the job row itself (who, since when, which
/// attempt), with its place among the job's events (`claim_seq`; the
/// `events` view reads it, migration 12).
const CLAIM_SQL: &str = "
    UPDATE jobs j SET state = 'running', attempt = j.attempt + 1, worker = $4,
        lease_expires_at = (EXTRACT(EPOCH FROM now()) * 1000)::bigint + $5,
        started_at = COALESCE(j.started_at, $1), attempt_started_at = $1, updated_at = $1,
        claim_seq = nextval('job_events_id_seq')
    WHERE j.id = ANY(ARRAY(
        SELECT id FROM jobs
        WHERE state = 'queued' AND run_after <= (EXTRACT(EPOCH FROM now()) * 1000)::bigint
            AND bot = ANY(ARRAY(
                SELECT b FROM unnest($2::text[]) AS b
                WHERE NOT EXISTS (SELECT 1 FROM bot_pauses p WHERE b = p.bot OR starts_with(b, p.bot || ':'))))
        ORDER BY run_after, id
        LIMIT $3
        FOR UPDATE SKIP LOCKED))
    RETURNING j.id, j.bot, j.input::text AS input, j.attempt, j.errors, j.lost, j.max_attempts,
        j.next_step, j.run_after, j.created_at";

/// Inserting a batch's step records, for the jobs a statement's `held`
/// CTE returned: a job the worker no longer holds gets none (matched
/// against an array of them, not joined, for the reason of `held_by`).
/// The records travel as nine arrays, parameters `$first` to `$first + 8`.
/// `on_conflict` says what a record meets that is already written.
fn step_rows(first: usize, held: &str, on_conflict: &str) -> String {
    // In the order `StepArrays::bind` binds them.
    const TYPES: [&str; 9] = [
        "bigint", "bigint", "bigint", "text", "bigint", "bigint", "text", "text", "text",
    ];
    let arrays: Vec<String> = TYPES
        .iter()
        .enumerate()
        .map(|(i, ty)| format!("${}::{ty}[]", first + i))
        .collect();
    format!(
        "INSERT INTO step_runs (job_id, attempt, step_index, step_name, started_at, finished_at, outcome, error, output)
    SELECT s.job_id, s.attempt, s.idx, s.name, s.started_at, s.finished_at, s.outcome, s.error, s.output::jsonb
    FROM unnest({})
        AS s(job_id, attempt, idx, name, started_at, finished_at, outcome, error, output)
    WHERE s.job_id = ANY(ARRAY(SELECT id FROM {held}))
    {on_conflict}",
        arrays.join(", ")
    )
}

/// A step save sent again because its answer was lost meets its own
/// records, already written.
const STEP_RESAVED: &str =
    "ON CONFLICT (job_id, attempt, step_index) DO UPDATE SET finished_at = excluded.finished_at,
        outcome = excluded.outcome, error = excluded.error, output = excluded.output";

/// A batch of completions in one statement, so in one round trip and
/// atomic without a transaction around it: the jobs' new states, their
/// attempts' ends (which are their events too) and the last steps' records; idle
/// workers are woken when a job was queued again and is due at once (the
/// count is selected because a CTE that nothing reads is never run).
static COMPLETE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
WITH c AS (
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[],
                         $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])
        AS t(id, attempt, state, run_after, errors, next_step, error, output, review, outcome, reason)
), done AS (
    UPDATE jobs j SET state = c.state, run_after = c.run_after, errors = c.errors, next_step = c.next_step,
        last_error = CASE WHEN c.state = 'succeeded' THEN NULL ELSE COALESCE(c.error, j.last_error) END, output = COALESCE(c.output::jsonb, j.output),
        review = c.review::jsonb, worker = NULL, lease_expires_at = NULL, updated_at = $12,
        finished_at = CASE WHEN c.state IN ('succeeded', 'failed', 'dead', 'cancelled') THEN $12 END
    FROM c
    WHERE j.id = c.id AND {}
    RETURNING j.id, c.attempt, c.state, c.error, c.outcome, c.reason, c.run_after, j.attempt_started_at,
        j.claim_seq
), attempt_rows AS (
    -- A plain insert: `done` admits only the attempt running now, and an
    -- attempt's row is written once, when it ends (here, or by a release
    -- or a rescue, which take the job out of running first). No
    -- speculative insertion, so one WAL record and an index probe less.
    INSERT INTO attempts (job_id, attempt, worker, started_at, finished_at, outcome, error,
                          claim_seq, end_seq, ended_by, to_state, reason)
    SELECT id, attempt, $13, COALESCE(attempt_started_at, $12), $12, outcome, error,
           claim_seq, nextval('job_events_id_seq'), $13, state, reason FROM done
), step_rows AS (
    {}
), wake AS (
    SELECT pg_notify('{CHANNEL}', '') FROM done WHERE state = 'queued' AND run_after <= $12 LIMIT 1
)
SELECT id, state, run_after, (SELECT count(*) FROM wake) AS woken FROM done",
        held_by("c", "$13"),
        // A completion carries only the step that ended its attempt, which
        // no save wrote; sent again, it finds its job no longer running.
        // So a plain insert, without a speculative one's cost.
        step_rows(14, "done", "")
    )
});

/// A batch of finished steps of jobs that go on running, in one statement:
/// where each job resumes, and the steps' records.
static SAVE_STEPS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
WITH held AS (
    UPDATE jobs j SET next_step = GREATEST(j.next_step, s.next), updated_at = $4
    FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS s(id, attempt, next)
    WHERE j.id = s.id AND {}
    RETURNING j.id
), step_rows AS (
    {}
)
SELECT id FROM held",
        held_by("s", "$5"),
        step_rows(6, "held", STEP_RESAVED)
    )
});

const ENQUEUE_SQL: &str = "
WITH ins AS (
    INSERT INTO jobs (bot, state, input, idempotency_key, max_attempts, max_lost, run_after, created_by,
                      created_at, updated_at, last_error, finished_at)
    SELECT bot, CASE WHEN refused IS NULL THEN 'queued' ELSE 'failed' END, input::jsonb, key, max_attempts,
           max_lost, run_after, created_by, $8, $8, refused, CASE WHEN refused IS NULL THEN NULL ELSE $8 END
    FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[], $9::text[])
        WITH ORDINALITY AS t(bot, input, key, max_attempts, max_lost, run_after, created_by, refused, ord)
    WHERE NOT EXISTS (SELECT 1 FROM job_keys k WHERE k.bot = t.bot AND k.key = t.key)
    ORDER BY ord
    ON CONFLICT (bot, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id, bot, idempotency_key, created_by, state, last_error
), key_rows AS (
    INSERT INTO job_keys (bot, key, job_id, created_at)
    SELECT bot, idempotency_key, id, $8 FROM ins WHERE idempotency_key IS NOT NULL
    ON CONFLICT (bot, key) DO NOTHING
), event_rows AS (
    INSERT INTO job_events (job_id, at, actor, from_state, to_state, reason)
    SELECT id, $8, created_by, e.from_state, e.to_state, e.reason
    FROM ins CROSS JOIN LATERAL (VALUES
        (1, NULL, 'queued', 'enqueued'),
        (2, 'queued', 'failed', ins.last_error)) AS e(n, from_state, to_state, reason)
    WHERE e.n = 1 OR ins.state = 'failed'
    ORDER BY id, e.n
)
SELECT id, bot, idempotency_key, state, (SELECT pg_notify('clerk_jobs', '')) AS notified FROM ins";

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

    /// Run `query`, a statement that returns the ids of the jobs the
    /// worker holds and inserts these records of theirs (`step_rows`),
    /// with the records as its last parameters; the ids, as a set (a batch
    /// is matched against it row by row).
    async fn held_after(
        self,
        query: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
        pool: &PgPool,
    ) -> Result<std::collections::HashSet<i64>> {
        let rows = self.bind(query).fetch_all(pool).await?;
        Ok(rows
            .iter()
            .map(|row| row.try_get("id"))
            .collect::<std::result::Result<_, _>>()?)
    }

    fn bind<'q>(
        self,
        q: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
        q.bind(self.job_id)
            .bind(self.attempt)
            .bind(self.idx)
            .bind(self.name)
            .bind(self.started)
            .bind(self.finished)
            .bind(self.outcome)
            .bind(self.error)
            .bind(self.output)
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
            summarized_at: std::sync::atomic::AtomicI64::new(0),
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
        lease_ms: i64,
    ) -> Result<Vec<ClaimedJob>> {
        let rows = sqlx::query(CLAIM_SQL)
            .bind(now)
            .bind(names)
            .bind(want)
            .bind(worker)
            .bind(lease_ms)
            .fetch_all(conn)
            .await?;
        rows.iter().map(rows::claimed).collect()
    }
}

/// Write a decided change of state into the audit trail, with its details.
async fn record(
    tx: &mut Transaction<'static, Postgres>,
    job_id: i64,
    at: i64,
    actor: &str,
    change: &transitions::Transition,
    detail: Option<&Value>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO job_events (job_id, at, actor, from_state, to_state, reason, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)",
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

/// How an attempt ended, taken out of running by someone other than a
/// completion (a release, a rescue): who ran it, how it ended, and the
/// event of its end (`ended_by` took the job from running to `to`). The
/// attempt's row is written once, when it ends; while it runs, the job
/// row itself tells who runs it since when. The job row is read after
/// its own update, which keeps the attempt's start.
struct AttemptEnd<'a> {
    job_id: i64,
    attempt: i64,
    worker: &'a str,
    ended_by: &'a str,
    at: i64,
    outcome: Outcome,
    to: JobState,
    reason: &'a str,
}

async fn end_attempt(tx: &mut Transaction<'static, Postgres>, end: &AttemptEnd<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO attempts (job_id, attempt, worker, started_at, finished_at, outcome, error,
                               claim_seq, end_seq, ended_by, to_state, reason)
         SELECT id, $1, $2, COALESCE(attempt_started_at, $3), $3, $4, $5,
                claim_seq, nextval('job_events_id_seq'), $7, $8, $5 FROM jobs WHERE id = $6
         ON CONFLICT (job_id, attempt) DO UPDATE SET finished_at = excluded.finished_at,
             outcome = excluded.outcome, error = excluded.error, claim_seq = excluded.claim_seq,
             end_seq = excluded.end_seq, ended_by = excluded.ended_by,
             to_state = excluded.to_state, reason = excluded.reason",
    )
    .bind(end.attempt)
    .bind(end.worker)
    .bind(end.at)
    .bind(end.outcome.as_str())
    .bind(end.reason)
    .bind(end.job_id)
    .bind(end.ended_by)
    .bind(end.to.as_str())
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
    let chunk = chunk
        .iter()
        .map(NewJob::storable)
        .collect::<Result<Vec<_>>>()?;
    let chunk = chunk.as_slice();
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
        .bind(
            chunk
                .iter()
                .map(|j| j.refused.as_deref())
                .collect::<Vec<_>>(),
        )
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
                    state: job.first_state(),
                });
            }
            Some(key) => {
                if let Some(id) = keyed.remove(&(job.bot.clone(), key.clone())) {
                    out.push(Enqueued {
                        id,
                        created: true,
                        state: job.first_state(),
                    });
                } else {
                    // The job as it is, or (pruned since) as it ended.
                    let row = sqlx::query(
                        "SELECT k.job_id AS id, COALESCE(j.state, k.state) AS state
                         FROM job_keys k LEFT JOIN jobs j ON j.id = k.job_id
                         WHERE k.bot = $1 AND k.key = $2
                         UNION ALL
                         SELECT id, state FROM jobs WHERE bot = $1 AND idempotency_key = $2
                         LIMIT 1",
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

impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }
}

#[async_trait]
impl JobStore for PgStore {
    async fn migrate(&self) -> Result<()> {
        // The migrator holds an advisory lock, so two processes starting at
        // once migrate one after the other.
        migrator().run(&self.pool).await?;
        Ok(())
    }

    async fn ready(&self) -> Result<()> {
        let latest = migrator().iter().map(|m| m.version).max().unwrap_or(0);
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
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
