use super::*;

#[async_trait]
impl RosterStore for PgStore {
    async fn announce(&self, worker: &WorkerRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO workers (id, kinds, bots, seen_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET kinds = excluded.kinds, bots = excluded.bots,
             seen_at = GREATEST(workers.seen_at, excluded.seen_at)",
        )
        .bind(&worker.id)
        .bind(serde_json::to_string(&worker.kinds).unwrap_or_default())
        .bind(serde_json::to_string(&worker.bots).unwrap_or_default())
        .bind(worker.seen_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn retire(&self, worker: &str) -> Result<()> {
        sqlx::query("DELETE FROM workers WHERE id = $1")
            .bind(worker)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn workers(&self, seen_since: i64) -> Result<Vec<WorkerRow>> {
        let rows = sqlx::query(
            "SELECT id, kinds, bots, seen_at FROM workers WHERE seen_at >= $1 ORDER BY id",
        )
        .bind(seen_since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::worker).collect()
    }
}
