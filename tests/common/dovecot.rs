//! A private Dovecot IMAP server for one test: its own configuration,
//! password file and maildirs in a temporary folder, on a free loopback
//! port, stopped when dropped.

use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "finance";
pub const PASSWORD: &str = "correct horse battery staple";

pub struct Dovecot {
    /// Plain IMAP, with STARTTLS offered.
    pub port: u16,
    /// IMAP over TLS from the first byte.
    pub tls_port: u16,
    /// The server's self-signed certificate, for clients to trust.
    pub ca_file: std::path::PathBuf,
    pub dir: tempfile::TempDir,
    child: Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Dovecot {
    pub fn start() -> Dovecot {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        for sub in ["run", "state", "home"] {
            std::fs::create_dir_all(d.join(sub)).expect("dovecot dirs");
        }
        // As root, Dovecot runs its processes as its own users and the mail
        // as `dovecot`; otherwise everything runs as the current user.
        // SAFETY: plain calls without arguments.
        let root = unsafe { libc::geteuid() } == 0;
        let (internal, login, mail) = if root {
            (
                "dovecot".to_string(),
                "dovenull".to_string(),
                "dovecot".to_string(),
            )
        } else {
            let me = std::env::var("USER").unwrap_or_else(|_| "nobody".into());
            (me.clone(), me.clone(), me)
        };
        if root {
            let status = Command::new("chown")
                .args(["-R", &format!("{mail}:{mail}")])
                .arg(d.join("home"))
                .status()
                .expect("chown");
            assert!(status.success());
            // The temp dir itself must be passable for the mail user.
            let status = Command::new("chmod")
                .arg("755")
                .arg(d)
                .status()
                .expect("chmod");
            assert!(status.success());
        }
        std::fs::write(d.join("passwd"), format!("{USER}:{{PLAIN}}{PASSWORD}\n")).unwrap();
        let ca_file = super::self_signed_certificate(d);
        let port = free_port();
        let tls_port = std::iter::repeat_with(free_port)
            .find(|&p| p != port)
            .expect("a second port");
        let p = |sub: &str| d.join(sub).display().to_string();
        let config = format!(
            r#"base_dir = {run}
state_dir = {state}
log_path = {log}
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = 1
first_valid_gid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = static
  args = uid={mail} gid={mail} home={home}/%u
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
"#,
            run = p("run"),
            state = p("state"),
            log = p("dovecot.log"),
            passwd = p("passwd"),
            home = p("home"),
            cert = p("cert.pem"),
            key = p("key.pem"),
        );
        std::fs::write(d.join("dovecot.conf"), config).unwrap();
        let child = spawn(d);
        let server = Dovecot {
            port,
            tls_port,
            ca_file,
            dir,
            child,
        };
        server.wait_until_ready();
        server
    }

    /// Start the stopped server again: same port, same mail.
    pub fn restart(&mut self) {
        let _ = std::fs::remove_file(self.dir.path().join("run").join("master.pid"));
        self.child = spawn(self.dir.path());
        self.wait_until_ready();
    }

    fn wait_until_ready(&self) {
        let start = Instant::now();
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut greeting = [0u8; 4];
                if s.read_exact(&mut greeting).is_ok() && &greeting == b"* OK" {
                    return;
                }
            }
            if start.elapsed() > Duration::from_secs(15) {
                panic!("dovecot did not start:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    pub fn account(&self) -> clerk::mail::imap::Account {
        clerk::mail::imap::Account {
            host: "127.0.0.1".into(),
            port: self.port,
            tls: clerk::mail::imap::Tls::Plain,
            user: USER.into(),
            password: PASSWORD.into(),
            ca_file: None,
            timeout: Duration::from_secs(10),
        }
    }

    /// Stop the server (a test of an outage); `start` makes a new one.
    pub fn stop(&mut self) {
        // SAFETY: signalling our own child, then reaping it.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }

    pub fn maildir(&self) -> std::path::PathBuf {
        self.dir.path().join("home").join(USER).join("Maildir")
    }
}

fn spawn(dir: &Path) -> Child {
    Command::new("dovecot")
        .arg("-F")
        .arg("-c")
        .arg(dir.join("dovecot.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start dovecot ({e}); scripts/setup.sh installs dovecot-imapd")
        })
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The fixture messages (`fixtures/mail/*.eml`), in name order.
pub fn fixture_messages() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/mail");
    let mut all: Vec<_> = std::fs::read_dir(dir)
        .expect("fixtures/mail")
        .flatten()
        .map(|e| e.path())
        .collect();
    all.sort();
    all
}

/// Messages put into a folder with IMAP APPEND.
pub fn append_all(account: &clerk::mail::imap::Account, folder: &str, messages: &[&Path]) {
    let raw: Vec<Vec<u8>> = messages
        .iter()
        .map(|m| std::fs::read(m).expect("read message"))
        .collect();
    append_raw(account, folder, &raw);
}

/// Messages given as bytes put into a folder with IMAP APPEND.
pub fn append_raw(account: &clerk::mail::imap::Account, folder: &str, messages: &[Vec<u8>]) {
    let mut session = clerk::mail::imap::connect(account).expect("connect to dovecot");
    for raw in messages {
        session.append(folder, raw).expect("append");
    }
    session.logout();
}

/// Messages with mixed attachments, built from the document fixtures, and
/// the documents each should give as `(Message-ID, SHA-256)`.
pub struct MixedBatch {
    pub messages: Vec<Vec<u8>>,
    pub expected: std::collections::BTreeSet<(String, String)>,
}

/// `count` messages, cycling through five shapes: one invoice; two
/// invoices; a scan with a text note (not a document); no attachment; the
/// same invoice twice under two names (one document). The last message is
/// the first sent again, with the same Message-ID (nothing new).
pub fn mixed_batch(count: usize) -> MixedBatch {
    use lettre::message::header::ContentType;
    use lettre::message::{Attachment, MultiPart, SinglePart};
    use sha2::Digest;

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut invoices: Vec<std::path::PathBuf> =
        ["acme-office", "blue-harbor", "nordwind-logistics"]
            .iter()
            .flat_map(|v| std::fs::read_dir(root.join("invoices").join(v)).expect("invoices"))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "pdf"))
            .collect();
    invoices.sort();
    let scans = [
        root.join("scans/blue-harbor-clean.tif"),
        root.join("scans/nordwind-logistics-bw.pdf"),
    ];
    let read = |p: &Path| std::fs::read(p).expect("fixture");
    let sha = |b: &[u8]| {
        sha2::Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    };
    let pdf = ContentType::parse("application/pdf").expect("type");
    let mut messages = Vec::new();
    let mut expected = std::collections::BTreeSet::new();
    for i in 0..count.saturating_sub(1) {
        let id = format!("batch-{i}@vendor.example");
        let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(format!(
            "Please find invoice {i} attached."
        )));
        let mut documents = Vec::new();
        let invoice = &invoices[i % invoices.len()];
        let name = |p: &Path| p.file_name().expect("name").to_string_lossy().into_owned();
        match i % 5 {
            0 => documents.push((name(invoice), read(invoice), pdf.clone())),
            1 => {
                let other = &invoices[(i + 7) % invoices.len()];
                documents.push((name(invoice), read(invoice), pdf.clone()));
                documents.push((name(other), read(other), pdf.clone()));
            }
            2 => {
                let scan = &scans[i % scans.len()];
                let kind = if scan.extension().is_some_and(|e| e == "tif") {
                    ContentType::parse("image/tiff").expect("type")
                } else {
                    pdf.clone()
                };
                documents.push((name(scan), read(scan), kind));
                parts = parts.singlepart(
                    Attachment::new("note.txt".into())
                        .body(b"Paid by transfer.".to_vec(), ContentType::TEXT_PLAIN),
                );
            }
            3 => {}
            _ => {
                documents.push((name(invoice), read(invoice), pdf.clone()));
                documents.push((
                    format!("copy of {}", name(invoice)),
                    read(invoice),
                    pdf.clone(),
                ));
            }
        }
        for (file, bytes, kind) in documents {
            expected.insert((id.clone(), sha(&bytes)));
            parts = parts.singlepart(Attachment::new(file).body(bytes, kind));
        }
        let message = lettre::Message::builder()
            .from("Billing <billing@vendor.example>".parse().expect("from"))
            .to("invoices@clerk.example".parse().expect("to"))
            .subject(format!("Invoice {i}"))
            .message_id(Some(format!("<{id}>")))
            .multipart(parts)
            .expect("a message");
        messages.push(message.formatted());
    }
    if let Some(first) = messages.first().cloned() {
        messages.push(first);
    }
    MixedBatch { messages, expected }
}
