//! The figures of a period, per bot and overall: what the dashboard shows,
//! `clerk stats` prints and the report is made of.

use std::collections::BTreeMap;

use serde::Serialize;

use super::day::{DayStats, FailureReason};
use super::histogram::Histogram;
use super::rollup::{DAY_MS, Day};
use crate::jobs::{Ending, JobState, Live};

/// Failure reasons a period's figures list.
const TOP_REASONS: usize = 10;

/// Percentiles of durations, in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Durations {
    pub count: u64,
    pub p50_seconds: Option<f64>,
    pub p95_seconds: Option<f64>,
    pub mean_seconds: Option<f64>,
}

impl Durations {
    fn of(h: &Histogram) -> Durations {
        let s = |ms: Option<i64>| ms.map(|ms| ms as f64 / 1000.0);
        Durations {
            count: h.count,
            p50_seconds: s(h.quantile(0.5)),
            p95_seconds: s(h.quantile(0.95)),
            mean_seconds: s(h.mean()),
        }
    }
}

/// One day of a period.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DayPoint {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    pub documents_in: i64,
    pub succeeded: i64,
    pub exceptions: i64,
}

/// A step's runs in a period.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StepFigure {
    pub step: String,
    pub runs: i64,
    pub failed: i64,
    pub duration: Durations,
}

/// A failure reason of a period, with example jobs.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Reason {
    pub message: String,
    /// How the jobs ended (`business`, `transient_exhausted`, …).
    pub ending: Option<String>,
    pub count: i64,
    pub examples: Vec<i64>,
}

/// The figures of one bot, or of all, in a period.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Figures {
    /// Jobs created in the period.
    pub documents_in: i64,
    /// Jobs finished in the period, cancelled ones apart.
    pub finished: i64,
    pub succeeded: i64,
    /// Succeeded with no person involved.
    pub straight_through: i64,
    /// Straight through, out of finished.
    pub straight_through_rate: Option<f64>,
    /// Exceptions out of finished.
    pub exception_rate: Option<f64>,
    /// Jobs finished, by how they ended (every ending, zeros included).
    pub endings: BTreeMap<String, i64>,
    pub cancelled: i64,
    /// Intake to done, of jobs that succeeded.
    pub cycle: Durations,
    /// Its parts: waiting for a worker (and retries' backoff), running,
    /// and (of jobs that went to review) waiting for a reviewer.
    pub queue_wait: Durations,
    pub run: Durations,
    pub review_wait: Durations,
    /// Finished jobs that went to review, and the review actions on them.
    pub reviewed: i64,
    pub review_actions: i64,
    /// Attempts lost with their worker and rescued.
    pub rescues: i64,
    /// Documents in, succeeded and exceptions per day, oldest first.
    pub per_day: Vec<DayPoint>,
    pub top_failures: Vec<Reason>,
    pub steps: Vec<StepFigure>,
}

fn rate(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

pub fn date_of_day(day: i64) -> String {
    chrono::DateTime::from_timestamp_millis(day * DAY_MS)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| day.to_string())
}

impl Figures {
    /// The figures of the bots `wanted` picks, over the days given (every
    /// day of the period, so days with no work show as zeros).
    pub fn of(
        days: &BTreeMap<i64, Day>,
        from_day: i64,
        to_day: i64,
        wanted: impl Fn(&str) -> bool,
    ) -> Figures {
        let mut total = DayStats::default();
        let mut per_day = Vec::new();
        for day in from_day..to_day {
            let mut that = DayStats::default();
            if let Some(bots) = days.get(&day) {
                for (bot, stats) in bots {
                    if wanted(bot) {
                        that.merge(stats);
                    }
                }
            }
            per_day.push(DayPoint {
                date: date_of_day(day),
                documents_in: that.documents_in(),
                succeeded: that.succeeded(),
                exceptions: that.exceptions(),
            });
            total.merge(&that);
        }
        Figures::from_total(&total, per_day)
    }

    fn from_total(t: &DayStats, per_day: Vec<DayPoint>) -> Figures {
        let finished = t.decided();
        let mut failures: Vec<&FailureReason> = t.failures.iter().collect();
        failures.sort_by(|a, b| b.count.cmp(&a.count).then(a.key.cmp(&b.key)));
        Figures {
            documents_in: t.documents_in(),
            finished,
            succeeded: t.succeeded(),
            straight_through: t.ended(Ending::StraightThrough),
            straight_through_rate: rate(t.ended(Ending::StraightThrough), finished),
            exception_rate: rate(t.exceptions(), finished),
            endings: Ending::ALL
                .iter()
                .map(|e| (e.as_str().to_string(), t.ended(*e)))
                .collect(),
            cancelled: t.ended(Ending::Cancelled),
            cycle: Durations::of(&t.cycle),
            queue_wait: Durations::of(&t.queue),
            run: Durations::of(&t.run),
            review_wait: Durations::of(&t.review),
            reviewed: t.reviewed,
            review_actions: t.review_actions,
            rescues: t.rescues,
            per_day,
            top_failures: failures
                .into_iter()
                .take(TOP_REASONS)
                .map(|r| Reason {
                    message: r.message.clone(),
                    ending: r.ending.map(|e| e.as_str().to_string()),
                    count: r.count,
                    examples: r.examples.clone(),
                })
                .collect(),
            steps: t
                .steps
                .iter()
                .map(|(name, s)| StepFigure {
                    step: name.clone(),
                    runs: s.runs,
                    failed: s.failed,
                    duration: Durations::of(&s.duration),
                })
                .collect(),
        }
    }

    /// The rate of one exception kind, out of finished.
    pub fn rate_of(&self, e: Ending) -> Option<f64> {
        rate(
            self.endings.get(e.as_str()).copied().unwrap_or(0),
            self.finished,
        )
    }
}

/// The queue now, for one bot or all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Now {
    pub queued: i64,
    pub running: i64,
    /// Jobs waiting for review.
    pub review_backlog: i64,
    /// Age of the oldest job waiting for review.
    pub oldest_review_age_seconds: Option<f64>,
}

impl Now {
    pub fn of(live: &Live, now: i64, wanted: impl Fn(&str) -> bool) -> Now {
        let mut out = Now::default();
        for (bot, state, n) in &live.depth {
            if !wanted(bot) {
                continue;
            }
            match state {
                JobState::Queued => out.queued += n,
                JobState::Running => out.running += n,
                JobState::WaitingReview => out.review_backlog += n,
                _ => {}
            }
        }
        out.oldest_review_age_seconds = live
            .oldest_review
            .iter()
            .filter(|(bot, _)| wanted(bot))
            .map(|(_, since)| since)
            .min()
            .map(|since| (now - since).max(0) as f64 / 1000.0);
        out
    }
}
