//! The `lines` parser: a table between a start and an end line, read row
//! by row as invoice2data reads it (rows over several lines with
//! `first_line` and `last_line`), each cell typed, each row's confidence
//! taken from its words. A line inside the table that no pattern reads is
//! a row that may have been lost: the table is flagged with its text.

use fancy_regex::{Captures, Regex};
use serde_json::{Map, Value};

use super::evidence::{Evidence, Source, combine, other_readings_in};
use super::fields::typed;
use super::template::{FieldType, LinesRule, LinesSet, Options};
use super::{Field, costly};

type Row = Map<String, Value>;

/// The first of `patterns` that matches `line`; a pattern that gives up
/// (too much backtracking) is an error, never "no match".
fn first_match<'r, 'l>(
    patterns: &'r [Regex],
    line: &'l str,
) -> Result<Option<(&'r Regex, Captures<'l, str>)>, String> {
    for p in patterns {
        match p.captures(line) {
            Ok(Some(caps)) => return Ok(Some((p, caps))),
            Ok(None) => {}
            Err(e) => return Err(costly(p, &e)),
        }
    }
    Ok(None)
}

/// The named groups of a match, as text; a group that did not take part
/// is empty, as in invoice2data.
fn named(regex: &Regex, caps: &Captures<str>) -> Row {
    regex
        .capture_names()
        .flatten()
        .map(|n| {
            let text = caps.name(n).map_or("", |m| m.as_str().trim());
            (n.to_string(), Value::String(text.to_string()))
        })
        .collect()
}

/// Add a continuation line to a row as invoice2data does: a cell read
/// again is appended on a new line.
fn merge(row: &mut Row, more: Row) {
    for (k, v) in more {
        let new = v.as_str().unwrap_or_default().to_string();
        match row.get_mut(&k) {
            Some(Value::String(old)) if !old.is_empty() => {
                old.push('\n');
                old.push_str(&new);
            }
            _ => {
                row.insert(k, Value::String(new));
            }
        }
    }
}

/// A row being read, with the evidence of its words.
struct Reading {
    rows: Vec<(Row, Evidence)>,
    /// Lines inside the table that no pattern read.
    unread: Vec<String>,
    /// Lines inside the table `skip_line` dropped.
    skipped: Vec<String>,
}

pub(super) fn apply_lines(
    rule: &LinesRule,
    source: &Source,
    options: &Options,
) -> Result<Field, String> {
    let text = source.prepared.text.as_str();
    let mut rows: Vec<Row> = Vec::new();
    let mut evidence: Vec<Evidence> = Vec::new();
    let mut reasons = Vec::new();
    let mut confidence: f32 = 1.0;
    let mut found_block = false;
    let mut not_read = Vec::new();
    let mut missing = "the start of the table was not found";
    for set in &rule.sets {
        let blocks = blocks(set, text)?;
        if blocks.is_empty() && set.start.is_match(text).unwrap_or(false) {
            missing = "the end of the table was not found";
        }
        found_block |= !blocks.is_empty();
        let mut reading = Reading {
            rows: Vec::new(),
            unread: Vec::new(),
            skipped: Vec::new(),
        };
        for (offset, block) in blocks {
            read_block(set, source, offset, block, &mut reading)?;
        }
        if !set.other_lines_expected && !reading.unread.is_empty() {
            confidence = confidence.min(0.4);
            for line in &reading.unread {
                reasons.push(format!(
                    "a line inside the table was read as no row: `{line}`"
                ));
            }
        }
        not_read.extend(reading.skipped.iter().map(|l| format!("skipped: `{l}`")));
        not_read.extend(
            reading
                .unread
                .iter()
                .map(|l| format!("read as no row: `{l}`")),
        );
        let first = rows.len();
        for (row, seen) in reading.rows {
            rows.push(row);
            evidence.push(seen);
        }
        type_rows(
            set,
            options,
            &mut rows[first..],
            first,
            &mut confidence,
            &mut reasons,
        );
    }
    if !found_block {
        return Err(missing.into());
    }
    if rows.is_empty() {
        return Err("the table has no rows".into());
    }
    let mut table = (1.0f32, None, None);
    for (i, seen) in evidence.iter().enumerate() {
        confidence = confidence.min(seen.0);
        if seen.0 < 0.8 {
            let mut reason = format!("row {}: OCR confidence {:.2}", i + 1, seen.0);
            if let Some(other) = other_readings_in(source.doc, seen) {
                reason = format!("{reason}; {other}");
            }
            reasons.push(reason);
        }
        table = combine(table, *seen);
    }
    let first = &rule.sets[0];
    Ok(Field {
        value: Value::Array(rows.into_iter().map(Value::Object).collect()),
        raw: None,
        confidence,
        rule: format!("lines: {} … {}", first.start.as_str(), first.end.as_str()),
        reasons,
        confirmed: Vec::new(),
        lines_not_read: not_read,
        page: table.1,
        bbox: table.2,
    })
}

/// Every `start` … `end` block of `text` with where it begins, as
/// invoice2data reads them: a table continued on the next page (its end
/// "Carried forward", its start the repeated header) is read to its end.
fn blocks<'t>(set: &LinesSet, text: &'t str) -> Result<Vec<(usize, &'t str)>, String> {
    let mut found = Vec::new();
    let mut from = 0;
    loop {
        let start = match set.start.find_from_pos(text, from) {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => return Err(costly(&set.start, &e)),
        };
        let after = start.end();
        let end = if set.end_at_last {
            let mut last = None;
            for m in set.end.find_iter(&text[after..]) {
                last = Some(m.map_err(|e| costly(&set.end, &e))?);
            }
            last.map(|m| (after + m.start(), after + m.end()))
        } else {
            set.end
                .find_from_pos(text, after)
                .map_err(|e| costly(&set.end, &e))?
                .map(|m| (m.start(), m.end()))
        };
        let Some((end_start, end_end)) = end else {
            break;
        };
        found.push((after, &text[after..end_start]));
        // An empty match must not hold the search in place.
        from = end_end.max(after + 1);
        if from > text.len() {
            break;
        }
    }
    Ok(found)
}

/// Read the rows of one block, which begins at byte `offset` of the text.
fn read_block(
    set: &LinesSet,
    source: &Source,
    offset: usize,
    block: &str,
    reading: &mut Reading,
) -> Result<(), String> {
    // Without first_line and last_line, every `line` match is a row.
    let starts = if set.first_line.is_empty() && set.last_line.is_empty() {
        &set.line
    } else {
        &set.first_line
    };
    let mut current: Option<(Row, Evidence)> = None;
    let mut open = false;
    let mut line_start = offset;
    let pieces: Vec<&str> = block.split_inclusive('\n').collect();
    let count = pieces.len();
    for (index, raw_line) in pieces.into_iter().enumerate() {
        // The rest of the start line and the beginning of the end line
        // belong to the table's header and footer, not to its rows.
        let header_or_footer = (index == 0 && !source.prepared.text[..offset].ends_with('\n'))
            || (index + 1 == count && !raw_line.ends_with('\n'));
        let at = line_start;
        line_start += raw_line.len();
        let line = raw_line.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            continue;
        }
        if first_match(&set.skip_line, line)?.is_some() {
            reading.skipped.push(line.trim().to_string());
            continue;
        }
        let seen = |regex: &Regex, caps: &Captures<str>| {
            regex
                .capture_names()
                .flatten()
                .filter_map(|n| caps.name(n))
                .map(|m| source.words(at + m.start()..at + m.end()))
                .fold((1.0f32, None, None), combine)
        };
        if let Some((regex, caps)) = first_match(starts, line)? {
            reading.rows.extend(current.take());
            current = Some((named(regex, &caps), seen(regex, &caps)));
            open = true;
            continue;
        }
        if open {
            if let Some((regex, caps)) = first_match(&set.last_line, line)? {
                if let Some((row, ev)) = current.as_mut() {
                    merge(row, named(regex, &caps));
                    *ev = combine(*ev, seen(regex, &caps));
                }
                reading.rows.extend(current.take());
                open = false;
                continue;
            }
            if let Some((regex, caps)) = first_match(&set.line, line)? {
                if let Some((row, ev)) = current.as_mut() {
                    merge(row, named(regex, &caps));
                    *ev = combine(*ev, seen(regex, &caps));
                }
                continue;
            }
        }
        // A rule of dashes is no lost row; text or numbers may be.
        if !header_or_footer && line.chars().any(char::is_alphanumeric) {
            reading.unread.push(line.trim().to_string());
        }
    }
    reading.rows.extend(current.take());
    // A row in which no column was read is not a row.
    reading.rows.retain(|(row, _)| {
        row.values()
            .any(|v| v.as_str().is_none_or(|s| !s.is_empty()))
    });
    Ok(())
}

/// Type the cells of `rows` (numbered from `first`) as the set says.
fn type_rows(
    set: &LinesSet,
    options: &Options,
    rows: &mut [Row],
    first: usize,
    confidence: &mut f32,
    reasons: &mut Vec<String>,
) {
    for (i, row) in rows.iter_mut().enumerate() {
        for (name, kind) in &set.types {
            if let Some(Value::String(raw)) = row.get(name).cloned() {
                match typed(&raw, *kind, options) {
                    Ok(v) => {
                        if *kind == FieldType::Float
                            && let Some(d) =
                                super::values::separator_doubt(&raw, options.decimal_separator)
                        {
                            *confidence = confidence.min(0.3);
                            reasons.push(format!("row {}: `{name}`: {d}", first + i + 1));
                        }
                        row.insert(name.clone(), v);
                    }
                    Err(e) => {
                        // A cell that does not parse is a misreading.
                        *confidence = confidence.min(0.5);
                        reasons.push(format!("row {}: `{name}`: {e}", first + i + 1));
                    }
                }
            }
        }
    }
}
