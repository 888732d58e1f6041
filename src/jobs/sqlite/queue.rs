use super::*;

#[async_trait]
impl QueueStore for SqliteStore {
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
        let mut tx = self.write().await?;
        let paused: Vec<String> = sqlx::query_scalar("SELECT bot FROM bot_pauses")
            .fetch_all(&mut *tx)
            .await?;
        let bots = facts::unpaused(bots, &paused);
        // Timed once the write lock is held: a job claimed the moment another
        // of its bot ended must not seem to start before that one ended.
        let now = now_ms();
        let expires = now + duration_ms(lease);
        let mut claimed: Vec<ClaimedJob> = Vec::new();
        let free: Vec<&BotClaim> = bots.iter().filter(|b| b.concurrency.is_none()).collect();
        // One claim query for every bot without a limit; one per limited bot,
        // after counting its running jobs. The single writer makes the count
        // and the claim one atomic step.
        let mut groups: Vec<(Vec<&str>, i64)> = Vec::new();
        if !free.is_empty() {
            groups.push((
                free.iter().map(|b| b.name.as_str()).collect(),
                i64::from(limit),
            ));
        }
        for b in bots.iter().filter(|b| b.concurrency.is_some()) {
            let running: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE bot = ? AND state = 'running'")
                    .bind(&b.name)
                    .fetch_one(&mut *tx)
                    .await?;
            let room = i64::from(b.concurrency.unwrap_or(0)) - running;
            if room > 0 {
                groups.push((vec![b.name.as_str()], room));
            }
        }
        for (names, room) in groups {
            let want = room.min(i64::from(limit) - claimed.len() as i64);
            if want <= 0 {
                break;
            }
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "UPDATE jobs SET state = 'running', attempt = attempt + 1, worker = ",
            );
            q.push_bind(worker)
                .push(", lease_expires_at = ")
                .push_bind(expires)
                .push(", started_at = COALESCE(started_at, ")
                .push_bind(now)
                .push("), attempt_started_at = (")
                .push_bind(now)
                .push("), updated_at = ")
                .push_bind(now)
                .push(" WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' AND run_after <= ")
                .push_bind(now)
                .push(" AND bot IN (");
            let mut sep = q.separated(", ");
            for n in &names {
                sep.push_bind(*n);
            }
            q.push(") ORDER BY run_after, id LIMIT ")
                .push_bind(want)
                .push(") ")
                .push(SELECT_CLAIMED);
            let rows = q.build().fetch_all(&mut *tx).await?;
            for row in &rows {
                claimed.push(rows::claimed(row)?);
            }
        }
        claimed.sort_by_key(|j| (j.run_after, j.id));
        for chunk in claimed.chunks(200) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO events (job_id, at, actor, from_state, to_state, reason) ",
            );
            q.push_values(chunk, |mut b, j| {
                b.push_bind(j.id)
                    .push_bind(now)
                    .push_bind(worker)
                    .push_bind("queued")
                    .push_bind("running")
                    .push_bind(format!("claimed, attempt {}", j.attempt));
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(claimed)
    }

    async fn save_steps(&self, worker: &str, saves: &[StepSave]) -> Result<Vec<bool>> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let mut out = Vec::with_capacity(saves.len());
        for s in saves {
            let held = sqlx::query(
                "UPDATE jobs SET next_step = MAX(next_step, ?), updated_at = ?
                 WHERE id = ? AND worker = ? AND attempt = ? AND state = 'running'",
            )
            .bind(s.step.index + 1)
            .bind(now)
            .bind(s.job_id)
            .bind(worker)
            .bind(s.attempt)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if held {
                insert_step(&mut tx, s.job_id, s.attempt, &s.step).await?;
            }
            out.push(held);
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn complete(&self, worker: &str, completions: &[Completion]) -> Result<Vec<bool>> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let mut applied: HashMap<i64, i64> = HashMap::new();
        // Multi-row statements, a chunk at a time: one statement per table
        // per chunk instead of four per job.
        for chunk in completions.chunks(200) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "UPDATE jobs SET state = c.column3, run_after = c.column4, errors = c.column5, next_step = c.column6,
                    last_error = CASE WHEN c.column3 = 'succeeded' THEN NULL ELSE COALESCE(c.column7, last_error) END, output = COALESCE(c.column8, output),
                    review = c.column9, finished_at = c.column10, worker = NULL, lease_expires_at = NULL,
                    updated_at = ",
            );
            q.push_bind(now).push(" FROM (");
            q.push_values(chunk, |mut b, c| {
                b.push_bind(c.job_id)
                    .push_bind(c.attempt)
                    .push_bind(c.state.as_str())
                    .push_bind(c.run_after)
                    .push_bind(c.errors)
                    .push_bind(c.next_step)
                    .push_bind(c.error.clone())
                    .push_bind(c.output.as_ref().map(|v| v.to_string()))
                    .push_bind(c.review.as_ref().map(|v| v.to_string()))
                    .push_bind(c.state.is_finished().then_some(now));
            });
            q.push(
                ") AS c WHERE jobs.id = c.column1 AND jobs.attempt = c.column2 AND jobs.worker = ",
            )
            .push_bind(worker)
            .push(" AND jobs.state = 'running' RETURNING jobs.id, jobs.attempt_started_at");
            for row in q.build().fetch_all(&mut *tx).await? {
                let started: Option<i64> = row.try_get("attempt_started_at")?;
                applied.insert(row.try_get("id")?, started.unwrap_or(now));
            }
            let done: Vec<&Completion> = chunk
                .iter()
                .filter(|c| applied.contains_key(&c.job_id))
                .collect();
            if done.is_empty() {
                continue;
            }
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT OR REPLACE INTO attempts (job_id, attempt, worker, started_at, finished_at, outcome, error) ",
            );
            q.push_values(&done, |mut b, c| {
                b.push_bind(c.job_id)
                    .push_bind(c.attempt)
                    .push_bind(worker)
                    .push_bind(applied.get(&c.job_id).copied().unwrap_or(now))
                    .push_bind(now)
                    .push_bind(c.attempt_outcome.as_str())
                    .push_bind(c.error.clone());
            });
            q.build().execute(&mut *tx).await?;
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO events (job_id, at, actor, from_state, to_state, reason) ",
            );
            q.push_values(&done, |mut b, c| {
                b.push_bind(c.job_id)
                    .push_bind(now)
                    .push_bind(worker)
                    .push_bind("running")
                    .push_bind(c.state.as_str())
                    .push_bind(c.reason.clone());
            });
            q.build().execute(&mut *tx).await?;
            let steps: Vec<(&Completion, &StepRecord)> = done
                .iter()
                .flat_map(|c| c.steps.iter().map(move |s| (*c, s)))
                .collect();
            if !steps.is_empty() {
                let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                    "INSERT OR REPLACE INTO step_runs (job_id, attempt, step_index, step_name, started_at, finished_at, outcome, error, output) ",
                );
                q.push_values(&steps, |mut b, (c, s)| {
                    b.push_bind(c.job_id)
                        .push_bind(c.attempt)
                        .push_bind(s.index)
                        .push_bind(s.name.clone())
                        .push_bind(s.started_at)
                        .push_bind(s.finished_at)
                        .push_bind(s.outcome.as_str())
                        .push_bind(s.error.clone())
                        .push_bind(s.output.as_ref().map(|v| v.to_string()));
                });
                q.build().execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        if completions.iter().any(|c| {
            applied.contains_key(&c.job_id) && c.state == JobState::Queued && c.run_after <= now
        }) {
            self.poke();
        }
        Ok(completions
            .iter()
            .map(|c| applied.contains_key(&c.job_id))
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
        let now = now_ms();
        // Only the attempts the worker holds: a job it gave up on, or one a
        // process of the same name held before, is left to expire.
        let pairs = serde_json::to_string(held).map_err(|e| JobsError::Corrupt(e.to_string()))?;
        let mut tx = self.write().await?;
        let rows = sqlx::query(
            "UPDATE jobs SET lease_expires_at = ? WHERE worker = ? AND state = 'running'
               AND (id, attempt) IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))
             RETURNING id, attempt, cancel_requested",
        )
        .bind(now + duration_ms(lease))
        .bind(worker)
        .bind(pairs)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows::heartbeat(held, &rows)
    }

    async fn release(&self, worker: &str, held: &[(i64, i64)], reason: &str) -> Result<u64> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let mut n = 0;
        for &(id, attempt) in held {
            let applied = sqlx::query(
                "UPDATE jobs SET state = 'queued', run_after = ?, worker = NULL, lease_expires_at = NULL, updated_at = ?
                 WHERE id = ? AND worker = ? AND attempt = ? AND state = 'running'",
            )
            .bind(now)
            .bind(now)
            .bind(id)
            .bind(worker)
            .bind(attempt)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if applied {
                end_attempt(
                    &mut tx,
                    id,
                    attempt,
                    worker,
                    now,
                    Outcome::Interrupted,
                    Some(reason),
                )
                .await?;
                event(
                    &mut tx,
                    id,
                    now,
                    worker,
                    Some(JobState::Running),
                    JobState::Queued,
                    reason,
                )
                .await?;
                n += 1;
            }
        }
        tx.commit().await?;
        if n > 0 {
            self.poke();
        }
        Ok(n)
    }

    async fn rescue_expired(&self, actor: &str, limit: u32) -> Result<Vec<Rescued>> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let rows = sqlx::query(
            "SELECT id, bot, worker, attempt, lost, max_lost, cancel_requested FROM jobs
             WHERE state = 'running' AND lease_expires_at < ? ORDER BY lease_expires_at LIMIT ?",
        )
        .bind(now)
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
                "UPDATE jobs SET state = ?, lost = ?, worker = NULL, lease_expires_at = NULL, run_after = ?,
                        finished_at = ?, updated_at = ?, last_error = CASE WHEN ? = 'dead' THEN ? ELSE last_error END
                 WHERE id = ?",
            )
            .bind(state.as_str())
            .bind(lost)
            .bind(now)
            .bind(finished)
            .bind(now)
            .bind(state.as_str())
            .bind(&reason)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            end_attempt(
                &mut tx,
                id,
                attempt,
                worker.as_deref().unwrap_or("unknown"),
                now,
                Outcome::Lost,
                Some(&reason),
            )
            .await?;
            event(
                &mut tx,
                id,
                now,
                actor,
                Some(JobState::Running),
                state,
                &reason,
            )
            .await?;
            out.push(Rescued {
                id,
                bot: row.try_get("bot")?,
                worker,
                state,
            });
        }
        tx.commit().await?;
        if !out.is_empty() {
            self.poke();
        }
        Ok(out)
    }

    async fn step_outputs(&self, job_id: i64) -> Result<Vec<(i64, String, Value)>> {
        let rows = sqlx::query(
            "SELECT step_index, step_name, output FROM step_runs
             WHERE job_id = ? AND outcome IN ('succeeded', 'waiting_review') ORDER BY step_index, attempt",
        )
        .bind(job_id)
        .fetch_all(&self.reader)
        .await?;
        let mut out: Vec<(i64, String, Value)> = Vec::new();
        for row in &rows {
            let index: i64 = row.try_get("step_index")?;
            let output = parse_json(row.try_get("output")?).unwrap_or(Value::Null);
            // A later attempt's output of the same step replaces an earlier one.
            out.retain(|(i, _, _)| *i != index);
            out.push((index, row.try_get("step_name")?, output));
        }
        Ok(out)
    }

    fn wakeups(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }

    async fn listen(&self) -> Result<()> {
        // SQLite cannot signal another process, but `PRAGMA data_version`
        // changes on a connection whenever any other connection commits.
        // Watching it on a connection of its own turns a `clerk run` next to
        // `clerk serve` into a wake-up within a few milliseconds instead of a
        // poll interval. Commits of this process wake it too; a claim that
        // finds nothing is cheap.
        if self
            .listening
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Ok(());
        }
        let mut conn = self.reader.acquire().await?.detach();
        let wake = self.wake.clone();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let mut last: Option<i64> = None;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
                match sqlx::query_scalar::<_, i64>("PRAGMA data_version")
                    .fetch_one(&mut conn)
                    .await
                {
                    Ok(v) => {
                        if last.is_some_and(|l| l != v) {
                            wake.send_modify(|n| *n = n.wrapping_add(1));
                        }
                        last = Some(v);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "watching the database for changes failed; polling only");
                        return;
                    }
                }
            }
        });
        Ok(())
    }
}
