//! The legacy ERP fixture (`fixtures/legacy-erp/erp.py`) for one test, on a
//! free loopback port with its bookings in a temporary folder; stopped when
//! dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "booker";
pub const PASSWORD: &str = "erp-secret-7731";

pub struct Erp {
    pub port: u16,
    _dir: tempfile::TempDir,
    child: Child,
}

impl Erp {
    pub fn start() -> Erp {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/legacy-erp/erp.py");
        let child = Command::new("python3")
            .arg(script)
            .args([
                "--port",
                &port.to_string(),
                "--user",
                USER,
                "--password",
                PASSWORD,
            ])
            .args(["--slow", "0.3", "--data"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the ERP fixture");
        let erp = Erp {
            port,
            _dir: dir,
            child,
        };
        let start = Instant::now();
        while erp.get("/admin/bookings").is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "the ERP did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        erp
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn get(&self, path: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        text.split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
    }

    /// Every booking the ERP holds.
    pub fn bookings(&self) -> Vec<serde_json::Value> {
        let body = self.get("/admin/bookings").expect("the ERP answers");
        serde_json::from_str(&body).expect("bookings as JSON")
    }

    /// Make the next `count` requests of `method` to paths starting with
    /// `path` fail (`"500"` or `"hang"`).
    pub fn fail_next(&self, mode: &str, count: u32, method: &str, path: &str) {
        self.get(&format!(
            "/admin/fail?mode={mode}&count={count}&method={method}&path={path}"
        ))
        .expect("the ERP answers");
    }
}

impl Drop for Erp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
