//! Printing an HTML page to PDF with headless Chromium, for reports.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a print may take before it is given up.
const PRINT_TIMEOUT: Duration = Duration::from_secs(60);

/// Print `html` (a self-contained page) to the PDF file `out`.
pub fn print_to_pdf(html: &str, out: &Path) -> Result<(), String> {
    let chromium = super::launch::executable(None).map_err(|e| e.message)?;
    let dir = tempfile::tempdir().map_err(|e| format!("cannot make a scratch folder: {e}"))?;
    let page = dir.path().join("report.html");
    std::fs::write(&page, html).map_err(|e| format!("cannot write {}: {e}", page.display()))?;
    let out_abs = std::path::absolute(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut cmd = Command::new(&chromium);
    cmd.args(super::launch::FLAGS)
        .arg("--headless")
        .arg("--disable-gpu")
        .arg("--no-pdf-header-footer")
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("--print-to-pdf={}", out_abs.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.arg("--no-sandbox");
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", chromium.display()))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() && out_abs.is_file() => return Ok(()),
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                let last: Vec<&str> = err.lines().rev().take(3).collect();
                return Err(format!(
                    "{} could not print the report ({status}): {}",
                    chromium.display(),
                    last.join(" / ")
                ));
            }
            Ok(None) if started.elapsed() > PRINT_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "printing the report took over {} s; gave up",
                    PRINT_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("waiting for {}: {e}", chromium.display())),
        }
    }
}
