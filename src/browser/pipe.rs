//! The DevTools protocol over the pipe chromium is given at start
//! (`--remote-debugging-pipe`: it reads calls from its descriptor 3 and
//! writes answers and events to its descriptor 4, each message a JSON text
//! ended by a NUL byte).
//!
//! A pipe belongs to the process that started the browser: no other local
//! process can drive it, as any could through a DevTools TCP port. One
//! pipe carries every conversation: the browser's own and one per page
//! (a session, `Target.attachToTarget` with `flatten`), told apart by the
//! `sessionId` each message carries. A reader thread hands every message
//! to the conversation it belongs to.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// Where the messages of each conversation go: `None` is the browser's.
type Routes = HashMap<Option<String>, Sender<Value>>;

pub(super) struct Pipe {
    to_browser: Mutex<File>,
    routes: Arc<Mutex<Routes>>,
    closed: Arc<AtomicBool>,
}

/// One conversation on the pipe: the browser's, or one page's session.
pub(super) struct Link {
    pipe: Arc<Pipe>,
    session: Option<String>,
    messages: Receiver<Value>,
}

impl Pipe {
    /// Talk to a browser through `to_browser` (its descriptor 3) and
    /// `from_browser` (its descriptor 4).
    pub fn start(to_browser: File, from_browser: File) -> std::io::Result<Arc<Pipe>> {
        let routes: Arc<Mutex<Routes>> = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        let (reader_routes, reader_closed) = (routes.clone(), closed.clone());
        std::thread::Builder::new()
            .name("clerk-browser-pipe".into())
            .spawn(move || read_messages(from_browser, &reader_routes, &reader_closed))?;
        Ok(Arc::new(Pipe {
            to_browser: Mutex::new(to_browser),
            routes,
            closed,
        }))
    }

    /// A conversation: the browser's (`None`) or a page session's.
    pub fn link(self: &Arc<Self>, session: Option<String>) -> Link {
        let (tx, rx) = channel();
        if let Ok(mut routes) = self.routes.lock() {
            routes.insert(session.clone(), tx);
        }
        Link {
            pipe: self.clone(),
            session,
            messages: rx,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

/// Hand each message to its conversation, until the browser closes its
/// end; then every conversation learns it is over.
fn read_messages(from_browser: File, routes: &Mutex<Routes>, closed: &AtomicBool) {
    let mut reader = BufReader::with_capacity(1 << 20, from_browser);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(0, &mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if buffer.last() == Some(&0) {
            buffer.pop();
        }
        let Ok(message) = serde_json::from_slice::<Value>(&buffer) else {
            continue;
        };
        let session = message
            .get("sessionId")
            .and_then(Value::as_str)
            .map(str::to_string);
        let Ok(mut routes) = routes.lock() else {
            break;
        };
        // A conversation that has ended no longer listens.
        if let Some(to) = routes.get(&session)
            && to.send(message).is_err()
        {
            routes.remove(&session);
        }
    }
    closed.store(true, Ordering::Relaxed);
    if let Ok(mut routes) = routes.lock() {
        routes.clear();
    }
}

/// Why nothing came.
pub(super) enum Silence {
    TimedOut,
    Closed,
}

impl Link {
    /// Send `message` (with `id`, `method` and `params`) in this
    /// conversation.
    pub fn send(&self, mut message: Value) -> anyhow::Result<()> {
        if self.pipe.is_closed() {
            anyhow::bail!("the browser closed its pipe");
        }
        if let (Some(session), Some(object)) = (&self.session, message.as_object_mut()) {
            object.insert("sessionId".into(), Value::String(session.clone()));
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        let mut to = self
            .pipe
            .to_browser
            .lock()
            .map_err(|_| anyhow::anyhow!("the browser pipe's lock was poisoned"))?;
        to.write_all(&bytes)
            .map_err(|e| anyhow::anyhow!("the browser pipe failed: {e}"))
    }

    /// The next message of this conversation, waiting at most `limit`.
    pub fn receive(&self, limit: Duration) -> Result<Value, Silence> {
        self.messages.recv_timeout(limit).map_err(|e| match e {
            RecvTimeoutError::Timeout => Silence::TimedOut,
            RecvTimeoutError::Disconnected => Silence::Closed,
        })
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Ok(mut routes) = self.pipe.routes.lock() {
            routes.remove(&self.session);
        }
    }
}
