//! Scans: page images through the tesseract library, word by word, each
//! with its box and the engine's confidence.
//!
//! Images are checked before they are decoded: a header that claims a
//! gigantic image is refused instead of allocated. Each page is straightened
//! (leptonica measures the skew of its text lines) and turned upright when
//! tesseract's orientation detection is sure it lies on its side or upside
//! down, then read. Pages of one document are read in parallel when the
//! caller allows more than one thread; engines are pooled, so a thread
//! never loads a model another has already loaded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tesseract::plumbing::leptonica_sys as lept;
use tesseract::plumbing::tesseract_sys as sys;

use super::{BBox, DocumentError, Page, Source, Word, second_reading};

use super::pix::{OwnedPix, decode, deskew, despeckle, scale_up, speckled, turn, whiten_paper};

/// The most time tesseract gets to recognise one page. A page that takes
/// longer is read as far as it got, its words' confidence capped at
/// [`OVER_BUDGET_CONFIDENCE`] so every value from it goes to review.
const PAGE_BUDGET: std::time::Duration = std::time::Duration::from_secs(20);
const OVER_BUDGET_CONFIDENCE: f32 = 0.5;

/// One page image to recognise.
#[derive(Clone)]
pub struct PageScan {
    /// The page's number in its document, from 1.
    pub number: u32,
    /// The encoded image (PNG, JPEG or TIFF), shared by the pages of one file.
    pub image: Arc<[u8]>,
    /// Which page of a multi-page TIFF, from 0.
    pub tiff_page: Option<u32>,
    /// The size in points of the PDF page the image fills; an image file's
    /// page size comes from its resolution instead.
    pub fit: Option<(f64, f64)>,
}

/// Tesseract language codes for a template's `languages` (ISO 639-1, as
/// invoice2data writes them, or tesseract's own three-letter codes), with
/// English kept as a second language: invoices in any language carry
/// English words and codes.
pub fn tesseract_languages(languages: &[String]) -> String {
    let mut codes: Vec<&str> = Vec::new();
    for l in languages {
        let code = match l.trim().to_ascii_lowercase().as_str() {
            "en" => "eng",
            "de" => "deu",
            "fr" => "fra",
            "nl" => "nld",
            "es" => "spa",
            "it" => "ita",
            "pt" => "por",
            "pl" => "pol",
            "sv" => "swe",
            "da" => "dan",
            "fi" => "fin",
            "no" | "nb" => "nor",
            "cs" => "ces",
            "hu" => "hun",
            "tr" => "tur",
            "ru" => "rus",
            _ => {
                // Already a tesseract code (`deu`, `chi_sim`): kept as is.
                if !codes.iter().any(|c| c.eq_ignore_ascii_case(l.trim())) && !l.trim().is_empty() {
                    codes.push(l.trim());
                }
                continue;
            }
        };
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    if !codes.contains(&"eng") {
        codes.push("eng");
    }
    codes.join("+")
}

/// How sure OSD must be of a page's orientation before clerk turns it;
/// tesseract itself asks for the same margin.
const MIN_ORIENTATION_CONFIDENCE: f32 = 7.0;

/// A tesseract engine: one for recognition in some languages, and the
/// orientation detector next to it. Starting tesseract loads its models,
/// so engines are pooled and reused page after page.
struct Engine {
    languages: String,
    api: *mut sys::TessBaseAPI,
    osd: Option<*mut sys::TessBaseAPI>,
}

// SAFETY: an engine is used by one thread at a time (it is taken out of the
// pool for a page and put back after), which is all tesseract asks.
unsafe impl Send for Engine {}

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: both handles were created by TessBaseAPICreate and are
        // dropped once, here.
        unsafe {
            sys::TessBaseAPIEnd(self.api);
            sys::TessBaseAPIDelete(self.api);
            if let Some(osd) = self.osd {
                sys::TessBaseAPIEnd(osd);
                sys::TessBaseAPIDelete(osd);
            }
        }
    }
}

fn start_api(language: &str) -> Option<*mut sys::TessBaseAPI> {
    let lang = std::ffi::CString::new(language).ok()?;
    // SAFETY: a fresh handle, initialised with the default data path.
    unsafe {
        let api = sys::TessBaseAPICreate();
        if api.is_null() {
            return None;
        }
        if sys::TessBaseAPIInit3(api, std::ptr::null(), lang.as_ptr()) != 0 {
            sys::TessBaseAPIDelete(api);
            return None;
        }
        // Tesseract starts when any one of several languages loads and
        // only prints that the others failed: a scan would then be read
        // without them, umlauts and accents lost, and no one told.
        if !loaded_all(api, language) {
            sys::TessBaseAPIEnd(api);
            sys::TessBaseAPIDelete(api);
            return None;
        }
        Some(api)
    }
}

/// Whether every language of `languages` (codes joined by `+`) is among
/// those `api` loaded.
///
/// # Safety
/// `api` is a handle initialised by `TessBaseAPIInit3`.
unsafe fn loaded_all(api: *mut sys::TessBaseAPI, languages: &str) -> bool {
    let mut loaded: Vec<String> = Vec::new();
    // SAFETY: the array is NULL-terminated and ours to free, with its
    // strings, by TessDeleteTextArray.
    unsafe {
        let array = sys::TessBaseAPIGetLoadedLanguagesAsVector(api);
        if array.is_null() {
            return false;
        }
        let mut at = array;
        while !(*at).is_null() {
            loaded.push(std::ffi::CStr::from_ptr(*at).to_string_lossy().into_owned());
            at = at.add(1);
        }
        sys::TessDeleteTextArray(array);
    }
    languages
        .split('+')
        .filter(|l| !l.is_empty())
        .all(|l| loaded.iter().any(|have| have == l))
}

/// Whether the OCR engine starts here in English, the language scans are
/// read in unless a template asks for others: tried, not assumed.
pub fn available() -> Result<(), DocumentError> {
    languages_available("eng")
}

/// Whether the OCR engine starts here in `languages` (tesseract codes
/// joined by `+`, as [`tesseract_languages`] gives them): tried once per
/// process, for starting tesseract loads its models.
pub fn languages_available(languages: &str) -> Result<(), DocumentError> {
    static TRIED: std::sync::OnceLock<Mutex<HashMap<String, Result<(), DocumentError>>>> =
        std::sync::OnceLock::new();
    let tried = TRIED.get_or_init(Mutex::default);
    if let Some(known) = tried.lock().ok().and_then(|t| t.get(languages).cloned()) {
        return known;
    }
    let result = Engine::start(languages).map(drop);
    if let Ok(mut t) = tried.lock() {
        t.insert(languages.to_string(), result.clone());
    }
    result
}

impl Engine {
    fn start(languages: &str) -> Result<Engine, DocumentError> {
        let api = start_api(languages).ok_or_else(|| {
            let packages: Vec<String> = languages
                .split('+')
                .map(|l| format!("tesseract-ocr-{}", l.replace('_', "-")))
                .collect();
            DocumentError::Ocr(format!(
                "cannot start tesseract for `{languages}`: is its language data installed ({})?",
                packages.join(", ")
            ))
        })?;
        Ok(Engine {
            languages: languages.to_string(),
            api,
            osd: None,
        })
    }

    /// Clockwise quarter turns that make the page upright, when OSD is sure.
    /// Without the orientation data or with too little text, none.
    fn quarter_turns(&mut self, pix: &OwnedPix) -> u32 {
        if self.osd.is_none() {
            self.osd = start_api("osd");
        }
        let Some(osd) = self.osd else { return 0 };
        let mut degrees = 0;
        let mut confidence = 0.0f32;
        let mut script: *const std::os::raw::c_char = std::ptr::null();
        let mut script_confidence = 0.0f32;
        // SAFETY: the image outlives the call; tesseract keeps its own
        // reference to it until the next SetImage.
        let found = unsafe {
            sys::TessBaseAPISetPageSegMode(osd, sys::PageSegMode::PSM_OSD_ONLY as u32);
            sys::TessBaseAPISetImage2(osd, pix.0);
            sys::TessBaseAPIDetectOrientationScript(
                osd,
                &mut degrees,
                &mut confidence,
                &mut script,
                &mut script_confidence,
            )
        };
        if found == 0 || confidence < MIN_ORIENTATION_CONFIDENCE {
            return 0;
        }
        // OSD reports how far the page is turned clockwise from upright;
        // as many quarter turns the other way, that is three times as many
        // clockwise less full circles, set it straight.
        ((4 - degrees.rem_euclid(360) / 90) % 4) as u32
    }

    /// Tesseract's TSV for one image, and whether it ran out of
    /// [`PAGE_BUDGET`] (the words it found by then are in the TSV).
    fn recognise(&mut self, pix: &OwnedPix, dpi: i32) -> Result<(String, bool), DocumentError> {
        let started = std::time::Instant::now();
        // SAFETY: the image outlives the calls.
        unsafe {
            sys::TessBaseAPISetImage2(self.api, pix.0);
            sys::TessBaseAPISetSourceResolution(self.api, dpi);
        }
        let (failed, tsv) = self.recognise_within(PAGE_BUDGET);
        let over = started.elapsed() >= PAGE_BUDGET;
        if failed && !over {
            return Err(DocumentError::Ocr("recognition failed".into()));
        }
        let tsv = tsv.ok_or_else(|| DocumentError::Ocr("recognition returned no text".into()))?;
        Ok((tsv, over))
    }

    /// Tesseract's TSV for each box (`[left, top, width, height]` in
    /// pixels) of one image, its word boxes in the whole image's pixels.
    /// The boxes are read while the page's [`PAGE_BUDGET`], counted from
    /// `started`, lasts; those left when it runs out are not read (an
    /// empty TSV), which leaves the first reading as it was.
    fn recognise_boxes(
        &mut self,
        pix: &OwnedPix,
        dpi: i32,
        boxes: &[[i32; 4]],
        started: std::time::Instant,
    ) -> Vec<String> {
        // SAFETY: the image outlives the calls.
        unsafe {
            sys::TessBaseAPISetImage2(self.api, pix.0);
            sys::TessBaseAPISetSourceResolution(self.api, dpi);
        }
        let mut readings = Vec::with_capacity(boxes.len());
        for &[left, top, width, height] in boxes {
            let Some(left_over) = PAGE_BUDGET.checked_sub(started.elapsed()) else {
                readings.push(String::new());
                continue;
            };
            // SAFETY: the image set above is still the engine's.
            unsafe { sys::TessBaseAPISetRectangle(self.api, left, top, width, height) };
            let reading = match self.recognise_within(left_over) {
                (false, Some(tsv)) => tsv,
                _ => String::new(),
            };
            readings.push(reading);
        }
        readings
    }

    /// Recognise the image (or the rectangle of it) last set, stopped by
    /// tesseract's monitor after `budget`: whether recognition failed (or
    /// was stopped), and its TSV, if tesseract gave one.
    fn recognise_within(&mut self, budget: std::time::Duration) -> (bool, Option<String>) {
        // SAFETY: the monitor outlives the call and is deleted once; the
        // text tesseract returns is copied and freed with TessDeleteText.
        unsafe {
            let monitor = sys::TessMonitorCreate();
            if !monitor.is_null() {
                sys::TessMonitorSetDeadlineMSecs(monitor, budget.as_millis() as i32);
            }
            let failed = sys::TessBaseAPIRecognize(self.api, monitor) != 0;
            if !monitor.is_null() {
                sys::TessMonitorDelete(monitor);
            }
            let text = sys::TessBaseAPIGetTsvText(self.api, 0);
            if text.is_null() {
                return (failed, None);
            }
            let tsv = std::ffi::CStr::from_ptr(text)
                .to_string_lossy()
                .into_owned();
            sys::TessDeleteText(text);
            (failed, Some(tsv))
        }
    }
}

/// Engines not in use, for the next page in the same languages.
static ENGINES: Mutex<Vec<Engine>> = Mutex::new(Vec::new());

/// Most idle engines kept; more are dropped rather than pooled.
const MAX_IDLE_ENGINES: usize = 8;

fn take_engine(languages: &str) -> Result<Engine, DocumentError> {
    let pooled = ENGINES.lock().ok().and_then(|mut pool| {
        let i = pool.iter().rposition(|e| e.languages == languages)?;
        Some(pool.swap_remove(i))
    });
    match pooled {
        Some(engine) => Ok(engine),
        None => {
            let engine = Engine::start(languages)?;
            static AT_EXIT: std::sync::Once = std::sync::Once::new();
            // Statics are never dropped, and tesseract's own cache reports
            // every model still in use when the process ends; the pool is
            // emptied first. Registered after tesseract has loaded, so it
            // runs before tesseract's cleanup.
            AT_EXIT.call_once(|| {
                // SAFETY: registering a plain function with no captures.
                unsafe {
                    libc::atexit(drop_idle_engines);
                }
            });
            Ok(engine)
        }
    }
}

extern "C" fn drop_idle_engines() {
    if let Ok(mut pool) = ENGINES.lock() {
        pool.clear();
    }
}

fn put_engine(engine: Engine) {
    if let Ok(mut pool) = ENGINES.lock() {
        if pool.len() >= MAX_IDLE_ENGINES {
            pool.remove(0);
        }
        pool.push(engine);
    }
}

/// Page `index` (from 0) of a TIFF as a PNG, for browsers, which show no
/// TIFF.
pub fn tiff_page_png(bytes: &[u8], index: u32) -> Result<Vec<u8>, DocumentError> {
    let scan = PageScan {
        number: index + 1,
        image: bytes.into(),
        tiff_page: Some(index),
        fit: None,
    };
    let pix = decode(&scan)?;
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: leptonica allocates the PNG and hands it over; it is copied
    // out and freed with leptonica's own free.
    unsafe {
        if lept::pixWriteMemPng(&mut data, &mut size, pix.0, 0.0) != 0 || data.is_null() {
            return Err(DocumentError::Ocr(format!(
                "page {} cannot be turned into a PNG",
                index + 1
            )));
        }
        let png = std::slice::from_raw_parts(data, size).to_vec();
        lept::lept_free(data.cast());
        Ok(png)
    }
}

/// Recognise one page: decode, straighten, whiten its paper, read; and
/// when the reading says the page lies on its side or upside down, turn it
/// upright and read it again. Upright pages, nearly all of them, pay
/// nothing for the check. A speckled page (heavy noise, a low JPEG quality)
/// is cleaned first: as it is, tesseract spends a minute on the specks and
/// reads nothing. On an upright page that was not speckled, the lines
/// tesseract was unsure of are read a second time from the page before its
/// paper was whitened (see [`second_reading`](super::second_reading)).
fn read_page(engine: &mut Engine, scan: &PageScan) -> Result<Page, DocumentError> {
    let started = std::time::Instant::now();
    let before = deskew(decode(scan)?);
    let (pix, before) = match whiten_paper(&before) {
        Some(white) => (white, Some(before)),
        None => (before, None),
    };
    let dpi = pix.dpi();
    let (pix, mut page, before) = if speckled(&pix) {
        let (pix, page) = read_speckled(engine, pix, scan.number, dpi)?;
        (pix, page, None)
    } else {
        let page = read_pix(engine, &pix, scan.number, dpi)?;
        (pix, page, before)
    };
    let turns = if looks_turned(&page) {
        engine.quarter_turns(&pix)
    } else {
        0
    };
    if turns != 0 {
        let upright = turn(pix, turns);
        page = read_pix(engine, &upright, scan.number, dpi)?;
    } else if let Some(before) = before {
        read_unsure_lines_again(engine, (&before, &pix), &mut page, dpi, started);
    }
    Ok(match scan.fit {
        // A page turned a quarter fills the PDF page the other way round.
        Some((w, h)) if turns % 2 == 1 => fit_page(page, h, w),
        Some((w, h)) => fit_page(page, w, h),
        None => page,
    })
}

/// The second reading: each unsure line's box, read from `before`, weighed
/// against the first reading word by word; the words the two read
/// otherwise, read a third time from `white` at twice its size. Both take
/// what is left of the page's [`PAGE_BUDGET`], counted from `started`.
fn read_unsure_lines_again(
    engine: &mut Engine,
    (before, white): (&OwnedPix, &OwnedPix),
    page: &mut Page,
    dpi: i32,
    started: std::time::Instant,
) {
    let unsure = second_reading::unsure_lines(page);
    if unsure.is_empty() {
        return;
    }
    let boxes = pixel_boxes(unsure.iter().map(|(_, area)| area), dpi, 1.0);
    let readings = engine.recognise_boxes(before, dpi, &boxes, started);
    let mut disputed = Vec::new();
    for ((line, area), tsv) in unsure.iter().zip(readings) {
        let again = page_from_tsv(&tsv, page.number, f64::from(dpi));
        let disputes = second_reading::weigh(page, *line, &again.words);
        if !disputes.is_empty() {
            disputed.push((area, disputes));
        }
    }
    if disputed.is_empty() {
        return;
    }
    let thirds = match scale_up(white) {
        Some(big) => {
            let boxes = pixel_boxes(disputed.iter().map(|(area, _)| *area), dpi, 2.0);
            engine.recognise_boxes(&big, dpi * 2, &boxes, started)
        }
        None => vec![String::new(); disputed.len()],
    };
    for ((_, disputes), tsv) in disputed.into_iter().zip(thirds) {
        let third = page_from_tsv(&tsv, page.number, f64::from(dpi * 2));
        for dispute in disputes {
            second_reading::settle(page, dispute, &third.words);
        }
    }
}

/// Boxes in points as `[left, top, width, height]` in the pixels of an
/// image at `dpi` scaled by `scale`.
fn pixel_boxes<'a>(areas: impl Iterator<Item = &'a BBox>, dpi: i32, scale: f64) -> Vec<[i32; 4]> {
    let s = f64::from(dpi) / 72.0 * scale;
    areas
        .map(|b| {
            [
                (b.x0 * s).floor() as i32,
                (b.y0 * s).floor() as i32,
                (b.width() * s).ceil() as i32,
                (b.height() * s).ceil() as i32,
            ]
        })
        .collect()
}

/// One reading of an image; a page that ran out of its budget keeps what
/// was read, with every word's confidence capped.
fn read_pix(
    engine: &mut Engine,
    pix: &OwnedPix,
    number: u32,
    dpi: i32,
) -> Result<Page, DocumentError> {
    let (tsv, over) = engine.recognise(pix, dpi)?;
    let mut page = page_from_tsv(&tsv, number, f64::from(dpi));
    if over {
        tracing::warn!(page = number, budget = ?PAGE_BUDGET, "OCR ran out of time on a page; what it read goes to review");
        for w in &mut page.words {
            w.confidence = w.confidence.min(OVER_BUDGET_CONFIDENCE);
        }
    }
    Ok(page)
}

/// A speckled page cleaned with a 3 × 3 median and read; when tesseract is
/// still unsure of it, cleaned harder (5 × 5) and read again, and the
/// reading it is surer of kept.
fn read_speckled(
    engine: &mut Engine,
    noisy: OwnedPix,
    number: u32,
    dpi: i32,
) -> Result<(OwnedPix, Page), DocumentError> {
    let Some(clean) = despeckle(&noisy, 3) else {
        let page = read_pix(engine, &noisy, number, dpi)?;
        return Ok((noisy, page));
    };
    let page = read_pix(engine, &clean, number, dpi)?;
    let sure = mean_confidence(&page);
    if sure >= 0.8 {
        return Ok((clean, page));
    }
    match despeckle(&noisy, 5) {
        Some(harder) => {
            let again = read_pix(engine, &harder, number, dpi)?;
            Ok(if mean_confidence(&again) > sure {
                (harder, again)
            } else {
                (clean, page)
            })
        }
        None => Ok((clean, page)),
    }
}

/// The mean confidence of a page's words of three letters or more.
fn mean_confidence(page: &Page) -> f32 {
    let words: Vec<f32> = page
        .words
        .iter()
        .filter(|w| w.text.chars().count() >= 3)
        .map(|w| w.confidence)
        .collect();
    if words.is_empty() {
        0.0
    } else {
        words.iter().sum::<f32>() / words.len() as f32
    }
}

/// Whether a reading suggests the page is not upright: tesseract reads a
/// page on its side as vertical text (its words come out taller than wide)
/// and an upside-down page as gibberish it is unsure of.
fn looks_turned(page: &Page) -> bool {
    let words: Vec<&Word> = page
        .words
        .iter()
        .filter(|w| w.text.chars().count() >= 3)
        .collect();
    if words.len() < 3 {
        return false;
    }
    let tall = words
        .iter()
        .filter(|w| w.bbox.height() > w.bbox.width())
        .count();
    let mean = words.iter().map(|w| w.confidence).sum::<f32>() / words.len() as f32;
    tall * 2 > words.len() || mean < 0.6
}

/// Recognise page images, up to `threads` at a time, each thread with an
/// engine from the pool. Pages come back in the order given.
pub fn recognise(
    scans: &[PageScan],
    languages: &str,
    threads: usize,
) -> Result<Vec<Page>, DocumentError> {
    let threads = threads.clamp(1, scans.len().max(1));
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Result<Page, DocumentError>>>> =
        scans.iter().map(|_| Mutex::new(None)).collect();
    let work = || -> Result<(), DocumentError> {
        let mut engine = take_engine(languages)?;
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(scan) = scans.get(i) else { break };
            let result = read_page(&mut engine, scan);
            let failed = result.is_err();
            if let Ok(mut slot) = slots[i].lock() {
                *slot = Some(result);
            }
            if failed {
                // The rest of the document is not worth reading.
                next.store(scans.len(), Ordering::Relaxed);
                break;
            }
        }
        put_engine(engine);
        Ok(())
    };
    if threads == 1 {
        work()?;
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads).map(|_| scope.spawn(work)).collect();
            for h in handles {
                match h.join() {
                    Ok(result) => result,
                    Err(_) => Err(DocumentError::ReaderCrashed(
                        "an OCR thread panicked".into(),
                    )),
                }?;
            }
            Ok::<(), DocumentError>(())
        })?;
    }
    let mut pages = Vec::with_capacity(scans.len());
    for slot in slots {
        match slot.into_inner().ok().flatten() {
            Some(result) => pages.push(result?),
            None => return Err(DocumentError::Ocr("a page was not read".into())),
        }
    }
    Ok(pages)
}

/// Put OCR words (in the image's units) into a PDF page's coordinates.
pub fn fit_page(page: Page, width: f64, height: f64) -> Page {
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

/// Words from tesseract's TSV: `level page block par line word left top
/// width height conf text`; level 1 is the page, level 5 a word.
pub fn page_from_tsv(tsv: &str, number: u32, dpi: f64) -> Page {
    let scale = 72.0 / dpi;
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
                    other_reading: None,
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
        let page = page_from_tsv(tsv, 1, 300.0);
        assert!((page.width - 595.44).abs() < 0.01 && (page.height - 841.92).abs() < 0.01);
        assert_eq!(page.words.len(), 2);
        assert_eq!(page.words[1].text, "MusterstraBe");
        assert!((page.words[1].confidence - 0.387).abs() < 1e-6);
        assert_eq!(page.words[0].source, Source::Ocr);
        assert!((page.words[0].bbox.x0 - 49.92).abs() < 0.01);
        assert_eq!(page.lines.len(), 1);
    }

    fn word(text: &str, w: f64, h: f64, confidence: f32) -> Word {
        Word {
            text: text.into(),
            bbox: BBox {
                x0: 0.0,
                y0: 0.0,
                x1: w,
                y1: h,
            },
            confidence,
            source: Source::Ocr,
            other_reading: None,
        }
    }

    #[test]
    fn a_reading_of_tall_words_or_gibberish_means_the_page_is_turned() {
        let page = |words| Page::new(1, 600.0, 800.0, words);
        let upright = page(vec![
            word("Invoice", 40.0, 10.0, 0.95),
            word("Total", 30.0, 10.0, 0.93),
            word("12.50", 30.0, 10.0, 0.91),
        ]);
        assert!(!looks_turned(&upright));
        let sideways = page(vec![
            word("Invoice", 10.0, 40.0, 0.95),
            word("Total", 10.0, 30.0, 0.93),
            word("12.50", 10.0, 30.0, 0.91),
        ]);
        assert!(looks_turned(&sideways));
        let upside_down = page(vec![
            word("ƎƆI", 40.0, 10.0, 0.31),
            word("l0T", 30.0, 10.0, 0.45),
            word("05.2I", 30.0, 10.0, 0.52),
        ]);
        assert!(looks_turned(&upside_down));
        // Too little text to judge: left alone.
        assert!(!looks_turned(&page(vec![word("Hi", 5.0, 20.0, 0.2)])));
    }

    #[test]
    fn template_languages_become_tesseract_codes_with_english_kept() {
        assert_eq!(tesseract_languages(&["de".into()]), "deu+eng");
        assert_eq!(
            tesseract_languages(&["fr".into(), "nl".into()]),
            "fra+nld+eng"
        );
        assert_eq!(tesseract_languages(&["en".into()]), "eng");
        assert_eq!(tesseract_languages(&["chi_sim".into()]), "chi_sim+eng");
        assert_eq!(tesseract_languages(&[]), "eng");
    }
}
