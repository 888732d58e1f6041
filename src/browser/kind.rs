//! What a bot file says of a `browser` step: its script of actions, their
//! reference, and how they become a [`BrowserStep`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::BrowserStep;
use crate::config::{Problem, TableReader, one_of, positive, valid_name};
use crate::step::template::Place;
use crate::step::{Step, StepConfig, StepKind};

/// A `browser` step as written in `bot.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct BrowserConfig {
    pub actions: Vec<Action>,
    /// Time limit of an action that sets none.
    pub action_timeout: Duration,
    /// The browser to start; found on its own when absent.
    pub chromium: Option<PathBuf>,
}

/// One action. Texts may hold `{{…}}` placeholders and `${secret:NAME}`.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Goto {
        url: String,
        timeout: Option<Duration>,
    },
    Fill {
        selector: String,
        value: String,
        timeout: Option<Duration>,
    },
    Select {
        selector: String,
        value: String,
        timeout: Option<Duration>,
    },
    Check {
        selector: String,
        checked: bool,
        timeout: Option<Duration>,
    },
    Click {
        selector: String,
        timeout: Option<Duration>,
    },
    Press {
        key: String,
    },
    WaitFor {
        selector: String,
        timeout: Option<Duration>,
    },
    WaitText {
        text: String,
        timeout: Option<Duration>,
    },
    /// Until the page (or the frame worked in) shows an address containing
    /// `part` and has finished loading: the end of a navigation.
    WaitUrl {
        part: String,
        timeout: Option<Duration>,
    },
    /// Until no request has been in flight for `quiet`.
    WaitIdle {
        quiet: Duration,
        timeout: Option<Duration>,
    },
    /// Put a file (the job's document, say) into a file input.
    Upload {
        selector: String,
        file: String,
        timeout: Option<Duration>,
    },
    /// Work inside this frame or iframe of the current document from now on.
    Frame {
        selector: String,
        timeout: Option<Duration>,
    },
    /// Back to the page itself.
    Top,
    /// The next dialog is expected, and accepted (or dismissed).
    Dialog {
        accept: bool,
    },
    Read {
        selector: String,
        into: String,
        attribute: Option<String>,
        timeout: Option<Duration>,
    },
    AssertText {
        text: String,
        timeout: Option<Duration>,
    },
    Screenshot {
        name: String,
    },
    /// Open `url`; if `found` is there, the work is done already: the step
    /// ends, its output saying so (with the found element's text).
    Guard {
        url: String,
        found: String,
        into: Option<String>,
        timeout: Option<Duration>,
    },
}

impl Action {
    /// The texts placeholders and secrets are filled into, with where
    /// each goes: values placed in an address are percent-encoded.
    pub(super) fn texts_mut(&mut self) -> Vec<(&mut String, Place)> {
        use Place::{Address, Plain};
        match self {
            Action::Goto { url, .. } => vec![(url, Address)],
            Action::Fill {
                selector, value, ..
            }
            | Action::Select {
                selector, value, ..
            } => {
                vec![(selector, Plain), (value, Plain)]
            }
            Action::WaitText { text, .. } | Action::AssertText { text, .. } => vec![(text, Plain)],
            Action::WaitUrl { part, .. } => vec![(part, Address)],
            Action::Upload { selector, file, .. } => vec![(selector, Plain), (file, Plain)],
            Action::Guard { url, found, .. } => vec![(url, Address), (found, Plain)],
            Action::Read { selector, .. }
            | Action::Click { selector, .. }
            | Action::Check { selector, .. }
            | Action::WaitFor { selector, .. }
            | Action::Frame { selector, .. } => vec![(selector, Plain)],
            Action::Press { .. }
            | Action::WaitIdle { .. }
            | Action::Top
            | Action::Dialog { .. }
            | Action::Screenshot { .. } => Vec::new(),
        }
    }

    /// The action in a few words, for errors: never a filled-in value.
    pub fn describe(&self) -> String {
        match self {
            Action::Goto { url, .. } => format!("goto {url}"),
            Action::Fill { selector, .. } => format!("fill `{selector}`"),
            Action::Select { selector, .. } => format!("select in `{selector}`"),
            Action::Check { selector, .. } => format!("check `{selector}`"),
            Action::Click { selector, .. } => format!("click `{selector}`"),
            Action::Press { key } => format!("press {key}"),
            Action::WaitFor { selector, .. } => format!("wait for `{selector}`"),
            Action::WaitText { text, .. } => format!("wait for the text \"{text}\""),
            Action::WaitUrl { part, .. } => format!("wait for an address with \"{part}\""),
            Action::WaitIdle { quiet, .. } => format!(
                "wait for the network to be idle for {}",
                humantime::format_duration(*quiet)
            ),
            Action::Upload { selector, .. } => format!("upload into `{selector}`"),
            Action::Frame { selector, .. } => format!("frame `{selector}`"),
            Action::Top => "top".into(),
            Action::Dialog { accept } => {
                format!("dialog {}", if *accept { "accept" } else { "dismiss" })
            }
            Action::Read { selector, .. } => format!("read `{selector}`"),
            Action::AssertText { text, .. } => format!("assert the text \"{text}\""),
            Action::Screenshot { name } => format!("screenshot {name}"),
            Action::Guard { url, found, .. } => format!("guard {url} for `{found}`"),
        }
    }
}

impl StepConfig for BrowserConfig {
    fn build(&self, bot_dir: &Path) -> Result<Arc<dyn Step>, String> {
        Ok(Arc::new(BrowserStep::new(self.clone(), bot_dir)))
    }
}

/// The `browser` kind, as the registry lists it.
pub struct BrowserKind;

const REFERENCE: &str = r##"Runs a script of actions in headless Chromium, for systems that have
only web forms.

```toml
[[steps]]
name = "erp"
kind = "browser"
action_timeout = "15s"
actions = [
  { goto = "http://erp.internal/login" },
  { fill = "#user", value = "booker" },
  { fill = "#password", value = "${secret:ERP_PASSWORD}" },
  { click = "#login" },
  { wait_url = "/app" },
  # Booked already? Then the step ends here, its output saying so.
  { guard = "http://erp.internal/search?number={{invoice_number}}", found = "#results .booking", into = "booking" },
  { goto = "http://erp.internal/app" },
  { frame = "#main" },
  { select = "#vendor", value = "{{vendor}}" },
  { fill = "#date", value = "{{invoice_date | date: \"%d.%m.%Y\"}}" },
  { upload = "#scan", file = "{{input.file}}" },
  { click = "#save" },
  { wait_for = "#booking-number", timeout = "30s" },
  { read = "#booking-number", into = "booking" },
]
```

- `actions`: required, a non-empty array of actions, run in order. Each
  action is a table with one verb (below) and its keys; every action but
  `press`, `top`, `dialog` and `screenshot` takes `timeout`.
- `action_timeout`: duration > 0, default `"10s"`: the limit of an action
  that sets no `timeout`.
- `chromium`: optional path of the browser to start. Default: `chromium`,
  `chromium-browser` or `google-chrome`, whichever is found first.

| action | does |
|---|---|
| `goto = URL` | open a page and wait until a new document has loaded |
| `fill = SEL, value = …` | type a value into a field |
| `select = SEL, value = …` | choose an option by value or by visible text |
| `check = SEL` (`checked = false`) | tick (or clear) a checkbox |
| `click = SEL` | click an element |
| `press = KEY` | press Enter, Tab, Escape, Backspace, Space, an arrow or one character |
| `wait_for = SEL` | until the element is there |
| `wait_text = TEXT` | until the text is shown |
| `wait_url = PART` | until a new page whose address contains PART has loaded (the end of a navigation) |
| `wait_idle = "500ms"` | until no request has been open for that long |
| `upload = SEL, file = PATH` | put a file into a file input (`file = "{{input.file}}"`: the job's document); a path with placeholders must lead into the bot's folder or be the job's document |
| `frame = SEL` / `top = true` | work inside a frame or iframe from now on / back to the page |
| `dialog = "accept"` or `"dismiss"` | how to answer the next `alert()` or `confirm()` |
| `read = SEL, into = NAME` (`attribute = …`) | the element's text, or an attribute, into the step's output |
| `assert_text = TEXT` | fail the job unless the text is shown |
| `screenshot = NAME` | keep a PNG of the page |
| `guard = URL, found = SEL` (`into = NAME`) | open URL; if SEL is there the work is done: the step ends, saying so |

Values take `{{…}}` placeholders (see *Placeholders* below) and
`${secret:NAME}`; secrets are filled in last and replaced by `***` in
anything the step reports and in the HTML and console it keeps. Chromium
runs headless, once per worker process, with a fresh browser context (no
cookies shared) for every job, and dies with its worker, even by `kill -9`.
A failure names the action, its selector and what the page showed, and
keeps a screenshot, the HTML and the console log under
`<bot>/artifacts/job-<id>/attempt-<n>/`; `clerk runs show` lists them under
the failed step. A page answered with HTTP 5xx, a network error or a time
limit is a transient error (retried); an unexpected `alert()` (a form
refusing its input), HTTP 4xx or a failed `assert_text` fails the job. A
browser that died is started again for the next attempt.
"##;

impl StepKind for BrowserKind {
    fn name(&self) -> &'static str {
        "browser"
    }

    /// The chromium the steps would start answers `--version`.
    fn available(&self) -> Result<(), String> {
        let path = super::launch::executable(None).map_err(|e| e.message)?;
        let mut child = std::process::Command::new(&path)
            .arg("--version")
            // As when it browses: what it needs to run, not the worker's
            // secrets.
            .env_clear()
            .envs(crate::config::secrets::child_environment())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", path.display()))?;
        let started = std::time::Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    return Err(format!("{} --version failed ({status})", path.display()));
                }
                Ok(None) if started.elapsed() < std::time::Duration::from_secs(20) => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Ok(None) | Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("{} --version did not answer", path.display()));
                }
            }
        }
    }

    fn reference(&self) -> &'static str {
        REFERENCE
    }

    fn read(&self, s: &mut TableReader<'_, '_>) -> Option<Arc<dyn StepConfig>> {
        read_browser(s).map(|c| Arc::new(c) as Arc<dyn StepConfig>)
    }

    #[cfg(test)]
    fn contract(&self) -> crate::step::kind::contract::Cases {
        use crate::step::kind::contract::{Case, Cases};
        Cases {
            runs_until_stopped: Case::step(
                r##"kind = "browser"
actions = [
  { goto = "data:text/html,<p>a page without what is waited for</p>" },
  { wait_for = "#never", timeout = "10m" },
]"##,
            ),
            // The page shows the secret: it is read into the output, and
            // the failed assertion quotes the page in its error.
            reports_a_secret: Ok(Case::step(
                r##"kind = "browser"
actions = [
  { goto = "data:text/html,<p>${secret:CONTRACT_SECRET}</p>" },
  { read = "p", into = "said" },
  { assert_text = "a text the page does not show", timeout = "1s" },
]"##,
            )),
            business_error: Case::step(
                r##"kind = "browser"
actions = [
  { goto = "data:text/html,<p>nothing to see</p>" },
  { assert_text = "a text the page does not show", timeout = "1s" },
]"##,
            ),
        }
    }
}

/// The verbs a browser action may start with; each action has one.
const BROWSER_VERBS: &[&str] = &[
    "goto",
    "fill",
    "select",
    "check",
    "click",
    "press",
    "wait_for",
    "wait_text",
    "wait_url",
    "wait_idle",
    "upload",
    "frame",
    "top",
    "dialog",
    "read",
    "assert_text",
    "screenshot",
    "guard",
];

fn read_browser(s: &mut TableReader) -> Option<BrowserConfig> {
    let action_timeout = s.optional_or("action_timeout", Duration::from_secs(10), positive);
    let chromium = s.optional::<String>("chromium").map(PathBuf::from);
    let readers = match s.array_of_tables("actions", "action") {
        Some(r) if !r.is_empty() => r,
        Some(_) | None => {
            s.reject(
                "actions",
                "a browser step needs `actions`, e.g. [{ goto = \"http://…\" }]",
            );
            return None;
        }
    };
    let mut actions = Vec::new();
    let mut ok = true;
    for r in readers {
        match read_action(r) {
            Some(a) => actions.push(a),
            None => ok = false,
        }
    }
    let action_timeout = action_timeout?;
    ok.then_some(BrowserConfig {
        actions,
        action_timeout,
        chromium,
    })
}

fn read_action(mut r: TableReader) -> Option<Action> {
    let verbs: Vec<&str> = BROWSER_VERBS.iter().copied().filter(|v| r.has(v)).collect();
    let [verb] = verbs.as_slice() else {
        let at = r.start();
        let message = if verbs.is_empty() {
            format!("an action needs one of {}", BROWSER_VERBS.join(", "))
        } else {
            format!("an action has one verb, found {}", verbs.join(" and "))
        };
        r.sink().error(at, message, None);
        return None;
    };
    let timeout = r.optional_with("timeout", positive);
    let text = |r: &mut TableReader, key: &'static str| {
        r.required_with(key, |t: String| Ok::<_, Problem>(t))
    };
    let action = match *verb {
        "goto" => Action::Goto {
            url: text(&mut r, "goto")?,
            timeout,
        },
        "fill" => Action::Fill {
            selector: text(&mut r, "fill")?,
            value: text(&mut r, "value")?,
            timeout,
        },
        "select" => Action::Select {
            selector: text(&mut r, "select")?,
            value: text(&mut r, "value")?,
            timeout,
        },
        "check" => Action::Check {
            selector: text(&mut r, "check")?,
            checked: r.optional::<bool>("checked").unwrap_or(true),
            timeout,
        },
        "click" => Action::Click {
            selector: text(&mut r, "click")?,
            timeout,
        },
        "press" => Action::Press {
            key: text(&mut r, "press")?,
        },
        "wait_for" => Action::WaitFor {
            selector: text(&mut r, "wait_for")?,
            timeout,
        },
        "wait_text" => Action::WaitText {
            text: text(&mut r, "wait_text")?,
            timeout,
        },
        "wait_url" => Action::WaitUrl {
            part: text(&mut r, "wait_url")?,
            timeout,
        },
        "wait_idle" => Action::WaitIdle {
            quiet: r.required_with("wait_idle", positive)?,
            timeout,
        },
        "upload" => Action::Upload {
            selector: text(&mut r, "upload")?,
            file: text(&mut r, "file")?,
            timeout,
        },
        "frame" => Action::Frame {
            selector: text(&mut r, "frame")?,
            timeout,
        },
        "top" => {
            r.optional::<bool>("top");
            Action::Top
        }
        "dialog" => Action::Dialog {
            accept: r.required_with("dialog", |d: String| {
                one_of(&d, &[("accept", true), ("dismiss", false)])
            })?,
        },
        "read" => Action::Read {
            selector: text(&mut r, "read")?,
            into: r.required_with("into", valid_name)?,
            attribute: r.optional::<String>("attribute"),
            timeout,
        },
        "assert_text" => Action::AssertText {
            text: text(&mut r, "assert_text")?,
            timeout,
        },
        "screenshot" => Action::Screenshot {
            name: r.required_with("screenshot", valid_name)?,
        },
        _ => Action::Guard {
            url: text(&mut r, "guard")?,
            found: text(&mut r, "found")?,
            into: r.optional_with("into", valid_name),
            timeout,
        },
    };
    r.finish();
    Some(action)
}
