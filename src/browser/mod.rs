//! The `browser` step: a script of actions run in headless Chromium, for
//! systems that have only web forms.
//!
//! One browser per worker process (`launch`: bound to the worker's life),
//! launched on first use and reused; each job gets a fresh browser context
//! (no cookies or storage shared between jobs), disposed of when the step
//! ends. clerk speaks DevTools to it over a pipe only it holds (`pipe`):
//! the browser listens on no port. The job's page is driven in a session
//! of its own on that pipe (`page`). A browser that died is launched again
//! and the step fails as a transient error, to be retried.
//!
//! Element work (fill, select, click, read, waits) runs as JavaScript in
//! the current document — the page, or the frame a `frame` action chose —
//! so pages built of framesets and iframes work like any other. Every
//! action has a time limit. A failure names the action, its selector and
//! what the page showed, and leaves a screenshot and the page's HTML in
//! `<bot>/artifacts/job-<id>/attempt-<n>/`, listed by `clerk runs show`.

mod actions;
mod kind;
mod launch;
mod page;
mod pipe;
mod print;

pub use kind::{Action, BrowserConfig, BrowserKind};
pub use print::print_to_pdf;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use crate::step::paths::file_for_step;
use crate::step::template::render_in;
use crate::step::{Step, StepContext, StepError, StepOutcome};

#[derive(Debug)]
pub struct BrowserStep {
    config: BrowserConfig,
    bot_dir: PathBuf,
}

impl BrowserStep {
    pub fn new(config: BrowserConfig, bot_dir: &Path) -> BrowserStep {
        BrowserStep {
            config,
            // Evidence paths in errors must lead to the files from anywhere.
            bot_dir: std::path::absolute(bot_dir).unwrap_or_else(|_| bot_dir.to_path_buf()),
        }
    }
}

/// A failed action, with what it was doing.
struct ActionError {
    error: StepError,
    /// Whether the page is worth keeping as evidence.
    page: bool,
}

impl ActionError {
    fn transient(message: String) -> ActionError {
        ActionError {
            error: StepError::transient(message),
            page: true,
        }
    }
    fn business(message: String) -> ActionError {
        ActionError {
            error: StepError::business(message),
            page: true,
        }
    }
}

#[async_trait]
impl Step for BrowserStep {
    fn kind(&self) -> &'static str {
        "browser"
    }

    async fn run(&self, ctx: &StepContext) -> Result<StepOutcome, StepError> {
        let doc = ctx.document();
        // Secret references are resolved in the bot file's own text only;
        // a value from the job (input, a field read off a document) is
        // written as it is, so `${secret:…}` in data stays text.
        let mut script = Vec::with_capacity(self.config.actions.len());
        let mut secret_values = Vec::new();
        for action_written in &self.config.actions {
            let mut action = action_written.clone();
            for (text, place) in action.texts_mut() {
                let mut literal = |part: &str| -> Result<String, String> {
                    let resolved = ctx
                        .secrets
                        .resolve(part)
                        .map_err(|e| format!("in the browser script: {e}"))?;
                    secret_values.extend(resolved.values.iter().cloned());
                    Ok(resolved.text)
                };
                *text = render_in(text, &doc, place, &mut literal).map_err(StepError::business)?;
            }
            if let (Action::Upload { file: written, .. }, Action::Upload { file, .. }) =
                (action_written, &mut action)
            {
                let real = file_for_step(written, file, &self.bot_dir, &ctx.input)
                    .map_err(|e| StepError::business(format!("cannot upload {e}")))?;
                *file = real.display().to_string();
            }
            script.push(action);
        }
        let config = self.config.clone();
        let artifacts = self
            .bot_dir
            .join("artifacts")
            .join(format!("job-{}", ctx.job_id))
            .join(format!("attempt-{}", ctx.attempt));
        let cancel = ctx.cancel.clone();
        let step = ctx.step_name.clone();
        let bot_dir = self.bot_dir.clone();
        let secrets = secret_values.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let place = Place {
                bot_dir: &bot_dir,
                artifacts: &artifacts,
                step: &step,
                secrets: &secrets,
            };
            run_script(&config, &script, &place, &cancel)
        })
        .await
        .map_err(|e| StepError::transient(format!("the browser task failed: {e}")))?;
        // Whatever the page echoed back must not show a secret.
        let hide = |text: String| mask(text, &secret_values);
        match outcome {
            Ok(output) => {
                let text = hide(output.to_string());
                Ok(StepOutcome::Done(
                    serde_json::from_str(&text).unwrap_or(output),
                ))
            }
            Err(mut e) => {
                e.message = hide(e.message);
                Err(e)
            }
        }
    }
}

/// Where a script runs: its bot, its evidence folder, its step, and the
/// secret values that must not reach a kept file.
struct Place<'a> {
    bot_dir: &'a Path,
    artifacts: &'a Path,
    step: &'a str,
    secrets: &'a [String],
}

/// Every secret value in `text` replaced by `***`.
fn mask(mut text: String, secrets: &[String]) -> String {
    for s in secrets {
        if !s.is_empty() {
            text = text.replace(s.as_str(), "***");
        }
    }
    text
}

/// Run the actions in a fresh context of the process's browser.
fn run_script(
    config: &BrowserConfig,
    script: &[Action],
    place: &Place,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Value, StepError> {
    let Place {
        bot_dir,
        artifacts,
        step,
        ..
    } = *place;
    let launched = launch::browser(config.chromium.as_deref())?;
    let session = match launch::Session::open(&launched) {
        Ok(session) => session,
        Err(e) => {
            // A browser that died or stopped answering: start a new one
            // next time, and let the job come back.
            launch::forget(&launched);
            return Err(StepError::transient(format!("the browser is gone: {e}")));
        }
    };
    let network = script.iter().any(|a| matches!(a, Action::WaitIdle { .. }));
    if let Err(e) = session.page.listen(network, config.action_timeout) {
        return Err(StepError::transient(format!(
            "the browser did not open the page: {e}"
        )));
    }
    let mut runner = actions::Runner {
        page: &session.page,
        frames: Vec::new(),
        outputs: Map::new(),
        bot_dir,
        artifacts,
        step,
        default_timeout: config.action_timeout,
        announced: false,
        cancel,
    };
    for (index, action) in script.iter().enumerate() {
        if cancel.is_cancelled() {
            return Err(StepError::transient("the step was stopped"));
        }
        let dialogs_before = session.page.events(|e| e.dialogs.len()).unwrap_or(0);
        let began = Instant::now();
        let ran = runner.run(action);
        tracing::debug!(
            step,
            action = index + 1,
            what = %mask(action.describe(), place.secrets),
            ok = ran.is_ok(),
            took_ms = began.elapsed().as_secs_f64() * 1000.0,
            "browser action"
        );
        match ran {
            Ok(actions::Next::Go) => {}
            Ok(actions::Next::Stop) => break,
            Err(_) if cancel.is_cancelled() => {
                return Err(StepError::transient("the step was stopped"));
            }
            Err(mut e) => {
                if !launch::alive(&launched) {
                    // Chromium died under the step: a new one next time,
                    // and the job comes back.
                    launch::forget(&launched);
                    e.error =
                        StepError::transient(format!("the browser died: {}", e.error.message));
                    e.page = false;
                }
                let what = format!(
                    "action {} of step `{step}` ({}) failed: {}",
                    index + 1,
                    action.describe(),
                    e.error.message
                );
                let (evidence, kept) = if e.page {
                    keep_evidence(&session.page, place, index + 1)
                } else {
                    (String::new(), Vec::new())
                };
                return Err(StepError {
                    kind: e.error.kind,
                    message: format!("{what}{evidence}"),
                    artifacts: kept,
                });
            }
        }
        // A dialog nobody announced is the page refusing something (an
        // alert on a validation error): the booking did not happen.
        let said: Vec<String> = session
            .page
            .events(|e| e.dialogs[dialogs_before..].to_vec())
            .unwrap_or_default();
        if !said.is_empty() && !runner.dialog_was_expected() {
            let (evidence, kept) = keep_evidence(&session.page, place, index + 1);
            let mut error = StepError::business(format!(
                "action {} of step `{step}` ({}): the page said \"{}\"{evidence}",
                index + 1,
                action.describe(),
                said.join(" / ")
            ));
            error.artifacts = kept;
            return Err(error);
        }
    }
    let mut output = runner.outputs;
    let url = session
        .page
        .evaluate("location.href", config.action_timeout)
        .unwrap_or_default();
    output.insert("url".into(), url);
    if let Some(dialogs) = session.page.events(|e| e.dialogs.clone())
        && !dialogs.is_empty()
    {
        output.insert("dialogs".into(), json!(dialogs));
    }
    Ok(Value::Object(output))
}

/// Save a screenshot, the HTML and the console of the page as it is;
/// returns the words to add to the error and the files kept.
fn keep_evidence(
    page: &page::PageConnection,
    place: &Place,
    action: usize,
) -> (String, Vec<PathBuf>) {
    let dir = place.artifacts;
    if std::fs::create_dir_all(dir).is_err() {
        return (String::new(), Vec::new());
    }
    let limit = Duration::from_secs(10);
    let mut kept = Vec::new();
    let shot = dir.join(format!("action-{action}.png"));
    if let Ok(png) = page.screenshot(limit)
        && std::fs::write(&shot, png).is_ok()
    {
        kept.push(shot);
    }
    let html_file = dir.join(format!("action-{action}.html"));
    let html = page
        .evaluate(
            "(document.doctype ? new XMLSerializer().serializeToString(document.doctype) : '') + (document.documentElement ? document.documentElement.outerHTML : '')",
            limit,
        )
        .ok()
        .and_then(|v| v.as_str().map(str::to_string));
    if let Some(html) = html
        && std::fs::write(&html_file, mask(html, place.secrets)).is_ok()
    {
        kept.push(html_file);
    }
    if let Some((console, dialogs)) = page.events(|e| (e.console.clone(), e.dialogs.clone())) {
        let file = dir.join(format!("action-{action}-console.txt"));
        let mut text = console.join("\n");
        for d in &dialogs {
            text.push_str(&format!("\ndialog: {d}"));
        }
        if std::fs::write(&file, mask(text, place.secrets)).is_ok() {
            kept.push(file);
        }
    }
    let shown = actions::visible_text(page)
        .map(|t| {
            let t: String = t.split_whitespace().collect::<Vec<_>>().join(" ");
            let short: String = t.chars().take(300).collect();
            format!("; the page showed: \"{short}\"")
        })
        .unwrap_or_default();
    if kept.is_empty() {
        (shown, kept)
    } else {
        let names: Vec<String> = kept.iter().map(|p| p.display().to_string()).collect();
        (format!("{shown}; kept: {}", names.join(", ")), kept)
    }
}

/// How long a wait polls between looks.
const POLL: Duration = Duration::from_millis(10);

/// Poll `look` until it gives a value or `limit` passes.
fn poll<T>(limit: Duration, mut look: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = look() {
            return Some(v);
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(POLL);
    }
}
