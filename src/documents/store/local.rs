//! The local document store: a folder (by default `documents/` in the data
//! folder) with each document at `<first two hex digits>/<sha256>` and what
//! it is beside it in `<sha256>.json`. Content is written under a partial
//! name, flushed and renamed, so a crash never leaves half a document under
//! its hash; the description goes first, so a document found is described.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use async_trait::async_trait;

use super::{DocumentStore, Kept, StoreError, StoreResult, StoredDocument, is_sha256};

#[derive(Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn content_path(&self, sha256: &str) -> PathBuf {
        self.root.join(&sha256[..2]).join(sha256)
    }

    fn error(&self, what: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::new(self, format!("{what}: {e}"))
    }

    /// Write one document's files unless its content is there; touch it if
    /// it is. Returns the partial file to flush and rename, if any.
    fn stage(&self, document: &StoredDocument, content: &[u8]) -> StoreResult<Option<PathBuf>> {
        if !is_sha256(&document.sha256) {
            return Err(self.error("refused", format!("{:?} is not a SHA-256", document.sha256)));
        }
        let path = self.content_path(&document.sha256);
        if path.exists() {
            touch(&path).map_err(|e| self.error(&format!("cannot touch {}", path.display()), e))?;
            return Ok(None);
        }
        let dir = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir)
            .map_err(|e| self.error(&format!("cannot create {}", dir.display()), e))?;
        let meta = serde_json::to_vec(document).map_err(|e| self.error("description", e))?;
        let meta_path = dir.join(format!("{}.json", document.sha256));
        write_private(
            &dir.join(format!(".{}.json.partial", document.sha256)),
            &meta,
        )
        .and_then(|p| std::fs::rename(p, &meta_path))
        .map_err(|e| self.error(&format!("cannot write {}", meta_path.display()), e))?;
        let partial = dir.join(format!(".{}.partial", document.sha256));
        write_private(&partial, content)
            .map_err(|e| self.error(&format!("cannot write {}", partial.display()), e))?;
        Ok(Some(partial))
    }

    fn put_all_now(&self, documents: &[(StoredDocument, &[u8])]) -> StoreResult<()> {
        let mut staged = Vec::new();
        let result = (|| {
            for (document, content) in documents {
                if staged
                    .iter()
                    .any(|(_, sha): &(PathBuf, &str)| *sha == document.sha256)
                {
                    continue;
                }
                if let Some(partial) = self.stage(document, content)? {
                    staged.push((partial, document.sha256.as_str()));
                }
            }
            // Every partial file is written before any is flushed: the disk
            // writes them out together, and each flush then finds its file
            // mostly written. (Flushing the whole file system instead, with
            // `syncfs`, took twice as long: it also writes out every other
            // program's files.)
            for (partial, _) in &staged {
                std::fs::File::open(partial)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| self.error(&format!("cannot flush {}", partial.display()), e))?;
            }
            let mut dirs = Vec::new();
            for (partial, sha) in &staged {
                let path = self.content_path(sha);
                std::fs::rename(partial, &path)
                    .map_err(|e| self.error(&format!("cannot rename {}", partial.display()), e))?;
                if let Some(dir) = path.parent()
                    && !dirs.contains(&dir.to_path_buf())
                {
                    dirs.push(dir.to_path_buf());
                }
            }
            for dir in dirs {
                std::fs::File::open(&dir)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| self.error(&format!("cannot flush {}", dir.display()), e))?;
            }
            Ok(())
        })();
        if result.is_err() {
            for (partial, _) in &staged {
                let _ = std::fs::remove_file(partial);
            }
        }
        result
    }

    fn get_now(&self, sha256: &str) -> StoreResult<Option<(StoredDocument, Vec<u8>)>> {
        if !is_sha256(sha256) {
            return Ok(None);
        }
        let path = self.content_path(sha256);
        let content = match std::fs::read(&path) {
            Ok(content) => content,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.error(&format!("cannot read {}", path.display()), e)),
        };
        let meta_path = path.with_file_name(format!("{sha256}.json"));
        let document = std::fs::read(&meta_path)
            .ok()
            .and_then(|m| serde_json::from_slice::<StoredDocument>(&m).ok())
            // A description lost by hand: the content still says what it is.
            .unwrap_or_else(|| StoredDocument::of(&content, sha256, None));
        Ok(Some((document, content)))
    }

    fn list_now(&self, after: &str, limit: u32) -> StoreResult<Vec<Kept>> {
        let mut kept = Vec::new();
        let mut fans: Vec<String> = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_hexdigit()))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(kept),
            Err(e) => return Err(self.error(&format!("cannot list {}", self.root.display()), e)),
        };
        fans.sort();
        for fan in fans
            .iter()
            .filter(|f| f.as_str() >= after.get(..2).unwrap_or(""))
        {
            let dir = self.root.join(fan);
            let entries = std::fs::read_dir(&dir)
                .map_err(|e| self.error(&format!("cannot list {}", dir.display()), e))?;
            let mut here: Vec<Kept> = entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if !is_sha256(&name) || name.as_str() <= after {
                        return None;
                    }
                    let meta = e.metadata().ok()?;
                    Some(Kept {
                        sha256: name,
                        size: meta.len(),
                        touched_at: meta.modified().map(unix_ms).unwrap_or(0),
                    })
                })
                .collect();
            here.sort_by(|a, b| a.sha256.cmp(&b.sha256));
            kept.extend(here);
            if kept.len() >= limit as usize {
                kept.truncate(limit as usize);
                break;
            }
        }
        Ok(kept)
    }

    fn delete_now(&self, sha256: &[String]) -> StoreResult<u64> {
        let mut deleted = 0;
        for sha in sha256.iter().filter(|s| is_sha256(s)) {
            let path = self.content_path(sha);
            match std::fs::remove_file(&path) {
                Ok(()) => deleted += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.error(&format!("cannot delete {}", path.display()), e)),
            }
            let _ = std::fs::remove_file(path.with_file_name(format!("{sha}.json")));
        }
        Ok(deleted)
    }
}

/// Write a file only its owner may read; the path, for chaining.
fn write_private<'a>(path: &'a Path, content: &[u8]) -> std::io::Result<&'a Path> {
    std::fs::write(path, content)?;
    super::private(path)?;
    Ok(path)
}

/// Note that a kept document was put again now.
fn touch(path: &Path) -> std::io::Result<()> {
    std::fs::File::options()
        .append(true)
        .open(path)?
        .set_modified(SystemTime::now())
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// File work off the async threads.
async fn blocking<T: Send + 'static>(
    store: &LocalStore,
    work: impl FnOnce(&LocalStore) -> StoreResult<T> + Send + 'static,
) -> StoreResult<T> {
    let copy = store.clone();
    tokio::task::spawn_blocking(move || work(&copy))
        .await
        .map_err(|e| store.error("the file task failed", e))?
}

#[async_trait]
impl DocumentStore for LocalStore {
    fn describe(&self) -> String {
        format!("the folder {}", self.root.display())
    }

    async fn put(&self, document: &StoredDocument, content: &[u8]) -> StoreResult<()> {
        let (document, content) = (document.clone(), content.to_vec());
        blocking(self, move |s| {
            s.put_all_now(&[(document, content.as_slice())])
        })
        .await
    }

    async fn put_all(&self, documents: &[(StoredDocument, &[u8])]) -> StoreResult<()> {
        let owned: Vec<(StoredDocument, Vec<u8>)> = documents
            .iter()
            .map(|(d, c)| (d.clone(), c.to_vec()))
            .collect();
        blocking(self, move |s| {
            let borrowed: Vec<(StoredDocument, &[u8])> = owned
                .iter()
                .map(|(d, c)| (d.clone(), c.as_slice()))
                .collect();
            s.put_all_now(&borrowed)
        })
        .await
    }

    async fn get(&self, sha256: &str) -> StoreResult<Option<(StoredDocument, Vec<u8>)>> {
        let sha256 = sha256.to_string();
        blocking(self, move |s| s.get_now(&sha256)).await
    }

    async fn list_after(&self, after: &str, limit: u32) -> StoreResult<Vec<Kept>> {
        let after = after.to_string();
        blocking(self, move |s| s.list_now(&after, limit)).await
    }

    async fn delete(&self, sha256: &[String]) -> StoreResult<u64> {
        let sha256 = sha256.to_vec();
        blocking(self, move |s| s.delete_now(&sha256)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_local_folder_passes_the_store_contract() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("documents"));
        super::super::compliance::check(&store).await;
        // Nothing but content and descriptions is left: no partial files.
        let mut names: Vec<String> = walk(dir.path());
        names.retain(|n| n.contains(".partial"));
        assert!(names.is_empty(), "{names:?}");
    }

    fn walk(dir: &Path) -> Vec<String> {
        let mut names = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.path().is_dir() {
                names.extend(walk(&e.path()));
            } else {
                names.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        names
    }
}
