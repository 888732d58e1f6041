use super::*;

#[async_trait]
impl DocumentRows for PgStore {
    async fn put_document(&self, document: &DocumentRow, content: &[u8]) -> Result<()> {
        // A document put again keeps its content (the same, by its hash)
        // and only moves its touch.
        sqlx::query(
            "INSERT INTO documents (sha256, name, media_type, size, touched_at, content)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (sha256) DO UPDATE SET touched_at = GREATEST(documents.touched_at, excluded.touched_at)",
        )
        .bind(&document.sha256)
        .bind(&document.name)
        .bind(&document.media_type)
        .bind(document.size as i64)
        .bind(now_ms())
        .bind(content)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn document(&self, sha256: &str) -> Result<Option<(DocumentRow, Vec<u8>)>> {
        let row = sqlx::query(
            "SELECT sha256, name, media_type, size, content FROM documents WHERE sha256 = $1",
        )
        .bind(sha256)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| rows::document(&r)).transpose()
    }

    async fn documents_after(&self, after: &str, limit: u32) -> Result<Vec<KeptDocument>> {
        let rows = sqlx::query(
            "SELECT sha256, size, touched_at FROM documents WHERE sha256 > $1 ORDER BY sha256 LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::kept_document).collect()
    }

    async fn delete_documents(&self, sha256: &[String]) -> Result<u64> {
        let done = sqlx::query("DELETE FROM documents WHERE sha256 = ANY($1)")
            .bind(sha256)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn documents_in_use(&self, sha256: &[String]) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT input->>'sha256' FROM jobs
             WHERE input ? 'sha256' AND input->>'sha256' = ANY($1)",
        )
        .bind(sha256)
        .fetch_all(&self.pool)
        .await?)
    }
}
