//! Bots: the manifest format (`bots/<name>/bot.toml`), its validation with
//! `file:line:column` diagnostics, and the registry of loaded bots.

mod diagnostics;
mod manifest;
pub mod secrets;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use diagnostics::Diagnostic;
pub use manifest::{closest, parse_manifest};

use crate::step::{Step, StepConfig, StepDecl};

/// A loaded, valid bot.
#[derive(Debug, Clone)]
pub struct Bot {
    /// Unique name; jobs refer to their bot by it.
    pub name: String,
    pub description: String,
    /// The manifest file the bot came from.
    pub file: PathBuf,
    /// The folder of the manifest; relative paths in steps start here.
    pub dir: PathBuf,
    /// People mailed when a job of this bot fails or goes dead.
    pub owners: Vec<String>,
    /// People mailed, in batches, when jobs of this bot wait for review.
    pub reviewers: Vec<String>,
    /// The server owners and reviewers are mailed through; without it
    /// nobody is mailed.
    pub notify: Option<crate::mail::notify::NotifyConfig>,
    pub triggers: Vec<Trigger>,
    pub retry: RetryPolicy,
    pub timeouts: Timeouts,
    /// At most this many jobs of the bot run at once across all workers.
    pub concurrency: Option<u32>,
    /// The steps as declared, in order.
    pub steps: Vec<StepDecl>,
    /// The running steps, built once from `steps`, same order.
    pub runners: Vec<Arc<dyn Step>>,
}

impl Bot {
    /// Whether clerk made this bot for a mailbox trigger of another.
    pub fn is_mailbox_poll(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.config, StepConfig::MailboxPoll(_)))
    }

    /// Timeout of step `index`: its own, else the bot's default.
    pub fn step_timeout(&self, index: usize) -> Duration {
        self.steps
            .get(index)
            .and_then(|s| s.timeout)
            .unwrap_or(self.timeouts.step)
    }
}

#[derive(Debug, Clone)]
pub struct Trigger {
    /// Stable identity of the trigger within its bot, used to remember the
    /// last slot fired: the `name` given in the file, else derived from the
    /// schedule (`cron:<expr>@<tz>` or `every:<secs>s`).
    pub id: String,
    pub kind: TriggerKind,
    /// What to do with slots missed while no scheduler ran.
    pub catch_up: CatchUp,
    /// Input of the jobs this trigger creates.
    pub input: serde_json::Value,
}

#[derive(Debug, Clone)]
pub enum TriggerKind {
    /// Cron expression with optional seconds field, in a time zone.
    Cron {
        expression: String,
        schedule: Box<croner::Cron>,
        timezone: chrono_tz::Tz,
    },
    /// Every fixed interval, aligned to the Unix epoch so that every
    /// scheduler computes the same slots.
    Interval { every: Duration },
    /// Only `clerk run` or the API start it. Every bot can be run by hand;
    /// this trigger documents that it is meant to be.
    Manual,
    /// A job for every file dropped into a folder (see
    /// [`crate::scheduler::folder`]).
    /// A mailbox polled for documents; becomes a poll bot of its own (see
    /// [`crate::mail::poll`]).
    Mailbox(Box<crate::mail::poll::MailboxConfig>),
    Folder {
        /// As written: relative paths start at the bot's folder.
        path: std::path::PathBuf,
        /// File names taken; others are left alone.
        patterns: Vec<glob::Pattern>,
        /// How long a file must stay unchanged before it is taken.
        settle: Duration,
        /// Longest time between two readings of the folder.
        rescan: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// After downtime, run the most recent missed slot once.
    Once,
    /// After downtime, run nothing for missed slots; wait for the next one.
    Skip,
}

/// How a job is retried after a transient failure.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts that may end in a transient error before the job is dead.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles with each further attempt.
    pub backoff: Duration,
    /// No delay is longer than this.
    pub backoff_cap: Duration,
    /// Fraction of the delay added or taken at random (0.0–1.0) so that jobs
    /// that failed together do not all come back together.
    pub jitter: f64,
    /// Attempts whose worker vanished (lease expired) before the job is dead.
    pub max_lost: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            backoff: Duration::from_secs(10),
            backoff_cap: Duration::from_secs(3600),
            jitter: 0.2,
            max_lost: 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Timeouts {
    /// Default time limit of one step.
    pub step: Duration,
    /// Time limit of all steps of one attempt together.
    pub job: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            step: Duration::from_secs(600),
            job: None,
        }
    }
}

/// Result of loading a folder of bots: the good ones, and every problem found
/// in the bad ones. A bad bot never keeps the good ones from loading.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub bots: Vec<Arc<Bot>>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Load every `*/bot.toml` below `dir` (one level deep, plus `dir/bot.toml`).
pub fn load_dir(dir: &Path) -> LoadReport {
    let mut report = LoadReport::default();
    let mut files = Vec::new();
    let direct = dir.join("bot.toml");
    if direct.is_file() {
        files.push(direct);
    }
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries.flatten() {
                let f = entry.path().join("bot.toml");
                if f.is_file() {
                    files.push(f);
                }
            }
        }
        Err(e) => {
            report.diagnostics.push(Diagnostic::file(
                dir,
                format!("cannot read bots folder: {e}"),
            ));
            return report;
        }
    }
    files.sort();
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in files {
        let source = match std::fs::read_to_string(&file) {
            Ok(s) => s,
            Err(e) => {
                report
                    .diagnostics
                    .push(Diagnostic::file(&file, format!("cannot read: {e}")));
                continue;
            }
        };
        match parse_manifest(&file, &source) {
            Ok(bot) => {
                if let Some(first) = seen.get(&bot.name) {
                    report.diagnostics.push(Diagnostic::file(
                        &file,
                        format!(
                            "bot name `{}` is already used by {}",
                            bot.name,
                            first.display()
                        ),
                    ));
                    continue;
                }
                seen.insert(bot.name.clone(), file.clone());
                let bot = Arc::new(bot);
                report.bots.extend(poll_bots(&bot));
                report.bots.push(bot);
            }
            Err(mut diags) => report.diagnostics.append(&mut diags),
        }
    }
    report
}

/// The poll bot of each mailbox trigger of `bot`: `<bot>:<trigger>`, one
/// `mailbox_poll` step, polled every `every`, one poll at a time.
fn poll_bots(bot: &Arc<Bot>) -> Vec<Arc<Bot>> {
    bot.triggers
        .iter()
        .filter_map(|t| match &t.kind {
            TriggerKind::Mailbox(config) => Some((t, config)),
            _ => None,
        })
        .map(|(trigger, config)| {
            let step = crate::mail::poll::MailboxPollStep::new(
                (**config).clone(),
                bot,
                &trigger.id,
                trigger.input.clone(),
            );
            Arc::new(Bot {
                name: format!("{}:{}", bot.name, trigger.id),
                description: format!("Polls {} for {}", trigger.id, bot.name),
                file: bot.file.clone(),
                dir: bot.dir.clone(),
                owners: bot.owners.clone(),
                reviewers: Vec::new(),
                notify: bot.notify.clone(),
                triggers: vec![Trigger {
                    id: "poll".into(),
                    kind: TriggerKind::Interval {
                        every: config.every,
                    },
                    // A poll missed during downtime is not worth running late:
                    // the next one reads everything new anyway.
                    catch_up: CatchUp::Skip,
                    input: serde_json::json!({}),
                }],
                retry: bot.retry.clone(),
                timeouts: Timeouts {
                    // A poll that listens (IDLE) runs for `every` besides.
                    step: Duration::from_secs(600)
                        + if config.idle {
                            config.every
                        } else {
                            Duration::ZERO
                        },
                    job: None,
                },
                concurrency: Some(1),
                steps: vec![StepDecl {
                    name: "poll".into(),
                    timeout: None,
                    config: StepConfig::MailboxPoll(config.clone()),
                }],
                runners: vec![Arc::new(step)],
            })
        })
        .collect()
}

/// The bots a process knows, by name.
#[derive(Debug, Default, Clone)]
pub struct BotRegistry {
    bots: BTreeMap<String, Arc<Bot>>,
}

impl BotRegistry {
    pub fn new(bots: impl IntoIterator<Item = Arc<Bot>>) -> Self {
        BotRegistry {
            bots: bots.into_iter().map(|b| (b.name.clone(), b)).collect(),
        }
    }
    pub fn get(&self, name: &str) -> Option<&Arc<Bot>> {
        self.bots.get(name)
    }
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Bot>> {
        self.bots.values()
    }
    pub fn names(&self) -> Vec<String> {
        self.bots.keys().cloned().collect()
    }
    pub fn is_empty(&self) -> bool {
        self.bots.is_empty()
    }
}
