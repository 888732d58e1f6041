//! Review rules and deadlines through a real worker and both back ends: a
//! document extraction is sure of still waits for a person when the bot's
//! rules say so (an amount over a limit, a vendor not seen before, a total
//! that is not the purchase order's), with the rule's own reason and its
//! reviewers; a vendor seen once passes the next time; a review past the
//! bot's deadline is flagged once however many processes look.

mod common;

use std::time::Duration;

use clerk::jobs::{JobState, NoticeKind, ReviewFilter, Role};
use common::*;
use serde_json::json;

const LONG: Duration = Duration::from_secs(90);

fn manifest() -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    format!(
        r#"
name = "intake"
review_within = "4h"

[[steps]]
name = "extract"
kind = "extract"
templates = "{}"

[[steps.review_if]]
field = "amount"
above = 10000
reason = "Over 10,000 EUR: a controller approves"
review_by = "controllers"

[[steps.review_if]]
field = "issuer"
unseen = true
reason = "A vendor we have not booked before"

[[steps.review_if]]
field = "amount"
differs_from = "input.po_total"
reason = "The total is not the purchase order's"

[[steps]]
name = "book"
kind = "command"
argv = ["sh", "-c", "cat"]
"#,
        root.join("bots/invoice-intake/templates").display()
    )
}

/// Run a job of an ACME invoice with the purchase order's total until it
/// waits or is done; its id and state.
async fn run(s: &Setup, invoice: &str, po_total: &str) -> (i64, JobState) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let bot = s.registry.get("intake").unwrap().clone();
    let file = root.join(format!("fixtures/invoices/acme-office/{invoice}.pdf"));
    let input = json!({ "file": file, "po_total": po_total });
    let id = enqueue_ids(&s.db, &[new_job(&bot, input)]).await[0];
    let w = RunningWorker::start(s.db.clone(), s.registry.clone(), fast_config(1));
    let state = wait_for(
        &s.db,
        id,
        &[
            JobState::WaitingReview,
            JobState::Succeeded,
            JobState::Failed,
        ],
        LONG,
    )
    .await;
    w.shutdown().await;
    (id, state)
}

fn workable_by(names: &[&str]) -> ReviewFilter {
    ReviewFilter {
        workable_by: Some(names.iter().map(|n| n.to_string()).collect()),
        limit: 10,
        ..Default::default()
    }
}

async fn rules_send_sure_documents_to_the_people_they_name(kind: Kind) {
    let s = setup(kind, "intake", &manifest()).await;
    let before = clerk::jobs::now_ms();

    // 30,208.34 EUR from a vendor never booked: two rules hold.
    let (big, state) = run(&s, "RE-2026-66261", "30208.34").await;
    assert_eq!(state, JobState::WaitingReview);
    let item = s.db.review(big).await.unwrap().expect("a review").item;
    assert_eq!(
        item.reasons,
        [
            "Over 10,000 EUR: a controller approves",
            "A vendor we have not booked before"
        ]
    );
    assert_eq!(item.review_by, ["controllers"]);
    let due = item.due_at.expect("the bot has review_within");
    let four_hours = 4 * 3600 * 1000;
    assert!(due >= before + four_hours && due <= clerk::jobs::now_ms() + four_hours);

    // A reviewer outside the group does not see it as theirs; a controller does.
    let plain =
        s.db.review_queue(&workable_by(&["viewer", "reviewer"]))
            .await
            .unwrap();
    assert!(plain.is_empty(), "{plain:?}");
    let controller =
        s.db.review_queue(&workable_by(&["viewer", "reviewer", "controllers"]))
            .await
            .unwrap();
    assert_eq!(controller.len(), 1);
    assert!(clerk::jobs::may_work(
        Role::Reviewer,
        &["controllers".into()],
        &item.review_by
    ));
    assert!(!clerk::jobs::may_work(Role::Operator, &[], &item.review_by));

    // Approved, the job books; the vendor has now been seen.
    let review = s.db.review(big).await.unwrap().unwrap();
    let templates = clerk::extract::load_templates(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bots/invoice-intake/templates"),
    )
    .templates;
    let today = chrono::NaiveDate::from_ymd_opt(2026, 9, 1).unwrap();
    let outcome = clerk::review::approve(&review, &templates, "carla", "", None, today).unwrap();
    s.db.finish_review(big, "carla", review.item.version, &outcome)
        .await
        .unwrap();
    let w = RunningWorker::start(s.db.clone(), s.registry.clone(), fast_config(1));
    wait_for(&s.db, big, &[JobState::Succeeded], LONG).await;
    w.shutdown().await;

    // The same vendor, under the limit, the purchase order's total: no
    // rule holds and the invoice passes straight through.
    let (small, state) = run(&s, "RE-2026-67181", "6852.40").await;
    assert_eq!(state, JobState::Succeeded, "{:?}", s.db.review(small).await);

    // A total that is not the purchase order's waits for anyone who reviews.
    let (mismatch, state) = run(&s, "RE-2026-67181", "6852.00").await;
    assert_eq!(state, JobState::WaitingReview);
    let item = s.db.review(mismatch).await.unwrap().unwrap().item;
    assert_eq!(item.reasons, ["The total is not the purchase order's"]);
    assert!(item.review_by.is_empty());
    let plain =
        s.db.review_queue(&workable_by(&["viewer", "reviewer"]))
            .await
            .unwrap();
    assert_eq!(plain.len(), 1);

    // Nothing is overdue yet; five hours on, it is, and is told once
    // however many processes look at the same time.
    let not_yet = ReviewFilter {
        overdue_at: Some(clerk::jobs::now_ms()),
        limit: 10,
        ..Default::default()
    };
    assert!(s.db.review_queue(&not_yet).await.unwrap().is_empty());
    assert!(
        s.db.flag_overdue_reviews(clerk::jobs::now_ms())
            .await
            .unwrap()
            .is_empty()
    );
    let later = clerk::jobs::now_ms() + 5 * 3600 * 1000;
    let other = s.db.clone();
    let (a, b) = tokio::join!(
        s.db.flag_overdue_reviews(later),
        other.flag_overdue_reviews(later)
    );
    let mut flagged = a.unwrap();
    flagged.extend(b.unwrap());
    assert_eq!(flagged, [mismatch]);
    assert!(s.db.flag_overdue_reviews(later).await.unwrap().is_empty());
    let overdue = ReviewFilter {
        overdue_at: Some(later),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(s.db.review_queue(&overdue).await.unwrap().len(), 1);
    let notices =
        s.db.claim_notices(
            "intake",
            &[NoticeKind::ReviewOverdue],
            "test",
            Duration::from_secs(60),
            10,
        )
        .await
        .unwrap();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].job_id, mismatch);
    assert!(
        notices[0].reason.starts_with("review overdue"),
        "{}",
        notices[0].reason
    );
    let job = s.db.job(mismatch).await.unwrap().unwrap();
    let last = job.events.last().unwrap();
    assert_eq!(
        (last.actor.as_str(), last.to_state.as_str()),
        ("clerk", "waiting_review")
    );
    assert!(last.reason.starts_with("review overdue"));
}

/// A user's groups are kept, read back with their sessions, and replaced.
async fn groups_are_kept_with_the_user(kind: Kind) {
    let t = TestDb::new(kind).await;
    let db = t.open().await;
    let ana = db
        .add_user("ana", Role::Reviewer, "h", "cli:root")
        .await
        .unwrap();
    assert!(ana.groups.is_empty());
    let groups = vec!["controllers".to_string(), "ap".to_string()];
    assert!(db.set_user("ana", None, Some(&groups)).await.unwrap());
    let now = clerk::jobs::now_ms();
    db.add_session("s", ana.id, "c", now + 60_000)
        .await
        .unwrap();
    let session = db.session("s", now + 60_000).await.unwrap().unwrap();
    assert_eq!(session.user.groups, groups);
    assert_eq!(session.user.role, Role::Reviewer);
    assert!(
        db.set_user("ana", Some(Role::Operator), Some(&[]))
            .await
            .unwrap()
    );
    let users = db.users().await.unwrap();
    assert_eq!(users[0].role, Role::Operator);
    assert!(users[0].groups.is_empty());
    assert!(!db.set_user("eve", Some(Role::Admin), None).await.unwrap());
}

/// Values the bot saw before are found however their case and spaces
/// differ, and only in jobs that finished.
async fn values_seen_before_are_found_in_finished_jobs(kind: Kind) {
    let s = setup(kind, "intake", &manifest()).await;
    let seen = |v: &'static str| {
        let db = s.db.clone();
        async move {
            db.value_seen("intake", "extract", "issuer", v, 0)
                .await
                .unwrap()
        }
    };
    assert!(!seen("acme office supplies gmbh").await);
    let (id, state) = run(&s, "RE-2026-67181", "6852.40").await;
    // First sight: it waits, and a waiting job does not count as seen.
    assert_eq!(state, JobState::WaitingReview);
    assert!(!seen("acme office supplies gmbh").await);
    let review = s.db.review(id).await.unwrap().unwrap();
    let templates = clerk::extract::load_templates(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bots/invoice-intake/templates"),
    )
    .templates;
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    let outcome = clerk::review::approve(&review, &templates, "ana", "", None, today).unwrap();
    s.db.finish_review(id, "ana", review.item.version, &outcome)
        .await
        .unwrap();
    let w = RunningWorker::start(s.db.clone(), s.registry.clone(), fast_config(1));
    wait_for(&s.db, id, &[JobState::Succeeded], LONG).await;
    w.shutdown().await;
    assert!(seen("acme office supplies gmbh").await);
    assert!(!seen("acme").await);
    assert!(
        !s.db
            .value_seen(
                "intake",
                "extract",
                "issuer",
                "acme office supplies gmbh",
                id
            )
            .await
            .unwrap(),
        "a job is not its own precedent"
    );
}

both_backends!(
    rules_send_sure_documents_to_the_people_they_name,
    groups_are_kept_with_the_user,
    values_seen_before_are_found_in_finished_jobs,
);
