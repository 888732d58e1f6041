//! Reading documents in a child process, so a hostile file costs its own
//! document and nothing else.
//!
//! pdf-extract can panic, loop or allocate without bound on crafted files.
//! A panic can be caught on a thread, a loop or an allocation cannot. So the
//! `clerk` binary reads documents in reader processes of its own (`clerk
//! __reader`), one per reading thread, kept for the next document: the
//! address space of each is limited (`RLIMIT_AS`), a document that takes too
//! long gets its reader killed, and a reader that dies is replaced for the
//! next document. Requests and answers are JSON lines on the reader's stdin
//! and stdout.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use super::{Document, DocumentError, ReadOptions};

static READER: OnceLock<PathBuf> = OnceLock::new();

/// Set in a reader process.
static IN_READER: AtomicBool = AtomicBool::new(false);

/// Whether this process is a reader.
pub fn in_reader() -> bool {
    IN_READER.load(Ordering::Relaxed)
}

/// Read documents in child processes running `exe __reader` from now on.
/// The `clerk` binary calls this with itself at start-up.
pub fn use_reader_executable(exe: PathBuf) {
    let _ = READER.set(exe);
}

pub fn reader_executable() -> Option<&'static Path> {
    READER.get().map(PathBuf::as_path)
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub path: PathBuf,
    pub max_pages: usize,
    pub max_bytes: u64,
    pub ocr_languages: String,
    pub page_threads: usize,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Ok(Document),
    Err(DocumentError),
}

struct ReaderChild {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    memory: u64,
}

impl Drop for ReaderChild {
    fn drop(&mut self) {
        // SAFETY: the group is the reader's own; it is reaped just below.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

thread_local! {
    /// This thread's reader, kept between documents.
    static CHILD: RefCell<Option<ReaderChild>> = const { RefCell::new(None) };
}

fn spawn(exe: &Path, memory: u64) -> Result<ReaderChild, DocumentError> {
    let mut cmd = Command::new(exe);
    // Its own process group: a timeout kills whatever the reader started too,
    // so nothing keeps its pipe open.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    // Tesseract's settings pass; the worker's secrets do not.
    let tesseract =
        std::env::vars().filter(|(k, _)| k.starts_with("TESS") || k == "OMP_THREAD_LIMIT");
    cmd.arg("__reader")
        .env_clear()
        .envs(crate::config::secrets::child_environment())
        .envs(tesseract)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let limit = memory as libc::rlim_t;
    // SAFETY: setrlimit and prctl are async-signal-safe; they only change
    // the child's own limits before it runs the reader.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            let rl = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            libc::setrlimit(libc::RLIMIT_AS, &rl);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        DocumentError::ReaderCrashed(format!("cannot start the reader {}: {e}", exe.display()))
    })?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        return Err(DocumentError::ReaderCrashed(
            "the reader has no pipes".into(),
        ));
    };
    Ok(ReaderChild {
        child,
        stdin,
        stdout: BufReader::new(stdout),
        memory,
    })
}

/// Why a reader that stopped answering stopped.
fn death(child: &mut ReaderChild, timed_out: bool, limits: &ReadOptions) -> DocumentError {
    if timed_out {
        return DocumentError::TimedOut(limits.timeout);
    }
    let status = child.child.wait().ok();
    use std::os::unix::process::ExitStatusExt;
    match status.and_then(|s| s.signal()) {
        Some(sig) if sig == libc::SIGABRT || sig == libc::SIGKILL || sig == libc::SIGSEGV => {
            DocumentError::ReaderCrashed(format!(
                "the reader died (signal {sig}); the document probably needs more than the {} MiB a reader may use",
                limits.max_memory / (1024 * 1024)
            ))
        }
        Some(sig) => DocumentError::ReaderCrashed(format!("the reader died (signal {sig})")),
        None => DocumentError::ReaderCrashed(format!(
            "the reader stopped ({})",
            status.map_or("unknown status".to_string(), |s| s.to_string())
        )),
    }
}

/// Read one document in this thread's reader process.
pub fn read_in_child(
    exe: &Path,
    path: &Path,
    limits: &ReadOptions,
) -> Result<Document, DocumentError> {
    let request = Request {
        path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
        max_pages: limits.max_pages,
        max_bytes: limits.max_bytes,
        ocr_languages: limits.ocr_languages.clone(),
        page_threads: limits.page_threads,
    };
    let line = serde_json::to_string(&request)
        .map_err(|e| DocumentError::ReaderCrashed(format!("cannot encode the request: {e}")))?;
    CHILD.with(|slot| {
        let mut slot = slot.borrow_mut();
        // A reader started with other limits, or gone, is replaced.
        if slot.as_mut().is_some_and(|c| {
            c.memory != limits.max_memory || c.child.try_wait().ok().flatten().is_some()
        }) {
            *slot = None;
        }
        if slot.is_none() {
            *slot = Some(spawn(exe, limits.max_memory)?);
        }
        let Some(child) = slot.as_mut() else {
            return Err(DocumentError::ReaderCrashed("no reader".into()));
        };
        // Kill the reader if the answer does not come in time.
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let fired = Arc::new(AtomicBool::new(false));
        let pid = child.child.id() as i32;
        let watchdog = {
            let (fired, timeout) = (fired.clone(), limits.timeout);
            std::thread::spawn(move || {
                if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    finished.recv_timeout(timeout)
                {
                    fired.store(true, Ordering::SeqCst);
                    // SAFETY: signalling our own child; it is not reaped
                    // before this thread is joined, so the pid is still its.
                    unsafe {
                        libc::kill(-pid, libc::SIGKILL);
                    }
                }
            })
        };
        let mut answer = String::new();
        let sent = writeln!(child.stdin, "{line}").and_then(|()| child.stdin.flush());
        let read = sent.and_then(|()| child.stdout.read_line(&mut answer));
        let _ = done.send(());
        let _ = watchdog.join();
        match read {
            Ok(n) if n > 0 => match serde_json::from_str::<Answer>(&answer) {
                Ok(Answer::Ok(doc)) => Ok(doc),
                Ok(Answer::Err(e)) => Err(e),
                Err(e) => Err(DocumentError::ReaderCrashed(format!(
                    "the reader answered nonsense: {e}"
                ))),
            },
            _ => {
                let err = death(child, fired.load(Ordering::SeqCst), limits);
                *slot = None;
                Err(err)
            }
        }
    })
}

/// The reader process: answer requests until stdin closes.
pub fn serve_reader() -> std::io::Result<()> {
    IN_READER.store(true, Ordering::Relaxed);
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line?;
        let answer = match serde_json::from_str::<Request>(&line) {
            Ok(req) => {
                let limits = ReadOptions {
                    max_pages: req.max_pages,
                    max_bytes: req.max_bytes,
                    ocr_languages: req.ocr_languages,
                    page_threads: req.page_threads,
                    ..ReadOptions::default()
                };
                match super::read_file_here(&req.path, &limits) {
                    Ok(doc) => Answer::Ok(doc),
                    Err(e) => Answer::Err(e),
                }
            }
            Err(e) => Answer::Err(DocumentError::ReaderCrashed(format!("bad request: {e}"))),
        };
        let text = serde_json::to_string(&answer).map_err(std::io::Error::other)?;
        writeln!(stdout, "{text}")?;
        stdout.flush()?;
    }
    Ok(())
}
