use super::admin::apply;
use super::*;

/// The columns a review queue line is read from, JSON as text.
const REVIEW_COLUMNS: &str = "j.id, j.bot, j.input::text AS input, j.review::text AS review, j.updated_at, r.claimed_by, r.claimed_until, r.version, r.note";

/// A review's row as a transaction that changes it sees it.
struct Held {
    claimed_by: Option<String>,
    claimed_until: Option<i64>,
    version: i64,
}

/// The job, locked, must wait for review; returns its review row (or an
/// empty one).
async fn held(tx: &mut Transaction<'static, Postgres>, job_id: i64) -> Result<Held> {
    let state = lock_state(tx, job_id).await?;
    if state != JobState::WaitingReview {
        return Err(JobsError::NoReview(job_id));
    }
    let row =
        sqlx::query("SELECT claimed_by, claimed_until, version FROM reviews WHERE job_id = $1")
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
    tx: &mut Transaction<'static, Postgres>,
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
impl ReviewStore for PgStore {
    async fn review_queue(&self, filter: &ReviewFilter) -> Result<Vec<ReviewItem>> {
        let sql = format!(
            "SELECT {REVIEW_COLUMNS} FROM jobs j LEFT JOIN reviews r ON r.job_id = j.id
             WHERE j.state = 'waiting_review' AND ($1::text IS NULL OR j.bot = $1)
               AND ($2::text IS NULL OR strpos(j.review::text, $2) > 0)
               AND ($4::text[] IS NULL
                    OR jsonb_typeof(j.review -> 'review_by') IS DISTINCT FROM 'array'
                    OR jsonb_array_length(j.review -> 'review_by') = 0
                    OR (j.review -> 'review_by') ?| $4)
               AND ($5::bigint IS NULL OR (j.review ->> 'due_at')::bigint <= $5)
             ORDER BY j.updated_at, j.id LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&filter.bot)
            .bind(&filter.reason)
            .bind(i64::from(filter.limit.max(1)))
            .bind(&filter.workable_by)
            .bind(filter.overdue_at)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::review_item).collect()
    }

    async fn review(&self, job_id: i64) -> Result<Option<Review>> {
        let sql = format!(
            "SELECT {REVIEW_COLUMNS}, r.template, r.extraction::text AS extraction,
                    r.corrections::text AS corrections, j.next_step
             FROM jobs j LEFT JOIN reviews r ON r.job_id = j.id
             WHERE j.id = $1 AND j.state = 'waiting_review'"
        );
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let step_index = row.try_get::<i64, _>("next_step")? - 1;
        let step: Option<String> = sqlx::query_scalar(
            "SELECT output::text FROM step_runs WHERE job_id = $1 AND step_index = $2 AND outcome = 'waiting_review'
             ORDER BY attempt DESC LIMIT 1",
        )
        .bind(job_id)
        .bind(step_index)
        .fetch_optional(&self.pool)
        .await?
        .flatten();
        rows::review(&row, step_index, parse_json(step)).map(Some)
    }

    async fn claim_review(&self, job_id: i64, user: &str, hold: Duration) -> Result<ReviewItem> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let held = held(&mut tx, job_id).await?;
        held.check(job_id, user, now)?;
        sqlx::query(
            "INSERT INTO reviews (job_id, claimed_by, claimed_until, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (job_id) DO UPDATE SET claimed_by = $2, claimed_until = $3, updated_at = $4",
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
        let sql = format!(
            "SELECT {REVIEW_COLUMNS} FROM jobs j LEFT JOIN reviews r ON r.job_id = j.id WHERE j.id = $1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(job_id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        rows::review_item(&row)
    }

    async fn release_review(&self, job_id: i64, user: &str) -> Result<()> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let released = sqlx::query(
            "UPDATE reviews SET claimed_by = NULL, claimed_until = NULL, updated_at = $1
             WHERE job_id = $2 AND claimed_by = $3",
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
        let mut tx = self.pool.begin().await?;
        let held = held(&mut tx, job_id).await?;
        held.check(job_id, user, now)?;
        held.at(job_id, version)?;
        let corrections = Value::Object(update.corrections.clone()).to_string();
        sqlx::query(
            "INSERT INTO reviews (job_id, version, corrections, updated_at) VALUES ($1, $2, $3::jsonb, $4)
             ON CONFLICT (job_id) DO UPDATE SET version = $2, corrections = $3::jsonb, updated_at = $4",
        )
        .bind(job_id)
        .bind(version + 1)
        .bind(&corrections)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if let Some(template) = &update.template {
            sqlx::query(
                "UPDATE reviews SET template = $1, extraction = $2::jsonb WHERE job_id = $3",
            )
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
        let mut tx = self.pool.begin().await?;
        let held = held(&mut tx, job_id).await?;
        held.check(job_id, user, now)?;
        held.at(job_id, version)?;
        // The review moves on a version whatever the outcome, and is let go.
        sqlx::query(
            "INSERT INTO reviews (job_id, version, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (job_id) DO UPDATE SET version = $2, claimed_by = NULL, claimed_until = NULL, updated_at = $3",
        )
        .bind(job_id)
        .bind(version + 1)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        match outcome {
            ReviewOutcome::Approve { output, event } => {
                // The reviewed values are the step's output from now on;
                // the next step reads them.
                sqlx::query(
                    "UPDATE step_runs s SET output = $1::jsonb FROM jobs j
                     WHERE j.id = $2 AND s.job_id = j.id AND s.step_index = j.next_step - 1
                       AND s.outcome = 'waiting_review'
                       AND s.attempt = (SELECT MAX(attempt) FROM step_runs
                                        WHERE job_id = j.id AND step_index = j.next_step - 1
                                          AND outcome = 'waiting_review')",
                )
                .bind(output.to_string())
                .bind(job_id)
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
                sqlx::query("UPDATE reviews SET note = $1 WHERE job_id = $2")
                    .bind(note)
                    .bind(job_id)
                    .execute(&mut *tx)
                    .await?;
                review_event(&mut tx, job_id, now, user, event).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn approvals_since(&self, since: i64, limit: u32) -> Result<Vec<Approval>> {
        let rows = sqlx::query(
            "SELECT job_id, at, actor, detail::text AS detail FROM events
             WHERE at >= $1 AND detail->>'action' = 'approve'
             ORDER BY at, id LIMIT $2",
        )
        .bind(since)
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::approval).collect()
    }
}
