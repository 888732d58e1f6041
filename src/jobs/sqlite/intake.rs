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
