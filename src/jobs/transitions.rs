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

/// What a cancel does to a job in `state`: a job that waits is cancelled at
/// once; a running one is asked to stop by its worker's next heartbeat and
/// keeps its state until then.
pub fn cancel(id: i64, state: JobState) -> Result<(CancelOutcome, Transition)> {
    match state {
        JobState::Queued | JobState::WaitingReview => Ok((
            CancelOutcome::Cancelled,
            Transition {
                from: state,
                to: JobState::Cancelled,
                reason: "cancelled".into(),
            },
        )),
        JobState::Running => Ok((
            CancelOutcome::Requested,
            Transition {
                from: state,
                to: state,
                reason: "cancel requested".into(),
            },
        )),
        _ => Err(JobsError::WrongState {
            id,
            state,
            what: "only queued, running or waiting jobs can be cancelled",
        }),
    }
}

/// A retry by hand: only a job that ended badly is queued again, with its
/// attempts counted afresh.
pub fn retry(id: i64, state: JobState) -> Result<Transition> {
    if matches!(
        state,
        JobState::Failed | JobState::Dead | JobState::Cancelled
    ) {
        Ok(Transition {
            from: state,
            to: JobState::Queued,
            reason: "retried by hand".into(),
        })
    } else {
        Err(JobsError::WrongState {
            id,
            state,
            what: "only failed, dead or cancelled jobs can be retried",
        })
    }
}

/// An approval: only a job waiting for review goes on, queued at its next
/// step; `reason` is the reviewer's note.
pub fn approve(id: i64, state: JobState, reason: &str) -> Result<Transition> {
    if state == JobState::WaitingReview {
        Ok(Transition {
            from: state,
            to: JobState::Queued,
            reason: reason.to_string(),
        })
    } else {
        Err(JobsError::WrongState {
            id,
            state,
            what: "only jobs waiting for review can be approved",
        })
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
                    let (outcome, t) = cancel.expect("cancellable");
                    assert_eq!(outcome, CancelOutcome::Cancelled);
                    assert_eq!(t.to, JobState::Cancelled);
                }
                JobState::Running => {
                    let (outcome, t) = cancel.expect("cancellable");
                    assert_eq!(outcome, CancelOutcome::Requested);
                    assert_eq!(t.to, JobState::Running, "stays running until it stops");
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
        }
        assert_eq!(
            approve(3, JobState::WaitingReview, "booked by hand")
                .unwrap()
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
