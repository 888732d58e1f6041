//! The actions of a browser script and how each runs.

use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::ActionError;
use super::kind::Action;
use super::page::PageConnection;

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
    /// Fired when the job is stopped: every wait ends at once.
    pub cancel: &'a tokio_util::sync::CancellationToken,
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
    /// Look until `look` gives a value, `limit` passes or the job is stopped.
    fn poll<T>(&self, limit: Duration, mut look: impl FnMut() -> Option<T>) -> Option<T> {
        super::poll(limit, || {
            if self.cancel.is_cancelled() {
                return None;
            }
            look()
        })
        .filter(|_| !self.cancel.is_cancelled())
    }

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
        let done = self.poll(limit, || match self.on_element(selector, body) {
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
        let loaded = self.poll(limit, || {
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
            } => self.select(selector, value, timeout)?,
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
            Action::WaitText { text, timeout } => self.wait_text(text, timeout, false)?,
            Action::AssertText { text, timeout } => self.wait_text(text, timeout, true)?,
            Action::WaitUrl { part, timeout } => self.wait_url(part, timeout)?,
            Action::WaitIdle { quiet, timeout } => self.wait_idle(*quiet, timeout)?,
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
            Action::Screenshot { name } => self.screenshot(name)?,
            Action::Guard {
                url,
                found,
                into,
                timeout,
            } => return self.guard(url, found, into.as_deref(), timeout),
        }
        Ok(Next::Go)
    }

    /// Choose an option by its value or its visible text.
    fn select(
        &self,
        selector: &str,
        value: &str,
        timeout: &Option<Duration>,
    ) -> Result<(), ActionError> {
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
        Ok(())
    }

    /// Until the text is shown: a business error for an assertion that
    /// fails, a transient one for a wait.
    fn wait_text(
        &self,
        text: &str,
        timeout: &Option<Duration>,
        assertion: bool,
    ) -> Result<(), ActionError> {
        let limit = self.limit(timeout);
        if self
            .poll(limit, || self.text_present(text).then_some(()))
            .is_some()
        {
            return Ok(());
        }
        let message = format!(
            "the text \"{text}\" did not appear within {}",
            humantime::format_duration(limit)
        );
        Err(if assertion {
            ActionError::business(message)
        } else {
            ActionError::transient(message)
        })
    }

    /// Until a document whose address contains `part` has loaded.
    fn wait_url(&self, part: &str, timeout: &Option<Duration>) -> Result<(), ActionError> {
        let limit = self.limit(timeout);
        let script = format!(
            "(() => {{ try {{ const d = {doc}; return JSON.stringify({{value: !!d && d.readyState === 'complete' && d.location.href.includes({p})}}); }}
               catch (e) {{ return JSON.stringify({{error: String(e)}}); }} }})()",
            doc = self.document(),
            p = js(part)
        );
        let arrived = self.poll(limit, || {
            matches!(self.evaluate(&script), Found::Value(Value::Bool(true))).then_some(())
        });
        if arrived.is_some() {
            return Ok(());
        }
        let at = self.evaluate(&format!(
            "(() => {{ const d = {}; return JSON.stringify({{value: d ? d.location.href : ''}}); }})()",
            self.document()
        ));
        let at = match at {
            Found::Value(Value::String(url)) => format!(" (the page is at {url})"),
            _ => String::new(),
        };
        Err(ActionError::transient(format!(
            "no page with \"{part}\" in its address loaded within {}{at}",
            humantime::format_duration(limit)
        )))
    }

    /// Until no request has been open for `quiet`.
    fn wait_idle(&self, quiet: Duration, timeout: &Option<Duration>) -> Result<(), ActionError> {
        let limit = self.limit(timeout);
        let idle = self.poll(limit, || {
            // A call reads the events that came meanwhile.
            let _ = self.page.evaluate("0", self.script_limit());
            self.page
                .events(|e| e.requests.is_empty() && e.last_request.elapsed() >= quiet)
                .unwrap_or(false)
                .then_some(())
        });
        if idle.is_some() {
            return Ok(());
        }
        let busy = self.page.events(|e| e.requests.len()).unwrap_or(0);
        Err(ActionError::transient(format!(
            "the network was not idle within {} ({busy} request(s) still open)",
            humantime::format_duration(limit)
        )))
    }

    /// Keep a PNG of the page, listed in the step's output.
    fn screenshot(&mut self, name: &str) -> Result<(), ActionError> {
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
        Ok(())
    }

    /// Open `url`; when `found` is there the work is done already and the
    /// rest of the script is skipped.
    fn guard(
        &mut self,
        url: &str,
        found: &str,
        into: Option<&str>,
        timeout: &Option<Duration>,
    ) -> Result<Next, ActionError> {
        self.frames.clear();
        self.goto(url, timeout)?;
        let Found::Value(text) = self.on_element(found, "return (el.innerText || '').trim();")
        else {
            return Ok(Next::Go);
        };
        tracing::info!(step = self.step, %url, "the guard found the work done; skipping the rest");
        self.outputs.insert("skipped".into(), Value::Bool(true));
        self.outputs
            .insert(into.unwrap_or("found").to_string(), text);
        Ok(Next::Stop)
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
