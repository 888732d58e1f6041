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
                JOIN step_runs s ON s.job_id = j.id AND s.step_name = $2
                                AND s.outcome IN ('succeeded', 'waiting_review')
                WHERE j.bot = $1 AND j.state = 'succeeded' AND j.id <> $5
                  AND CASE jsonb_typeof(s.output -> 'values' -> $3)
                        WHEN 'string' THEN lower(btrim(s.output -> 'values' ->> $3))
                        ELSE (s.output -> 'values' -> $3)::text END = $4)",
        )
        .bind(bot)
        .bind(step)
        .bind(field)
        .bind(value)
        .bind(job_id)
        .fetch_one(&self.pool)
        .await?)
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
