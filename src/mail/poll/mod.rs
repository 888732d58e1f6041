//! Mailbox triggers: a poll of a mailbox is a job of its own, and it fans
//! out into one job per document it finds.
//!
//! Each mailbox trigger of a bot becomes a poll bot, `<bot>:<trigger>`, with
//! one `mailbox_poll` step, an interval trigger, and a concurrency of one:
//! however many clerk processes share the job database, one poll of a
//! mailbox runs at a time. A poll that cannot reach the server fails as a
//! transient error and is retried with the bot's backoff; its runs show in
//! `clerk runs list` like any other.
//!
//! One poll:
//!
//! 1. reads the checkpoint (UIDVALIDITY and last UID) and searches the
//!    UIDs above it;
//! 2. for each batch of [`imap::FETCH_BATCH`] messages, fetched in one
//!    command: saves each document under `<store>/<sha256 prefix>-<name>`
//!    and queues its job, keyed `mail:<trigger>:<message>:<document sha256>`
//!    where `<message>` is the Message-ID (the SHA-256 of the message
//!    without one);
//! 3. only then moves the batch's messages (or flags them), those that
//!    cannot be parsed to the failed folder;
//! 4. advances the checkpoint past the batch.
//!
//! The key does not contain the UID, so a crash between any two steps, a
//! re-poll, or a mailbox whose UIDVALIDITY changed (every message seen again
//! under new UIDs) finds the jobs already queued: each document is one job.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

mod trigger;

pub use trigger::{After, MailboxConfig, PollConfig, PollTarget, REFERENCE, read_mailbox};

use super::imap::{self, Account};
use super::mime::{AttachmentFilter, Mail, parse};
use crate::documents::store::{self, DocumentStore, StoredDocument};
use crate::jobs::NewJob;
use crate::step::{Step, StepContext, StepError, StepOutcome};

/// The step of a poll bot.
#[derive(Debug)]
pub struct MailboxPollStep {
    config: MailboxConfig,
    intake: Arc<Intake>,
    bot_dir: PathBuf,
}

/// What turns a fetched message into document jobs; shared with the
/// blocking threads that parse and save.
#[derive(Debug)]
struct Intake {
    /// The bot whose jobs the documents become, and how they retry.
    target: String,
    max_attempts: u32,
    max_lost: u32,
    dedupe: crate::jobs::Dedupe,
    trigger: String,
    /// Input of every document job, besides the document.
    input: Value,
    filter: AttachmentFilter,
    /// `user@host/folder`, as the jobs' input names it.
    mailbox: String,
}

/// One fetched message, made ready to queue.
struct Taken {
    uid: u32,
    /// The jobs of its documents, or why it cannot be parsed.
    jobs: Result<Vec<NewJob>, String>,
    /// Its documents, to be saved where the jobs say.
    documents: Vec<crate::mail::Document>,
    report: Value,
}

impl MailboxPollStep {
    pub fn new(
        config: MailboxConfig,
        target: &PollTarget,
        trigger: &str,
        input: Value,
    ) -> MailboxPollStep {
        let intake = Intake {
            target: target.bot.clone(),
            max_attempts: target.max_attempts,
            max_lost: target.max_lost,
            dedupe: target.dedupe,
            trigger: trigger.to_string(),
            input,
            filter: config.filter.clone(),
            mailbox: format!("{}@{}/{}", config.user, config.host, config.folder),
        };
        MailboxPollStep {
            intake: Arc::new(intake),
            bot_dir: target.dir.clone(),
            config,
        }
    }

    fn checkpoint_name(&self) -> String {
        format!("{}:{}", self.intake.trigger, self.config.folder)
    }
}

impl Intake {
    /// Parse a batch of messages into their jobs; runs on a blocking thread.
    fn take_all(&self, fetched: &[imap::Fetched], poll_bot: &str) -> Vec<Taken> {
        fetched.iter().map(|m| self.take(m, poll_bot)).collect()
    }

    /// Parse a message into the jobs of its documents.
    fn take(&self, message: &imap::Fetched, poll_bot: &str) -> Taken {
        let mail = match parse(&message.raw, &self.filter) {
            Ok(mail) => mail,
            Err(e) => {
                tracing::warn!(bot = %self.target, uid = message.uid, error = %e, "message cannot be parsed; moved to the failed folder");
                return Taken {
                    uid: message.uid,
                    jobs: Err(e.to_string()),
                    documents: Vec::new(),
                    report: json!({ "uid": message.uid, "error": e.to_string() }),
                };
            }
        };
        let identity = mail
            .message_id
            .clone()
            .unwrap_or_else(|| store::sha256_hex(&message.raw));
        let mut jobs = Vec::new();
        for document in &mail.documents {
            let mut input = match &self.input {
                Value::Object(map) => map.clone(),
                _ => serde_json::Map::new(),
            };
            document.stored().name_in(&mut input);
            input.insert(
                "mail".into(),
                json!({
                    "from": mail.from,
                    "subject": mail.subject,
                    "date": mail.date,
                    "message_id": mail.message_id,
                    "mailbox": self.mailbox,
                    "uid": message.uid,
                }),
            );
            jobs.push(NewJob {
                bot: self.target.clone(),
                input: Value::Object(input),
                idempotency_key: Some(self.dedupe.key(
                    &format!("mail:{}:{identity}", self.trigger),
                    &document.sha256,
                )),
                max_attempts: self.max_attempts,
                max_lost: self.max_lost,
                run_after: None,
                created_by: format!("mailbox:{poll_bot}"),
                refused: None,
            });
        }
        // A message with nothing clerk reads (no attachment, a .docx, a file
        // over the size limit) is not dropped in silence: it becomes a job
        // failed at once that names it, told to the bot's owners.
        if mail.documents.is_empty() {
            let job = self.no_document(&mail, &identity, message.uid, poll_bot);
            tracing::warn!(bot = %self.target, uid = message.uid, reason = job.refused.as_deref().unwrap_or_default(), "message holds no document; recorded as a failed job");
            jobs.push(job);
        }
        // A message the job database cannot keep (a NUL character in a
        // header, say) goes to the failed folder with why, instead of
        // failing the whole batch again and again.
        if let Some(e) = jobs.iter().find_map(|j| j.storable().err()) {
            tracing::warn!(bot = %self.target, uid = message.uid, error = %e, "message cannot be stored; moved to the failed folder");
            return Taken {
                uid: message.uid,
                jobs: Err(e.to_string()),
                documents: Vec::new(),
                report: json!({ "uid": message.uid, "error": e.to_string() }),
            };
        }
        let report = crate::jobs::printable_value(json!({
            "uid": message.uid,
            "from": mail.from,
            "subject": mail.subject,
            "documents": mail.documents.iter().map(|d| &d.name).collect::<Vec<_>>(),
            "skipped": mail.skipped.iter().map(|s| format!("{}: {}", s.name, s.reason)).collect::<Vec<_>>(),
        }));
        Taken {
            uid: message.uid,
            jobs: Ok(jobs),
            documents: mail.documents,
            report,
        }
    }
}

impl Intake {
    /// The job that records a message with no document clerk reads.
    fn no_document(&self, mail: &Mail, identity: &str, uid: u32, poll_bot: &str) -> NewJob {
        let skipped: Vec<String> = mail
            .skipped
            .iter()
            .map(|s| format!("{}: {}", s.name, s.reason))
            .collect();
        let why = if skipped.is_empty() {
            "it has no attachment".to_string()
        } else {
            format!("none of its attachments is one ({})", skipped.join("; "))
        };
        // Headers are the sender's: a 100 KB Message-ID must not become a
        // 100 KB error message.
        let reason = format!(
            "the message {:?} from {} ({}) holds no document clerk reads: {why}",
            clip(mail.subject.as_deref().unwrap_or("(no subject)")),
            clip(mail.from.as_deref().unwrap_or("(no sender)")),
            clip(mail.message_id.as_deref().unwrap_or("no Message-ID")),
        );
        let mut input = match &self.input {
            Value::Object(map) => map.clone(),
            _ => serde_json::Map::new(),
        };
        input.insert(
            "mail".into(),
            json!({
                "from": mail.from,
                "subject": mail.subject,
                "date": mail.date,
                "message_id": mail.message_id,
                "mailbox": self.mailbox,
                "uid": uid,
            }),
        );
        input.insert("skipped".into(), json!(skipped));
        NewJob {
            bot: self.target.clone(),
            input: Value::Object(input),
            idempotency_key: Some(format!("mail:{}:{identity}:none", self.trigger)),
            max_attempts: self.max_attempts,
            max_lost: self.max_lost,
            run_after: None,
            created_by: format!("mailbox:{poll_bot}"),
            refused: Some(reason),
        }
    }
}

/// Where a poll got to: the mailbox's identity and the last UID taken.
fn read_checkpoint(value: Option<&str>) -> Option<(u32, u32)> {
    let (validity, uid) = value?.split_once(':')?;
    Some((validity.parse().ok()?, uid.parse().ok()?))
}

fn imap_failure(e: imap::ImapError) -> StepError {
    if e.is_transient() {
        StepError::transient(e.to_string())
    } else {
        StepError::business(e.to_string())
    }
}

/// Keep a batch's documents in the store, together, before any of their
/// jobs is queued.
async fn save(documents: &dyn DocumentStore, taken: &[Taken]) -> Result<(), StepError> {
    let incoming: Vec<(StoredDocument, &[u8])> = taken
        .iter()
        .flat_map(|t| &t.documents)
        .map(|d| (d.stored(), d.bytes.as_slice()))
        .collect();
    documents
        .put_all(&incoming)
        .await
        .map_err(|e| StepError::transient(format!("cannot save documents: {e}")))
}

/// Run blocking IMAP work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StepError> + Send + 'static,
) -> Result<T, StepError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StepError::transient(format!("the mailbox task failed: {e}")))?
}

#[async_trait]
impl Step for MailboxPollStep {
    fn kind(&self) -> &'static str {
        "mailbox_poll"
    }

    async fn run(&self, ctx: &StepContext) -> Result<StepOutcome, StepError> {
        let password = ctx
            .secrets
            .resolve(&self.config.password)
            .map_err(|e| StepError::business(format!("the mailbox password: {e}")))?;
        let account = Account {
            host: self.config.host.clone(),
            port: self.config.port,
            tls: self.config.tls,
            user: self.config.user.clone(),
            password: password.text,
            ca_file: self.config.ca_file.as_ref().map(|f| self.bot_dir.join(f)),
            timeout: self.config.timeout,
        };
        let db = ctx.intake.0.clone();
        let checkpoint_name = self.checkpoint_name();
        let checkpoint = db
            .checkpoint(&ctx.bot, &checkpoint_name)
            .await
            .map_err(|e| StepError::transient(format!("cannot read the checkpoint: {e}")))?;
        let folder = self.config.folder.clone();
        let (session, validity, after, uids) = blocking(move || {
            let mut session = imap::connect(&account).map_err(imap_failure)?;
            let selected = session.select(&folder).map_err(imap_failure)?;
            // A mailbox whose UIDVALIDITY changed numbers its messages anew:
            // read it all again; the job keys keep documents from doubling.
            let after = match read_checkpoint(checkpoint.as_deref()) {
                Some((validity, uid)) if validity == selected.uid_validity => uid,
                _ => 0,
            };
            let uids = session.uids_after(after).map_err(imap_failure)?;
            Ok((session, selected.uid_validity, after, uids))
        })
        .await?;
        let mut round = Round {
            db,
            documents: ctx.documents.clone(),
            poll_bot: ctx.bot.clone(),
            checkpoint_name,
            validity,
            last_uid: after,
            totals: Totals::default(),
        };
        let mut session = self.take_batches(&mut round, session, uids).await?;

        // With IDLE, listen for `every`, taking new mail as it comes; the
        // next poll job takes over after that. The server is asked for new
        // UIDs after every wait, so mail that arrived between two waits is
        // not missed.
        if self.config.idle {
            let until = tokio::time::Instant::now() + self.config.every;
            let (back, can_idle) = blocking(move || {
                let mut session = session;
                let can = session.can_idle().map_err(imap_failure)?;
                Ok((session, can))
            })
            .await?;
            session = back;
            if !can_idle {
                tracing::warn!(bot = %ctx.bot, "the IMAP server cannot IDLE; polling every `every` instead");
            }
            while can_idle
                && !ctx.draining.is_cancelled()
                && !until
                    .saturating_duration_since(tokio::time::Instant::now())
                    .is_zero()
            {
                let left = until.saturating_duration_since(tokio::time::Instant::now());
                let last = round.last_uid;
                let (back, uids) = blocking(move || {
                    let mut session = session;
                    session
                        .wait_for_mail(left.min(IDLE_WAIT))
                        .map_err(imap_failure)?;
                    let uids = session.uids_after(last).map_err(imap_failure)?;
                    Ok((session, uids))
                })
                .await?;
                session = self.take_batches(&mut round, back, uids).await?;
            }
        }
        tokio::task::spawn_blocking(move || session.logout());
        let t = round.totals;
        if t.messages > 0 {
            tracing::info!(bot = %self.intake.target, messages = t.messages, documents = t.documents, new_jobs = t.created, without_document = t.without_document, failed = t.failed, "mailbox polled");
        }
        Ok(StepOutcome::Done(json!({
            "messages": t.messages,
            "documents": t.documents,
            "new_jobs": t.created,
            "without_document": t.without_document,
            "failed": t.failed,
            "details": t.report,
        })))
    }
}

/// Longest single IDLE wait: a poll that is stopped (a shutdown, a
/// cancel, its time up) leaves its blocking thread within this, and one
/// whose worker drains ends as done within it.
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// What one poll job has done so far.
#[derive(Default)]
struct Totals {
    messages: usize,
    documents: usize,
    created: usize,
    /// Messages with no document, recorded as failed jobs.
    without_document: usize,
    failed: usize,
    report: Vec<Value>,
}

/// One poll job's state between batches.
struct Round {
    db: Arc<dyn crate::jobs::IntakeStore>,
    /// Where the documents go before their jobs are queued.
    documents: Arc<dyn crate::documents::store::DocumentStore>,
    poll_bot: String,
    checkpoint_name: String,
    validity: u32,
    /// The highest UID taken (or known taken before).
    last_uid: u32,
    totals: Totals,
}

impl MailboxPollStep {
    /// Take `uids` batch by batch: fetch, save, queue, then move and
    /// remember. A poll cut short keeps the batches it finished. The next
    /// batch is fetched while this one is saved (the server's work and
    /// clerk's overlap); memory holds two batches at most.
    async fn take_batches(
        &self,
        round: &mut Round,
        session: imap::Session,
        uids: Vec<u32>,
    ) -> Result<imap::Session, StepError> {
        let batches: Vec<Vec<u32>> = uids
            .chunks(imap::FETCH_BATCH)
            .map(<[u32]>::to_vec)
            .collect();
        let joined = |e: tokio::task::JoinError| {
            StepError::transient(format!("the mailbox task failed: {e}"))
        };
        let fetch = |mut session: imap::Session, batch: Vec<u32>| {
            tokio::task::spawn_blocking(move || {
                let fetched = session.fetch(&batch).map_err(imap_failure);
                (session, fetched)
            })
        };
        let lost = || StepError::transient("the mailbox session was lost");
        let mut session = Some(session);
        let mut ahead: Option<Result<Vec<imap::Fetched>, StepError>> = None;
        for (index, batch) in batches.iter().enumerate() {
            let started = std::time::Instant::now();
            let fetched = match ahead.take() {
                Some(fetched) => fetched?,
                None => {
                    let s = session.take().ok_or_else(lost)?;
                    let (s, fetched) = fetch(s, batch.clone()).await.map_err(joined)?;
                    session = Some(s);
                    fetched?
                }
            };
            let intake = self.intake.clone();
            let poll_bot = round.poll_bot.clone();
            let documents = round.documents.clone();
            let saving = tokio::spawn(async move {
                let taken = blocking(move || Ok(intake.take_all(&fetched, &poll_bot))).await?;
                save(documents.as_ref(), &taken).await?;
                Ok::<_, StepError>(taken)
            });
            let fetching = match (batches.get(index + 1), session.take()) {
                (Some(next), Some(s)) => Some(fetch(s, next.clone())),
                (_, s) => {
                    session = s;
                    None
                }
            };
            let taken = saving.await;
            if let Some(task) = fetching {
                let (s, fetched) = task.await.map_err(joined)?;
                session = Some(s);
                ahead = Some(fetched);
            }
            let taken = taken.map_err(joined)??;
            let s = session.take().ok_or_else(lost)?;
            session = Some(self.settle(round, s, taken, batch, started).await?);
        }
        session.ok_or_else(lost)
    }

    /// Queue a fetched batch's jobs, durably, before any message is touched;
    /// then move (or flag) its messages and remember how far the poll got.
    async fn settle(
        &self,
        round: &mut Round,
        s: imap::Session,
        taken: Vec<Taken>,
        batch: &[u32],
        started: std::time::Instant,
    ) -> Result<imap::Session, StepError> {
        let jobs: Vec<NewJob> = taken
            .iter()
            .filter_map(|t| t.jobs.as_ref().ok())
            .flatten()
            .cloned()
            .collect();
        if !jobs.is_empty() {
            let enqueued =
                round.db.enqueue(&jobs).await.map_err(|e| {
                    StepError::transient(format!("cannot queue the documents: {e}"))
                })?;
            for (job, e) in jobs.iter().zip(&enqueued) {
                match (e.created, job.refused.is_some()) {
                    (true, false) => round.totals.created += 1,
                    (true, true) => round.totals.without_document += 1,
                    _ => {}
                }
            }
        }
        let taken_uids: Vec<u32> = taken
            .iter()
            .filter(|t| t.jobs.is_ok())
            .map(|t| t.uid)
            .collect();
        let failed_uids: Vec<u32> = taken
            .iter()
            .filter(|t| t.jobs.is_err())
            .map(|t| t.uid)
            .collect();
        let config = self.config.clone();
        let failed_now = failed_uids.len();
        let mut s = s;
        let session = blocking(move || {
            match config.after {
                After::Move => s.move_to(&taken_uids, &config.move_to),
                After::Flag => s.mark_seen(&taken_uids),
                After::Leave => Ok(()),
            }
            .map_err(imap_failure)?;
            s.move_to(&failed_uids, &config.failed_to)
                .map_err(imap_failure)?;
            Ok(s)
        })
        .await?;
        // The batch's highest UID, or the batch's own when every message
        // of it vanished before the fetch.
        let last = taken
            .iter()
            .map(|t| t.uid)
            .chain(batch.last().copied())
            .max()
            .unwrap_or(round.last_uid);
        round
            .db
            .set_checkpoint(
                &round.poll_bot,
                &round.checkpoint_name,
                &format!("{}:{last}", round.validity),
            )
            .await
            .map_err(|e| StepError::transient(format!("cannot save the checkpoint: {e}")))?;
        round.last_uid = round.last_uid.max(last);
        tracing::debug!(
            bot = %round.poll_bot,
            messages = taken.len(),
            ms = started.elapsed().as_millis() as u64,
            "batch taken"
        );
        let t = &mut round.totals;
        t.messages += taken.len();
        t.documents += jobs.iter().filter(|j| j.refused.is_none()).count();
        t.failed += failed_now;
        t.report.extend(taken.into_iter().map(|t| t.report));
        Ok(session)
    }
}

/// At most 200 characters of a header's value, marked when cut.
fn clip(text: &str) -> String {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_read_back_or_start_over() {
        assert_eq!(
            read_checkpoint(Some("1795324614:42")),
            Some((1795324614, 42))
        );
        assert_eq!(read_checkpoint(Some("garbage")), None);
        assert_eq!(read_checkpoint(None), None);
    }
}
