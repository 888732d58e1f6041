use super::*;

#[async_trait]
impl IntakeStore for SqliteStore {
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

    async fn checkpoint(&self, bot: &str, name: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM checkpoints WHERE bot = ? AND name = ?")
                .bind(bot)
                .bind(name)
                .fetch_optional(&self.reader)
                .await?,
        )
    }

    async fn value_seen(
        &self,
        bot: &str,
        step: &str,
        field: &str,
        value: &str,
        job_id: i64,
    ) -> Result<bool> {
        // Strings compare as their trimmed lower-case text, other values
        // as their JSON, as the rule gives them.
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (
                SELECT 1 FROM jobs j
                JOIN step_runs s ON s.job_id = j.id AND s.step_name = ?2
                                AND s.outcome IN ('succeeded', 'waiting_review')
                JOIN json_each(s.output, '$.values') v ON v.key = ?3
                WHERE j.bot = ?1 AND j.state = 'succeeded' AND j.id <> ?5
                  AND CASE v.type WHEN 'text' THEN lower(trim(v.value)) ELSE json_quote(v.value) END = ?4)",
        )
        .bind(bot)
        .bind(step)
        .bind(field)
        .bind(value)
        .bind(job_id)
        .fetch_one(&self.reader)
        .await?)
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
}
