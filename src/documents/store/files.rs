//! Files named by their content (`<first 12 hex digits of the
//! SHA-256>-<name>`), written whole or not at all, so taking the same
//! document twice finds it already there: a folder trigger's `processed/`
//! and the local document store write them this way.

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

/// One document for [`put_all`]: its hash, its name and its bytes.
pub struct Incoming<'a> {
    pub sha256: &'a str,
    pub name: &'a str,
    pub bytes: &'a [u8],
}

/// [`put`] for many documents at once: every missing document is written
/// to its partial file before any is flushed (the disk writes them out
/// together, and each flush then finds its file mostly written), then all
/// are renamed into place and the folder is flushed once. Returns each
/// document's path, in order. (Flushing the whole file system instead,
/// with `syncfs`, took twice as long: it also writes out every other
/// program's files.)
pub fn put_all(dir: &Path, documents: &[Incoming]) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut paths = Vec::with_capacity(documents.len());
    let mut partials: Vec<(PathBuf, PathBuf)> = Vec::new();
    let result = (|| {
        for d in documents {
            let path = path_for(dir, d.sha256, d.name);
            let in_batch = partials.iter().any(|(_, p)| *p == path);
            if !path.exists() && !in_batch {
                let partial = dir.join(format!(".{}-{}.partial", &d.sha256[..12], d.name));
                std::fs::write(&partial, d.bytes)?;
                partials.push((partial, path.clone()));
            }
            paths.push(path);
        }
        if partials.is_empty() {
            return Ok(());
        }
        for (partial, _) in &partials {
            std::fs::File::open(partial)?.sync_all()?;
        }
        for (partial, path) in &partials {
            std::fs::rename(partial, path)?;
        }
        std::fs::File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        for (partial, _) in &partials {
            let _ = std::fs::remove_file(partial);
        }
        return Err(e);
    }
    Ok(paths)
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
    fn documents_saved_together_land_once_under_their_content_names() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (b"first document".as_slice(), b"second".as_slice());
        let (sha_a, sha_b) = (super::super::sha256_hex(a), super::super::sha256_hex(b));
        let existing = put(dir.path(), &sha_b, "b.pdf", |p| std::fs::write(p, b)).unwrap();
        let incoming = [
            Incoming {
                sha256: &sha_a,
                name: "a.pdf",
                bytes: a,
            },
            Incoming {
                sha256: &sha_b,
                name: "b.pdf",
                bytes: b,
            },
            // The same document twice in one batch is written once.
            Incoming {
                sha256: &sha_a,
                name: "a.pdf",
                bytes: a,
            },
        ];
        let paths = put_all(dir.path(), &incoming).unwrap();
        assert_eq!(paths[1], existing);
        assert_eq!(paths[0], paths[2]);
        assert_eq!(std::fs::read(&paths[0]).unwrap(), a);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // No partial file is left behind.
        let mut wanted = vec![
            format!("{}-a.pdf", &sha_a[..12]),
            format!("{}-b.pdf", &sha_b[..12]),
        ];
        wanted.sort();
        assert_eq!(names, wanted);
    }
}
