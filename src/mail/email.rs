//! The `email` step kind: a message built from the job (templated
//! recipients, subject, body and attachments) sent through an SMTP server.
//!
//! Sending has effects outside clerk, and a step can run again after a lost
//! worker. Every message of a job's step carries the same Message-ID,
//! `<clerk-job-<id>-<step>@<sender's domain>>`, so a second copy is
//! recognisably the same message (mail clients and archives fold it).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use serde_json::json;

use super::smtp::{SMTP_REFERENCE, SmtpServer, read_smtp};
use crate::config::{Problem, TableReader};
use crate::step::template::render;
use crate::step::{Step, StepConfig, StepContext, StepError, StepKind, StepOutcome};

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

impl StepConfig for EmailConfig {
    fn build(&self, bot_dir: &Path) -> Result<Arc<dyn Step>, String> {
        Ok(Arc::new(EmailStep::new(self.clone(), bot_dir)))
    }
}

/// The `email` kind, as the registry lists it.
pub struct EmailKind;

const REFERENCE: &str = r#"Sends a message built from the job through an SMTP server.

```toml
[[steps]]
name = "reply"
kind = "email"
host = "smtp.example.com"
user = "clerk@example.com"
password = "${secret:SMTP_PASSWORD}"
from = "clerk <clerk@example.com>"
to = ["{{input.mail.from}}"]
cc = ["finance-ops@example.com"]
subject = "Invoice {{invoice_number}} received"
body = "Invoice {{invoice_number}} is booked as {{booking}}."
attach = ["{{input.file}}"]
```

The server:

{smtp}
The message:

- `from`: required, the sender's address (`a@b.example` or
  `Name <a@b.example>`).
- `to`: required, a non-empty array of addresses; one entry may hold
  several, separated by commas.
- `cc`: optional array of addresses.
- `subject`, `body`: required texts.
- `attach`: optional array of paths of files to attach, relative to the
  bot's folder; the media type is recognised from the file's bytes. A path
  with placeholders must lead into the bot's folder or be the job's
  document (`{{input.file}}`): a value from the job cannot attach
  `../../etc/passwd`.

Every text may hold `{{…}}` placeholders (see *Placeholders* below). A
placeholder that names nothing fails the job and sends nothing. A server
that cannot be reached or answers 4xx is a transient error (retried); a
5xx refusal, a bad address or a missing attachment fails the job. Every
message a step sends for a job has the same Message-ID,
`<clerk-job-<id>-<step>@<sender's domain>>`, so a copy sent again after a
lost worker is recognisably the same message.
"#;

impl StepKind for EmailKind {
    fn name(&self) -> &'static str {
        "email"
    }

    fn reference(&self) -> &'static str {
        static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        TEXT.get_or_init(|| REFERENCE.replace("{smtp}", SMTP_REFERENCE))
    }

    fn read(&self, s: &mut TableReader<'_, '_>) -> Option<Arc<dyn StepConfig>> {
        let server = read_smtp(s);
        let from = s.required_with("from", |f: String| Ok::<_, Problem>(f));
        let to = s.required_with("to", |to: Vec<String>| {
            if to.is_empty() {
                Err(Problem::new("must name at least one recipient".into()))
            } else {
                Ok(to)
            }
        });
        let cc = s.optional::<Vec<String>>("cc").unwrap_or_default();
        let subject = s.required_with("subject", |t: String| Ok::<_, Problem>(t));
        let body = s.required_with("body", |t: String| Ok::<_, Problem>(t));
        let attach = s.optional::<Vec<String>>("attach").unwrap_or_default();
        Some(Arc::new(EmailConfig {
            server: server?,
            from: from?,
            to: to?,
            cc,
            subject: subject?,
            body: body?,
            attach,
        }))
    }

    #[cfg(test)]
    fn contract(&self) -> crate::step::kind::contract::Cases {
        use crate::step::kind::contract::{Case, Cases};
        Cases {
            // A server that takes the connection and never greets.
            runs_until_stopped: Case::step(
                r#"kind = "email"
host = "127.0.0.1"
port = {silent_port}
tls = "plain"
allow_plain = true
from = "clerk@example.com"
to = ["ap@example.com"]
subject = "s"
body = "b""#,
            ),
            // The password goes to a server that is not there.
            reports_a_secret: Ok(Case::step(
                r#"kind = "email"
host = "127.0.0.1"
port = 9
tls = "plain"
allow_plain = true
user = "clerk"
password = "${secret:CONTRACT_SECRET}"
from = "clerk@example.com"
to = ["ap@example.com"]
subject = "s"
body = "b""#,
            )),
            business_error: Case::step(
                r#"kind = "email"
host = "127.0.0.1"
tls = "plain"
allow_plain = true
from = "clerk@example.com"
to = ["not an address"]
subject = "s"
body = "b""#,
            ),
        }
    }
}

#[derive(Debug)]
pub struct EmailStep {
    config: EmailConfig,
    bot_dir: PathBuf,
}

impl EmailStep {
    pub fn new(config: EmailConfig, bot_dir: &Path) -> EmailStep {
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
            let path = crate::step::paths::file_for_step(entry, &path, &self.bot_dir, &ctx.input)
                .map_err(|e| StepError::business(format!("cannot attach {e}")))?;
            let bytes = tokio::fs::read(&path).await.map_err(|e| {
                StepError::business(format!("cannot attach {}: {e}", path.display()))
            })?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "attachment".into());
            let media =
                crate::documents::image::media_type(&bytes).unwrap_or("application/octet-stream");
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
