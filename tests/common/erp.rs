//! The legacy ERP fixture (`fixtures/legacy-erp/erp.py`) for one test, on a
//! free loopback port with its bookings in a temporary folder; stopped when
//! dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clerk::jobs::JobState;

use super::{RunningWorker, Setup, fast_config, new_job, wait_for};

pub const USER: &str = "booker";
pub const PASSWORD: &str = "erp-secret-7731";

pub struct Erp {
    pub port: u16,
    _dir: tempfile::TempDir,
    child: Child,
}

impl Erp {
    pub fn start() -> Erp {
        Erp::start_with_delay("0.3")
    }

    /// The ERP taking `seconds` over each booking it is sent.
    pub fn start_with_delay(seconds: &str) -> Erp {
        Erp::start_with(seconds, false)
    }

    /// The ERP taking `seconds` over each booking; with `duplicates` it
    /// books an invoice number a second time instead of refusing it, as
    /// many legacy systems do.
    pub fn start_with(seconds: &str, duplicates: bool) -> Erp {
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
            .args(["--slow", seconds, "--data"])
            .arg(dir.path())
            .args(duplicates.then_some("--allow-duplicates"))
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

    /// Bookings being submitted right now.
    pub fn in_flight(&self) -> u64 {
        let body = self.get("/admin/in-flight").expect("the ERP answers");
        serde_json::from_str::<serde_json::Value>(&body).expect("JSON")["bookings"]
            .as_u64()
            .unwrap_or(0)
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

/// The booking bot of the browser tests: log in, guard, book through the
/// iframe form, read the booking number.
pub fn manifest(erp: &str, save: &str, timeout: &str) -> String {
    format!(
        r##"
name = "book"
secrets = ["ERP_PASSWORD"]

[retry]
max_attempts = 3
backoff = "200ms"
backoff_cap = "1s"
jitter = 0

[[steps]]
name = "erp"
kind = "browser"
action_timeout = "{timeout}"
actions = [
  {{ goto = "{erp}/login" }},
  {{ fill = "#user", value = "{user}" }},
  {{ fill = "#password", value = "${{secret:ERP_PASSWORD}}" }},
  {{ click = "#login" }},
  {{ wait_for = "#main" }},
  {{ guard = "{erp}/search?number={{{{invoice}}}}", found = "#results .booking", into = "booking" }},
  {{ goto = "{erp}/app" }},
  {{ frame = "#main" }},
  {{ select = "#vendor", value = "{{{{vendor}}}}" }},
  {{ fill = "#invoice", value = "{{{{invoice}}}}" }},
  {{ fill = "#date", value = "{{{{date}}}}" }},
  {{ fill = "#amount", value = "{{{{amount}}}}" }},
  {{ click = "{save}" }},
  {{ wait_for = "#booking-number" }},
  {{ read = "#booking-number", into = "booking" }},
]
"##,
        user = USER,
    )
}

pub fn worker(s: &Setup) -> RunningWorker {
    let secrets = s.t.path().join("secrets.env");
    std::fs::write(&secrets, format!("ERP_PASSWORD={}\n", PASSWORD)).unwrap();
    let mut cfg = fast_config(2);
    cfg.secrets = Arc::new(clerk::config::secrets::Secrets::with_file(&secrets).unwrap());
    RunningWorker::start(s.db.clone(), s.registry.clone(), cfg)
}

pub fn invoice(n: u32, date: &str) -> serde_json::Value {
    let vendors = [
        "ACME Office Supplies GmbH",
        "Blue Harbor Trading Ltd",
        "Nordwind Logistik B.V.",
    ];
    serde_json::json!({
        "vendor": vendors[n as usize % 3],
        "invoice": format!("RE-2026-{n:05}"),
        "date": date,
        "amount": format!("{n}.234,56"),
    })
}

pub async fn run(
    s: &Setup,
    inputs: &[serde_json::Value],
    end: &[JobState],
) -> Vec<clerk::jobs::JobDetail> {
    let bot = s.registry.get("book").unwrap();
    let jobs: Vec<_> = inputs.iter().map(|i| new_job(bot, i.clone())).collect();
    let ids = super::enqueue_ids(&s.db, &jobs).await;
    let mut out = Vec::new();
    for id in ids {
        wait_for(&s.db, id, end, Duration::from_secs(120)).await;
        out.push(s.db.job(id).await.unwrap().unwrap());
    }
    out
}

/// The example bot copied into `bots`, pointed at this test's servers.
pub fn install_example(bots: &Path, erp: &Erp, smtp: &super::smtp::SmtpServer) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("bots/invoice-intake");
    let to = bots.join("invoice-intake");
    std::fs::create_dir_all(to.join("templates")).unwrap();
    for entry in std::fs::read_dir(from.join("templates")).unwrap().flatten() {
        std::fs::copy(entry.path(), to.join("templates").join(entry.file_name())).unwrap();
    }
    let manifest = std::fs::read_to_string(from.join("bot.toml")).unwrap();
    assert!(manifest.contains("http://127.0.0.1:8090") && manifest.contains("port = 2525"));
    let manifest = manifest
        .replace("http://127.0.0.1:8090", &erp.url())
        .replace("\"booker\"", &format!("\"{}\"", USER))
        .replace("port = 2525", &format!("port = {}", smtp.port));
    std::fs::write(to.join("bot.toml"), manifest).unwrap();
}
