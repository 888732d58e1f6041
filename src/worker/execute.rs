//! Running one claimed job: its steps in order from where the last attempt
//! stopped, each under its timeout, and the decision of what the job's next
//! state is.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::{JobControl, Saved, Shared, StopReason, Write};
use crate::bot::{Bot, RetryPolicy};
use crate::jobs::{
    ClaimedJob, Completion, JobState, Outcome, StepRecord, StepSave, backoff_delay, now_ms,
};
use crate::step::{FailureKind, StepContext, StepError, StepOutcome};

/// Where a transient or business failure leads: the job's next state, when
/// it may run again, its new error count, and the reason in words.
pub fn decide_failure(
    policy: &RetryPolicy,
    errors_before: i64,
    error: &StepError,
    now: i64,
) -> (JobState, i64, i64, String) {
    match error.kind {
        FailureKind::Business => (
            JobState::Failed,
            now,
            errors_before,
            format!("business error, not retried: {}", error.message),
        ),
        FailureKind::Transient => {
            let errors = errors_before + 1;
            if errors >= i64::from(policy.max_attempts) {
                (
                    JobState::Dead,
                    now,
                    errors,
                    format!(
                        "attempts exhausted ({errors} of {}): {}",
                        policy.max_attempts, error.message
                    ),
                )
            } else {
                let delay = backoff_delay(policy, errors as u32);
                (
                    JobState::Queued,
                    now + delay.as_millis() as i64,
                    errors,
                    format!(
                        "transient error ({errors} of {}), retrying in {}: {}",
                        policy.max_attempts,
                        humantime::format_duration(if delay < Duration::from_secs(1) {
                            Duration::from_millis(delay.as_millis() as u64)
                        } else {
                            Duration::from_secs(delay.as_secs())
                        }),
                        error.message
                    ),
                )
            }
        }
    }
}

enum StepEnd {
    Finished(Result<StepOutcome, StepError>),
    Stopped(StopReason),
}

pub(super) async fn run_job(
    shared: &Arc<Shared>,
    job: ClaimedJob,
    writes: &mpsc::UnboundedSender<Write>,
) {
    let control = shared
        .control(job.id)
        .unwrap_or_else(|| Arc::new(JobControl::default()));
    let completion = match shared.bots.get(&job.bot) {
        Some(bot) => run_steps(shared, bot.clone(), &job, &control, writes).await,
        // Claims name only loaded bots; this is a bot removed mid-run.
        None => Some(failure_completion(
            &job,
            &RetryPolicy::default(),
            job.next_step,
            StepError::transient(format!("bot `{}` is not loaded on this worker", job.bot)),
            Vec::new(),
        )),
    };
    shared.finished(job.id);
    match completion {
        Some(c) => {
            if writes.send(Write::Done(c)).is_err() {
                tracing::error!(job = job.id, "result could not be queued for writing");
            }
        }
        None => shared.forget(&[job.id]),
    }
}

fn failure_completion(
    job: &ClaimedJob,
    policy: &RetryPolicy,
    step: i64,
    error: StepError,
    steps: Vec<StepRecord>,
) -> Completion {
    let (state, run_after, errors, reason) = decide_failure(policy, job.errors, &error, now_ms());
    Completion {
        job_id: job.id,
        attempt: job.attempt,
        state,
        attempt_outcome: match error.kind {
            FailureKind::Transient => Outcome::Error,
            FailureKind::Business => Outcome::Failed,
        },
        run_after,
        errors,
        next_step: step,
        error: Some(error.message),
        output: None,
        review: None,
        reason,
        steps,
    }
}

/// The failure that replaces a completion the database refused: the job
/// fails (retrying would give the same result) and says why; what it
/// produced is left out, its steps' errors kept in printable form.
pub(super) fn unstorable(c: &Completion, e: &crate::jobs::JobsError) -> Completion {
    let why = format!(
        "the result of attempt {} cannot be stored: {}; an output or error holds a value the job database refuses (such as a NUL character, \\u0000)",
        c.attempt,
        crate::jobs::printable(&e.to_string())
    );
    let steps = c
        .steps
        .iter()
        .cloned()
        .map(|mut r| {
            r.output = None;
            r.error = r.error.as_deref().map(crate::jobs::printable);
            r
        })
        .collect();
    Completion {
        job_id: c.job_id,
        attempt: c.attempt,
        state: JobState::Failed,
        attempt_outcome: Outcome::Failed,
        run_after: now_ms(),
        errors: c.errors,
        next_step: c.next_step,
        error: Some(why.clone()),
        output: None,
        review: None,
        reason: format!("business error, not retried: {why}"),
        steps,
    }
}

fn stopped_completion(
    job: &ClaimedJob,
    reason: StopReason,
    step: i64,
    steps: Vec<StepRecord>,
) -> Option<Completion> {
    let (state, outcome, why) = match reason {
        StopReason::Lost => return None,
        StopReason::Cancelled => (
            JobState::Cancelled,
            Outcome::Cancelled,
            "cancelled while running",
        ),
        StopReason::Interrupted => (
            JobState::Queued,
            Outcome::Interrupted,
            "interrupted by worker shutdown; queued again",
        ),
    };
    Some(Completion {
        job_id: job.id,
        attempt: job.attempt,
        state,
        attempt_outcome: outcome,
        run_after: now_ms(),
        errors: job.errors,
        next_step: step,
        error: Some(why.to_string()),
        output: None,
        review: None,
        reason: why.to_string(),
        steps,
    })
}

async fn run_steps(
    shared: &Arc<Shared>,
    bot: Arc<Bot>,
    job: &ClaimedJob,
    control: &Arc<JobControl>,
    writes: &mpsc::UnboundedSender<Write>,
) -> Option<Completion> {
    let first = usize::try_from(job.next_step).unwrap_or(0);
    let (mut outputs, input, _scratch) = match starting_point(shared, &bot, job, first).await {
        Ok(start) => start,
        Err(failed) => return Some(failed),
    };
    tracing::debug!(job = job.id, bot = %bot.name, attempt = job.attempt, from_step = first, "job started");
    let deadline = bot.timeouts.job.map(|t| Instant::now() + t);
    let mut last_output = None;
    for index in first..bot.runners.len() {
        let decl = &bot.steps[index];
        let (end, mut record) = run_step(
            shared,
            &bot,
            (job, &input),
            control,
            index,
            &outputs,
            deadline,
        )
        .await;
        match end {
            StepEnd::Stopped(reason) => {
                record.outcome = match reason {
                    StopReason::Cancelled => Outcome::Cancelled,
                    _ => Outcome::Interrupted,
                };
                record.error = Some("stopped".into());
                return stopped_completion(job, reason, index as i64, vec![record]);
            }
            StepEnd::Finished(Err(error)) => {
                record.outcome = match error.kind {
                    FailureKind::Transient => Outcome::Error,
                    FailureKind::Business => Outcome::Failed,
                };
                record.error = Some(error.message.clone());
                if !error.artifacts.is_empty() {
                    record.output = Some(serde_json::json!({ "artifacts": error.artifacts }));
                }
                let failed = failure_completion(job, &bot.retry, index as i64, error, vec![record]);
                // A retry or the end of retries is what ops teams watch for
                // (a mailbox or an ERP that is down); a business error is
                // the job's own outcome.
                if failed.state == JobState::Failed {
                    tracing::info!(job = job.id, bot = %bot.name, step = %decl.name, "step failed: {}", failed.reason);
                } else {
                    tracing::warn!(job = job.id, bot = %bot.name, step = %decl.name, "step failed: {}", failed.reason);
                }
                return Some(failed);
            }
            StepEnd::Finished(Ok(StepOutcome::NeedsReview {
                output,
                reasons,
                review_by,
            })) => {
                record.outcome = Outcome::WaitingReview;
                record.output = Some(output);
                let asks = ReviewAsk {
                    step: &decl.name,
                    index,
                    reasons,
                    review_by,
                };
                return Some(review_completion(job, &bot, asks, record));
            }
            StepEnd::Finished(Ok(StepOutcome::Done(output))) => {
                tracing::debug!(job = job.id, step = %decl.name, took_ms = record.finished_at - record.started_at, "step finished");
                record.output = Some(output.clone());
                outputs.insert(decl.name.clone(), output.clone());
                if index + 1 == bot.runners.len() {
                    last_output = Some((output, record));
                    break;
                }
                // Durable before the next step acts, so a retry resumes after it.
                match save_step(job, record, writes).await {
                    Saved::Yes => {}
                    Saved::Lost => return None,
                    Saved::Refused(why) => {
                        let error = StepError::business(format!(
                            "the output of step `{}` cannot be stored: {why}",
                            decl.name
                        ));
                        return Some(failure_completion(
                            job,
                            &bot.retry,
                            index as i64,
                            error,
                            Vec::new(),
                        ));
                    }
                }
            }
        }
    }
    let (output, steps) = match last_output {
        Some((o, r)) => (Some(o), vec![r]),
        None => (None, Vec::new()),
    };
    Some(Completion {
        job_id: job.id,
        attempt: job.attempt,
        state: JobState::Succeeded,
        attempt_outcome: Outcome::Succeeded,
        run_after: now_ms(),
        errors: job.errors,
        next_step: bot.runners.len() as i64,
        error: None,
        output,
        review: None,
        reason: "all steps succeeded".into(),
        steps,
    })
}

/// What the job's steps start from: the outputs of the steps an earlier
/// attempt finished, and the input with a copy of the job's document (the
/// copy's folder goes when the returned scratch is dropped).
async fn starting_point(
    shared: &Shared,
    bot: &Bot,
    job: &ClaimedJob,
    first: usize,
) -> Result<
    (
        BTreeMap<String, serde_json::Value>,
        serde_json::Value,
        super::scratch::Scratch,
    ),
    Completion,
> {
    let failed = |error| failure_completion(job, &bot.retry, job.next_step, error, Vec::new());
    let outputs = earlier_outputs(shared, job, first).await.map_err(failed)?;
    let config = &shared.config;
    let (input, scratch) = super::scratch::prepare(config.documents.as_ref(), &config.scratch, job)
        .await
        .map_err(failed)?;
    Ok((outputs, input, scratch))
}

/// Outputs of the steps before `first` that an earlier attempt finished.
async fn earlier_outputs(
    shared: &Shared,
    job: &ClaimedJob,
    first: usize,
) -> Result<BTreeMap<String, serde_json::Value>, StepError> {
    let mut outputs = BTreeMap::new();
    if first == 0 {
        return Ok(outputs);
    }
    let saved =
        shared.db.step_outputs(job.id).await.map_err(|e| {
            StepError::transient(format!("cannot load outputs of earlier steps: {e}"))
        })?;
    for (index, name, output) in saved {
        if (index as usize) < first {
            outputs.insert(name, output);
        }
    }
    Ok(outputs)
}

/// Run step `index` under its time limit (the job's, if that ends first),
/// stopped when its job is; how it ended, and its record so far.
async fn run_step(
    shared: &Shared,
    bot: &Bot,
    (job, input): (&ClaimedJob, &serde_json::Value),
    control: &JobControl,
    index: usize,
    outputs: &BTreeMap<String, serde_json::Value>,
    deadline: Option<Instant>,
) -> (StepEnd, StepRecord) {
    let decl = &bot.steps[index];
    let runner = &bot.runners[index];
    let mut limit = bot.step_timeout(index);
    let mut job_limited = false;
    if let Some(deadline) = deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < limit {
            limit = left;
            job_limited = true;
        }
    }
    let ctx = StepContext {
        job_id: job.id,
        attempt: job.attempt,
        bot: bot.name.clone(),
        bot_dir: bot.dir.clone(),
        step_name: decl.name.clone(),
        input: input.clone(),
        outputs: outputs.clone(),
        secrets: Arc::new(shared.config.secrets.only(&bot.secrets)),
        cancel: control.token.child_token(),
        draining: shared.draining.clone(),
        intake: crate::step::Intake(shared.db.clone()),
        documents: shared.config.documents.clone(),
    };
    let started = now_ms();
    let end = tokio::select! {
        // A step that notices the stop itself returns an error; the stop
        // is what happened, so it must win the race.
        biased;
        () = control.token.cancelled() => StepEnd::Stopped(control.reason().unwrap_or(StopReason::Cancelled)),
        r = tokio::time::timeout(limit, runner.run(&ctx)) => match r {
            Ok(r) => StepEnd::Finished(r),
            Err(_) if job_limited => StepEnd::Finished(Err(StepError::transient(format!(
                "job timed out after {} (in step `{}`)",
                humantime::format_duration(bot.timeouts.job.unwrap_or_default()),
                decl.name
            )))),
            Err(_) => StepEnd::Finished(Err(StepError::transient(format!(
                "step `{}` timed out after {}",
                decl.name,
                humantime::format_duration(limit)
            )))),
        },
    };
    let end = match (end, control.reason()) {
        (StepEnd::Finished(Err(_)), Some(reason)) => StepEnd::Stopped(reason),
        (end, _) => end,
    };
    ctx.cancel.cancel();
    let record = StepRecord {
        index: index as i64,
        name: decl.name.clone(),
        started_at: started,
        finished_at: now_ms(),
        outcome: Outcome::Succeeded,
        error: None,
        output: None,
    };
    (end, record)
}

/// A step asked for a person to look: the job waits for review and goes
/// on at the next step once approved.
/// What a step that asks for review said.
struct ReviewAsk<'a> {
    step: &'a str,
    index: usize,
    reasons: Vec<String>,
    /// Who may review, by the step's rules; the bot's `review_by` if none.
    review_by: Vec<String>,
}

fn review_completion(
    job: &ClaimedJob,
    bot: &Bot,
    ask: ReviewAsk,
    record: StepRecord,
) -> Completion {
    let ReviewAsk {
        step,
        index,
        reasons,
        mut review_by,
    } = ask;
    if review_by.is_empty() {
        review_by.extend(bot.review_by.clone());
    }
    let now = now_ms();
    // The deadline is fixed when the job starts waiting, so a later change
    // of the bot's `review_within` does not move it.
    let due_at = bot
        .review_within
        .map(|within| now.saturating_add(i64::try_from(within.as_millis()).unwrap_or(i64::MAX)));
    let reason = format!("step `{step}` asks for review: {}", reasons.join("; "));
    Completion {
        job_id: job.id,
        attempt: job.attempt,
        state: JobState::WaitingReview,
        attempt_outcome: Outcome::WaitingReview,
        run_after: now,
        errors: job.errors,
        next_step: index as i64 + 1,
        error: None,
        output: None,
        review: Some(review_record(step, reasons, review_by, due_at)),
        reason,
        steps: vec![record],
    }
}

/// What the job records of its review: the step, why, and (when set) who
/// may review it and by when.
fn review_record(
    step: &str,
    reasons: Vec<String>,
    review_by: Vec<String>,
    due_at: Option<i64>,
) -> serde_json::Value {
    let mut record = serde_json::json!({ "step": step, "reasons": reasons });
    if !review_by.is_empty() {
        record["review_by"] = serde_json::json!(review_by);
    }
    if let Some(due) = due_at {
        record["due_at"] = serde_json::json!(due);
    }
    record
}

/// Save a finished step through the committer and wait for it.
async fn save_step(
    job: &ClaimedJob,
    record: StepRecord,
    writes: &mpsc::UnboundedSender<Write>,
) -> Saved {
    let (ack_tx, ack_rx) = oneshot::channel();
    let save = StepSave {
        job_id: job.id,
        attempt: job.attempt,
        step: record,
    };
    if writes.send(Write::Step(save, ack_tx)).is_err() {
        return Saved::Lost;
    }
    match ack_rx.await {
        Ok(Saved::Lost) | Err(_) => {
            tracing::warn!(
                job = job.id,
                "lost the job while saving a step; abandoning it"
            );
            Saved::Lost
        }
        Ok(saved) => saved,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            backoff: Duration::from_secs(10),
            backoff_cap: Duration::from_secs(60),
            jitter: 0.0,
            max_lost: 2,
        }
    }

    #[test]
    fn business_errors_fail_without_retry() {
        let (state, _, errors, reason) =
            decide_failure(&policy(), 0, &StepError::business("unknown vendor"), 1000);
        assert_eq!(state, JobState::Failed);
        assert_eq!(errors, 0);
        assert!(reason.contains("unknown vendor"));
    }

    #[test]
    fn transient_errors_retry_with_backoff_until_exhausted() {
        let e = StepError::transient("ERP down");
        let (s1, at1, n1, why) = decide_failure(&policy(), 0, &e, 1000);
        assert_eq!((s1, at1, n1), (JobState::Queued, 11_000, 1));
        assert_eq!(why, "transient error (1 of 3), retrying in 10s: ERP down");
        let quick = RetryPolicy {
            backoff: Duration::from_millis(500),
            ..policy()
        };
        let (_, _, _, why) = decide_failure(&quick, 0, &e, 1000);
        assert!(why.contains("retrying in 500ms"), "{why}");
        let (s2, at2, n2, _) = decide_failure(&policy(), 1, &e, 1000);
        assert_eq!((s2, at2, n2), (JobState::Queued, 21_000, 2));
        let (s3, _, n3, reason) = decide_failure(&policy(), 2, &e, 1000);
        assert_eq!((s3, n3), (JobState::Dead, 3));
        assert!(reason.contains("attempts exhausted (3 of 3)"), "{reason}");
    }
}
