//! What the workers' roster says of queued jobs: a job whose bot no
//! running worker serves waits for one that will, and people are told so
//! (`clerk runs list`, the runs page) instead of seeing it stuck.

use std::collections::HashMap;
use std::time::Duration;

use super::model::{JobState, JobSummary, WorkerRow};
use super::{Result, RosterStore, now_ms};

/// How often a worker says it is still there.
pub const WORKER_ANNOUNCE_EVERY: Duration = Duration::from_secs(10);

/// A worker not heard from for this long is taken for gone.
pub const WORKER_GONE_AFTER: Duration = Duration::from_secs(45);

/// Why each queued job of `jobs` waits with no worker to take it, by job
/// id, as the roster says now.
pub async fn unserved(db: &dyn RosterStore, jobs: &[JobSummary]) -> Result<HashMap<i64, String>> {
    if !jobs.iter().any(|j| j.state == JobState::Queued) {
        return Ok(HashMap::new());
    }
    let since = now_ms() - WORKER_GONE_AFTER.as_millis() as i64;
    Ok(unserved_among(&db.workers(since).await?, jobs))
}

/// [`unserved`] with `workers` those heard from within
/// [`WORKER_GONE_AFTER`].
fn unserved_among(workers: &[WorkerRow], jobs: &[JobSummary]) -> HashMap<i64, String> {
    let mut why = HashMap::new();
    for job in jobs.iter().filter(|j| j.state == JobState::Queued) {
        if workers.is_empty() {
            why.insert(job.id, "no worker is running".to_string());
        } else if !workers.iter().any(|w| w.bots.contains(&job.bot)) {
            let mut kinds: Vec<&str> = workers
                .iter()
                .flat_map(|w| w.kinds.iter().map(String::as_str))
                .collect();
            kinds.sort_unstable();
            kinds.dedup();
            why.insert(
                job.id,
                format!(
                    "no running worker serves this bot: the running ones run {} steps",
                    kinds.join(", ")
                ),
            );
        }
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: i64, bot: &str, state: JobState) -> JobSummary {
        JobSummary {
            id,
            bot: bot.into(),
            state,
            attempt: 0,
            idempotency_key: None,
            created_at: 0,
            started_at: None,
            finished_at: None,
            run_after: 0,
            last_error: None,
        }
    }

    fn worker(kinds: &[&str], bots: &[&str]) -> WorkerRow {
        WorkerRow {
            id: "w".into(),
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
            bots: bots.iter().map(|b| b.to_string()).collect(),
            seen_at: 0,
        }
    }

    #[test]
    fn only_queued_jobs_no_worker_serves_are_named() {
        let jobs = [
            job(1, "book", JobState::Queued),
            job(2, "digest", JobState::Queued),
            job(3, "book", JobState::Failed),
        ];
        let none = unserved_among(&[], &jobs);
        assert_eq!(none.len(), 2);
        assert_eq!(none[&1], "no worker is running");
        let workers = [
            worker(&["email", "command"], &["digest"]),
            worker(&["command"], &["digest"]),
        ];
        let why = unserved_among(&workers, &jobs);
        assert_eq!(why.len(), 1, "{why:?}");
        assert_eq!(
            why[&1],
            "no running worker serves this bot: the running ones run command, email steps"
        );
        assert!(unserved_among(&[worker(&["browser"], &["book", "digest"])], &jobs).is_empty());
    }
}
