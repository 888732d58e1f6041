//! What a bot file says of a mailbox trigger: its keys, their reference,
//! and the poll bot's step they become.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::MailboxPollStep;
use crate::config::{Positive, Problem, TableReader, at_least_a_second, one_of, secret_reference};
use crate::mail::AttachmentFilter;
use crate::mail::imap::Tls;
use crate::mail::smtp::{read_port, read_tls};
use crate::step::{Step, StepConfig};

/// What happens to a message once its documents are queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Moved to `move_to`.
    Move,
    /// Flagged `\Seen` and left in place.
    Flag,
    /// Left as it is; the checkpoint alone remembers it.
    Leave,
}

/// A mailbox trigger as written in `bot.toml`.
#[derive(Debug, Clone)]
pub struct MailboxConfig {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub user: String,
    /// `${secret:NAME}`, resolved for each poll.
    pub password: String,
    pub folder: String,
    pub every: Duration,
    pub after: After,
    pub move_to: String,
    pub failed_to: String,
    pub filter: AttachmentFilter,
    /// Certificates to trust besides the system's, relative to the bot's
    /// folder.
    pub ca_file: Option<PathBuf>,
    /// Listen for new mail (IMAP IDLE) for `every`, instead of looking
    /// once every `every`.
    pub idle: bool,
    /// Limit on connecting and on each server answer.
    pub timeout: Duration,
}

/// The keys of a mailbox trigger; `None` when one is wrong (reported).
pub fn read_mailbox(t: &mut TableReader) -> Option<MailboxConfig> {
    let host = t.required_with("host", |s: String| Ok::<_, Problem>(s));
    let tls = read_tls(t, Tls::Implicit);
    let port = read_port(t);
    let user = t.required_with("user", |s: String| Ok::<_, Problem>(s));
    let password = t.required_with("password", secret_reference);
    let folder = t
        .optional::<String>("folder")
        .unwrap_or_else(|| "INBOX".into());
    let every = t.optional_or("every", Duration::from_secs(60), at_least_a_second);
    let after = t.optional_or("after", After::Move, |s: String| {
        one_of(
            &s,
            &[
                ("move", After::Move),
                ("flag", After::Flag),
                ("leave", After::Leave),
            ],
        )
    });
    let move_to = t
        .optional::<String>("move_to")
        .unwrap_or_else(|| "Processed".into());
    let failed_to = t
        .optional::<String>("failed_to")
        .unwrap_or_else(|| "Failed".into());
    let mut filter = AttachmentFilter::default();
    if let Some(types) = t.optional::<Vec<String>>("types") {
        filter.types = types;
    }
    if let Some(mb) = t.optional::<Positive>("max_mb") {
        filter.max_size = u64::from(mb.0) * 1024 * 1024;
    }
    filter.body = t.optional::<bool>("body").unwrap_or(false);
    // Documents go to the deployment's document store; the folder older
    // bot files name is accepted and not used.
    let _ = t.optional::<String>("store");
    let timeout = t.optional_or("timeout", Duration::from_secs(30), Ok);
    let ca_file = t.optional::<String>("ca_file").map(PathBuf::from);
    let idle = t.optional::<bool>("idle").unwrap_or(false);
    let tls = tls?;
    Some(MailboxConfig {
        host: host?,
        port: port.unwrap_or(match tls {
            Tls::Implicit => 993,
            Tls::StartTls | Tls::Plain => 143,
        }),
        tls,
        user: user?,
        password: password?,
        folder,
        every: every?,
        after: after?,
        move_to,
        failed_to,
        filter,
        ca_file,
        idle,
        timeout: timeout?,
    })
}

/// The bot a poll queues its documents' jobs for, and how they retry.
#[derive(Debug, Clone, PartialEq)]
pub struct PollTarget {
    pub bot: String,
    /// The bot's folder, where a relative `ca_file` starts.
    pub dir: PathBuf,
    pub max_attempts: u32,
    pub max_lost: u32,
    /// Which documents count as the same.
    pub dedupe: crate::jobs::Dedupe,
}

/// The one step of a poll bot: a mailbox trigger of its target bot.
#[derive(Debug, Clone)]
pub struct PollConfig {
    pub mailbox: MailboxConfig,
    pub target: PollTarget,
    /// The trigger's id, part of every document job's key.
    pub trigger: String,
    /// Input of every document job, besides the document.
    pub input: Value,
}

impl PollConfig {
    /// The running poll; unlike a step written in a bot file, it needs
    /// nothing that could be missing.
    pub fn step(&self) -> MailboxPollStep {
        MailboxPollStep::new(
            self.mailbox.clone(),
            &self.target,
            &self.trigger,
            self.input.clone(),
        )
    }
}

impl StepConfig for PollConfig {
    fn build(&self, _bot_dir: &Path) -> Result<Arc<dyn Step>, String> {
        Ok(Arc::new(self.step()))
    }
}

/// The reference of a mailbox trigger's keys.
pub const REFERENCE: &str = r#"A job for every document attached to a message in an IMAP mailbox.

- `host`, `user`, `password`: required. The password is always a
  `${secret:NAME}` reference.
- `tls`: `"implicit"` (the default), `"starttls"`, or `"plain"`, which
  sends the password unencrypted and needs `allow_plain = true` besides: for
  a server on the same machine only.
- `port`: default 993 with `"implicit"`, 143 with `"starttls"` or `"plain"`.
- `folder`: the folder read, default `"INBOX"`.
- `every`: how often to look, at least `"1s"`, default `"1m"`; with
  `idle = true`, how long one poll listens.
- `idle`: default false. Listen for new mail (IMAP IDLE) and take it within
  seconds; each poll listens for `every`, then the next takes over. A
  server without IDLE is polled every `every`.
- `after`: what happens to a message once its documents are queued:
  `"move"` (the default) to `move_to` (default `"Processed"`), `"flag"` as
  seen, or `"leave"`.
- `failed_to`: where a message that cannot be parsed goes, default
  `"Failed"`.
- `types`: media types taken (`type/*` allowed), default PDF, PNG, JPEG and
  TIFF.
- `max_mb`: largest document taken, in MB, default 25.
- `body`: whether the message's text is a document too, default false.
- `store`: no longer used, accepted so older bot files load: documents
  are kept in clerk's document store (`clerk serve --documents`).
- `timeout`: limit on connecting and on each server answer, default
  `"30s"`.
- `ca_file`: optional, a PEM file of certificates to trust besides the
  system's, relative to the bot's folder.

A mailbox trigger becomes a poll bot of its own,
`<bot>:mailbox:<user>@<host>/<folder>`, whose jobs poll the mailbox one at
a time across all workers. Each document becomes one job, keyed
`mail:<trigger>:<Message-ID>:<sha256>` with the input `{"name", "sha256",
"size", "media_type", "mail": {"from", "subject", "date", "message_id",
"mailbox", "uid"}}` plus the trigger's `input`; the document is kept in
the document store, and the job's steps get a copy as `input.file`.
Messages are
moved only after their jobs are queued, so a re-poll, a crash or a changed
UIDVALIDITY makes no second job.
"#;
