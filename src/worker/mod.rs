//! The worker: claim jobs, run their steps with timeouts, keep their leases
//! alive, record how each attempt ended, and drain gracefully on shutdown.
//!
//! Four tasks cooperate around one map of held jobs:
//! - the *claimer* claims jobs in batches (up to free slots plus a small
//!   prefetch) and wakes on enqueue notifications, polling as a fallback;
//! - the *dispatcher* starts each claimed job when a slot is free;
//! - the *committer* writes step results and completions in group commits:
//!   whatever piled up while the previous transaction ran goes in the next;
//! - the *heartbeat* renews the leases of every held job in one statement and
//!   learns which of them were cancelled or taken away.
//!
//! A rescuer also runs here: any worker may requeue jobs whose lease expired.

#[cfg(test)]
mod contract;
mod execute;
pub mod roster;
mod scratch;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bot::BotRegistry;
use crate::jobs::{BotClaim, ClaimedJob, Completion, JobDb, StepSave};

pub use execute::decide_failure;

/// How a worker behaves. Defaults suit document work: jobs of seconds to
/// minutes, a handful at a time.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Name in leases and the audit trail; unique per process.
    pub id: String,
    /// Jobs run at once.
    pub concurrency: usize,
    /// Jobs claimed ahead of free slots, so a slot that frees up starts the
    /// next job without a round trip. They hold a lease while they wait.
    pub prefetch: usize,
    /// Most jobs claimed in one query.
    pub claim_batch: usize,
    /// How long a claim is valid without a heartbeat.
    pub lease: Duration,
    /// How often leases are renewed (and cancels noticed).
    pub heartbeat: Duration,
    /// How often to look for due jobs when no notification arrives.
    pub poll_interval: Duration,
    /// How often to look for expired leases of vanished workers.
    pub rescue_interval: Duration,
    /// How long running steps may take to finish after a shutdown signal.
    pub grace: Duration,
    /// Where steps resolve `${secret:NAME}`.
    pub secrets: Arc<crate::config::secrets::Secrets>,
    /// Where jobs' documents are kept (`input.sha256`).
    pub documents: Arc<dyn crate::documents::store::DocumentStore>,
    /// Where each job gets a folder for the copy of its document that its
    /// steps read; removed when the attempt ends.
    pub scratch: std::path::PathBuf,
    /// The step kinds this worker runs: it claims only jobs of bots whose
    /// every step is of one of them.
    pub served: crate::bot::kinds::Served,
}

impl WorkerConfig {
    pub fn new(concurrency: usize) -> Self {
        WorkerConfig {
            id: default_worker_id(),
            concurrency: concurrency.max(1),
            prefetch: concurrency.max(1),
            claim_batch: 100,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(2),
            poll_interval: Duration::from_secs(1),
            rescue_interval: Duration::from_secs(5),
            grace: Duration::from_secs(30),
            secrets: Arc::new(crate::config::secrets::Secrets::from_env()),
            documents: Arc::new(crate::documents::store::LocalStore::new("data/documents")),
            scratch: std::env::temp_dir().join("clerk-scratch"),
            served: crate::bot::kinds::Served::all(),
        }
    }
}

/// `host:pid:random`: readable in `clerk runs show`, unique across restarts.
pub fn default_worker_id() -> String {
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    unique_worker_id(&format!("{host}:{}", std::process::id()))
}

/// `name:random`: a name an operator gave, made unique to this start, so a
/// process restarted under the same name never renews or commits for the
/// attempts of the one before it; those are rescued when their leases end.
pub fn unique_worker_id(name: &str) -> String {
    format!("{name}:{:08x}", rand::random::<u32>())
}

/// Why a running job is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// Someone ran `clerk runs cancel`.
    Cancelled,
    /// The worker is shutting down and the grace period is over.
    Interrupted,
    /// The lease was lost; another worker has or will have the job.
    Lost,
}

/// Stop switch of one held job.
#[derive(Debug, Default)]
pub(crate) struct JobControl {
    token: CancellationToken,
    reason: Mutex<Option<StopReason>>,
}

impl JobControl {
    fn stop(&self, reason: StopReason) {
        if let Ok(mut r) = self.reason.lock()
            && r.is_none()
        {
            *r = Some(reason);
        }
        self.token.cancel();
    }
    fn reason(&self) -> Option<StopReason> {
        self.reason.lock().ok().and_then(|r| *r)
    }
}

struct Held {
    attempt: i64,
    control: Arc<JobControl>,
    /// When the lease ends at the latest, by this process's monotonic
    /// clock: counted from before the claim or renewal was sent.
    lease_until: Instant,
    /// Its steps are over and its result waits for the committer.
    finished: bool,
}

/// What a finished run of the worker did.
#[derive(Debug, Default, Clone, Copy)]
pub struct WorkerReport {
    pub completed: u64,
    pub released: u64,
}

enum Write {
    Step(StepSave, oneshot::Sender<Saved>),
    Done(Completion),
}

/// How a step's save went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Saved {
    Yes,
    /// The worker no longer holds the job (or could not reach the
    /// database in time).
    Lost,
    /// The database refused a value of it, and why.
    Refused(String),
}

/// State shared by the worker's tasks.
struct Shared {
    db: JobDb,
    bots: Arc<BotRegistry>,
    config: WorkerConfig,
    held: Mutex<HashMap<i64, Held>>,
    /// Claimed jobs not yet finished running (waiting or running).
    in_flight: AtomicUsize,
    /// Signalled whenever `in_flight` drops.
    room: Notify,
    completed: AtomicUsize,
    /// Fired when the worker begins to shut down (see `StepContext`).
    draining: CancellationToken,
    /// The bots whose jobs this worker claims, and those it leaves to
    /// others with the reasons: decided once, at the start.
    served_bots: Vec<String>,
    left_to_others: Vec<(String, Vec<String>)>,
}

impl Shared {
    /// The held jobs whose steps are not over (waiting or running), with
    /// their attempts: the ones to renew and, at shutdown, to interrupt.
    /// Not those whose result waits for the committer: renewing them would
    /// lock the very rows the committer is writing, and each would wait for
    /// the other; with hundreds of jobs held, a drain spent most of its
    /// time so.
    fn unfinished(&self) -> Vec<(i64, i64)> {
        self.held
            .lock()
            .map(|h| {
                h.iter()
                    .filter(|(_, held)| !held.finished)
                    .map(|(id, held)| (*id, held.attempt))
                    .collect()
            })
            .unwrap_or_default()
    }
    /// Job `id` ran its steps; its result goes to the committer next.
    fn finished(&self, id: i64) {
        if let Ok(mut h) = self.held.lock()
            && let Some(held) = h.get_mut(&id)
        {
            held.finished = true;
        }
    }
    fn control(&self, id: i64) -> Option<Arc<JobControl>> {
        self.held
            .lock()
            .ok()
            .and_then(|h| h.get(&id).map(|h| h.control.clone()))
    }
    /// The leases of `renewed` were renewed by a heartbeat sent at `sent`.
    fn renewed(&self, renewed: &[i64], sent: Instant) {
        if let Ok(mut h) = self.held.lock() {
            for id in renewed {
                if let Some(held) = h.get_mut(id) {
                    held.lease_until = sent + self.config.lease;
                }
            }
        }
    }
    /// Held jobs still running whose lease ends before `by`.
    fn expiring(&self, by: Instant) -> Vec<(i64, Arc<JobControl>)> {
        self.held
            .lock()
            .map(|h| {
                h.iter()
                    .filter(|(_, held)| !held.finished && held.lease_until <= by)
                    .map(|(id, held)| (*id, held.control.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
    fn forget(&self, ids: &[i64]) {
        if let Ok(mut h) = self.held.lock() {
            for id in ids {
                h.remove(id);
            }
        }
    }
    fn job_finished_running(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.room.notify_one();
    }
}

pub struct Worker {
    shared: Arc<Shared>,
}

impl Worker {
    pub fn new(db: JobDb, bots: Arc<BotRegistry>, config: WorkerConfig) -> Self {
        let (served_bots, left_to_others) = roster::sort_bots(&bots, &config.served);
        Worker {
            shared: Arc::new(Shared {
                db,
                bots,
                config,
                served_bots,
                left_to_others,
                held: Mutex::new(HashMap::new()),
                in_flight: AtomicUsize::new(0),
                room: Notify::new(),
                completed: AtomicUsize::new(0),
                draining: CancellationToken::new(),
            }),
        }
    }

    pub fn id(&self) -> &str {
        &self.shared.config.id
    }

    /// Run until `shutdown` fires, then drain: stop claiming, give back jobs
    /// that have not started, let running steps finish within the grace
    /// period, interrupt the rest, and flush every pending write.
    pub async fn run(self, shutdown: CancellationToken) -> WorkerReport {
        let shared = self.shared;
        let cfg = shared.config.clone();
        scratch::sweep(shared.db.as_ref(), &cfg.scratch).await;
        if let Err(e) = shared.db.listen().await {
            tracing::warn!(error = %e, "cannot listen for new jobs; polling only");
        }
        tracing::info!(worker = %cfg.id, concurrency = cfg.concurrency, kinds = ?cfg.served.kinds, bots = ?shared.served_bots, "worker started");

        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<ClaimedJob>();
        let (write_tx, write_rx) = mpsc::unbounded_channel::<Write>();
        let background = CancellationToken::new();

        let claimer = tokio::spawn(claim_loop(shared.clone(), ready_tx, shutdown.clone()));
        let committer = tokio::spawn(commit_loop(shared.clone(), write_rx));
        let heartbeat = tokio::spawn(heartbeat_loop(shared.clone(), background.clone()));
        let rescuer = tokio::spawn(rescue_loop(shared.clone(), background.clone()));
        let roster = tokio::spawn(roster::announce_loop(shared.clone(), background.clone()));

        let slots = Arc::new(Semaphore::new(cfg.concurrency));
        let tracker = TaskTracker::new();
        loop {
            let job = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                job = ready_rx.recv() => match job { Some(j) => j, None => break },
            };
            let permit = tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    release_unstarted(&shared, vec![job]).await;
                    break;
                }
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            let shared = shared.clone();
            let writes = write_tx.clone();
            tracker.spawn(async move {
                execute::run_job(&shared, job, &writes).await;
                shared.job_finished_running();
                drop(permit);
            });
        }
        tracing::info!(worker = %cfg.id, "shutting down: no new jobs are claimed");
        shared.draining.cancel();
        let _ = claimer.await;
        // Jobs claimed but not started go back to the queue at once.
        ready_rx.close();
        let mut unstarted = Vec::new();
        while let Ok(job) = ready_rx.try_recv() {
            unstarted.push(job);
        }
        let released = release_unstarted(&shared, unstarted).await;

        tracker.close();
        if !tracker.is_empty() {
            tracing::info!(running = tracker.len(), grace = ?cfg.grace, "waiting for running jobs to finish");
        }
        if tokio::time::timeout(cfg.grace, tracker.wait())
            .await
            .is_err()
        {
            let left = shared.unfinished();
            tracing::warn!(
                jobs = left.len(),
                "grace period over; interrupting running jobs"
            );
            for (id, _) in left {
                if let Some(c) = shared.control(id) {
                    c.stop(StopReason::Interrupted);
                }
            }
            tracker.wait().await;
        }
        drop(write_tx);
        let _ = committer.await;
        background.cancel();
        let _ = heartbeat.await;
        let _ = rescuer.await;
        let _ = roster.await;
        let report = WorkerReport {
            completed: shared.completed.load(Ordering::SeqCst) as u64,
            released,
        };
        tracing::info!(worker = %cfg.id, completed = report.completed, released = report.released, "worker stopped");
        report
    }
}

async fn release_unstarted(shared: &Shared, jobs: Vec<ClaimedJob>) -> u64 {
    if jobs.is_empty() {
        return 0;
    }
    let held: Vec<(i64, i64)> = jobs.iter().map(|j| (j.id, j.attempt)).collect();
    let ids: Vec<i64> = held.iter().map(|h| h.0).collect();
    let n = match shared
        .db
        .release(
            &shared.config.id,
            &held,
            "worker shutting down before the job started",
        )
        .await
    {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "could not give back unstarted jobs; their leases will expire");
            0
        }
    };
    shared.forget(&ids);
    for _ in &ids {
        shared.job_finished_running();
    }
    n
}

async fn claim_loop(
    shared: Arc<Shared>,
    ready: mpsc::UnboundedSender<ClaimedJob>,
    shutdown: CancellationToken,
) {
    let cfg = &shared.config;
    for (bot, why) in &shared.left_to_others {
        tracing::info!(bot = %bot, why = %why.join("; "), "this worker leaves the bot's jobs to a worker that can run them");
    }
    let bots: Vec<BotClaim> = shared
        .bots
        .iter()
        .filter(|b| shared.served_bots.contains(&b.name))
        .map(|b| BotClaim {
            name: b.name.clone(),
            concurrency: b.concurrency,
        })
        .collect();
    if bots.is_empty() {
        tracing::warn!("no bots loaded; this worker will not claim jobs");
        shutdown.cancelled().await;
        return;
    }
    let mut wake = shared.db.wakeups();
    let capacity = cfg.concurrency + cfg.prefetch;
    // After a full claim there are likely more jobs waiting: claim again only
    // once the local queue has drained to this mark, so claims stay batches
    // instead of one query per finished job.
    let low_water = cfg.concurrency.max(capacity / 2);
    let mut backlog = false;
    let mut failures = 0u32;
    while !shutdown.is_cancelled() {
        let busy = shared.in_flight.load(Ordering::SeqCst);
        if busy >= capacity || (backlog && busy > low_water) {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = shared.room.notified() => continue,
            }
        }
        let want = (capacity - busy).min(cfg.claim_batch);
        // Mark as seen before claiming: a notification that arrives during
        // the claim makes the next wait return at once.
        wake.borrow_and_update();
        let asked = Instant::now();
        match shared
            .db
            .claim(&cfg.id, &bots, want as u32, cfg.lease)
            .await
        {
            Ok(jobs) => {
                failures = 0;
                let got = jobs.len();
                if let Ok(mut held) = shared.held.lock() {
                    for j in &jobs {
                        held.insert(
                            j.id,
                            Held {
                                attempt: j.attempt,
                                control: Arc::new(JobControl::default()),
                                lease_until: asked + cfg.lease,
                                finished: false,
                            },
                        );
                    }
                }
                shared.in_flight.fetch_add(got, Ordering::SeqCst);
                for j in jobs {
                    if ready.send(j).is_err() {
                        return;
                    }
                }
                backlog = got == want;
                if backlog {
                    continue;
                }
            }
            Err(e) => {
                failures += 1;
                let pause = Duration::from_millis(200 * u64::from(failures.min(25)));
                tracing::warn!(error = %e, retry_in = ?pause, "claiming jobs failed");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(pause) => continue,
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = wake.changed() => {}
            () = tokio::time::sleep(cfg.poll_interval) => {}
        }
    }
}

async fn commit_loop(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Write>) {
    const MAX_GROUP: usize = 500;
    // PostgreSQL overlaps commits (and their WAL flushes) from two
    // connections; a third only contends for the same pages (20,000 no-op
    // jobs on 2 cores drained about a fifth slower with three). SQLite has
    // one writer, so more would only queue.
    let parallel = match shared.db.backend() {
        crate::jobs::Backend::Sqlite => 1,
        crate::jobs::Backend::Postgres => 2,
    };
    let committers = Arc::new(Semaphore::new(parallel));
    let mut inflight = tokio::task::JoinSet::new();
    while let Some(first) = rx.recv().await {
        // Wait for a free committer before gathering: while all are busy,
        // the next group grows.
        let Ok(permit) = committers.clone().acquire_owned().await else {
            break;
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(w) => group.push(w),
                Err(_) => break,
            }
        }
        let shared = shared.clone();
        inflight.spawn(async move {
            write_group(&shared, group).await;
            drop(permit);
        });
        while inflight.try_join_next().is_some() {}
    }
    while inflight.join_next().await.is_some() {}
}

/// Commit one group of writes and tell their senders.
async fn write_group(shared: &Shared, group: Vec<Write>) {
    let mut steps: Vec<(StepSave, oneshot::Sender<Saved>)> = Vec::new();
    let mut done: Vec<Completion> = Vec::new();
    for w in group {
        match w {
            Write::Step(s, ack) => steps.push((s, ack)),
            Write::Done(c) => done.push(c),
        }
    }
    if !steps.is_empty() {
        let saves: Vec<StepSave> = steps.iter().map(|(s, _)| s.clone()).collect();
        let saved = save_steps(shared, &saves).await;
        for ((_, ack), saved) in steps.into_iter().zip(saved) {
            let _ = ack.send(saved);
        }
    }
    if !done.is_empty() {
        let applied = commit_completions(shared, &done).await;
        let ids: Vec<i64> = done.iter().map(|c| c.job_id).collect();
        for (c, ok) in done.iter().zip(applied) {
            if ok {
                tracing::info!(job = c.job_id, attempt = c.attempt, state = %c.state, reason = %c.reason, "attempt finished");
            } else {
                tracing::warn!(
                    job = c.job_id,
                    attempt = c.attempt,
                    "result discarded: this worker no longer held the job"
                );
            }
        }
        shared.completed.fetch_add(done.len(), Ordering::SeqCst);
        shared.forget(&ids);
    }
}

/// Save steps as one group; when the database refuses a value, one by
/// one, so only the step that holds it is refused.
async fn save_steps(shared: &Shared, saves: &[StepSave]) -> Vec<Saved> {
    let worker = &shared.config.id;
    let held = |v: Vec<bool>| -> Vec<Saved> {
        v.into_iter()
            .map(|h| if h { Saved::Yes } else { Saved::Lost })
            .collect()
    };
    match retry_write(|| shared.db.save_steps(worker, saves)).await {
        Ok(v) => return held(v),
        Err(None) => return vec![Saved::Lost; saves.len()],
        Err(Some(_)) if saves.len() > 1 => {}
        Err(Some(e)) => return vec![Saved::Refused(crate::jobs::printable(&e.to_string()))],
    }
    let mut out = Vec::with_capacity(saves.len());
    for save in saves {
        let one = std::slice::from_ref(save);
        out.push(
            match retry_write(|| shared.db.save_steps(worker, one)).await {
                Ok(v) => held(v).pop().unwrap_or(Saved::Lost),
                Err(None) => Saved::Lost,
                Err(Some(e)) => Saved::Refused(crate::jobs::printable(&e.to_string())),
            },
        );
    }
    out
}

/// Commit completions as one group; when the database refuses a value,
/// one by one, and a completion it refuses is replaced by the job's
/// failure saying why, so the rest of the group is kept and no finished
/// job runs again. Whether each was applied.
async fn commit_completions(shared: &Shared, done: &[Completion]) -> Vec<bool> {
    let worker = &shared.config.id;
    let first = |v: Vec<bool>| v.first().copied().unwrap_or(false);
    match retry_write(|| shared.db.complete(worker, done)).await {
        Ok(v) => return v,
        Err(None) => return vec![false; done.len()],
        Err(Some(_)) => {}
    }
    let mut out = Vec::with_capacity(done.len());
    for c in done {
        let one = std::slice::from_ref(c);
        out.push(match retry_write(|| shared.db.complete(worker, one)).await {
            Ok(v) => first(v),
            Err(None) => false,
            Err(Some(e)) => {
                let failed = [execute::unstorable(c, &e)];
                tracing::warn!(job = c.job_id, attempt = c.attempt, error = %crate::jobs::printable(&e.to_string()), "the attempt's result cannot be stored; the job fails saying why");
                retry_write(|| shared.db.complete(worker, &failed))
                    .await
                    .map(first)
                    .unwrap_or(false)
            }
        });
    }
    out
}

/// Retry a write while the database is unreachable, for about a minute. A
/// result that cannot be written is given up (`Err(None)`): the lease
/// expires and the job runs again elsewhere, which steps must tolerate
/// anyway. A value the database refuses is not retried (`Err(Some)`).
async fn retry_write<T, F, Fut>(mut f: F) -> Result<T, Option<crate::jobs::JobsError>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::jobs::Result<T>>,
{
    let mut pause = Duration::from_millis(100);
    for _ in 0..12 {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_refused_value() => return Err(Some(e)),
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?pause, "writing results failed");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(10));
            }
        }
    }
    Err(None)
}

async fn heartbeat_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let cfg = &shared.config;
    // A job whose lease could not be renewed is stopped this long before
    // the lease ends, so its steps are over before a rescuer may hand it
    // to another worker.
    let margin = cfg.lease / 4 + cfg.heartbeat;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(cfg.heartbeat) => {}
        }
        let held = shared.unfinished();
        if held.is_empty() {
            continue;
        }
        let sent = Instant::now();
        match shared.db.heartbeat(&cfg.id, &held, cfg.lease).await {
            Ok(beat) => {
                let renewed: Vec<i64> = held
                    .iter()
                    .map(|h| h.0)
                    .filter(|id| !beat.gone.contains(id))
                    .collect();
                shared.renewed(&renewed, sent);
                for id in beat.cancel {
                    if let Some(c) = shared.control(id) {
                        tracing::info!(job = id, "cancel requested; stopping the job");
                        c.stop(StopReason::Cancelled);
                    }
                }
                for id in beat.gone {
                    if let Some(c) = shared.control(id) {
                        tracing::warn!(job = id, "lease lost; abandoning the job");
                        c.stop(StopReason::Lost);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed; leases not renewed"),
        }
        for (id, control) in shared.expiring(Instant::now() + margin) {
            if control.reason().is_none() {
                tracing::warn!(
                    job = id,
                    "the lease could not be renewed and is about to end; stopping the job so no other worker runs it at the same time"
                );
            }
            control.stop(StopReason::Lost);
        }
    }
}

async fn rescue_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let actor = format!("rescuer:{}", shared.config.id);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(shared.config.rescue_interval) => {}
        }
        match shared.db.rescue_expired(&actor, 100).await {
            Ok(rescued) => {
                for r in rescued {
                    tracing::warn!(job = r.id, bot = %r.bot, worker = ?r.worker, state = %r.state, "lease expired; attempt recorded as lost");
                }
            }
            Err(e) => tracing::warn!(error = %e, "looking for expired leases failed"),
        }
    }
}
