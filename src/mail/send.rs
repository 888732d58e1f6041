//! The `email` step: a message built from the job (templated recipients,
//! subject, body and attachments) sent through an SMTP server with lettre.
//!
//! Sending has effects outside clerk, and a step can run again after a lost
//! worker. Every message of a job's step carries the same Message-ID,
//! `<clerk-job-<id>-<step>@<sender's domain>>`, so a second copy is
//! recognisably the same message (mail clients and archives fold it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls as SmtpTls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use serde_json::json;

use super::imap::Tls;
use crate::step::template::render;
use crate::step::{Step, StepContext, StepError, StepOutcome};

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
        secrets: &crate::bot::secrets::Secrets,
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
        let server = self.clone();
        let ca_file = self.ca_file.as_ref().map(|f| bot_dir.join(f));
        tokio::task::spawn_blocking(move || server.send_blocking(&message, password, ca_file))
            .await
            .map_err(|e| SendError {
                permanent: false,
                message: format!("the sending task failed: {e}"),
            })?
    }

    fn send_blocking(
        &self,
        message: &Message,
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
        let mut builder = SmtpTransport::builder_dangerous(&self.host)
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
        let reply = builder.build().send(message).map_err(|e| SendError {
            // A refusal of this message (5xx) will not change on a retry; a
            // server down or busy may.
            permanent: e.is_permanent(),
            message: format!("sending through {at}: {e}"),
        })?;
        Ok(reply.code().to_string())
    }
}

/// An `email` step as written in `bot.toml`; every text may hold `{{…}}`
/// placeholders (see [`crate::step::template`]).
#[derive(Debug, Clone, PartialEq)]
pub struct EmailConfig {
    pub server: SmtpServer,
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub body: String,
    /// Paths of files to attach, relative to the bot's folder.
    pub attach: Vec<String>,
}

#[derive(Debug)]
pub struct EmailStep {
    config: EmailConfig,
    bot_dir: PathBuf,
}

impl EmailStep {
    pub fn new(config: EmailConfig, bot_dir: &std::path::Path) -> EmailStep {
        EmailStep {
            config,
            bot_dir: bot_dir.to_path_buf(),
        }
    }
}

fn mailbox(text: &str, what: &str) -> Result<Mailbox, StepError> {
    text.trim()
        .parse::<Mailbox>()
        .map_err(|e| StepError::business(format!("{what} `{text}` is not an address: {e}")))
}

/// Every address of a templated list; one entry may hold several,
/// separated by commas.
fn addresses(
    list: &[String],
    doc: &serde_json::Value,
    what: &str,
) -> Result<Vec<Mailbox>, StepError> {
    let mut out = Vec::new();
    for entry in list {
        let text = render(entry, doc).map_err(StepError::business)?;
        for one in text.split(',').filter(|s| !s.trim().is_empty()) {
            out.push(mailbox(one, what)?);
        }
    }
    Ok(out)
}

#[async_trait]
impl Step for EmailStep {
    fn kind(&self) -> &'static str {
        "email"
    }

    async fn run(&self, ctx: &StepContext) -> Result<StepOutcome, StepError> {
        let c = &self.config;
        let doc = ctx.document();
        let from = mailbox(&render(&c.from, &doc).map_err(StepError::business)?, "from")?;
        let to = addresses(&c.to, &doc, "to")?;
        if to.is_empty() {
            return Err(StepError::business(
                "the message has no recipient: `to` came out empty",
            ));
        }
        let cc = addresses(&c.cc, &doc, "cc")?;
        let subject = render(&c.subject, &doc).map_err(StepError::business)?;
        let body = render(&c.body, &doc).map_err(StepError::business)?;
        let domain = from.email.domain().to_string();
        let message_id = format!("<clerk-job-{}-{}@{domain}>", ctx.job_id, ctx.step_name);
        let mut builder = Message::builder()
            .from(from)
            .subject(subject.clone())
            .message_id(Some(message_id.clone()));
        for m in &to {
            builder = builder.to(m.clone());
        }
        for m in &cc {
            builder = builder.cc(m.clone());
        }
        let mut attached = Vec::new();
        let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(body));
        for entry in &c.attach {
            let path = render(entry, &doc).map_err(StepError::business)?;
            let path = self.bot_dir.join(path);
            let bytes = tokio::fs::read(&path).await.map_err(|e| {
                StepError::business(format!("cannot attach {}: {e}", path.display()))
            })?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "attachment".into());
            let media = super::mime::sniff(&bytes).unwrap_or("application/octet-stream");
            let content_type = ContentType::parse(media)
                .map_err(|e| StepError::business(format!("attachment type {media}: {e}")))?;
            parts = parts.singlepart(Attachment::new(name.clone()).body(bytes, content_type));
            attached.push(name);
        }
        let message = builder
            .multipart(parts)
            .map_err(|e| StepError::business(format!("the message cannot be built: {e}")))?;

        let reply = c
            .server
            .send(message, &ctx.secrets, &self.bot_dir)
            .await
            .map_err(|e| {
                if e.permanent {
                    StepError::business(e.message)
                } else {
                    StepError::transient(e.message)
                }
            })?;
        tracing::info!(job = ctx.job_id, to = %to.iter().map(|m| m.email.to_string()).collect::<Vec<_>>().join(", "), %subject, "email sent");
        Ok(StepOutcome::Done(json!({
            "message_id": message_id,
            "to": to.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
            "cc": cc.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
            "subject": subject,
            "attachments": attached,
            "server_reply": reply,
        })))
    }
}
