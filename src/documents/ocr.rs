//! Scans: page images through the tesseract library, word by word, each
//! with its box and the engine's confidence.
//!
//! Images are checked before they are decoded: a header that claims a
//! gigantic image is refused instead of allocated.

use super::{BBox, DocumentError, Page, Source, Word};

/// Resolution assumed for images that do not say; boxes are converted to
/// points (1/72 inch) with it, so pages from scans and from PDFs compare.
const ASSUMED_DPI: f64 = 300.0;

/// Most pixels an image may have (a 300 dpi A3 page is about 17.5 million).
pub const MAX_PIXELS: u64 = 100_000_000;

/// Image formats clerk reads, by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Png,
    Jpeg,
    Tiff,
}

pub fn sniff(bytes: &[u8]) -> Option<ImageKind> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageKind::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageKind::Jpeg)
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        Some(ImageKind::Tiff)
    } else {
        None
    }
}

/// Width and height an image's header claims, where it can be read cheaply.
pub fn claimed_size(kind: ImageKind, bytes: &[u8]) -> Option<(u64, u64)> {
    match kind {
        ImageKind::Png => {
            let w = u32::from_be_bytes(bytes.get(16..20)?.try_into().ok()?);
            let h = u32::from_be_bytes(bytes.get(20..24)?.try_into().ok()?);
            Some((u64::from(w), u64::from(h)))
        }
        ImageKind::Jpeg => {
            // Walk the segments to the frame header (SOF0–SOF15 but DHT,
            // JPG and DAC), which holds height and width.
            let mut i = 2;
            while i + 9 < bytes.len() {
                if bytes[i] != 0xFF {
                    return None;
                }
                let marker = bytes[i + 1];
                let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
                if (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
                    let h = u16::from_be_bytes([bytes[i + 5], bytes[i + 6]]);
                    let w = u16::from_be_bytes([bytes[i + 7], bytes[i + 8]]);
                    return Some((u64::from(w), u64::from(h)));
                }
                i += 2 + len;
            }
            None
        }
        // Leptonica reads TIFF headers itself; the pixel limit is checked on
        // what it decoded.
        ImageKind::Tiff => None,
    }
}

/// Refuse images whose header claims more pixels than the limit.
pub fn check_size(kind: ImageKind, bytes: &[u8]) -> Result<(), DocumentError> {
    if let Some((w, h)) = claimed_size(kind, bytes)
        && w.saturating_mul(h) > MAX_PIXELS
    {
        return Err(DocumentError::ImageTooLarge {
            width: w,
            height: h,
            limit: MAX_PIXELS,
        });
    }
    Ok(())
}

thread_local! {
    /// This thread's engine and its language: starting tesseract loads its
    /// model, so a reading thread keeps one and reuses it page after page.
    static ENGINE: std::cell::RefCell<Option<(String, tesseract::Tesseract)>> =
        const { std::cell::RefCell::new(None) };
}

/// Recognise one page image.
pub fn ocr_image(bytes: &[u8], number: u32, language: &str) -> Result<Page, DocumentError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| DocumentError::Ocr(format!("{what}: {e}"));
    ENGINE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let engine = match slot.take() {
            Some((lang, engine)) if lang == language => engine,
            _ => tesseract::Tesseract::new(None, Some(language)).map_err(|e| {
                fail(
                    &format!("cannot start tesseract for language `{language}` (is tesseract-ocr-{language} installed?)"),
                    &e,
                )
            })?,
        };
        // On an error the engine is dropped; the next page starts a new one.
        let mut engine = engine
            .set_image_from_mem(bytes)
            .map_err(|e| fail("tesseract cannot read the image", &e))?;
        let tsv = engine.get_tsv_text(0).map_err(|e| fail("recognition failed", &e))?;
        *slot = Some((language.to_string(), engine));
        Ok(page_from_tsv(&tsv, number))
    })
}

/// Words from tesseract's TSV: `level page block par line word left top
/// width height conf text`; level 1 is the page, level 5 a word.
pub fn page_from_tsv(tsv: &str, number: u32) -> Page {
    let scale = 72.0 / ASSUMED_DPI;
    let mut width = 0.0;
    let mut height = 0.0;
    let mut words = Vec::new();
    for line in tsv.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 11 {
            continue;
        }
        let num = |i: usize| cols[i].trim().parse::<f64>().unwrap_or(0.0);
        match cols[0] {
            "1" => {
                width = num(8) * scale;
                height = num(9) * scale;
            }
            "5" => {
                let text = cols.get(11).map_or("", |t| t.trim());
                if text.is_empty() {
                    continue;
                }
                let (x, y, w, h) = (
                    num(6) * scale,
                    num(7) * scale,
                    num(8) * scale,
                    num(9) * scale,
                );
                words.push(Word {
                    text: text.to_string(),
                    bbox: BBox {
                        x0: x,
                        y0: y,
                        x1: x + w,
                        y1: y + h,
                    },
                    confidence: (num(10) / 100.0).clamp(0.0, 1.0) as f32,
                    source: Source::Ocr,
                });
            }
            _ => {}
        }
    }
    Page::new(number, width, height, words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_come_from_level_five_rows_with_scaled_boxes_and_confidence() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
                   1\t1\t0\t0\t0\t0\t0\t0\t2481\t3508\t-1\t\n\
                   4\t1\t1\t1\t1\t0\t208\t199\t2056\t65\t-1\t\n\
                   5\t1\t1\t1\t1\t1\t208\t201\t187\t50\t96.8\tACME\n\
                   5\t1\t1\t1\t1\t2\t426\t199\t185\t52\t38.7\tMusterstraBe\n\
                   5\t1\t1\t1\t1\t3\t600\t199\t10\t52\t95\t \n";
        let page = page_from_tsv(tsv, 1);
        assert!((page.width - 595.44).abs() < 0.01 && (page.height - 841.92).abs() < 0.01);
        assert_eq!(page.words.len(), 2);
        assert_eq!(page.words[1].text, "MusterstraBe");
        assert!((page.words[1].confidence - 0.387).abs() < 1e-6);
        assert_eq!(page.words[0].source, Source::Ocr);
        assert!((page.words[0].bbox.x0 - 49.92).abs() < 0.01);
        assert_eq!(page.lines.len(), 1);
    }

    #[test]
    fn image_headers_are_read_before_decoding() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&100_000u32.to_be_bytes());
        assert_eq!(sniff(&png), Some(ImageKind::Png));
        assert_eq!(claimed_size(ImageKind::Png, &png), Some((100_000, 100_000)));
        assert!(matches!(
            check_size(ImageKind::Png, &png),
            Err(DocumentError::ImageTooLarge { width: 100_000, .. })
        ));
        // A JPEG with an APP0 segment, then a baseline frame of 640x480.
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x01,
            0xE0, 0x02, 0x80, 0x03,
        ];
        assert_eq!(claimed_size(ImageKind::Jpeg, &jpeg), Some((640, 480)));
        assert!(check_size(ImageKind::Jpeg, &jpeg).is_ok());
    }
}
