//! The process's browser: Debian's chromium (or a configured one), headless,
//! launched once and reused; a context of its own for every job.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use headless_chrome::{Browser, LaunchOptions, Tab};

use crate::step::StepError;

static BROWSER: Mutex<Option<Browser>> = Mutex::new(None);

/// Flags for a machine without network and, often, as root: no sandbox
/// (it cannot start as root), nothing fetched in the background.
const FLAGS: &[&str] = &[
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--disable-features=Translate,MediaRouter",
];

/// The chromium to start: the configured path, `$CHROME`, or the first of
/// the usual names on `PATH`.
fn executable(configured: Option<&Path>) -> Result<PathBuf, StepError> {
    if let Some(path) = configured {
        return if path.exists() {
            Ok(path.to_path_buf())
        } else {
            Err(StepError::business(format!(
                "no browser at {} (the step's `chromium`)",
                path.display()
            )))
        };
    }
    headless_chrome::browser::default_executable().map_err(|e| {
        StepError::business(format!(
            "no chromium found ({e}); scripts/setup.sh installs Debian's, or set `chromium` in the step"
        ))
    })
}

/// The process's browser, launched if there is none.
pub(super) fn browser(configured: Option<&Path>) -> Result<Browser, StepError> {
    let mut held = BROWSER
        .lock()
        .map_err(|_| StepError::transient("the browser lock was poisoned"))?;
    if let Some(b) = held.as_ref() {
        return Ok(b.clone());
    }
    let path = executable(configured)?;
    // SAFETY: a plain call without arguments.
    let root = unsafe { libc::geteuid() } == 0;
    let options = LaunchOptions {
        headless: true,
        sandbox: !root,
        path: Some(path.clone()),
        window_size: Some((1280, 900)),
        args: FLAGS.iter().map(OsStr::new).collect(),
        // Idle between jobs is normal; the connection must not be dropped.
        idle_browser_timeout: Duration::from_secs(24 * 3600),
        ..LaunchOptions::default()
    };
    let browser = Browser::new(options)
        .map_err(|e| StepError::transient(format!("cannot start {}: {e}", path.display())))?;
    tracing::info!(chromium = %path.display(), pid = ?browser.get_process_id(), "browser started");
    *held = Some(browser.clone());
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    // Statics are never dropped: without this the browser would outlive
    // the process.
    AT_EXIT.call_once(|| {
        // SAFETY: registering a plain function with no captures.
        unsafe {
            libc::atexit(stop_browser);
        }
    });
    Ok(browser)
}

extern "C" fn stop_browser() {
    if let Ok(mut held) = BROWSER.lock() {
        // The last handle: dropping it closes chromium and waits for it.
        held.take();
    }
}

/// Whether the browser still answers.
pub(super) fn alive(browser: &Browser) -> bool {
    browser.get_version().is_ok()
}

/// Drop the process's browser (it died); the next step starts another.
pub(super) fn forget(browser: &Browser) {
    if let Ok(mut held) = BROWSER.lock()
        && held
            .as_ref()
            .is_some_and(|b| b.get_process_id() == browser.get_process_id())
    {
        *held = None;
    }
}

/// One job's tab in a context of its own, closed with its context when
/// dropped.
pub(super) struct Session {
    pub tab: Arc<Tab>,
}

impl Session {
    pub fn open(browser: &Browser) -> anyhow::Result<Session> {
        let context = browser.new_context()?;
        let tab = context.new_tab()?;
        Ok(Session { tab })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.tab.close(false);
    }
}
