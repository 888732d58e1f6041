//! Documents: one model for every reader.
//!
//! A document is pages; a page is words, each with its text, its box in page
//! coordinates (points, origin at the top left), a confidence in [0, 1] and
//! where it came from (the PDF's text layer or OCR). Words are grouped into
//! lines in reading order, and a page renders as *layout text* that keeps
//! columns aligned the way `pdftotext -layout` does, so that "label   value"
//! rules and table rows work on it.

pub mod image;
pub mod isolation;
mod layout;
pub mod ocr;
pub mod pdf;
mod pdf_fonts;
mod pix;
mod second_reading;
pub mod store;

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use layout::{group_lines, layout_text, layout_with_spans};

/// Where a word came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Drawn as text in the PDF: exact, confidence 1.
    TextLayer,
    /// Recognised in an image.
    Ocr,
}

/// A rectangle in page coordinates: points (1/72 inch), origin top left,
/// y growing downwards.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BBox {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

impl BBox {
    pub fn width(&self) -> f64 {
        self.x1 - self.x0
    }
    pub fn height(&self) -> f64 {
        self.y1 - self.y0
    }
    /// The smallest box holding both.
    pub fn union(&self, other: &BBox) -> BBox {
        BBox {
            x0: self.x0.min(other.x0),
            y0: self.y0.min(other.y0),
            x1: self.x1.max(other.x1),
            y1: self.y1.max(other.y1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word {
    pub text: String,
    pub bbox: BBox,
    /// 1.0 for the text layer; the engine's confidence for OCR.
    pub confidence: f32,
    pub source: Source,
    /// What a second reading of the word's line made of it, where the two
    /// differ (its confidence is then lowered): shown to the reviewer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_reading: Option<String>,
}

/// Words that share a baseline, left to right.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// Indices into the page's `words`.
    pub words: Vec<usize>,
    pub bbox: BBox,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    /// From 1.
    pub number: u32,
    pub width: f64,
    pub height: f64,
    pub words: Vec<Word>,
    /// In reading order: top to bottom.
    pub lines: Vec<Line>,
}

impl Page {
    /// Build a page from its words: lines are grouped here.
    pub fn new(number: u32, width: f64, height: f64, words: Vec<Word>) -> Page {
        let lines = group_lines(&words);
        Page {
            number,
            width,
            height,
            words,
            lines,
        }
    }

    /// The page as text with columns kept in place.
    pub fn layout_text(&self) -> String {
        layout_text(self)
    }

    /// The text of one line, words joined by single spaces.
    pub fn line_text(&self, line: &Line) -> String {
        line.words
            .iter()
            .filter_map(|&i| self.words.get(i).map(|w| w.text.as_str()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub pages: Vec<Page>,
}

/// Where a word of a document is in its layout text.
#[derive(Debug, Clone, PartialEq)]
pub struct WordSpan {
    pub range: std::ops::Range<usize>,
    /// Index into `pages`.
    pub page: usize,
    /// Index into that page's `words`.
    pub word: usize,
}

/// A document's layout text with the place of every word in it.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentText {
    pub text: String,
    /// Sorted by position.
    pub spans: Vec<WordSpan>,
}

impl Document {
    /// All pages as layout text, separated by form feeds as `pdftotext` does.
    pub fn layout_text(&self) -> String {
        self.text().text
    }

    /// Layout text with word positions.
    pub fn text(&self) -> DocumentText {
        let mut text = String::new();
        let mut spans = Vec::new();
        for (p, page) in self.pages.iter().enumerate() {
            if p > 0 {
                text.push('\u{c}');
            }
            let (page_text, page_spans) = layout_with_spans(page);
            let offset = text.len();
            spans.extend(page_spans.into_iter().map(|(r, w)| WordSpan {
                range: r.start + offset..r.end + offset,
                page: p,
                word: w,
            }));
            text.push_str(&page_text);
        }
        DocumentText { text, spans }
    }

    /// The words that overlap a byte range of the layout text.
    pub fn words_in<'a>(
        &'a self,
        text: &'a DocumentText,
        range: std::ops::Range<usize>,
    ) -> impl Iterator<Item = (u32, &'a Word)> + 'a {
        text.spans
            .iter()
            .filter(move |s| s.range.start < range.end && range.start < s.range.end)
            .filter_map(move |s| {
                let page = self.pages.get(s.page)?;
                Some((page.number, page.words.get(s.word)?))
            })
    }
}

/// How a document is read: bounds on what it may cost (a hostile file
/// costs one job, never the worker) and how its scanned pages are read.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    pub max_pages: usize,
    pub max_bytes: u64,
    /// Time for reading one document.
    pub timeout: Duration,
    /// Address space of a reader process, in bytes.
    pub max_memory: u64,
    /// Tesseract languages for pages read by OCR, as `eng` or `deu+eng`.
    pub ocr_languages: String,
    /// Pages of one document read by OCR at the same time.
    pub page_threads: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            max_pages: 500,
            max_bytes: 200 * 1024 * 1024,
            timeout: Duration::from_secs(60),
            max_memory: 2 * 1024 * 1024 * 1024,
            ocr_languages: "eng".into(),
            page_threads: 1,
        }
    }
}

/// Why a document could not be read. Each says what the user can do.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum DocumentError {
    #[error("the file is empty (0 bytes)")]
    Empty,
    #[error("not a PDF or an image (PNG, JPEG, TIFF): the file starts with {found:?}")]
    NotAPdf { found: String },
    #[error("the image claims to be {width}×{height} pixels, more than the limit of {limit}")]
    ImageTooLarge { width: u64, height: u64, limit: u64 },
    #[error("OCR failed: {0}")]
    Ocr(String),
    #[error("the PDF is damaged and cannot be read: {0}")]
    Corrupt(String),
    #[error(
        "the PDF is password-protected; clerk opens encrypted PDFs only when their user password is empty"
    )]
    Encrypted,
    #[error("the PDF has {pages} pages, more than the limit of {limit}")]
    TooManyPages { pages: usize, limit: usize },
    #[error("the file is {bytes} bytes, more than the limit of {limit}")]
    TooLarge { bytes: u64, limit: u64 },
    #[error("reading the document took longer than {0:?} and was stopped")]
    TimedOut(Duration),
    #[error(
        "the PDF reader failed on this file: it is damaged or built in a way the reader cannot follow (the reader said: {0})"
    )]
    ReaderCrashed(String),
    #[error("cannot read {path}: {reason}")]
    Io { path: String, reason: String },
}

/// Read a document from a file, choosing the reader by its content. In the
/// `clerk` binary this happens in a reader process of its own (see
/// [`isolation`]); elsewhere on the calling thread.
pub fn read_file(path: &Path, limits: &ReadOptions) -> Result<Document, DocumentError> {
    match isolation::reader_executable() {
        Some(exe) => isolation::read_in_child(exe, path, limits),
        None => read_file_here(path, limits),
    }
}

/// Read a document in this process.
pub fn read_file_here(path: &Path, limits: &ReadOptions) -> Result<Document, DocumentError> {
    let io = |e: std::io::Error| DocumentError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > limits.max_bytes {
        return Err(DocumentError::TooLarge {
            bytes: size,
            limit: limits.max_bytes,
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    read_bytes(&bytes, limits)
}

/// Read a document from its bytes: a PDF (text layer, OCR for pages that
/// are only an image) or a scan (PNG, JPEG, TIFF with any number of pages).
pub fn read_bytes(bytes: &[u8], limits: &ReadOptions) -> Result<Document, DocumentError> {
    let Some(kind) = image::sniff(bytes) else {
        return pdf::read_pdf(bytes, limits);
    };
    image::check_size(kind, bytes)?;
    let image: std::sync::Arc<[u8]> = bytes.into();
    let scans: Vec<ocr::PageScan> = match kind {
        image::ImageKind::Tiff => {
            let pages = image::tiff_page_count(bytes)
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    DocumentError::Ocr("the TIFF file is damaged: it has no readable page".into())
                })?;
            if pages > limits.max_pages {
                return Err(DocumentError::TooManyPages {
                    pages,
                    limit: limits.max_pages,
                });
            }
            (0..pages)
                .map(|n| ocr::PageScan {
                    number: n as u32 + 1,
                    image: image.clone(),
                    tiff_page: Some(n as u32),
                    fit: None,
                })
                .collect()
        }
        image::ImageKind::Png | image::ImageKind::Jpeg => vec![ocr::PageScan {
            number: 1,
            image,
            tiff_page: None,
            fit: None,
        }],
    };
    let languages = limits.ocr_languages.clone();
    let threads = limits.page_threads;
    let pages = pdf::isolated(limits, move || ocr::recognise(&scans, &languages, threads))?;
    Ok(Document { pages })
}
