//! Files named by their content (`<first 12 hex digits of the
//! SHA-256>-<name>`), written whole or not at all, so taking the same
//! document twice finds it already there: a folder trigger's `processed/`,
//! its record of what it took, is written this way.

use std::path::{Path, PathBuf};

/// Longest name kept for a document file, in bytes: with the hash in
/// front and `.partial` behind, it stays within the 255 bytes file
/// systems allow for a name.
const NAME_MAX_BYTES: usize = 200;

/// The name a document is kept under: as given, or shortened (its
/// extension kept) when it is too long for a file name.
fn short_name(name: &str) -> std::borrow::Cow<'_, str> {
    if name.len() <= NAME_MAX_BYTES {
        return name.into();
    }
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e)
        .filter(|e| e.len() <= 16)
        .unwrap_or("");
    let room = NAME_MAX_BYTES - ext.len() - 1;
    let mut cut = room;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    if ext.is_empty() {
        name[..cut].to_string().into()
    } else {
        format!("{}.{ext}", &name[..cut]).into()
    }
}

/// Where the document with this hash and name lives in `dir`.
pub fn path_for(dir: &Path, sha256: &str, name: &str) -> PathBuf {
    dir.join(format!("{}-{}", &sha256[..12], short_name(name)))
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
    let partial = dir.join(format!(".{}-{}.partial", &sha256[..12], short_name(name)));
    // A copy keeps its source's mode; a stored document is the user's alone.
    let written = write(&partial)
        .and_then(|()| private(&partial))
        .and_then(|()| std::fs::File::open(&partial)?.sync_all())
        .and_then(|()| std::fs::rename(&partial, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    Ok(path)
}

/// Make a stored document readable by its owner only.
pub fn private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_too_long_for_a_file_is_shortened_keeping_its_extension() {
        let long = format!("{}.pdf", "Rechnung-Überweisung-".repeat(20));
        let path = path_for(Path::new("/d"), &"a".repeat(64), &long);
        let name = path.file_name().unwrap().to_str().unwrap();
        // The partial file is `.<name>.partial`.
        assert!(name.len() < 255 - ".partial".len(), "{}", name.len());
        assert!(
            name.ends_with(".pdf") && name.starts_with("aaaaaaaaaaaa-Rechnung"),
            "{name}"
        );
        assert_eq!(short_name("invoice.pdf"), "invoice.pdf");
    }

    #[test]
    fn a_document_is_put_once_under_its_content_name() {
        let dir = tempfile::tempdir().unwrap();
        let content = b"first document".as_slice();
        let sha = super::super::sha256_hex(content);
        let path = put(dir.path(), &sha, "a.pdf", |p| std::fs::write(p, content)).unwrap();
        // Put again: found, not written.
        let again = put(dir.path(), &sha, "a.pdf", |_| {
            Err(std::io::Error::other("written twice"))
        })
        .unwrap();
        assert_eq!(path, again);
        assert_eq!(std::fs::read(&path).unwrap(), content);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        // No partial file is left behind.
        assert_eq!(names, [format!("{}-a.pdf", &sha[..12])]);
    }
}
