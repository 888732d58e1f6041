//! The process's browser: Debian's chromium (or a configured one), headless,
//! launched once and reused; a context of its own for every job.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

use headless_chrome::protocol::cdp::Target;
use serde_json::json;

use super::page::PageConnection;
use headless_chrome::{Browser, LaunchOptions, Tab};

use crate::step::StepError;

static BROWSER: Mutex<Option<Launched>> = Mutex::new(None);

/// The process's browser and a tab of its default context that stays
/// open: browser-wide commands (new contexts' tabs, disposing of contexts)
/// go through it, never through a job's own tab.
#[derive(Clone)]
pub(super) struct Launched {
    pub browser: Browser,
    control: Arc<Tab>,
    /// The browser's DevTools port.
    port: u16,
    /// clerk's own connection to the browser, for browser-wide commands.
    direct: Option<Arc<PageConnection>>,
}

/// Flags for a machine without network and, often, as root: no sandbox
/// (it cannot start as root), nothing fetched in the background.
pub(super) const FLAGS: &[&str] = &[
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--disable-features=Translate,MediaRouter",
];

/// The chromium to start: the configured path, `$CHROME`, or the first of
/// the usual names on `PATH`.
pub(super) fn executable(configured: Option<&Path>) -> Result<PathBuf, StepError> {
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
pub(super) fn browser(configured: Option<&Path>) -> Result<Launched, StepError> {
    let mut held = BROWSER
        .lock()
        .map_err(|_| StepError::transient("the browser lock was poisoned"))?;
    if let Some(b) = held.as_ref() {
        return Ok(b.clone());
    }
    let path = executable(configured)?;
    let cannot =
        |e: anyhow::Error| StepError::transient(format!("cannot start {}: {e}", path.display()));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| cannot(e.into()))?;
    let browser = launch(path.clone(), port).map_err(cannot)?;
    let control = browser.new_tab().map_err(cannot)?;
    let direct = PageConnection::open_browser(port)
        .inspect_err(|e| tracing::warn!(error = %e, "no direct connection to the browser"))
        .ok()
        .map(Arc::new);
    tracing::info!(chromium = %path.display(), pid = ?browser.get_process_id(), port, "browser started");
    let launched = Launched {
        browser,
        control,
        port,
        direct,
    };
    *held = Some(launched.clone());
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    // Statics are never dropped: without this the browser would outlive
    // the process.
    AT_EXIT.call_once(|| {
        // SAFETY: registering a plain function with no captures.
        unsafe {
            libc::atexit(stop_browser);
        }
    });
    Ok(launched)
}

type Launch = (PathBuf, u16, mpsc::Sender<anyhow::Result<Browser>>);

/// Start chromium from the launcher thread.
///
/// Chromium is started through `setpriv --pdeathsig KILL`, so the kernel
/// kills it when its parent goes, even by `kill -9`: a lost worker leaves
/// no browser behind. The parent the kernel watches is the *thread* that
/// started the child, so every launch happens on one thread that lives as
/// long as the process (the runtime's blocking threads come and go).
fn launch(path: PathBuf, port: u16) -> anyhow::Result<Browser> {
    static LAUNCHER: OnceLock<Mutex<mpsc::Sender<Launch>>> = OnceLock::new();
    let launcher = LAUNCHER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Launch>();
        std::thread::Builder::new()
            .name("clerk-browser-launcher".into())
            .spawn(move || {
                for (path, port, reply) in rx {
                    let _ = reply.send(start(&path, port));
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::warn!(error = %e, "no launcher thread"));
        Mutex::new(tx)
    });
    let (reply, answer) = mpsc::channel();
    launcher
        .lock()
        .map_err(|_| anyhow::anyhow!("the launcher lock was poisoned"))?
        .send((path, port, reply))
        .map_err(|_| anyhow::anyhow!("the launcher thread is gone"))?;
    answer
        .recv()
        .map_err(|_| anyhow::anyhow!("the launcher thread is gone"))?
}

fn start(path: &Path, port: u16) -> anyhow::Result<Browser> {
    // SAFETY: a plain call without arguments.
    let root = unsafe { libc::geteuid() } == 0;
    let wrapper = parent_bound(path);
    let options = LaunchOptions {
        headless: true,
        sandbox: !root,
        path: Some(
            wrapper
                .as_ref()
                .map(|w| w.to_path_buf())
                .unwrap_or_else(|| path.to_path_buf()),
        ),
        window_size: Some((1280, 900)),
        port: Some(port),
        args: FLAGS.iter().map(OsStr::new).collect(),
        // Idle between jobs is normal; the connection must not be dropped.
        idle_browser_timeout: Duration::from_secs(24 * 3600),
        ..LaunchOptions::default()
    };
    // The wrapper has done its work once chromium runs in its place.
    Browser::new(options)
}

/// A script that runs `chromium` bound to its parent's life, or `None`
/// (with a warning) where `setpriv` is missing. headless_chrome puts its
/// own arguments first, so `setpriv` cannot be given as the program.
fn parent_bound(chromium: &Path) -> Option<tempfile::TempPath> {
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(setpriv) = setpriv else {
        tracing::warn!(
            "setpriv (util-linux) is missing: a worker killed with -9 leaves its chromium running"
        );
        return None;
    };
    let quoted = chromium.display().to_string().replace('\'', "'\\''");
    // Chromium gets a clean environment too: what it needs to run, not the
    // worker's secrets.
    let keep: String = crate::config::secrets::CHILD_ENVIRONMENT
        .iter()
        .map(|k| format!(" ${{{k}+\"{k}=${k}\"}}"))
        .collect();
    let script = format!(
        "#!/bin/sh\nexec /usr/bin/env -i{keep} {setpriv} --pdeathsig KILL -- '{quoted}' \"$@\"\n"
    );
    let write = || -> std::io::Result<tempfile::TempPath> {
        let mut file = tempfile::Builder::new()
            .prefix("clerk-chromium-")
            .suffix(".sh")
            .tempfile()?;
        file.write_all(script.as_bytes())?;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o700))?;
        Ok(file.into_temp_path())
    };
    write()
        .inspect_err(|e| tracing::warn!(error = %e, "cannot write the chromium wrapper; starting chromium directly"))
        .ok()
}

extern "C" fn stop_browser() {
    if let Ok(mut held) = BROWSER.lock() {
        // The last handle: dropping it closes chromium and waits for it.
        held.take();
    }
}

/// Whether the browser still runs and answers. clerk's own connection is
/// asked first: headless_chrome's can close on its own (it did under load)
/// while chromium is fine, and a job must not be retried for that.
pub(super) fn alive(launched: &Launched) -> bool {
    if let Some(pid) = launched.browser.get_process_id()
        && !process_running(pid)
    {
        return false;
    }
    if let Some(direct) = &launched.direct
        && direct
            .call("Browser.getVersion", json!({}), Duration::from_secs(5))
            .is_ok()
    {
        return true;
    }
    launched.browser.get_version().is_ok()
}

/// Whether process `pid` runs: it exists and is not a zombie (exited, not
/// yet reaped).
fn process_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_none_or(|rest| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Drop the process's browser (it died); the next step starts another.
pub(super) fn forget(browser: &Browser) {
    if let Ok(mut held) = BROWSER.lock()
        && held
            .as_ref()
            .is_some_and(|b| b.browser.get_process_id() == browser.get_process_id())
    {
        *held = None;
    }
}

/// One job's tab in a context of its own; the context (its tab, cookies
/// and storage with it) is disposed of when the session is dropped.
pub(super) struct Session {
    /// clerk's own connection to the job's tab.
    pub page: PageConnection,
    context: String,
    launched: Launched,
}

fn create_target(context: &str) -> Target::CreateTarget {
    Target::CreateTarget {
        url: "about:blank".into(),
        left: None,
        top: None,
        width: None,
        height: None,
        window_state: None,
        browser_context_id: Some(context.to_string()),
        enable_begin_frame_control: None,
        new_window: None,
        background: None,
        for_tab: None,
        hidden: None,
    }
}

impl Session {
    pub fn open(launched: &Launched) -> anyhow::Result<Session> {
        let browser = &launched.browser;
        let limit = Duration::from_secs(20);
        // Through clerk's own connection where it can (a call on
        // headless_chrome's costs up to 100 ms).
        let direct = launched.direct.as_ref().and_then(|page| {
            let context = page
                .call("Target.createBrowserContext", json!({}), limit)
                .ok()?
                .get("browserContextId")?
                .as_str()?
                .to_string();
            let target = page
                .call(
                    "Target.createTarget",
                    json!({ "url": "about:blank", "browserContextId": context }),
                    limit,
                )
                .ok()
                .and_then(|t| t.get("targetId")?.as_str().map(str::to_string));
            match target {
                Some(target) => Some((context, target)),
                None => {
                    dispose(launched, &context);
                    None
                }
            }
        });
        let (context, target_id) = match direct {
            Some(made) => made,
            None => {
                let context = browser.new_context()?.get_id().to_string();
                let target = launched
                    .control
                    .call_method(create_target(&context))?
                    .target_id;
                (context, target)
            }
        };
        match PageConnection::open(launched.port, &target_id) {
            Ok(page) => Ok(Session {
                page,
                context,
                launched: launched.clone(),
            }),
            Err(e) => {
                dispose(launched, &context);
                Err(e)
            }
        }
    }
}

/// Disposing of a context closes its tabs and frees what the job left in
/// the browser; closing the tab alone would keep the context for the
/// browser's life.
fn dispose(launched: &Launched, context: &str) {
    let limit = Duration::from_secs(10);
    let direct = launched.direct.as_ref().map(|page| {
        page.call(
            "Target.disposeBrowserContext",
            json!({ "browserContextId": context }),
            limit,
        )
    });
    if !matches!(direct, Some(Ok(_))) {
        let disposed = launched.control.call_method(Target::DisposeBrowserContext {
            browser_context_id: context.to_string(),
        });
        if let Err(e) = disposed {
            tracing::warn!(error = %e, "cannot dispose of a browser context");
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        dispose(&self.launched, &self.context);
    }
}
