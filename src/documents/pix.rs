//! Page images as leptonica holds them: decoded within bounds,
//! straightened, turned, and cleaned of speckle before tesseract reads
//! them.

use tesseract::plumbing::leptonica_sys as lept;

use super::DocumentError;
use super::ocr::PageScan;

/// Resolution assumed for images that do not say; boxes are converted to
/// points (1/72 inch) with it, so pages from scans and from PDFs compare.
pub(super) const ASSUMED_DPI: f64 = 300.0;

/// A leptonica image, destroyed when dropped.
pub(super) struct OwnedPix(pub(super) *mut lept::Pix);

impl OwnedPix {
    pub(super) fn new(ptr: *mut lept::Pix) -> Option<OwnedPix> {
        (!ptr.is_null()).then_some(OwnedPix(ptr))
    }
    pub(super) fn width(&self) -> u64 {
        // SAFETY: a valid image.
        u64::try_from(unsafe { lept::pixGetWidth(self.0) }).unwrap_or(0)
    }
    pub(super) fn height(&self) -> u64 {
        // SAFETY: a valid image.
        u64::try_from(unsafe { lept::pixGetHeight(self.0) }).unwrap_or(0)
    }
    pub(super) fn dpi(&self) -> i32 {
        // SAFETY: a valid image.
        let dpi = unsafe { lept::pixGetXRes(self.0) };
        // Images without a resolution (or a nonsense one) are taken as
        // scanned at 300 dpi.
        if (70..=2400).contains(&dpi) {
            dpi
        } else {
            ASSUMED_DPI as i32
        }
    }
}

impl Drop for OwnedPix {
    fn drop(&mut self) {
        // SAFETY: owned here, destroyed once.
        unsafe { lept::pixDestroy(&mut self.0) }
    }
}

pub(super) fn decode(scan: &PageScan) -> Result<OwnedPix, DocumentError> {
    let data = &scan.image;
    // SAFETY: leptonica reads from the slice and allocates its own image.
    let ptr = unsafe {
        match scan.tiff_page {
            Some(n) => lept::pixReadMemTiff(data.as_ptr(), data.len(), n as i32),
            None => lept::pixReadMem(data.as_ptr(), data.len()),
        }
    };
    let pix = OwnedPix::new(ptr).ok_or_else(|| {
        DocumentError::Ocr(format!(
            "page {}: the image cannot be decoded (damaged or an unsupported variant)",
            scan.number
        ))
    })?;
    if pix.width().saturating_mul(pix.height()) > super::image::MAX_PIXELS {
        return Err(DocumentError::ImageTooLarge {
            width: pix.width(),
            height: pix.height(),
            limit: super::image::MAX_PIXELS,
        });
    }
    Ok(pix)
}

/// Straighten a slightly tilted scan. Leptonica measures the skew from the
/// text lines and gives back the image itself when there is none to fix.
pub(super) fn deskew(pix: OwnedPix) -> OwnedPix {
    // SAFETY: a valid image in, a new one (or null) out.
    let straight = unsafe { lept::pixDeskew(pix.0, 0) };
    OwnedPix::new(straight).unwrap_or(pix)
}

pub(super) fn turn(pix: OwnedPix, quarter_turns: u32) -> OwnedPix {
    if quarter_turns == 0 {
        return pix;
    }
    // SAFETY: a valid image in, a new one (or null) out.
    let turned = unsafe { lept::pixRotateOrth(pix.0, quarter_turns as i32) };
    OwnedPix::new(turned).unwrap_or(pix)
}

/// How far below the paper's grey a pixel may lie and still count as
/// paper. Scanner noise, JPEG ringing and grain scatter the paper's grey by
/// up to a few dozen levels; ink lies a hundred and more below it.
const PAPER_SPREAD: u32 = 40;

/// A grey page with its paper made plain white: every pixel within
/// [`PAPER_SPREAD`] of the paper's grey (the page's median, as paper covers
/// most of a page) is set to white. Tesseract reads lines from the grey
/// image, so faint grain beside a short word (a row's number, a quantity)
/// is read as ink: `1` comes out as `1:` or `i:`. Ink and the dark edge of
/// every stroke are kept. Pages that are not plain 8-bit grey, and pages
/// whose paper is dark, have no whitened copy.
pub(super) fn whiten_paper(pix: &OwnedPix) -> Option<OwnedPix> {
    let mut paper: u32 = 0;
    // SAFETY: a valid image in; the rank is written to a local; a new
    // image (or null) out.
    let white = unsafe {
        if lept::pixGetDepth(pix.0) != 8
            || !lept::pixGetColormap(pix.0).is_null()
            || lept::pixGetRankValue(pix.0, 4, 0.5, &mut paper) != 0
            || paper < 128 + PAPER_SPREAD
        {
            return None;
        }
        lept::pixThresholdToValue(
            std::ptr::null_mut(),
            pix.0,
            (paper - PAPER_SPREAD) as i32,
            255,
        )
    };
    OwnedPix::new(white)
}

/// The image at twice its size, for a third reading of the words two
/// readings disputed: a finer grid gives tesseract other pixels to go by.
pub(super) fn scale_up(pix: &OwnedPix) -> Option<OwnedPix> {
    // SAFETY: a valid image in, a new one (or null) out.
    OwnedPix::new(unsafe { lept::pixScale(pix.0, 2.0, 2.0) })
}

/// Dark specks per million pixels above which a page counts as speckled:
/// a clean A4 page at 300 dpi holds a few thousand connected shapes (its
/// letters), about 500 per million pixels; heavy noise and a low JPEG
/// quality leave tens of thousands per million.
const SPECKLED_PER_MEGAPIXEL: f64 = 4000.0;

/// Whether a grey page is covered in speckle: its dark shapes, counted
/// after a plain threshold, are far more than text makes. Noise covers the
/// whole page, so the band across its middle (a quarter of its height,
/// where an invoice's table is) is counted, four times cheaper.
pub(super) fn speckled(pix: &OwnedPix) -> bool {
    let (width, height) = (pix.width(), pix.height());
    let band = height / 4;
    let megapixels = (width * band) as f64 / 1e6;
    if megapixels <= 0.0 {
        return false;
    }
    let (Ok(w), Ok(y), Ok(h)) = (
        i32::try_from(width),
        i32::try_from(height / 2 - band / 2),
        i32::try_from(band),
    ) else {
        return false;
    };
    // SAFETY: a valid image in; the box, the band and its thresholded
    // copy are created here, owned, and destroyed once.
    unsafe {
        if lept::pixGetDepth(pix.0) != 8 {
            return false;
        }
        let mut area = lept::boxCreate(0, y, w, h);
        if area.is_null() {
            return false;
        }
        let middle = OwnedPix::new(lept::pixClipRectangle(pix.0, area, std::ptr::null_mut()));
        lept::boxDestroy(&mut area);
        let Some(middle) = middle else {
            return false;
        };
        let Some(binary) = OwnedPix::new(lept::pixConvertTo1(middle.0, 128)) else {
            return false;
        };
        let mut count = 0;
        if lept::pixCountConnComp(binary.0, 8, &mut count) != 0 {
            return false;
        }
        f64::from(count) / megapixels > SPECKLED_PER_MEGAPIXEL
    }
}

/// A copy of a grey page with speckle taken off: a median over `size` ×
/// `size` pixels keeps the strokes of letters and drops isolated dots.
/// Only for speckled pages: on a clean thin-stroked page it costs letters.
pub(super) fn despeckle(pix: &OwnedPix, size: i32) -> Option<OwnedPix> {
    // SAFETY: a valid image in, a new one (or null) out.
    OwnedPix::new(unsafe { lept::pixMedianFilter(pix.0, size, size) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A grey test page: paper of `paper` with grain that wanders `grain`
    /// levels below it, and a black stroke across its middle rows.
    fn page(paper: u32, grain: u32) -> OwnedPix {
        // SAFETY: a new 8-bit image, written inside its bounds.
        unsafe {
            let pix = OwnedPix::new(lept::pixCreate(64, 64, 8)).expect("an image");
            for y in 0..64u32 {
                for x in 0..64u32 {
                    let value = if (30..34).contains(&y) {
                        0
                    } else {
                        paper - (x * 7 + y * 13) % (grain + 1)
                    };
                    lept::pixSetPixel(pix.0, x as i32, y as i32, value);
                }
            }
            pix
        }
    }

    fn pixel(pix: &OwnedPix, x: u32, y: u32) -> u32 {
        let mut value = 0;
        // SAFETY: a valid image, read inside its bounds.
        unsafe { lept::pixGetPixel(pix.0, x as i32, y as i32, &mut value) };
        value
    }

    #[test]
    fn grain_on_the_paper_turns_white_and_ink_stays() {
        let white = whiten_paper(&page(250, 30)).expect("whitened");
        for y in (0..64).filter(|y| !(30..34).contains(y)) {
            for x in 0..64 {
                assert_eq!(pixel(&white, x, y), 255, "paper at {x},{y}");
            }
        }
        assert!(
            (0..64).all(|x| pixel(&white, x, 31) == 0),
            "the stroke is kept"
        );
    }

    #[test]
    fn grey_paper_is_measured_not_assumed_white() {
        // Recycled paper at 200: grain down to 170 is paper, the stroke ink.
        let white = whiten_paper(&page(200, 30)).expect("whitened");
        assert_eq!(pixel(&white, 5, 5), 255);
        assert_eq!(pixel(&white, 5, 31), 0);
    }

    #[test]
    fn a_dark_page_is_left_as_it_is() {
        // White text on a dark ground: its "paper" is the ink's colour.
        assert!(whiten_paper(&page(120, 10)).is_none());
    }
}
