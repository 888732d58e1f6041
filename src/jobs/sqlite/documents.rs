use super::*;

#[async_trait]
impl DocumentRows for SqliteStore {
    async fn put_document(&self, document: &DocumentRow, content: &[u8]) -> Result<()> {
        let mut tx = self.write().await?;
        // A document put again keeps its content (the same, by its hash)
        // and only moves its touch.
        sqlx::query(
            "INSERT INTO documents (sha256, name, media_type, size, touched_at, content)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (sha256) DO UPDATE SET touched_at = MAX(touched_at, excluded.touched_at)",
        )
        .bind(&document.sha256)
        .bind(&document.name)
        .bind(&document.media_type)
        .bind(document.size as i64)
        .bind(now_ms())
        .bind(content)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn document(&self, sha256: &str) -> Result<Option<(DocumentRow, Vec<u8>)>> {
        let row = sqlx::query(
            "SELECT sha256, name, media_type, size, content FROM documents WHERE sha256 = ?",
        )
        .bind(sha256)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| rows::document(&r)).transpose()
    }

    async fn documents_after(&self, after: &str, limit: u32) -> Result<Vec<KeptDocument>> {
        let rows = sqlx::query(
            "SELECT sha256, size, touched_at FROM documents WHERE sha256 > ? ORDER BY sha256 LIMIT ?",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(rows::kept_document).collect()
    }

    async fn delete_documents(&self, sha256: &[String]) -> Result<u64> {
        let mut tx = self.write().await?;
        let mut deleted = 0;
        for sha in sha256 {
            deleted += sqlx::query("DELETE FROM documents WHERE sha256 = ?")
                .bind(sha)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(deleted)
    }

    async fn documents_in_use(&self, sha256: &[String]) -> Result<Vec<String>> {
        let mut used = Vec::new();
        // The expression is the index's, so each look-up uses it.
        for sha in sha256 {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM jobs WHERE json_extract(input, '$.sha256') = ? LIMIT 1",
            )
            .bind(sha)
            .fetch_optional(&self.reader)
            .await?;
            if found.is_some() {
                used.push(sha.clone());
            }
        }
        Ok(used)
    }
}
