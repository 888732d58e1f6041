//! The API as a client reading its OpenAPI document meets it: the document
//! is valid OpenAPI (openapi-spec-validator), and a schema-driven fuzzer
//! (schemathesis, from the private virtualenv `scripts/setup.sh` makes)
//! finds no server error and no answer the document does not describe,
//! in a bounded run against a real server with jobs and reviews in it.
//!
//! `CLERK_FUZZ_EXAMPLES` (default 25 per operation) and `CLERK_FUZZ_SEED`
//! (default 1, so a run can be repeated) widen or vary the run.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clerk::jobs::{JobState, Role};
use common::*;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn venv(tool: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".venv-api/bin")
        .join(tool);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup.sh, which installs tests/api-requirements.txt",
        path.display()
    );
    path
}

/// What the fuzzer is told beyond the schema. Running a bot refuses an
/// input that holds a NUL character, with the documented 422: JSON Schema
/// cannot say that of every string nested in a free-form object, so the
/// schema allows such an input and the refusal is expected here.
const EXPECTED: &str = r#"
[[operations]]
include-operation-id = "run_bot"
checks.positive_data_acceptance.expected-statuses = ["2XX", 401, 403, 404, 409, 422, 429, "5XX"]
"#;

/// Run schemathesis against the server; its output when it found something.
fn fuzz(schema: &Path, base: &str, token: &str, extra: Option<&str>) -> Result<(), String> {
    let examples = std::env::var("CLERK_FUZZ_EXAMPLES").unwrap_or_else(|_| "25".into());
    let seed = std::env::var("CLERK_FUZZ_SEED").unwrap_or_else(|_| "1".into());
    let config = schema.with_file_name(if extra.is_some() {
        "schemathesis-pinned.toml"
    } else {
        "schemathesis.toml"
    });
    std::fs::write(&config, format!("{EXPECTED}{}", extra.unwrap_or_default()))
        .expect("write the schemathesis config");
    let mut cmd = Command::new(venv("schemathesis"));
    cmd.arg("--config-file").arg(&config);
    let out = cmd
        .arg("run")
        .arg(schema)
        .args(["--url", base])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["--max-examples", &examples, "--seed", &seed])
        .args(["--request-timeout", "30"])
        .env("NO_COLOR", "1")
        .output()
        .expect("schemathesis runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        println!(
            "{}",
            text.lines().rev().take(6).collect::<Vec<_>>().join("\n")
        );
        Ok(())
    } else {
        Err(text)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_valid_and_the_api_keeps_to_it() {
    let s = setup(
        Kind::Sqlite,
        "intake",
        &intake_bot(r#"review_within = "1h""#),
    )
    .await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Jobs in several states, and reviews to work.
    let bot = s.registry.get("intake").unwrap().clone();
    let inputs = [
        json!({ "file": root.join("fixtures/bad/owner-only.pdf"), "name": "one.pdf" }),
        json!({ "file": root.join("fixtures/bad/owner-only.pdf"), "name": "two.pdf" }),
        json!({ "file": root.join("fixtures/invoices/acme-office/RE-2026-67181.pdf") }),
        json!({ "file": "/nowhere/missing.pdf" }),
    ];
    let jobs: Vec<_> = inputs.iter().map(|i| new_job(&bot, i.clone())).collect();
    let ids = enqueue_ids(&s.db, &jobs).await;
    let worker = RunningWorker::start(s.db.clone(), s.registry.clone(), fast_config(2));
    for &id in &ids {
        wait_for(
            &s.db,
            id,
            &[
                JobState::WaitingReview,
                JobState::Succeeded,
                JobState::Failed,
            ],
            Duration::from_secs(60),
        )
        .await;
    }
    worker.shutdown().await;
    let token = format!("clerk_{}", clerk::server::new_secret());
    s.db.add_token("fuzz", Role::Admin, &clerk::server::digest(&token), "test")
        .await
        .unwrap();

    let config = clerk::server::WebConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: None,
        behind_proxy: false,
        session_ttl: Duration::from_secs(3600),
        cache_dir: s.t.path().join("pages"),
        metrics_allow: Vec::new(),
    };
    let app = clerk::server::App::new(s.db.clone(), s.registry.clone(), config, s.documents());
    let stop = CancellationToken::new();
    let (addr, _) = clerk::server::start(app, stop.clone()).await.unwrap();
    let base = format!("http://{addr}");

    let auth = format!("Bearer {token}");
    let doc = common::http::send(
        addr,
        "GET",
        "/api/v1/openapi.json",
        &[("Authorization", auth.as_str())],
        None,
    )
    .await;
    assert_eq!(doc.status, 200);
    let schema = s.t.path().join("openapi.json");
    std::fs::write(&schema, &doc.body).unwrap();
    let valid = Command::new(venv("openapi-spec-validator"))
        .arg(&schema)
        .output()
        .expect("openapi-spec-validator runs");
    assert!(
        valid.status.success(),
        "the OpenAPI document is not valid:\n{}{}",
        String::from_utf8_lossy(&valid.stdout),
        String::from_utf8_lossy(&valid.stderr)
    );

    // Random ids first, then every operation on a job that waits for
    // review, so the review paths get past their 404s.
    let schema_for = schema.clone();
    let (base_for, token_for) = (base.clone(), token.clone());
    let random =
        tokio::task::spawn_blocking(move || fuzz(&schema_for, &base_for, &token_for, None))
            .await
            .unwrap();
    if let Err(found) = random {
        panic!("schemathesis found problems:\n{found}");
    }
    let pinned = format!("\n[parameters]\n\"path.id\" = {}\n", ids[0]);
    let on_review =
        tokio::task::spawn_blocking(move || fuzz(&schema, &base, &token, Some(&pinned)))
            .await
            .unwrap();
    if let Err(found) = on_review {
        panic!("schemathesis found problems on a waiting review:\n{found}");
    }
    // The fuzzer got past the 404s: its claims and saves are in the trail.
    let job = s.db.job(ids[0]).await.unwrap().unwrap();
    let by_fuzzer = job
        .events
        .iter()
        .filter(|e| e.actor == "token:fuzz")
        .count();
    assert!(by_fuzzer > 0, "{:#?}", job.events);
    println!(
        "job {}: {by_fuzzer} events by the fuzzer, now {}",
        ids[0], job.summary.state
    );
    stop.cancel();
}
