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

use super::ocr::PageScan;
use super::{BBox, Document, DocumentError, Page, ReadOptions, Source, Word};

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
                other_reading: None,
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
pub(crate) fn header_offset(bytes: &[u8]) -> Option<usize> {
    let head = &bytes[..bytes.len().min(1024)];
    head.windows(5).position(|w| w == b"%PDF-")
}

/// Read the text layer of a PDF.
pub fn read_pdf(bytes: &[u8], limits: &ReadOptions) -> Result<Document, DocumentError> {
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
    let options = limits.clone();
    isolated(limits, move || read_pages(&owned, &options))
}

/// What a page of a PDF holds, as far as reading it goes.
enum PageContent {
    /// Words drawn as text.
    Text(Page),
    /// A scan: an image to read by OCR.
    Scan(PageScan),
    /// Nothing drawn at all.
    Blank(Page),
}

fn read_pages(bytes: &[u8], options: &ReadOptions) -> Result<Document, DocumentError> {
    let mut doc =
        lopdf::Document::load_mem(bytes).map_err(|e| DocumentError::Corrupt(e.to_string()))?;
    if doc.is_encrypted() && doc.decrypt("").is_err() {
        return Err(DocumentError::Encrypted);
    }
    let page_ids = doc.get_pages();
    if page_ids.len() > options.max_pages {
        return Err(DocumentError::TooManyPages {
            pages: page_ids.len(),
            limit: options.max_pages,
        });
    }
    if page_ids.is_empty() {
        return Err(DocumentError::Corrupt("the PDF has no pages".into()));
    }
    super::pdf_fonts::spell_out_cid_widths(&mut doc);
    let mut collector = GlyphCollector::default();
    pdf_extract::output_doc(&doc, &mut collector)
        .map_err(|e| DocumentError::Corrupt(e.to_string()))?;
    // Decided page by page: a text layer where there is one, else the
    // page's own JPEG where the page is one image, else the page rendered.
    let mut contents = Vec::new();
    for (number, width, height, glyphs) in collector.pages {
        let words = words_from_glyphs(&glyphs);
        let id = page_ids.get(&number).copied();
        let content = if !words.is_empty() {
            PageContent::Text(Page::new(number, width, height, words))
        } else if let Some(jpeg) = id.and_then(|id| page_jpeg(&doc, id)) {
            super::image::check_size(super::image::ImageKind::Jpeg, &jpeg)?;
            PageContent::Scan(PageScan {
                number,
                image: jpeg.into(),
                tiff_page: None,
                fit: Some((width, height)),
            })
        } else if id.is_some_and(|id| draws_anything(&doc, id)) {
            PageContent::Scan(PageScan {
                number,
                image: render_page(bytes, number)?.into(),
                tiff_page: None,
                fit: Some((width, height)),
            })
        } else {
            PageContent::Blank(Page::new(number, width, height, Vec::new()))
        };
        contents.push(content);
    }
    let scans: Vec<PageScan> = contents
        .iter()
        .filter_map(|c| match c {
            PageContent::Scan(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    let mut scanned = if scans.is_empty() {
        Vec::new()
    } else {
        super::ocr::recognise(&scans, &options.ocr_languages, options.page_threads)?
    }
    .into_iter();
    let mut pages = Vec::with_capacity(contents.len());
    for content in contents {
        match content {
            PageContent::Text(page) | PageContent::Blank(page) => pages.push(page),
            PageContent::Scan(_) => match scanned.next() {
                Some(page) => pages.push(page),
                None => return Err(DocumentError::Ocr("a scanned page was not read".into())),
            },
        }
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
fn page_jpeg(doc: &lopdf::Document, page: lopdf::ObjectId) -> Option<Vec<u8>> {
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

/// Whether a page without text draws anything: an image in another
/// encoding (CCITT fax, JBIG2, Flate), or text turned into outlines.
fn draws_anything(doc: &lopdf::Document, page: lopdf::ObjectId) -> bool {
    doc.get_page_content(page)
        .is_ok_and(|content| content.iter().any(|b| !b.is_ascii_whitespace()))
}

/// Resolution pages are rendered at for OCR.
const RENDER_DPI: u32 = 300;

/// Render one page to a grey PNG for OCR. It runs in the reader process's
/// group, so the reader's time limit covers it too.
fn render_page(pdf: &[u8], number: u32) -> Result<Vec<u8>, DocumentError> {
    render(pdf, number, RENDER_DPI, &["-png", "-gray"])
}

/// Render one page to a JPEG for people to look at (the review page).
/// JPEG, not PNG: a scanned page's noise makes PNG slow to encode (over a
/// second a page at 110 dpi, against some 60 ms) and large.
pub fn page_image(pdf: &[u8], number: u32, dpi: u32) -> Result<Vec<u8>, DocumentError> {
    render(pdf, number, dpi, &["-jpeg", "-jpegopt", "quality=85"])
}

/// Render page `number` with poppler's `pdftoppm` at `dpi`, in the format
/// `format` asks for.
fn render(pdf: &[u8], number: u32, dpi: u32, format: &[&str]) -> Result<Vec<u8>, DocumentError> {
    use std::io::Write;
    let page = number.to_string();
    let mut child = std::process::Command::new("pdftoppm")
        .args(["-r", &dpi.to_string(), "-singlefile"])
        .args(format)
        .args(["-f", &page, "-l", &page, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            DocumentError::Ocr(format!(
                "page {number} is an image clerk renders with pdftoppm, which cannot start ({e}); install poppler-utils"
            ))
        })?;
    // With no output name pdftoppm writes the image to stdout. The PDF is
    // written from a thread: pdftoppm may start writing before it has read
    // all of its input.
    let mut stdin = child.stdin.take();
    let input = pdf.to_vec();
    let writer = std::thread::spawn(move || {
        if let Some(stdin) = stdin.as_mut() {
            let _ = stdin.write_all(&input);
        }
    });
    let output = child
        .wait_with_output()
        .map_err(|e| DocumentError::Ocr(format!("page {number}: pdftoppm failed: {e}")))?;
    let _ = writer.join();
    if !output.status.success() || output.stdout.is_empty() {
        return Err(DocumentError::Ocr(format!(
            "page {number} cannot be rendered: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(output.stdout)
}

/// Run `work` on its own thread, turning a panic into an error and giving up
/// after the time limit. A thread that does not finish in time cannot be
/// stopped from outside; it is left to finish on its own and its result is
/// dropped.
pub(crate) fn isolated<T: Send + 'static>(
    limits: &ReadOptions,
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
        let doc = read_pdf(&invoice(), &ReadOptions::default()).unwrap();
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
        let doc = read_pdf(&invoice(), &ReadOptions::default()).unwrap();
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
        let limits = ReadOptions::default();
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
        let few = ReadOptions {
            max_pages: 1,
            ..ReadOptions::default()
        };
        assert_eq!(
            read_pdf(&pdf, &few),
            Err(DocumentError::TooManyPages { pages: 2, limit: 1 })
        );
    }

    #[test]
    fn a_panicking_reader_becomes_an_error() {
        let r: Result<(), _> = isolated(&ReadOptions::default(), || panic!("index out of bounds"));
        assert_eq!(
            r,
            Err(DocumentError::ReaderCrashed("index out of bounds".into()))
        );
        let slow = ReadOptions {
            timeout: std::time::Duration::from_millis(50),
            ..ReadOptions::default()
        };
        let r: Result<(), _> = isolated(&slow, || {
            std::thread::sleep(std::time::Duration::from_millis(500));
            Ok(())
        });
        assert_eq!(r, Err(DocumentError::TimedOut(slow.timeout)));
    }
}
