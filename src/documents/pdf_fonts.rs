//! Glyph widths of CID fonts put in the form pdf-extract reads.
//!
//! A Type0 (CID) font lists its glyphs' widths in `/W` in two forms, mixed
//! freely: `c [w1 w2 …]` (widths of consecutive CIDs from `c`) and
//! `c_first c_last w` (one width for a range). pdf-extract 0.12 reads only
//! the first; a range's glyphs get the default width, which Chromium and
//! office suites write as 0. Text printed by a browser then comes out with
//! a word boundary after every such glyph (`A lp en ro se`). Every range is
//! rewritten here as the first form before pdf-extract sees the document.

use lopdf::{Dictionary, Object};

/// The most widths one document's ranges are spelled out to: a CID font
/// has at most 65,536 glyphs; a hostile `/W` that claims more than this
/// keeps its remaining ranges as they are (their glyphs read as before).
const MAX_WIDTHS: usize = 1 << 17;

/// Rewrite the `/W` of every CID font in `doc` in the `c [w1 w2 …]` form.
pub(super) fn spell_out_cid_widths(doc: &mut lopdf::Document) {
    let fonts: Vec<lopdf::ObjectId> = doc
        .objects
        .iter()
        .filter(|(_, o)| o.as_dict().is_ok_and(is_cid_font))
        .map(|(id, _)| *id)
        .collect();
    let mut budget = MAX_WIDTHS;
    for id in fonts {
        let Some(widths) = widths_of(doc, id) else {
            continue;
        };
        let spelled = spell_out(doc, &widths, &mut budget);
        if let Ok(Object::Dictionary(font)) = doc.get_object_mut(id) {
            font.set("W", Object::Array(spelled));
        }
    }
}

fn is_cid_font(font: &Dictionary) -> bool {
    let subtype = font.get(b"Subtype").and_then(Object::as_name);
    matches!(subtype, Ok(b"CIDFontType2" | b"CIDFontType0")) && font.has(b"W")
}

/// The font's `/W`, followed if it is a reference.
fn widths_of(doc: &lopdf::Document, id: lopdf::ObjectId) -> Option<Vec<Object>> {
    let font = doc.get_object(id).ok()?.as_dict().ok()?;
    let w = font.get(b"W").ok()?;
    let (_, w) = doc.dereference(w).ok()?;
    w.as_array().ok().cloned()
}

fn number(doc: &lopdf::Document, o: &Object) -> Option<f64> {
    let (_, o) = doc.dereference(o).ok()?;
    match o {
        Object::Integer(i) => Some(*i as f64),
        Object::Real(r) => Some(f64::from(*r)),
        _ => None,
    }
}

/// `/W` with every `c_first c_last w` as `c_first [w w …]`; entries that
/// are neither form end the rewriting, and the rest is kept as it was.
fn spell_out(doc: &lopdf::Document, w: &[Object], budget: &mut usize) -> Vec<Object> {
    let mut out = Vec::with_capacity(w.len());
    let mut i = 0;
    while i < w.len() {
        let first = number(doc, &w[i]);
        let next = w.get(i + 1).map(|o| doc.dereference(o).map(|(_, o)| o));
        match (first, next) {
            (Some(_), Some(Ok(Object::Array(list)))) => {
                out.push(w[i].clone());
                out.push(Object::Array(list.clone()));
                i += 2;
            }
            (Some(c_first), Some(Ok(_))) => {
                let c_last = w.get(i + 1).and_then(|o| number(doc, o));
                let width = w.get(i + 2).and_then(|o| number(doc, o));
                let (Some(c_last), Some(width)) = (c_last, width) else {
                    break;
                };
                let count = (c_last - c_first + 1.0).max(0.0) as usize;
                if count > *budget {
                    break;
                }
                *budget -= count;
                out.push(Object::Integer(c_first as i64));
                out.push(Object::Array(vec![Object::Real(width as f32); count]));
                i += 3;
            }
            _ => break,
        }
    }
    out.extend(w[i..].iter().cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(v: &[i64]) -> Vec<Object> {
        v.iter().map(|&i| Object::Integer(i)).collect()
    }

    #[test]
    fn ranges_are_spelled_out_and_lists_kept() {
        let doc = lopdf::Document::new();
        let mut w = ints(&[0]);
        w.push(Object::Array(ints(&[365, 0])));
        w.extend(ints(&[81, 83, 610]));
        w.extend(ints(&[85]));
        w.push(Object::Array(ints(&[389])));
        let mut budget = MAX_WIDTHS;
        let out = spell_out(&doc, &w, &mut budget);
        assert_eq!(out.len(), 6);
        assert_eq!(out[2], Object::Integer(81));
        assert_eq!(out[3], Object::Array(vec![Object::Real(610.0); 3]));
        assert_eq!(out[5], Object::Array(ints(&[389])));
        assert_eq!(budget, MAX_WIDTHS - 3);
    }

    #[test]
    fn a_range_beyond_the_budget_or_a_broken_entry_is_left_as_it_was() {
        let doc = lopdf::Document::new();
        let w = ints(&[0, 4_000_000_000, 500, 7]);
        let mut budget = MAX_WIDTHS;
        assert_eq!(spell_out(&doc, &w, &mut budget), w);
        let w = ints(&[1, 2]);
        assert_eq!(spell_out(&doc, &w, &mut budget), w);
    }
}
