//! The job database as its users see it: one narrow trait per use, so each
//! part of clerk is handed only what it does with the queue.
//!
//! - [`QueueStore`]: the worker's claim, step saves, completions, leases,
//!   and the rescue of lost leases;
//! - [`IntakeStore`]: what intake needs (a mailbox poll, a folder trigger):
//!   enqueue, and where it got to in its source;
//! - [`ScheduleStore`]: the scheduler's slots;
//! - [`AdminStore`]: what people do and read (`clerk runs`, the API);
//! - [`NoticeStore`]: the notifications of failed and waiting jobs;
//! - [`AccessStore`]: users, API tokens and sessions;
//! - [`ReviewStore`]: the review queue, claims, corrections, approvals;
//! - [`StatsStore`]: the facts the figures of operations are made of,
//!   and their daily roll-ups;
//! - [`DocumentRows`]: documents kept in the job database, and which
//!   documents kept jobs refer to;
//! - [`RosterStore`]: the workers running now and what they serve.
//!
//! [`JobStore`] is all of them; each back end implements every trait with
//! the same guarantees and is run through the same tests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::Result;
use super::access::{ApiToken, Role, Session, User};
use super::facts::{BotEvent, DailyRow, JobFact, Live, Pause, Received, StepFact};
use super::model::*;
use super::reviews::{Approval, Review, ReviewFilter, ReviewItem, ReviewOutcome, ReviewUpdate};
use super::transitions::{ChangeRequest, Decision};

/// Which database is behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What every handle on the job database can say of itself.
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;
}

/// The worker's side of the queue.
#[async_trait]
pub trait QueueStore: Store {
    /// Claim up to `limit` due jobs of the given bots for `worker`, holding a
    /// lease until now + `lease`, respecting each bot's concurrency limit.
    async fn claim(
        &self,
        worker: &str,
        bots: &[BotClaim],
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<ClaimedJob>>;

    /// Store steps that succeeded, so a retry resumes after them. Returns per
    /// save whether the worker still held the job.
    async fn save_steps(&self, worker: &str, saves: &[StepSave]) -> Result<Vec<bool>>;

    /// End attempts, in one transaction. Returns per completion whether it was
    /// applied (false: the worker had lost the job; nothing was written).
    async fn complete(&self, worker: &str, completions: &[Completion]) -> Result<Vec<bool>>;

    /// Renew the leases of the jobs `worker` holds.
    async fn heartbeat(
        &self,
        worker: &str,
        held: &[(i64, i64)],
        lease: Duration,
    ) -> Result<Heartbeat>;

    /// Give claimed jobs back at once (graceful shutdown): they are queued
    /// again, due now, and the attempt does not count.
    async fn release(&self, worker: &str, held: &[(i64, i64)], reason: &str) -> Result<u64>;

    /// Find running jobs whose lease expired, record the attempt as lost and
    /// queue them again, or mark them dead past their limit of lost attempts.
    async fn rescue_expired(&self, actor: &str, limit: u32) -> Result<Vec<Rescued>>;

    /// Outputs of the steps of a job that succeeded, by step index.
    async fn step_outputs(&self, job_id: i64) -> Result<Vec<(i64, String, Value)>>;

    /// A counter that moves whenever jobs may have become claimable (an
    /// enqueue in this process, or a NOTIFY from another one on PostgreSQL).
    fn wakeups(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Start listening for other processes' enqueues, where the back end can.
    async fn listen(&self) -> Result<()>;
}

/// What intake needs: queue the jobs of what it found, and remember where
/// it got to in its source.
#[async_trait]
pub trait IntakeStore: Store {
    /// Put jobs in the queue, in one transaction. A job whose idempotency key
    /// exists for its bot is not created again; the existing one is returned.
    async fn enqueue(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>>;

    /// Where an intake of a bot got to in its source (`name` says which).
    async fn checkpoint(&self, bot: &str, name: &str) -> Result<Option<String>>;

    /// Remember where an intake got to.
    async fn set_checkpoint(&self, bot: &str, name: &str, value: &str) -> Result<()>;

    /// Whether a job of `bot` other than `job_id` that succeeded had
    /// `value` in `field` of `step`'s values (text compared trimmed and
    /// without case, as `value` is given): a review rule's "not seen before".
    async fn value_seen(
        &self,
        bot: &str,
        step: &str,
        field: &str,
        value: &str,
        job_id: i64,
    ) -> Result<bool>;
}

/// The scheduler's memory of the slots it fired.
#[async_trait]
pub trait ScheduleStore: Store {
    /// Enqueue the job of one schedule slot and remember the slot as fired,
    /// in one transaction. The job's idempotency key makes a slot fire once
    /// however many schedulers race for it.
    async fn fire_slot(&self, trigger_id: &str, slot: i64, job: &NewJob) -> Result<Enqueued>;

    /// Remember a slot as seen without running it (a new trigger's baseline,
    /// or a missed slot skipped by `catch_up = "skip"`).
    async fn mark_slot(&self, bot: &str, trigger_id: &str, slot: i64) -> Result<()>;

    /// The last slot fired for a trigger of a bot.
    async fn last_slot(&self, bot: &str, trigger_id: &str) -> Result<Option<i64>>;

    /// The bots an operator paused: their triggers do not fire.
    async fn paused(&self) -> Result<Vec<Pause>>;

    /// Whether a job of `bot` is queued or running (a mailbox poll's slot
    /// is not queued behind one).
    async fn has_unfinished(&self, bot: &str) -> Result<bool>;
}

/// What people read and do: `clerk runs`, retention.
#[async_trait]
pub trait AdminStore: Store {
    /// Carry out a change a person asks for, if the job's state allows it
    /// (the rules are in `transitions`, the same for every back end): the
    /// state read and changed in one transaction, with its event.
    async fn change(&self, id: i64, actor: &str, request: &ChangeRequest) -> Result<Decision>;

    /// Cancel a queued or waiting job now, or ask a running one to stop.
    async fn cancel(&self, id: i64, actor: &str) -> Result<CancelOutcome> {
        let decision = self.change(id, actor, &ChangeRequest::Cancel).await?;
        Ok(decision.cancel_outcome())
    }

    /// Queue a failed, dead or cancelled job again with fresh attempts; it
    /// resumes at the step that failed.
    async fn retry(&self, id: i64, actor: &str) -> Result<()> {
        self.change(id, actor, &ChangeRequest::Retry).await?;
        Ok(())
    }

    /// A reviewer approved a job waiting for review: queue it to go on at
    /// its next step.
    async fn approve(&self, id: i64, actor: &str, reason: &str) -> Result<()> {
        let note = reason.to_string();
        self.change(id, actor, &ChangeRequest::Approve { note })
            .await?;
        Ok(())
    }

    async fn job(&self, id: i64) -> Result<Option<JobDetail>>;

    async fn state(&self, id: i64) -> Result<Option<JobState>>;

    async fn list(&self, filter: &ListFilter) -> Result<Vec<JobSummary>>;

    /// Delete up to `batch` finished jobs (with their attempts, steps and
    /// events) that finished before `finished_before`. Returns how many.
    async fn prune(&self, finished_before: i64, batch: u32) -> Result<u64>;

    /// Forget idempotency keys made before `created_before` whose jobs are
    /// gone. Returns how many.
    async fn prune_keys(&self, created_before: i64) -> Result<u64>;

    /// Pause a bot (and its mailbox polls): its triggers stop firing and
    /// its queued jobs wait, on every node, until it is resumed. False if
    /// it was paused already.
    async fn pause_bot(&self, bot: &str, actor: &str, reason: &str) -> Result<bool>;

    /// Resume a paused bot; false if it was not paused.
    async fn resume_bot(&self, bot: &str, actor: &str, reason: &str) -> Result<bool>;

    /// Record something a person did to a bot (`ran`: a job by hand).
    async fn bot_event(&self, bot: &str, actor: &str, action: &str, reason: &str) -> Result<()>;

    /// What people did to a bot, newest first.
    async fn bot_events(&self, bot: &str, limit: u32) -> Result<Vec<BotEvent>>;
}

/// What the figures of operations read, and the roll-ups they keep. Times
/// are Unix ms; a period is `[from, to)`.
#[async_trait]
pub trait StatsStore: Store {
    /// Facts of the jobs that finished in the period.
    async fn finished_facts(&self, from: i64, to: i64) -> Result<Vec<JobFact>>;

    /// The step runs of the jobs that finished in the period.
    async fn step_facts(&self, from: i64, to: i64) -> Result<Vec<StepFact>>;

    /// Jobs created in the period, per bot and source.
    async fn received(&self, from: i64, to: i64) -> Result<Vec<Received>>;

    /// The queue as it is now.
    async fn live(&self) -> Result<Live>;

    /// When the oldest job kept was created.
    async fn first_job_at(&self) -> Result<Option<i64>>;

    /// The roll-ups of days `from_day..to_day` (days since the epoch).
    async fn daily(&self, from_day: i64, to_day: i64) -> Result<Vec<DailyRow>>;

    /// The latest settled day, if any.
    async fn last_settled_day(&self) -> Result<Option<i64>>;

    /// Replace the roll-ups of `day` (every bot's) with `rows`, in one
    /// transaction. A settled day is never replaced.
    async fn save_day(&self, day: i64, rows: &[DailyRow]) -> Result<()>;

    /// Delete roll-ups of days before `before_day`; returns how many rows.
    async fn prune_daily(&self, before_day: i64) -> Result<u64>;

    /// Jobs created in the period with their attempts, steps and audit
    /// trails, by id after `after_id`, at most `limit`: a page of the
    /// event log.
    async fn job_details(
        &self,
        from: i64,
        to: i64,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<JobDetail>>;
}

/// Notifications of jobs that failed or wait for review.
#[async_trait]
pub trait NoticeStore: Store {
    /// Reserve for `worker`, until now + `hold`, up to `limit` notices of
    /// `bot` of the given kinds that are neither done nor held by another,
    /// oldest first.
    async fn claim_notices(
        &self,
        bot: &str,
        kinds: &[NoticeKind],
        worker: &str,
        hold: Duration,
        limit: u32,
    ) -> Result<Vec<Notice>>;

    /// Mark notices done; `outcome` says how (`sent`, `no recipients`).
    async fn finish_notices(&self, ids: &[i64], outcome: &str) -> Result<()>;

    /// Sending failed: keep the notices pending, not to be claimed again
    /// before `retry_at`.
    async fn postpone_notices(&self, ids: &[i64], error: &str, retry_at: i64) -> Result<()>;

    /// When a notice of `kind` of `bot` was last sent.
    async fn last_notice_sent(&self, bot: &str, kind: NoticeKind) -> Result<Option<i64>>;

    /// Reviews whose deadline passed by `now` get a `review_overdue`
    /// notice and an event in their audit trail, once per job and deadline
    /// however many processes ask. Returns the jobs newly overdue.
    async fn flag_overdue_reviews(&self, now: i64) -> Result<Vec<i64>>;

    /// The input of each of these jobs that still exists, for the
    /// paragraph a notice gets (which document, which mail).
    async fn job_inputs(&self, ids: &[i64]) -> Result<HashMap<i64, Value>>;
}

/// Who may use the web pages and the API.
#[async_trait]
pub trait AccessStore: Store {
    /// Add a user; fails with `AlreadyExists` for a taken name.
    async fn add_user(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        actor: &str,
    ) -> Result<User>;

    async fn users(&self) -> Result<Vec<User>>;

    /// Change a user's role, groups, or both; false when there is no such
    /// user. Their sessions go on with the new rights.
    async fn set_user(
        &self,
        name: &str,
        role: Option<Role>,
        groups: Option<&[String]>,
    ) -> Result<bool>;

    /// Remove a user and end their sessions; false when there was none.
    async fn remove_user(&self, name: &str) -> Result<bool>;

    /// A user and the hash of their password, to check a sign-in.
    async fn user_with_password(&self, name: &str) -> Result<Option<(User, String)>>;

    /// Add a token, stored by its hash; fails with `AlreadyExists` for a
    /// taken name.
    async fn add_token(
        &self,
        name: &str,
        role: Role,
        token_hash: &str,
        actor: &str,
    ) -> Result<ApiToken>;

    async fn tokens(&self) -> Result<Vec<ApiToken>>;

    /// Remove a token; false when there was none.
    async fn remove_token(&self, name: &str) -> Result<bool>;

    /// The token with this hash, its use recorded.
    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<ApiToken>>;

    /// Start a session of `user_id` until `expires_at`.
    async fn add_session(
        &self,
        id_hash: &str,
        user_id: i64,
        csrf: &str,
        expires_at: i64,
    ) -> Result<()>;

    /// The session with this id hash, unless it expired; `extend_to`
    /// moves its end (sliding expiry).
    async fn session(&self, id_hash: &str, extend_to: i64) -> Result<Option<Session>>;

    async fn end_session(&self, id_hash: &str) -> Result<()>;
}

/// The reviews of jobs waiting for a person.
#[async_trait]
pub trait ReviewStore: Store {
    /// Jobs waiting for review, oldest first.
    async fn review_queue(&self, filter: &ReviewFilter) -> Result<Vec<ReviewItem>>;

    /// One job waiting for review, with what its step read and what was
    /// corrected so far.
    async fn review(&self, job_id: i64) -> Result<Option<Review>>;

    /// Hold a review for `user` until now + `hold` (again, if they hold it
    /// already). Fails with `HeldBy` while another holds it.
    async fn claim_review(&self, job_id: i64, user: &str, hold: Duration) -> Result<ReviewItem>;

    /// Let go of a review `user` holds.
    async fn release_review(&self, job_id: i64, user: &str) -> Result<()>;

    /// Save corrections, if the review is at `version` (else `Conflict`)
    /// and nobody else holds it; returns the new version. Every event is
    /// written to the job's audit trail in the same transaction.
    async fn save_review(
        &self,
        job_id: i64,
        user: &str,
        version: i64,
        update: &ReviewUpdate,
    ) -> Result<i64>;

    /// End (or put off) a review at `version`, in one transaction: the
    /// reviewed output, the job's state, the audit trail.
    async fn finish_review(
        &self,
        job_id: i64,
        user: &str,
        version: i64,
        outcome: &ReviewOutcome,
    ) -> Result<()>;

    /// Approvals since `since` (Unix ms), oldest first, at most `limit`.
    async fn approvals_since(&self, since: i64, limit: u32) -> Result<Vec<Approval>>;
}

/// Documents kept in the job database (the `database` document store),
/// and which documents, wherever they are kept, kept jobs still need.
#[async_trait]
pub trait DocumentRows: Store {
    /// Keep a document; when it is kept already, only note that it was put
    /// again now (so garbage collection leaves it for the job it is put for).
    async fn put_document(&self, document: &DocumentRow, content: &[u8]) -> Result<()>;

    /// A kept document and its content.
    async fn document(&self, sha256: &str) -> Result<Option<(DocumentRow, Vec<u8>)>>;

    /// Kept documents in hash order after `after` (`""`: from the first),
    /// at most `limit`.
    async fn documents_after(&self, after: &str, limit: u32) -> Result<Vec<KeptDocument>>;

    /// Delete kept documents; returns how many were there.
    async fn delete_documents(&self, sha256: &[String]) -> Result<u64>;

    /// Which of these documents a job in the database refers to (its
    /// input's `sha256`), in whatever store they are kept.
    async fn documents_in_use(&self, sha256: &[String]) -> Result<Vec<String>>;
}

/// The workers running now: each says every few seconds which step kinds
/// it runs and which bots' jobs it claims.
#[async_trait]
pub trait RosterStore: Store {
    /// Say (again) what this worker serves.
    async fn announce(&self, worker: &WorkerRow) -> Result<()>;

    /// A worker that stops says so.
    async fn retire(&self, worker: &str) -> Result<()>;

    /// Workers heard from since `seen_since` (Unix ms), by id.
    async fn workers(&self, seen_since: i64) -> Result<Vec<WorkerRow>>;
}

/// The whole job database: every use above, and its schema.
#[async_trait]
pub trait JobStore:
    QueueStore
    + IntakeStore
    + ScheduleStore
    + AdminStore
    + NoticeStore
    + AccessStore
    + ReviewStore
    + StatsStore
    + DocumentRows
    + RosterStore
{
    /// Apply pending migrations. Safe to call from several processes at once.
    async fn migrate(&self) -> Result<()>;

    /// Whether the database answers and its schema is this version's:
    /// `Err` says why not.
    async fn ready(&self) -> Result<()>;
}

pub type JobDb = Arc<dyn JobStore>;
