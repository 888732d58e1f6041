//! Evidence: the way back from a match in the prepared text to the words
//! it was read from, their OCR confidence, page and box.

use super::text::{Prepared, cut_token};
use crate::documents::{BBox, Document, DocumentText, Word};

/// What the words under a match say about it: their lowest confidence, and
/// the page and box they are in.
pub type Evidence = (f32, Option<u32>, Option<BBox>);

/// Where field rules run: the prepared text, and the way back to words.
pub struct Source<'a> {
    pub doc: &'a Document,
    pub text: &'a DocumentText,
    pub prepared: &'a Prepared,
}

impl Source<'_> {
    /// See [`cut_token`].
    pub fn cut(&self, range: std::ops::Range<usize>) -> Option<String> {
        cut_token(&self.text.text, self.prepared.original(range))
    }

    /// Lowest confidence, page and box of the words under a match.
    pub fn words(&self, range: std::ops::Range<usize>) -> Evidence {
        let mut confidence: f32 = 1.0;
        let mut page = None;
        let mut bbox: Option<BBox> = None;
        for (p, w) in self.doc.words_in(self.text, self.prepared.original(range)) {
            confidence = confidence.min(w.confidence);
            if page.is_none() {
                page = Some(p);
            }
            if page == Some(p) {
                bbox = Some(bbox.map_or(w.bbox, |b| b.union(&w.bbox)));
            }
        }
        (confidence, page, bbox)
    }

    /// The words under a match that a second reading of the scan read
    /// otherwise, as a reason (see [`other_readings_in`]).
    pub fn other_readings(&self, range: std::ops::Range<usize>) -> Option<String> {
        let words = self.doc.words_in(self.text, self.prepared.original(range));
        differing(words.map(|(_, w)| w))
    }
}

/// The words inside the box of `seen` that a second reading of the scan
/// read otherwise, as a reason for a reviewer: which of the two is right
/// is theirs to say.
pub fn other_readings_in(doc: &Document, seen: &Evidence) -> Option<String> {
    let (_, Some(number), Some(area)) = seen else {
        return None;
    };
    let page = doc.pages.iter().find(|p| p.number == *number)?;
    differing(page.words.iter().filter(|w| {
        w.bbox.x0 >= area.x0 - 0.5
            && w.bbox.x1 <= area.x1 + 0.5
            && w.bbox.y0 >= area.y0 - 0.5
            && w.bbox.y1 <= area.y1 + 0.5
    }))
}

/// How a reason about two differing readings begins.
pub const READINGS_DIFFER: &str = "two readings of the scan differ";

fn differing<'a>(words: impl Iterator<Item = &'a Word>) -> Option<String> {
    let pairs: Vec<String> = words
        .filter_map(|w| {
            let other = w.other_reading.as_deref()?;
            Some(format!("`{}` or `{other}`", w.text))
        })
        .collect();
    (!pairs.is_empty()).then(|| format!("{READINGS_DIFFER}: {}", pairs.join(", ")))
}

/// Evidence of two parts of one value: the lower confidence, and the box
/// around both where they are on the same page (the first page otherwise).
pub fn combine(a: Evidence, b: Evidence) -> Evidence {
    let confidence = a.0.min(b.0);
    match (a.1, b.1) {
        (None, _) => (confidence, b.1, b.2),
        (Some(pa), Some(pb)) if pa == pb => (
            confidence,
            a.1,
            match (a.2, b.2) {
                (Some(x), Some(y)) => Some(x.union(&y)),
                (x, y) => x.or(y),
            },
        ),
        _ => (confidence, a.1, a.2),
    }
}
