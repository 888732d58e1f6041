//! The dashboard, a run page with a failure screenshot and the bots page,
//! in real headless Chromium against real `clerk serve`, on SQLite and
//! PostgreSQL: the figures of a known mix of jobs, the screenshot a failed
//! browser step kept, and a runs list that shows a new job without being
//! reloaded. Screenshots go to target/screenshots/.

mod common;

use std::time::Duration;

use clerk::jobs::JobState;
use common::browser::{add_user, browser, clerk, js, serve, until};
use common::erp::Erp;
use common::{Kind, OPS_BOT, TestDb, wait_for, write_bot};
use headless_chrome::Tab;
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;

/// A booking whose form has moved: the button is not there, and the step
/// keeps a screenshot of the page it was on.
fn booker(erp: &str) -> String {
    format!(
        r##"
name = "booker"
description = "Books into the ERP"
[retry]
max_attempts = 1
[[steps]]
name = "book"
kind = "browser"
action_timeout = "2s"
actions = [
  {{ goto = "{erp}/login" }},
  {{ click = "#no-such-button" }},
]
"##
    )
}

/// `clerk run BOT --input JSON`; the job's id.
fn run(url: &str, bots: &std::path::Path, bot: &str, input: &str) -> i64 {
    let out = clerk()
        .args(["run", bot, "--input", input, "--json", "--database", url])
        .arg("--bots")
        .arg(bots)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["id"].as_i64().unwrap()
}

fn shoot(tab: &Tab, kind: Kind, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = tab
        .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
        .unwrap();
    let kind = format!("{kind:?}").to_lowercase();
    std::fs::write(dir.join(format!("operations-{kind}-{name}.png")), png).unwrap();
}

fn text(tab: &Tab) -> String {
    js(tab, "document.body.innerText")
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn the_operations_pages_in_a_real_browser(kind: Kind) {
    let t = TestDb::new(kind).await;
    let erp = Erp::start();
    let bots = write_bot(t.path(), "ops", OPS_BOT);
    write_bot(t.path(), "booker", &booker(&erp.url()));
    add_user(&t.url, "olga", "operator", "olga-password-1");
    let server = serve(&t.url, t.path(), &bots, &[]);
    let db = t.open().await;
    let mut ids = Vec::new();
    for mode in ["ok", "ok", "ok", "business"] {
        ids.push(run(
            &t.url,
            &bots,
            "ops",
            &format!(r#"{{"mode": "{mode}"}}"#),
        ));
    }
    let failed = run(&t.url, &bots, "booker", "{}");
    ids.push(failed);
    for id in &ids {
        let ended = [JobState::Succeeded, JobState::Failed, JobState::Dead];
        wait_for(&db, *id, &ended, Duration::from_secs(120)).await;
    }
    let base = format!("http://127.0.0.1:{}", server.port);
    let (url, bots_dir) = (t.url.clone(), bots.clone());
    tokio::task::spawn_blocking(move || {
        let browser = browser();
        let tab = browser.new_tab().unwrap();
        tab.navigate_to(&format!("{base}/dashboard")).unwrap();
        tab.wait_for_element("input[name=password]").unwrap();
        tab.type_str("olga").unwrap();
        tab.press_key("Tab").unwrap();
        tab.type_str("olga-password-1").unwrap();
        tab.press_key("Enter").unwrap();
        until(&tab, "location.pathname === '/dashboard' && !!document.querySelector('.tiles')", "the dashboard after signing in");

        // Five documents in, three straight through, two exceptions.
        let tiles = js(&tab, "Array.from(document.querySelectorAll('.tile')).map(t => t.querySelector('.label').textContent + '=' + t.querySelector('.value').textContent).join('|')");
        let tiles = tiles.as_str().unwrap();
        for want in ["Documents in=5", "Straight through=60.0%", "Exceptions=40.0%"] {
            assert!(tiles.contains(want), "{want} in {tiles}");
        }
        assert!(js(&tab, "document.querySelectorAll('svg.chart').length").as_i64().unwrap() >= 3);
        shoot(&tab, kind, "dashboard");

        // The failed booking's page shows the screenshot its step kept.
        tab.navigate_to(&format!("{base}/runs/{failed}")).unwrap();
        tab.wait_for_element("h1").unwrap();
        until(&tab, "!!document.querySelector('.artifacts img') && document.querySelector('.artifacts img').naturalWidth > 100", "the failure screenshot loads");
        assert!(text(&tab).contains("#no-such-button"), "{}", text(&tab));
        assert_eq!(js(&tab, "!!document.querySelector('form[action$=\"/retry\"]')"), serde_json::json!(true));
        shoot(&tab, kind, "run");

        tab.navigate_to(&format!("{base}/bots")).unwrap();
        tab.wait_for_element("table.bots").unwrap();
        let page = text(&tab);
        assert!(page.contains("booker") && page.contains("75%"), "{page}");
        shoot(&tab, kind, "bots");

        // The runs list shows a new job without being reloaded.
        tab.navigate_to(&format!("{base}/runs")).unwrap();
        tab.wait_for_element("#live tbody").unwrap();
        js(&tab, "window.notReloaded = true");
        let new = run(&url, &bots_dir, "ops", r#"{"mode": "ok"}"#);
        until(
            &tab,
            &format!("window.notReloaded === true && document.querySelector('#live tbody tr td a').textContent === '{new}'"),
            "the new job appears in the open runs list",
        );
    })
    .await
    .unwrap();
    drop(server);
}

both_backends!(the_operations_pages_in_a_real_browser);
