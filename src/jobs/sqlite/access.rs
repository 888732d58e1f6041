use super::*;

/// A unique name taken: the insert's error, said as what the user did.
fn taken(e: sqlx::Error, what: &'static str, name: &str) -> JobsError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => JobsError::AlreadyExists {
            what,
            name: name.to_string(),
        },
        _ => JobsError::Database(e),
    }
}

#[async_trait]
impl AccessStore for SqliteStore {
    async fn add_user(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        actor: &str,
    ) -> Result<User> {
        let mut tx = self.write().await?;
        let sql = format!(
            "INSERT INTO users (name, role, password_hash, created_at, created_by)
             VALUES (?, ?, ?, ?, ?) RETURNING {}",
            rows::USER_COLUMNS
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .bind(role.as_str())
            .bind(password_hash)
            .bind(now_ms())
            .bind(actor)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| taken(e, "user", name))?;
        tx.commit().await?;
        rows::user(&row)
    }

    async fn users(&self) -> Result<Vec<User>> {
        let sql = format!("SELECT {} FROM users ORDER BY name", rows::USER_COLUMNS);
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(rows::user).collect()
    }

    async fn set_user(
        &self,
        name: &str,
        role: Option<Role>,
        groups: Option<&[String]>,
    ) -> Result<bool> {
        let groups = groups
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| JobsError::Corrupt(e.to_string()))?;
        let mut tx = self.write().await?;
        let changed = sqlx::query(
            "UPDATE users SET role = COALESCE(?, role), group_names = COALESCE(?, group_names)
             WHERE name = ?",
        )
        .bind(role.map(Role::as_str))
        .bind(groups)
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(changed > 0)
    }

    async fn remove_user(&self, name: &str) -> Result<bool> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE name = ?)")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let gone = sqlx::query("DELETE FROM users WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(gone > 0)
    }

    async fn user_with_password(&self, name: &str) -> Result<Option<(User, String)>> {
        let sql = format!(
            "SELECT {}, password_hash FROM users WHERE name = ?",
            rows::USER_COLUMNS
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| Ok((rows::user(&r)?, r.try_get("password_hash")?)))
            .transpose()
    }

    async fn add_token(
        &self,
        name: &str,
        role: Role,
        token_hash: &str,
        actor: &str,
    ) -> Result<ApiToken> {
        let mut tx = self.write().await?;
        let sql = format!(
            "INSERT INTO api_tokens (name, role, token_hash, created_at, created_by)
             VALUES (?, ?, ?, ?, ?) RETURNING {}",
            rows::TOKEN_COLUMNS
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .bind(role.as_str())
            .bind(token_hash)
            .bind(now_ms())
            .bind(actor)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| taken(e, "token", name))?;
        tx.commit().await?;
        rows::token(&row)
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>> {
        let sql = format!(
            "SELECT {} FROM api_tokens ORDER BY name",
            rows::TOKEN_COLUMNS
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(rows::token).collect()
    }

    async fn remove_token(&self, name: &str) -> Result<bool> {
        let mut tx = self.write().await?;
        let gone = sqlx::query("DELETE FROM api_tokens WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(gone > 0)
    }

    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<ApiToken>> {
        let sql = format!(
            "SELECT {} FROM api_tokens WHERE token_hash = ?",
            rows::TOKEN_COLUMNS
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(token_hash)
            .fetch_optional(&self.reader)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let token = rows::token(&row)?;
        // Recording the use is worth a write only about once a minute.
        let now = now_ms();
        if token.last_used_at.is_none_or(|t| now - t > 60_000) {
            let mut tx = self.write().await?;
            sqlx::query("UPDATE api_tokens SET last_used_at = ? WHERE id = ?")
                .bind(now)
                .bind(token.id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(Some(token))
    }

    async fn add_session(
        &self,
        id_hash: &str,
        user_id: i64,
        csrf: &str,
        expires_at: i64,
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.write().await?;
        // Ended sessions are swept as new ones start.
        sqlx::query("DELETE FROM sessions WHERE expires_at < ?")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, csrf, created_at, expires_at, last_seen_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(id_hash)
        .bind(user_id)
        .bind(csrf)
        .bind(now)
        .bind(expires_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn session(&self, id_hash: &str, extend_to: i64) -> Result<Option<Session>> {
        let now = now_ms();
        let sql = format!(
            "SELECT s.csrf, s.expires_at, s.last_seen_at, {} FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id_hash = ? AND s.expires_at > ?",
            rows::USER_COLUMNS
                .split(", ")
                .map(|c| format!("u.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id_hash)
            .bind(now)
            .fetch_optional(&self.reader)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let last_seen: i64 = row.try_get("last_seen_at")?;
        let mut expires_at: i64 = row.try_get("expires_at")?;
        // Sliding expiry, written at most once a minute.
        if extend_to > expires_at && now - last_seen > 60_000 {
            let mut tx = self.write().await?;
            sqlx::query("UPDATE sessions SET expires_at = ?, last_seen_at = ? WHERE id_hash = ?")
                .bind(extend_to)
                .bind(now)
                .bind(id_hash)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            expires_at = extend_to;
        }
        Ok(Some(Session {
            user: rows::user(&row)?,
            csrf: row.try_get("csrf")?,
            expires_at,
        }))
    }

    async fn end_session(&self, id_hash: &str) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM sessions WHERE id_hash = ?")
            .bind(id_hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
