//! Notifications: a bot's owners are mailed when its jobs fail or go dead,
//! its reviewers when jobs wait for review.
//!
//! The database writes a notice in the same transaction that changes a
//! job's state (a trigger on the audit trail), so a change cannot be lost
//! between the job and the mail. `clerk serve` runs a [`Notifier`] that
//! claims pending notices for a while, mails them in one message per bot
//! and kind, and marks them sent. Several processes can run it at once:
//! a claimed notice is skipped by the others. A send that fails leaves the
//! notices pending, claimed again after a growing pause.
//!
//! Failures are mailed as soon as the notifier sees them, together when
//! several arrive at once. Reviews are batched: at most one mail per bot
//! per `review_every`, listing every job that started waiting since the
//! last one.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use lettre::Message;
use lettre::message::Mailbox;
use tokio_util::sync::CancellationToken;

use super::smtp::{SMTP_REFERENCE, SmtpServer, read_smtp};
use crate::config::secrets::Secrets;
use crate::config::{Problem, TableReader, at_least_a_second};
use crate::jobs::{Notice, NoticeKind, NoticeStore, now_ms};

/// Reviewers get at most one mail per bot this often, unless the bot says.
pub const DEFAULT_REVIEW_EVERY: Duration = Duration::from_secs(600);

/// How often pending notices are looked for.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);

/// How long a claimed notice is left to its claimer before another process
/// may send it: longer than a send can take.
const HOLD: Duration = Duration::from_secs(300);

/// Most jobs listed in one message; more go in the next.
const BATCH: u32 = 100;

/// `[notify]` of a bot: the server and sender of its notifications.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyConfig {
    pub server: SmtpServer,
    pub from: String,
    /// Least time between two review mails of the bot.
    pub review_every: Duration,
}

/// The reference of `[notify]`.
pub const REFERENCE: &str = r#"How owners and reviewers are mailed. Without it nobody is.

The server, as in the `email` step:

{smtp}
The sender, and how often reviewers hear:

- `from`: required, the sender's address.
- `review_every`: duration of at least `"1s"`, default `"10m"`. Reviewers
  get at most one mail per this long, listing every job that started
  waiting since the last. Failures are mailed at once, several together
  when they come together.

`clerk serve` mails a bot's `owners` when its jobs fail or go dead, and its
`reviewers` when jobs wait for review. The database records each such
change in the same transaction as the change itself, so none is missed,
and every one is mailed once: several at once make one message, each job
with its document, the reason and the command to act on it (`clerk runs
retry 12`, `clerk runs approve 14`). While the SMTP server is down,
notices wait and are sent when it is back (after 30 s, then doubling
pauses up to an hour). Several `clerk serve` processes on one PostgreSQL
send each notice once between them. A mailbox trigger's poll bot mails the
owners too, when the mailbox cannot be read.
"#;

/// The reference of `[notify]`, with the server keys filled in.
pub fn reference() -> String {
    REFERENCE.replace("{smtp}", SMTP_REFERENCE)
}

/// Read `[notify]`: through which server, and from whom, owners and
/// reviewers are mailed. `None` when a key is wrong (reported).
pub fn read_config(mut r: TableReader) -> Option<NotifyConfig> {
    let server = read_smtp(&mut r);
    let from = r.required_with("from", |f: String| {
        f.trim()
            .parse::<lettre::message::Mailbox>()
            .map(|_| f.clone())
            .map_err(|e| Problem::new(format!("`{f}` is not a mail address: {e}")))
    });
    let review_every = r.optional_or("review_every", DEFAULT_REVIEW_EVERY, at_least_a_second);
    r.finish();
    Some(NotifyConfig {
        server: server?,
        from: from?,
        review_every: review_every?,
    })
}

/// Who hears about one bot's jobs, and through which server.
#[derive(Debug, Clone)]
pub struct Contacts {
    pub bot: String,
    /// The bot's file, named at the foot of each message.
    pub file: std::path::PathBuf,
    /// Where a relative `ca_file` starts.
    pub dir: std::path::PathBuf,
    /// Mailed when jobs fail or go dead.
    pub owners: Vec<String>,
    /// Mailed, in batches, when jobs wait for review.
    pub reviewers: Vec<String>,
    /// `None`: nobody is mailed.
    pub notify: Option<NotifyConfig>,
    /// The secrets the bot declares: the only ones its server's password
    /// may name.
    pub secrets: Vec<String>,
}

/// The bots a notifier mails about; the loaded bots implement it.
pub trait Directory: Send + Sync {
    fn contacts(&self) -> Vec<Contacts>;
}

/// What one look at the notices did, per bot and kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Messages sent.
    pub sent: usize,
    /// Notices the messages covered.
    pub notices: usize,
    /// Notices of bots with nobody to mail, closed without a message.
    pub unaddressed: usize,
    /// Messages that could not be sent and will be tried again.
    pub failed: usize,
}

pub struct Notifier {
    db: Arc<dyn NoticeStore>,
    bots: Arc<dyn Directory>,
    secrets: Arc<Secrets>,
    worker: String,
    /// Pause after a first failed send; it doubles with each further one.
    retry_pause: Duration,
}

/// Owners hear of failures, reviewers of reviews, both of overdue ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Audience {
    Owners,
    Reviewers,
    Both,
}

impl Audience {
    const ALL: [Audience; 3] = [Audience::Owners, Audience::Reviewers, Audience::Both];

    fn kinds(self) -> &'static [NoticeKind] {
        match self {
            Audience::Owners => &[NoticeKind::Failed, NoticeKind::Dead],
            Audience::Reviewers => &[NoticeKind::WaitingReview],
            Audience::Both => &[NoticeKind::ReviewOverdue],
        }
    }

    fn recipients(self, bot: &Contacts) -> Vec<String> {
        match self {
            Audience::Owners => bot.owners.clone(),
            Audience::Reviewers => bot.reviewers.clone(),
            Audience::Both => {
                let mut all = bot.owners.clone();
                all.extend(
                    bot.reviewers
                        .iter()
                        .filter(|r| !bot.owners.contains(r))
                        .cloned(),
                );
                all
            }
        }
    }
}

impl Notifier {
    pub fn new(
        db: Arc<dyn NoticeStore>,
        bots: Arc<dyn Directory>,
        secrets: Arc<Secrets>,
        worker: &str,
    ) -> Self {
        Notifier {
            db,
            bots,
            secrets,
            worker: worker.to_string(),
            retry_pause: Duration::from_secs(30),
        }
    }

    /// Pause after a first failed send (default 30 s); it doubles with each
    /// further failure, up to an hour.
    pub fn with_retry_pause(mut self, pause: Duration) -> Self {
        self.retry_pause = pause;
        self
    }

    /// Look every [`CHECK_EVERY`] until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.check().await {
                tracing::warn!(error = %e, "cannot read pending notifications");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(CHECK_EVERY) => {}
            }
        }
    }

    /// Send what is due now, first noting the reviews that have become
    /// overdue.
    pub async fn check(&self) -> crate::jobs::Result<Report> {
        let overdue = self.db.flag_overdue_reviews(now_ms()).await?;
        if !overdue.is_empty() {
            tracing::info!(jobs = ?overdue, "reviews overdue");
        }
        let mut report = Report::default();
        for bot in self.bots.contacts() {
            for audience in Audience::ALL {
                self.check_bot(&bot, audience, &mut report).await?;
            }
        }
        Ok(report)
    }

    async fn check_bot(
        &self,
        bot: &Contacts,
        audience: Audience,
        report: &mut Report,
    ) -> crate::jobs::Result<()> {
        let recipients = audience.recipients(bot);
        let recipients = recipients.as_slice();
        let Some(config) = bot.notify.as_ref().filter(|_| !recipients.is_empty()) else {
            // Nobody to tell: close the notices so they do not pile up.
            loop {
                let notices = self
                    .db
                    .claim_notices(&bot.bot, audience.kinds(), &self.worker, HOLD, 1000)
                    .await?;
                if notices.is_empty() {
                    return Ok(());
                }
                let ids: Vec<i64> = notices.iter().map(|n| n.id).collect();
                self.db.finish_notices(&ids, "no recipients").await?;
                report.unaddressed += ids.len();
            }
        };
        if audience == Audience::Reviewers
            && let Some(last) = self
                .db
                .last_notice_sent(&bot.bot, NoticeKind::WaitingReview)
                .await?
            && now_ms() - last < config.review_every.as_millis() as i64
        {
            return Ok(());
        }
        let notices = self
            .db
            .claim_notices(&bot.bot, audience.kinds(), &self.worker, HOLD, BATCH)
            .await?;
        if notices.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = notices.iter().map(|n| n.id).collect();
        let outcome = match self
            .message(bot, config, recipients, audience, &notices)
            .await
        {
            Ok(message) => config
                .server
                .send(message, &self.secrets.only(&bot.secrets), &bot.dir)
                .await
                .map_err(|e| e.message),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(_) => {
                self.db.finish_notices(&ids, "sent").await?;
                tracing::info!(bot = %bot.bot, jobs = ids.len(), to = %recipients.join(", "), "notification sent");
                report.sent += 1;
                report.notices += ids.len();
            }
            Err(error) => {
                let tries = notices.iter().map(|n| n.tries).max().unwrap_or(0);
                let pause = retry_pause(self.retry_pause, tries);
                tracing::warn!(bot = %bot.bot, jobs = ids.len(), %error, retry_in = %humantime::format_duration(pause), "notification not sent");
                self.db
                    .postpone_notices(&ids, &error, now_ms() + pause.as_millis() as i64)
                    .await?;
                report.failed += 1;
            }
        }
        Ok(())
    }

    async fn message(
        &self,
        bot: &Contacts,
        config: &NotifyConfig,
        recipients: &[String],
        audience: Audience,
        notices: &[Notice],
    ) -> Result<Message, String> {
        let from: Mailbox = config
            .from
            .trim()
            .parse()
            .map_err(|e| format!("`from` {}: {e}", config.from))?;
        let domain = from.email.domain().to_string();
        let first = notices.first().map_or(0, |n| n.id);
        let last = notices.last().map_or(0, |n| n.id);
        let subject = subject(&bot.bot, audience, notices);
        let ids: Vec<i64> = notices.iter().map(|n| n.job_id).collect();
        // Without the inputs a paragraph still names the job and the reason.
        let inputs = self.db.job_inputs(&ids).await.unwrap_or_default();
        let mut body = String::new();
        for notice in notices {
            let input = inputs
                .get(&notice.job_id)
                .unwrap_or(&serde_json::Value::Null);
            body.push_str(&describe(notice, input));
        }
        let _ = write!(
            body,
            "\n-- \nclerk, bot `{}` ({})\n",
            bot.bot,
            bot.file.display()
        );
        let mut builder = Message::builder()
            .from(from)
            .subject(subject)
            // The same notices always make the same Message-ID, so a copy
            // sent again after a crash is recognisably the same message.
            .message_id(Some(format!("<clerk-notice-{first}-{last}@{domain}>")));
        for one in recipients {
            let to: Mailbox = one.trim().parse().map_err(|e| format!("`{one}`: {e}"))?;
            builder = builder.to(to);
        }
        builder
            .body(body)
            .map_err(|e| format!("the message cannot be built: {e}"))
    }
}

fn subject(bot: &str, audience: Audience, notices: &[Notice]) -> String {
    match (audience, notices) {
        (Audience::Owners, [one]) => {
            format!(
                "[clerk] {bot}: job {} {}",
                one.job_id,
                state_words(one.kind)
            )
        }
        (Audience::Owners, many) => {
            let dead = many.iter().filter(|n| n.kind == NoticeKind::Dead).count();
            let failed = many.len() - dead;
            let mut parts = Vec::new();
            if failed > 0 {
                parts.push(format!("{failed} failed"));
            }
            if dead > 0 {
                parts.push(format!("{dead} dead"));
            }
            format!(
                "[clerk] {bot}: {} jobs need attention ({})",
                many.len(),
                parts.join(", ")
            )
        }
        (Audience::Reviewers, [one]) => {
            format!("[clerk] {bot}: job {} waits for review", one.job_id)
        }
        (Audience::Reviewers, many) => {
            format!("[clerk] {bot}: {} jobs wait for review", many.len())
        }
        (Audience::Both, [one]) => {
            format!("[clerk] {bot}: the review of job {} is overdue", one.job_id)
        }
        (Audience::Both, many) => {
            format!("[clerk] {bot}: {} reviews are overdue", many.len())
        }
    }
}

fn state_words(kind: NoticeKind) -> &'static str {
    match kind {
        NoticeKind::Dead => "is dead (out of retries)",
        NoticeKind::Failed => "failed",
        NoticeKind::WaitingReview => "waits for review",
        NoticeKind::ReviewOverdue => "is overdue for review",
    }
}

/// One job's paragraph: what, why, and the command that acts on it.
fn describe(notice: &Notice, input: &serde_json::Value) -> String {
    let mut out = format!(
        "Job {} {} at {}\n",
        notice.job_id,
        state_words(notice.kind),
        time_text(notice.at)
    );
    let document = input
        .get("name")
        .or_else(|| input.get("file"))
        .and_then(|v| v.as_str());
    if let Some(document) = document {
        let _ = writeln!(out, "  document: {document}");
    }
    if let Some(mail) = input.get("mail") {
        let field = |k: &str| mail.get(k).and_then(|v| v.as_str()).unwrap_or("");
        let _ = writeln!(
            out,
            "  from mail: {} \"{}\"",
            field("from"),
            field("subject")
        );
    }
    let _ = writeln!(out, "  why: {}", notice.reason);
    let _ = match notice.kind {
        NoticeKind::WaitingReview | NoticeKind::ReviewOverdue => writeln!(
            out,
            "  look: clerk runs show {0}    go on: clerk runs approve {0}",
            notice.job_id
        ),
        _ => writeln!(
            out,
            "  look: clerk runs show {0}    again: clerk runs retry {0}",
            notice.job_id
        ),
    };
    out.push('\n');
    out
}

fn time_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// Pause before sending again: `first`, doubling per failed try, at most an
/// hour.
fn retry_pause(first: Duration, tries: i64) -> Duration {
    let exponent = u32::try_from(tries.clamp(0, 16)).unwrap_or(16);
    first
        .saturating_mul(2u32.pow(exponent))
        .min(Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(id: i64, kind: NoticeKind) -> Notice {
        Notice {
            id,
            job_id: id + 100,
            bot: "b".into(),
            kind,
            reason: "step `book`: refused".into(),
            at: 1_795_324_614_000,
            tries: 0,
        }
    }

    #[test]
    fn subjects_count_what_happened() {
        assert_eq!(
            subject("b", Audience::Owners, &[notice(1, NoticeKind::Dead)]),
            "[clerk] b: job 101 is dead (out of retries)"
        );
        assert_eq!(
            subject(
                "b",
                Audience::Owners,
                &[
                    notice(1, NoticeKind::Dead),
                    notice(2, NoticeKind::Failed),
                    notice(3, NoticeKind::Failed)
                ]
            ),
            "[clerk] b: 3 jobs need attention (2 failed, 1 dead)"
        );
        assert_eq!(
            subject(
                "b",
                Audience::Reviewers,
                &[
                    notice(1, NoticeKind::WaitingReview),
                    notice(2, NoticeKind::WaitingReview)
                ]
            ),
            "[clerk] b: 2 jobs wait for review"
        );
        assert_eq!(
            subject("b", Audience::Both, &[notice(1, NoticeKind::ReviewOverdue)]),
            "[clerk] b: the review of job 101 is overdue"
        );
    }

    #[test]
    fn paragraphs_name_the_document_and_the_command() {
        let text = describe(
            &notice(1, NoticeKind::WaitingReview),
            &serde_json::json!({"name": "acme.pdf", "mail": {"from": "a@x.example", "subject": "Invoice"}}),
        );
        assert!(text.contains("document: acme.pdf"), "{text}");
        assert!(text.contains("a@x.example \"Invoice\""), "{text}");
        assert!(text.contains("clerk runs approve 101"), "{text}");
        assert!(text.contains("2026-11-22 05:16:54 UTC"), "{text}");
    }

    #[test]
    fn sending_again_waits_longer_each_time_up_to_an_hour() {
        let first = Duration::from_secs(30);
        assert_eq!(retry_pause(first, 0), Duration::from_secs(30));
        assert_eq!(retry_pause(first, 1), Duration::from_secs(60));
        assert_eq!(retry_pause(first, 20), Duration::from_secs(3600));
    }
}
