//! Page images for the review page: a PDF page rendered with pdftoppm (as
//! JPEG), a scan's page as it is (a TIFF page turned into a PNG), kept in a cache
//! folder by the document's SHA-256 and the page, so a page is rendered once.

use std::path::{Path, PathBuf};

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
}
