//! Moving documents from one store to another (`clerk documents migrate`):
//! each document is copied, read back and compared by its hash, and only
//! then removed from where it was, so a run stopped at any point loses
//! nothing and a run again finishes the work without copying twice.

use crate::documents::store::{DocumentStore, sha256_hex};

/// Documents read per batch.
const BATCH: u32 = 200;

/// What a migration did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Migrated {
    /// Copied into the new store.
    pub copied: u64,
    /// There already (an earlier run, or intake since the switch).
    pub present: u64,
    /// Removed from the old store once safe in the new one.
    pub removed: u64,
    pub bytes: u64,
}

/// Copy every document of `from` into `to`, checked, then remove it from
/// `from` unless `keep`. `progress` is told after each document.
pub async fn migrate(
    from: &dyn DocumentStore,
    to: &dyn DocumentStore,
    keep: bool,
    mut progress: impl FnMut(&Migrated),
) -> Result<Migrated, String> {
    let mut done = Migrated::default();
    let mut after = String::new();
    loop {
        let page = from
            .list_after(&after, BATCH)
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        after = last.sha256.clone();
        for kept in &page {
            let there = to.get(&kept.sha256).await.map_err(|e| e.to_string())?;
            if there
                .as_ref()
                .is_some_and(|(_, c)| sha256_hex(c) == kept.sha256)
            {
                done.present += 1;
            } else {
                let Some((document, content)) =
                    from.get(&kept.sha256).await.map_err(|e| e.to_string())?
                else {
                    continue; // deleted since it was listed
                };
                if sha256_hex(&content) != document.sha256 {
                    return Err(format!(
                        "document {} in {} does not hash to its name; it is left where it is",
                        document.sha256,
                        from.describe()
                    ));
                }
                to.put(&document, &content)
                    .await
                    .map_err(|e| e.to_string())?;
                let back = to.get(&document.sha256).await.map_err(|e| e.to_string())?;
                if back.is_none_or(|(_, c)| c != content) {
                    return Err(format!(
                        "document {} did not read back from {} as written; it is left in {}",
                        document.sha256,
                        to.describe(),
                        from.describe()
                    ));
                }
                done.copied += 1;
                done.bytes += content.len() as u64;
            }
            if !keep {
                done.removed += from
                    .delete(std::slice::from_ref(&kept.sha256))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            progress(&done);
        }
    }
    Ok(done)
}

/// Put into `to` the documents of unfinished jobs queued before documents
/// were kept in a store: they name a file on this machine (`input.file`)
/// beside their hash, and a worker elsewhere could not read it. Each file
/// is put only if it still hashes to what the job says. Returns how many
/// documents were put, and the jobs whose file is gone or changed.
pub async fn adopt_job_files(
    db: &dyn crate::jobs::JobStore,
    to: &dyn DocumentStore,
) -> Result<(u64, Vec<i64>), String> {
    use crate::jobs::{JobState, ListFilter};
    let mut adopted = 0;
    let mut missing = Vec::new();
    for state in [JobState::Queued, JobState::Running, JobState::WaitingReview] {
        let mut before = None;
        loop {
            let filter = ListFilter {
                state: Some(state),
                limit: 500,
                before_id: before,
                ..Default::default()
            };
            let page = db.list(&filter).await.map_err(|e| e.to_string())?;
            let Some(last) = page.last() else { break };
            before = Some(last.id);
            for summary in &page {
                let Some(job) = db.job(summary.id).await.map_err(|e| e.to_string())? else {
                    continue;
                };
                let (Some(sha256), Some(file)) = (
                    job.input.get("sha256").and_then(serde_json::Value::as_str),
                    job.input.get("file").and_then(serde_json::Value::as_str),
                ) else {
                    continue;
                };
                if to.get(sha256).await.map_err(|e| e.to_string())?.is_some() {
                    continue;
                }
                match std::fs::read(file) {
                    Ok(content) if sha256_hex(&content) == sha256 => {
                        let name = std::path::Path::new(file)
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        let name = job
                            .input
                            .get("name")
                            .and_then(serde_json::Value::as_str)
                            .unwrap_or(&name);
                        let document =
                            crate::documents::store::StoredDocument::of(&content, name, None);
                        to.put(&document, &content)
                            .await
                            .map_err(|e| e.to_string())?;
                        adopted += 1;
                    }
                    _ => missing.push(job.summary.id),
                }
            }
        }
    }
    Ok((adopted, missing))
}
