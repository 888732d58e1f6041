//! The `browser` step in real headless Chromium against the legacy ERP
//! fixture: invoices booked through a login, an iframe and a slow form,
//! each once; a booking already there is found by the guard; a wrong
//! selector and a refused form fail with the action named and the page
//! kept; a request that never ends keeps the network from going idle; the
//! password shows nowhere.

mod common;

use clerk::jobs::JobState;
use common::erp::{self, Erp, invoice, manifest, run, worker};
use common::{Kind, setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoices_are_booked_once_through_the_forms() {
    let erp = Erp::start();
    let s = setup(Kind::Sqlite, "book", &manifest(&erp.url(), "#save", "15s")).await;
    let w = worker(&s);
    let inputs: Vec<_> = (1..=20).map(|n| invoice(n, "23.10.2026")).collect();
    let done = run(
        &s,
        &inputs,
        &[JobState::Succeeded, JobState::Failed, JobState::Dead],
    )
    .await;
    for job in &done {
        assert_eq!(job.summary.state, JobState::Succeeded, "{job:#?}");
    }
    let bookings = erp.bookings();
    assert_eq!(bookings.len(), 20, "{bookings:#?}");
    for (input, job) in inputs.iter().zip(&done) {
        let booked = bookings
            .iter()
            .find(|b| b["invoice"] == input["invoice"])
            .expect("booked");
        assert_eq!(booked["vendor_name"], input["vendor"]);
        assert_eq!(booked["date"], "23.10.2026");
        assert_eq!(booked["amount"], input["amount"]);
        let output = job.output.clone().unwrap_or_default();
        assert_eq!(output["booking"], booked["booking"], "{output:#}");
    }

    // The same invoice again: the guard finds it, nothing is booked twice.
    let again = run(&s, &inputs[..1], &[JobState::Succeeded]).await;
    let output = again[0].output.clone().unwrap_or_default();
    assert_eq!(output["skipped"], true, "{output:#}");
    assert_eq!(
        output["booking"],
        done[0].output.clone().unwrap()["booking"]
    );
    assert_eq!(erp.bookings().len(), 20);
    w.shutdown().await;

    // The password is in no record of the jobs.
    for job in done.iter().chain(&again) {
        let text = serde_json::to_string(job).unwrap();
        assert!(!text.contains(erp::PASSWORD), "{text}");
    }
}

/// Values from the job are data: an invoice number with `+`, `#` and `&`
/// is encoded in the guard's address, so the guard finds its own booking
/// and the invoice is booked once; a `${secret:…}` in a job's input is
/// typed into the form as that text, never resolved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoice_numbers_and_secret_references_in_data_stay_data() {
    let erp = Erp::start();
    let s = setup(Kind::Sqlite, "book", &manifest(&erp.url(), "#save", "15s")).await;
    let w = worker(&s);
    let mut tricky = invoice(1, "23.10.2026");
    tricky["invoice"] = serde_json::json!("RE+7 #1&number=RE-2026-00002");
    let mut sly = invoice(2, "23.10.2026");
    sly["invoice"] = serde_json::json!("${secret:ERP_PASSWORD}");
    let done = run(
        &s,
        &[tricky.clone(), sly],
        &[JobState::Succeeded, JobState::Failed, JobState::Dead],
    )
    .await;
    for job in &done {
        assert_eq!(job.summary.state, JobState::Succeeded, "{job:#?}");
    }
    let again = run(
        &s,
        &[tricky],
        &[JobState::Succeeded, JobState::Failed, JobState::Dead],
    )
    .await;
    w.shutdown().await;
    let output = again[0].output.clone().unwrap_or_default();
    assert_eq!(
        output["skipped"], true,
        "the guard missed the booking: {output:#}"
    );
    let mut invoices: Vec<String> = erp
        .bookings()
        .iter()
        .map(|b| b["invoice"].as_str().unwrap_or_default().to_string())
        .collect();
    invoices.sort();
    assert_eq!(
        invoices,
        ["${secret:ERP_PASSWORD}", "RE+7 #1&number=RE-2026-00002"],
        "each invoice booked once, as written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_selector_and_a_refused_form_say_which_action_and_keep_the_page() {
    let erp = Erp::start();
    let s = setup(Kind::Sqlite, "book", &manifest(&erp.url(), "#sav", "3s")).await;
    let w = worker(&s);
    let failed = run(
        &s,
        &[invoice(7, "23.10.2026")],
        &[JobState::Dead, JobState::Failed],
    )
    .await;
    let error = failed[0].summary.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("action 13 of step `erp` (click `#sav`)"),
        "{error}"
    );
    assert!(error.contains("no element matches `#sav`"), "{error}");
    // The screenshot, the page's HTML and its console are kept and named.
    let kept: Vec<&str> = error
        .split("kept: ")
        .nth(1)
        .expect("evidence named in the error")
        .split(", ")
        .collect();
    assert_eq!(kept.len(), 3, "{error}");
    for file in &kept {
        assert!(std::path::Path::new(file).is_file(), "{file}");
    }
    assert!(
        kept[0].ends_with(".png") && kept[1].ends_with(".html"),
        "{kept:?}"
    );
    let html = std::fs::read_to_string(kept[1]).unwrap();
    assert!(html.contains("<iframe"), "{html}");
    assert!(!error.contains(erp::PASSWORD));
    w.shutdown().await;
    assert!(erp.bookings().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_on_a_wrong_date_fails_the_job_with_what_the_page_said() {
    let erp = Erp::start();
    let s = setup(Kind::Sqlite, "book", &manifest(&erp.url(), "#save", "15s")).await;
    let w = worker(&s);
    let failed = run(
        &s,
        &[invoice(8, "2026-10-23")],
        &[JobState::Failed, JobState::Dead],
    )
    .await;
    w.shutdown().await;
    let job = &failed[0];
    assert_eq!(job.summary.state, JobState::Failed, "{job:#?}");
    let error = job.summary.last_error.clone().unwrap_or_default();
    assert!(error.contains("click `#save`"), "{error}");
    assert!(error.contains("Datum ungültig"), "{error}");
    assert!(erp.bookings().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erp_failing_twice_is_retried_and_books_once() {
    let erp = Erp::start();
    let s = setup(Kind::Sqlite, "book", &manifest(&erp.url(), "#save", "15s")).await;
    // Each of the first two bookings sent is answered with an error page.
    erp.fail_next("500", 2, "POST", "/book");
    let w = worker(&s);
    let done = run(
        &s,
        &[invoice(9, "01.11.2026")],
        &[JobState::Succeeded, JobState::Dead],
    )
    .await;
    w.shutdown().await;
    let job = &done[0];
    assert_eq!(job.summary.state, JobState::Succeeded, "{job:#?}");
    assert_eq!(
        job.summary.attempt,
        3,
        "{:#?}",
        job.attempts.iter().map(|a| &a.error).collect::<Vec<_>>()
    );
    let errors: Vec<String> = job
        .attempts
        .iter()
        .filter_map(|a| a.error.clone())
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors.iter().all(|e| e.contains("HTTP 500")), "{errors:?}");
    assert_eq!(erp.bookings().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_that_never_answers_times_out_and_is_retried_once() {
    let erp = Erp::start();
    let s = setup(Kind::Sqlite, "book", &manifest(&erp.url(), "#save", "3s")).await;
    erp.fail_next("hang", 1, "POST", "/book");
    let w = worker(&s);
    let done = run(
        &s,
        &[invoice(11, "05.11.2026")],
        &[JobState::Succeeded, JobState::Dead],
    )
    .await;
    w.shutdown().await;
    let job = &done[0];
    assert_eq!(job.summary.state, JobState::Succeeded, "{job:#?}");
    assert_eq!(job.summary.attempt, 2);
    let first = job.attempts[0].error.clone().unwrap_or_default();
    assert!(first.contains("wait for `#booking-number`"), "{first}");
    assert!(first.contains("after 3s"), "{first}");
    assert_eq!(erp.bookings().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_the_network_sees_a_request_that_never_ends() {
    let erp = Erp::start();
    let manifest = format!(
        r##"
name = "book"
secrets = ["ERP_PASSWORD"]
[retry]
max_attempts = 2
backoff = "100ms"
jitter = 0
[[steps]]
name = "login"
kind = "browser"
action_timeout = "3s"
actions = [
  {{ goto = "{erp}/login" }},
  {{ fill = "#user", value = "{user}" }},
  {{ fill = "#password", value = "${{secret:ERP_PASSWORD}}" }},
  {{ click = "#login" }},
  {{ wait_idle = "300ms", timeout = "2s" }},
  {{ wait_url = "/app" }},
  {{ read = "#main", attribute = "src", into = "frame" }},
]
"##,
        erp = erp.url(),
        user = erp::USER,
    );
    let s = setup(Kind::Sqlite, "book", &manifest).await;
    // The first login sent is never answered: its request stays open.
    erp.fail_next("hang", 1, "POST", "/login");
    let w = worker(&s);
    let done = run(
        &s,
        &[serde_json::json!({})],
        &[JobState::Succeeded, JobState::Dead, JobState::Failed],
    )
    .await;
    w.shutdown().await;
    let job = &done[0];
    assert_eq!(job.summary.state, JobState::Succeeded, "{job:#?}");
    assert_eq!(job.summary.attempt, 2);
    let first = job.attempts[0].error.clone().unwrap_or_default();
    assert!(
        first.contains("action 5 of step `login` (wait for the network to be idle for 300ms)"),
        "{first}"
    );
    assert!(
        first.contains("request(s) still open") && !first.contains("(0 request"),
        "{first}"
    );
    let output = job.output.clone().unwrap_or_default();
    assert_eq!(output["frame"], "/book", "{output:#}");
    assert!(output["url"].as_str().unwrap_or_default().ends_with("/app"));
}
