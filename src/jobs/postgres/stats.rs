use super::*;

/// Jobs that finished in `[$1, $2)`.
const FINISHED: &str = "jobs.finished_at >= $1 AND jobs.finished_at < $2 AND jobs.state IN ('succeeded', 'failed', 'dead', 'cancelled')";

/// The trails of the jobs `$1`, by job and in order.
pub(super) const TRAILS_SQL: &str =
    "SELECT job_id, at, actor LIKE 'rescuer:%' AS by_rescuer, from_state, to_state,
        detail IS NOT NULL AS review_action
     FROM events WHERE job_id = ANY($1) ORDER BY job_id, id";

/// A day's trails and step records are read through their indexes by
/// job. Left to choose, PostgreSQL read the tables whole for a day's
/// thousands of jobs, pricing each index probe as a read from disk: for
/// 3,000 jobs among 300,000, 95–135 ms against 28 ms for the trails and
/// 60 ms against 7 ms for the steps, and every day of a first roll-up paid
/// it. The setting holds for the read's transaction only.
pub(super) const READ_BY_INDEX: &str = "SET LOCAL enable_seqscan = off";

/// The jobs created in `[$1, $2)`, counted by bot and by who made them.
pub(super) const RECEIVED_SQL: &str = "SELECT bot, created_by, COUNT(*)::BIGINT AS n FROM jobs
     WHERE created_at >= $1 AND created_at < $2 GROUP BY bot, created_by";

/// How often a process summarises the creation index's new ranges.
const SUMMARIZE_EVERY_MS: i64 = 60_000;

impl PgStore {
    /// Summarise the block ranges of the creation-time index written since
    /// the last summary, so that a day's read skips the ranges of other
    /// days. Vacuum summarises them too, but where autovacuum is off or
    /// behind (a server set up so, a large import) every unsummarised
    /// range is read whole: on a year of history, 170 ms a day instead of
    /// 1 ms. At most once a minute per process, and cheap when nothing is
    /// new. Only the index's owner may; a runtime user that is not reads
    /// as before, and so does a read-only standby.
    pub(super) async fn summarize_created_ranges(&self) {
        use std::sync::atomic::Ordering;
        let now = now_ms();
        let last = self.summarized_at.load(Ordering::Relaxed);
        if now - last < SUMMARIZE_EVERY_MS
            || self
                .summarized_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        if let Err(e) = sqlx::query("SELECT brin_summarize_new_values('jobs_created'::regclass)")
            .execute(&self.pool)
            .await
        {
            tracing::debug!(error = %e, "cannot summarise the jobs' creation-time ranges; a day's read may read more of the table");
        }
    }
}

/// The step records of the jobs that finished in `[$1, $2)`.
pub(super) fn step_facts_sql() -> String {
    format!(
        "SELECT jobs.bot, s.step_name, s.finished_at - s.started_at AS ms, s.outcome
         FROM jobs JOIN step_runs s ON s.job_id = jobs.id WHERE {FINISHED}"
    )
}

#[async_trait]
impl StatsStore for PgStore {
    async fn finished_facts(&self, from: i64, to: i64) -> Result<Vec<JobFact>> {
        // One snapshot for the jobs and their trails.
        let mut read = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *read)
            .await?;
        let jobs = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, bot, state, created_at, finished_at, last_error FROM jobs WHERE {FINISHED}"
        )))
        .bind(from)
        .bind(to)
        .fetch_all(&mut *read)
        .await?;
        let ids = jobs
            .iter()
            .map(|row| row.try_get("id"))
            .collect::<std::result::Result<Vec<i64>, _>>()?;
        sqlx::query(READ_BY_INDEX).execute(&mut *read).await?;
        let trail = sqlx::query(TRAILS_SQL)
            .bind(ids)
            .fetch_all(&mut *read)
            .await?;
        read.commit().await?;
        rows::job_facts(&jobs, &trail)
    }

    async fn step_facts(&self, from: i64, to: i64) -> Result<Vec<StepFact>> {
        let mut read = self.pool.begin().await?;
        sqlx::query(READ_BY_INDEX).execute(&mut *read).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(step_facts_sql()))
            .bind(from)
            .bind(to)
            .fetch_all(&mut *read)
            .await?;
        read.commit().await?;
        rows.iter().map(rows::step_fact).collect()
    }

    async fn received(&self, from: i64, to: i64) -> Result<Vec<Received>> {
        self.summarize_created_ranges().await;
        let rows = sqlx::query(RECEIVED_SQL)
            .bind(from)
            .bind(to)
            .fetch_all(&self.pool)
            .await?;
        rows::received(&rows)
    }

    async fn live(&self) -> Result<Live> {
        let mut live = Live::default();
        // One query per state, so each uses that state's partial index.
        for state in [JobState::Queued, JobState::Running, JobState::WaitingReview] {
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT bot, COUNT(*)::BIGINT FROM jobs WHERE state = $1 GROUP BY bot",
            )
            .bind(state.as_str())
            .fetch_all(&self.pool)
            .await?;
            live.depth
                .extend(rows.into_iter().map(|(bot, n)| (bot, state, n)));
        }
        live.oldest_review = sqlx::query_as(
            "SELECT bot, MIN(updated_at) FROM jobs WHERE state = 'waiting_review' GROUP BY bot",
        )
        .fetch_all(&self.pool)
        .await?;
        live.busy_workers = sqlx::query_scalar(
            "SELECT DISTINCT worker FROM jobs WHERE state = 'running' AND worker IS NOT NULL ORDER BY worker",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(live)
    }

    async fn first_job_at(&self) -> Result<Option<i64>> {
        // The creation-time index is a block-range one, which cannot give
        // a minimum: the first job by id bounds it from above, and the
        // ranges that may hold anything older are few.
        Ok(sqlx::query_scalar(
            "SELECT MIN(created_at) FROM jobs
             WHERE created_at <= (SELECT created_at FROM jobs ORDER BY id LIMIT 1)",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    async fn daily(&self, from_day: i64, to_day: i64) -> Result<Vec<DailyRow>> {
        let rows = sqlx::query(
            "SELECT day, bot, stats, final FROM daily_stats WHERE day >= $1 AND day < $2 ORDER BY day, bot",
        )
        .bind(from_day)
        .bind(to_day)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::daily).collect()
    }

    async fn last_settled_day(&self) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT MAX(day) FROM daily_stats WHERE final")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn save_day(&self, day: i64, rows: &[DailyRow]) -> Result<()> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        // Processes that roll up the same day take turns.
        sqlx::query("SELECT pg_advisory_xact_lock(1131, $1::INT)")
            .bind(day)
            .execute(&mut *tx)
            .await?;
        let settled: i64 =
            sqlx::query_scalar("SELECT COUNT(*)::BIGINT FROM daily_stats WHERE day = $1 AND final")
                .bind(day)
                .fetch_one(&mut *tx)
                .await?;
        if settled > 0 {
            return Ok(());
        }
        sqlx::query("DELETE FROM daily_stats WHERE day = $1")
            .bind(day)
            .execute(&mut *tx)
            .await?;
        for r in rows {
            sqlx::query(
                "INSERT INTO daily_stats (day, bot, stats, final, updated_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(day)
            .bind(&r.bot)
            .bind(r.stats.to_string())
            .bind(r.settled)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn prune_daily(&self, before_day: i64) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("DELETE FROM daily_stats WHERE day < $1")
            .bind(before_day)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    async fn job_details(
        &self,
        from: i64,
        to: i64,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<JobDetail>> {
        let sql = format!(
            "SELECT {}, input::text AS input, output::text AS output, review::text AS review, errors, lost, max_attempts, max_lost, next_step,
                    worker, lease_expires_at, cancel_requested, created_by, attempt_started_at
             FROM jobs WHERE created_at >= $1 AND created_at < $2 AND id > $3 ORDER BY id LIMIT $4",
            rows::SUMMARY_COLUMNS
        );
        let jobs = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(from)
            .bind(to)
            .bind(after_id)
            .bind(i64::from(limit.max(1)))
            .fetch_all(&self.pool)
            .await?;
        let (Some(first), Some(last)) = (jobs.first(), jobs.last()) else {
            return Ok(Vec::new());
        };
        let (first, last): (i64, i64) = (first.try_get("id")?, last.try_get("id")?);
        let attempts = sqlx::query(
            "SELECT job_id, attempt, worker, started_at, finished_at, outcome, error FROM attempts
             WHERE job_id >= $1 AND job_id <= $2 ORDER BY job_id, attempt",
        )
        .bind(first)
        .bind(last)
        .fetch_all(&self.pool)
        .await?;
        let steps = sqlx::query(
            "SELECT job_id, attempt, step_index, step_name, started_at, finished_at, outcome, error, output::text AS output
             FROM step_runs WHERE job_id >= $1 AND job_id <= $2 ORDER BY job_id, attempt, step_index",
        )
        .bind(first)
        .bind(last)
        .fetch_all(&self.pool)
        .await?;
        let events = sqlx::query(
            "SELECT job_id, at, actor, from_state, to_state, reason, detail::text AS detail FROM events
             WHERE job_id >= $1 AND job_id <= $2 ORDER BY job_id, id",
        )
        .bind(first)
        .bind(last)
        .fetch_all(&self.pool)
        .await?;
        rows::details(&jobs, &attempts, &steps, &events)
    }
}
