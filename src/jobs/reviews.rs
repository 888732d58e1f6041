//! Review records: the queue of jobs waiting for a person, who holds each,
//! the values corrected so far, and how a review ends.

use serde::Serialize;
use serde_json::Value;

/// Which reviews to list.
#[derive(Debug, Clone, Default)]
pub struct ReviewFilter {
    pub bot: Option<String>,
    /// Only reviews with a reason containing this text.
    pub reason: Option<String>,
    /// Only reviews one of these may work: reviews that name none, or name
    /// one of them in `review_by`. `None`: every review.
    pub workable_by: Option<Vec<String>>,
    /// Only reviews past their deadline (at this time, Unix ms).
    pub overdue_at: Option<i64>,
    pub limit: u32,
}

/// One line of the review queue.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReviewItem {
    pub job_id: i64,
    pub bot: String,
    /// The document's name, from the job's input, when it has one.
    pub document: Option<String>,
    /// The step that asked for review.
    pub step: String,
    /// Why a person must look: the step's own reasons.
    pub reasons: Vec<String>,
    /// When the job started waiting (Unix ms).
    pub waiting_since: i64,
    pub claimed_by: Option<String>,
    /// Until when the claim holds (Unix ms).
    pub claimed_until: Option<i64>,
    /// Raised by every save; a save must name the version it read.
    pub version: i64,
    /// The last note (a postponement's reason).
    pub note: Option<String>,
    /// Who may work it: roles or groups of users; empty for anyone who may
    /// review.
    pub review_by: Vec<String>,
    /// When it is overdue (Unix ms), if its bot sets `review_within`.
    pub due_at: Option<i64>,
}

/// One review in full: what the step read, what the reviewer has changed.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Review {
    #[serde(flatten)]
    pub item: ReviewItem,
    pub input: Value,
    /// Index of the step that asked for review.
    pub step_index: i64,
    /// The step's output as the step wrote it.
    pub original: Value,
    /// The output the review works from: the original, or the document
    /// read again with the template the reviewer picked.
    pub extraction: Value,
    /// The template the reviewer picked, if any.
    pub template: Option<String>,
    /// Field → corrected value, as the reviewer saved them.
    pub corrections: serde_json::Map<String, Value>,
}

/// One entry of the audit trail for a review action that leaves the job
/// waiting: what it was in words, and its details.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewEvent {
    pub reason: String,
    /// `field`, `old`, `new`, `note`, … as JSON.
    pub detail: Value,
}

/// What a save changes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReviewUpdate {
    /// The full set of corrections after this save.
    pub corrections: serde_json::Map<String, Value>,
    /// A template picked (`Some(Some)`), dropped (`Some(None)`), or left.
    pub template: Option<Option<String>>,
    /// The extraction with the picked template, when it changed.
    pub extraction: Option<Value>,
    pub events: Vec<ReviewEvent>,
}

/// How a review ends, or is put off.
#[derive(Debug, Clone, PartialEq)]
pub enum ReviewOutcome {
    /// The reviewed output replaces the step's; the job goes on at its next
    /// step.
    Approve { output: Value, event: ReviewEvent },
    /// The job fails with the reason (its owners hear of it).
    Reject { reason: String, event: ReviewEvent },
    /// The job keeps waiting, with a note; the claim is let go.
    Postpone { note: String, event: ReviewEvent },
}

/// An approval as the audit trail keeps it: which job, when, by whom,
/// with what (`corrections`, `note`, `overridden`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Approval {
    pub job_id: i64,
    pub at: i64,
    pub by: String,
    pub detail: Value,
}
