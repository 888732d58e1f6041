//! What the benchmarks share: a fresh, empty, migrated job database.

use std::path::Path;

use clerk::jobs::{self, JobDb};

/// A fresh job database named `name`: on PostgreSQL, dropped and created
/// anew on the server `pg_admin` points at; on SQLite, the file `name.db`
/// in `tmp`. Migrated; returned with its URL.
pub async fn fresh_db(backend: &str, pg_admin: &str, tmp: &Path, name: &str) -> (JobDb, String) {
    let url = if backend == "postgres" {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(pg_admin)
            .await
            .expect("connect to PostgreSQL");
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .expect("create the database");
        }
        let base = pg_admin.rsplit_once('/').map_or(pg_admin, |(b, _)| b);
        format!("{base}/{name}")
    } else {
        format!("sqlite://{}", tmp.join(format!("{name}.db")).display())
    };
    let db = jobs::connect(&url).await.expect("open");
    db.migrate().await.expect("migrate");
    (db, url)
}
