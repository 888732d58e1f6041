//! `clerk serve` and `clerk worker`: the long-running processes.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::args::WorkerArgs;
use super::exit;
use crate::bot::BotRegistry;
use crate::config::secrets::Secrets;
use crate::jobs::{JobDb, now_ms};
use crate::mail::notify::Notifier;
use crate::scheduler::Scheduler;
use crate::scheduler::folder::FolderIntake;
use crate::worker::{Worker, WorkerConfig, default_worker_id, unique_worker_id};

/// Finished jobs are deleted this many at a time, so pruning never holds the
/// database for long.
const PRUNE_BATCH: u32 = 1000;
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Which parts a process runs.
pub(super) struct Roles {
    pub workers: bool,
    pub scheduler: bool,
    /// Prune what is past its retention.
    pub retention: Option<Retention>,
    /// Serve the web pages and the API.
    pub web: Option<crate::server::WebConfig>,
}

/// Where a process keeps documents and works on their copies.
pub(super) struct Place {
    pub documents: crate::document_store::Documents,
    /// Each job's copy of its document, removed when its attempt ends.
    pub scratch: std::path::PathBuf,
}

/// How long each kind of record is kept.
#[derive(Debug, Clone, Copy)]
pub(super) struct Retention {
    /// Finished jobs, with their history.
    pub jobs: Duration,
    /// Daily figures, kept apart from the jobs.
    pub stats: Duration,
    /// Idempotency keys, kept past their jobs so an old document seen
    /// again is still known.
    pub keys: Duration,
    /// Documents no job refers to, since they were last put.
    pub document_grace: Duration,
}

pub(super) async fn serve(
    db: JobDb,
    bots: Arc<BotRegistry>,
    secrets: Arc<Secrets>,
    args: &WorkerArgs,
    roles: Roles,
    place: Place,
) -> anyhow::Result<u8> {
    let Place { documents, scratch } = place;
    let Roles {
        workers,
        scheduler,
        retention,
        web,
    } = roles;
    if bots.is_empty() {
        tracing::warn!("no valid bots loaded; nothing will run until bots are added");
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone()));
    let id = args
        .worker_id
        .as_deref()
        .map_or_else(default_worker_id, unique_worker_id);
    let mut tasks = tokio::task::JoinSet::new();
    let web_started = web.is_some();
    if let Some(config) = web {
        let app = crate::server::App::new(db.clone(), bots.clone(), config, documents.clone());
        let (_, server) = crate::server::start(app, shutdown.clone()).await?;
        tasks.spawn(async move {
            if let Ok(Err(e)) = server.await {
                tracing::error!(error = %e, "the web server stopped");
            }
        });
    }
    if scheduler {
        let s = Scheduler::new(db.clone(), bots.clone(), &id);
        tasks.spawn(s.run(shutdown.clone()));
        let notifier = Notifier::new(db.clone(), bots.clone(), secrets.clone(), &id);
        tasks.spawn(notifier.run(shutdown.clone()));
        let folders =
            FolderIntake::new(db.clone(), documents.clone(), &bots, &id).with_pauses(db.clone());
        if !folders.is_empty() {
            tasks.spawn(folders.run(shutdown.clone()));
        }
    }
    if scheduler || web_started {
        tasks.spawn(rollup_loop(db.clone(), shutdown.clone()));
    }
    if let Some(retention) = retention {
        tasks.spawn(prune_loop(
            db.clone(),
            documents.clone(),
            retention,
            shutdown.clone(),
        ));
    }
    let served = if workers {
        let served = tokio::task::spawn_blocking({
            let asked = args.kinds.clone();
            move || crate::bot::kinds::Served::check(&asked)
        })
        .await?;
        let served = match served {
            Ok(served) => served,
            Err(why) => {
                tracing::error!("{why}");
                return Ok(exit::USAGE);
            }
        };
        for (kind, why) in &served.missing {
            tracing::warn!(
                kind,
                "this worker cannot run `{kind}` steps and leaves their jobs to other workers: {why}"
            );
        }
        served
    } else {
        crate::bot::kinds::Served::default()
    };
    let worker = workers.then(|| {
        let mut cfg = WorkerConfig::new(args.concurrency);
        cfg.served = served;
        cfg.id = id.clone();
        if let Some(p) = args.prefetch {
            cfg.prefetch = p;
        }
        cfg.lease = args.lease;
        cfg.heartbeat = args.heartbeat.min(args.lease / 3);
        cfg.poll_interval = args.poll_interval;
        cfg.grace = args.grace;
        cfg.secrets = secrets.clone();
        cfg.documents = documents.clone();
        cfg.scratch = scratch.clone();
        cfg.rescue_interval =
            (args.lease / 4).clamp(Duration::from_millis(200), Duration::from_secs(10));
        Worker::new(db.clone(), bots.clone(), cfg)
    });
    if let Some(w) = worker {
        w.run(shutdown.clone()).await;
    } else {
        shutdown.cancelled().await;
    }
    while tasks.join_next().await.is_some() {}
    Ok(exit::OK)
}

/// `clerk web`: the web pages and the API alone, until stopped.
pub(super) async fn web(
    db: JobDb,
    bots: Arc<BotRegistry>,
    config: crate::server::WebConfig,
    documents: crate::document_store::Documents,
) -> anyhow::Result<u8> {
    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone()));
    let app = crate::server::App::new(db.clone(), bots, config, documents);
    let (_, server) = crate::server::start(app, shutdown.clone()).await?;
    let rollups = tokio::spawn(rollup_loop(db, shutdown));
    server.await??;
    let _ = rollups.await;
    Ok(exit::OK)
}

/// First SIGTERM or Ctrl-C: drain. Second: leave at once (leases expire and
/// other workers take the jobs over).
async fn watch_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        tracing::warn!("cannot listen for SIGTERM");
        return;
    };
    let Ok(mut int) = signal(SignalKind::interrupt()) else {
        tracing::warn!("cannot listen for SIGINT");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("signal received; draining (send again to stop at once)");
    shutdown.cancel();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::warn!("second signal; stopping without draining");
    std::process::exit(130);
}

/// How often the daily figures are rolled up.
const ROLLUP_EVERY: Duration = Duration::from_secs(300);

/// Keep the daily figures rolled up, so the dashboard reads days, not jobs.
async fn rollup_loop(db: JobDb, shutdown: CancellationToken) {
    loop {
        crate::stats::rollup_logged(db.as_ref()).await;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(ROLLUP_EVERY) => {}
        }
    }
}

/// What pruning deleted.
pub(super) struct Pruned {
    pub jobs: u64,
    pub days: u64,
    pub keys: u64,
    pub documents: crate::document_store::Collected,
}

/// Delete what is past its retention: finished jobs in batches until none
/// are left, daily figures, and keys whose jobs are gone. The days of the
/// jobs are rolled up first, so their figures outlive them.
pub(super) async fn prune_all(
    db: &JobDb,
    documents: &dyn crate::documents::store::DocumentStore,
    keep: &Retention,
) -> anyhow::Result<Pruned> {
    let now = now_ms();
    crate::stats::rollup(db.as_ref(), now).await?;
    let days = db
        .prune_daily(crate::stats::day_of(now - keep.stats.as_millis() as i64))
        .await?;
    let jobs = prune_jobs(db, keep.jobs).await?;
    let keys = db
        .prune_keys(now.saturating_sub(keep.keys.as_millis() as i64))
        .await?;
    // The documents of the jobs just pruned go with them.
    let documents =
        crate::document_store::collect_garbage(documents, db.as_ref(), keep.document_grace)
            .await
            .map_err(anyhow::Error::msg)?;
    Ok(Pruned {
        jobs,
        days,
        keys,
        documents,
    })
}

/// Delete finished jobs older than `age`, in batches, until none are left.
async fn prune_jobs(db: &JobDb, age: Duration) -> crate::jobs::Result<u64> {
    let before = now_ms() - age.as_millis() as i64;
    let mut total = 0;
    loop {
        let n = db.prune(before, PRUNE_BATCH).await?;
        total += n;
        if n < u64::from(PRUNE_BATCH) {
            return Ok(total);
        }
        // Let the workers' writes in between batches.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn prune_loop(
    db: JobDb,
    documents: crate::document_store::Documents,
    keep: Retention,
    shutdown: CancellationToken,
) {
    loop {
        match prune_all(&db, documents.as_ref(), &keep).await {
            Ok(p) if p.jobs + p.days + p.keys + p.documents.deleted == 0 => {}
            Ok(p) => tracing::info!(
                jobs = p.jobs,
                daily_figures = p.days,
                keys = p.keys,
                documents = p.documents.deleted,
                freed_bytes = p.documents.freed_bytes,
                "pruned finished jobs, daily figures, keys and documents past retention"
            ),
            Err(e) => tracing::warn!(error = %e, "pruning finished jobs failed"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}
