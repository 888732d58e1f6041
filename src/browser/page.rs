//! clerk's own DevTools connection to a job's page: every call an action
//! makes, and the page's events (dialogs, console, network).
//!
//! Synchronous: write the call, read the conversation's messages until its
//! answer, handling the events that arrive meanwhile.
//! A dialog blocks the script that opened it, so it is answered from inside
//! that read loop.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use base64::Engine as _;
use serde_json::{Value, json};

use super::pipe::{Link, Pipe, Silence};

/// What the page did, as its events told.
pub(super) struct PageEvents {
    /// Texts of the dialogs it opened, in order.
    pub dialogs: Vec<String>,
    /// Its console, one line per call.
    pub console: Vec<String>,
    /// How to answer the next dialog (`None`: accept).
    pub next_dialog: Option<bool>,
    /// Requests in flight, and when one last started or ended.
    pub requests: HashSet<String>,
    pub last_request: Instant,
}

struct Connection {
    link: Link,
    next_id: u64,
    events: PageEvents,
}

pub(super) struct PageConnection {
    inner: Mutex<Connection>,
}

impl PageConnection {
    /// The conversation with the page of `session` (from
    /// `Target.attachToTarget` with `flatten`).
    pub fn attach(pipe: &Arc<Pipe>, session: &str) -> PageConnection {
        PageConnection::over(pipe.link(Some(session.to_string())))
    }

    /// The conversation with the browser itself, for browser-wide
    /// commands (contexts, targets, sessions).
    pub fn browser(pipe: &Arc<Pipe>) -> PageConnection {
        PageConnection::over(pipe.link(None))
    }

    fn over(link: Link) -> PageConnection {
        PageConnection {
            inner: Mutex::new(Connection {
                link,
                next_id: 0,
                events: PageEvents {
                    dialogs: Vec::new(),
                    console: Vec::new(),
                    next_dialog: None,
                    requests: HashSet::new(),
                    last_request: Instant::now(),
                },
            }),
        }
    }

    /// Have the page report dialogs and its console (and its requests).
    pub fn listen(&self, network: bool, limit: Duration) -> anyhow::Result<()> {
        self.call("Page.enable", json!({}), limit)?;
        self.call("Runtime.enable", json!({}), limit)?;
        if network {
            self.call("Network.enable", json!({}), limit)?;
        }
        Ok(())
    }

    /// Read or change what the page's events told.
    pub fn events<T>(&self, look: impl FnOnce(&mut PageEvents) -> T) -> Option<T> {
        self.inner.lock().ok().map(|mut c| look(&mut c.events))
    }

    /// Call `method` and wait at most `limit` for its result.
    pub fn call(&self, method: &str, params: Value, limit: Duration) -> anyhow::Result<Value> {
        let mut held = self
            .inner
            .lock()
            .map_err(|_| anyhow!("the page connection's lock was poisoned"))?;
        let c = &mut *held;
        let id = c.send(method, params)?;
        let deadline = Instant::now() + limit.max(Duration::from_millis(100));
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("the browser did not answer {method} within {limit:?}");
            }
            let answer = match c.link.receive(left.max(Duration::from_millis(1))) {
                Ok(message) => message,
                Err(Silence::TimedOut) => continue,
                Err(Silence::Closed) => bail!("the browser closed the connection"),
            };
            if let Some(event) = answer.get("method").and_then(Value::as_str) {
                c.on_event(event, answer.get("params").unwrap_or(&Value::Null))?;
                continue;
            }
            // Answers to calls that timed out earlier are passed over.
            if answer.get("id").and_then(Value::as_u64) != Some(id) {
                continue;
            }
            if let Some(error) = answer.get("error") {
                bail!(
                    "{method}: {}",
                    error
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("failed")
                );
            }
            return Ok(answer.get("result").cloned().unwrap_or(Value::Null));
        }
    }

    /// Evaluate `expression` in the page's top document; its value.
    pub fn evaluate(&self, expression: &str, limit: Duration) -> anyhow::Result<Value> {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
            limit,
        )?;
        thrown(&result)?;
        Ok(result
            .pointer("/result/value")
            .cloned()
            .unwrap_or(Value::Null))
    }

    /// Evaluate `expression` to an object; its handle (`objectId`).
    pub fn object(&self, expression: &str, limit: Duration) -> anyhow::Result<Option<String>> {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression }),
            limit,
        )?;
        thrown(&result)?;
        Ok(result
            .pointer("/result/objectId")
            .and_then(Value::as_str)
            .map(str::to_string))
    }

    /// A PNG of the page as it is.
    pub fn screenshot(&self, limit: Duration) -> anyhow::Result<Vec<u8>> {
        let shot = self.call(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true }),
            limit,
        )?;
        let data = shot
            .get("data")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("the screenshot came back empty"))?;
        Ok(base64::engine::general_purpose::STANDARD.decode(data)?)
    }

    /// Press a key in the focused element: `Enter`, `Tab`, `Escape`, an
    /// arrow (`ArrowDown`), or one character.
    pub fn press(&self, key: &str, limit: Duration) -> anyhow::Result<()> {
        let (code, text) = match key {
            "Enter" => (13, Some("\r".to_string())),
            "Tab" => (9, None),
            "Escape" => (27, None),
            "Backspace" => (8, None),
            "Space" | " " => (32, Some(" ".to_string())),
            "ArrowLeft" => (37, None),
            "ArrowUp" => (38, None),
            "ArrowRight" => (39, None),
            "ArrowDown" => (40, None),
            one if one.chars().count() == 1 => {
                let c = one.chars().next().unwrap_or(' ');
                (c.to_ascii_uppercase() as u32, Some(one.to_string()))
            }
            other => bail!(
                "unknown key `{other}` (Enter, Tab, Escape, Backspace, Space, the arrows, or one character)"
            ),
        };
        let mut down = json!({ "type": if text.is_some() { "keyDown" } else { "rawKeyDown" },
            "key": key, "windowsVirtualKeyCode": code });
        if let Some(text) = &text {
            down["text"] = json!(text);
        }
        self.call("Input.dispatchKeyEvent", down, limit)?;
        self.call(
            "Input.dispatchKeyEvent",
            json!({ "type": "keyUp", "key": key, "windowsVirtualKeyCode": code }),
            limit,
        )?;
        Ok(())
    }
}

/// The exception a script threw, as an error.
fn thrown(result: &Value) -> anyhow::Result<()> {
    match result.get("exceptionDetails") {
        Some(thrown) => {
            let text = thrown
                .pointer("/exception/description")
                .or_else(|| thrown.get("text"))
                .and_then(Value::as_str)
                .unwrap_or("an exception");
            bail!("the script failed: {text}")
        }
        None => Ok(()),
    }
}

impl Connection {
    fn send(&mut self, method: &str, params: Value) -> anyhow::Result<u64> {
        self.next_id += 1;
        let call = json!({ "id": self.next_id, "method": method, "params": params });
        self.link.send(call)?;
        Ok(self.next_id)
    }

    fn on_event(&mut self, event: &str, params: &Value) -> anyhow::Result<()> {
        let request = || {
            params
                .get("requestId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        match event {
            "Page.javascriptDialogOpening" => {
                let message = params
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                self.events.dialogs.push(message.to_string());
                let accept = self.events.next_dialog.take().unwrap_or(true);
                // The script that opened it waits for this answer.
                self.send("Page.handleJavaScriptDialog", json!({ "accept": accept }))?;
            }
            "Runtime.consoleAPICalled" => {
                let args: Vec<String> = params
                    .get("args")
                    .and_then(Value::as_array)
                    .map(|args| {
                        args.iter()
                            .map(|a| match a.get("value") {
                                Some(Value::String(s)) => s.clone(),
                                Some(v) => v.to_string(),
                                None => a
                                    .get("description")
                                    .and_then(Value::as_str)
                                    .unwrap_or_default()
                                    .to_string(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let kind = params.get("type").and_then(Value::as_str).unwrap_or("log");
                self.events
                    .console
                    .push(format!("{kind}: {}", args.join(" ")));
            }
            "Network.requestWillBeSent" => {
                self.events.requests.insert(request());
                self.events.last_request = Instant::now();
            }
            "Network.loadingFinished" | "Network.loadingFailed" => {
                self.events.requests.remove(&request());
                self.events.last_request = Instant::now();
            }
            _ => {}
        }
        Ok(())
    }
}
