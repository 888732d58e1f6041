//! The document store: where the documents jobs refer to are kept, by the
//! SHA-256 of their content, with the name and media type they came with.
//!
//! Intake puts each document it takes here and queues its job with the
//! document's hash (`input.sha256`), never a path: any worker on any
//! machine that reaches the store reads the same bytes. One narrow trait,
//! [`DocumentStore`], is the seam; behind it are the local folder (the
//! embedded default, [`LocalStore`]), the job database (a PostgreSQL
//! deployment needs nothing else) and S3-compatible storage ([`S3Store`]).
//!
//! Content-named files for a folder trigger's `processed/` are in `files`.

mod files;
mod local;
mod s3;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

pub use files::{path_for, private, put};
pub use local::LocalStore;
pub use s3::S3Store;

/// A digest in lowercase hex.
pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Whether `text` is a SHA-256 in lowercase hex: the only names a store
/// accepts, so a hash from a job's input never leads anywhere else.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A file name a sender chose, made safe to write: the last path component
/// only (`../../etc/passwd` is `passwd`), no control characters, no leading
/// dots, at most 200 bytes; `attachment` when nothing is left.
pub fn safe_file_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| {
            if matches!(c, ':' | '*' | '?' | '"' | '<' | '>' | '|') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let mut cleaned = cleaned.trim().trim_start_matches('.').trim().to_string();
    while cleaned.len() > 200 {
        cleaned.pop();
    }
    if cleaned.is_empty() {
        "attachment".into()
    } else {
        cleaned
    }
}

/// What a store keeps beside a document's content.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredDocument {
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// The name it came with (an attachment's, a dropped file's).
    pub name: String,
    /// `application/pdf`, `image/png`, …; `application/octet-stream` when
    /// not known.
    pub media_type: String,
    pub size: u64,
}

impl StoredDocument {
    /// The description of `content` named `name`; its media type sniffed
    /// from the content unless `media_type` gives it.
    pub fn of(content: &[u8], name: &str, media_type: Option<&str>) -> Self {
        StoredDocument {
            sha256: sha256_hex(content),
            name: name.to_string(),
            media_type: media_type
                .or_else(|| super::image::media_type(content))
                .unwrap_or("application/octet-stream")
                .to_string(),
            size: content.len() as u64,
        }
    }

    /// Name this document in a job's input as every job that carries one
    /// does, whoever queued it: `name`, `sha256`, `size` and `media_type`.
    /// The worker gives the job's steps a copy of it as `input.file`.
    pub fn name_in(&self, input: &mut serde_json::Map<String, serde_json::Value>) {
        use serde_json::Value;
        input.insert("name".into(), Value::String(self.name.clone()));
        input.insert("sha256".into(), Value::String(self.sha256.clone()));
        input.insert("size".into(), Value::from(self.size));
        input.insert("media_type".into(), Value::String(self.media_type.clone()));
    }
}

/// A kept document as garbage collection and migration see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub sha256: String,
    pub size: u64,
    /// When it was last put (Unix ms): a document put again for a new job
    /// counts from then.
    pub touched_at: i64,
}

/// What went wrong with a store, and which.
#[derive(Debug, Clone, thiserror::Error)]
#[error("document store {store}: {reason}")]
pub struct StoreError {
    /// The store as [`DocumentStore::describe`] says it.
    pub store: String,
    pub reason: String,
}

impl StoreError {
    pub fn new(store: &dyn DocumentStore, reason: impl std::fmt::Display) -> Self {
        StoreError {
            store: store.describe(),
            reason: reason.to_string(),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Where documents are kept. Putting the same content twice keeps it once;
/// every method is safe to repeat after a crash.
#[async_trait]
pub trait DocumentStore: Send + Sync + 'static {
    /// Which store this is, for messages: "the folder /srv/clerk/documents".
    fn describe(&self) -> String;

    /// Keep a document (its hash must be its content's). A document kept
    /// already is only touched, so garbage collection counts from now.
    async fn put(&self, document: &StoredDocument, content: &[u8]) -> StoreResult<()>;

    /// Keep several documents; a store that can makes them durable together.
    async fn put_all(&self, documents: &[(StoredDocument, &[u8])]) -> StoreResult<()> {
        for (document, content) in documents {
            self.put(document, content).await?;
        }
        Ok(())
    }

    /// A kept document and its content; `None` when it is not kept here.
    async fn get(&self, sha256: &str) -> StoreResult<Option<(StoredDocument, Vec<u8>)>>;

    /// Kept documents in hash order after `after` (`""`: from the first),
    /// at most `limit`; the end of the listing is an empty page (a page may
    /// hold fewer before it).
    async fn list_after(&self, after: &str, limit: u32) -> StoreResult<Vec<Kept>>;

    /// Delete kept documents; returns how many were there.
    async fn delete(&self, sha256: &[String]) -> StoreResult<u64>;
}

impl std::fmt::Debug for dyn DocumentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// What every store must do, as one check each implementation's tests run.
#[doc(hidden)]
pub mod compliance;
