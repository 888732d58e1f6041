//! Bots: the manifest format (`bots/<name>/bot.toml`), its validation with
//! `file:line:column` diagnostics, the registry of step kinds a bot file
//! may name (`kinds`), the reference of every key (`reference`), and the
//! registry of loaded bots.

pub mod kinds;
mod manifest;
#[cfg(test)]
mod manifest_tests;
pub mod reference;
mod slots;
mod triggers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use crate::config::{Diagnostic, closest};
pub use crate::jobs::RetryPolicy;
pub use manifest::parse_manifest;

use crate::mail::notify::{Contacts, Directory, NotifyConfig};
use crate::mail::poll::{MailboxConfig, PollConfig, PollTarget};
use crate::step::{Step, StepConfig};

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
    pub notify: Option<NotifyConfig>,
    /// The secrets its references may name; no other can be resolved.
    pub secrets: Vec<String>,
    pub triggers: Vec<Trigger>,
    pub retry: RetryPolicy,
    pub timeouts: Timeouts,
    /// At most this many jobs of the bot run at once across all workers.
    pub concurrency: Option<u32>,
    /// A review older than this is overdue: owners and reviewers hear of
    /// it once, and the queue says so.
    pub review_within: Option<std::time::Duration>,
    /// Who may review this bot's documents when no rule says: a role or a
    /// group of users. `None`: anyone who may review.
    pub review_by: Option<String>,
    /// Which documents its triggers take count as the same.
    pub dedupe: crate::jobs::Dedupe,
    /// The steps as declared, in order.
    pub steps: Vec<StepDecl>,
    /// The running steps, built once from `steps`, same order.
    pub runners: Vec<Arc<dyn Step>>,
}

impl Bot {
    /// Whether clerk made this bot for a mailbox trigger of another.
    /// A job of this bot with its retry policy, queued by `created_by`
    /// (`cli:NAME`, a user's name) with `input`.
    pub fn job(
        &self,
        input: serde_json::Value,
        key: Option<String>,
        created_by: String,
    ) -> crate::jobs::NewJob {
        crate::jobs::NewJob {
            bot: self.name.clone(),
            input,
            idempotency_key: key,
            max_attempts: self.retry.max_attempts,
            max_lost: self.retry.max_lost,
            run_after: None,
            created_by,
            refused: None,
        }
    }

    pub fn is_mailbox_poll(&self) -> bool {
        self.steps.iter().any(|s| s.kind == POLL_KIND)
    }

    /// The templates of the extract step `step`, loaded anew (for reviews:
    /// a reviewer's corrections are typed and checked with them). `None`
    /// when the step is not an extract step.
    pub fn templates(&self, step: &str) -> Option<Vec<crate::extract::Template>> {
        let decl = self.steps.iter().find(|s| s.name == step)?;
        let config = decl
            .config
            .downcast_ref::<crate::extract::ExtractConfig>()?;
        let set = crate::extract::load_templates(&self.dir.join(&config.templates));
        for e in set.errors {
            tracing::warn!(bot = %self.name, error = %e, "a template cannot be used in reviews");
        }
        Some(set.templates)
    }

    /// The templates folder of each of the bot's extract steps.
    pub fn template_folders(&self) -> Vec<PathBuf> {
        self.steps
            .iter()
            .filter_map(|s| s.config.downcast_ref::<crate::extract::ExtractConfig>())
            .map(|c| self.dir.join(&c.templates))
            .collect()
    }

    /// Who hears about this bot's jobs.
    pub fn contacts(&self) -> Contacts {
        Contacts {
            bot: self.name.clone(),
            file: self.file.clone(),
            dir: self.dir.clone(),
            owners: self.owners.clone(),
            reviewers: self.reviewers.clone(),
            notify: self.notify.clone(),
            secrets: self.secrets.clone(),
        }
    }

    /// Timeout of step `index`: its own, else the bot's default.
    pub fn step_timeout(&self, index: usize) -> Duration {
        self.steps
            .get(index)
            .and_then(|s| s.timeout)
            .unwrap_or(self.timeouts.step)
    }
}

/// A step as declared in a bot file: the keys every kind shares plus the
/// kind's own config.
#[derive(Debug, Clone)]
pub struct StepDecl {
    /// Unique within the bot; later steps read this step's output by it.
    pub name: String,
    /// The kind's name, as in `kind = "…"`.
    pub kind: &'static str,
    /// Overrides the bot's default step timeout.
    pub timeout: Option<Duration>,
    pub config: Arc<dyn StepConfig>,
}

/// The kind of a poll bot's one step; not written in bot files.
const POLL_KIND: &str = "mailbox_poll";

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
    /// A mailbox polled for documents; becomes a poll bot of its own (see
    /// [`crate::mail::poll`]).
    Mailbox(Box<MailboxConfig>),
    /// A job for every file dropped into a folder (see
    /// [`crate::scheduler::folder`]).
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
    /// What loads but will not work as its author expects.
    pub warnings: Vec<Diagnostic>,
}

/// What a bot that loads asks for and will not get.
fn warnings_of(bot: &Bot, file: &Path) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if !bot.owners.is_empty() && bot.notify.is_none() {
        out.push(Diagnostic::file(
            file,
            "`owners` are mailed of failed jobs through the server a `[notify]` table names, and this bot has none: they will hear of nothing (add `[notify]` with `host` and `from`)",
        ));
    }
    out
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
                report.warnings.extend(warnings_of(&bot, &file));
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
            let poll = PollConfig {
                mailbox: (**config).clone(),
                target: PollTarget {
                    bot: bot.name.clone(),
                    dir: bot.dir.clone(),
                    max_attempts: bot.retry.max_attempts,
                    max_lost: bot.retry.max_lost,
                    dedupe: bot.dedupe,
                },
                trigger: trigger.id.clone(),
                input: trigger.input.clone(),
            };
            let runner: Arc<dyn Step> = Arc::new(poll.step());
            Arc::new(Bot {
                name: format!("{}:{}", bot.name, trigger.id),
                description: format!("Polls {} for {}", trigger.id, bot.name),
                file: bot.file.clone(),
                dir: bot.dir.clone(),
                owners: bot.owners.clone(),
                reviewers: Vec::new(),
                notify: bot.notify.clone(),
                secrets: bot.secrets.clone(),
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
                review_within: None,
                review_by: None,
                dedupe: bot.dedupe,
                steps: vec![StepDecl {
                    name: "poll".into(),
                    kind: POLL_KIND,
                    timeout: None,
                    config: Arc::new(poll),
                }],
                runners: vec![runner],
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

impl Directory for BotRegistry {
    fn contacts(&self) -> Vec<Contacts> {
        self.bots.values().map(|b| b.contacts()).collect()
    }
}
