use super::*;

#[async_trait]
impl RosterStore for SqliteStore {
    async fn announce(&self, worker: &WorkerRow) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO workers (id, kinds, bots, seen_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET kinds = excluded.kinds, bots = excluded.bots,
             seen_at = MAX(seen_at, excluded.seen_at)",
        )
        .bind(&worker.id)
        .bind(serde_json::to_string(&worker.kinds).unwrap_or_default())
        .bind(serde_json::to_string(&worker.bots).unwrap_or_default())
        .bind(worker.seen_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn retire(&self, worker: &str) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM workers WHERE id = ?")
            .bind(worker)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn workers(&self, seen_since: i64) -> Result<Vec<WorkerRow>> {
        let rows = sqlx::query(
            "SELECT id, kinds, bots, seen_at FROM workers WHERE seen_at >= ? ORDER BY id",
        )
        .bind(seen_since)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(rows::worker).collect()
    }
}
