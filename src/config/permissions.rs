//! Who may read what clerk writes: invoices, bank details and the job
//! database are nobody else's business on a shared machine.
//!
//! Every clerk process runs with umask 077, as PostgreSQL's server does:
//! the folders it makes are 0700 and the files 0600 (database, stored
//! documents, browser evidence, the review's page cache). Folders people
//! drop files into are the exception: they get the mode the user's own
//! umask gives.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

/// The umask the process was started with; `u32::MAX` until
/// [`keep_private`] ran.
static STARTED_WITH: AtomicU32 = AtomicU32::new(u32::MAX);

/// Make files and folders created from now on private to the user.
/// Call once at start, before other threads run.
pub fn keep_private() {
    // SAFETY: umask only swaps the process's file mode mask.
    let before = unsafe { libc::umask(0o077) };
    STARTED_WITH.store(before as u32, Ordering::Relaxed);
}

/// Create `dir` (and its parents) for people to drop files into: with the
/// mode the user's own umask gives, not clerk's private one.
pub fn create_shared_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let umask = STARTED_WITH.load(Ordering::Relaxed);
    if umask != u32::MAX {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777 & !umask))?;
    }
    Ok(())
}

/// The mode of `path` when users other than its owner may read or write
/// it; `None` when they may not, or it cannot be read.
pub fn open_to_others(path: &Path) -> Option<u32> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_to_others_reads_group_and_world_bits() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secrets.env");
        std::fs::write(&file, "A=b\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(open_to_others(&file), None);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(open_to_others(&file), Some(0o640));
        assert_eq!(open_to_others(&dir.path().join("missing")), None);
    }
}
