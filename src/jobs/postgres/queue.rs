use super::*;

#[async_trait]
impl QueueStore for PgStore {
    async fn claim(
        &self,
        worker: &str,
        bots: &[BotClaim],
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<ClaimedJob>> {
        if limit == 0 || bots.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let lease_ms = duration_ms(lease);
        let free: Vec<String> = bots
            .iter()
            .filter(|b| b.concurrency.is_none())
            .map(|b| b.name.clone())
            .collect();
        let mut claimed = Vec::new();
        if !free.is_empty() {
            let mut conn = self.claim_pool.acquire().await?;
            claimed = self
                .claim_group(&mut conn, worker, &free, i64::from(limit), now, lease_ms)
                .await?;
        }
        for b in bots.iter().filter(|b| b.concurrency.is_some()) {
            let left = i64::from(limit) - claimed.len() as i64;
            if left <= 0 {
                break;
            }
            // Count and claim under a per-bot lock so two workers cannot both
            // see room for the last slot.
            let mut tx = self.claim_pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('clerk:bot:' || $1))")
                .bind(&b.name)
                .execute(&mut *tx)
                .await?;
            let running: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM jobs WHERE bot = $1 AND state = 'running'",
            )
            .bind(&b.name)
            .fetch_one(&mut *tx)
            .await?;
            // Timed once the count has seen the others end: a job claimed the
            // moment another of its bot ended must not seem to start before
            // that one ended (its end is timed before its commit, which the
            // count saw).
            let now = now_ms();
            let room = (i64::from(b.concurrency.unwrap_or(0)) - running).min(left);
            if room > 0 {
                let mut got = self
                    .claim_group(
                        &mut tx,
                        worker,
                        std::slice::from_ref(&b.name),
                        room,
                        now,
                        lease_ms,
                    )
                    .await?;
                claimed.append(&mut got);
            }
            tx.commit().await?;
        }
        claimed.sort_by_key(|j| (j.run_after, j.id));
        Ok(claimed)
    }

    async fn save_steps(&self, worker: &str, saves: &[StepSave]) -> Result<Vec<bool>> {
        if saves.is_empty() {
            return Ok(Vec::new());
        }
        let mut steps = StepArrays::default();
        for s in saves {
            steps.push(s.job_id, s.attempt, &s.step);
        }
        let query = sqlx::query(SAVE_STEPS_SQL.as_str())
            .bind(saves.iter().map(|s| s.job_id).collect::<Vec<_>>())
            .bind(saves.iter().map(|s| s.attempt).collect::<Vec<_>>())
            .bind(saves.iter().map(|s| s.step.index + 1).collect::<Vec<_>>())
            .bind(now_ms())
            .bind(worker);
        let held = steps.held_after(query, &self.pool).await?;
        Ok(saves.iter().map(|s| held.contains(&s.job_id)).collect())
    }

    async fn complete(&self, worker: &str, completions: &[Completion]) -> Result<Vec<bool>> {
        if completions.is_empty() {
            return Ok(Vec::new());
        }
        let texts =
            |f: fn(&Completion) -> Option<String>| completions.iter().map(f).collect::<Vec<_>>();
        let query = sqlx::query(COMPLETE_SQL.as_str())
            .bind(completions.iter().map(|c| c.job_id).collect::<Vec<_>>())
            .bind(completions.iter().map(|c| c.attempt).collect::<Vec<_>>())
            .bind(
                completions
                    .iter()
                    .map(|c| c.state.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(completions.iter().map(|c| c.run_after).collect::<Vec<_>>())
            .bind(completions.iter().map(|c| c.errors).collect::<Vec<_>>())
            .bind(completions.iter().map(|c| c.next_step).collect::<Vec<_>>())
            .bind(texts(|c| c.error.clone()))
            .bind(texts(|c| c.output.as_ref().map(Value::to_string)))
            .bind(texts(|c| c.review.as_ref().map(Value::to_string)))
            .bind(
                completions
                    .iter()
                    .map(|c| c.attempt_outcome.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                completions
                    .iter()
                    .map(|c| c.reason.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(now_ms())
            .bind(worker);
        let mut steps = StepArrays::default();
        for c in completions {
            for s in &c.steps {
                steps.push(c.job_id, c.attempt, s);
            }
        }
        let held = steps.held_after(query, &self.pool).await?;
        Ok(completions
            .iter()
            .map(|c| held.contains(&c.job_id))
            .collect())
    }

    async fn heartbeat(
        &self,
        worker: &str,
        held: &[(i64, i64)],
        lease: Duration,
    ) -> Result<Heartbeat> {
        if held.is_empty() {
            return Ok(Heartbeat::default());
        }
        // Only the attempts the worker holds: a job it gave up on, or one a
        // process of the same name held before, is left to expire. Leases
        // are timed by the database's clock, the one every node shares.
        let fence = held_by("h", "$2");
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs j SET lease_expires_at = {DB_NOW_MS} + $1
             FROM unnest($3::bigint[], $4::bigint[]) AS h(id, attempt)
             WHERE j.id = h.id AND {fence}
             RETURNING j.id, j.attempt, j.cancel_requested"
        )))
        .bind(duration_ms(lease))
        .bind(worker)
        .bind(held.iter().map(|h| h.0).collect::<Vec<_>>())
        .bind(held.iter().map(|h| h.1).collect::<Vec<_>>())
        .fetch_all(&self.pool)
        .await?;
        rows::heartbeat(held, &rows)
    }

    async fn release(&self, worker: &str, held: &[(i64, i64)], reason: &str) -> Result<u64> {
        if held.is_empty() {
            return Ok(0);
        }
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let fence = held_by("h", "$4");
        let released: Vec<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs j SET state = 'queued', run_after = $3, worker = NULL, lease_expires_at = NULL, updated_at = $3
             FROM unnest($1::bigint[], $2::bigint[]) AS h(id, attempt)
             WHERE j.id = h.id AND {fence}
             RETURNING j.id, j.attempt"
        )))
        .bind(held.iter().map(|h| h.0).collect::<Vec<_>>())
        .bind(held.iter().map(|h| h.1).collect::<Vec<_>>())
        .bind(now)
        .bind(worker)
        .fetch_all(&mut *tx)
        .await?;
        for &(job_id, attempt) in &released {
            let end = AttemptEnd {
                job_id,
                attempt,
                worker,
                ended_by: worker,
                at: now,
                outcome: Outcome::Interrupted,
                to: JobState::Queued,
                reason,
            };
            end_attempt(&mut tx, &end).await?;
        }
        if !released.is_empty() {
            notify(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(released.len() as u64)
    }

    async fn rescue_expired(&self, actor: &str, limit: u32) -> Result<Vec<Rescued>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, bot, worker, attempt, lost, max_lost, cancel_requested FROM jobs
             WHERE state = 'running' AND lease_expires_at < {DB_NOW_MS} ORDER BY lease_expires_at LIMIT $1
             FOR UPDATE SKIP LOCKED"
        )))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Vec::new();
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let worker: Option<String> = row.try_get("worker")?;
            let attempt: i64 = row.try_get("attempt")?;
            let lost: i64 = row.try_get::<i64, _>("lost")? + 1;
            let max_lost: i64 = row.try_get("max_lost")?;
            let cancel: bool = row.try_get("cancel_requested")?;
            let transitions::Transition {
                to: state, reason, ..
            } = transitions::lost(worker.as_deref(), lost, max_lost, cancel);
            let finished = state.is_finished().then_some(now);
            sqlx::query(
                "UPDATE jobs SET state = $1, lost = $2, worker = NULL, lease_expires_at = NULL, run_after = $3,
                        finished_at = $4, updated_at = $3,
                        last_error = CASE WHEN $1 = 'dead' THEN $5 ELSE last_error END
                 WHERE id = $6",
            )
            .bind(state.as_str())
            .bind(lost)
            .bind(now)
            .bind(finished)
            .bind(&reason)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            let end = AttemptEnd {
                job_id: id,
                attempt,
                worker: worker.as_deref().unwrap_or("unknown"),
                ended_by: actor,
                at: now,
                outcome: Outcome::Lost,
                to: state,
                reason: &reason,
            };
            end_attempt(&mut tx, &end).await?;
            out.push(Rescued {
                id,
                bot: row.try_get("bot")?,
                worker,
                state,
            });
        }
        if !out.is_empty() {
            notify(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn step_outputs(&self, job_id: i64) -> Result<Vec<(i64, String, Value)>> {
        let rows = sqlx::query(
            "SELECT DISTINCT ON (step_index) step_index, step_name, output::text AS output FROM step_runs
             WHERE job_id = $1 AND outcome IN ('succeeded', 'waiting_review')
             ORDER BY step_index, attempt DESC",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for row in &rows {
            out.push((
                row.try_get("step_index")?,
                row.try_get("step_name")?,
                parse_json(row.try_get("output")?).unwrap_or(Value::Null),
            ));
        }
        Ok(out)
    }

    fn wakeups(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }

    async fn listen(&self) -> Result<()> {
        use std::sync::atomic::Ordering;
        if self.listening.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANNEL).await?;
        let wake = self.wake.clone();
        tokio::spawn(async move {
            loop {
                match listener.recv().await {
                    Ok(_) => wake.send_modify(|n| *n = n.wrapping_add(1)),
                    Err(e) => {
                        // The listener reconnects on the next recv; until then
                        // the workers' polling picks up what was missed.
                        tracing::warn!(error = %e, "lost the LISTEN connection; reconnecting");
                        wake.send_modify(|n| *n = n.wrapping_add(1));
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        Ok(())
    }
}
