//! The `command` step kind: run a program, hand it the job on stdin, read
//! its answer from stdout.
//!
//! Exit code 0 is success (stdout parsed as JSON becomes the step's output;
//! anything else is kept as text), 75 (`EX_TEMPFAIL`) is a transient failure
//! that is retried, any other code is a failure of the kind the bot declares.
//! `kind` holds the keys a bot file gives it and their reference.

mod kind;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use async_trait::async_trait;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use kind::{CommandConfig, CommandKind};

use crate::config::secrets::redact;
use crate::step::{FailureKind, Step, StepContext, StepError, StepOutcome};

/// Exit code that asks for a retry (`EX_TEMPFAIL` from sysexits.h).
pub const EXIT_TRANSIENT: i32 = 75;

/// Keep at most this much of a command's stderr in an error message.
const STDERR_TAIL: usize = 2000;

#[derive(Debug)]
pub struct CommandStep {
    config: CommandConfig,
    workdir: PathBuf,
}

impl CommandStep {
    pub fn new(config: CommandConfig, bot_dir: &Path) -> Self {
        let workdir = match &config.workdir {
            Some(w) if w.is_absolute() => w.clone(),
            Some(w) => bot_dir.join(w),
            None => bot_dir.to_path_buf(),
        };
        CommandStep { config, workdir }
    }
}

/// Kills the whole process group of a child when dropped, so a timeout, a
/// cancel or a worker shutdown leaves no grandchildren behind.
struct GroupGuard {
    pgid: Option<i32>,
}

impl GroupGuard {
    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            // SAFETY: killpg only sends a signal; a stale group id is harmless.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    }
}

fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// The program's words and environment with their secrets filled in, and
/// every value filled in, to hide it again in what the program reports.
struct Resolved {
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    secrets: Vec<String>,
}

impl CommandStep {
    /// Secrets are resolved per run, so a rotated password is picked up
    /// without a restart.
    fn resolve(&self, ctx: &StepContext) -> Result<Resolved, StepError> {
        let mut secrets = Vec::new();
        let mut resolve = |text: &str| -> Result<String, StepError> {
            let r = ctx
                .secrets
                .resolve(text)
                .map_err(|e| StepError::business(e.to_string()))?;
            secrets.extend(r.values);
            Ok(r.text)
        };
        let argv = self
            .config
            .argv
            .iter()
            .map(|a| resolve(a))
            .collect::<Result<Vec<_>, _>>()?;
        let env = self
            .config
            .env
            .iter()
            .map(|(k, v)| Ok((k.clone(), resolve(v)?)))
            .collect::<Result<BTreeMap<_, _>, StepError>>()?;
        Ok(Resolved { argv, env, secrets })
    }

    /// The process to start: in its own group, in the step's folder, with
    /// the job's identity in its environment, dying with the worker.
    fn command(&self, resolved: &Resolved, ctx: &StepContext) -> Option<tokio::process::Command> {
        let (program, args) = resolved.argv.split_first()?;
        let mut cmd = tokio::process::Command::new(program);
        // A clean environment: what programs need, the step's `env`, the
        // job's identity; not the worker's secrets.
        cmd.args(args)
            .current_dir(&self.workdir)
            .env_clear()
            .envs(crate::config::secrets::child_environment())
            .envs(&resolved.env)
            .env("CLERK_JOB_ID", ctx.job_id.to_string())
            .env("CLERK_ATTEMPT", ctx.attempt.to_string())
            .env("CLERK_BOT", &ctx.bot)
            .env("CLERK_STEP", &ctx.step_name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe. The child dies with the worker
        // (kill -9 included), so a lost lease never leaves a step running on.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        Some(cmd)
    }

    /// What a program that did not succeed means, with the end of what it
    /// said on stderr.
    fn failure(&self, program: &str, status: std::process::ExitStatus, stderr: &str) -> StepError {
        let what = match status.code() {
            Some(code) => format!("`{program}` exited with code {code}"),
            None => {
                use std::os::unix::process::ExitStatusExt;
                format!(
                    "`{program}` was killed by signal {}",
                    status.signal().unwrap_or(0)
                )
            }
        };
        let detail = tail(stderr.trim(), STDERR_TAIL);
        let message = if detail.is_empty() {
            what
        } else {
            format!("{what}: {detail}")
        };
        let kind = match status.code() {
            Some(EXIT_TRANSIENT) => FailureKind::Transient,
            // Killed by a signal (OOM killer, a person): not the document's fault.
            None => FailureKind::Transient,
            Some(_) => self.config.failure,
        };
        StepError {
            kind,
            message,
            artifacts: Vec::new(),
        }
    }
}

#[async_trait]
impl Step for CommandStep {
    fn kind(&self) -> &'static str {
        "command"
    }

    async fn run(&self, ctx: &StepContext) -> Result<StepOutcome, StepError> {
        let resolved = self.resolve(ctx)?;
        let Some(mut cmd) = self.command(&resolved, ctx) else {
            return Err(StepError::business("command step has an empty argv"));
        };
        // Messages name the program as written in the bot file, never with
        // a resolved secret in it.
        let program = self.config.argv.first().map(String::as_str).unwrap_or("");
        let mut child = cmd.spawn().map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::NotFound {
                FailureKind::Business
            } else {
                FailureKind::Transient
            };
            StepError {
                kind,
                message: format!(
                    "cannot start `{program}` in {}: {e}",
                    self.workdir.display()
                ),
                artifacts: Vec::new(),
            }
        })?;
        let mut guard = GroupGuard {
            pgid: child.id().map(|id| id as i32),
        };

        let document = ctx.document().to_string();
        let mut stdin = child.stdin.take();
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let feed = async {
            if let Some(mut s) = stdin.take() {
                // A program that does not read its input closes the pipe early;
                // that is its right, not an error.
                let _ = s.write_all(document.as_bytes()).await;
                let _ = s.shutdown().await;
            }
        };
        let read_out = async {
            let mut buf = Vec::new();
            if let Some(s) = stdout.as_mut() {
                let _ = s.read_to_end(&mut buf).await;
            }
            buf
        };
        let read_err = async {
            let mut buf = Vec::new();
            if let Some(s) = stderr.as_mut() {
                let _ = s.read_to_end(&mut buf).await;
            }
            buf
        };
        let run = async {
            let ((), out, err) = tokio::join!(feed, read_out, read_err);
            let status = child.wait().await;
            (status, out, err)
        };
        let (status, out, err) = tokio::select! {
            r = run => r,
            () = ctx.cancel.cancelled() => {
                return Err(StepError::transient("command was stopped"));
            }
        };
        let status =
            status.map_err(|e| StepError::transient(format!("waiting for `{program}`: {e}")))?;
        // The direct child is gone; a leftover grandchild is the group's and
        // still gets killed with it.
        let stdout = redact(&String::from_utf8_lossy(&out), &resolved.secrets);
        let stderr = redact(&String::from_utf8_lossy(&err), &resolved.secrets);
        if !status.success() {
            return Err(self.failure(program, status, &stderr));
        }
        guard.disarm();
        let trimmed = stdout.trim();
        let output = if trimmed.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(trimmed).unwrap_or_else(|_| Value::String(stdout.clone()))
        };
        Ok(StepOutcome::Done(output))
    }
}
