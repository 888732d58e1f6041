use super::transitions::RowChange;
use super::*;

#[async_trait]
impl AdminStore for PgStore {
    /// The state is read inside the transaction that changes it, so two
    /// people acting at once cannot both change one job.
    async fn change(&self, id: i64, actor: &str, request: &ChangeRequest) -> Result<Decision> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let decision = transitions::decide(id, lock_state(&mut tx, id).await?, request)?;
        apply(&mut tx, id, now, actor, &decision, None).await?;
        tx.commit().await?;

        Ok(decision)
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
            "SELECT at, actor, from_state, to_state, reason, detail::text AS detail FROM events WHERE job_id = $1 ORDER BY id",
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
               AND ($5::bigint IS NULL OR created_at >= $5) AND ($6::bigint IS NULL OR created_at < $6)
               AND ($7::text IS NULL OR strpos(input::text, $7) > 0 OR strpos(COALESCE(last_error, ''), $7) > 0)
               AND ($8::bigint IS NULL OR finished_at >= $8) AND ($9::bigint IS NULL OR finished_at < $9)
               AND ($1::text IS NOT NULL OR $10 OR strpos(bot, ':') = 0)
             ORDER BY id DESC LIMIT $4",
            rows::SUMMARY_COLUMNS
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&filter.bot)
            .bind(filter.state.map(|s| s.as_str()))
            .bind(filter.before_id)
            .bind(i64::from(filter.limit.max(1)))
            .bind(filter.created_from)
            .bind(filter.created_to)
            .bind(&filter.text)
            .bind(filter.finished_from)
            .bind(filter.finished_to)
            .bind(filter.polls)
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
                RETURNING id, state
             ), k AS (UPDATE job_keys SET state = gone.state FROM gone WHERE job_keys.job_id = gone.id),
             e AS (DELETE FROM job_events WHERE job_id IN (SELECT id FROM gone)),
             a AS (DELETE FROM attempts WHERE job_id IN (SELECT id FROM gone)),
             s AS (DELETE FROM step_runs WHERE job_id IN (SELECT id FROM gone)),
             n AS (DELETE FROM notifications WHERE job_id IN (SELECT id FROM gone)),
             r AS (DELETE FROM reviews WHERE job_id IN (SELECT id FROM gone))
             SELECT id FROM gone",
        )
        .bind(finished_before)
        .bind(i64::from(batch))
        .fetch_all(&self.pool)
        .await?
        .len() as u64;
        Ok(n)
    }

    async fn prune_keys(&self, created_before: i64) -> Result<u64> {
        let sql = "DELETE FROM job_keys WHERE created_at < $1
             AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = job_keys.job_id)";
        Ok(sqlx::query(sql)
            .bind(created_before)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    async fn pause_bot(&self, bot: &str, actor: &str, reason: &str) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let paused = sqlx::query(
            "INSERT INTO bot_pauses (bot, paused_by, paused_at, reason) VALUES ($1, $2, $3, $4)
             ON CONFLICT (bot) DO NOTHING",
        )
        .bind(bot)
        .bind(actor)
        .bind(now)
        .bind(reason)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if paused {
            insert_bot_event(&mut tx, bot, now, actor, "paused", reason).await?;
        }
        tx.commit().await?;
        Ok(paused)
    }

    async fn resume_bot(&self, bot: &str, actor: &str, reason: &str) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let resumed = sqlx::query("DELETE FROM bot_pauses WHERE bot = $1")
            .bind(bot)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if resumed {
            insert_bot_event(&mut tx, bot, now, actor, "resumed", reason).await?;
            // Its queued jobs may be claimed now, on every node.
            notify(&mut tx).await?;
        }
        tx.commit().await?;
        if resumed {
            self.poke();
        }
        Ok(resumed)
    }

    async fn bot_event(&self, bot: &str, actor: &str, action: &str, reason: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_bot_event(&mut tx, bot, now_ms(), actor, action, reason).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn bot_events(&self, bot: &str, limit: u32) -> Result<Vec<BotEvent>> {
        let rows = sqlx::query(
            "SELECT bot, at, actor, action, reason FROM bot_events WHERE bot = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(bot)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::bot_event).collect()
    }
}

async fn insert_bot_event(
    tx: &mut Transaction<'static, Postgres>,
    bot: &str,
    at: i64,
    actor: &str,
    action: &str,
    reason: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO bot_events (bot, at, actor, action, reason) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(bot)
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(reason)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Carry out a decided change: the job's row, and its event.
pub(super) async fn apply(
    tx: &mut Transaction<'static, Postgres>,
    id: i64,
    now: i64,
    actor: &str,
    decision: &Decision,
    detail: Option<&Value>,
) -> Result<()> {
    let sql = match decision.row {
        RowChange::Cancelled => {
            "UPDATE jobs SET state = 'cancelled', finished_at = $1, updated_at = $1 WHERE id = $2"
        }
        RowChange::CancelRequested => {
            "UPDATE jobs SET cancel_requested = TRUE, updated_at = $1 WHERE id = $2"
        }
        RowChange::Retried => {
            "UPDATE jobs SET state = 'queued', run_after = $1, errors = 0, lost = 0, cancel_requested = FALSE,
                finished_at = NULL, updated_at = $1 WHERE id = $2"
        }
        RowChange::Approved => {
            "UPDATE jobs SET state = 'queued', run_after = $1, updated_at = $1 WHERE id = $2"
        }
        RowChange::Rejected => {
            "UPDATE jobs SET state = 'failed', finished_at = $1, updated_at = $1, last_error = $3 WHERE id = $2"
        }
    };
    let mut query = sqlx::query(sql).bind(now).bind(id);
    if decision.row == RowChange::Rejected {
        query = query.bind(&decision.change.reason);
    }
    query.execute(&mut **tx).await?;
    record(tx, id, now, actor, &decision.change, detail).await?;
    if decision.change.to == JobState::Queued {
        notify(tx).await?;
    }
    Ok(())
}
