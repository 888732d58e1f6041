//! Garbage collection: a document is deleted once no job in the database
//! refers to it (the jobs that did were pruned), in batches, and never
//! while a job may still need it.
//!
//! Intake puts a document and then queues its job; a document put again
//! for a new job is touched. So a document touched within `grace` of the
//! start is left alone whatever the jobs say (its job may be on its way
//! into the queue), and one older is deleted only if, when its batch is
//! looked at, no job refers to it. A job queued later for the same content
//! touches it again first, and a later collection sees that job.

use std::collections::HashSet;
use std::time::Duration;

use crate::documents::store::DocumentStore;
use crate::jobs::{DocumentRows, now_ms};

/// Documents looked at, and deleted, per batch.
const BATCH: u32 = 500;

/// What a collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Collected {
    /// Documents in the store when it was walked.
    pub examined: u64,
    /// Deleted: no job referred to them.
    pub deleted: u64,
    /// Their bytes.
    pub freed_bytes: u64,
    /// Kept because a job refers to them.
    pub in_use: u64,
    /// Kept because they were put within the grace time.
    pub recent: u64,
}

/// Delete the documents of `store` no job in `db` refers to, except those
/// put within `grace`.
pub async fn collect_garbage(
    store: &dyn DocumentStore,
    db: &dyn DocumentRows,
    grace: Duration,
) -> Result<Collected, String> {
    let cutoff = now_ms() - grace.as_millis() as i64;
    let mut done = Collected::default();
    let mut after = String::new();
    loop {
        let page = store
            .list_after(&after, BATCH)
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        after = last.sha256.clone();
        done.examined += page.len() as u64;
        let (old, recent): (Vec<_>, Vec<_>) = page.iter().partition(|k| k.touched_at < cutoff);
        done.recent += recent.len() as u64;
        let candidates: Vec<String> = old.iter().map(|k| k.sha256.clone()).collect();
        if candidates.is_empty() {
            continue;
        }
        let used: HashSet<String> = db
            .documents_in_use(&candidates)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .collect();
        done.in_use += used.len() as u64;
        let doomed: Vec<_> = old.iter().filter(|k| !used.contains(&k.sha256)).collect();
        if doomed.is_empty() {
            continue;
        }
        let shas: Vec<String> = doomed.iter().map(|k| k.sha256.clone()).collect();
        done.deleted += store.delete(&shas).await.map_err(|e| e.to_string())?;
        done.freed_bytes += doomed.iter().map(|k| k.size).sum::<u64>();
    }
    Ok(done)
}
