use std::collections::HashMap;

use super::*;

#[async_trait]
impl NoticeStore for PgStore {
    async fn claim_notices(
        &self,
        bot: &str,
        kinds: &[JobState],
        worker: &str,
        hold: Duration,
        limit: u32,
    ) -> Result<Vec<Notice>> {
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        let sql = format!(
            "UPDATE notifications SET claimed_by = $1, claimed_until = $2
             WHERE id IN (
                SELECT id FROM notifications WHERE done_at IS NULL AND bot = $3 AND kind = ANY($4)
                AND (claimed_until IS NULL OR claimed_until <= $5)
                ORDER BY id LIMIT $6 FOR UPDATE SKIP LOCKED)
             RETURNING {}",
            rows::NOTICE_COLUMNS
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(worker)
            .bind(now.saturating_add(duration_ms(hold)))
            .bind(bot)
            .bind(&kinds)
            .bind(now)
            .bind(i64::from(limit.max(1)))
            .fetch_all(&self.pool)
            .await?;
        let mut notices = found.iter().map(rows::notice).collect::<Result<Vec<_>>>()?;
        notices.sort_by_key(|n| n.id);
        Ok(notices)
    }

    async fn finish_notices(&self, ids: &[i64], outcome: &str) -> Result<()> {
        sqlx::query(
            "UPDATE notifications SET done_at = $1, outcome = $2, claimed_by = NULL, claimed_until = NULL
             WHERE id = ANY($3)",
        )
        .bind(now_ms())
        .bind(outcome)
        .bind(ids)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn postpone_notices(&self, ids: &[i64], error: &str, retry_at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE notifications SET tries = tries + 1, claimed_by = NULL, last_error = $1, claimed_until = $2
             WHERE done_at IS NULL AND id = ANY($3)",
        )
        .bind(error)
        .bind(retry_at)
        .bind(ids)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn last_notice_sent(&self, bot: &str, kind: JobState) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MAX(done_at) FROM notifications WHERE bot = $1 AND kind = $2 AND outcome = 'sent'",
        )
        .bind(bot)
        .bind(kind.as_str())
        .fetch_one(&self.pool)
        .await?)
    }

    async fn job_inputs(&self, ids: &[i64]) -> Result<HashMap<i64, Value>> {
        let rows = sqlx::query("SELECT id, input::text AS input FROM jobs WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(&self.pool)
            .await?;
        rows::inputs(&rows)
    }
}
