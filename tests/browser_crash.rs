//! Chromium killed in the middle of a booking (its own test binary, since
//! the browser is shared by everything in a process): the next attempt
//! starts a new browser, the guard finds the booking the ERP finished, and
//! the invoice is booked once.

mod common;

use std::time::{Duration, Instant};

use clerk::jobs::JobState;
use common::erp::{Erp, invoice, manifest, worker};
use common::{Kind, new_job, setup, wait_for};

/// Chromium processes this test process started (the browser, not its
/// helpers: those end with it).
fn our_browsers() -> Vec<i32> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid …
        let Some((head, rest)) = stat.split_once(") ") else {
            continue;
        };
        let ppid = rest.split_whitespace().nth(1).unwrap_or("");
        if ppid == me && head.contains("chrom") {
            found.extend(head.split(' ').next().and_then(|p| p.parse::<i32>().ok()));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_killed_mid_booking_is_replaced_and_books_nothing_twice() {
    let erp = Erp::start_with_delay("2");
    let s = setup(Kind::Sqlite, "book", &manifest(&erp.url(), "#save", "15s")).await;
    let w = worker(&s);
    let bot = s.registry.get("book").unwrap();
    let id =
        s.db.enqueue(&[new_job(bot, invoice(3, "23.10.2026"))])
            .await
            .unwrap()[0]
            .id;
    // Kill chromium while the ERP is taking the booking.
    let start = Instant::now();
    while erp.in_flight() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the booking never came"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let browsers = our_browsers();
    assert_eq!(browsers.len(), 1, "{browsers:?}");
    // SAFETY: signalling a child of this process.
    unsafe {
        libc::kill(browsers[0], libc::SIGKILL);
    }
    wait_for(&s.db, id, &[JobState::Succeeded], Duration::from_secs(90)).await;
    w.shutdown().await;

    let job = s.db.job(id).await.unwrap().unwrap();
    assert_eq!(job.summary.attempt, 2, "{job:#?}");
    let first = job.attempts[0].error.clone().unwrap_or_default();
    assert!(first.contains("the browser died"), "{first}");
    // The ERP finished the booking the dead browser sent; the guard found it.
    let output = job.output.clone().unwrap_or_default();
    assert_eq!(output["skipped"], true, "{output:#}");
    let bookings = erp.bookings();
    assert_eq!(bookings.len(), 1, "{bookings:#?}");
    assert_eq!(output["booking"], bookings[0]["booking"]);
    // A new browser served the second attempt.
    assert_eq!(our_browsers().len(), 1);
    assert_ne!(our_browsers(), browsers);
}
