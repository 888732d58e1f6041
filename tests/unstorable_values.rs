//! Values the job database cannot keep lose no other work: a NUL character
//! in a job's input is refused at enqueue, saying where it is; a key
//! longer than the index allows still works; and a step whose output the
//! database refuses fails its own job with why, while the jobs committed
//! with it are kept and none runs twice.

mod common;

use std::time::Duration;

use clerk::jobs::{JobState, JobsError};
use common::*;
use serde_json::json;

const LONG: Duration = Duration::from_secs(60);

const PRINT: &str = r#"
name = "print"
[[steps]]
name = "work"
kind = "command"
argv = ["sh", "-c", "cat"]
"#;

async fn values_no_back_end_keeps_are_refused_at_enqueue_with_where_they_are(kind: Kind) {
    let s = setup(kind, "print", PRINT).await;
    let bot = s.registry.get("print").unwrap().clone();
    let fine = new_job(&bot, json!({"n": 1}));
    let bad = new_job(&bot, json!({"mail": {"subject": "Invoice\u{0}42"}}));
    let refused = s.db.enqueue(&[fine, bad]).await.unwrap_err();
    assert!(matches!(refused, JobsError::Unstorable(_)), "{refused:?}");
    let said = refused.to_string();
    assert!(
        said.contains("input.mail.subject") && said.contains("NUL"),
        "{said}"
    );
    let listed =
        s.db.list(&clerk::jobs::ListFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(listed.is_empty(), "nothing of the refused batch is kept");

    // A key longer than an index entry may be still works, and still
    // deduplicates.
    let key = format!("mail:inbox:<{}@example.com>", "x".repeat(5000));
    let mut keyed = new_job(&bot, json!({"n": 2}));
    keyed.idempotency_key = Some(key.clone());
    let first = s.db.enqueue(&[keyed.clone()]).await.unwrap()[0];
    let again = s.db.enqueue(&[keyed]).await.unwrap()[0];
    assert!(first.created && !again.created, "{first:?} {again:?}");
    assert_eq!(first.id, again.id);
}

/// Prints its input as its output, so the output holds whatever the input
/// holds; `steps` of them, one after the other.
fn echo_bot(steps: usize) -> String {
    let mut bot = String::from("name = \"echo\"\n[retry]\nmax_attempts = 3\nmax_lost = 3\n");
    for i in 0..steps {
        bot.push_str(&format!(
            "[[steps]]\nname = \"s{i}\"\nkind = \"command\"\nargv = [\"python3\", \"-c\", \"import json, sys; i = json.load(sys.stdin)['input']; print(json.dumps({{'text': i['text'].replace('NUL', chr(0))}}))\"]\n"
        ));
    }
    bot
}

async fn an_output_the_database_refuses_fails_only_its_job(steps: usize) {
    let s = setup(Kind::Postgres, "echo", &echo_bot(steps)).await;
    let bot = s.registry.get("echo").unwrap().clone();
    let mut jobs: Vec<_> = (0..5)
        .map(|i| new_job(&bot, json!({ "text": format!("fine {i}") })))
        .collect();
    jobs.insert(2, new_job(&bot, json!({ "text": "bad NUL here" })));
    let ids = enqueue_ids(&s.db, &jobs).await;
    let w = RunningWorker::start(s.db.clone(), s.registry.clone(), fast_config(6));
    let mut states = Vec::new();
    for id in &ids {
        states.push(
            wait_for(
                &s.db,
                *id,
                &[JobState::Succeeded, JobState::Failed, JobState::Dead],
                LONG,
            )
            .await,
        );
    }
    w.shutdown().await;
    let mut want = vec![JobState::Succeeded; 6];
    want[2] = JobState::Failed;
    assert_eq!(states, want);
    for id in &ids {
        let job = s.db.job(*id).await.unwrap().unwrap();
        assert_eq!(
            job.attempts.len(),
            1,
            "job {id} ran again: {:?}",
            job.attempts
        );
    }
    let bad = s.db.job(ids[2]).await.unwrap().unwrap();
    let error = bad.summary.last_error.unwrap_or_default();
    assert!(error.contains("cannot be stored"), "{error}");
    if steps > 1 {
        assert!(error.contains("step `s0`"), "{error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_last_step_output_the_database_refuses_fails_only_its_job() {
    an_output_the_database_refuses_fails_only_its_job(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_saved_step_output_the_database_refuses_fails_only_its_job() {
    an_output_the_database_refuses_fails_only_its_job(2).await;
}

both_backends!(values_no_back_end_keeps_are_refused_at_enqueue_with_where_they_are);
