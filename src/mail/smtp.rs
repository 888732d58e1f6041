//! SMTP servers: how a bot file names one (the `email` step and `[notify]`
//! share these keys) and sending a message through it with lettre.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls as SmtpTls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::imap::Tls;
use crate::config::secrets::Secrets;
use crate::config::{Positive, Problem, TableReader, one_of, secret_reference};

/// An SMTP server and how to reach it: the `email` step's, and the one a
/// bot's notifications go through.
#[derive(Debug, Clone, PartialEq)]
pub struct SmtpServer {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub user: Option<String>,
    /// `${secret:NAME}`.
    pub password: Option<String>,
    /// A PEM file of certificates to trust besides the system's (a company
    /// CA, or a test server's own), relative to the bot's folder.
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// The server refused this message (5xx), or the settings are wrong:
    /// sending it again will not help.
    pub permanent: bool,
    pub message: String,
}

impl SendError {
    fn permanent(message: String) -> SendError {
        SendError {
            permanent: true,
            message,
        }
    }
}

impl SmtpServer {
    /// Send `message`, off the async threads; returns the server's reply
    /// code. `bot_dir` is where a relative `ca_file` starts.
    pub async fn send(
        &self,
        message: Message,
        secrets: &Secrets,
        bot_dir: &Path,
    ) -> Result<String, SendError> {
        let password = match &self.password {
            Some(p) => Some(
                secrets
                    .resolve(p)
                    .map_err(|e| SendError::permanent(format!("the SMTP password: {e}")))?
                    .text,
            ),
            None => None,
        };
        let ca_file = self.ca_file.as_ref().map(|f| bot_dir.join(f));
        self.send_async(message, password, ca_file).await
    }

    /// Sending is a future, so a stopped job drops it and with it the
    /// connection, instead of a blocked thread waiting on a silent server.
    async fn send_async(
        &self,
        message: Message,
        password: Option<String>,
        ca_file: Option<PathBuf>,
    ) -> Result<String, SendError> {
        let at = format!("{}:{}", self.host, self.port);
        let settings =
            |e: &dyn std::fmt::Display| SendError::permanent(format!("SMTP server {at}: {e}"));
        let tls = || -> Result<TlsParameters, SendError> {
            let mut params = TlsParameters::builder(self.host.clone());
            if let Some(file) = &ca_file {
                let pem = std::fs::read(file)
                    .map_err(|e| settings(&format!("cannot read {}: {e}", file.display())))?;
                let certificate = Certificate::from_pem(&pem)
                    .map_err(|e| settings(&format!("{}: {e}", file.display())))?;
                params = params.add_root_certificate(certificate);
            }
            params.build().map_err(|e| settings(&e))
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .timeout(Some(self.timeout));
        builder = match self.tls {
            Tls::Plain => builder,
            Tls::StartTls => builder.tls(SmtpTls::Required(tls()?)),
            Tls::Implicit => builder.tls(SmtpTls::Wrapper(tls()?)),
        };
        if let (Some(user), Some(password)) = (self.user.clone(), password) {
            builder = builder.credentials(Credentials::new(user, password));
        }
        let reply = builder.build().send(message).await.map_err(|e| SendError {
            // A refusal of this message (5xx) will not change on a retry; a
            // server down or busy may.
            permanent: e.is_permanent(),
            message: format!("sending through {at}: {e}"),
        })?;
        Ok(reply.code().to_string())
    }
}

/// The reference of the keys that name an SMTP server, shared by the
/// `email` step and `[notify]`.
pub const SMTP_REFERENCE: &str = r#"- `host`: required, the SMTP server.
- `tls`: `"starttls"` (the default), `"implicit"` (TLS from the first
  byte), or `"plain"`, which sends everything unencrypted and needs
  `allow_plain = true` besides: for a relay on the same machine only.
- `port`: default 587 with `"starttls"`, 465 with `"implicit"`, 25 with
  `"plain"`.
- `user` and `password`: optional, to log in; the password is always a
  `${secret:NAME}` reference.
- `ca_file`: optional, a PEM file of certificates to trust besides the
  system's (a company CA), relative to the bot's folder.
"#;

/// `tls` and `allow_plain` of a mail server: `None` (reported) when plain
/// text is asked for without the opt-in.
pub fn read_tls(t: &mut TableReader, default: Tls) -> Option<Tls> {
    let tls = t.optional_or("tls", default, |s: String| {
        one_of(
            &s,
            &[
                ("implicit", Tls::Implicit),
                ("starttls", Tls::StartTls),
                ("plain", Tls::Plain),
            ],
        )
    })?;
    let allow_plain = t.optional::<bool>("allow_plain").unwrap_or(false);
    if tls == Tls::Plain && !allow_plain {
        t.reject(
            "tls",
            "`plain` sends the password unencrypted; set `allow_plain = true` only for a server on this machine",
        );
        return None;
    }
    Some(tls)
}

/// `port` of a mail server; its default depends on `tls`.
pub fn read_port(t: &mut TableReader) -> Option<u16> {
    t.optional_with("port", |p: Positive| {
        u16::try_from(p.0)
            .map_err(|_| Problem::new(format!("must be a port number, found {}", p.0)))
    })
}

/// The keys naming an SMTP server, in an `email` step or `[notify]`.
pub fn read_smtp(t: &mut TableReader) -> Option<SmtpServer> {
    let host = t.required_with("host", |h: String| Ok::<_, Problem>(h));
    let tls = read_tls(t, Tls::StartTls);
    let port = read_port(t);
    let user = t.optional::<String>("user");
    let password = t.optional_with("password", secret_reference);
    let ca_file = t.optional::<String>("ca_file").map(PathBuf::from);
    let tls = tls?;
    Some(SmtpServer {
        host: host?,
        port: port.unwrap_or(match tls {
            Tls::Implicit => 465,
            Tls::StartTls => 587,
            Tls::Plain => 25,
        }),
        tls,
        user,
        password,
        ca_file,
        // In a step, `timeout` is the step's own limit.
        timeout: Duration::from_secs(30),
    })
}
