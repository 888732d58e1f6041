//! The step seam: one narrow trait that every kind of step implements.
//!
//! The worker knows only [`Step`]; each kind lives in the module that owns
//! its concern (`command`, `extract`, `mail`, `browser`), reads its own keys
//! through [`StepKind`] and is built from its [`StepConfig`]. This module
//! names no kind: it holds the trait, what a step may read about its job
//! ([`StepContext`]), how it fails ([`StepError`]) and the `{{…}}`
//! placeholders every kind renders ([`template`]).

pub mod kind;
pub mod paths;
pub mod template;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use kind::{StepConfig, StepKind};

/// What a step hands back when it did its work.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// The step finished; its output is stored and later steps can read it.
    Done(Value),
    /// The step produced output but a person has to look at it before the job
    /// goes on. The job moves to `waiting_review` and holds no worker.
    NeedsReview {
        output: Value,
        reasons: Vec<String>,
        /// Who may review it (roles or groups); empty for anyone who may
        /// review.
        review_by: Vec<String>,
    },
}

/// How a failed step should be treated. This is the line UiPath draws between
/// application and business exceptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Something outside the document went wrong (a server down, a timeout):
    /// the job is retried with backoff until its attempts run out.
    Transient,
    /// The work item itself is wrong (an invoice for an unknown vendor): the
    /// job fails at once, retrying would give the same answer.
    Business,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Transient => "transient",
            FailureKind::Business => "business",
        }
    }
}

/// A failed step: what kind of failure, and a message a person can act on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct StepError {
    pub kind: FailureKind,
    pub message: String,
    /// Files the step kept as evidence of the failure (a screenshot, the
    /// page's HTML); recorded with the step run and listed by `runs show`.
    pub artifacts: Vec<std::path::PathBuf>,
}

impl StepError {
    pub fn transient(message: impl Into<String>) -> Self {
        StepError {
            kind: FailureKind::Transient,
            message: message.into(),
            artifacts: Vec::new(),
        }
    }
    pub fn business(message: impl Into<String>) -> Self {
        StepError {
            kind: FailureKind::Business,
            message: message.into(),
            artifacts: Vec::new(),
        }
    }
}

/// Everything a step may read about the job it runs in.
#[derive(Debug, Clone)]
pub struct StepContext {
    pub job_id: i64,
    pub attempt: i64,
    pub bot: String,
    /// The folder of the bot's manifest; relative paths in steps start here.
    pub bot_dir: PathBuf,
    pub step_name: String,
    /// The job's input as given to `clerk run --input` or by its trigger.
    pub input: Value,
    /// Outputs of the steps that already finished, by step name.
    pub outputs: BTreeMap<String, Value>,
    /// Where `${secret:NAME}` references are resolved.
    pub secrets: Arc<crate::config::secrets::Secrets>,
    /// Fired when the job is cancelled, the worker shuts down past its grace
    /// period, or the step's time is up. A step that holds resources (a child
    /// process, a browser tab) must release them when this fires.
    pub cancel: CancellationToken,
    /// Fired when the worker begins to shut down. A step that waits for
    /// work to come to it (a mailbox poll listening with IDLE) ends then,
    /// as done, instead of using up the grace period.
    pub draining: CancellationToken,
    /// The part of the job database a step may use: queueing jobs of its
    /// own and remembering where it got to (a mailbox poll queues one job
    /// per document it finds). Nothing else of the queue is a step's business.
    pub intake: Intake,
    /// Where the deployment keeps documents: intake puts what it takes
    /// here and queues jobs that name it by hash.
    pub documents: Arc<dyn crate::documents::store::DocumentStore>,
}

/// The job database as a step sees it.
#[derive(Clone)]
pub struct Intake(pub Arc<dyn crate::jobs::IntakeStore>);

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Intake")
    }
}

impl StepContext {
    /// The JSON document a step receives: job identity, input and earlier
    /// outputs. Command steps get it on stdin.
    pub fn document(&self) -> Value {
        serde_json::json!({
            "job": { "id": self.job_id, "attempt": self.attempt, "bot": self.bot, "step": self.step_name },
            "input": self.input,
            "steps": self.outputs,
        })
    }
}

/// One kind of step. Implementations must be cheap to share between jobs: a
/// step is built once when its bot loads and run many times.
#[async_trait]
pub trait Step: Send + Sync + std::fmt::Debug {
    /// The kind's name as written in `bot.toml` (`kind = "command"`).
    fn kind(&self) -> &'static str;
    /// Run once for one job. Returning after `ctx.cancel` fired is allowed
    /// but the result is ignored.
    async fn run(&self, ctx: &StepContext) -> Result<StepOutcome, StepError>;
}
