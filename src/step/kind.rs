//! The seam between bot files and step kinds: what a kind tells the
//! manifest reader (its name, its keys, their reference) and how its config
//! becomes a running [`Step`].
//!
//! Each kind implements [`StepKind`] in its own module, next to its config
//! struct and its step; the registry (`bot::kinds`) lists the kinds. Adding
//! a kind touches its own folder and that one list, nothing here.

use std::any::Any;
use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use super::Step;
use crate::config::TableReader;

/// A kind of step as a bot file names it (`kind = "command"`).
pub trait StepKind: Sync {
    /// The name written in `kind = "…"`.
    fn name(&self) -> &'static str;

    /// The reference of the kind's keys in Markdown: what the kind does,
    /// then each key with its type, default and meaning. Assembled with
    /// the others into the bot file reference (`clerk bots reference`).
    fn reference(&self) -> &'static str;

    /// Read the kind's own keys from one `[[steps]]` table (its `name`,
    /// `kind` and `timeout` are read already) and report what is wrong with
    /// them to the reader. `None` when anything is; the reader's `finish`
    /// then reports the keys this kind did not ask for.
    fn read(&self, step: &mut TableReader<'_, '_>) -> Option<Arc<dyn StepConfig>>;

    /// Whether this machine can run steps of this kind, found out by trying
    /// (the browser started, the OCR engine loaded), not by assuming: a
    /// worker claims only jobs whose every step it can run. `Err` says
    /// what is missing and how to get it.
    fn available(&self) -> Result<(), String> {
        Ok(())
    }

    /// Whether this machine can run one step of this kind as its bot file
    /// sets it up, beyond what [`available`](Self::available) tried for
    /// the kind: what the step's own settings need (an extract step's
    /// templates may read scans in languages whose OCR data this machine
    /// lacks). Asked once per bot when a worker starts.
    fn can_run(&self, _config: &dyn StepConfig, _bot_dir: &Path) -> Result<(), String> {
        Ok(())
    }

    /// The cases this kind runs through the contract every kind keeps
    /// (see `worker::contract`): the compiler asks each kind for them.
    #[cfg(test)]
    fn contract(&self) -> contract::Cases;
}

/// A step's config as read from its bot file: plain data, built into the
/// running step once the whole file is known to be valid.
pub trait StepConfig: Any + Debug + Send + Sync {
    /// Turn the config into the running step, once per bot load. Fails when
    /// what the config names is unusable (a templates folder with a broken
    /// template), with a message that says what and where.
    fn build(&self, bot_dir: &Path) -> Result<Arc<dyn Step>, String>;
}

impl dyn StepConfig {
    /// The config as the kind's own type, for code (and tests) that know
    /// which kind it is.
    pub fn downcast_ref<T: StepConfig>(&self) -> Option<&T> {
        (self as &dyn Any).downcast_ref::<T>()
    }
}

/// What every kind shows it does, as cases a shared test runs through a
/// real worker and job database.
#[cfg(test)]
pub mod contract {
    /// One step and the input of its job. In both, `{fixtures}` is replaced
    /// by the absolute path of the repository's `fixtures/` folder and
    /// `{silent_port}` by the port of a local listener that accepts
    /// connections and never answers.
    pub struct Case {
        /// The keys of one `[[steps]]` table but `name`, as TOML.
        pub step: &'static str,
        /// The job's input, as JSON.
        pub input: &'static str,
    }

    impl Case {
        /// A case whose job has no input.
        pub const fn step(step: &'static str) -> Case {
            Case { step, input: "{}" }
        }
    }

    pub struct Cases {
        /// A step that keeps running until it is stopped: a cancel must end
        /// its job as cancelled within seconds, and the kind must work for
        /// the next job afterwards.
        pub runs_until_stopped: Case,
        /// A step given the value of the secret `CONTRACT_SECRET` whose
        /// output or error would show it: nothing stored of its job may
        /// hold the value. `Err`, with the reason, for a kind that takes no
        /// secret.
        pub reports_a_secret: Result<Case, &'static str>,
        /// A step that fails as a business error: the job must end failed
        /// after one attempt, not be retried.
        pub business_error: Case,
    }
}
