//! What a bot file says of a `command` step: its keys, their reference,
//! and how they become a [`CommandStep`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::CommandStep;
use crate::config::{Problem, TableReader, one_of, references};
use crate::step::{FailureKind, Step, StepConfig, StepKind};

/// Config of a `command` step.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandConfig {
    /// Program and arguments; no shell is involved unless you name one.
    pub argv: Vec<String>,
    /// Extra environment variables; the worker's own environment is kept.
    pub env: BTreeMap<String, String>,
    /// Working directory, relative to the bot's folder. Default: the bot's folder.
    pub workdir: Option<PathBuf>,
    /// What a non-zero exit other than 75 means. Default: transient.
    pub failure: FailureKind,
}

impl StepConfig for CommandConfig {
    fn build(&self, bot_dir: &Path) -> Result<Arc<dyn Step>, String> {
        Ok(Arc::new(CommandStep::new(self.clone(), bot_dir)))
    }
}

/// The `command` kind, as the registry lists it.
pub struct CommandKind;

const REFERENCE: &str = r#"Runs a program. No shell is involved unless you name one.

```toml
[[steps]]
name = "scan"
kind = "command"
argv = ["python3", "scan.py"]
env = { LANG = "C.UTF-8", API_KEY = "${secret:API_KEY}" }
workdir = "."
failure = "business"
```

- `argv`: required, a non-empty array of strings: the program and its
  arguments. `${secret:NAME}` references are filled in when the step runs.
- `env`: optional table of strings; environment variables, with
  `${secret:NAME}` references filled in. The program starts with a clean
  environment: of the worker's, only `PATH`, `HOME`, `USER`, `LOGNAME`,
  `SHELL`, `LANG`, `LC_*`, `TZ`, `TMPDIR`, `TERM` and `PYENV_ROOT` pass,
  never the rest, where secrets exported for clerk live; give a step a
  secret here.
- `workdir`: optional path, relative to the bot's folder. Default: the
  bot's folder.
- `failure`: `"transient"` (default) or `"business"`: what a non-zero exit
  other than 75 means.

The program runs in its own process group. On stdin it gets the job as
JSON: `{"job": {"id", "attempt", "bot", "step"}, "input": {…}, "steps":
{<earlier step>: <its output>, …}}`. The environment also has
`CLERK_JOB_ID`, `CLERK_ATTEMPT`, `CLERK_BOT` and `CLERK_STEP`. What it
prints on stdout becomes the step's output (parsed as JSON when it is
JSON, else kept as text). Exit code 0 is success; **75** (`EX_TEMPFAIL`) is
a transient failure that is retried; any other code is a failure of the
kind `failure` declares (`transient` retries, `business` fails the job at
once). A program killed by a signal counts as transient. The last 2,000
characters of stderr are kept as the error. Every secret value the
program was given is replaced by `***` in its output and error before they
are stored or logged. On a timeout, cancel or shutdown the whole process
group is killed, and if the worker itself dies (`kill -9`) the program is
killed with it.
"#;

impl StepKind for CommandKind {
    fn name(&self) -> &'static str {
        "command"
    }

    fn reference(&self) -> &'static str {
        REFERENCE
    }

    fn read(&self, s: &mut TableReader<'_, '_>) -> Option<Arc<dyn StepConfig>> {
        let argv = s.required_with("argv", |argv: Vec<String>| {
            if argv.is_empty() {
                Err(Problem::new("must not be empty".into())
                    .hint("give the program and its arguments, e.g. [\"./fetch.sh\"]"))
            } else {
                argv.iter().try_for_each(|a| references(a))?;
                Ok(argv)
            }
        });
        let env = s
            .optional_with("env", |env: BTreeMap<String, String>| {
                env.values().try_for_each(|v| references(v))?;
                Ok(env)
            })
            .unwrap_or_default();
        let workdir = s.optional::<String>("workdir").map(PathBuf::from);
        let failure = s
            .optional_with("failure", |f: String| {
                one_of(
                    &f,
                    &[
                        ("transient", FailureKind::Transient),
                        ("business", FailureKind::Business),
                    ],
                )
            })
            .unwrap_or(FailureKind::Transient);
        Some(Arc::new(CommandConfig {
            argv: argv?,
            env,
            workdir,
            failure,
        }))
    }

    #[cfg(test)]
    fn contract(&self) -> crate::step::kind::contract::Cases {
        use crate::step::kind::contract::{Case, Cases};
        Cases {
            runs_until_stopped: Case::step(
                r#"kind = "command"
argv = ["sleep", "600"]"#,
            ),
            reports_a_secret: Ok(Case::step(
                r#"kind = "command"
argv = ["sh", "-c", "echo \"said $0\"; echo \"and $0\" >&2; exit 3", "${secret:CONTRACT_SECRET}"]"#,
            )),
            business_error: Case::step(
                r#"kind = "command"
argv = ["false"]
failure = "business""#,
            ),
        }
    }
}
