//! PDFs with a text layer: glyph positions from pdf-extract, words and lines
//! rebuilt by clerk.
//!
//! pdf-extract has no layout of its own; its `OutputDev` hands over every
//! glyph with its text matrix. [`GlyphCollector`] keeps each glyph's box, and
//! glyphs become words where the pen jumps, the baseline moves or a space is
//! drawn. pdf-extract (and lopdf below it) can panic or loop on hostile
//! files, so every call runs on its own thread under `catch_unwind` and a
//! time limit: a bad PDF costs its job, never the worker.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

use pdf_extract::{MediaBox, OutputDev, OutputError, Transform};

use super::{BBox, Document, DocumentError, Limits, Page, Source, Word};

/// One drawn character, in page coordinates (top-left origin).
#[derive(Debug, Clone)]
struct Glyph {
    text: String,
    x: f64,
    /// Baseline.
    y: f64,
    advance: f64,
    size: f64,
}

/// Collects glyphs per page from pdf-extract.
#[derive(Default)]
struct GlyphCollector {
    pages: Vec<(u32, f64, f64, Vec<Glyph>)>,
    flip: Option<Transform>,
}

impl OutputDev for GlyphCollector {
    fn begin_page(
        &mut self,
        page_num: u32,
        media_box: &MediaBox,
        _art_box: Option<(f64, f64, f64, f64)>,
    ) -> Result<(), OutputError> {
        let height = media_box.ury - media_box.lly;
        self.flip = Some(Transform::row_major(1.0, 0.0, 0.0, -1.0, 0.0, height));
        self.pages
            .push((page_num, media_box.urx - media_box.llx, height, Vec::new()));
        Ok(())
    }

    fn end_page(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn output_character(
        &mut self,
        trm: &Transform,
        width: f64,
        _spacing: f64,
        font_size: f64,
        char: &str,
    ) -> Result<(), OutputError> {
        let (Some(flip), Some(page)) = (self.flip, self.pages.last_mut()) else {
            return Ok(());
        };
        let at = trm.post_transform(&flip);
        let v = trm.transform_vector(euclid::vec2(font_size, font_size));
        // Side of the square with the area of the transformed font box: the
        // glyph's size whatever the rotation or scaling.
        let size = (v.x * v.y).abs().sqrt();
        page.3.push(Glyph {
            text: char.to_string(),
            x: at.m31,
            y: at.m32,
            advance: width * size,
            size,
        });
        Ok(())
    }

    fn begin_word(&mut self) -> Result<(), OutputError> {
        Ok(())
    }
    fn end_word(&mut self) -> Result<(), OutputError> {
        Ok(())
    }
    fn end_line(&mut self) -> Result<(), OutputError> {
        Ok(())
    }
}

/// Turn a page's glyphs, in drawing order, into words.
fn words_from_glyphs(glyphs: &[Glyph]) -> Vec<Word> {
    let mut words = Vec::new();
    let mut text = String::new();
    let mut bbox: Option<BBox> = None;
    let mut baseline = 0.0;
    let mut flush = |text: &mut String, bbox: &mut Option<BBox>| {
        if let Some(b) = bbox.take()
            && !text.trim().is_empty()
        {
            words.push(Word {
                text: std::mem::take(text),
                bbox: b,
                confidence: 1.0,
                source: Source::TextLayer,
            });
        }
        text.clear();
    };
    for g in glyphs {
        let size = g.size.max(0.1);
        if g.text.chars().all(char::is_whitespace) {
            flush(&mut text, &mut bbox);
            continue;
        }
        if let Some(b) = &bbox {
            let gap = g.x - b.x1;
            let new_line = (g.y - baseline).abs() > 0.3 * size;
            if new_line || gap > 0.15 * size || gap < -0.5 * size {
                flush(&mut text, &mut bbox);
            }
        }
        let glyph_box = BBox {
            x0: g.x,
            y0: g.y - 0.75 * size,
            x1: g.x + g.advance.max(0.0),
            y1: g.y + 0.25 * size,
        };
        bbox = Some(match bbox {
            Some(b) => b.union(&glyph_box),
            None => {
                baseline = g.y;
                glyph_box
            }
        });
        text.push_str(&g.text);
    }
    flush(&mut text, &mut bbox);
    words
}

/// Where the `%PDF-` header starts; readers accept some junk before it.
fn header_offset(bytes: &[u8]) -> Option<usize> {
    let head = &bytes[..bytes.len().min(1024)];
    head.windows(5).position(|w| w == b"%PDF-")
}

/// Read the text layer of a PDF.
pub fn read_pdf(bytes: &[u8], limits: &Limits) -> Result<Document, DocumentError> {
    if bytes.is_empty() {
        return Err(DocumentError::Empty);
    }
    if bytes.len() as u64 > limits.max_bytes {
        return Err(DocumentError::TooLarge {
            bytes: bytes.len() as u64,
            limit: limits.max_bytes,
        });
    }
    if header_offset(bytes).is_none() {
        let found: String = String::from_utf8_lossy(&bytes[..bytes.len().min(16)])
            .chars()
            .map(|c| if c.is_control() { '.' } else { c })
            .collect();
        return Err(DocumentError::NotAPdf { found });
    }
    let owned = bytes.to_vec();
    let max_pages = limits.max_pages;
    isolated(limits, move || read_text_layer(&owned, max_pages))
}

fn read_text_layer(bytes: &[u8], max_pages: usize) -> Result<Document, DocumentError> {
    let mut doc =
        lopdf::Document::load_mem(bytes).map_err(|e| DocumentError::Corrupt(e.to_string()))?;
    if doc.is_encrypted() && doc.decrypt("").is_err() {
        return Err(DocumentError::Encrypted);
    }
    let pages = doc.get_pages().len();
    if pages > max_pages {
        return Err(DocumentError::TooManyPages {
            pages,
            limit: max_pages,
        });
    }
    if pages == 0 {
        return Err(DocumentError::Corrupt("the PDF has no pages".into()));
    }
    let mut collector = GlyphCollector::default();
    pdf_extract::output_doc(&doc, &mut collector)
        .map_err(|e| DocumentError::Corrupt(e.to_string()))?;
    let page_ids = doc.get_pages();
    let mut pages = Vec::new();
    for (number, width, height, glyphs) in collector.pages {
        let words = words_from_glyphs(&glyphs);
        // A page without a text layer is a scan: read its image.
        let page = match (words.is_empty(), page_ids.get(&number)) {
            (true, Some(&id)) => match page_image(&doc, id) {
                Some(jpeg) => {
                    super::ocr::check_size(super::ocr::ImageKind::Jpeg, &jpeg)?;
                    let scanned = super::ocr::ocr_image(&jpeg, number, "eng")?;
                    rescale(scanned, width, height)
                }
                None => Page::new(number, width, height, words),
            },
            _ => Page::new(number, width, height, words),
        };
        pages.push(page);
    }
    Ok(Document { pages })
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// The largest JPEG image drawn on a page: the page itself, for a scan.
fn page_image(doc: &lopdf::Document, page: lopdf::ObjectId) -> Option<Vec<u8>> {
    doc.get_page_images(page)
        .ok()?
        .into_iter()
        .filter(|i| {
            i.filters
                .as_ref()
                .is_some_and(|f| f.iter().any(|f| f == "DCTDecode"))
        })
        .max_by_key(|i| i.width * i.height)
        .map(|i| i.content.to_vec())
}

/// Put OCR words (in the image's units) into the PDF page's coordinates.
fn rescale(page: Page, width: f64, height: f64) -> Page {
    let sx = if page.width > 0.0 {
        width / page.width
    } else {
        1.0
    };
    let sy = if page.height > 0.0 {
        height / page.height
    } else {
        1.0
    };
    let words = page
        .words
        .into_iter()
        .map(|mut w| {
            w.bbox = BBox {
                x0: w.bbox.x0 * sx,
                y0: w.bbox.y0 * sy,
                x1: w.bbox.x1 * sx,
                y1: w.bbox.y1 * sy,
            };
            w
        })
        .collect();
    Page::new(page.number, width, height, words)
}

/// Run `work` on its own thread, turning a panic into an error and giving up
/// after the time limit. A thread that does not finish in time cannot be
/// stopped from outside; it is left to finish on its own and its result is
/// dropped.
pub(crate) fn isolated<T: Send + 'static>(
    limits: &Limits,
    work: impl FnOnce() -> Result<T, DocumentError> + Send + 'static,
) -> Result<T, DocumentError> {
    // In a reader process the parent already bounds time and memory; staying
    // on this thread keeps its OCR engine warm between documents.
    if super::isolation::in_reader() {
        return std::panic::catch_unwind(AssertUnwindSafe(work))
            .unwrap_or_else(|panic| Err(DocumentError::ReaderCrashed(panic_message(&panic))));
    }
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("clerk-pdf".into())
        .spawn(move || {
            let result = std::panic::catch_unwind(AssertUnwindSafe(work));
            let _ = tx.send(result);
        });
    if let Err(e) = spawned {
        return Err(DocumentError::ReaderCrashed(format!(
            "cannot start a reader thread: {e}"
        )));
    }
    match rx.recv_timeout(limits.timeout) {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => Err(DocumentError::ReaderCrashed(panic_message(&panic))),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(DocumentError::TimedOut(limits.timeout)),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(DocumentError::ReaderCrashed(
            "the reader thread vanished".into(),
        )),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use lopdf::content::{Content, Operation};
    use lopdf::{Object, Stream, dictionary};

    /// A PDF with one page per entry, each text drawn in Helvetica at
    /// `(x, y from the top, size)`. Small and exact: the reader's tests
    /// need no generator.
    pub(crate) fn make_pdf(pages: &[Vec<(f64, f64, f64, &str)>]) -> Vec<u8> {
        let mut doc = lopdf::Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let font_id = doc.add_object(dictionary! {
            "Type" => "Font",
            "Subtype" => "Type1",
            "BaseFont" => "Helvetica",
            "Encoding" => "WinAnsiEncoding",
        });
        let resources_id = doc.add_object(dictionary! {
            "Font" => dictionary! { "F1" => font_id },
        });
        let mut kids = Vec::new();
        for texts in pages {
            let mut ops = Vec::new();
            for &(x, y, size, text) in texts {
                ops.push(Operation::new("BT", vec![]));
                ops.push(Operation::new("Tf", vec!["F1".into(), size.into()]));
                ops.push(Operation::new("Td", vec![x.into(), (842.0 - y).into()]));
                ops.push(Operation::new("Tj", vec![Object::string_literal(text)]));
                ops.push(Operation::new("ET", vec![]));
            }
            let content = Content { operations: ops };
            let content_id = doc.add_object(Stream::new(
                dictionary! {},
                content.encode().expect("encode content"),
            ));
            let page_id = doc.add_object(dictionary! {
                "Type" => "Page",
                "Parent" => pages_id,
                "Contents" => content_id,
                "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
            });
            kids.push(Object::from(page_id));
        }
        let count = kids.len() as i64;
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages",
                "Kids" => kids,
                "Count" => count,
                "Resources" => resources_id,
            }),
        );
        let catalog_id = doc.add_object(dictionary! {
            "Type" => "Catalog",
            "Pages" => pages_id,
        });
        doc.trailer.set("Root", catalog_id);
        let mut out = Vec::new();
        doc.save_to(&mut out).expect("save pdf");
        out
    }

    fn invoice() -> Vec<u8> {
        make_pdf(&[
            vec![
                (50.0, 80.0, 16.0, "ACME Office Supplies GmbH"),
                (50.0, 120.0, 10.0, "Invoice number"),
                (300.0, 120.0, 10.0, "2026-1041"),
                (50.0, 134.0, 10.0, "Invoice date"),
                (300.0, 134.0, 10.0, "01.02.2026"),
                (50.0, 200.0, 10.0, "Total EUR"),
                (300.0, 200.0, 10.0, "1.234,50"),
            ],
            vec![(50.0, 80.0, 10.0, "Page 2: terms of payment")],
        ])
    }

    #[test]
    fn words_carry_their_boxes_and_the_text_layer_source() {
        let doc = read_pdf(&invoice(), &Limits::default()).unwrap();
        assert_eq!(doc.pages.len(), 2);
        let p = &doc.pages[0];
        assert_eq!((p.width, p.height), (595.0, 842.0));
        let texts: Vec<&str> = p.words.iter().map(|w| w.text.as_str()).collect();
        assert!(
            texts.contains(&"2026-1041") && texts.contains(&"1.234,50"),
            "{texts:?}"
        );
        let total = p.words.iter().find(|w| w.text == "1.234,50").unwrap();
        assert!((total.bbox.x0 - 300.0).abs() < 0.5, "{:?}", total.bbox);
        assert!((total.bbox.y1 - 202.5).abs() < 1.0, "{:?}", total.bbox);
        assert!(
            total.bbox.width() > 30.0 && total.bbox.width() < 45.0,
            "{:?}",
            total.bbox
        );
        assert_eq!(total.confidence, 1.0);
        assert_eq!(total.source, Source::TextLayer);
    }

    #[test]
    fn layout_text_aligns_labels_and_values() {
        let doc = read_pdf(&invoice(), &Limits::default()).unwrap();
        let text = doc.layout_text();
        let first = text.split('\u{c}').next().unwrap();
        let lines: Vec<&str> = first.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines[0].trim(), "ACME Office Supplies GmbH");
        assert!(
            lines[1].starts_with("Invoice number") && lines[1].ends_with("2026-1041"),
            "{first}"
        );
        assert_eq!(
            lines[1].find("2026-1041"),
            lines[2].find("01.02.2026"),
            "{first}"
        );
        assert_eq!(
            lines[1].find("2026-1041"),
            lines[3].find("1.234,50"),
            "{first}"
        );
        assert!(text.contains("\u{c}Page 2: terms of payment"), "{text}");
    }

    #[test]
    fn bad_inputs_give_clear_errors() {
        let limits = Limits::default();
        assert_eq!(read_pdf(b"", &limits), Err(DocumentError::Empty));
        let not_pdf = read_pdf(b"PK\x03\x04 this is a zip", &limits).unwrap_err();
        assert!(
            not_pdf.to_string().starts_with(
                "not a PDF or an image (PNG, JPEG, TIFF): the file starts with \"PK.."
            ),
            "{not_pdf}"
        );
        let pdf = invoice();
        let truncated = read_pdf(&pdf[..pdf.len() / 3], &limits).unwrap_err();
        assert!(
            matches!(
                truncated,
                DocumentError::Corrupt(_) | DocumentError::ReaderCrashed(_)
            ),
            "{truncated:?}"
        );
        let few = Limits {
            max_pages: 1,
            ..Limits::default()
        };
        assert_eq!(
            read_pdf(&pdf, &few),
            Err(DocumentError::TooManyPages { pages: 2, limit: 1 })
        );
    }

    #[test]
    fn a_panicking_reader_becomes_an_error() {
        let r: Result<(), _> = isolated(&Limits::default(), || panic!("index out of bounds"));
        assert_eq!(
            r,
            Err(DocumentError::ReaderCrashed("index out of bounds".into()))
        );
        let slow = Limits {
            timeout: std::time::Duration::from_millis(50),
            ..Limits::default()
        };
        let r: Result<(), _> = isolated(&slow, || {
            std::thread::sleep(std::time::Duration::from_millis(500));
            Ok(())
        });
        assert_eq!(r, Err(DocumentError::TimedOut(slow.timeout)));
    }
}
