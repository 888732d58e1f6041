//! From positioned words to lines in reading order and to layout text.
//!
//! Layout text places every word at the column its x position maps to, with
//! one character cell as wide as the page's typical character, so that text
//! which is aligned on the page is aligned in the text: a label and its value
//! stay apart, and the cells of a table row stay under their headers.

use super::{BBox, Line, Page, Word};

/// Group words into lines: a word joins the line when it shares at least
/// half of its height (or the line's, if smaller) with the line's first
/// word. Overlap rather than equal bottoms, because OCR boxes hug the ink:
/// `Rechnungsdatum:` reaches lower than `23.10.2026` beside it. Lines run
/// top to bottom, words left to right.
pub fn group_lines(words: &[Word]) -> Vec<Line> {
    let mut order: Vec<usize> = (0..words.len()).collect();
    order.sort_by(|&a, &b| {
        let (wa, wb) = (&words[a].bbox, &words[b].bbox);
        let (ca, cb) = (wa.y0 + wa.y1, wb.y0 + wb.y1);
        ca.total_cmp(&cb).then(wa.x0.total_cmp(&wb.x0))
    });
    let mut lines: Vec<Line> = Vec::new();
    // The vertical extent of the first word of the line being built.
    let mut current: Option<(f64, f64)> = None;
    for i in order {
        let b = &words[i].bbox;
        let joins = current.is_some_and(|(top, bottom)| {
            let overlap = b.y1.min(bottom) - b.y0.max(top);
            let smaller = b.height().min(bottom - top).max(0.1);
            overlap >= 0.5 * smaller
        });
        if joins && let Some(line) = lines.last_mut() {
            line.words.push(i);
            line.bbox = line.bbox.union(b);
        } else {
            lines.push(Line {
                words: vec![i],
                bbox: *b,
            });
            current = Some((b.y0, b.y1));
        }
    }
    for line in &mut lines {
        line.words
            .sort_by(|&a, &b| words[a].bbox.x0.total_cmp(&words[b].bbox.x0));
    }
    lines
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// The page as text with columns kept in place (see the module docs).
pub fn layout_text(page: &Page) -> String {
    layout_with_spans(page).0
}

/// Layout text and, for every word, the byte range it occupies in it, so a
/// match in the text leads back to the words (their boxes, their OCR
/// confidence).
pub fn layout_with_spans(page: &Page) -> (String, Vec<(std::ops::Range<usize>, usize)>) {
    let words = &page.words;
    let mut spans = Vec::with_capacity(words.len());
    if words.is_empty() {
        return (String::new(), spans);
    }
    let cell = median(
        words
            .iter()
            .filter(|w| !w.text.is_empty())
            .map(|w| w.bbox.width() / w.text.chars().count() as f64)
            .filter(|c| *c > 0.0)
            .collect(),
    )
    .unwrap_or(5.0)
    .max(0.5);
    let line_height = median(page.lines.iter().map(|l| l.bbox.height()).collect())
        .unwrap_or(10.0)
        .max(1.0);
    let left = words
        .iter()
        .map(|w| w.bbox.x0)
        .fold(f64::INFINITY, f64::min);

    let mut out = String::new();
    let mut previous: Option<&BBox> = None;
    for line in &page.lines {
        if let Some(prev) = previous {
            // Ordinary line spacing and padded table rows (up to about twice
            // the text height) need no blank line; wider gaps get one per
            // two line heights, at most three.
            let gap = (line.bbox.y1 - prev.y1) / line_height;
            let blanks = (gap / 2.0).floor().clamp(0.0, 3.0) as usize;
            out.push('\n');
            for _ in 0..blanks {
                out.push('\n');
            }
        }
        let mut text = String::new();
        let mut len = 0usize;
        let mut prev_end: Option<f64> = None;
        for &i in &line.words {
            let w = &words[i];
            let column = ((w.bbox.x0 - left) / cell).round().max(0.0) as usize;
            // A gap of about one space in the word's own font is a space,
            // whatever its size: large headings do not spread out.
            let own = w.bbox.width() / w.text.chars().count().max(1) as f64;
            let at = match prev_end {
                None => column,
                Some(end) if w.bbox.x0 - end < 2.0 * own => len + 1,
                Some(_) => column.max(len + 1),
            };
            prev_end = Some(w.bbox.x1);
            text.extend(std::iter::repeat_n(' ', at - len));
            let start = out.len() + text.len();
            text.push_str(&w.text);
            spans.push((start..start + w.text.len(), i));
            len = at + w.text.chars().count();
        }
        out.push_str(&text);
        previous = Some(&line.bbox);
    }
    (out, spans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::Source;

    /// A word of 10-point text whose characters are 5 points wide, with its
    /// baseline at `y`.
    fn word(text: &str, x: f64, y: f64) -> Word {
        Word {
            text: text.into(),
            bbox: BBox {
                x0: x,
                y0: y - 10.0,
                x1: x + 5.0 * text.chars().count() as f64,
                y1: y,
            },
            confidence: 1.0,
            source: Source::TextLayer,
            other_reading: None,
        }
    }

    #[test]
    fn words_on_one_baseline_form_a_line_in_reading_order() {
        let words = vec![
            word("B", 200.0, 100.5),
            word("second", 50.0, 112.0),
            word("A", 50.0, 100.0),
        ];
        let lines = group_lines(&words);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].words, vec![2, 0]);
        assert_eq!(lines[1].words, vec![1]);
    }

    #[test]
    fn labels_and_values_keep_their_columns() {
        let words = vec![
            word("Invoice", 50.0, 100.0),
            word("number", 90.0, 100.0),
            word("INV-1041", 300.0, 100.0),
            word("Date", 50.0, 112.0),
            word("01.02.2026", 300.0, 112.0),
        ];
        let page = Page::new(1, 595.0, 842.0, words);
        let text = page.layout_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(
            lines[0].find("INV-1041"),
            lines[1].find("01.02.2026"),
            "{text}"
        );
        assert!(lines[0].starts_with("Invoice number   "), "{text}");
        // 250 points at 5 points a character: column 50.
        assert_eq!(lines[0].find("INV-1041"), Some(50));
    }

    #[test]
    fn table_cells_stay_under_their_headers_and_gaps_become_blank_lines() {
        let words = vec![
            word("Item", 50.0, 100.0),
            word("Qty", 250.0, 100.0),
            word("Amount", 400.0, 100.0),
            word("Paper", 50.0, 112.0),
            word("10", 250.0, 112.0),
            word("61,25", 400.0, 112.0),
            word("Total", 50.0, 160.0),
            word("61,25", 400.0, 160.0),
        ];
        let text = Page::new(1, 595.0, 842.0, words).layout_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0].find("Qty"), lines[1].find("10"));
        assert_eq!(lines[0].find("Amount"), lines[1].find("61,25"));
        // 48 points below, about four line heights: blank lines between.
        assert!(lines[2].trim().is_empty(), "{text}");
        assert_eq!(
            lines.last().and_then(|l| l.find("61,25")),
            lines[0].find("Amount")
        );
    }

    #[test]
    fn words_that_would_touch_keep_a_space() {
        let words = vec![word("Totalbetrag", 50.0, 100.0), word("EUR", 100.0, 100.0)];
        let text = Page::new(1, 595.0, 842.0, words).layout_text();
        assert_eq!(text, "Totalbetrag EUR");
    }
}
