//! OCEL 2.0 as its SQLite file: `event`, `object`, their type maps, one
//! table per event and object type with its attributes, and the
//! event-object and object-object relations. This writes an export file,
//! not the job database; every value is bound, and the table and column
//! names made from type and attribute names keep letters and digits only.

use std::collections::BTreeMap;
use std::path::Path;

use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use super::{Log, time};

/// `review started` → `ReviewStarted`; a name already taken gets a number.
fn map_name(name: &str, taken: &mut Vec<String>) -> String {
    let mut out: String = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    if out.is_empty() {
        out = "Type".into();
    }
    let base = out.clone();
    let mut n = 2;
    while taken.contains(&out) {
        out = format!("{base}{n}");
        n += 1;
    }
    taken.push(out.clone());
    out
}

/// An attribute's column: lower case letters, digits and `_`.
fn column(name: &str) -> String {
    let c: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if c.starts_with("ocel_") || c.is_empty() {
        format!("a_{c}")
    } else {
        c
    }
}

async fn run(conn: &mut SqliteConnection, sql: String) -> sqlx::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Write the log to a new OCEL 2.0 SQLite file at `path` (replacing it).
pub async fn write_ocel_sqlite(log: &Log, path: &Path) -> Result<(), String> {
    let _ = std::fs::remove_file(path);
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    write(&mut conn, log)
        .await
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    conn.close().await.map_err(|e| e.to_string())
}

async fn write(conn: &mut SqliteConnection, log: &Log) -> sqlx::Result<()> {
    let mut tx = conn.begin().await?;
    // The standard's foreign keys are declared, and checked when the file
    // is complete, so events may name objects written after them.
    for sql in [
        "PRAGMA defer_foreign_keys = ON",
        "CREATE TABLE event_map_type (ocel_type TEXT PRIMARY KEY, ocel_type_map TEXT)",
        "CREATE TABLE object_map_type (ocel_type TEXT PRIMARY KEY, ocel_type_map TEXT)",
        "CREATE TABLE event (ocel_id TEXT PRIMARY KEY, ocel_type TEXT REFERENCES event_map_type (ocel_type))",
        "CREATE TABLE object (ocel_id TEXT PRIMARY KEY, ocel_type TEXT REFERENCES object_map_type (ocel_type))",
        "CREATE TABLE event_object (ocel_event_id TEXT REFERENCES event (ocel_id), ocel_object_id TEXT REFERENCES object (ocel_id), ocel_qualifier TEXT, PRIMARY KEY (ocel_event_id, ocel_object_id, ocel_qualifier))",
        "CREATE TABLE object_object (ocel_source_id TEXT REFERENCES object (ocel_id), ocel_target_id TEXT REFERENCES object (ocel_id), ocel_qualifier TEXT, PRIMARY KEY (ocel_source_id, ocel_target_id, ocel_qualifier))",
    ] {
        run(&mut tx, sql.into()).await?;
    }
    // Event types and their attributes.
    let mut event_types: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for e in &log.events {
        let cols = event_types.entry(&e.activity).or_default();
        for (n, _) in &e.attributes {
            let c = column(n);
            if !cols.contains(&c) {
                cols.push(c);
            }
        }
    }
    let mut taken = Vec::new();
    let mut event_map = BTreeMap::new();
    for (name, cols) in &event_types {
        let map = map_name(name, &mut taken);
        let defs: String = cols.iter().map(|c| format!(", \"{c}\" TEXT")).collect();
        run(
            &mut tx,
            format!(
                "CREATE TABLE \"event_{map}\" (ocel_id TEXT PRIMARY KEY REFERENCES event (ocel_id), ocel_time TIMESTAMP{defs})"
            ),
        )
        .await?;
        sqlx::query("INSERT INTO event_map_type (ocel_type, ocel_type_map) VALUES (?, ?)")
            .bind(*name)
            .bind(&map)
            .execute(&mut *tx)
            .await?;
        event_map.insert(*name, (map, cols.clone()));
    }
    for e in &log.events {
        sqlx::query("INSERT INTO event (ocel_id, ocel_type) VALUES (?, ?)")
            .bind(&e.id)
            .bind(&e.activity)
            .execute(&mut *tx)
            .await?;
        let (map, cols) = &event_map[e.activity.as_str()];
        let names: String = cols.iter().map(|c| format!(", \"{c}\"")).collect();
        let marks: String = cols.iter().map(|_| ", ?").collect();
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO \"event_{map}\" (ocel_id, ocel_time{names}) VALUES (?, ?{marks})"
        )))
        .bind(&e.id)
        .bind(time(e.start));
        for c in cols {
            let v = e
                .attributes
                .iter()
                .find(|(n, _)| &column(n) == c)
                .map(|(_, v)| v.clone());
            q = q.bind(v);
        }
        q.execute(&mut *tx).await?;
        for (object, qualifier) in &e.objects {
            sqlx::query("INSERT OR IGNORE INTO event_object (ocel_event_id, ocel_object_id, ocel_qualifier) VALUES (?, ?, ?)")
                .bind(&e.id)
                .bind(object)
                .bind(qualifier)
                .execute(&mut *tx)
                .await?;
        }
    }
    write_objects(&mut tx, log).await?;
    tx.commit().await
}

/// The object types, objects, their attributes and relations.
async fn write_objects(tx: &mut SqliteConnection, log: &Log) -> sqlx::Result<()> {
    // Object types, objects, their attributes and relations.
    let mut object_types: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for o in log.objects.values() {
        let cols = object_types.entry(o.kind).or_default();
        for (n, _, _) in &o.attributes {
            let c = column(n);
            if !cols.contains(&c) {
                cols.push(c);
            }
        }
    }
    let mut taken = Vec::new();
    let mut object_map = BTreeMap::new();
    for (name, cols) in &object_types {
        let map = map_name(name, &mut taken);
        let defs: String = cols.iter().map(|c| format!(", \"{c}\" TEXT")).collect();
        run(&mut *tx, format!("CREATE TABLE \"object_{map}\" (ocel_id TEXT REFERENCES object (ocel_id), ocel_time TIMESTAMP, ocel_changed_field TEXT{defs})")).await?;
        sqlx::query("INSERT INTO object_map_type (ocel_type, ocel_type_map) VALUES (?, ?)")
            .bind(*name)
            .bind(&map)
            .execute(&mut *tx)
            .await?;
        object_map.insert(*name, (map, cols.clone()));
    }
    for o in log.objects.values() {
        sqlx::query("INSERT INTO object (ocel_id, ocel_type) VALUES (?, ?)")
            .bind(&o.id)
            .bind(o.kind)
            .execute(&mut *tx)
            .await?;
        let (map, cols) = &object_map[o.kind];
        let names: String = cols.iter().map(|c| format!(", \"{c}\"")).collect();
        let marks: String = cols.iter().map(|_| ", ?").collect();
        // The values an object starts with, at the start of time.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO \"object_{map}\" (ocel_id, ocel_time, ocel_changed_field{names}) VALUES (?, ?, NULL{marks})"
        )))
        .bind(&o.id)
        .bind(time(0));
        for c in cols {
            let v = o
                .attributes
                .iter()
                .find(|(n, _, _)| &column(n) == c)
                .map(|(_, v, _)| v.clone());
            q = q.bind(v);
        }
        q.execute(&mut *tx).await?;
        for (target, qualifier) in &o.related {
            sqlx::query("INSERT OR IGNORE INTO object_object (ocel_source_id, ocel_target_id, ocel_qualifier) VALUES (?, ?, ?)")
                .bind(&o.id)
                .bind(target)
                .bind(qualifier)
                .execute(&mut *tx)
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_and_column_names_keep_letters_and_digits() {
        let mut taken = Vec::new();
        assert_eq!(map_name("review started", &mut taken), "ReviewStarted");
        assert_eq!(map_name("review-started", &mut taken), "ReviewStarted2");
        assert_eq!(
            map_name("\"; DROP TABLE event; --", &mut taken),
            "DROPTABLEEvent"
        );
        assert_eq!(column("Reason \"x\""), "reason__x_");
        assert_eq!(column("ocel_id"), "a_ocel_id");
    }
}
