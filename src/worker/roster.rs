//! A worker says what it serves: at start and every ten seconds, the
//! step kinds it runs and the bots whose jobs it claims go into the job
//! database's roster, and it takes itself off when it stops. `clerk runs
//! list` reads the roster to show a queued job no live worker serves.

use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::jobs::{WORKER_ANNOUNCE_EVERY as ANNOUNCE_EVERY, WorkerRow, now_ms};

/// The bots a worker serving `served` claims jobs of (those whose every
/// step it can run), and the others with why it cannot.
pub(super) fn sort_bots(
    bots: &crate::bot::BotRegistry,
    served: &crate::bot::kinds::Served,
) -> (Vec<String>, Vec<(String, Vec<String>)>) {
    let (mut runs, mut leaves) = (Vec::new(), Vec::new());
    for bot in bots.iter() {
        let why = served.cannot_run(bot);
        if why.is_empty() {
            runs.push(bot.name.clone());
        } else {
            leaves.push((bot.name.clone(), why));
        }
    }
    (runs, leaves)
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
        bots: shared.served_bots.clone(),
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
