//! The `lines` parser: a table between a start and an end line, read row
//! by row (rows over several lines with `first_line` and `last_line`),
//! each cell typed, each row's confidence taken from its words.

use serde_json::Value;

use super::evidence::{Evidence, Source, combine};
use super::fields::typed;
use super::{Field, template};

/// The named groups of a match, as text.
fn named(
    regex: &fancy_regex::Regex,
    caps: &fancy_regex::Captures<str>,
) -> serde_json::Map<String, Value> {
    regex
        .capture_names()
        .flatten()
        .filter_map(|n| {
            caps.name(n)
                .map(|m| (n.to_string(), Value::String(m.as_str().trim().to_string())))
        })
        .collect()
}

/// Merge a continuation line into a row: text is appended, new keys added.
fn merge(row: &mut serde_json::Map<String, Value>, more: serde_json::Map<String, Value>) {
    for (k, v) in more {
        match (row.get_mut(&k), v) {
            (Some(Value::String(old)), Value::String(new)) if !new.is_empty() => {
                if !old.is_empty() {
                    old.push(' ');
                }
                old.push_str(&new);
            }
            (None, v) => {
                row.insert(k, v);
            }
            _ => {}
        }
    }
}

pub(super) fn apply_lines(
    rule: &template::LinesRule,
    source: &Source,
    options: &template::Options,
) -> Result<Field, String> {
    let blocks = blocks(rule, source.prepared.text.as_str())?;
    let mut rows: Vec<serde_json::Map<String, Value>> = Vec::new();
    // Per row: the lowest OCR confidence of the words its cells were read
    // from, and where on which page they are.
    let mut evidence: Vec<Evidence> = Vec::new();
    for (offset, block) in blocks {
        read_block(rule, source, offset, block, &mut rows, &mut evidence);
    }
    finish(rule, options, rows, evidence)
}

/// Every `start` … `end` block of `text` with where it begins, as
/// invoice2data reads them: a table continued on the next page (its end
/// "Carried forward", its start the repeated header) is read to its end.
fn blocks<'t>(rule: &template::LinesRule, text: &'t str) -> Result<Vec<(usize, &'t str)>, String> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(start) = rule.start.find_from_pos(text, from).ok().flatten() {
        let Some(end) = rule.end.find_from_pos(text, start.end()).ok().flatten() else {
            if found.is_empty() {
                return Err("the end of the table was not found".into());
            }
            break;
        };
        found.push((start.end(), &text[start.end()..end.start()]));
        // An empty match must not hold the search in place.
        from = end.end().max(start.end() + 1);
        if from > text.len() {
            break;
        }
    }
    if found.is_empty() {
        return Err("the start of the table was not found".into());
    }
    Ok(found)
}

/// Read the rows of one block, which begins at byte `offset` of the text.
fn read_block(
    rule: &template::LinesRule,
    source: &Source,
    offset: usize,
    block: &str,
    rows: &mut Vec<serde_json::Map<String, Value>>,
    evidence: &mut Vec<Evidence>,
) {
    // A row over several lines does not go on into the next block.
    let mut open = false;
    let mut line_start = offset;
    for raw_line in block.split_inclusive('\n') {
        let offset = line_start;
        line_start += raw_line.len();
        let line = raw_line.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty()
            || rule
                .skip_line
                .iter()
                .any(|r| r.is_match(line).unwrap_or(false))
        {
            continue;
        }
        let read = |regex: &fancy_regex::Regex, caps: &fancy_regex::Captures<str>| {
            let cells = regex
                .capture_names()
                .flatten()
                .filter_map(|n| caps.name(n))
                .map(|m| source.words(offset + m.start()..offset + m.end()));
            cells.fold((1.0f32, None, None), combine)
        };
        if let Some(first) = &rule.first_line
            && let Ok(Some(caps)) = first.captures(line)
        {
            rows.push(named(first, &caps));
            evidence.push(read(first, &caps));
            open = true;
            continue;
        }
        if let Some(last) = &rule.last_line
            && open
            && let Ok(Some(caps)) = last.captures(line)
        {
            if let (Some(row), Some(seen)) = (rows.last_mut(), evidence.last_mut()) {
                merge(row, named(last, &caps));
                *seen = combine(*seen, read(last, &caps));
            }
            open = false;
            continue;
        }
        if let Ok(Some(caps)) = rule.line.captures(line) {
            let values = named(&rule.line, &caps);
            let seen = read(&rule.line, &caps);
            match (
                rule.first_line.is_some() && open,
                rows.last_mut(),
                evidence.last_mut(),
            ) {
                (true, Some(row), Some(last_seen)) => {
                    merge(row, values);
                    *last_seen = combine(*last_seen, seen);
                }
                _ => {
                    rows.push(values);
                    evidence.push(seen);
                }
            }
        }
    }
}

/// The rows typed, with the table's confidence and why it is not sure.
fn finish(
    rule: &template::LinesRule,
    options: &template::Options,
    mut rows: Vec<serde_json::Map<String, Value>>,
    evidence: Vec<Evidence>,
) -> Result<Field, String> {
    if rows.is_empty() {
        return Err("the table has no rows".into());
    }
    let mut reasons = Vec::new();
    let mut confidence: f32 = 1.0;
    let mut table = (1.0f32, None, None);
    for (i, seen) in evidence.iter().enumerate() {
        if seen.0 < 1.0 {
            confidence = confidence.min(seen.0);
        }
        if seen.0 < 0.8 {
            reasons.push(format!("row {}: OCR confidence {:.2}", i + 1, seen.0));
        }
        table = combine(table, *seen);
    }
    for (i, row) in rows.iter_mut().enumerate() {
        for (name, kind) in &rule.types {
            if let Some(Value::String(raw)) = row.get(name).cloned() {
                match typed(&raw, *kind, options) {
                    Ok(v) => {
                        row.insert(name.clone(), v);
                    }
                    Err(e) => {
                        // A cell that does not parse is a misreading.
                        confidence = confidence.min(0.5);
                        reasons.push(format!("row {}: `{name}`: {e}", i + 1));
                    }
                }
            }
        }
    }
    Ok(Field {
        value: Value::Array(rows.into_iter().map(Value::Object).collect()),
        raw: None,
        confidence,
        rule: format!("lines: {} … {}", rule.start.as_str(), rule.end.as_str()),
        reasons,
        page: table.1,
        bbox: table.2,
    })
}
