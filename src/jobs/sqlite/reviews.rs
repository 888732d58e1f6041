use super::admin::apply;
use super::*;

/// A review's row as a transaction that changes it sees it.
struct Held {
    claimed_by: Option<String>,
    claimed_until: Option<i64>,
    version: i64,
}

/// The job must wait for review; returns its review row (or an empty one).
async fn held(tx: &mut Transaction<'static, Sqlite>, job_id: i64) -> Result<Held> {
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM jobs WHERE id = ?")
        .bind(job_id)
        .fetch_optional(&mut **tx)
        .await?;
    let state = parse_state(&state.ok_or(JobsError::NotFound(job_id))?)?;
    if state != JobState::WaitingReview {
        return Err(JobsError::NoReview(job_id));
    }
    let row =
        sqlx::query("SELECT claimed_by, claimed_until, version FROM reviews WHERE job_id = ?")
            .bind(job_id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(match row {
        Some(r) => Held {
            claimed_by: r.try_get("claimed_by")?,
            claimed_until: r.try_get("claimed_until")?,
            version: r.try_get("version")?,
        },
        None => Held {
            claimed_by: None,
            claimed_until: None,
            version: 0,
        },
    })
}

impl Held {
    /// Another person's claim that still holds.
    fn check(&self, job_id: i64, user: &str, now: i64) -> Result<()> {
        match (&self.claimed_by, self.claimed_until) {
            (Some(by), Some(until)) if by != user && until > now => Err(JobsError::HeldBy {
                id: job_id,
                by: by.clone(),
                until: time_text(until),
            }),
            _ => Ok(()),
        }
    }

    fn at(&self, job_id: i64, version: i64) -> Result<()> {
        if self.version == version {
            Ok(())
        } else {
            Err(JobsError::Conflict {
                id: job_id,
                expected: version,
                found: self.version,
            })
        }
    }
}

/// A review action that leaves the job waiting, in its audit trail.
async fn review_event(
    tx: &mut Transaction<'static, Sqlite>,
    job_id: i64,
    now: i64,
    user: &str,
    event: &ReviewEvent,
) -> Result<()> {
    let stays = transitions::Transition {
        from: JobState::WaitingReview,
        to: JobState::WaitingReview,
        reason: event.reason.clone(),
    };
    record(tx, job_id, now, user, &stays, Some(&event.detail)).await
}

#[async_trait]
impl ReviewStore for SqliteStore {
    async fn review_queue(&self, filter: &ReviewFilter) -> Result<Vec<ReviewItem>> {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {} FROM jobs j LEFT JOIN reviews r ON r.job_id = j.id WHERE j.state = 'waiting_review'",
            rows::REVIEW_COLUMNS
        ));
        if let Some(bot) = &filter.bot {
            q.push(" AND j.bot = ").push_bind(bot.clone());
        }
        if let Some(reason) = &filter.reason {
            q.push(" AND instr(j.review, ")
                .push_bind(reason.clone())
                .push(") > 0");
        }
        if let Some(names) = &filter.workable_by {
            q.push(" AND (coalesce(json_array_length(j.review, '$.review_by'), 0) = 0");
            if !names.is_empty() {
                q.push(" OR EXISTS (SELECT 1 FROM json_each(j.review, '$.review_by') w WHERE w.value IN (");
                let mut list = q.separated(", ");
                for name in names {
                    list.push_bind(name.clone());
                }
                q.push("))");
            }
            q.push(")");
        }
        if let Some(at) = filter.overdue_at {
            q.push(" AND CAST(json_extract(j.review, '$.due_at') AS INTEGER) <= ")
                .push_bind(at);
        }
        q.push(" ORDER BY j.updated_at, j.id LIMIT ")
            .push_bind(i64::from(filter.limit.max(1)));
        let rows = q.build().fetch_all(&self.reader).await?;
        rows.iter().map(rows::review_item).collect()
    }

    async fn review(&self, job_id: i64) -> Result<Option<Review>> {
        let sql = format!(
            "SELECT {}, r.template, r.extraction, r.corrections, j.next_step
             FROM jobs j LEFT JOIN reviews r ON r.job_id = j.id
             WHERE j.id = ? AND j.state = 'waiting_review'",
            rows::REVIEW_COLUMNS
        );
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(job_id)
            .fetch_optional(&self.reader)
            .await?
        else {
            return Ok(None);
        };
        let step_index = row.try_get::<i64, _>("next_step")? - 1;
        let step: Option<String> = sqlx::query_scalar(
            "SELECT output FROM step_runs WHERE job_id = ? AND step_index = ? AND outcome = 'waiting_review'
             ORDER BY attempt DESC LIMIT 1",
        )
        .bind(job_id)
        .bind(step_index)
        .fetch_optional(&self.reader)
        .await?
        .flatten();
        rows::review(&row, step_index, parse_json(step)).map(Some)
    }

    async fn claim_review(&self, job_id: i64, user: &str, hold: Duration) -> Result<ReviewItem> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let held = held(&mut tx, job_id).await?;
        held.check(job_id, user, now)?;
        sqlx::query(
            "INSERT INTO reviews (job_id, claimed_by, claimed_until, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (job_id) DO UPDATE SET claimed_by = ?2, claimed_until = ?3, updated_at = ?4",
        )
        .bind(job_id)
        .bind(user)
        .bind(now.saturating_add(duration_ms(hold)))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if held.claimed_by.as_deref() != Some(user) || held.claimed_until.is_none_or(|u| u <= now) {
            let event = ReviewEvent {
                reason: "claimed for review".into(),
                detail: serde_json::json!({ "action": "claim" }),
            };
            review_event(&mut tx, job_id, now, user, &event).await?;
        }
        tx.commit().await?;
        self.review_queue_item(job_id).await
    }

    async fn release_review(&self, job_id: i64, user: &str) -> Result<()> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let released = sqlx::query(
            "UPDATE reviews SET claimed_by = NULL, claimed_until = NULL, updated_at = ?
             WHERE job_id = ? AND claimed_by = ?",
        )
        .bind(now)
        .bind(job_id)
        .bind(user)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if released > 0 {
            let event = ReviewEvent {
                reason: "let go of the review".into(),
                detail: serde_json::json!({ "action": "release" }),
            };
            review_event(&mut tx, job_id, now, user, &event).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn save_review(
        &self,
        job_id: i64,
        user: &str,
        version: i64,
        update: &ReviewUpdate,
    ) -> Result<i64> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let held = held(&mut tx, job_id).await?;
        held.check(job_id, user, now)?;
        held.at(job_id, version)?;
        let corrections = Value::Object(update.corrections.clone()).to_string();
        sqlx::query(
            "INSERT INTO reviews (job_id, version, corrections, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (job_id) DO UPDATE SET version = ?2, corrections = ?3, updated_at = ?4",
        )
        .bind(job_id)
        .bind(version + 1)
        .bind(&corrections)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if let Some(template) = &update.template {
            sqlx::query("UPDATE reviews SET template = ?, extraction = ? WHERE job_id = ?")
                .bind(template.as_deref())
                .bind(update.extraction.as_ref().map(Value::to_string))
                .bind(job_id)
                .execute(&mut *tx)
                .await?;
        }
        for event in &update.events {
            review_event(&mut tx, job_id, now, user, event).await?;
        }
        tx.commit().await?;
        Ok(version + 1)
    }

    async fn finish_review(
        &self,
        job_id: i64,
        user: &str,
        version: i64,
        outcome: &ReviewOutcome,
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let held = held(&mut tx, job_id).await?;
        held.check(job_id, user, now)?;
        held.at(job_id, version)?;
        // The review moves on a version whatever the outcome, and is let go.
        sqlx::query(
            "INSERT INTO reviews (job_id, version, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (job_id) DO UPDATE SET version = ?2, claimed_by = NULL, claimed_until = NULL, updated_at = ?3",
        )
        .bind(job_id)
        .bind(version + 1)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        match outcome {
            ReviewOutcome::Approve { output, event } => {
                let next_step: i64 = sqlx::query_scalar("SELECT next_step FROM jobs WHERE id = ?")
                    .bind(job_id)
                    .fetch_one(&mut *tx)
                    .await?;
                // The reviewed values are the step's output from now on;
                // the next step reads them.
                sqlx::query(
                    "UPDATE step_runs SET output = ? WHERE job_id = ? AND step_index = ? AND outcome = 'waiting_review'
                     AND attempt = (SELECT MAX(attempt) FROM step_runs WHERE job_id = ? AND step_index = ? AND outcome = 'waiting_review')",
                )
                .bind(output.to_string())
                .bind(job_id)
                .bind(next_step - 1)
                .bind(job_id)
                .bind(next_step - 1)
                .execute(&mut *tx)
                .await?;
                let note = event.reason.clone();
                let decision = transitions::decide(
                    job_id,
                    JobState::WaitingReview,
                    &transitions::ChangeRequest::Approve { note },
                )?;
                apply(&mut tx, job_id, now, user, &decision, Some(&event.detail)).await?;
            }
            ReviewOutcome::Reject { reason, event } => {
                let decision = transitions::decide(
                    job_id,
                    JobState::WaitingReview,
                    &transitions::ChangeRequest::Reject {
                        reason: reason.clone(),
                    },
                )?;
                apply(&mut tx, job_id, now, user, &decision, Some(&event.detail)).await?;
            }
            ReviewOutcome::Postpone { note, event } => {
                sqlx::query("UPDATE reviews SET note = ? WHERE job_id = ?")
                    .bind(note)
                    .bind(job_id)
                    .execute(&mut *tx)
                    .await?;
                review_event(&mut tx, job_id, now, user, event).await?;
            }
        }
        tx.commit().await?;
        if matches!(outcome, ReviewOutcome::Approve { .. }) {
            self.poke();
        }
        Ok(())
    }

    async fn approvals_since(&self, since: i64, limit: u32) -> Result<Vec<Approval>> {
        let rows = sqlx::query(
            "SELECT job_id, at, actor, detail FROM events
             WHERE at >= ? AND detail IS NOT NULL AND json_extract(detail, '$.action') = 'approve'
             ORDER BY at, id LIMIT ?",
        )
        .bind(since)
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(rows::approval).collect()
    }
}

impl SqliteStore {
    /// One line of the review queue, by job.
    async fn review_queue_item(&self, job_id: i64) -> Result<ReviewItem> {
        let sql = format!(
            "SELECT {} FROM jobs j LEFT JOIN reviews r ON r.job_id = j.id WHERE j.id = ?",
            rows::REVIEW_COLUMNS
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(job_id)
            .fetch_one(&self.writer)
            .await?;
        rows::review_item(&row)
    }
}
