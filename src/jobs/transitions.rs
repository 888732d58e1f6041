//! The rules of a job's states, decided once for both back ends: which
//! changes a person may ask for in which state, and what becomes of a job
//! whose worker vanished. The back ends only carry out what is decided here,
//! each in its own SQL, and write the reason into the audit trail.

use super::model::{CancelOutcome, JobState};
use super::{JobsError, Result};

/// A change of one job's state and the reason the audit trail records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: JobState,
    pub to: JobState,
    pub reason: String,
}

/// How a change a person asked for alters the job's row; each back end
/// has its statement for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowChange {
    /// Finished as cancelled, now.
    Cancelled,
    /// Marked for its worker to stop at the next heartbeat.
    CancelRequested,
    /// Queued again, due now, its attempts counted afresh; it resumes at
    /// the step that failed.
    Retried,
    /// Queued again, due now, to go on at its next step.
    Approved,
    /// Failed by a reviewer, with the reason as its error.
    Rejected,
}

/// A change a person asked for, allowed: what happens to the row, and the
/// transition the audit trail records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub row: RowChange,
    pub change: Transition,
}

impl Decision {
    fn new(row: RowChange, from: JobState, to: JobState, reason: impl Into<String>) -> Self {
        Decision {
            row,
            change: Transition {
                from,
                to,
                reason: reason.into(),
            },
        }
    }

    /// What a cancel that was allowed did.
    pub fn cancel_outcome(&self) -> CancelOutcome {
        match self.row {
            RowChange::CancelRequested => CancelOutcome::Requested,
            _ => CancelOutcome::Cancelled,
        }
    }
}

/// A change a person asks for (`clerk runs`, the API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeRequest {
    Cancel,
    Retry,
    /// With the reviewer's note, for the audit trail.
    Approve {
        note: String,
    },
    /// With the reviewer's reason, which becomes the job's error.
    Reject {
        reason: String,
    },
}

/// Whether the job's `state` allows the change, and what it does.
pub fn decide(id: i64, state: JobState, request: &ChangeRequest) -> Result<Decision> {
    match request {
        ChangeRequest::Cancel => cancel(id, state),
        ChangeRequest::Retry => retry(id, state),
        ChangeRequest::Approve { note } => approve(id, state, note),
        ChangeRequest::Reject { reason } => reject(id, state, reason),
    }
}

/// A cancel: a job that waits is cancelled at once; a running one is asked
/// to stop by its worker's next heartbeat and keeps its state until then.
fn cancel(id: i64, state: JobState) -> Result<Decision> {
    match state {
        JobState::Queued | JobState::WaitingReview => Ok(Decision::new(
            RowChange::Cancelled,
            state,
            JobState::Cancelled,
            "cancelled",
        )),
        JobState::Running => Ok(Decision::new(
            RowChange::CancelRequested,
            state,
            state,
            "cancel requested",
        )),
        _ => Err(JobsError::WrongState {
            id,
            state,
            what: "only queued, running or waiting jobs can be cancelled",
        }),
    }
}

/// A retry by hand: only a job that ended badly is queued again.
fn retry(id: i64, state: JobState) -> Result<Decision> {
    if matches!(
        state,
        JobState::Failed | JobState::Dead | JobState::Cancelled
    ) {
        Ok(Decision::new(
            RowChange::Retried,
            state,
            JobState::Queued,
            "retried by hand",
        ))
    } else {
        Err(JobsError::WrongState {
            id,
            state,
            what: "only failed, dead or cancelled jobs can be retried",
        })
    }
}

/// An approval: only a job waiting for review goes on; `reason` is the
/// reviewer's note.
fn approve(id: i64, state: JobState, reason: &str) -> Result<Decision> {
    if state == JobState::WaitingReview {
        Ok(Decision::new(
            RowChange::Approved,
            state,
            JobState::Queued,
            reason,
        ))
    } else {
        Err(JobsError::WrongState {
            id,
            state,
            what: "only jobs waiting for review can be approved",
        })
    }
}

/// A rejection: only a job waiting for review is failed by a reviewer.
fn reject(id: i64, state: JobState, reason: &str) -> Result<Decision> {
    if state == JobState::WaitingReview {
        Ok(Decision::new(
            RowChange::Rejected,
            state,
            JobState::Failed,
            format!("rejected in review: {reason}"),
        ))
    } else {
        Err(JobsError::WrongState {
            id,
            state,
            what: "only jobs waiting for review can be rejected",
        })
    }
}

/// A review past its deadline: the job keeps waiting, and its audit trail
/// says so.
pub fn overdue(due_at: i64) -> Transition {
    Transition {
        from: JobState::WaitingReview,
        to: JobState::WaitingReview,
        reason: format!("review overdue: it was due by {}", super::time_text(due_at)),
    }
}

/// What becomes of a running job whose worker's lease expired, counting
/// this loss in `lost`: cancelled if a cancel was pending, dead past
/// `max_lost`, else queued again.
pub fn lost(worker: Option<&str>, lost: i64, max_lost: i64, cancel_requested: bool) -> Transition {
    let who = worker.unwrap_or("unknown worker");
    let (to, reason) = if cancel_requested {
        (
            JobState::Cancelled,
            format!("lease of {who} expired while a cancel was pending"),
        )
    } else if lost >= max_lost {
        (
            JobState::Dead,
            format!("lease of {who} expired; lost {lost} of at most {max_lost} attempts"),
        )
    } else {
        (
            JobState::Queued,
            format!("lease of {who} expired; attempt recorded as lost ({lost} of {max_lost})"),
        )
    };
    Transition {
        from: JobState::Running,
        to,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_may_change_a_job_only_from_the_states_that_allow_it() {
        for state in JobState::ALL {
            let cancel = cancel(7, state);
            let retry = retry(7, state);
            let approve = approve(7, state, "ok");
            match state {
                JobState::Queued | JobState::WaitingReview => {
                    let d = cancel.expect("cancellable");
                    assert_eq!(d.cancel_outcome(), CancelOutcome::Cancelled);
                    assert_eq!(d.change.to, JobState::Cancelled);
                }
                JobState::Running => {
                    let d = cancel.expect("cancellable");
                    assert_eq!(d.cancel_outcome(), CancelOutcome::Requested);
                    assert_eq!(
                        d.change.to,
                        JobState::Running,
                        "stays running until it stops"
                    );
                }
                _ => assert!(matches!(cancel, Err(JobsError::WrongState { id: 7, .. }))),
            }
            assert_eq!(
                retry.is_ok(),
                matches!(
                    state,
                    JobState::Failed | JobState::Dead | JobState::Cancelled
                ),
                "retry from {state}"
            );
            assert_eq!(approve.is_ok(), state == JobState::WaitingReview);
            let reject = reject(7, state, "not ours");
            assert_eq!(reject.is_ok(), state == JobState::WaitingReview);
            if let Ok(d) = reject {
                assert_eq!(d.change.to, JobState::Failed);
                assert_eq!(d.change.reason, "rejected in review: not ours");
            }
        }
        assert_eq!(
            approve(3, JobState::WaitingReview, "booked by hand")
                .unwrap()
                .change
                .reason,
            "booked by hand"
        );
    }

    #[test]
    fn a_lost_job_is_queued_again_until_its_losses_run_out() {
        assert_eq!(lost(Some("w1"), 1, 3, false).to, JobState::Queued);
        let dead = lost(Some("w1"), 3, 3, false);
        assert_eq!(dead.to, JobState::Dead);
        assert!(
            dead.reason.contains("lost 3 of at most 3"),
            "{}",
            dead.reason
        );
        assert_eq!(lost(None, 1, 3, true).to, JobState::Cancelled);
        assert!(lost(None, 1, 3, false).reason.contains("unknown worker"));
    }
}
