use super::*;

#[async_trait]
impl IntakeStore for PgStore {
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
}
