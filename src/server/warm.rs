//! Page images and words made before a reviewer asks: a scan's pages take
//! a moment to render and its words a few seconds to read (OCR), so the
//! server prepares them for the documents waiting for review, oldest
//! first, one at a time, and the review page opens at once.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::App;
use crate::jobs::ReviewFilter;

/// How often the queue is looked at for documents not yet prepared.
const EVERY: Duration = Duration::from_secs(10);

/// Documents prepared per look; the rest wait for the next.
const PER_LOOK: u32 = 50;

/// How often the cache is swept of what no one used for [`UNUSED_FOR`].
const SWEEP_EVERY: Duration = Duration::from_secs(3600);
const UNUSED_FOR: Duration = Duration::from_secs(7 * 86_400);

/// Prepare the documents of waiting reviews until `shutdown`, and sweep
/// the cache now and then. After a sweep every waiting document is
/// prepared again, which marks its entries used: they stay, and what
/// only finished jobs' pages held goes.
pub async fn run(app: App, shutdown: CancellationToken) {
    let mut done: HashSet<(i64, PathBuf)> = HashSet::new();
    let mut swept = std::time::Instant::now();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
        if swept.elapsed() >= SWEEP_EVERY {
            swept = std::time::Instant::now();
            let images = app.images.clone();
            if let Ok((entries, bytes)) =
                tokio::task::spawn_blocking(move || images.sweep(UNUSED_FOR)).await
                && entries > 0
            {
                tracing::info!(
                    entries,
                    bytes,
                    "page cache: removed what was not used for a week"
                );
            }
            done.clear();
        }
        let filter = ReviewFilter {
            limit: PER_LOOK,
            ..Default::default()
        };
        let Ok(items) = app.db.review_queue(&filter).await else {
            continue;
        };
        // Forget the documents no longer waiting.
        let waiting: HashSet<i64> = items.iter().map(|i| i.job_id).collect();
        done.retain(|(job, _)| waiting.contains(job));
        for item in items {
            if shutdown.is_cancelled() {
                return;
            }
            let Ok(Some(review)) = app.db.review(item.job_id).await else {
                continue;
            };
            let Some(file) = app
                .document_file(Some(&review.extraction), &review.input)
                .await
            else {
                continue;
            };
            if !done.insert((item.job_id, file.clone())) {
                continue;
            }
            let pages = review
                .extraction
                .get("pages")
                .and_then(Value::as_array)
                .map_or(1, |p| p.len().max(1));
            let images = app.images.clone();
            let job = item.job_id;
            // A document that cannot be shown is said so when a reviewer
            // opens it; here it is only not prepared.
            let _ = tokio::task::spawn_blocking(move || {
                let started = std::time::Instant::now();
                for page in 1..=pages {
                    let _ = images.page(&file, u32::try_from(page).unwrap_or(1));
                }
                let _ = images.words(&file);
                tracing::debug!(
                    job,
                    pages,
                    took_ms = started.elapsed().as_millis() as u64,
                    "review pages prepared"
                );
            })
            .await;
        }
    }
}
