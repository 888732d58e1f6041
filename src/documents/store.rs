//! Where intake keeps the documents its jobs refer to: files named by their
//! content (`<first 12 hex digits of the SHA-256>-<name>`), written whole or
//! not at all, so taking the same document twice finds it already there.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A digest in lowercase hex.
pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Where the document with this hash and name lives in `dir`.
pub fn path_for(dir: &Path, sha256: &str, name: &str) -> PathBuf {
    dir.join(format!("{}-{name}", &sha256[..12]))
}

/// Make sure the document is at [`path_for`]: unless it is there already,
/// `write` fills a hidden partial file, which is flushed and renamed into
/// place, so a crash never leaves half a document under its real name.
pub fn put(
    dir: &Path,
    sha256: &str,
    name: &str,
    write: impl FnOnce(&Path) -> std::io::Result<()>,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = path_for(dir, sha256, name);
    if path.exists() {
        return Ok(path);
    }
    let partial = dir.join(format!(".{}-{name}.partial", &sha256[..12]));
    let written = write(&partial)
        .and_then(|()| std::fs::File::open(&partial)?.sync_all())
        .and_then(|()| std::fs::rename(&partial, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    Ok(path)
}
