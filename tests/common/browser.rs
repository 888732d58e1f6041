//! Driving the real `clerk` binary and a real headless Chromium: start
//! `clerk serve`, add users through the CLI, read and wait on pages.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use headless_chrome::{Browser, LaunchOptions, Tab};

pub fn clerk() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_clerk"));
    c.env_remove("DATABASE_URL").env("RUST_LOG", "clerk=info");
    c
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Add a user through the CLI, the password on stdin.
pub fn add_user(url: &str, name: &str, role: &str, password: &str) {
    use std::io::Write;
    let mut child = clerk()
        .args(["users", "add", name, "--role", role, "--database", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        super::signal(&self.child, libc::SIGTERM);
        let _ = super::wait_exit(&mut self.child, Duration::from_secs(30));
    }
}

/// `clerk serve` on a free port with the database, data folder and bots
/// given (and `extra` flags), once it listens.
pub fn serve(url: &str, dir: &Path, bots: &Path, extra: &[&OsStr]) -> Server {
    let port = free_port();
    let log = std::fs::File::create(dir.join("serve.log")).unwrap();
    let child = clerk()
        .args(["serve", "-c", "2", "--poll-interval", "100ms"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--database")
        .arg(url)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--bots")
        .arg(bots)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let server = Server { child, port };
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "clerk serve did not listen"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

pub fn browser() -> Browser {
    let args: Vec<&OsStr> = [
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
    ]
    .iter()
    .map(OsStr::new)
    .collect();
    let options = LaunchOptions::default_builder()
        .headless(true)
        .sandbox(false)
        .window_size(Some((1400, 1000)))
        .idle_browser_timeout(Duration::from_secs(600))
        .args(args)
        .build()
        .unwrap();
    Browser::new(options).expect("chromium starts")
}

pub fn js(tab: &Tab, expression: &str) -> serde_json::Value {
    tab.evaluate(expression, true)
        .unwrap_or_else(|e| panic!("{expression}: {e}"))
        .value
        .unwrap_or(serde_json::Value::Null)
}

/// Wait until `expression` is true in the page.
pub fn until(tab: &Tab, expression: &str, what: &str) {
    let start = Instant::now();
    while js(tab, expression) != serde_json::Value::Bool(true) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what}: {}",
            js(tab, "document.body.innerText")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
