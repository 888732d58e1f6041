//! Folder triggers: every file dropped into a watched folder becomes one
//! job, however often it is dropped and whatever crashes in between.
//!
//! A file is taken once its size and modification time have stayed the same
//! for the trigger's `settle` time (so a file still being copied in is left
//! alone). Taking it is three steps, each safe to repeat:
//!
//! 1. hash its content and hard-link it to `processed/<hash>-<name>` (a copy
//!    where links are not possible), the folder's record of what it took,
//!    and put it into the document store, where the job finds it by hash;
//! 2. enqueue the job, keyed `drop:<trigger>:<sha256>`: a second file with
//!    the same content finds the first one's job instead of making its own;
//! 3. remove the dropped file.
//!
//! A crash after step 1 or 2 leaves the dropped file in place; the next scan
//! does the steps again, and each finds its work done. Several `clerk serve`
//! processes watching one shared folder agree the same way. A file that
//! cannot be taken (empty, unreadable) goes to `failed/` with a
//! `<name>.error.txt` beside it saying why.
//!
//! The folder is read whenever the system reports a change in it, and every
//! `rescan` besides, for file systems that report none (network shares).

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::bot::{BotRegistry, TriggerKind};
use crate::documents::store::{self, DocumentStore, StoredDocument};
use crate::jobs::{IntakeStore, NewJob, ScheduleStore};

/// Where taken files go, inside the watched folder.
pub const PROCESSED: &str = "processed";
/// Where files that could not be taken go, inside the watched folder.
pub const FAILED: &str = "failed";

/// One folder trigger of one bot.
#[derive(Debug, Clone)]
struct Watched {
    bot: String,
    trigger: String,
    dir: PathBuf,
    patterns: Vec<glob::Pattern>,
    settle: Duration,
    rescan: Duration,
    input: serde_json::Value,
    max_attempts: u32,
    max_lost: u32,
    dedupe: crate::jobs::Dedupe,
}

/// A file seen but not taken yet: what it looked like, and since when;
/// and, when taking it failed, how often and when to try again.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Seen {
    size: u64,
    modified: Option<SystemTime>,
    since: Instant,
    failures: u32,
    retry_at: Option<Instant>,
}

/// Tries at taking a file that fails for the same reason before it goes to
/// `failed/` (about four minutes of backing off).
const MAX_TAKE_FAILURES: u32 = 8;

/// The wait before taking a file again after `failures` failed tries.
fn take_backoff(failures: u32) -> Duration {
    Duration::from_secs(1 << failures.min(8).saturating_sub(1)).min(Duration::from_secs(120))
}

/// How one try at taking a file went.
enum Attempt {
    Done(Taken),
    /// Not now (the file vanished, the database is away): the next scan.
    Later,
    /// Taking it failed for this reason: back off, and after
    /// [`MAX_TAKE_FAILURES`] move it to `failed/`.
    Failing(String),
}

/// What became of one dropped file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// A new job.
    Job(i64),
    /// The same content was taken before, as this job.
    Duplicate(i64),
    /// Moved to `failed/`, for this reason.
    Failed(String),
}

/// The outcome for one file, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intake {
    pub bot: String,
    pub file: PathBuf,
    pub taken: Taken,
}

/// A dropped file linked into `processed/`, ready to be enqueued.
struct Staged {
    document: PathBuf,
    sha256: String,
}

enum StageError {
    /// Someone else (another clerk) took the file first.
    Vanished,
    /// The file cannot be taken; it goes to `failed/`.
    Refused(String),
    /// A problem with the folder itself; try again at the next scan.
    Retry(String),
}

/// Watches every folder trigger of the loaded bots.
pub struct FolderIntake {
    db: Arc<dyn IntakeStore>,
    /// Where each taken file is kept for its job, which names it by hash.
    documents: Arc<dyn DocumentStore>,
    /// Where paused bots are read; their files wait in the folder.
    pauses: Option<Arc<dyn ScheduleStore>>,
    actor: String,
    watched: Vec<Watched>,
    seen: HashMap<PathBuf, Seen>,
}

impl FolderIntake {
    pub fn new(
        db: Arc<dyn IntakeStore>,
        documents: Arc<dyn DocumentStore>,
        bots: &BotRegistry,
        id: &str,
    ) -> FolderIntake {
        let mut watched = Vec::new();
        for bot in bots.iter() {
            for trigger in &bot.triggers {
                if let TriggerKind::Folder {
                    path,
                    patterns,
                    settle,
                    rescan,
                } = &trigger.kind
                {
                    watched.push(Watched {
                        bot: bot.name.clone(),
                        trigger: trigger.id.clone(),
                        // Absolute, so the job's document path means the
                        // same to every step whatever its working folder.
                        dir: std::path::absolute(bot.dir.join(path))
                            .unwrap_or_else(|_| bot.dir.join(path)),
                        patterns: patterns.clone(),
                        settle: *settle,
                        rescan: *rescan,
                        input: trigger.input.clone(),
                        max_attempts: bot.retry.max_attempts,
                        max_lost: bot.retry.max_lost,
                        dedupe: bot.dedupe,
                    });
                }
            }
        }
        FolderIntake {
            db,
            documents,
            pauses: None,
            actor: format!("folder:{id}"),
            watched,
            seen: HashMap::new(),
        }
    }

    /// Whether any bot has a folder trigger.
    pub fn is_empty(&self) -> bool {
        self.watched.is_empty()
    }

    /// The folders watched.
    pub fn folders(&self) -> Vec<PathBuf> {
        self.watched.iter().map(|w| w.dir.clone()).collect()
    }

    /// Leave the files of bots an operator paused in their folders until
    /// the bots are resumed.
    pub fn with_pauses(mut self, pauses: Arc<dyn ScheduleStore>) -> FolderIntake {
        self.pauses = Some(pauses);
        self
    }

    /// Read every watched folder once and take the files that have settled.
    pub async fn scan(&mut self) -> Vec<Intake> {
        let mut done = Vec::new();
        let mut present = HashSet::new();
        let paused = match &self.pauses {
            Some(store) => match store.paused().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read which bots are paused; will try again");
                    return done;
                }
            },
            None => Vec::new(),
        };
        for w in self.watched.clone() {
            if paused.iter().any(|p| p.bot == w.bot) {
                continue;
            }
            let files = match list(&w) {
                Ok(files) => files,
                Err(e) => {
                    tracing::warn!(bot = %w.bot, folder = %w.dir.display(), error = %e, "cannot read the folder; will try again");
                    continue;
                }
            };
            for (file, size, modified) in files {
                present.insert(file.clone());
                let now = Instant::now();
                let fresh = Seen {
                    size,
                    modified,
                    since: now,
                    failures: 0,
                    retry_at: None,
                };
                let seen = self.seen.entry(file.clone()).or_insert(fresh);
                if seen.size != size || seen.modified != modified {
                    *seen = fresh;
                }
                if now.duration_since(seen.since) < w.settle
                    || seen.retry_at.is_some_and(|at| now < at)
                {
                    continue;
                }
                let taken = match self.take(&w, &file).await {
                    Attempt::Done(taken) => taken,
                    Attempt::Later => continue,
                    Attempt::Failing(reason) => match self.failed_to_take(&w, &file, reason) {
                        Some(taken) => taken,
                        None => continue,
                    },
                };
                self.seen.remove(&file);
                done.push(Intake {
                    bot: w.bot.clone(),
                    file,
                    taken,
                });
            }
        }
        self.seen.retain(|f, _| present.contains(f));
        done
    }

    /// How long until a file seen now may have settled, or may be tried
    /// again, if any is waiting.
    fn next_settle(&self) -> Option<Duration> {
        let settle = self.watched.iter().map(|w| w.settle).max()?;
        let now = Instant::now();
        self.seen
            .values()
            .map(|s| match s.retry_at {
                Some(at) => at.saturating_duration_since(now),
                None => settle.saturating_sub(s.since.elapsed()),
            })
            .min()
    }

    /// A try at taking `file` failed: back off, or after too many tries
    /// move it to `failed/` with the reason (`Some`, what became of it).
    fn failed_to_take(&mut self, w: &Watched, file: &Path, reason: String) -> Option<Taken> {
        let seen = self.seen.get_mut(file)?;
        seen.failures += 1;
        if seen.failures < MAX_TAKE_FAILURES {
            let wait = take_backoff(seen.failures);
            seen.retry_at = Some(Instant::now() + wait);
            tracing::warn!(bot = %w.bot, file = %file.display(), error = %reason, retry_in = ?wait, "cannot take the file; will try again");
            return None;
        }
        let reason = format!("cannot take the file after {MAX_TAKE_FAILURES} tries: {reason}");
        match move_to_failed(w, file, reason.clone()) {
            Ok(taken) => Some(taken),
            Err(e) => {
                tracing::warn!(bot = %w.bot, file = %file.display(), %reason, error = %e, "file refused, and it cannot be moved to failed/");
                seen.retry_at = Some(Instant::now() + take_backoff(MAX_TAKE_FAILURES));
                None
            }
        }
    }

    /// Take one settled file.
    async fn take(&self, w: &Watched, file: &Path) -> Attempt {
        let (dir, dropped) = (w.dir.clone(), file.to_path_buf());
        let staged = tokio::task::spawn_blocking(move || stage(&dir, &dropped))
            .await
            .unwrap_or_else(|e| Err(StageError::Retry(format!("the intake task failed: {e}"))));
        let staged = match staged {
            Ok(staged) => staged,
            Err(StageError::Vanished) => return Attempt::Later,
            Err(StageError::Retry(e)) => return Attempt::Failing(e),
            Err(StageError::Refused(reason)) => {
                return match move_to_failed(w, file, reason.clone()) {
                    Ok(taken) => Attempt::Done(taken),
                    Err(e) => Attempt::Failing(format!(
                        "{reason}, and it cannot be moved to failed/: {e}"
                    )),
                };
            }
        };
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // A store that is away (S3 down) is like a database that is: the
        // file waits in its folder, and nothing counts against it.
        let kept = match self.keep(&staged, &name).await {
            Ok(kept) => kept,
            Err(e) => {
                tracing::warn!(bot = %w.bot, file = %file.display(), error = %e, "cannot keep the file's document; will try again");
                return Attempt::Later;
            }
        };
        let mut input = match &w.input {
            serde_json::Value::Object(map) => map.clone(),
            _ => serde_json::Map::new(),
        };
        kept.name_in(&mut input);
        let job = NewJob {
            bot: w.bot.clone(),
            input: serde_json::Value::Object(input),
            idempotency_key: Some(w.dedupe.key(&format!("drop:{}", w.trigger), &staged.sha256)),
            max_attempts: w.max_attempts,
            max_lost: w.max_lost,
            run_after: None,
            created_by: self.actor.clone(),
            refused: None,
        };
        let enqueued = match self.db.enqueue(std::slice::from_ref(&job)).await {
            Ok(mut e) if !e.is_empty() => e.remove(0),
            Ok(_) => return Attempt::Later,
            // What no back end can keep: the same again would fail again.
            Err(e @ crate::jobs::JobsError::Unstorable(_)) => {
                return Attempt::Failing(e.to_string());
            }
            Err(e) => {
                tracing::warn!(bot = %w.bot, file = %file.display(), error = %e, "cannot enqueue the file's job; will try again");
                return Attempt::Later;
            }
        };
        // The job holds its document in processed/; the dropped file is done.
        if let Err(e) = std::fs::remove_file(file)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(bot = %w.bot, file = %file.display(), error = %e, "the job is queued but the dropped file cannot be removed");
        }
        if enqueued.created {
            tracing::info!(bot = %w.bot, file = %file.display(), job = enqueued.id, document = %staged.sha256, "file taken");
            Attempt::Done(Taken::Job(enqueued.id))
        } else {
            tracing::info!(bot = %w.bot, file = %file.display(), job = enqueued.id, "same content as a file taken before; no new job");
            Attempt::Done(Taken::Duplicate(enqueued.id))
        }
    }

    /// Put a staged file into the document store, before its job is queued.
    async fn keep(&self, staged: &Staged, name: &str) -> Result<StoredDocument, String> {
        let path = staged.document.clone();
        let content = tokio::task::spawn_blocking(move || std::fs::read(&path))
            .await
            .map_err(|e| format!("the intake task failed: {e}"))?
            .map_err(|e| format!("cannot read {}: {e}", staged.document.display()))?;
        let document = StoredDocument::of(&content, name, None);
        if document.sha256 != staged.sha256 {
            // Changed between hashing and reading: taken again once settled.
            return Err(format!(
                "{} changed while it was taken",
                staged.document.display()
            ));
        }
        self.documents
            .put(&document, &content)
            .await
            .map_err(|e| format!("cannot keep the document: {e}"))?;
        Ok(document)
    }

    /// Watch until `shutdown` fires.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let changed = Arc::new(tokio::sync::Notify::new());
        let _watcher = self.watch(changed.clone());
        tracing::info!(folders = self.watched.len(), "folder intake started");
        let rescan = self
            .watched
            .iter()
            .map(|w| w.rescan)
            .min()
            .unwrap_or(Duration::from_secs(30));
        while !shutdown.is_cancelled() {
            self.scan().await;
            // A file waiting to settle is looked at again once it may have.
            let wait = self
                .next_settle()
                .map_or(rescan, |d| d.max(Duration::from_millis(50)).min(rescan));
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = changed.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!("folder intake stopped");
    }

    /// Ask the system to report changes in the watched folders (creating
    /// them if missing). Without reports the rescan still finds every file.
    fn watch(&self, changed: Arc<tokio::sync::Notify>) -> Option<notify::RecommendedWatcher> {
        use notify::Watcher;
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Files opened or read (clerk reading them, too) change nothing
            // to take: waking for them would read them again and again.
            if event.is_ok_and(|e| !matches!(e.kind, notify::EventKind::Access(_))) {
                changed.notify_one();
            }
        })
        .map_err(|e| tracing::warn!(error = %e, "cannot watch folders for changes; reading them every rescan"))
        .ok()?;
        for w in &self.watched {
            if let Err(e) = crate::config::permissions::create_shared_dir(&w.dir) {
                tracing::warn!(bot = %w.bot, folder = %w.dir.display(), error = %e, "cannot create the folder");
                continue;
            }
            if let Err(e) = watcher.watch(&w.dir, notify::RecursiveMode::NonRecursive) {
                tracing::warn!(bot = %w.bot, folder = %w.dir.display(), error = %e, "cannot watch the folder for changes; reading it every rescan");
            }
        }
        Some(watcher)
    }
}

/// The files of a watched folder that its patterns take: regular files, not
/// hidden, with their size and modification time.
fn list(w: &Watched) -> std::io::Result<Vec<(PathBuf, u64, Option<SystemTime>)>> {
    let options = glob::MatchOptions {
        case_sensitive: false,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&w.dir)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !w.patterns.iter().any(|p| p.matches_with(&name, options)) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_file() {
            files.push((entry.path(), meta.len(), meta.modified().ok()));
        }
    }
    files.sort();
    Ok(files)
}

/// Hash a dropped file and link it into `processed/` (steps 1 of the module
/// docs).
fn stage(dir: &Path, dropped: &Path) -> Result<Staged, StageError> {
    let mut file = match std::fs::File::open(dropped) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StageError::Vanished),
        Err(e) => return Err(StageError::Refused(format!("the file cannot be read: {e}"))),
    };
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                size += n as u64;
            }
            Err(e) => return Err(StageError::Refused(format!("the file cannot be read: {e}"))),
        }
    }
    if size == 0 {
        return Err(StageError::Refused("the file is empty (0 bytes)".into()));
    }
    let sha256 = store::hex(&hasher.finalize());
    let processed = dir.join(PROCESSED);
    std::fs::create_dir_all(&processed)
        .map_err(|e| StageError::Retry(format!("cannot create {}: {e}", processed.display())))?;
    let name = dropped
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let document = store::path_for(&processed, &sha256, &name);
    match std::fs::hard_link(dropped, &document) {
        // The link shares the dropped file's mode, which others may read.
        Ok(()) => {
            if let Err(e) = store::private(&document) {
                tracing::warn!(document = %document.display(), error = %e, "cannot make the stored document private");
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StageError::Vanished),
        // No hard links here (another file system, a share without them):
        // a whole copy instead.
        Err(_) => {
            store::put(&processed, &sha256, &name, |to| {
                std::fs::copy(dropped, to).map(|_| ())
            })
            .map_err(|e| {
                StageError::Retry(format!(
                    "cannot put the file into {}: {e}",
                    processed.display()
                ))
            })?;
        }
    }
    Ok(Staged { document, sha256 })
}

/// Move a file that cannot be taken to `failed/` with its reason, saying so.
fn move_to_failed(w: &Watched, file: &Path, reason: String) -> std::io::Result<Taken> {
    let to = refuse(&w.dir, file, &reason)?;
    tracing::warn!(bot = %w.bot, file = %file.display(), moved_to = %to.display(), %reason, "file refused");
    Ok(Taken::Failed(reason))
}

/// Move a file that cannot be taken to `failed/`, with the reason beside it.
fn refuse(dir: &Path, file: &Path, reason: &str) -> std::io::Result<PathBuf> {
    let failed = dir.join(FAILED);
    std::fs::create_dir_all(&failed)?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Never overwrite an earlier failure of the same name.
    let mut to = failed.join(&name);
    let mut n = 1;
    while to.exists() {
        n += 1;
        to = failed.join(format!("{n}-{name}"));
    }
    std::fs::rename(file, &to)?;
    let note = to.with_file_name(format!(
        "{}.error.txt",
        to.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    ));
    std::fs::write(note, format!("{reason}\n"))?;
    Ok(to)
}
