//! The IMAP side of mailbox intake, on the `imap` crate. Its calls block:
//! callers run them on a blocking thread, never on the async runtime.
//!
//! Connections have time limits (connect, and every read and write), so a
//! server that stops answering fails the poll instead of hanging it.
//! Messages are fetched in batches of UIDs, one command per batch, not one
//! round trip per message.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// TLS from the first byte (port 993).
    Implicit,
    /// Plain, then upgraded with STARTTLS before logging in (port 143).
    StartTls,
    /// No encryption: only for a server on the same machine.
    Plain,
}

/// Where a mailbox is and how to log in.
#[derive(Debug, Clone)]
pub struct Account {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub user: String,
    pub password: String,
    /// A PEM file of certificates to trust besides the system's (a company
    /// CA, or a test server's own).
    pub ca_file: Option<std::path::PathBuf>,
    /// Limit on connecting and on each read or write.
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImapError {
    /// The server cannot be reached or the connection broke: try again later.
    #[error("cannot reach the IMAP server {0}")]
    Connection(String),
    /// The server refused the login: a person must fix the settings.
    #[error("the IMAP server refused the login of `{user}`: {reason}")]
    Login { user: String, reason: String },
    /// The settings cannot work (an unreadable CA file, say).
    #[error("{0}")]
    Settings(String),
    /// The server answered a command with an error.
    #[error("the IMAP server refused `{command}`: {reason}")]
    Refused { command: String, reason: String },
}

impl ImapError {
    /// Whether trying again later may succeed without a person's help.
    pub fn is_transient(&self) -> bool {
        matches!(self, ImapError::Connection(_))
    }
}

fn classify(command: &str, e: imap::Error) -> ImapError {
    match e {
        imap::Error::Io(e) => ImapError::Connection(e.to_string()),
        imap::Error::ConnectionLost => ImapError::Connection("the connection was lost".into()),
        imap::Error::Bye(b) => {
            ImapError::Connection(format!("the server closed the session: {b:?}"))
        }
        other => ImapError::Refused {
            command: command.to_string(),
            reason: other.to_string(),
        },
    }
}

/// A byte stream the session runs over: TCP or TLS over TCP.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// The connection, shared by the `imap` crate's session and clerk's own
/// reader of FETCH answers. The crate parses an answer again from its start
/// after every line it reads, which for a message of thousands of lines
/// costs more than the server takes to send it; clerk reads fetched
/// messages itself, taking each literal whole. The two never read at once:
/// a session is used by one thread, one command at a time.
#[derive(Clone)]
struct Shared {
    stream: std::sync::Arc<std::sync::Mutex<Box<dyn Stream>>>,
    /// The socket under any TLS, for read time limits while idling.
    socket: std::sync::Arc<TcpStream>,
    /// The read time limit outside IDLE.
    timeout: Duration,
}

impl Shared {
    fn lock(&self) -> std::io::Result<std::sync::MutexGuard<'_, Box<dyn Stream>>> {
        self.stream
            .lock()
            .map_err(|_| std::io::Error::other("the connection was poisoned by a panic"))
    }
}

impl imap::extensions::idle::SetReadTimeout for Shared {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> imap::error::Result<()> {
        // The crate lifts the limit after IDLE; clerk keeps its own, so that
        // a server that dies then cannot hang the session.
        self.socket
            .set_read_timeout(Some(timeout.unwrap_or(self.timeout)))
            .map_err(imap::Error::Io)
    }
}

impl Read for Shared {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.lock()?.read(buf)
    }
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.lock()?.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.lock()?.flush()
    }
}

/// A selected mailbox's identity: messages keep their UID as long as the
/// UIDVALIDITY stays the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selected {
    pub uid_validity: u32,
    pub uid_next: Option<u32>,
    pub exists: u32,
}

/// One message as the server stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub uid: u32,
    pub raw: Vec<u8>,
}

/// A logged-in session.
pub struct Session {
    inner: imap::Session<Shared>,
    raw: Shared,
    /// Tags of clerk's own commands (`c1`, `c2`, …); the crate's are `a…`.
    tag: u32,
}

/// Connect and log in.
pub fn connect(account: &Account) -> Result<Session, ImapError> {
    let at = format!("{}:{}", account.host, account.port);
    let unreachable = |e: &dyn std::fmt::Display| ImapError::Connection(format!("{at}: {e}"));
    let address = at
        .to_socket_addrs()
        .map_err(|e| unreachable(&e))?
        .next()
        .ok_or_else(|| unreachable(&"the name resolves to no address"))?;
    let tcp = TcpStream::connect_timeout(&address, account.timeout).map_err(|e| unreachable(&e))?;
    tcp.set_read_timeout(Some(account.timeout))
        .and_then(|()| tcp.set_write_timeout(Some(account.timeout)))
        .map_err(|e| unreachable(&e))?;
    let socket = std::sync::Arc::new(tcp.try_clone().map_err(|e| unreachable(&e))?);
    let tls = || tls_connector(account.ca_file.as_deref());
    let (stream, greeting_read): (Box<dyn Stream>, bool) = match account.tls {
        Tls::Plain => (Box::new(tcp), false),
        Tls::Implicit => {
            let stream = tls()?
                .connect(&account.host, tcp)
                .map_err(|e| unreachable(&e))?;
            (Box::new(stream), false)
        }
        Tls::StartTls => {
            let tcp = starttls(tcp).map_err(|e| unreachable(&e))?;
            let stream = tls()?
                .connect(&account.host, tcp)
                .map_err(|e| unreachable(&e))?;
            // The greeting came before the upgrade.
            (Box::new(stream), true)
        }
    };
    let raw = Shared {
        stream: std::sync::Arc::new(std::sync::Mutex::new(stream)),
        socket,
        timeout: account.timeout,
    };
    let mut client = imap::Client::new(raw.clone());
    client.greeting_read = greeting_read;
    if !client.greeting_read {
        client
            .read_greeting()
            .map_err(|e| classify("greeting", e))?;
    }
    let inner = client
        .login(&account.user, &account.password)
        .map_err(|(e, _)| match e {
            imap::Error::No(_) | imap::Error::Bad(_) => ImapError::Login {
                user: account.user.clone(),
                reason: e.to_string(),
            },
            other => classify("LOGIN", other),
        })?;
    Ok(Session { inner, raw, tag: 0 })
}

/// TLS that trusts the system's certificates and those of `ca_file`.
fn tls_connector(ca_file: Option<&std::path::Path>) -> Result<native_tls::TlsConnector, ImapError> {
    let mut builder = native_tls::TlsConnector::builder();
    if let Some(file) = ca_file {
        let settings = |e: &dyn std::fmt::Display| {
            ImapError::Settings(format!("the CA file {}: {e}", file.display()))
        };
        let pem = std::fs::read(file).map_err(|e| settings(&e))?;
        let certificate = native_tls::Certificate::from_pem(&pem).map_err(|e| settings(&e))?;
        builder.add_root_certificate(certificate);
    }
    builder
        .build()
        .map_err(|e| ImapError::Settings(format!("TLS cannot start: {e}")))
}

/// Read the greeting and ask to upgrade: `a0 STARTTLS`, answered `a0 OK`.
/// Done on the bare socket, before the session starts.
fn starttls(mut tcp: TcpStream) -> std::io::Result<TcpStream> {
    let mut reader = std::io::BufReader::new(tcp.try_clone()?);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line)?;
    if !line.starts_with("* OK") {
        return Err(std::io::Error::other(format!(
            "unexpected greeting: {}",
            line.trim()
        )));
    }
    tcp.write_all(b"a0 STARTTLS\r\n")?;
    loop {
        line.clear();
        if std::io::BufRead::read_line(&mut reader, &mut line)? == 0 {
            return Err(std::io::Error::other("the server closed the connection"));
        }
        if let Some(answer) = line.strip_prefix("a0 ") {
            return if answer.starts_with("OK") {
                Ok(tcp)
            } else {
                Err(std::io::Error::other(format!(
                    "the server does not offer STARTTLS: {}",
                    answer.trim()
                )))
            };
        }
    }
}

mod fetch;

/// UIDs fetched per command: large enough that round trips do not count,
/// small enough that a batch of 100 KB messages stays a few MB.
pub const FETCH_BATCH: usize = 50;

fn uid_set(uids: &[u32]) -> String {
    uids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl Session {
    /// Open a folder read-write.
    pub fn select(&mut self, folder: &str) -> Result<Selected, ImapError> {
        let mailbox = self
            .inner
            .select(folder)
            .map_err(|e| classify(&format!("SELECT {folder}"), e))?;
        Ok(Selected {
            uid_validity: mailbox.uid_validity.unwrap_or(0),
            uid_next: mailbox.uid_next,
            exists: mailbox.exists,
        })
    }

    /// The UIDs above `after`, oldest first.
    pub fn uids_after(&mut self, after: u32) -> Result<Vec<u32>, ImapError> {
        let query = format!("UID {}:*", after.saturating_add(1));
        let found = self
            .inner
            .uid_search(&query)
            .map_err(|e| classify(&format!("UID SEARCH {query}"), e))?;
        // `n:*` always includes the highest UID, even one below n.
        let mut uids: Vec<u32> = found.into_iter().filter(|&u| u > after).collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// Whole messages, without marking them seen, in one command per
    /// [`FETCH_BATCH`] UIDs. UIDs that vanished meanwhile are left out.
    pub fn fetch(&mut self, uids: &[u32]) -> Result<Vec<Fetched>, ImapError> {
        let mut out = Vec::with_capacity(uids.len());
        for batch in uids.chunks(FETCH_BATCH) {
            self.tag += 1;
            let tag = format!("c{}", self.tag);
            let command = format!("{tag} UID FETCH {} (UID BODY.PEEK[])\r\n", uid_set(batch));
            let lost = |e: std::io::Error| ImapError::Connection(e.to_string());
            self.raw.write_all(command.as_bytes()).map_err(lost)?;
            self.raw.flush().map_err(lost)?;
            let mut reader = std::io::BufReader::with_capacity(64 * 1024, self.raw.clone());
            let mut got = fetch::read_answer(&mut reader, &tag)?;
            got.sort_by_key(|f| f.uid);
            out.extend(got);
        }
        Ok(out)
    }

    /// Move messages to another folder, creating it if missing.
    pub fn move_to(&mut self, uids: &[u32], folder: &str) -> Result<(), ImapError> {
        if uids.is_empty() {
            return Ok(());
        }
        self.ensure_folder(folder)?;
        for batch in uids.chunks(500) {
            self.inner
                .uid_mv(uid_set(batch), folder)
                .map_err(|e| classify(&format!("UID MOVE to {folder}"), e))?;
        }
        Ok(())
    }

    /// Mark messages as seen.
    pub fn mark_seen(&mut self, uids: &[u32]) -> Result<(), ImapError> {
        for batch in uids.chunks(500) {
            self.inner
                .uid_store(uid_set(batch), "+FLAGS.SILENT (\\Seen)")
                .map_err(|e| classify("UID STORE \\Seen", e))?;
        }
        Ok(())
    }

    /// Create a folder unless it exists.
    pub fn ensure_folder(&mut self, folder: &str) -> Result<(), ImapError> {
        let exists = self
            .inner
            .list(None, Some(folder))
            .map_err(|e| classify("LIST", e))?
            .iter()
            .next()
            .is_some();
        if !exists {
            self.inner
                .create(folder)
                .map_err(|e| classify(&format!("CREATE {folder}"), e))?;
        }
        Ok(())
    }

    /// Store a message in a folder (tests and benchmarks fill mailboxes so).
    pub fn append(&mut self, folder: &str, raw: &[u8]) -> Result<(), ImapError> {
        self.inner
            .append(folder, raw)
            .finish()
            .map(|_| ())
            .map_err(|e| classify(&format!("APPEND to {folder}"), e))
    }

    /// Whether the server can tell of new mail as it arrives (IDLE).
    pub fn can_idle(&mut self) -> Result<bool, ImapError> {
        Ok(self
            .inner
            .capabilities()
            .map_err(|e| classify("CAPABILITY", e))?
            .has_str("IDLE"))
    }

    /// Wait up to `limit` for new mail in the selected folder (IDLE);
    /// whether some arrived. Only for a server that [`Session::can_idle`].
    pub fn wait_for_mail(&mut self, limit: Duration) -> Result<bool, ImapError> {
        let outcome = self
            .inner
            .idle()
            .timeout(limit)
            .keepalive(false)
            .wait_while(|r| !matches!(r, imap::types::UnsolicitedResponse::Exists(_)))
            .map_err(|e| classify("IDLE", e))?;
        Ok(outcome == imap::extensions::idle::WaitOutcome::MailboxChanged)
    }

    pub fn logout(mut self) {
        let _ = self.inner.logout();
    }
}
