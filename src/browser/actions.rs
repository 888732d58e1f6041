//! The actions of a browser script and how each runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::page::PageConnection;
use super::{ActionError, poll};

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
    /// The texts placeholders and secrets are filled into.
    pub(super) fn texts_mut(&mut self) -> Vec<&mut String> {
        match self {
            Action::Goto { url, .. } => vec![url],
            Action::Fill {
                selector, value, ..
            }
            | Action::Select {
                selector, value, ..
            } => {
                vec![selector, value]
            }
            Action::WaitText { text, .. } | Action::AssertText { text, .. } => vec![text],
            Action::WaitUrl { part, .. } => vec![part],
            Action::Upload { selector, file, .. } => vec![selector, file],
            Action::Guard { url, found, .. } => vec![url, found],
            Action::Read { selector, .. }
            | Action::Click { selector, .. }
            | Action::Check { selector, .. }
            | Action::WaitFor { selector, .. }
            | Action::Frame { selector, .. } => vec![selector],
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

pub(super) enum Next {
    Go,
    /// The guard found the work done: skip the rest.
    Stop,
}

pub(super) struct Runner<'a> {
    /// clerk's connection to the job's page.
    pub page: &'a PageConnection,
    /// Selectors of the frames entered, outermost first.
    pub frames: Vec<String>,
    pub outputs: Map<String, Value>,
    pub bot_dir: &'a Path,
    pub artifacts: &'a Path,
    pub step: &'a str,
    pub default_timeout: Duration,
    /// A `dialog` action announced the next dialog.
    pub announced: bool,
}

/// A JavaScript string literal.
fn js(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

/// What an element script found.
enum Found {
    Value(Value),
    NoFrame,
    NoElement,
    /// The document is an HTTP error page (4xx or 5xx).
    ServerError(u64),
    Other(String),
}

impl Runner<'_> {
    fn limit(&self, timeout: &Option<Duration>) -> Duration {
        timeout.unwrap_or(self.default_timeout)
    }

    /// The current document, as an expression.
    fn document(&self) -> String {
        self.frames.iter().fold("document".to_string(), |doc, frame| {
            format!(
                "((d) => {{ const f = d && d.querySelector({}); return f ? f.contentDocument : null; }})({doc})",
                js(frame)
            )
        })
    }

    /// Run `body` with `d` the current document and `el` the element at
    /// `selector`; `body` returns a JSON value.
    fn on_element(&self, selector: &str, body: &str) -> Found {
        let script = format!(
            "(() => {{ try {{ const d = {doc}; if (!d) return JSON.stringify({{frame: false}});
               const nav = d.defaultView && d.defaultView.performance.getEntriesByType('navigation')[0];
               if (nav && nav.responseStatus >= 400) return JSON.stringify({{http: nav.responseStatus}});
               const el = d.querySelector({sel}); if (!el) return JSON.stringify({{element: false}});
               return JSON.stringify({{value: (() => {{ {body} }})()}});
             }} catch (e) {{ return JSON.stringify({{error: String(e)}}); }} }})()",
            doc = self.document(),
            sel = js(selector),
        );
        self.evaluate(&script)
    }

    /// How long one script may take to answer.
    fn script_limit(&self) -> Duration {
        self.default_timeout.max(Duration::from_secs(5))
    }

    fn evaluate(&self, script: &str) -> Found {
        let value = match self.page.evaluate(script, self.script_limit()) {
            Ok(v) => v,
            // The document went away under the script (a navigation).
            Err(e) => return Found::Other(e.to_string()),
        };
        let text = value.as_str().unwrap_or("{}");
        let parsed: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        if let Some(status) = parsed.get("http").and_then(Value::as_u64) {
            Found::ServerError(status)
        } else if parsed.get("frame").is_some() {
            Found::NoFrame
        } else if parsed.get("element").is_some() {
            Found::NoElement
        } else if let Some(e) = parsed.get("error").and_then(Value::as_str) {
            Found::Other(e.to_string())
        } else {
            Found::Value(parsed.get("value").cloned().unwrap_or(Value::Null))
        }
    }

    /// Wait for the element, then run `body` on it.
    fn act(
        &self,
        selector: &str,
        timeout: &Option<Duration>,
        body: &str,
    ) -> Result<Value, ActionError> {
        let limit = self.limit(timeout);
        let mut last = Found::NoElement;
        let mut server_error = None;
        let done = poll(limit, || match self.on_element(selector, body) {
            Found::Value(v) => Some(v),
            // No use waiting on an error page.
            Found::ServerError(status) => {
                server_error = Some(status);
                Some(Value::Null)
            }
            other => {
                last = other;
                None
            }
        });
        // An error page: 5xx is the server's trouble (retried), 4xx is the
        // server refusing what was sent (a form it rejected).
        if let Some(status) = server_error {
            let message = format!("the server answered HTTP {status}");
            return Err(if status >= 500 {
                ActionError::transient(message)
            } else {
                ActionError::business(message)
            });
        }
        done.ok_or_else(|| {
            let why = match &last {
                Found::NoFrame => format!(
                    "the frame `{}` is not there",
                    self.frames.last().map(String::as_str).unwrap_or("")
                ),
                Found::Other(e) => format!("the page failed: {e}"),
                _ => format!("no element matches `{selector}`"),
            };
            ActionError::transient(format!("{why} after {}", humantime::format_duration(limit)))
        })
    }

    fn text_present(&self, text: &str) -> bool {
        let script = format!(
            "(() => {{ try {{ const d = {doc}; return JSON.stringify({{value: !!(d && d.body && d.body.innerText.includes({t}))}}); }}
               catch (e) {{ return JSON.stringify({{error: String(e)}}); }} }})()",
            doc = self.document(),
            t = js(text)
        );
        matches!(self.evaluate(&script), Found::Value(Value::Bool(true)))
    }

    /// Whether the dialog that came was announced by a `dialog` action;
    /// the announcement is used up.
    pub(super) fn dialog_was_expected(&mut self) -> bool {
        std::mem::take(&mut self.announced)
    }

    /// Set the file of a file input through the DevTools protocol (a page
    /// script may not choose files).
    fn upload(
        &self,
        selector: &str,
        file: &str,
        timeout: &Option<Duration>,
    ) -> Result<(), ActionError> {
        let path = self.bot_dir.join(file);
        if !path.is_file() {
            return Err(ActionError::business(format!(
                "there is no file {} to upload",
                path.display()
            )));
        }
        let path = std::path::absolute(&path).unwrap_or(path);
        let kind = self.act(
            selector,
            timeout,
            "return el.tagName + ':' + (el.type || '');",
        )?;
        if kind.as_str() != Some("INPUT:file") {
            return Err(ActionError::business(format!(
                "`{selector}` is not a file input (it is {kind})"
            )));
        }
        let element = self
            .page
            .object(
                &format!("{}.querySelector({})", self.document(), js(selector)),
                self.script_limit(),
            )
            .ok()
            .flatten()
            .ok_or_else(|| {
                ActionError::transient(format!("`{selector}` went away before the upload"))
            })?;
        self.page
            .call(
                "DOM.setFileInputFiles",
                json!({ "files": [path.display().to_string()], "objectId": element }),
                self.script_limit(),
            )
            .map_err(|e| ActionError::transient(format!("the upload failed: {e}")))?;
        Ok(())
    }

    fn goto(&self, url: &str, timeout: &Option<Duration>) -> Result<(), ActionError> {
        let limit = self.limit(timeout);
        // Each document has its own time origin: the new one has loaded
        // when the time origin has changed and the document is complete.
        const STATE: &str =
            "JSON.stringify([document.readyState, location.href, performance.timeOrigin])";
        let state = |page: &PageConnection| -> Option<(String, String, f64)> {
            let text = page.evaluate(STATE, limit).ok()?;
            let v: Value = serde_json::from_str(text.as_str()?).ok()?;
            Some((
                v[0].as_str()?.to_string(),
                v[1].as_str()?.to_string(),
                v[2].as_f64()?,
            ))
        };
        let before = state(self.page).map(|s| s.2);
        // Page.navigate answers once the new document is on its way (or
        // with the network error); then the document must finish loading.
        let navigated = self
            .page
            .call("Page.navigate", json!({ "url": url }), limit)
            .map_err(|e| ActionError::transient(format!("the page did not load: {e}")))?;
        if let Some(error) = navigated.get("errorText").and_then(Value::as_str) {
            return Err(ActionError::transient(format!(
                "the page did not load: {error}"
            )));
        }
        let loaded = poll(limit, || {
            let (ready, href, origin) = state(self.page)?;
            let new = before != Some(origin) || href == url;
            (ready == "complete" && href != "about:blank" && new).then_some(())
        });
        if loaded.is_none() {
            return Err(ActionError::transient(format!(
                "the page did not finish loading within {}",
                humantime::format_duration(limit)
            )));
        }
        let status = self
            .page
            .evaluate(
                "(() => { const n = performance.getEntriesByType('navigation')[0]; return n ? n.responseStatus : 0; })()",
                limit,
            )
            .ok()
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        match status {
            500.. => Err(ActionError::transient(format!(
                "the server answered HTTP {status}"
            ))),
            400..500 => Err(ActionError::business(format!(
                "the server answered HTTP {status}"
            ))),
            _ => Ok(()),
        }
    }

    pub(super) fn run(&mut self, action: &Action) -> Result<Next, ActionError> {
        match action {
            Action::Goto { url, timeout } => {
                self.frames.clear();
                self.goto(url, timeout)?;
            }
            Action::Fill {
                selector,
                value,
                timeout,
            } => {
                self.act(
                    selector,
                    timeout,
                    &format!(
                        "el.focus(); el.value = {v};
                         el.dispatchEvent(new Event('input', {{bubbles: true}}));
                         el.dispatchEvent(new Event('change', {{bubbles: true}})); return true;",
                        v = js(value)
                    ),
                )?;
            }
            Action::Select {
                selector,
                value,
                timeout,
            } => {
                let got = self.act(
                    selector,
                    timeout,
                    &format!(
                        "const want = {v}; const o = Array.from(el.options || []).find(o => o.value === want || o.text.trim() === want);
                         if (!o) return {{missing: Array.from(el.options || []).map(o => o.text.trim())}};
                         el.value = o.value; el.dispatchEvent(new Event('change', {{bubbles: true}})); return true;",
                        v = js(value)
                    ),
                )?;
                if let Some(options) = got.get("missing") {
                    return Err(ActionError::business(format!(
                        "`{selector}` has no option \"{value}\"; it has {options}"
                    )));
                }
            }
            Action::Check {
                selector,
                checked,
                timeout,
            } => {
                self.act(
                    selector,
                    timeout,
                    &format!(
                        "el.checked = {checked}; el.dispatchEvent(new Event('change', {{bubbles: true}})); return true;"
                    ),
                )?;
            }
            Action::Click { selector, timeout } => {
                self.act(selector, timeout, "el.click(); return true;")?;
            }
            Action::Press { key } => {
                self.page
                    .press(key, self.script_limit())
                    .map_err(|e| ActionError::business(format!("cannot press {key}: {e}")))?;
            }
            Action::WaitFor { selector, timeout } => {
                self.act(selector, timeout, "return true;")?;
            }
            Action::WaitText { text, timeout } | Action::AssertText { text, timeout } => {
                let limit = self.limit(timeout);
                if poll(limit, || self.text_present(text).then_some(())).is_none() {
                    let message = format!(
                        "the text \"{text}\" did not appear within {}",
                        humantime::format_duration(limit)
                    );
                    return Err(if matches!(action, Action::AssertText { .. }) {
                        ActionError::business(message)
                    } else {
                        ActionError::transient(message)
                    });
                }
            }
            Action::WaitUrl { part, timeout } => {
                let limit = self.limit(timeout);
                let script = format!(
                    "(() => {{ try {{ const d = {doc}; return JSON.stringify({{value: !!d && d.readyState === 'complete' && d.location.href.includes({p})}}); }}
                       catch (e) {{ return JSON.stringify({{error: String(e)}}); }} }})()",
                    doc = self.document(),
                    p = js(part)
                );
                let arrived = poll(limit, || {
                    matches!(self.evaluate(&script), Found::Value(Value::Bool(true))).then_some(())
                });
                if arrived.is_none() {
                    let at = self
                        .evaluate(&format!(
                            "(() => {{ const d = {}; return JSON.stringify({{value: d ? d.location.href : ''}}); }})()",
                            self.document()
                        ));
                    let at = match at {
                        Found::Value(Value::String(url)) => format!(" (the page is at {url})"),
                        _ => String::new(),
                    };
                    return Err(ActionError::transient(format!(
                        "no page with \"{part}\" in its address loaded within {}{at}",
                        humantime::format_duration(limit)
                    )));
                }
            }
            Action::WaitIdle { quiet, timeout } => {
                let limit = self.limit(timeout);
                let idle = poll(limit, || {
                    // A call reads the events that came meanwhile.
                    let _ = self.page.evaluate("0", self.script_limit());
                    self.page
                        .events(|e| e.requests.is_empty() && e.last_request.elapsed() >= *quiet)
                        .unwrap_or(false)
                        .then_some(())
                });
                if idle.is_none() {
                    let busy = self.page.events(|e| e.requests.len()).unwrap_or(0);
                    return Err(ActionError::transient(format!(
                        "the network was not idle within {} ({busy} request(s) still open)",
                        humantime::format_duration(limit)
                    )));
                }
            }
            Action::Upload {
                selector,
                file,
                timeout,
            } => self.upload(selector, file, timeout)?,
            Action::Frame { selector, timeout } => {
                // The frame's own document must be there to work in.
                self.act(selector, timeout, "return !!el.contentDocument;")
                    .and_then(|ok| {
                        if ok == Value::Bool(true) {
                            Ok(())
                        } else {
                            Err(ActionError::business(format!(
                                "`{selector}` is not a frame of this site"
                            )))
                        }
                    })?;
                self.frames.push(selector.clone());
            }
            Action::Top => self.frames.clear(),
            Action::Dialog { accept } => {
                self.page.events(|e| e.next_dialog = Some(*accept));
                self.announced = true;
            }
            Action::Read {
                selector,
                into,
                attribute,
                timeout,
            } => {
                let body = match attribute {
                    Some(a) => format!("return el.getAttribute({});", js(a)),
                    None => "return ('value' in el && el.tagName !== 'LI' ? el.value : el.innerText).trim();".into(),
                };
                let value = self.act(selector, timeout, &body)?;
                self.outputs.insert(into.clone(), value);
            }
            Action::Screenshot { name } => {
                let png = self
                    .page
                    .screenshot(self.script_limit())
                    .map_err(|e| ActionError::transient(format!("no screenshot: {e}")))?;
                std::fs::create_dir_all(self.artifacts)
                    .and_then(|()| std::fs::write(self.artifacts.join(format!("{name}.png")), png))
                    .map_err(|e| ActionError {
                        error: crate::step::StepError::transient(format!(
                            "cannot keep the screenshot: {e}"
                        )),
                        page: false,
                    })?;
                let path = self.artifacts.join(format!("{name}.png"));
                let list = self
                    .outputs
                    .entry("screenshots")
                    .or_insert_with(|| json!([]));
                if let Some(list) = list.as_array_mut() {
                    list.push(json!(path.strip_prefix(self.bot_dir).unwrap_or(&path)));
                }
            }
            Action::Guard {
                url,
                found,
                into,
                timeout,
            } => {
                self.frames.clear();
                self.goto(url, timeout)?;
                if let Found::Value(text) =
                    self.on_element(found, "return (el.innerText || '').trim();")
                {
                    tracing::info!(step = self.step, %url, "the guard found the work done; skipping the rest");
                    self.outputs.insert("skipped".into(), Value::Bool(true));
                    self.outputs
                        .insert(into.clone().unwrap_or_else(|| "found".into()), text);
                    return Ok(Next::Stop);
                }
            }
        }
        Ok(Next::Go)
    }
}

/// The page's text as a person sees it, with its frames'.
pub(super) fn visible_text(page: &PageConnection) -> Option<String> {
    let script = "(() => { const parts = [document.body ? document.body.innerText : ''];
        for (const f of document.querySelectorAll('iframe, frame')) {
          try { if (f.contentDocument && f.contentDocument.body) parts.push(f.contentDocument.body.innerText); } catch (e) {}
        }
        return parts.join(' | '); })()";
    page.evaluate(script, Duration::from_secs(5))
        .ok()?
        .as_str()
        .map(str::to_string)
}
