use std::collections::HashMap;

use super::*;

#[async_trait]
impl NoticeStore for PgStore {
    async fn claim_notices(
        &self,
        bot: &str,
        kinds: &[NoticeKind],
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

    async fn last_notice_sent(&self, bot: &str, kind: NoticeKind) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MAX(done_at) FROM notifications WHERE bot = $1 AND kind = $2 AND outcome = 'sent'",
        )
        .bind(bot)
        .bind(kind.as_str())
        .fetch_one(&self.pool)
        .await?)
    }

    async fn flag_overdue_reviews(&self, now: i64) -> Result<Vec<i64>> {
        let due: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT j.id, j.bot, (j.review ->> 'due_at')::bigint AS due
             FROM jobs j WHERE j.state = 'waiting_review'
               AND (j.review ->> 'due_at')::bigint <= $1
               AND NOT EXISTS (SELECT 1 FROM review_deadlines d WHERE d.job_id = j.id
                               AND d.due_at = (j.review ->> 'due_at')::bigint)",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        let mut flagged = Vec::new();
        for (job_id, bot, due_at) in due {
            // The key makes one process the teller, however many look.
            let first = sqlx::query(
                "INSERT INTO review_deadlines (job_id, due_at, noticed_at) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
            )
            .bind(job_id)
            .bind(due_at)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !first {
                continue;
            }
            let change = transitions::overdue(due_at);
            record(&mut tx, job_id, now, "clerk", &change, None).await?;
            sqlx::query(
                "INSERT INTO notifications (job_id, bot, kind, reason, at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(job_id)
            .bind(&bot)
            .bind(NoticeKind::ReviewOverdue.as_str())
            .bind(&change.reason)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            flagged.push(job_id);
        }
        tx.commit().await?;
        Ok(flagged)
    }

    async fn job_inputs(&self, ids: &[i64]) -> Result<HashMap<i64, Value>> {
        let rows = sqlx::query("SELECT id, input::text AS input FROM jobs WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(&self.pool)
            .await?;
        rows::inputs(&rows)
    }
}
