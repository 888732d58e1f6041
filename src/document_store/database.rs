//! Documents kept in the job database: a PostgreSQL deployment shares its
//! documents the way it shares its jobs, with nothing else to run.

use async_trait::async_trait;

use crate::documents::store::{DocumentStore, Kept, StoreError, StoreResult, StoredDocument};
use crate::jobs::{DocumentRow, JobDb};

pub struct DatabaseStore {
    db: JobDb,
}

impl DatabaseStore {
    pub fn new(db: JobDb) -> Self {
        DatabaseStore { db }
    }

    fn error(&self, e: crate::jobs::JobsError) -> StoreError {
        StoreError::new(self, e)
    }
}

#[async_trait]
impl DocumentStore for DatabaseStore {
    fn describe(&self) -> String {
        "the job database".into()
    }

    async fn put(&self, document: &StoredDocument, content: &[u8]) -> StoreResult<()> {
        if !crate::documents::store::is_sha256(&document.sha256) {
            return Err(StoreError::new(
                self,
                format!("{:?} is not a SHA-256", document.sha256),
            ));
        }
        let row = DocumentRow {
            sha256: document.sha256.clone(),
            name: document.name.clone(),
            media_type: document.media_type.clone(),
            size: document.size,
        };
        self.db
            .put_document(&row, content)
            .await
            .map_err(|e| self.error(e))
    }

    async fn get(&self, sha256: &str) -> StoreResult<Option<(StoredDocument, Vec<u8>)>> {
        let found = self.db.document(sha256).await.map_err(|e| self.error(e))?;
        Ok(found.map(|(row, content)| {
            (
                StoredDocument {
                    sha256: row.sha256,
                    name: row.name,
                    media_type: row.media_type,
                    size: row.size,
                },
                content,
            )
        }))
    }

    async fn list_after(&self, after: &str, limit: u32) -> StoreResult<Vec<Kept>> {
        let rows = self
            .db
            .documents_after(after, limit)
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows
            .into_iter()
            .map(|k| Kept {
                sha256: k.sha256,
                size: k.size,
                touched_at: k.touched_at,
            })
            .collect())
    }

    async fn delete(&self, sha256: &[String]) -> StoreResult<u64> {
        self.db
            .delete_documents(sha256)
            .await
            .map_err(|e| self.error(e))
    }
}
