//! The contract every [`DocumentStore`] passes: the local folder's unit
//! tests and the database and S3 stores' integration tests run this one
//! check, so a store behind the seam behaves like the others.

use super::{DocumentStore, StoredDocument};

/// Put, put again, get, list in pages, delete; panics on the first broken
/// promise, naming the store.
pub async fn check(store: &dyn DocumentStore) {
    let name = store.describe();
    let a = b"%PDF-1.4 first document".to_vec();
    let b = b"second document".to_vec();
    let da = StoredDocument::of(&a, "Rechnung März.pdf", None);
    let db = StoredDocument::of(&b, "b.txt", Some("text/plain"));
    assert_eq!(da.media_type, "application/pdf");

    assert!(
        store.get(&da.sha256).await.unwrap().is_none(),
        "{name}: empty store has a"
    );
    store
        .put_all(&[(da.clone(), &a), (db.clone(), &b), (da.clone(), &a)])
        .await
        .unwrap_or_else(|e| panic!("{name}: put_all: {e}"));
    let (got, content) = store.get(&da.sha256).await.unwrap().expect("a is kept");
    assert_eq!(
        (got, content),
        (da.clone(), a.clone()),
        "{name}: a comes back as put"
    );

    let listed = store.list_after("", 10).await.unwrap();
    let mut wanted = vec![da.sha256.clone(), db.sha256.clone()];
    wanted.sort();
    let shas: Vec<String> = listed.iter().map(|k| k.sha256.clone()).collect();
    assert_eq!(
        shas, wanted,
        "{name}: each document listed once, in hash order"
    );
    let first = store.list_after("", 1).await.unwrap();
    let rest = store.list_after(&first[0].sha256, 10).await.unwrap();
    assert_eq!(first.len() + rest.len(), 2, "{name}: pages of the listing");
    assert_eq!(rest[0].sha256, wanted[1]);

    // Put again later: kept once, touched.
    let before = listed
        .iter()
        .find(|k| k.sha256 == da.sha256)
        .unwrap()
        .touched_at;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    store.put(&da, &a).await.unwrap();
    let again = store.list_after("", 10).await.unwrap();
    assert_eq!(again.len(), 2, "{name}: a document put twice is kept once");
    let after = again
        .iter()
        .find(|k| k.sha256 == da.sha256)
        .unwrap()
        .touched_at;
    assert!(
        after > before,
        "{name}: put again moves the touch ({before} → {after})"
    );

    // A name that is not a hash leads nowhere.
    assert!(
        store.get("../../etc/passwd").await.unwrap().is_none(),
        "{name}"
    );

    let deleted = store
        .delete(&[da.sha256.clone(), "0".repeat(64)])
        .await
        .unwrap();
    assert_eq!(deleted, 1, "{name}: delete counts what was there");
    assert!(
        store.get(&da.sha256).await.unwrap().is_none(),
        "{name}: a deleted"
    );
    assert!(
        store.get(&db.sha256).await.unwrap().is_some(),
        "{name}: b kept"
    );
    store
        .delete(std::slice::from_ref(&db.sha256))
        .await
        .unwrap();
    assert!(
        store.list_after("", 10).await.unwrap().is_empty(),
        "{name}: emptied"
    );
}
