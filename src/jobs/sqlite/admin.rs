use super::transitions::RowChange;
use super::*;

#[async_trait]
impl AdminStore for SqliteStore {
    /// The state is read inside the transaction that changes it, so two
    /// people acting at once cannot both change one job.
    async fn change(&self, id: i64, actor: &str, request: &ChangeRequest) -> Result<Decision> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let decision = transitions::decide(id, read_state(&mut tx, id).await?, request)?;
        apply(&mut tx, id, now, actor, &decision, None).await?;
        tx.commit().await?;
        if decision.change.to == JobState::Queued {
            self.poke();
        }
        Ok(decision)
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
            "SELECT at, actor, from_state, to_state, reason, detail FROM events WHERE job_id = ? ORDER BY id",
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
        } else if !filter.polls {
            q.push(" AND instr(bot, ':') = 0");
        }
        if let Some(state) = filter.state {
            q.push(" AND state = ").push_bind(state.as_str());
        }
        if let Some(before) = filter.before_id {
            q.push(" AND id < ").push_bind(before);
        }
        if let Some(from) = filter.created_from {
            q.push(" AND created_at >= ").push_bind(from);
        }
        if let Some(to) = filter.created_to {
            q.push(" AND created_at < ").push_bind(to);
        }
        if let Some(from) = filter.finished_from {
            q.push(" AND finished_at >= ").push_bind(from);
        }
        if let Some(to) = filter.finished_to {
            q.push(" AND finished_at < ").push_bind(to);
        }
        if let Some(text) = &filter.text {
            q.push(" AND (instr(input, ")
                .push_bind(text.clone())
                .push(") > 0 OR instr(COALESCE(last_error, ''), ")
                .push_bind(text.clone())
                .push(") > 0)");
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
        // Keys outlive their jobs, knowing how they ended.
        let sql = format!(
            "UPDATE job_keys SET state = (SELECT state FROM jobs WHERE jobs.id = job_keys.job_id)
             WHERE job_id IN ({list})"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await?;
        for table in [
            "events",
            "attempts",
            "step_runs",
            "notifications",
            "reviews",
        ] {
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

    async fn prune_keys(&self, created_before: i64) -> Result<u64> {
        let sql = "DELETE FROM job_keys WHERE created_at < ?
             AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = job_keys.job_id)";
        let mut tx = self.write().await?;
        let n = sqlx::query(sql)
            .bind(created_before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    async fn pause_bot(&self, bot: &str, actor: &str, reason: &str) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let paused = sqlx::query(
            "INSERT INTO bot_pauses (bot, paused_by, paused_at, reason) VALUES (?, ?, ?, ?)
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
        let mut tx = self.write().await?;
        let resumed = sqlx::query("DELETE FROM bot_pauses WHERE bot = ?")
            .bind(bot)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if resumed {
            insert_bot_event(&mut tx, bot, now, actor, "resumed", reason).await?;
        }
        tx.commit().await?;
        if resumed {
            self.poke();
        }
        Ok(resumed)
    }

    async fn bot_event(&self, bot: &str, actor: &str, action: &str, reason: &str) -> Result<()> {
        let mut tx = self.write().await?;
        insert_bot_event(&mut tx, bot, now_ms(), actor, action, reason).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn bot_events(&self, bot: &str, limit: u32) -> Result<Vec<BotEvent>> {
        let rows = sqlx::query(
            "SELECT bot, at, actor, action, reason FROM bot_events WHERE bot = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(bot)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(rows::bot_event).collect()
    }
}

async fn insert_bot_event(
    tx: &mut Transaction<'static, Sqlite>,
    bot: &str,
    at: i64,
    actor: &str,
    action: &str,
    reason: &str,
) -> Result<()> {
    sqlx::query("INSERT INTO bot_events (bot, at, actor, action, reason) VALUES (?, ?, ?, ?, ?)")
        .bind(bot)
        .bind(at)
        .bind(actor)
        .bind(action)
        .bind(reason)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A job's state, read inside the write transaction that changes it.
async fn read_state(tx: &mut Transaction<'static, Sqlite>, id: i64) -> Result<JobState> {
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM jobs WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    parse_state(&state.ok_or(JobsError::NotFound(id))?)
}

/// Carry out a decided change: the job's row, and its event.
pub(super) async fn apply(
    tx: &mut Transaction<'static, Sqlite>,
    id: i64,
    now: i64,
    actor: &str,
    decision: &Decision,
    detail: Option<&Value>,
) -> Result<()> {
    let sql = match decision.row {
        RowChange::Cancelled => {
            "UPDATE jobs SET state = 'cancelled', finished_at = ?1, updated_at = ?1 WHERE id = ?2"
        }
        RowChange::CancelRequested => {
            "UPDATE jobs SET cancel_requested = 1, updated_at = ?1 WHERE id = ?2"
        }
        RowChange::Retried => {
            "UPDATE jobs SET state = 'queued', run_after = ?1, errors = 0, lost = 0, cancel_requested = 0,
                finished_at = NULL, updated_at = ?1 WHERE id = ?2"
        }
        RowChange::Approved => {
            "UPDATE jobs SET state = 'queued', run_after = ?1, updated_at = ?1 WHERE id = ?2"
        }
        RowChange::Rejected => {
            "UPDATE jobs SET state = 'failed', finished_at = ?1, updated_at = ?1, last_error = ?3 WHERE id = ?2"
        }
    };
    let mut query = sqlx::query(sql).bind(now).bind(id);
    if decision.row == RowChange::Rejected {
        query = query.bind(&decision.change.reason);
    }
    query.execute(&mut **tx).await?;
    record(tx, id, now, actor, &decision.change, detail).await?;
    Ok(())
}
