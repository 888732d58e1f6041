//! The document store a deployment uses, chosen with `--documents`, and the
//! work that spans the store and the job database: which documents jobs
//! still need (garbage collection, `collect`) and moving documents from
//! one store to another (`migrate`).
//!
//! The stores themselves are behind `documents::store::DocumentStore`; the
//! job database's is here (`database`) because its rows are the job
//! database's.

mod collect;
mod database;
mod migrate;

use std::path::Path;
use std::sync::Arc;

use crate::documents::store::{DocumentStore, LocalStore};
use crate::jobs::JobDb;

pub use collect::{Collected, collect_garbage};
pub use database::DatabaseStore;
pub use migrate::{Migrated, adopt_job_files, migrate};

/// A store for a deployment's documents, shared by every part that reads
/// or keeps them.
pub type Documents = Arc<dyn DocumentStore>;

/// Which document store to use, as `--documents` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// A folder; `None`: `documents/` in the data folder.
    Local(Option<std::path::PathBuf>),
    /// The job database's `documents` table.
    Database,
    /// An S3-compatible bucket: `s3://bucket/prefix`.
    S3(String),
}

impl std::str::FromStr for StoreChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "local" => Ok(StoreChoice::Local(None)),
            "database" | "postgres" => Ok(StoreChoice::Database),
            _ if s.starts_with("s3://") => Ok(StoreChoice::S3(s.to_string())),
            _ => match s.strip_prefix("local:") {
                Some(path) if !path.is_empty() => Ok(StoreChoice::Local(Some(path.into()))),
                _ => Err(format!(
                    "unknown document store {s:?}: use `local` (a folder in the data folder), \
                     `local:/path`, `database` (the job database; `postgres` is the same) \
                     or `s3://bucket/prefix` (S3-compatible storage)"
                )),
            },
        }
    }
}

impl StoreChoice {
    /// The store this choice names, for a data folder and a job database.
    pub fn open(&self, data_dir: &Path, db: &JobDb) -> Result<Documents, String> {
        let absolute = |p: std::path::PathBuf| std::path::absolute(&p).unwrap_or(p);
        Ok(match self {
            StoreChoice::Local(None) => {
                Arc::new(LocalStore::new(absolute(data_dir.join("documents"))))
            }
            StoreChoice::Local(Some(path)) => Arc::new(LocalStore::new(absolute(path.clone()))),
            StoreChoice::Database => Arc::new(DatabaseStore::new(db.clone())),
            StoreChoice::S3(url) => Arc::new(crate::documents::store::S3Store::from_url(url)?),
        })
    }
}

/// A copy of a stored document in `dir` under the name it came with (made
/// safe for a file name), for a step that needs a file: the caller removes
/// `dir` when done. `None` when the store does not keep it.
pub async fn fetch_copy(
    store: &dyn DocumentStore,
    sha256: &str,
    dir: &Path,
) -> Result<Option<std::path::PathBuf>, crate::documents::store::StoreError> {
    let Some((document, content)) = store.get(sha256).await? else {
        return Ok(None);
    };
    let name = crate::documents::store::safe_file_name(&document.name);
    let path = dir.join(name);
    let io = |e: std::io::Error| {
        crate::documents::store::StoreError::new(
            store,
            format!("cannot copy {sha256} to {}: {e}", dir.display()),
        )
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::write(&path, &content).map_err(io)?;
    crate::documents::store::private(&path).map_err(io)?;
    Ok(Some(path))
}
