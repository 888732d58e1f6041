//! Reviews kept by the job database, on both back ends: the queue, claims
//! that keep two reviewers apart, saves that refuse a stale page, approvals
//! whose values the next step gets, rejections its owners hear of; and the
//! users, tokens and sessions of the web pages.

mod common;

use std::time::Duration;

use clerk::jobs::{JobState, JobsError, ReviewFilter, Role};
use clerk::review::{self, Correction};
use common::*;
use serde_json::json;

const LONG: Duration = Duration::from_secs(60);

/// A job of `file` run until it waits for review; its id.
async fn waiting(s: &Setup, file: &str) -> i64 {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let bot = s.registry.get("intake").unwrap().clone();
    let input = json!({ "file": root.join(file), "name": "scan 1.pdf" });
    let id = enqueue_ids(&s.db, &[new_job(&bot, input)]).await[0];
    let w = RunningWorker::start(s.db.clone(), s.registry.clone(), fast_config(1));
    wait_for(&s.db, id, &[JobState::WaitingReview], LONG).await;
    w.shutdown().await;
    id
}

fn templates() -> Vec<clerk::extract::Template> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let set = clerk::extract::load_templates(&root.join("bots/invoice-intake/templates"));
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    set.templates
}

fn text(field: &str, value: &str) -> Correction {
    Correction {
        field: field.into(),
        value: json!(value),
    }
}

/// A document no template recognises: a reviewer claims it, picks the
/// vendor's template, corrects a value and approves; the next step gets the
/// reviewed values and the audit trail names the reviewer.
async fn a_reviewed_document_goes_on_with_the_reviewed_values(kind: Kind) {
    let s = setup(kind, "intake", &intake_bot("")).await;
    let id = waiting(&s, "fixtures/bad/owner-only.pdf").await;
    let queue =
        s.db.review_queue(&ReviewFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].job_id, id);
    assert_eq!(queue[0].document.as_deref(), Some("scan 1.pdf"));
    assert_eq!(queue[0].reasons, ["no template matched this document"]);
    assert_eq!(queue[0].step, "extract");
    let by_reason = |reason: &str| ReviewFilter {
        reason: Some(reason.into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        s.db.review_queue(&by_reason("no template"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        s.db.review_queue(&by_reason("confidence"))
            .await
            .unwrap()
            .is_empty()
    );

    // Two reviewers never work one document.
    let held =
        s.db.claim_review(id, "ana", Duration::from_secs(600))
            .await
            .unwrap();
    assert_eq!(held.claimed_by.as_deref(), Some("ana"));
    let other = s.db.claim_review(id, "bob", Duration::from_secs(600)).await;
    assert!(
        matches!(other, Err(JobsError::HeldBy { ref by, .. }) if by == "ana"),
        "{other:?}"
    );

    // Ana picks the template she knows the vendor by, and types the values.
    let templates = templates();
    let acme = templates
        .iter()
        .find(|t| t.issuer.starts_with("ACME"))
        .unwrap();
    let r = s.db.review(id).await.unwrap().expect("a review");
    assert_eq!(r.item.version, 0);
    let doc = clerk::documents::read_file(
        std::path::Path::new(r.input["file"].as_str().unwrap()),
        &Default::default(),
    )
    .unwrap();
    let picked = review::pick_template(&r, acme, &doc);
    let v1 = s.db.save_review(id, "ana", 0, &picked).await.unwrap();
    assert_eq!(v1, 1);
    let r = s.db.review(id).await.unwrap().unwrap();
    assert_eq!(r.template, picked.template.clone().unwrap());
    let update = review::correct(
        &r,
        &templates,
        &[
            text("invoice_number", "RE-2026-90001"),
            text("amount", "1.190,00"),
            text("amount_untaxed", "1.000,00"),
            text("vat", "190,00"),
            text("date", "2026-08-20"),
        ],
    )
    .unwrap();
    let stale = s.db.save_review(id, "ana", 0, &update).await;
    assert!(
        matches!(stale, Err(JobsError::Conflict { found: 1, .. })),
        "{stale:?}"
    );
    let v2 = s.db.save_review(id, "ana", v1, &update).await.unwrap();

    let r = s.db.review(id).await.unwrap().unwrap();
    let today = chrono::NaiveDate::from_ymd_opt(2026, 9, 1).unwrap();
    // 1,000.00 + 190.00 = 1,190.00: the checks pass without an override.
    let outcome = review::approve(&r, &templates, "ana", "booked from the paper", None, today)
        .expect("approved");
    s.db.finish_review(id, "ana", v2, &outcome).await.unwrap();
    let w = RunningWorker::start(s.db.clone(), s.registry.clone(), fast_config(1));
    wait_for(&s.db, id, &[JobState::Succeeded], LONG).await;
    w.shutdown().await;

    let job = s.db.job(id).await.unwrap().unwrap();
    let values = &job.output.as_ref().unwrap()["steps"]["extract"]["values"];
    assert_eq!(values["invoice_number"], "RE-2026-90001");
    assert_eq!(values["amount"], 1190.0);
    assert_eq!(values["erp_vendor"], "V100", "from the template picked");
    let extract = &job.output.as_ref().unwrap()["steps"]["extract"];
    assert_eq!(
        extract["extracted"]["review"][0], "no template matched this document",
        "the original extraction is kept"
    );
    assert_eq!(extract["reviewed"]["by"], "ana");
    // Every action is in the audit trail, by the reviewer.
    let by_ana: Vec<_> = job.events.iter().filter(|e| e.actor == "ana").collect();
    let actions: Vec<&str> = by_ana
        .iter()
        .filter_map(|e| e.detail.as_ref()?.get("action")?.as_str())
        .collect();
    assert_eq!(actions[0], "claim");
    assert!(actions.contains(&"template"), "{actions:?}");
    assert!(actions.contains(&"correct"), "{actions:?}");
    assert_eq!(actions.last(), Some(&"approve"));
    let amount = by_ana
        .iter()
        .find(|e| e.detail.as_ref().is_some_and(|d| d["field"] == "amount"))
        .unwrap();
    assert_eq!(amount.detail.as_ref().unwrap()["new"], 1190.0);
    let approve = by_ana.last().unwrap();
    assert_eq!(approve.to_state, "queued");
    // Saves kept the job waiting and told no one: one review notice only.
    let notices =
        s.db.claim_notices(
            "intake",
            &[clerk::jobs::NoticeKind::WaitingReview],
            "test",
            Duration::from_secs(60),
            100,
        )
        .await
        .unwrap();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        s.db.review(id).await.unwrap().is_none(),
        "no longer waiting"
    );
}

/// A rejection fails the job with the reviewer's reason, and its owners
/// hear of it; a postponement keeps it waiting with a note.
async fn a_rejected_document_fails_with_the_reason(kind: Kind) {
    let s = setup(kind, "intake", &intake_bot("")).await;
    let id = waiting(&s, "fixtures/bad/owner-only.pdf").await;
    let later = review::postpone("waiting for the vendor's credit note").unwrap();
    s.db.finish_review(id, "bob", 0, &later).await.unwrap();
    let item = s.db.review(id).await.unwrap().unwrap().item;
    assert_eq!(
        item.note.as_deref(),
        Some("waiting for the vendor's credit note")
    );
    assert_eq!(item.version, 1);
    assert_eq!(item.claimed_by, None);

    let outcome = review::reject("not an invoice of ours").unwrap();
    assert!(matches!(
        s.db.finish_review(id, "bob", 0, &outcome).await,
        Err(JobsError::Conflict { .. })
    ));
    s.db.finish_review(id, "bob", 1, &outcome).await.unwrap();
    let job = s.db.job(id).await.unwrap().unwrap();
    assert_eq!(job.summary.state, JobState::Failed);
    assert_eq!(
        job.summary.last_error.as_deref(),
        Some("rejected in review: not an invoice of ours")
    );
    let failed =
        s.db.claim_notices(
            "intake",
            &[clerk::jobs::NoticeKind::Failed],
            "test",
            Duration::from_secs(60),
            10,
        )
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].reason.contains("not an invoice of ours"));
    // A finished review takes no more actions.
    assert!(matches!(
        s.db.claim_review(id, "bob", Duration::from_secs(60)).await,
        Err(JobsError::NoReview(_))
    ));
    assert!(matches!(s.db.retry(id, "ops").await, Ok(())));
}

/// Users, tokens and sessions: names are unique, secrets are found by
/// their hashes only, sessions end.
async fn users_tokens_and_sessions_are_kept_by_their_hashes(kind: Kind) {
    let t = TestDb::new(kind).await;
    let db = t.open().await;
    let ana = db
        .add_user("ana", Role::Reviewer, "hash-a", "cli:root")
        .await
        .unwrap();
    assert_eq!(ana.role, Role::Reviewer);
    assert!(matches!(
        db.add_user("ana", Role::Admin, "x", "cli:root").await,
        Err(JobsError::AlreadyExists { what: "user", .. })
    ));
    db.add_user("bob", Role::Viewer, "hash-b", "cli:root")
        .await
        .unwrap();
    let (user, hash) = db.user_with_password("ana").await.unwrap().unwrap();
    assert_eq!((user.name.as_str(), hash.as_str()), ("ana", "hash-a"));
    assert!(db.user_with_password("eve").await.unwrap().is_none());
    let names: Vec<_> = db
        .users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["ana", "bob"]);

    let token = db
        .add_token("ci", Role::Operator, "tok-hash", "cli:root")
        .await
        .unwrap();
    assert_eq!(
        db.token_by_hash("tok-hash").await.unwrap().unwrap().id,
        token.id
    );
    assert!(db.token_by_hash("other").await.unwrap().is_none());
    assert!(db.tokens().await.unwrap()[0].last_used_at.is_some());
    assert!(db.remove_token("ci").await.unwrap());
    assert!(db.token_by_hash("tok-hash").await.unwrap().is_none());

    let now = clerk::jobs::now_ms();
    db.add_session("s1", ana.id, "csrf-1", now + 60_000)
        .await
        .unwrap();
    db.add_session("old", ana.id, "csrf-2", now - 1)
        .await
        .unwrap();
    let session = db.session("s1", now + 60_000).await.unwrap().unwrap();
    assert_eq!(session.user.name, "ana");
    assert_eq!(session.csrf, "csrf-1");
    assert!(db.session("old", now).await.unwrap().is_none(), "expired");
    db.end_session("s1").await.unwrap();
    assert!(db.session("s1", now).await.unwrap().is_none());
    // Removing a user ends their sessions.
    db.add_session("s2", ana.id, "csrf-3", now + 60_000)
        .await
        .unwrap();
    assert!(db.remove_user("ana").await.unwrap());
    assert!(db.session("s2", now).await.unwrap().is_none());
    assert!(!db.remove_user("ana").await.unwrap());
}

both_backends!(
    a_reviewed_document_goes_on_with_the_reviewed_values,
    a_rejected_document_fails_with_the_reason,
    users_tokens_and_sessions_are_kept_by_their_hashes,
);
