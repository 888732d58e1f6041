//! The document store behind its trait, on the real job databases: the
//! database store passes the contract every store passes; garbage
//! collection deletes only what no job needs; migration moves a local
//! store into the database without losing or doubling a document.

mod common;

use std::sync::Arc;
use std::time::Duration;

use clerk::document_store::{DatabaseStore, collect_garbage, migrate};
use clerk::documents::store::{DocumentStore, LocalStore, StoredDocument};
use common::{Kind, new_job, setup};
use serde_json::json;

const BOT: &str = r#"
name = "docs"
[[steps]]
name = "noop"
kind = "command"
argv = ["true"]
"#;

async fn the_database_store_passes_the_store_contract(kind: Kind) {
    let s = setup(kind, "docs", BOT).await;
    let store = DatabaseStore::new(s.db.clone());
    clerk::documents::store::compliance::check(&store).await;
}

/// Keep `content` and queue a job naming it; the job's id.
async fn job_with(s: &common::Setup, store: &dyn DocumentStore, content: &[u8]) -> (String, i64) {
    let document = StoredDocument::of(content, "invoice.pdf", None);
    store.put(&document, content).await.unwrap();
    let bot = s.registry.get("docs").unwrap();
    let job = new_job(
        bot,
        json!({ "sha256": document.sha256, "name": "invoice.pdf" }),
    );
    let id = common::enqueue_ids(&s.db, &[job]).await[0];
    (document.sha256, id)
}

async fn garbage_collection_deletes_only_documents_no_job_needs(kind: Kind) {
    let s = setup(kind, "docs", BOT).await;
    for store in [
        s.documents(),
        Arc::new(DatabaseStore::new(s.db.clone())) as Arc<dyn DocumentStore>,
    ] {
        let (needed, _) = job_with(&s, store.as_ref(), b"%PDF-1.4 needed").await;
        let orphan = StoredDocument::of(b"%PDF-1.4 orphan", "orphan.pdf", None);
        store.put(&orphan, b"%PDF-1.4 orphan").await.unwrap();

        // Just put: its job may be on its way, so it stays.
        let early = collect_garbage(store.as_ref(), s.db.as_ref(), Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!((early.deleted, early.recent), (0, 2), "{early:?}");

        tokio::time::sleep(Duration::from_millis(30)).await;
        let done = collect_garbage(store.as_ref(), s.db.as_ref(), Duration::from_millis(10))
            .await
            .unwrap();
        assert_eq!(
            (done.deleted, done.in_use),
            (1, 1),
            "{}: {done:?}",
            store.describe()
        );
        assert_eq!(done.freed_bytes, 15);
        assert!(store.get(&orphan.sha256).await.unwrap().is_none());
        assert!(store.get(&needed).await.unwrap().is_some());
        store.delete(&[needed]).await.unwrap();
    }
}

async fn a_local_store_moves_into_the_database_once_and_safely_again(kind: Kind) {
    let s = setup(kind, "docs", BOT).await;
    let local = LocalStore::new(s.t.path().join("documents"));
    let database = DatabaseStore::new(s.db.clone());
    let contents: Vec<Vec<u8>> = (0..450)
        .map(|i| format!("%PDF-1.4 doc {i}").into_bytes())
        .collect();
    for (i, c) in contents.iter().enumerate() {
        local
            .put(&StoredDocument::of(c, &format!("d{i}.pdf"), None), c)
            .await
            .unwrap();
    }
    // One is in the database already (intake since the switch).
    database
        .put(
            &StoredDocument::of(&contents[7], "d7.pdf", None),
            &contents[7],
        )
        .await
        .unwrap();
    // A first run copies everything and keeps the source (--keep)...
    let copied = migrate(&local, &database, true, |_| {}).await.unwrap();
    assert_eq!((copied.copied, copied.present, copied.removed), (449, 1, 0));
    // ... a second one finds everything there and removes the source.
    let moved = migrate(&local, &database, false, |_| {}).await.unwrap();
    assert_eq!((moved.copied, moved.present, moved.removed), (0, 450, 450));
    assert!(local.list_after("", 10).await.unwrap().is_empty());
    let kept = database.list_after("", 1000).await.unwrap();
    assert_eq!(kept.len(), 450);
    for (i, c) in contents.iter().enumerate() {
        let sha = clerk::documents::store::sha256_hex(c);
        let (document, content) = database.get(&sha).await.unwrap().unwrap();
        assert_eq!((document.name, &content), (format!("d{i}.pdf"), c));
    }
    // Nothing left to move: a third run does nothing.
    let again = migrate(&local, &database, false, |_| {}).await.unwrap();
    assert_eq!(again, clerk::document_store::Migrated::default());
}

both_backends!(
    the_database_store_passes_the_store_contract,
    garbage_collection_deletes_only_documents_no_job_needs,
    a_local_store_moves_into_the_database_once_and_safely_again,
);

/// The S3 store, on a real S3-compatible server.
fn s3_store(server: &common::S3Server, prefix: &str) -> clerk::documents::store::S3Store {
    let env = server.env();
    let url = format!("s3://{}/{prefix}", server.bucket);
    clerk::documents::store::S3Store::with_settings(&url, &|name| {
        env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_store_passes_the_store_contract() {
    let server = common::S3Server::start();
    clerk::documents::store::compliance::check(&s3_store(&server, "documents")).await;
    // With no prefix too: the bucket's top.
    clerk::documents::store::compliance::check(&s3_store(&server, "")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_store_moves_into_s3_and_garbage_is_collected_there() {
    let s = setup(Kind::Postgres, "docs", BOT).await;
    let server = common::S3Server::start();
    let s3 = s3_store(&server, "clerk/documents");
    let local = LocalStore::new(s.t.path().join("documents"));
    let (needed, _) = job_with(&s, &local, b"%PDF-1.4 needed by a job").await;
    let orphan = StoredDocument::of(b"%PDF-1.4 no job", "orphan.pdf", None);
    local.put(&orphan, b"%PDF-1.4 no job").await.unwrap();
    let moved = migrate(&local, &s3, false, |_| {}).await.unwrap();
    assert_eq!((moved.copied, moved.removed), (2, 2));
    assert!(local.list_after("", 10).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(30)).await;
    let done = collect_garbage(&s3, s.db.as_ref(), Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!((done.deleted, done.in_use), (1, 1), "{done:?}");
    let (document, _) = s3.get(&needed).await.unwrap().unwrap();
    assert_eq!(document.name, "invoice.pdf");
}

/// Jobs queued before documents were kept in a store name a file beside
/// their hash: moving to a shared store takes their documents along, and
/// names the jobs whose file is gone.
async fn jobs_that_name_a_file_bring_their_documents_along(kind: Kind) {
    let s = setup(kind, "docs", BOT).await;
    let database = DatabaseStore::new(s.db.clone());
    let bot = s.registry.get("docs").unwrap();
    let kept = s.t.path().join("processed-a.pdf");
    std::fs::write(&kept, b"%PDF-1.4 queued before the store").unwrap();
    let sha = clerk::documents::store::sha256_hex(b"%PDF-1.4 queued before the store");
    let gone = s.t.path().join("gone.pdf");
    let jobs = [
        new_job(bot, json!({ "file": kept, "sha256": sha, "name": "a.pdf" })),
        new_job(
            bot,
            json!({ "file": gone, "sha256": "ab".repeat(32), "name": "gone.pdf" }),
        ),
        // A manual run with a path and no hash is left as it is.
        new_job(bot, json!({ "file": kept })),
    ];
    let ids = common::enqueue_ids(&s.db, &jobs).await;
    let (adopted, missing) = clerk::document_store::adopt_job_files(s.db.as_ref(), &database)
        .await
        .unwrap();
    assert_eq!((adopted, missing), (1, vec![ids[1]]));
    let (document, _) = database.get(&sha).await.unwrap().unwrap();
    assert_eq!(document.name, "a.pdf");
    // Again: nothing more to do.
    let again = clerk::document_store::adopt_job_files(s.db.as_ref(), &database)
        .await
        .unwrap();
    assert_eq!(again, (0, vec![ids[1]]));
}

both_backends!(jobs_that_name_a_file_bring_their_documents_along);
