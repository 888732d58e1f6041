//! The plans PostgreSQL picks for the batch statements, checked on a real
//! server with the statistics a busy queue usually has: gathered while no
//! job ran. A plan that compares every running job with every row of a
//! batch is correct but grows with the square of the load, so only a test
//! that reads the plan notices it. Likewise the `events` view: read whole
//! for each day's figures, it would be correct and slow.

use sqlx::Arguments;

use super::*;

// The parameters' types, in the order the store binds them. PostgreSQL
// cannot deduce them from the statements alone (it reads `$12` of a
// completion both as text and as bigint); clerk's binds give them.
const COMPLETE_TYPES: &str = "bigint[], bigint[], text[], bigint[], bigint[], bigint[], text[], text[], text[], text[], text[], bigint, text, \
     bigint[], bigint[], bigint[], text[], bigint[], bigint[], text[], text[], text[]";
const SAVE_TYPES: &str = "bigint[], bigint[], bigint[], bigint, text, \
     bigint[], bigint[], bigint[], text[], bigint[], bigint[], text[], text[], text[]";

/// The generic plan (the one a prepared statement settles on) of `sql`,
/// as indented JSON text.
async fn generic_plan(conn: &mut sqlx::PgConnection, sql: &str, types: &str) -> String {
    let arity = types.split(',').count();
    for setup in [
        "SET plan_cache_mode = force_generic_plan".to_string(),
        format!("PREPARE batch({types}) AS {sql}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(setup))
            .execute(&mut *conn)
            .await
            .expect("prepare");
    }
    let nulls = vec!["NULL"; arity].join(", ");
    let plan: Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN (FORMAT JSON) EXECUTE batch({nulls})"
    )))
    .fetch_one(&mut *conn)
    .await
    .expect("explain");
    sqlx::raw_sql("DEALLOCATE batch")
        .execute(&mut *conn)
        .await
        .expect("deallocate");
    serde_json::to_string_pretty(&plan).unwrap_or_default()
}

/// The plan of `sql` with `args`, read as the stats read it (sequential
/// scans off for the transaction), as indented JSON text.
async fn plan_read_by_index(
    conn: &mut sqlx::PgConnection,
    sql: &str,
    args: sqlx::postgres::PgArguments,
) -> String {
    use sqlx::Connection;
    let mut read = conn.begin().await.expect("begin");
    sqlx::query(stats::READ_BY_INDEX)
        .execute(&mut *read)
        .await
        .expect("set");
    let plan: Value = sqlx::query_scalar_with(
        sqlx::AssertSqlSafe(format!("EXPLAIN (FORMAT JSON) {sql}")),
        args,
    )
    .fetch_one(&mut *read)
    .await
    .expect("explain");
    read.rollback().await.expect("rollback");
    serde_json::to_string_pretty(&plan).unwrap_or_default()
}

/// A fresh database of its own, migrated; dropped by [`Scratch::drop_all`].
struct Scratch {
    server: sqlx::PgConnection,
    name: String,
    store: PgStore,
}

impl Scratch {
    async fn new() -> Scratch {
        use sqlx::Connection;
        let admin = std::env::var("CLERK_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("clerk_plans_{:08x}", rand::random::<u32>());
        let mut server = sqlx::PgConnection::connect(&admin)
            .await
            .expect("PostgreSQL is needed for this test");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut server)
            .await
            .expect("create database");
        let url = format!(
            "{}/{name}",
            admin.rsplit_once('/').map_or(&*admin, |(b, _)| b)
        );
        let store = PgStore::connect(&url).await.expect("connect");
        store.migrate().await.expect("migrate");
        Scratch {
            server,
            name,
            store,
        }
    }

    async fn drop_all(mut self) {
        self.store.pool.close().await;
        self.store.claim_pool.close().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut self.server)
        .await
        .expect("drop database");
    }
}

#[tokio::test]
async fn batches_and_trails_find_their_jobs_by_id_whatever_the_statistics_say() {
    let scratch = Scratch::new().await;
    let store = &scratch.store;
    // Enough jobs that reading them all costs more than finding a batch.
    let jobs: Vec<NewJob> = (0..1000)
        .map(|_| NewJob {
            bot: "b".into(),
            input: serde_json::json!({}),
            idempotency_key: None,
            max_attempts: 3,
            max_lost: 3,
            run_after: None,
            created_by: "test".into(),
            refused: None,
        })
        .collect();
    for _ in 0..5 {
        store.enqueue(&jobs).await.expect("enqueue");
    }
    let mut conn = store.pool.acquire().await.expect("connection");
    // Statistics of an idle queue: nothing runs.
    sqlx::raw_sql("ANALYZE jobs")
        .execute(&mut *conn)
        .await
        .expect("analyze");
    let bots = [BotClaim {
        name: "b".into(),
        concurrency: None,
    }];
    let held = store
        .claim("w", &bots, 30, Duration::from_secs(30))
        .await
        .expect("claim");
    assert_eq!(held.len(), 30);

    for (what, sql, types) in [
        ("completion", COMPLETE_SQL.as_str(), COMPLETE_TYPES),
        ("step save", SAVE_STEPS_SQL.as_str(), SAVE_TYPES),
    ] {
        let plan = generic_plan(&mut conn, sql, types).await;
        assert!(
            plan.contains("\"Index Name\": \"jobs_pkey\""),
            "a {what} should find each job by its id:\n{plan}"
        );
        assert!(
            !plan.contains("\"Index Name\": \"jobs_running\""),
            "a {what} should not walk the running jobs:\n{plan}"
        );
    }

    // The trails of a few finished jobs among many: the events view
    // reaches each of its parts by job, not by reading the attempts whole.
    let held = store
        .claim("w", &bots, 2000, Duration::from_secs(30))
        .await
        .expect("claim");
    let done: Vec<Completion> = held
        .iter()
        .map(|job| Completion {
            job_id: job.id,
            attempt: job.attempt,
            state: JobState::Succeeded,
            attempt_outcome: Outcome::Succeeded,
            run_after: 0,
            errors: 0,
            next_step: 1,
            error: None,
            output: None,
            review: None,
            reason: "done".into(),
            steps: vec![],
        })
        .collect();
    store.complete("w", &done).await.expect("complete");
    sqlx::raw_sql("ANALYZE")
        .execute(&mut *conn)
        .await
        .expect("analyze");
    let some: Vec<i64> = held.iter().take(20).map(|job| job.id).collect();
    let mut trails = sqlx::postgres::PgArguments::default();
    trails.add(some).expect("bind");
    let plan = plan_read_by_index(&mut conn, stats::TRAILS_SQL, trails).await;
    for index in ["job_events_pkey", "attempts_pkey", "jobs_running"] {
        assert!(
            plan.contains(&format!("\"Index Name\": \"{index}\"")),
            "the trail should reach each part by job, through {index}:\n{plan}"
        );
    }
    assert!(
        !plan.contains("\"Node Type\": \"Seq Scan\""),
        "the trail should read no table whole:\n{plan}"
    );
    let mut day = sqlx::postgres::PgArguments::default();
    day.add(0_i64).expect("bind");
    day.add(1_i64).expect("bind");
    let plan = plan_read_by_index(&mut conn, &stats::step_facts_sql(), day).await;
    assert!(
        plan.contains("\"Index Name\": \"step_runs_pkey\"")
            && !plan.contains("\"Node Type\": \"Seq Scan\""),
        "a day's step records should be read by job:\n{plan}"
    );

    drop(conn);
    scratch.drop_all().await;
}

/// A day's count of the jobs received reads that day's part of the table,
/// whether or not vacuum ever ran: with the creation-time ranges left
/// unsummarised it read the table whole.
#[tokio::test]
async fn a_days_received_count_reads_that_days_pages_without_vacuum() {
    let scratch = Scratch::new().await;
    let store = &scratch.store;
    const DAY: i64 = 86_400_000;
    const START: i64 = 1_700_006_400_000; // a midnight, UTC
    // Forty days of finished jobs, one a minute, in creation order as a
    // queue appends them; no vacuum runs.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER TABLE jobs SET (autovacuum_enabled = off);
         INSERT INTO jobs (bot, state, max_attempts, max_lost, run_after, created_by, created_at, updated_at, finished_at)
         SELECT 'b', 'succeeded', 3, 3, t, 'schedule:daily', t, t, t
         FROM (SELECT {START} + g * 60000 AS t FROM generate_series(0::bigint, 40 * 1440 - 1) g) s;
         ANALYZE jobs"
    )))
    .execute(&store.pool)
    .await
    .expect("seed");
    let from = START + 20 * DAY;
    let received = store.received(from, from + DAY).await.expect("received");
    assert_eq!(received.iter().map(|r| r.count).sum::<i64>(), 1440);

    let pages: i32 = sqlx::query_scalar("SELECT relpages FROM pg_class WHERE relname = 'jobs'")
        .fetch_one(&store.pool)
        .await
        .expect("pages");
    let plan: Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {}",
        stats::RECEIVED_SQL
    )))
    .bind(from)
    .bind(from + DAY)
    .fetch_one(&store.pool)
    .await
    .expect("explain");
    let top = &plan[0]["Plan"];
    let read = top["Shared Hit Blocks"].as_i64().unwrap_or(0)
        + top["Shared Read Blocks"].as_i64().unwrap_or(0);
    assert!(
        read * 5 < i64::from(pages),
        "a day of forty should read a fraction of the table's {pages} pages, not {read}:\n{plan:#}"
    );
    scratch.drop_all().await;
}
