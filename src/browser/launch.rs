//! The process's browser: Debian's chromium (or a configured one), headless,
//! launched once and reused; a context of its own for every job.
//!
//! clerk speaks to it over a pipe (`--remote-debugging-pipe`, see `pipe`),
//! never a TCP port: no other local process can drive it. Where clerk does
//! not run as root, chromium keeps its sandbox. As root it cannot: chromium
//! refuses to sandbox a root process, and running it as another user would
//! leave it unable to read the documents it uploads, which are clerk's
//! user's alone (`config::permissions`). Run clerk as a user of its own to
//! keep the sandbox.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

use serde_json::{Value, json};

use super::page::PageConnection;
use super::pipe::Pipe;
use crate::step::StepError;

static BROWSER: Mutex<Option<Launched>> = Mutex::new(None);

/// The process's browser and clerk's conversation with it, for
/// browser-wide commands (contexts, targets, sessions).
#[derive(Clone)]
pub(super) struct Launched {
    process: Arc<Mutex<Child>>,
    pid: u32,
    pipe: Arc<Pipe>,
    control: Arc<PageConnection>,
    /// The browser's profile, removed with the last handle.
    _profile: Arc<tempfile::TempDir>,
}

/// Flags for a machine without network: nothing fetched in the
/// background, no first-run pages.
pub(super) const FLAGS: &[&str] = &[
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-dev-shm-usage",
    "--disable-features=Translate,MediaRouter",
];

/// The usual names of a chromium on `PATH`, in the order they are tried.
const NAMES: [&str; 5] = [
    "chromium",
    "chromium-browser",
    "google-chrome-stable",
    "google-chrome",
    "chrome",
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
    if let Some(path) = std::env::var_os("CHROME").map(PathBuf::from)
        && path.exists()
    {
        return Ok(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| NAMES.iter().map(move |name| dir.join(name)))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            StepError::business(
                "no chromium found on PATH; scripts/setup.sh installs Debian's, or set `chromium` in the step",
            )
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
    let launched = launch(path.clone())
        .map_err(|e| StepError::transient(format!("cannot start {}: {e}", path.display())))?;
    tracing::info!(chromium = %path.display(), pid = launched.pid, "browser started (DevTools over a pipe)");
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

type Launch = (PathBuf, mpsc::Sender<anyhow::Result<Launched>>);

/// Start chromium from the launcher thread.
///
/// Chromium is started through `setpriv --pdeathsig KILL`, so the kernel
/// kills it when its parent goes, even by `kill -9`: a lost worker leaves
/// no browser behind. The parent the kernel watches is the *thread* that
/// started the child, so every launch happens on one thread that lives as
/// long as the process (the runtime's blocking threads come and go).
fn launch(path: PathBuf) -> anyhow::Result<Launched> {
    static LAUNCHER: OnceLock<Mutex<mpsc::Sender<Launch>>> = OnceLock::new();
    let launcher = LAUNCHER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Launch>();
        std::thread::Builder::new()
            .name("clerk-browser-launcher".into())
            .spawn(move || {
                for (path, reply) in rx {
                    let _ = reply.send(start(&path));
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
        .send((path, reply))
        .map_err(|_| anyhow::anyhow!("the launcher thread is gone"))?;
    answer
        .recv()
        .map_err(|_| anyhow::anyhow!("the launcher thread is gone"))?
}

/// A pipe whose two ends are closed when the process starts another
/// program (the child gets its ends as descriptors 3 and 4 explicitly).
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both are open descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Start chromium with its sandbox where it can have one: not as root,
/// and not where the kernel lets no unprivileged process build one (then
/// without, saying so).
fn start(path: &Path) -> anyhow::Result<Launched> {
    // SAFETY: a plain call without arguments.
    if unsafe { libc::geteuid() } == 0 {
        return start_with(path, false);
    }
    start_with(path, true).or_else(|e| {
        tracing::warn!(error = %e, "chromium cannot start with its sandbox here; starting it without");
        start_with(path, false)
    })
}

fn start_with(path: &Path, sandbox: bool) -> anyhow::Result<Launched> {
    let profile = tempfile::Builder::new()
        .prefix("clerk-browser-profile-")
        .tempdir()?;
    let (to_browser_read, to_browser_write) = pipe()?;
    let (from_browser_read, from_browser_write) = pipe()?;
    let mut command = match parent_bound() {
        Some(setpriv) => {
            let mut c = Command::new(setpriv);
            c.args(["--pdeathsig", "KILL", "--"]).arg(path);
            c
        }
        None => Command::new(path),
    };
    command
        .args([
            "--headless",
            "--remote-debugging-pipe",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(FLAGS)
        .args((!sandbox).then_some("--no-sandbox"))
        .arg("about:blank")
        // Chromium gets a clean environment too: what it needs to run, not
        // the worker's secrets.
        .env_clear()
        .envs(crate::config::secrets::child_environment())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let (read_end, write_end) = (to_browser_read.as_raw_fd(), from_browser_write.as_raw_fd());
    // SAFETY: only async-signal-safe calls (fcntl, dup2, close) between
    // fork and exec.
    unsafe {
        command.pre_exec(move || {
            // Copied out of the way first, so that placing one cannot
            // overwrite the other; dup2 leaves 3 and 4 open across exec.
            let read = libc::fcntl(read_end, libc::F_DUPFD, 10);
            let write = libc::fcntl(write_end, libc::F_DUPFD, 10);
            if read < 0 || write < 0 || libc::dup2(read, 3) < 0 || libc::dup2(write, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(read);
            libc::close(write);
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    drop((to_browser_read, from_browser_write));
    let pipe = Pipe::start(File::from(to_browser_write), File::from(from_browser_read))?;
    let control = PageConnection::browser(&pipe);
    if let Err(e) = control.call("Browser.getVersion", json!({}), Duration::from_secs(30)) {
        let _ = child.kill();
        let _ = child.wait();
        anyhow::bail!("the browser did not answer over its pipe: {e}");
    }
    Ok(Launched {
        pid: child.id(),
        process: Arc::new(Mutex::new(child)),
        pipe,
        control: Arc::new(control),
        _profile: Arc::new(profile),
    })
}

/// `setpriv` (util-linux), or `None` with a warning where it is missing.
fn parent_bound() -> Option<&'static str> {
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    if setpriv.is_none() {
        tracing::warn!(
            "setpriv (util-linux) is missing: a worker killed with -9 leaves its chromium running"
        );
    }
    setpriv
}

/// Stop a browser and reap it.
fn stop(launched: &Launched) {
    if let Ok(mut child) = launched.process.lock() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

extern "C" fn stop_browser() {
    if let Ok(mut held) = BROWSER.lock()
        && let Some(launched) = held.take()
    {
        stop(&launched);
    }
}

/// Whether the browser still runs and answers.
pub(super) fn alive(launched: &Launched) -> bool {
    process_running(launched.pid)
        && !launched.pipe.is_closed()
        && launched
            .control
            .call("Browser.getVersion", json!({}), Duration::from_secs(5))
            .is_ok()
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

/// Drop the process's browser (it died or stopped answering); the next
/// step starts another.
pub(super) fn forget(launched: &Launched) {
    if let Ok(mut held) = BROWSER.lock()
        && held.as_ref().is_some_and(|b| b.pid == launched.pid)
    {
        *held = None;
    }
    stop(launched);
}

/// One job's tab in a context of its own; the context (its tab, cookies
/// and storage with it) is disposed of when the session is dropped.
pub(super) struct Session {
    /// clerk's conversation with the job's tab.
    pub page: PageConnection,
    context: String,
    launched: Launched,
}

fn text(answer: &Value, key: &str) -> anyhow::Result<String> {
    answer
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("the browser's answer has no {key}"))
}

impl Session {
    pub fn open(launched: &Launched) -> anyhow::Result<Session> {
        let limit = Duration::from_secs(20);
        let control = &launched.control;
        let context = text(
            &control.call("Target.createBrowserContext", json!({}), limit)?,
            "browserContextId",
        )?;
        let page = control
            .call(
                "Target.createTarget",
                json!({ "url": "about:blank", "browserContextId": context }),
                limit,
            )
            .and_then(|t| text(&t, "targetId"))
            .and_then(|target| {
                control.call(
                    "Target.attachToTarget",
                    json!({ "targetId": target, "flatten": true }),
                    limit,
                )
            })
            .and_then(|s| text(&s, "sessionId"))
            .map(|session| PageConnection::attach(&launched.pipe, &session));
        match page {
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
    let disposed = launched.control.call(
        "Target.disposeBrowserContext",
        json!({ "browserContextId": context }),
        Duration::from_secs(10),
    );
    if let Err(e) = disposed {
        tracing::warn!(error = %e, "cannot dispose of a browser context");
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        dispose(&self.launched, &self.context);
    }
}
