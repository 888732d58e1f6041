use super::*;

/// Jobs that finished in `[?1, ?2)`.
const FINISHED: &str = "finished_at >= ?1 AND finished_at < ?2 AND state IN ('succeeded', 'failed', 'dead', 'cancelled')";

#[async_trait]
impl StatsStore for SqliteStore {
    async fn finished_facts(&self, from: i64, to: i64) -> Result<Vec<JobFact>> {
        let mut read = self.reader.begin().await?;
        let jobs = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, bot, state, created_at, finished_at, last_error FROM jobs WHERE {FINISHED}"
        )))
        .bind(from)
        .bind(to)
        .fetch_all(&mut *read)
        .await?;
        let trail = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT job_id, at, actor, from_state, to_state, detail IS NOT NULL AS review_action
             FROM events WHERE job_id IN (SELECT id FROM jobs WHERE {FINISHED}) ORDER BY job_id, id"
        )))
        .bind(from)
        .bind(to)
        .fetch_all(&mut *read)
        .await?;
        read.commit().await?;
        rows::job_facts(&jobs, &trail)
    }

    async fn step_facts(&self, from: i64, to: i64) -> Result<Vec<StepFact>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT j.bot, s.step_name, s.finished_at - s.started_at AS ms, s.outcome
             FROM step_runs s JOIN (SELECT id, bot FROM jobs WHERE {FINISHED}) j ON j.id = s.job_id"
        )))
        .bind(from)
        .bind(to)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(rows::step_fact).collect()
    }

    async fn received(&self, from: i64, to: i64) -> Result<Vec<Received>> {
        let rows = sqlx::query(
            "SELECT bot, created_by, COUNT(*) AS n FROM jobs
             WHERE created_at >= ? AND created_at < ? GROUP BY bot, created_by",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.reader)
        .await?;
        rows::received(&rows)
    }

    async fn live(&self) -> Result<Live> {
        let mut live = Live::default();
        // One query per state, so each uses that state's partial index.
        for state in [JobState::Queued, JobState::Running, JobState::WaitingReview] {
            let rows: Vec<(String, i64)> =
                sqlx::query_as("SELECT bot, COUNT(*) FROM jobs WHERE state = ? GROUP BY bot")
                    .bind(state.as_str())
                    .fetch_all(&self.reader)
                    .await?;
            live.depth
                .extend(rows.into_iter().map(|(bot, n)| (bot, state, n)));
        }
        live.oldest_review = sqlx::query_as(
            "SELECT bot, MIN(updated_at) FROM jobs WHERE state = 'waiting_review' GROUP BY bot",
        )
        .fetch_all(&self.reader)
        .await?;
        live.busy_workers = sqlx::query_scalar(
            "SELECT DISTINCT worker FROM jobs WHERE state = 'running' AND worker IS NOT NULL ORDER BY worker",
        )
        .fetch_all(&self.reader)
        .await?;
        Ok(live)
    }

    async fn first_job_at(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT MIN(created_at) FROM jobs")
            .fetch_one(&self.reader)
            .await?)
    }

    async fn daily(&self, from_day: i64, to_day: i64) -> Result<Vec<DailyRow>> {
        let rows = sqlx::query(
            "SELECT day, bot, stats, final FROM daily_stats WHERE day >= ? AND day < ? ORDER BY day, bot",
        )
        .bind(from_day)
        .bind(to_day)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(rows::daily).collect()
    }

    async fn last_settled_day(&self) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT MAX(day) FROM daily_stats WHERE final = 1")
                .fetch_one(&self.reader)
                .await?,
        )
    }

    async fn save_day(&self, day: i64, rows: &[DailyRow]) -> Result<()> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let settled: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM daily_stats WHERE day = ? AND final = 1")
                .bind(day)
                .fetch_one(&mut *tx)
                .await?;
        if settled > 0 {
            return Ok(());
        }
        sqlx::query("DELETE FROM daily_stats WHERE day = ?")
            .bind(day)
            .execute(&mut *tx)
            .await?;
        for r in rows {
            sqlx::query(
                "INSERT INTO daily_stats (day, bot, stats, final, updated_at) VALUES (?, ?, ?, ?, ?)",
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
        let mut tx = self.write().await?;
        let n = sqlx::query("DELETE FROM daily_stats WHERE day < ?")
            .bind(before_day)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n)
    }
}
