//! A worker says what it serves: at start and every ten seconds, the
//! step kinds it runs and the bots whose jobs it claims go into the job
//! database's roster, and it takes itself off when it stops. `clerk runs
//! list` reads the roster to show a queued job no live worker serves.

use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::jobs::{WORKER_ANNOUNCE_EVERY as ANNOUNCE_EVERY, WorkerRow, now_ms};

/// The bots this worker claims jobs of: those whose every step kind it runs.
pub(super) fn served_bots(shared: &Shared) -> Vec<String> {
    shared
        .bots
        .iter()
        .filter(|b| shared.config.served.lacking(b).is_empty())
        .map(|b| b.name.clone())
        .collect()
}

pub(super) async fn announce_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let row = || WorkerRow {
        id: shared.config.id.clone(),
        kinds: shared
            .config
            .served
            .kinds
            .iter()
            .map(|k| k.to_string())
            .collect(),
        bots: served_bots(&shared),
        seen_at: now_ms(),
    };
    loop {
        if let Err(e) = shared.db.announce(&row()).await {
            tracing::debug!(error = %e, "cannot announce this worker; will try again");
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(ANNOUNCE_EVERY) => {}
        }
    }
    if let Err(e) = shared.db.retire(&shared.config.id).await {
        tracing::debug!(error = %e, "cannot take this worker off the roster");
    }
}
