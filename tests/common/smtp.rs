//! A real SMTP server for one test: aiosmtpd (from the private virtualenv
//! `scripts/setup.sh` makes) on a free loopback port, delivering into a
//! maildir the test reads. Stopped when dropped.

use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SmtpServer {
    pub port: u16,
    pub maildir: PathBuf,
    /// The server's self-signed certificate, when it speaks TLS.
    pub ca_file: PathBuf,
    tls: SmtpTls,
    _dir: tempfile::TempDir,
    child: Child,
}

fn python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-smtp/bin/python");
    assert!(
        python.exists(),
        "{} is missing; scripts/setup.sh makes it (aiosmtpd)",
        python.display()
    );
    python
}

/// How the server speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    None,
    /// STARTTLS offered and required before a message is taken.
    StartTls,
    /// TLS from the first byte (SMTPS).
    Implicit,
}

fn spawn(port: u16, maildir: &std::path::Path, tls: SmtpTls) -> Child {
    let dir = maildir.parent().expect("maildir has a parent");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let mut command = Command::new(python());
    command
        .args(["-m", "aiosmtpd", "-n", "-l"])
        .arg(format!("127.0.0.1:{port}"));
    match tls {
        SmtpTls::None => {}
        SmtpTls::StartTls => {
            command
                .arg("--tlscert")
                .arg(&cert)
                .arg("--tlskey")
                .arg(&key);
        }
        SmtpTls::Implicit => {
            command
                .arg("--smtpscert")
                .arg(&cert)
                .arg("--smtpskey")
                .arg(&key);
        }
    }
    let child = command
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start aiosmtpd");
    wait_until_ready(port, tls == SmtpTls::Implicit);
    child
}

fn wait_until_ready(port: u16, implicit_tls: bool) {
    let start = Instant::now();
    loop {
        // An SMTPS server says nothing before the handshake: it is up once
        // it accepts.
        if implicit_tls && TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut greeting = [0u8; 3];
            if s.read_exact(&mut greeting).is_ok() && &greeting == b"220" {
                return;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "aiosmtpd did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        SmtpServer::start_with(SmtpTls::None)
    }

    pub fn start_with(tls: SmtpTls) -> SmtpServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_file = super::self_signed_certificate(dir.path());
        let maildir = dir.path().join("Maildir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = spawn(port, &maildir, tls);
        SmtpServer {
            port,
            maildir,
            ca_file,
            tls,
            _dir: dir,
            child,
        }
    }

    /// Stop the server (an outage); `restart` brings it back.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start the stopped server again: same port, same maildir.
    pub fn restart(&mut self) {
        self.child = spawn(self.port, &self.maildir, self.tls);
    }

    /// Every message delivered so far, as stored.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.maildir.join("new"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files.iter().filter_map(|f| std::fs::read(f).ok()).collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
