use super::*;

#[async_trait]
impl ScheduleStore for PgStore {
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

    async fn paused(&self) -> Result<Vec<Pause>> {
        let rows =
            sqlx::query("SELECT bot, paused_by, paused_at, reason FROM bot_pauses ORDER BY bot")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(rows::pause).collect()
    }

    async fn has_unfinished(&self, bot: &str) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM jobs WHERE bot = $1 AND state IN ('queued', 'running') LIMIT 1",
        )
        .bind(bot)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }
}
