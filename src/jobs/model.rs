//! What the job database holds and hands out: states, jobs to enqueue,
//! claims, step records, completions, and what `clerk runs` shows.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde_json::Value;

/// The states of a job. Every change between them is written as an event.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    WaitingReview,
    Succeeded,
    Failed,
    Dead,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        JobState::Queued,
        JobState::Running,
        JobState::WaitingReview,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Dead,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::WaitingReview => "waiting_review",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    /// A finished job changes no more unless a person retries it.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Dead | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<_> = JobState::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown state `{s}`; expected one of {}", all.join(", "))
            })
    }
}

/// A job to put in the queue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub bot: String,
    pub input: Value,
    /// Unique per bot: enqueueing a key that exists returns the existing job.
    pub idempotency_key: Option<String>,
    pub max_attempts: u32,
    pub max_lost: u32,
    /// Not before this time (Unix ms); `None` means now.
    pub run_after: Option<i64>,
    /// Who asked for it, for the audit trail (`cli:alice`, `scheduler:host`).
    pub created_by: String,
    /// Recorded as failed at once with this reason, never run: intake that
    /// found nothing a step could work on (a message with no document)
    /// is seen in the runs and told to the bot's owners, not lost.
    pub refused: Option<String>,
}

/// Which documents taken by a bot's triggers count as the same, so each
/// becomes one job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dedupe {
    /// The same document in the same message, or dropped again into the
    /// same folder (the default).
    #[default]
    Message,
    /// The same content, whichever trigger brought it: a document mailed
    /// and dropped into a folder, or mailed twice, is one job.
    Content,
}

impl Dedupe {
    pub fn parse(text: &str) -> Option<Dedupe> {
        match text {
            "message" => Some(Dedupe::Message),
            "content" => Some(Dedupe::Content),
            _ => None,
        }
    }

    /// The idempotency key of a document with this SHA-256 taken through
    /// `channel` (`mail:<trigger>:<message>`, `drop:<trigger>`).
    pub fn key(self, channel: &str, sha256: &str) -> String {
        match self {
            Dedupe::Message => format!("{channel}:{sha256}"),
            Dedupe::Content => format!("content:{sha256}"),
        }
    }
}

/// What `enqueue` did with one [`NewJob`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Enqueued {
    pub id: i64,
    /// False when the idempotency key already existed.
    pub created: bool,
    pub state: JobState,
}

/// A document kept in the job database: what it is, beside its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRow {
    /// SHA-256 of the content, lowercase hex: its name in every store.
    pub sha256: String,
    /// The name it came with (an attachment's, a dropped file's).
    pub name: String,
    pub media_type: String,
    pub size: u64,
}

/// A running worker as it announces itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerRow {
    pub id: String,
    /// The step kinds it runs.
    pub kinds: Vec<String>,
    /// The bots whose jobs it claims.
    pub bots: Vec<String>,
    /// When it last said so (Unix ms).
    pub seen_at: i64,
}

/// A kept document as garbage collection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptDocument {
    pub sha256: String,
    pub size: u64,
    /// When it was last put (Unix ms).
    pub touched_at: i64,
}

/// A bot a worker is able to run, with its concurrency limit.
#[derive(Debug, Clone)]
pub struct BotClaim {
    pub name: String,
    pub concurrency: Option<u32>,
}

/// A job a worker has claimed and holds a lease on.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: i64,
    pub bot: String,
    pub input: Value,
    /// Number of this attempt, from 1; fences every later write.
    pub attempt: i64,
    /// Earlier attempts that ended in a transient error.
    pub errors: i64,
    pub lost: i64,
    pub max_attempts: i64,
    /// First step that has not succeeded yet; a retry resumes here.
    pub next_step: i64,
    pub run_after: i64,
    pub created_at: i64,
}

/// How a step or an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    /// Transient error: retried later.
    Error,
    /// Business error: not retried.
    Failed,
    WaitingReview,
    Cancelled,
    /// Stopped by a worker shutdown; does not count against the attempts.
    Interrupted,
    /// The worker vanished and its lease expired.
    Lost,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Succeeded,
        Outcome::Error,
        Outcome::Failed,
        Outcome::WaitingReview,
        Outcome::Cancelled,
        Outcome::Interrupted,
        Outcome::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Error => "error",
            Outcome::Failed => "failed",
            Outcome::WaitingReview => "waiting_review",
            Outcome::Cancelled => "cancelled",
            Outcome::Interrupted => "interrupted",
            Outcome::Lost => "lost",
        }
    }
}

impl FromStr for Outcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| format!("unknown outcome `{s}`"))
    }
}

/// One step's run, as stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StepRecord {
    pub index: i64,
    pub name: String,
    pub started_at: i64,
    pub finished_at: i64,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub output: Option<Value>,
}

/// A step that succeeded and must be durable before the next one starts.
#[derive(Debug, Clone)]
pub struct StepSave {
    pub job_id: i64,
    pub attempt: i64,
    pub step: StepRecord,
}

/// The end of one attempt, decided by the worker and applied by the store
/// only if the worker still holds the job (same worker, same attempt).
#[derive(Debug, Clone)]
pub struct Completion {
    pub job_id: i64,
    pub attempt: i64,
    pub state: JobState,
    pub attempt_outcome: Outcome,
    /// For `queued`: when the next attempt may start.
    pub run_after: i64,
    /// The job's count of transient errors after this attempt.
    pub errors: i64,
    pub next_step: i64,
    pub error: Option<String>,
    pub output: Option<Value>,
    /// For `waiting_review`: why a person must look.
    pub review: Option<Value>,
    /// Why, in words, for the audit trail.
    pub reason: String,
    /// Step runs of this attempt not yet saved.
    pub steps: Vec<StepRecord>,
}

/// What a heartbeat learns about the jobs a worker holds.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    /// Held jobs someone asked to cancel.
    pub cancel: Vec<i64>,
    /// Held jobs the worker no longer owns (its lease expired and the job was
    /// rescued); their results would be discarded.
    pub gone: Vec<i64>,
}

/// A running job whose lease had expired.
#[derive(Debug, Clone, Serialize)]
pub struct Rescued {
    pub id: i64,
    pub bot: String,
    pub worker: Option<String>,
    pub state: JobState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelOutcome {
    /// It was queued or waiting for review and is cancelled now.
    Cancelled,
    /// It is running; its worker stops it at the next heartbeat.
    Requested,
}

/// Filter for listing jobs.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub bot: Option<String>,
    pub state: Option<JobState>,
    pub limit: u32,
    /// Only jobs with an id below this (for paging).
    pub before_id: Option<i64>,
    /// Only jobs created at or after this time (Unix ms).
    pub created_from: Option<i64>,
    /// Only jobs created before this time (Unix ms).
    pub created_to: Option<i64>,
    /// Only jobs whose input or last error holds this text.
    pub text: Option<String>,
    /// Only jobs that finished at or after this time (Unix ms).
    pub finished_from: Option<i64>,
    /// Only jobs that finished before this time (Unix ms).
    pub finished_to: Option<i64>,
    /// Also mailbox polls (`<bot>:<trigger>`): they are intake machinery,
    /// a run every minute or so, and are left out unless asked for or
    /// their bot is named.
    pub polls: bool,
}

/// One line of `clerk runs list`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobSummary {
    pub id: i64,
    pub bot: String,
    pub state: JobState,
    pub attempt: i64,
    pub idempotency_key: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub run_after: i64,
    pub last_error: Option<String>,
}

/// Everything known about one job: `clerk runs show`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobDetail {
    #[serde(flatten)]
    pub summary: JobSummary,
    pub input: Value,
    pub output: Option<Value>,
    pub review: Option<Value>,
    pub errors: i64,
    pub lost: i64,
    pub max_attempts: i64,
    pub max_lost: i64,
    pub next_step: i64,
    pub worker: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub cancel_requested: bool,
    pub created_by: String,
    pub attempts: Vec<AttemptRecord>,
    pub events: Vec<EventRecord>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AttemptRecord {
    pub attempt: i64,
    pub worker: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub outcome: Option<String>,
    pub error: Option<String>,
    pub steps: Vec<StepRecord>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventRecord {
    pub at: i64,
    pub actor: String,
    pub from_state: Option<String>,
    pub to_state: String,
    pub reason: String,
    /// What a review action changed (`field`, `old`, `new`, `note`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
}

/// What a notice tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    Failed,
    Dead,
    WaitingReview,
    /// A review past its bot's `review_within`.
    ReviewOverdue,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 4] = [
        NoticeKind::Failed,
        NoticeKind::Dead,
        NoticeKind::WaitingReview,
        NoticeKind::ReviewOverdue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Failed => "failed",
            NoticeKind::Dead => "dead",
            NoticeKind::WaitingReview => "waiting_review",
            NoticeKind::ReviewOverdue => "review_overdue",
        }
    }
}

impl std::str::FromStr for NoticeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        NoticeKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown notice kind `{s}`"))
    }
}

/// Something about a job that a person hears of: a failed or dead job
/// (the bot's owners), one waiting for review (its reviewers), or a review
/// past its deadline (both). Written by the database in the transaction
/// that changed the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    pub id: i64,
    pub job_id: i64,
    pub bot: String,
    pub kind: NoticeKind,
    /// The reason of the change, as in the job's audit trail.
    pub reason: String,
    pub at: i64,
    /// Earlier attempts to send it that failed.
    pub tries: i64,
}
