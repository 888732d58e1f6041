use super::*;

#[async_trait]
impl NoticeStore for SqliteStore {
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
        let mut tx = self.write().await?;
        let mut q = QueryBuilder::<Sqlite>::new("UPDATE notifications SET claimed_by = ");
        q.push_bind(worker)
            .push(", claimed_until = ")
            .push_bind(now.saturating_add(duration_ms(hold)))
            .push(" WHERE id IN (SELECT id FROM notifications WHERE done_at IS NULL AND bot = ")
            .push_bind(bot)
            .push(" AND kind IN (");
        let mut list = q.separated(", ");
        for kind in kinds {
            list.push_bind(kind.as_str());
        }
        q.push(") AND (claimed_until IS NULL OR claimed_until <= ")
            .push_bind(now)
            .push(") ORDER BY id LIMIT ")
            .push_bind(i64::from(limit.max(1)))
            .push(") RETURNING ")
            .push(rows::NOTICE_COLUMNS);
        let found = q.build().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        let mut notices = found.iter().map(rows::notice).collect::<Result<Vec<_>>>()?;
        notices.sort_by_key(|n| n.id);
        Ok(notices)
    }

    async fn finish_notices(&self, ids: &[i64], outcome: &str) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        let mut q = QueryBuilder::<Sqlite>::new("UPDATE notifications SET done_at = ");
        q.push_bind(now_ms())
            .push(", outcome = ")
            .push_bind(outcome)
            .push(", claimed_by = NULL, claimed_until = NULL WHERE id IN (");
        push_ids(&mut q, ids);
        q.build().execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn postpone_notices(&self, ids: &[i64], error: &str, retry_at: i64) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        let mut q = QueryBuilder::<Sqlite>::new(
            "UPDATE notifications SET tries = tries + 1, claimed_by = NULL, last_error = ",
        );
        q.push_bind(error)
            .push(", claimed_until = ")
            .push_bind(retry_at)
            .push(" WHERE done_at IS NULL AND id IN (");
        push_ids(&mut q, ids);
        q.build().execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn last_notice_sent(&self, bot: &str, kind: NoticeKind) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MAX(done_at) FROM notifications WHERE bot = ? AND kind = ? AND outcome = 'sent'",
        )
        .bind(bot)
        .bind(kind.as_str())
        .fetch_one(&self.reader)
        .await?)
    }

    async fn flag_overdue_reviews(&self, now: i64) -> Result<Vec<i64>> {
        let due: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT j.id, j.bot, CAST(json_extract(j.review, '$.due_at') AS INTEGER) AS due
             FROM jobs j WHERE j.state = 'waiting_review'
               AND CAST(json_extract(j.review, '$.due_at') AS INTEGER) <= ?
               AND NOT EXISTS (SELECT 1 FROM review_deadlines d WHERE d.job_id = j.id
                               AND d.due_at = CAST(json_extract(j.review, '$.due_at') AS INTEGER))",
        )
        .bind(now)
        .fetch_all(&self.reader)
        .await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.write().await?;
        let mut flagged = Vec::new();
        for (job_id, bot, due_at) in due {
            let first = sqlx::query(
                "INSERT INTO review_deadlines (job_id, due_at, noticed_at) VALUES (?, ?, ?)
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
                "INSERT INTO notifications (job_id, bot, kind, reason, at) VALUES (?, ?, ?, ?, ?)",
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
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut q = QueryBuilder::<Sqlite>::new("SELECT id, input FROM jobs WHERE id IN (");
        push_ids(&mut q, ids);
        let rows = q.build().fetch_all(&self.reader).await?;
        rows::inputs(&rows)
    }
}
