//! A second reading of the lines OCR was unsure of, from the page as it was
//! before its paper was whitened: a different image of the same ink, so a
//! misreading that comes from the image (a lost umlaut, grain read as a
//! stroke) seldom comes out the same twice. Where both readings agree on a
//! word, it keeps the surer of the two confidences; where they differ, a
//! third reading (the whitened page at twice the size) decides when it
//! agrees with one of them, and otherwise the word goes to review with the
//! other reading beside it.

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

/// A word the second reading read otherwise: which of the page's words,
/// the confidence it had, and what the second reading made of it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Dispute {
    pub word: usize,
    confidence: f32,
    other: Vec<Word>,
}

/// Weigh line `line` of `page` against its second reading `again` (the
/// words read from that line's box). Each word of the line is matched with
/// the words of the second reading it overlaps across more than half of
/// the narrower's width; a word the second reading has nothing for is left
/// as it was (the line's box may have cut it). A word both read alike keeps
/// the surer confidence; the words read otherwise come back as disputes.
pub(super) fn weigh(page: &mut Page, line: usize, again: &[Word]) -> Vec<Dispute> {
    let mut disputes = Vec::new();
    let Some(line) = page.lines.get(line) else {
        return disputes;
    };
    for &i in &line.words {
        let Some(word) = page.words.get_mut(i) else {
            continue;
        };
        let over = overlapping(word, again);
        if over.is_empty() {
            continue;
        }
        if same(word, &over) {
            let best = over.iter().map(|o| o.confidence).fold(0.0, f32::max);
            word.confidence = word.confidence.max(best);
        } else {
            disputes.push(Dispute {
                word: i,
                confidence: word.confidence,
                other: over.into_iter().cloned().collect(),
            });
        }
    }
    disputes
}

/// Settle a dispute by a third reading (`third`: the words read from the
/// line's box in a third image, or nothing when there is none): the
/// reading two of the three agree on is kept, at the surer confidence of
/// the two; when the second and third agree on a single word, its text
/// replaces the first reading's. Otherwise the word goes to review at
/// [`READINGS_DIFFER`] with the second reading beside it.
pub(super) fn settle(page: &mut Page, dispute: Dispute, third: &[Word]) {
    let Some(word) = page.words.get_mut(dispute.word) else {
        return;
    };
    let over = overlapping(word, third);
    let best = |words: &[&Word]| words.iter().map(|o| o.confidence).fold(0.0, f32::max);
    if !over.is_empty() && same(word, &over) {
        word.confidence = dispute.confidence.max(best(&over));
        return;
    }
    let others: Vec<&Word> = dispute.other.iter().collect();
    if let ([second], false) = (others.as_slice(), over.is_empty())
        && same(second, &over)
    {
        word.text = second.text.clone();
        word.confidence = second.confidence.max(best(&over));
        return;
    }
    word.confidence = dispute.confidence.min(READINGS_DIFFER);
    let texts: Vec<&str> = others.iter().map(|o| o.text.as_str()).collect();
    word.other_reading = Some(texts.join(" "));
}

/// The words of `reading` that overlap `word` across more than half of the
/// narrower's width, on the same line.
fn overlapping<'a>(word: &Word, reading: &'a [Word]) -> Vec<&'a Word> {
    if !has_alphanumeric(&word.text) {
        return Vec::new();
    }
    reading
        .iter()
        .filter(|o| overlaps(&word.bbox, &o.bbox))
        .collect()
}

/// Whether `others` read the same as `word`. A word split in two is the
/// same reading when its characters are.
fn same(word: &Word, others: &[&Word]) -> bool {
    let text: String = others.iter().map(|o| o.text.as_str()).collect();
    core(&text) == core(&word.text)
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
        let disputes = weigh(&mut p, 0, &again);
        assert_eq!(p.words[0].confidence, 0.97);
        assert_eq!(p.words[2].confidence, 0.95, "agreement keeps the surer");
        assert_eq!(disputes.len(), 1);
        // A third reading that agrees with neither: to review.
        settle(
            &mut p,
            disputes[0].clone(),
            &[word("Briefumschloge", 60.0, 0.9)],
        );
        assert_eq!(p.words[1].text, "Briefumschlage");
        assert_eq!(p.words[1].confidence, READINGS_DIFFER);
        assert_eq!(p.words[1].other_reading.as_deref(), Some("Briefumschläge"));
        assert_eq!(p.words[2].other_reading, None);
    }

    #[test]
    fn two_readings_of_three_that_agree_decide_a_dispute() {
        // The third agrees with the first: the first stands, unflagged.
        let mut p = page(vec![word("Stk.)", 10.0, 0.91)]);
        let disputes = weigh(&mut p, 0, &[word("Sik.)", 10.0, 0.7)]);
        settle(&mut p, disputes[0].clone(), &[word("Stk.)", 10.0, 0.93)]);
        assert_eq!(p.words[0].text, "Stk.)");
        assert_eq!(p.words[0].confidence, 0.93);
        assert_eq!(p.words[0].other_reading, None);
        // The third agrees with the second: the second's text is taken.
        let mut p = page(vec![word("Briefumschlage", 10.0, 0.9)]);
        let disputes = weigh(&mut p, 0, &[word("Briefumschläge", 10.0, 0.94)]);
        settle(
            &mut p,
            disputes[0].clone(),
            &[word("Briefumschläge", 10.0, 0.96)],
        );
        assert_eq!(p.words[0].text, "Briefumschläge");
        assert_eq!(p.words[0].confidence, 0.96);
        assert_eq!(p.words[0].other_reading, None);
        // No third reading (its image could not be made): to review.
        let mut p = page(vec![word("Stk.)", 10.0, 0.91)]);
        let disputes = weigh(&mut p, 0, &[word("Sik.)", 10.0, 0.7)]);
        settle(&mut p, disputes[0].clone(), &[]);
        assert_eq!(p.words[0].confidence, READINGS_DIFFER);
    }

    #[test]
    fn punctuation_at_a_word_end_is_no_difference_but_inside_a_number_it_is() {
        let mut p = page(vec![word("1", 10.0, 0.9), word("1.234,50", 300.0, 0.9)]);
        let again = vec![word("1:", 10.0, 0.6), word("1234,50", 300.0, 0.9)];
        let disputes = weigh(&mut p, 0, &again);
        assert_eq!(p.words[0].confidence, 0.9);
        assert_eq!(disputes.len(), 1);
        assert_eq!(disputes[0].word, 1);
    }

    #[test]
    fn a_word_split_in_two_the_second_time_is_compared_as_a_whole() {
        let mut p = page(vec![word("Whiteboard-Marker", 10.0, 0.9)]);
        let mut again = vec![word("Whiteboard-", 10.0, 0.92), word("Marker", 76.0, 0.9)];
        assert!(weigh(&mut p, 0, &again).is_empty());
        assert_eq!(p.words[0].confidence, 0.92);
        let mut p = page(vec![word("Whiteboard-Marker", 10.0, 0.9)]);
        again[1].text = "Maker".into();
        let disputes = weigh(&mut p, 0, &again);
        settle(&mut p, disputes[0].clone(), &[]);
        assert_eq!(p.words[0].confidence, READINGS_DIFFER);
        assert_eq!(
            p.words[0].other_reading.as_deref(),
            Some("Whiteboard- Maker")
        );
        let mut p = page(vec![word("Set", 10.0, 0.9)]);
        assert!(weigh(&mut p, 0, &[]).is_empty());
        assert_eq!(p.words[0].confidence, 0.9, "nothing read there: left alone");
    }
}
