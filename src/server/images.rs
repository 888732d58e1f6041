//! Page images for the review page: a PDF page rendered with pdftoppm (as
//! JPEG), a scan's page as it is (a TIFF page turned into a PNG), kept in a cache
//! folder by the document's SHA-256 and the page, so a page is rendered once.
//! Each use of an entry marks it used (its modification time); entries
//! unused for a while are swept away, so the folder does not grow with
//! every document ever reviewed.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::documents::DocumentError;

/// Resolution pages are shown at: A4 is 827 × 1169 pixels.
const DPI: u32 = 110;

/// The cache of rendered pages.
#[derive(Debug)]
pub struct PageImages {
    dir: PathBuf,
}

/// A page ready to send: its bytes and media type.
pub struct PageImage {
    pub bytes: Vec<u8>,
    pub media_type: &'static str,
}

impl PageImages {
    pub fn new(dir: PathBuf) -> PageImages {
        PageImages { dir }
    }

    /// A job's document as a file here: the one the store keeps under the
    /// hash the extraction (or else the job's input) names, copied into
    /// the cache once; else the file the extraction or input names, for a
    /// job run with a path. `None` when neither is to be had.
    pub async fn local_copy(
        &self,
        store: &dyn crate::documents::store::DocumentStore,
        extraction: Option<&serde_json::Value>,
        input: &serde_json::Value,
    ) -> Option<PathBuf> {
        let field = |v: Option<&serde_json::Value>, key: &str| {
            v.and_then(|v| v.get(key))
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
        };
        let sha256 = field(extraction, "sha256").or_else(|| field(Some(input), "sha256"));
        if let Some(sha256) = sha256.filter(|s| crate::documents::store::is_sha256(s)) {
            let dir = self.dir.join("documents").join(&sha256);
            if let Some(found) = std::fs::read_dir(&dir)
                .ok()
                .and_then(|mut entries| entries.find_map(|e| e.ok().map(|e| e.path())))
            {
                mark_used(&found);
                return Some(found);
            }
            match crate::document_store::fetch_copy(store, &sha256, &dir).await {
                Ok(Some(copy)) => return Some(copy),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(document = %sha256, error = %e, "cannot read a job's document")
                }
            }
        }
        field(extraction, "file")
            .or_else(|| field(Some(input), "file"))
            .map(PathBuf::from)
    }

    /// Page `number` (from 1) of the document at `path`.
    pub fn page(&self, path: &Path, number: u32) -> Result<PageImage, DocumentError> {
        let io = |e: std::io::Error| DocumentError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let bytes = std::fs::read(path).map_err(io)?;
        let kind = crate::documents::image::media_type(&bytes);
        match kind {
            Some(media_type @ ("image/png" | "image/jpeg")) if number == 1 => {
                Ok(PageImage { bytes, media_type })
            }
            Some("image/png" | "image/jpeg") => Err(DocumentError::Ocr(format!(
                "the image has one page, not {number}"
            ))),
            Some(kind @ ("application/pdf" | "image/tiff")) => {
                let sha = crate::documents::store::sha256_hex(&bytes);
                // PDF pages as JPEG (quick to make of a scan), TIFF pages as PNG.
                let (extension, media_type) = if kind == "application/pdf" {
                    ("jpg", "image/jpeg")
                } else {
                    ("png", "image/png")
                };
                let cached = self.dir.join(format!("{sha}-{number}-{DPI}.{extension}"));
                if let Ok(image) = std::fs::read(&cached) {
                    mark_used(&cached);
                    return Ok(PageImage {
                        bytes: image,
                        media_type,
                    });
                }
                let image = if kind == "application/pdf" {
                    crate::documents::pdf::page_image(&bytes, number, DPI)?
                } else {
                    crate::documents::ocr::tiff_page_png(&bytes, number.saturating_sub(1))?
                };
                // A cache that cannot be written costs a render next time,
                // nothing else. Written under a partial name and renamed, so
                // a reader never sees half a page.
                let partial = cached.with_extension("partial");
                let _ = std::fs::create_dir_all(&self.dir)
                    .and_then(|()| std::fs::write(&partial, &image))
                    .and_then(|()| std::fs::rename(&partial, &cached));
                Ok(PageImage {
                    bytes: image,
                    media_type,
                })
            }
            _ => Err(DocumentError::Ocr(
                "the document is neither a PDF nor an image clerk shows".into(),
            )),
        }
    }

    /// The words of the document at `path`, page by page, with their boxes
    /// in points, as JSON: `[{"page": 1, "words": [{"text", "x0", "y0",
    /// "x1", "y1"}, …]}, …]`. A scan is read (OCR) once and kept.
    pub fn words(&self, path: &Path) -> Result<String, DocumentError> {
        let io = |e: std::io::Error| DocumentError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let bytes = std::fs::read(path).map_err(io)?;
        let sha = crate::documents::store::sha256_hex(&bytes);
        let cached = self.dir.join(format!("{sha}.words.json"));
        if let Ok(json) = std::fs::read_to_string(&cached) {
            mark_used(&cached);
            return Ok(json);
        }
        let doc = crate::documents::read_file(path, &crate::documents::ReadOptions::default())?;
        let pages: Vec<serde_json::Value> = doc
            .pages
            .iter()
            .map(|p| {
                serde_json::json!({
                    "page": p.number,
                    "words": p.words.iter().map(|w| serde_json::json!({
                        "text": w.text, "x0": w.bbox.x0, "y0": w.bbox.y0, "x1": w.bbox.x1, "y1": w.bbox.y1,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let json = serde_json::Value::Array(pages).to_string();
        let partial = cached.with_extension("partial");
        let _ = std::fs::create_dir_all(&self.dir)
            .and_then(|()| std::fs::write(&partial, &json))
            .and_then(|()| std::fs::rename(&partial, &cached));
        Ok(json)
    }

    /// Remove the entries not used for `unused_for`: rendered pages, read
    /// words and documents' copies. What it freed, as (entries, bytes).
    pub fn sweep(&self, unused_for: Duration) -> (u64, u64) {
        let Some(before) = SystemTime::now().checked_sub(unused_for) else {
            return (0, 0);
        };
        let unused = |path: &Path| {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < before)
        };
        let (mut entries, mut bytes) = (0, 0);
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_file() && unused(&path) {
                let size = entry.metadata().map_or(0, |m| m.len());
                if std::fs::remove_file(&path).is_ok() {
                    entries += 1;
                    bytes += size;
                }
            }
        }
        // A document's copy is a folder named by its hash holding the file.
        let copies = self.dir.join("documents");
        for entry in std::fs::read_dir(&copies).into_iter().flatten().flatten() {
            let files: Vec<(PathBuf, u64)> = std::fs::read_dir(entry.path())
                .into_iter()
                .flatten()
                .flatten()
                .map(|f| (f.path(), f.metadata().map_or(0, |m| m.len())))
                .collect();
            if files.iter().all(|(f, _)| unused(f)) && std::fs::remove_dir_all(entry.path()).is_ok()
            {
                entries += 1;
                bytes += files.iter().map(|(_, size)| size).sum::<u64>();
            }
        }
        (entries, bytes)
    }
}

/// Note that a cache entry was used now; a sweep keeps it for longer.
fn mark_used(path: &Path) {
    let _ = std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age(path: &Path, by: Duration) {
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - by).unwrap();
    }

    #[tokio::test]
    async fn a_sweep_removes_what_was_not_used_and_keeps_what_was() {
        let dir = tempfile::tempdir().unwrap();
        let images = PageImages::new(dir.path().to_path_buf());
        let day = Duration::from_secs(86_400);
        let old_page = dir.path().join(format!("{}-1-110.jpg", "a".repeat(64)));
        let new_words = dir.path().join(format!("{}.words.json", "b".repeat(64)));
        std::fs::write(&old_page, b"jpeg").unwrap();
        std::fs::write(&new_words, b"[]").unwrap();
        age(&old_page, 8 * day);
        // Two documents' copies, both made long ago; one is used again.
        let (used, unused) = ("c".repeat(64), "d".repeat(64));
        for sha in [&used, &unused] {
            let copy = dir.path().join("documents").join(sha);
            std::fs::create_dir_all(&copy).unwrap();
            std::fs::write(copy.join("invoice.pdf"), b"%PDF-").unwrap();
            age(&copy.join("invoice.pdf"), 8 * day);
        }
        let store = crate::documents::store::LocalStore::new(dir.path().join("store"));
        let input = serde_json::json!({ "sha256": used });
        let found = images.local_copy(&store, None, &input).await.unwrap();
        assert!(found.ends_with("invoice.pdf"));

        assert_eq!(images.sweep(7 * day), (2, 9));
        assert!(!old_page.exists());
        assert!(new_words.exists());
        assert!(found.exists(), "the copy used just now stays");
        assert!(!dir.path().join("documents").join(&unused).exists());
        assert_eq!(images.sweep(7 * day), (0, 0));
    }
}
