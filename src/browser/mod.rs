//! The `browser` step: a script of actions run in headless Chromium
//! (headless_chrome, over the DevTools protocol), for systems that have
//! only web forms.
//!
//! One browser per worker process, launched on first use and reused; each
//! job gets a fresh browser context (no cookies or storage shared between
//! jobs), closed when the step ends. A browser that died is launched again
//! and the step fails as a transient error, to be retried.
//!
//! Element work (fill, select, click, read, waits) runs as JavaScript in
//! the current document — the page, or the frame a `frame` action chose —
//! so pages built of framesets and iframes work like any other. Every
//! action has a time limit. A failure names the action, its selector and
//! what the page showed, and leaves a screenshot and the page's HTML in
//! `<bot>/artifacts/job-<id>/`.

mod actions;
mod launch;

pub use actions::{Action, BrowserConfig};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use headless_chrome::Tab;
use headless_chrome::protocol::cdp::Page;
use headless_chrome::protocol::cdp::types::Event;
use serde_json::{Map, Value, json};

use crate::step::template::render;
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

/// What the page said in dialogs and its console, as the step saw it.
#[derive(Default)]
struct PageLog {
    dialogs: Vec<String>,
    console: Vec<String>,
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
        // Values are filled in now, secrets last, so a secret never passes
        // through the placeholder resolver's messages.
        let mut script = Vec::with_capacity(self.config.actions.len());
        let mut secret_values = Vec::new();
        for action in &self.config.actions {
            let mut action = action.clone();
            for text in action.texts_mut() {
                let rendered = render(text, &doc).map_err(StepError::business)?;
                let resolved = ctx
                    .secrets
                    .resolve(&rendered)
                    .map_err(|e| StepError::business(format!("in the browser script: {e}")))?;
                secret_values.extend(resolved.values.iter().cloned());
                *text = resolved.text;
            }
            script.push(action);
        }
        let config = self.config.clone();
        let artifacts = self
            .bot_dir
            .join("artifacts")
            .join(format!("job-{}", ctx.job_id));
        let cancel = ctx.cancel.clone();
        let step = ctx.step_name.clone();
        let bot_dir = self.bot_dir.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            run_script(&config, &script, &bot_dir, &artifacts, &step, &cancel)
        })
        .await
        .map_err(|e| StepError::transient(format!("the browser task failed: {e}")))?;
        // Whatever the page echoed back must not show a secret.
        let hide = |mut text: String| {
            for s in &secret_values {
                if !s.is_empty() {
                    text = text.replace(s.as_str(), "***");
                }
            }
            text
        };
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

/// Run the actions in a fresh context of the process's browser.
fn run_script(
    config: &BrowserConfig,
    script: &[Action],
    bot_dir: &Path,
    artifacts: &Path,
    step: &str,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Value, StepError> {
    let browser = launch::browser(config.chromium.as_deref())?;
    let session = match launch::Session::open(&browser) {
        Ok(session) => session,
        Err(e) => {
            // A browser that died or stopped answering: start a new one
            // next time, and let the job come back.
            launch::forget(&browser);
            return Err(StepError::transient(format!("the browser is gone: {e}")));
        }
    };
    let log = Arc::new(Mutex::new(PageLog::default()));
    let expected_dialog: Arc<Mutex<Option<bool>>> = Arc::new(Mutex::new(None));
    {
        let (tab, log, expected) = (session.tab.clone(), log.clone(), expected_dialog.clone());
        let listener = Arc::new(move |event: &Event| match event {
            Event::PageJavascriptDialogOpening(opening) => {
                let accept = expected
                    .lock()
                    .map(|mut e| e.take().unwrap_or(true))
                    .unwrap_or(true);
                if let Ok(mut log) = log.lock() {
                    log.dialogs.push(opening.params.message.clone());
                }
                let dialog = tab.get_dialog();
                let _ = if accept {
                    dialog.accept(None)
                } else {
                    dialog.dismiss()
                };
            }
            Event::RuntimeConsoleAPICalled(called) => {
                let text: Vec<String> = called
                    .params
                    .args
                    .iter()
                    .map(|a| {
                        a.value
                            .as_ref()
                            .map(|v| v.to_string())
                            .or_else(|| a.description.clone())
                            .unwrap_or_default()
                    })
                    .collect();
                if let Ok(mut log) = log.lock() {
                    log.console
                        .push(format!("{:?}: {}", called.params.Type, text.join(" ")));
                }
            }
            _ => {}
        });
        let _ = session.tab.add_event_listener(listener);
        let _ = session.tab.enable_runtime();
    }
    let mut runner = actions::Runner {
        tab: &session.tab,
        frames: Vec::new(),
        outputs: Map::new(),
        bot_dir,
        artifacts,
        step,
        default_timeout: config.action_timeout,
        expected_dialog: &expected_dialog,
        announced: false,
    };
    for (index, action) in script.iter().enumerate() {
        if cancel.is_cancelled() {
            return Err(StepError::transient("the step was stopped"));
        }
        let dialogs_before = log.lock().map(|l| l.dialogs.len()).unwrap_or(0);
        match runner.run(action) {
            Ok(actions::Next::Go) => {}
            Ok(actions::Next::Stop) => break,
            Err(mut e) => {
                if !launch::alive(&browser) {
                    // Chromium died under the step: a new one next time,
                    // and the job comes back.
                    launch::forget(&browser);
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
                let evidence = if e.page {
                    keep_evidence(&session.tab, artifacts, index + 1, &log)
                } else {
                    String::new()
                };
                return Err(StepError {
                    kind: e.error.kind,
                    message: format!("{what}{evidence}"),
                });
            }
        }
        // A dialog nobody announced is the page refusing something (an
        // alert on a validation error): the booking did not happen.
        let said: Vec<String> = log
            .lock()
            .map(|l| l.dialogs[dialogs_before..].to_vec())
            .unwrap_or_default();
        if !said.is_empty() && !runner.dialog_was_expected() {
            let evidence = keep_evidence(&session.tab, artifacts, index + 1, &log);
            return Err(StepError::business(format!(
                "action {} of step `{step}` ({}): the page said \"{}\"{evidence}",
                index + 1,
                action.describe(),
                said.join(" / ")
            )));
        }
    }
    let mut output = runner.outputs;
    output.insert("url".into(), json!(session.tab.get_url()));
    if let Ok(log) = log.lock()
        && !log.dialogs.is_empty()
    {
        output.insert("dialogs".into(), json!(log.dialogs));
    }
    Ok(Value::Object(output))
}

/// Save a screenshot, the HTML and the console of the page as it is;
/// returns the words to add to the error.
fn keep_evidence(tab: &Tab, dir: &Path, action: usize, log: &Mutex<PageLog>) -> String {
    if std::fs::create_dir_all(dir).is_err() {
        return String::new();
    }
    let mut kept = Vec::new();
    let shot = dir.join(format!("action-{action}.png"));
    if let Ok(png) =
        tab.capture_screenshot(Page::CaptureScreenshotFormatOption::Png, None, None, true)
        && std::fs::write(&shot, png).is_ok()
    {
        kept.push(shot.display().to_string());
    }
    let page = dir.join(format!("action-{action}.html"));
    // Not `Tab::get_content`, which panics on a page without a document.
    let html = tab
        .evaluate(
            "(document.doctype ? new XMLSerializer().serializeToString(document.doctype) : '') + (document.documentElement ? document.documentElement.outerHTML : '')",
            false,
        )
        .ok()
        .and_then(|r| r.value)
        .and_then(|v| v.as_str().map(str::to_string));
    if let Some(html) = html
        && std::fs::write(&page, html).is_ok()
    {
        kept.push(page.display().to_string());
    }
    if let Ok(log) = log.lock() {
        let console = dir.join(format!("action-{action}-console.txt"));
        let mut text = log.console.join("\n");
        for d in &log.dialogs {
            text.push_str(&format!("\ndialog: {d}"));
        }
        if std::fs::write(&console, text).is_ok() {
            kept.push(console.display().to_string());
        }
    }
    let shown = actions::visible_text(tab)
        .map(|t| {
            let t: String = t.split_whitespace().collect::<Vec<_>>().join(" ");
            let short: String = t.chars().take(300).collect();
            format!("; the page showed: \"{short}\"")
        })
        .unwrap_or_default();
    if kept.is_empty() {
        shown
    } else {
        format!("{shown}; kept: {}", kept.join(", "))
    }
}

/// How long a wait polls between looks.
const POLL: Duration = Duration::from_millis(50);

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
