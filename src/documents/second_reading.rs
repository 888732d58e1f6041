//! A second reading of the lines OCR was unsure of, from the page as it was
//! before its paper was whitened: a different image of the same ink, so a
//! misreading that comes from the image (a lost umlaut, grain read as a
//! stroke) seldom comes out the same twice. Where both readings agree on a
//! word, it keeps the surer of the two confidences; where they differ, the
//! word goes to review with the other reading beside it.

use super::{BBox, Page, Word};

/// A line holding a word below this confidence is read a second time.
/// Values pass at 0.8; a word a little above that can still hide a wrong
/// character (`Briefumschlage` at 0.90), so the margin is wide.
const RECHECK_BELOW: f32 = 0.95;

/// The confidence of a word the two readings differ on: one of them is
/// wrong, and nothing says which.
pub const READINGS_DIFFER: f32 = 0.5;

/// The lines of a page worth a second look: those with a word of letters or
/// digits below [`RECHECK_BELOW`]. Each comes as its index in
/// `page.lines` and its box, widened by half its height on every side so
/// the second reading sees the whole of its ink.
pub(super) fn unsure_lines(page: &Page) -> Vec<(usize, BBox)> {
    page.lines
        .iter()
        .enumerate()
        .filter(|(_, line)| {
            line.words.iter().any(|&i| {
                let w = &page.words[i];
                w.confidence < RECHECK_BELOW && has_alphanumeric(&w.text)
            })
        })
        .map(|(i, line)| {
            let margin = line.bbox.height() / 2.0;
            let b = BBox {
                x0: (line.bbox.x0 - margin).max(0.0),
                y0: (line.bbox.y0 - margin).max(0.0),
                x1: (line.bbox.x1 + margin).min(page.width),
                y1: (line.bbox.y1 + margin).min(page.height),
            };
            (i, b)
        })
        .collect()
}

/// Weigh line `line` of `page` against its second reading `again` (the
/// words read from that line's box). Each word of the line is matched with
/// the words of the second reading it overlaps across more than half of
/// the narrower's width; a word the second reading has nothing for is left
/// as it was (the line's box may have cut it).
pub(super) fn weigh(page: &mut Page, line: usize, again: &[Word]) {
    let Some(line) = page.lines.get(line) else {
        return;
    };
    for &i in &line.words {
        let Some(word) = page.words.get_mut(i) else {
            continue;
        };
        if !has_alphanumeric(&word.text) {
            continue;
        }
        let over: Vec<&Word> = again
            .iter()
            .filter(|o| overlaps(&word.bbox, &o.bbox))
            .collect();
        if over.is_empty() {
            continue;
        }
        let other: Vec<&str> = over.iter().map(|o| o.text.as_str()).collect();
        // A word the second reading splits in two is the same reading when
        // its characters are.
        if core(&other.concat()) == core(&word.text) {
            let best = over.iter().map(|o| o.confidence).fold(0.0, f32::max);
            word.confidence = word.confidence.max(best);
        } else {
            word.confidence = word.confidence.min(READINGS_DIFFER);
            word.other_reading = Some(other.join(" "));
        }
    }
}

/// A word without what OCR likes to add at its ends: `1:` and `1` are the
/// same reading of a row's number, `1.234,50` and `1234,50` are not.
fn core(text: &str) -> &str {
    text.trim_matches(|c: char| !c.is_alphanumeric())
}

fn has_alphanumeric(text: &str) -> bool {
    text.chars().any(char::is_alphanumeric)
}

fn overlaps(a: &BBox, b: &BBox) -> bool {
    let shared = a.x1.min(b.x1) - a.x0.max(b.x0);
    let vertical = a.y1.min(b.y1) - a.y0.max(b.y0);
    shared > 0.5 * a.width().min(b.width()) && vertical > 0.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::Source;

    fn word(text: &str, x: f64, confidence: f32) -> Word {
        Word {
            text: text.into(),
            bbox: BBox {
                x0: x,
                y0: 100.0,
                x1: x + 6.0 * text.chars().count() as f64,
                y1: 110.0,
            },
            confidence,
            source: Source::Ocr,
            other_reading: None,
        }
    }

    fn page(words: Vec<Word>) -> Page {
        Page::new(1, 595.0, 842.0, words)
    }

    #[test]
    fn only_lines_with_an_unsure_word_of_letters_or_digits_are_read_again() {
        let mut words = vec![word("Total", 10.0, 0.99), word("12,50", 80.0, 0.97)];
        words.push(word("Briefumschlage", 10.0, 0.90));
        words.last_mut().unwrap().bbox.y0 = 200.0;
        words.last_mut().unwrap().bbox.y1 = 210.0;
        words.push(word("|", 10.0, 0.2));
        words.last_mut().unwrap().bbox.y0 = 300.0;
        words.last_mut().unwrap().bbox.y1 = 310.0;
        let unsure = unsure_lines(&page(words));
        assert_eq!(unsure.len(), 1);
        let b = unsure[0].1;
        assert!(b.y0 < 200.0 && b.y1 > 210.0, "the box has a margin: {b:?}");
    }

    #[test]
    fn a_word_read_differently_the_second_time_goes_to_review_with_the_other_reading() {
        let mut p = page(vec![
            word("4", 10.0, 0.96),
            word("Briefumschlage", 60.0, 0.90),
            word("961,08", 300.0, 0.93),
        ]);
        let again = vec![
            word("4", 10.0, 0.97),
            word("Briefumschläge", 60.0, 0.94),
            word("961,08", 300.0, 0.95),
        ];
        weigh(&mut p, 0, &again);
        assert_eq!(p.words[0].confidence, 0.97);
        assert_eq!(p.words[1].confidence, READINGS_DIFFER);
        assert_eq!(p.words[1].other_reading.as_deref(), Some("Briefumschläge"));
        assert_eq!(
            p.words[2].confidence, 0.95,
            "agreement keeps the surer reading"
        );
        assert_eq!(p.words[2].other_reading, None);
    }

    #[test]
    fn punctuation_at_a_word_end_is_no_difference_but_inside_a_number_it_is() {
        let mut p = page(vec![word("1", 10.0, 0.9), word("1.234,50", 300.0, 0.9)]);
        let again = vec![word("1:", 10.0, 0.6), word("1234,50", 300.0, 0.9)];
        weigh(&mut p, 0, &again);
        assert_eq!(p.words[0].confidence, 0.9);
        assert_eq!(p.words[1].confidence, READINGS_DIFFER);
    }

    #[test]
    fn a_word_split_in_two_the_second_time_is_compared_as_a_whole() {
        let mut p = page(vec![word("Whiteboard-Marker", 10.0, 0.9)]);
        let mut again = vec![word("Whiteboard-", 10.0, 0.92), word("Marker", 76.0, 0.9)];
        weigh(&mut p, 0, &again);
        assert_eq!(p.words[0].confidence, 0.92);
        let mut p = page(vec![word("Whiteboard-Marker", 10.0, 0.9)]);
        again[1].text = "Maker".into();
        weigh(&mut p, 0, &again);
        assert_eq!(p.words[0].confidence, READINGS_DIFFER);
        assert_eq!(
            p.words[0].other_reading.as_deref(),
            Some("Whiteboard- Maker")
        );
        let mut p = page(vec![word("Set", 10.0, 0.9)]);
        again.truncate(0);
        weigh(&mut p, 0, &again);
        assert_eq!(p.words[0].confidence, 0.9, "nothing read there: left alone");
    }
}
