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
