//! What the figures of operations are made of, read from the job database:
//! one finished job as a fact (how it ended, how long it spent where), one
//! step run, the documents that came in, and the queue as it is now.
//!
//! A job's fact is worked out from its audit trail alone, the same way for
//! both back ends: every state change is an event with its time.

use serde::{Deserialize, Serialize};

use super::model::{BotClaim, JobState};

/// How a finished job ended, as process owners count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// Succeeded without a person: no review, no retry by hand.
    StraightThrough,
    /// Succeeded after a person reviewed it or retried it.
    Touched,
    /// A business error: not retried.
    Business,
    /// Transient errors until its attempts ran out.
    TransientExhausted,
    /// Its worker's lease expired too often.
    Dead,
    /// A reviewer rejected it.
    Rejected,
    Cancelled,
}

impl Ending {
    pub const ALL: [Ending; 7] = [
        Ending::StraightThrough,
        Ending::Touched,
        Ending::Business,
        Ending::TransientExhausted,
        Ending::Dead,
        Ending::Rejected,
        Ending::Cancelled,
    ];

    /// The endings that are exceptions: a person must find out why.
    pub const EXCEPTIONS: [Ending; 4] = [
        Ending::Business,
        Ending::TransientExhausted,
        Ending::Dead,
        Ending::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Ending::StraightThrough => "straight_through",
            Ending::Touched => "touched",
            Ending::Business => "business",
            Ending::TransientExhausted => "transient_exhausted",
            Ending::Dead => "dead",
            Ending::Rejected => "rejected",
            Ending::Cancelled => "cancelled",
        }
    }

    /// In words, for pages and reports.
    pub fn label(self) -> &'static str {
        match self {
            Ending::StraightThrough => "straight through",
            Ending::Touched => "succeeded after a person",
            Ending::Business => "business error",
            Ending::TransientExhausted => "retries exhausted",
            Ending::Dead => "lost (dead)",
            Ending::Rejected => "rejected in review",
            Ending::Cancelled => "cancelled",
        }
    }

    pub fn is_success(self) -> bool {
        matches!(self, Ending::StraightThrough | Ending::Touched)
    }

    /// The job states that come to each ending (the job states of its
    /// runs, for a link from a figure to the runs behind it).
    pub fn state(self) -> JobState {
        match self {
            Ending::StraightThrough | Ending::Touched => JobState::Succeeded,
            Ending::Business | Ending::Rejected => JobState::Failed,
            Ending::TransientExhausted | Ending::Dead => JobState::Dead,
            Ending::Cancelled => JobState::Cancelled,
        }
    }
}

impl std::str::FromStr for Ending {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ending::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| format!("unknown ending `{s}`"))
    }
}

/// One finished job, as the figures need it. Times are Unix ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFact {
    pub id: i64,
    pub bot: String,
    pub created_at: i64,
    pub finished_at: i64,
    pub ending: Ending,
    /// Time spent queued (waiting for a worker, or for a retry's backoff).
    pub queue_ms: i64,
    /// Time spent running on a worker.
    pub run_ms: i64,
    /// Time spent waiting for a reviewer.
    pub review_ms: i64,
    /// Times the job went to review.
    pub reviews: i64,
    /// Review actions recorded (claims, corrections, approvals, …).
    pub review_actions: i64,
    /// Attempts lost with their worker and rescued.
    pub rescues: i64,
    /// Why it ended badly, if it did.
    pub error: Option<String>,
}

impl JobFact {
    /// From intake to the end.
    pub fn cycle_ms(&self) -> i64 {
        (self.finished_at - self.created_at).max(0)
    }
}

/// One event of a job's audit trail, as a fact needs it.
#[derive(Debug, Clone)]
pub struct TrailEvent {
    pub at: i64,
    /// Whether the rescuer of lost leases made it (`rescuer:…`).
    pub by_rescuer: bool,
    pub from: Option<JobState>,
    pub to: JobState,
    /// Whether it carries a review action's details.
    pub review_action: bool,
}

/// A finished job's row, as a fact needs it.
#[derive(Debug, Clone)]
pub struct FinishedRow {
    pub id: i64,
    pub bot: String,
    pub state: JobState,
    pub created_at: i64,
    pub finished_at: i64,
    pub last_error: Option<String>,
}

/// Work out a finished job's fact from its row and its audit trail, oldest
/// event first.
pub fn job_fact(row: FinishedRow, trail: &[TrailEvent]) -> JobFact {
    let mut fact = JobFact {
        id: row.id,
        bot: row.bot,
        created_at: row.created_at,
        finished_at: row.finished_at,
        ending: Ending::Cancelled,
        queue_ms: 0,
        run_ms: 0,
        review_ms: 0,
        reviews: 0,
        review_actions: 0,
        rescues: 0,
        error: None,
    };
    let mut state = JobState::Queued;
    let mut since = row.created_at;
    let mut by_hand = false;
    let mut last_into_end: Option<&TrailEvent> = None;
    for e in trail {
        if e.review_action {
            fact.review_actions += 1;
        }
        if e.from == Some(e.to) {
            continue;
        }
        let spent = (e.at - since).max(0);
        match state {
            JobState::Queued => fact.queue_ms += spent,
            JobState::Running => fact.run_ms += spent,
            JobState::WaitingReview => fact.review_ms += spent,
            _ => {}
        }
        if e.to == JobState::WaitingReview {
            fact.reviews += 1;
        }
        if e.from.is_some_and(JobState::is_finished) && e.to == JobState::Queued {
            by_hand = true;
        }
        if e.from == Some(JobState::Running) && e.by_rescuer {
            fact.rescues += 1;
        }
        if e.to.is_finished() {
            last_into_end = Some(e);
        }
        state = e.to;
        since = e.at;
    }
    fact.ending = match row.state {
        JobState::Succeeded if fact.reviews > 0 || by_hand => Ending::Touched,
        JobState::Succeeded => Ending::StraightThrough,
        JobState::Failed if last_into_end.and_then(|e| e.from) == Some(JobState::WaitingReview) => {
            Ending::Rejected
        }
        JobState::Failed => Ending::Business,
        JobState::Dead if last_into_end.is_some_and(|e| e.by_rescuer) => Ending::Dead,
        JobState::Dead => Ending::TransientExhausted,
        _ => Ending::Cancelled,
    };
    if !fact.ending.is_success() && fact.ending != Ending::Cancelled {
        fact.error = row.last_error;
    }
    fact
}

/// One run of one step of a job that finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFact {
    pub bot: String,
    pub step: String,
    pub ms: i64,
    pub succeeded: bool,
}

/// How many jobs of a bot came in from one kind of source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub bot: String,
    /// `mailbox`, `folder`, `schedule` or `manual` (a person, the API).
    pub source: String,
    pub count: i64,
}

/// The kind of source a job's `created_by` names.
pub fn source_of(created_by: &str) -> &'static str {
    match created_by.split(':').next().unwrap_or("") {
        "mailbox" => "mailbox",
        "folder" => "folder",
        "scheduler" => "schedule",
        _ => "manual",
    }
}

/// The queue as it is now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    /// Jobs not finished, per bot and state.
    pub depth: Vec<(String, JobState, i64)>,
    /// Per bot, since when its oldest job waiting for review waits.
    pub oldest_review: Vec<(String, i64)>,
    /// Workers holding a running job.
    pub busy_workers: Vec<String>,
}

/// A day's roll-up as stored: the stats are the roll-up's own JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct DailyRow {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub bot: String,
    pub stats: serde_json::Value,
    /// No job of the day can change any more: it is not worked out again.
    pub settled: bool,
}

/// A bot an operator paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Pause {
    pub bot: String,
    pub paused_by: String,
    pub paused_at: i64,
    pub reason: String,
}

/// Something a person did to a bot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BotEvent {
    pub bot: String,
    pub at: i64,
    pub actor: String,
    /// `paused`, `resumed`, `ran`.
    pub action: String,
    pub reason: String,
}

/// Whether `job_bot` belongs to `bot`: itself, or one of its mailbox
/// polls (`<bot>:<trigger>`).
pub fn belongs_to(job_bot: &str, bot: &str) -> bool {
    job_bot == bot
        || job_bot
            .strip_prefix(bot)
            .is_some_and(|rest| rest.starts_with(':'))
}

/// The bots of a claim that are not paused (nor their bot, for a poll).
/// A pause read just before a claim is good enough: it stops new work,
/// it does not fence work that started.
pub(super) fn unpaused(bots: &[BotClaim], paused: &[String]) -> Vec<BotClaim> {
    bots.iter()
        .filter(|b| !paused.iter().any(|p| belongs_to(&b.name, p)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(at: i64, actor: &str, from: Option<JobState>, to: JobState) -> TrailEvent {
        TrailEvent {
            at,
            by_rescuer: actor.starts_with("rescuer:"),
            from,
            to,
            review_action: false,
        }
    }

    fn row(state: JobState, finished_at: i64) -> FinishedRow {
        FinishedRow {
            id: 1,
            bot: "b".into(),
            state,
            created_at: 0,
            finished_at,
            last_error: Some("boom".into()),
        }
    }

    use JobState::*;

    #[test]
    fn a_reviewed_job_splits_its_cycle_into_queue_run_and_review() {
        let trail = [
            ev(0, "folder:x", None, Queued),
            ev(1_000, "w", Some(Queued), Running),
            ev(4_000, "w", Some(Running), WaitingReview),
            TrailEvent {
                review_action: true,
                ..ev(60_000, "ann", Some(WaitingReview), WaitingReview)
            },
            ev(100_000, "ann", Some(WaitingReview), Queued),
            ev(102_000, "w", Some(Queued), Running),
            ev(105_000, "w", Some(Running), Succeeded),
        ];
        let f = job_fact(row(Succeeded, 105_000), &trail);
        assert_eq!(f.ending, Ending::Touched);
        assert_eq!((f.queue_ms, f.run_ms, f.review_ms), (3_000, 6_000, 96_000));
        assert_eq!(f.queue_ms + f.run_ms + f.review_ms, f.cycle_ms());
        assert_eq!((f.reviews, f.review_actions), (1, 1));
        assert_eq!(f.error, None);
    }

    #[test]
    fn endings_are_told_apart_by_the_trail() {
        let straight = [
            ev(0, "cli", None, Queued),
            ev(5, "w", Some(Queued), Running),
            ev(9, "w", Some(Running), Succeeded),
        ];
        assert_eq!(
            job_fact(row(Succeeded, 9), &straight).ending,
            Ending::StraightThrough
        );
        let rejected = [
            ev(0, "cli", None, Queued),
            ev(5, "w", Some(Queued), Running),
            ev(9, "w", Some(Running), WaitingReview),
            ev(20, "ann", Some(WaitingReview), Failed),
        ];
        let f = job_fact(row(Failed, 20), &rejected);
        assert_eq!(
            (f.ending, f.error.as_deref()),
            (Ending::Rejected, Some("boom"))
        );
        let business = [
            ev(0, "cli", None, Queued),
            ev(5, "w", Some(Queued), Running),
            ev(9, "w", Some(Running), Failed),
        ];
        assert_eq!(job_fact(row(Failed, 9), &business).ending, Ending::Business);
        let lost = [
            ev(0, "cli", None, Queued),
            ev(5, "w", Some(Queued), Running),
            ev(9, "rescuer:n", Some(Running), Dead),
        ];
        let f = job_fact(row(Dead, 9), &lost);
        assert_eq!((f.ending, f.rescues), (Ending::Dead, 1));
        let exhausted = [
            ev(0, "cli", None, Queued),
            ev(5, "w", Some(Queued), Running),
            ev(9, "w", Some(Running), Dead),
        ];
        assert_eq!(
            job_fact(row(Dead, 9), &exhausted).ending,
            Ending::TransientExhausted
        );
        // Failed, retried by hand, then booked: a person touched it.
        let retried = [
            ev(0, "cli", None, Queued),
            ev(5, "w", Some(Queued), Running),
            ev(9, "w", Some(Running), Failed),
            ev(50, "cli:op", Some(Failed), Queued),
            ev(55, "w", Some(Queued), Running),
            ev(60, "w", Some(Running), Succeeded),
        ];
        let f = job_fact(row(Succeeded, 60), &retried);
        assert_eq!(f.ending, Ending::Touched);
        // The time it lay failed counts in no part.
        assert_eq!((f.queue_ms, f.run_ms), (10, 9));
    }

    #[test]
    fn poll_bots_belong_to_their_bot() {
        assert!(belongs_to("invoices", "invoices"));
        assert!(belongs_to("invoices:mailbox:a@b/INBOX", "invoices"));
        assert!(!belongs_to("invoices2", "invoices"));
        assert_eq!(source_of("mailbox:invoices:m"), "mailbox");
        assert_eq!(source_of("scheduler:host"), "schedule");
        assert_eq!(source_of("ann"), "manual");
    }
}
