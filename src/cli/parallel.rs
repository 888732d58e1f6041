//! Documents read on all cores, for `clerk read` and `clerk extract`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{ProgressBar, ProgressStyle};

use crate::documents::ReadOptions;

/// A spinner with a count or message (`template`), shown only when
/// `wanted` and stderr is a terminal.
pub fn spinner(template: &str, wanted: bool) -> ProgressBar {
    if wanted && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar
    } else {
        ProgressBar::hidden()
    }
}

/// A progress bar over documents, shown only for several files on a
/// terminal.
pub fn progress_bar(files: usize) -> ProgressBar {
    if files > 1 && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let bar = ProgressBar::new(files as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} documents {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    }
}

/// Run `work` on every file, `threads` documents at a time (default: one
/// per core), each result in its input's place. Cores no document thread
/// uses go to reading the pages of scans in parallel, so one long scan
/// alone still uses the whole machine. `None` marks a file whose thread
/// died.
pub fn for_each_document<T: Send>(
    files: &[PathBuf],
    threads: Option<usize>,
    options: &ReadOptions,
    progress: &ProgressBar,
    work: impl Fn(&Path, &ReadOptions) -> T + Sync,
) -> Vec<Option<T>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let wanted = threads.unwrap_or(cores).max(1);
    let threads = wanted.clamp(1, files.len().max(1));
    let options = ReadOptions {
        page_threads: (wanted / threads).max(1),
        ..options.clone()
    };
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<T>>> = files.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(file) = files.get(i) else { break };
                    let result = work(file, &options);
                    if let Ok(mut slot) = slots[i].lock() {
                        *slot = Some(result);
                    }
                    progress.inc(1);
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|slot| slot.into_inner().ok().flatten())
        .collect()
}
