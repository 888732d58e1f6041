//! Idempotency keys outlive their jobs: a document seen again after its
//! job was pruned (a file dropped again, a mailbox read again from the
//! start) is still known and not processed twice, until the key's own,
//! much longer retention ends.

mod common;

use clerk::jobs::{JobState, NewJob, now_ms};
use common::*;
use serde_json::json;

fn keyed(key: &str) -> NewJob {
    NewJob {
        bot: "inbox".into(),
        input: json!({}),
        idempotency_key: Some(key.into()),
        max_attempts: 3,
        max_lost: 3,
        run_after: None,
        created_by: "folder:inbox".into(),
        refused: None,
    }
}

async fn keys_outlive_their_pruned_jobs(kind: Kind) {
    let t = TestDb::new(kind).await;
    let db = t.open().await;
    let first = db
        .enqueue(&[keyed("folder:inbox:invoice-7.pdf")])
        .await
        .unwrap()[0];
    let waiting = db
        .enqueue(&[keyed("folder:inbox:invoice-8.pdf")])
        .await
        .unwrap()[0];
    db.cancel(first.id, "cli:op").await.unwrap();
    let later = now_ms() + 1000;
    assert_eq!(db.prune(later, 100).await.unwrap(), 1, "the finished job");
    assert!(db.job(first.id).await.unwrap().is_none());

    // The same document again: known, with how its job ended.
    let again = db
        .enqueue(&[keyed("folder:inbox:invoice-7.pdf")])
        .await
        .unwrap()[0];
    assert!(!again.created, "a pruned job's document was taken again");
    assert_eq!((again.id, again.state), (first.id, JobState::Cancelled));

    // Keys are forgotten only past their own retention, and never while
    // their job is kept.
    assert_eq!(db.prune_keys(now_ms() - 86_400_000).await.unwrap(), 0);
    assert_eq!(db.prune_keys(later).await.unwrap(), 1);
    let waiting_again = db
        .enqueue(&[keyed("folder:inbox:invoice-8.pdf")])
        .await
        .unwrap()[0];
    assert!(!waiting_again.created);
    assert_eq!(waiting_again.id, waiting.id);
    let after = db
        .enqueue(&[keyed("folder:inbox:invoice-7.pdf")])
        .await
        .unwrap()[0];
    assert!(after.created, "a key past its retention is new again");
}

both_backends!(keys_outlive_their_pruned_jobs);
