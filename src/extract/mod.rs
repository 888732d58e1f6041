//! Extraction: choose the template that fits a document, apply its field
//! rules to the document's layout text, type the values, and say for every
//! field how far to trust it and why.

pub mod step;
pub mod template;
pub mod validate;
mod values;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use crate::documents::Document;
pub use template::{
    FieldType, Group, Parser, Template, TemplateError, load_templates, parse_template,
};
pub use values::{parse_date, parse_number};

/// One extracted field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Field {
    /// Typed: a number, a date as `YYYY-MM-DD`, text, or a list of them.
    pub value: Value,
    /// The text the rule matched, before typing.
    pub raw: Option<String>,
    /// In [0, 1]: how far the value can be trusted.
    pub confidence: f32,
    /// The rule that produced it, e.g. `regex: Total\s+(\S+)`.
    pub rule: String,
    /// Why the confidence is below 1, if it is.
    pub reasons: Vec<String>,
    /// Page (from 1) and box of the words the value was read from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bbox: Option<crate::documents::BBox>,
}

/// How one template fared against the document, for `--explain`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TemplateCheck {
    pub template: PathBuf,
    pub issuer: String,
    pub priority: i64,
    pub matched: bool,
    /// Keywords that were not found.
    pub missing_keywords: Vec<String>,
    /// Exclude-keywords that were found.
    pub excluded_by: Vec<String>,
}

/// The result of extracting one document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Extraction {
    /// The template used, if one matched.
    pub template: Option<PathBuf>,
    pub fields: BTreeMap<String, Field>,
    /// Why a person should look at this document; empty when it can pass
    /// straight through.
    pub review: Vec<String>,
    pub checks: Vec<TemplateCheck>,
}

impl Extraction {
    pub fn needs_review(&self) -> bool {
        !self.review.is_empty()
    }
}

/// Text after a template's options, and for every byte of it the byte of
/// the layout text it came from, so a match leads back to its words.
pub struct Prepared {
    pub text: String,
    origin: Vec<usize>,
}

impl Prepared {
    /// The range of the layout text a range of the prepared text stands for.
    pub fn original(&self, range: std::ops::Range<usize>) -> std::ops::Range<usize> {
        let start = self.origin.get(range.start).copied().unwrap_or(0);
        let end = range
            .end
            .checked_sub(1)
            .and_then(|last| self.origin.get(last))
            .map_or(start, |o| o + 1);
        start..end.max(start)
    }
}

fn build(chars: &[(char, usize)]) -> Prepared {
    let mut text = String::with_capacity(chars.len());
    let mut origin = Vec::with_capacity(chars.len());
    for &(c, o) in chars {
        text.push(c);
        origin.extend(std::iter::repeat_n(o, c.len_utf8()));
    }
    Prepared { text, origin }
}

/// Python's `\1` and `\g<name>` in a replacement, in the `${1}` form the
/// regex engine expands.
fn python_replacement(r: &str) -> String {
    let mut out = String::new();
    let mut it = r.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match it.peek().copied() {
                Some(d) if d.is_ascii_digit() => {
                    let mut n = String::new();
                    while let Some(d) = it.peek().copied().filter(char::is_ascii_digit) {
                        n.push(d);
                        it.next();
                    }
                    out.push_str(&format!("${{{n}}}"));
                }
                Some('g') => {
                    it.next();
                    if it.peek() == Some(&'<') {
                        it.next();
                        let name: String = it.by_ref().take_while(|&c| c != '>').collect();
                        out.push_str(&format!("${{{name}}}"));
                    } else {
                        out.push_str("\\g");
                    }
                }
                Some('\\') => {
                    it.next();
                    out.push('\\');
                }
                _ => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

/// Apply a template's `options` to the text, as invoice2data does before
/// matching keywords and fields, keeping track of where each piece came from.
pub fn prepare_mapped(text: &str, options: &template::Options) -> Prepared {
    let mut chars: Vec<(char, usize)> = text.char_indices().map(|(i, c)| (c, i)).collect();
    if options.remove_whitespace {
        chars.retain(|&(c, _)| c != ' ');
    }
    if options.remove_accents {
        chars = chars
            .into_iter()
            .flat_map(|(c, o)| {
                let mut buf = [0u8; 4];
                remove_accents(c.encode_utf8(&mut buf))
                    .chars()
                    .map(move |b| (b, o))
                    .collect::<Vec<_>>()
            })
            .collect();
    }
    if options.lowercase {
        chars = chars
            .into_iter()
            .flat_map(|(c, o)| c.to_lowercase().map(move |l| (l, o)))
            .collect();
    }
    let mut prepared = build(&chars);
    for (regex, replacement) in &options.replace {
        let replacement = python_replacement(replacement);
        let mut next: Vec<(char, usize)> = Vec::with_capacity(prepared.text.len());
        let mut at = 0;
        for caps in regex.captures_iter(prepared.text.as_str()).flatten() {
            let Some(m) = caps.get(0) else { continue };
            for (i, c) in prepared.text[at..m.start()].char_indices() {
                next.push((c, prepared.origin[at + i]));
            }
            let first = prepared
                .origin
                .get(m.start())
                .copied()
                .unwrap_or(text.len());
            let last = m
                .end()
                .checked_sub(1)
                .and_then(|l| prepared.origin.get(l).copied())
                .filter(|_| m.end() > m.start())
                .unwrap_or(first);
            let mut expanded = String::new();
            caps.expand(&replacement, &mut expanded);
            // The replacement stands for the whole match: spread its
            // characters over the match's span of the layout text.
            let n = expanded.chars().count();
            next.extend(expanded.chars().enumerate().map(|(k, c)| {
                let o = first + (last.saturating_sub(first)) * k / n.saturating_sub(1).max(1);
                (c, o)
            }));
            at = m.end();
        }
        for (i, c) in prepared.text[at..].char_indices() {
            next.push((c, prepared.origin[at + i]));
        }
        prepared = build(&next);
    }
    prepared
}

/// [`prepare_mapped`] without the map.
pub fn prepare(text: &str, options: &template::Options) -> String {
    prepare_mapped(text, options).text
}

/// Latin letters with diacritics to their base letter (é → e, ß → ss).
fn remove_accents(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let base = match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => "a",
            'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => "A",
            'ç' => "c",
            'Ç' => "C",
            'è' | 'é' | 'ê' | 'ë' => "e",
            'È' | 'É' | 'Ê' | 'Ë' => "E",
            'ì' | 'í' | 'î' | 'ï' => "i",
            'Ì' | 'Í' | 'Î' | 'Ï' => "I",
            'ñ' => "n",
            'Ñ' => "N",
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => "o",
            'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' => "O",
            'ù' | 'ú' | 'û' | 'ü' => "u",
            'Ù' | 'Ú' | 'Û' | 'Ü' => "U",
            'ý' | 'ÿ' => "y",
            'Ý' => "Y",
            'ß' => "ss",
            'œ' => "oe",
            'Œ' => "OE",
            'æ' => "ae",
            'Æ' => "AE",
            _ => {
                out.push(c);
                continue;
            }
        };
        out.push_str(base);
    }
    out
}

/// Check a template's keywords against the prepared text.
fn check(template: &Template, text: &str) -> TemplateCheck {
    let found = |k: &template::Keyword| k.regex.is_match(text).unwrap_or(false);
    let missing: Vec<String> = template
        .keywords
        .iter()
        .filter(|k| !found(k))
        .map(|k| k.text.clone())
        .collect();
    let excluded: Vec<String> = template
        .exclude_keywords
        .iter()
        .filter(|k| found(k))
        .map(|k| k.text.clone())
        .collect();
    TemplateCheck {
        template: template.file.clone(),
        issuer: template.issuer.clone(),
        priority: template.priority,
        matched: missing.is_empty() && excluded.is_empty(),
        missing_keywords: missing,
        excluded_by: excluded,
    }
}

/// A match: the text it stands for (the whole match without groups, else
/// the first group that matched, as invoice2data's `findall` gives it), and
/// the whole token around it when the match cuts a token short.
struct Found {
    text: String,
    range: std::ops::Range<usize>,
}

/// Characters that end a token: a value that stops before one of these is
/// whole.
fn ends_token(c: char) -> bool {
    c.is_whitespace() || matches!(c, ')' | '(' | ']' | '[' | '|' | ';' | '"')
}

fn matches(regex: &fancy_regex::Regex, text: &str) -> Vec<Found> {
    let mut out = Vec::new();
    for caps in regex.captures_iter(text).flatten() {
        let m = if caps.len() == 1 {
            caps.get(0)
        } else {
            (1..caps.len()).find_map(|i| caps.get(i))
        };
        let Some(m) = m else { continue };
        out.push(Found {
            text: m.as_str().to_string(),
            range: m.start()..m.end(),
        });
    }
    out
}

/// The whole token when a match covers only part of it: `61` out of
/// `61:25` means the rule saw part of what is printed, and the reading is
/// suspect (an OCR `:` for `,`, a number glued to a word). Checked on the
/// layout text itself, not on the text after the template's options.
fn cut_token(text: &str, range: std::ops::Range<usize>) -> Option<String> {
    let value = text.get(range.clone())?.trim_end();
    let end = range.start + value.len();
    let after = text[end..].chars().next();
    let before = text[..range.start].chars().next_back();
    let continues_after = match after {
        None => false,
        Some(c) if ends_token(c) => false,
        // At the end of a sentence these close the token; between digits or
        // letters they are inside it.
        Some(',' | '.' | ':') => text[end..]
            .chars()
            .nth(1)
            .is_some_and(char::is_alphanumeric),
        Some(_) => true,
    };
    let continues_before =
        before.is_some_and(char::is_alphanumeric) && value.starts_with(char::is_alphanumeric);
    (continues_after || continues_before).then(|| token_around(text, range.start, end))
}

/// The whitespace-delimited token that holds `start..end`.
fn token_around(text: &str, start: usize, end: usize) -> String {
    let from = text[..start]
        .rfind(char::is_whitespace)
        .map_or(0, |i| i + 1);
    let to = text[end..]
        .find(char::is_whitespace)
        .map_or(text.len(), |i| end + i);
    text[from..to].to_string()
}

fn typed(raw: &str, kind: FieldType, options: &template::Options) -> Result<Value, String> {
    match kind {
        FieldType::Text => Ok(Value::String(raw.trim().to_string())),
        FieldType::Float => {
            parse_number(raw, options.decimal_separator).map(|f| cents(f).unwrap_or(Value::Null))
        }
        FieldType::Int => raw
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("`{}` is not a whole number", raw.trim())),
        FieldType::Date => {
            parse_date(raw, &options.date_formats).map(|d| Value::String(d.to_string()))
        }
    }
}

/// A number rounded to cents, as amounts are printed; `None` if not finite.
fn cents(f: f64) -> Option<Value> {
    serde_json::Number::from_f64((f * 100.0).round() / 100.0).map(Value::Number)
}

fn group(values: Vec<Value>, g: Group) -> Option<Value> {
    let numbers = || values.iter().filter_map(Value::as_f64);
    match g {
        Group::First => values.first().cloned(),
        Group::Last => values.last().cloned(),
        Group::Sum => cents(numbers().sum()),
        Group::Min => numbers().reduce(f64::min).and_then(cents),
        Group::Max => numbers().reduce(f64::max).and_then(cents),
    }
}

/// What the words under a match say about it: their lowest confidence, and
/// the page and box they are in.
type Evidence = (f32, Option<u32>, Option<crate::documents::BBox>);

/// Where field rules run: the prepared text, and the way back to words.
struct Source<'a> {
    doc: &'a Document,
    text: &'a crate::documents::DocumentText,
    prepared: &'a Prepared,
}

impl Source<'_> {
    /// See [`cut_token`].
    fn cut(&self, range: std::ops::Range<usize>) -> Option<String> {
        cut_token(&self.text.text, self.prepared.original(range))
    }

    /// Lowest confidence, page and box of the words under a match.
    fn words(&self, range: std::ops::Range<usize>) -> Evidence {
        let mut confidence: f32 = 1.0;
        let mut page = None;
        let mut bbox: Option<crate::documents::BBox> = None;
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
}

fn apply(
    rule: &template::FieldRule,
    source: &Source,
    options: &template::Options,
) -> Result<Field, String> {
    if let Some(area) = &rule.area {
        // Only the words whose centre lies in the box, laid out on their own.
        let page = source
            .doc
            .pages
            .iter()
            .find(|p| p.number == area.page)
            .ok_or_else(|| format!("the document has no page {}", area.page))?;
        let b = &area.bbox;
        let words: Vec<_> = page
            .words
            .iter()
            .filter(|w| {
                let (cx, cy) = ((w.bbox.x0 + w.bbox.x1) / 2.0, (w.bbox.y0 + w.bbox.y1) / 2.0);
                cx >= b.x0 && cx <= b.x1 && cy >= b.y0 && cy <= b.y1
            })
            .cloned()
            .collect();
        let doc = Document {
            pages: vec![crate::documents::Page::new(
                page.number,
                page.width,
                page.height,
                words,
            )],
        };
        let text = doc.text();
        let prepared = prepare_mapped(&text.text, options);
        let inner = Source {
            doc: &doc,
            text: &text,
            prepared: &prepared,
        };
        let unboxed = template::FieldRule {
            area: None,
            ..rule.clone()
        };
        return apply(&unboxed, &inner, options).map(|mut f| {
            f.rule = format!("{} in area of page {}", f.rule, area.page);
            f
        });
    }
    match &rule.parser {
        Parser::Lines(lines) => apply_lines(lines, source, options),
        Parser::Static(v) => Ok(Field {
            value: v.clone(),
            raw: None,
            confidence: 1.0,
            rule: "static".into(),
            reasons: Vec::new(),
            page: None,
            bbox: None,
        }),
        Parser::Regex { regexes, group: g } => {
            let rule_text = format!(
                "regex: {}",
                regexes
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
            let mut raws = Vec::new();
            let mut values = Vec::new();
            let mut refused = Vec::new();
            let mut cut = Vec::new();
            let mut read: f32 = 1.0;
            let mut place = None;
            for regex in regexes {
                for found in matches(regex, &source.prepared.text) {
                    match typed(&found.text, rule.kind, options) {
                        Ok(v) => {
                            let (c, page, bbox) = source.words(found.range.clone());
                            read = read.min(c);
                            if place.is_none() {
                                place = Some((page, bbox));
                            }
                            if let Some(token) = source.cut(found.range.clone()) {
                                cut.push(token);
                            }
                            raws.push(found.text);
                            values.push(v);
                        }
                        Err(e) => refused.push(e),
                    }
                }
            }
            if values.is_empty() {
                return Err(match refused.first() {
                    Some(e) => format!("matched, but {e}"),
                    None => "the rule matched nothing".into(),
                });
            }
            let mut reasons = Vec::new();
            let mut confidence: f32 = read;
            if read < 1.0 {
                reasons.push(format!("OCR read it with confidence {read:.2}"));
            }
            if !refused.is_empty() {
                confidence = confidence.min(0.6);
                reasons.push(format!(
                    "other matches did not parse: {}",
                    refused.join("; ")
                ));
            }
            if !cut.is_empty() {
                confidence = confidence.min(0.3);
                reasons.push(format!(
                    "the match is only part of `{}`: the text may be misread",
                    cut.join("`, `")
                ));
            }
            let value = match g {
                Some(g) => group(values, *g).unwrap_or(Value::Null),
                None => {
                    let mut distinct: Vec<Value> = Vec::new();
                    for v in values {
                        if !distinct.contains(&v) {
                            distinct.push(v);
                        }
                    }
                    if distinct.len() == 1 {
                        distinct.remove(0)
                    } else if rule.legacy && matches!(rule.kind, FieldType::Date | FieldType::Float)
                    {
                        // invoice2data takes the first match for dates and amounts.
                        confidence = confidence.min(0.5);
                        reasons.push(format!(
                            "{} different values matched; took the first",
                            distinct.len()
                        ));
                        distinct.remove(0)
                    } else {
                        confidence = confidence.min(0.5);
                        reasons.push(format!("{} different values matched", distinct.len()));
                        Value::Array(distinct)
                    }
                }
            };
            let (page, bbox) = place.unwrap_or((None, None));
            Ok(Field {
                value,
                raw: raws.first().cloned(),
                confidence,
                rule: rule_text,
                reasons,
                page,
                bbox,
            })
        }
    }
}

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

fn apply_lines(
    rule: &template::LinesRule,
    source: &Source,
    options: &template::Options,
) -> Result<Field, String> {
    let text = source.prepared.text.as_str();
    let Some(start) = rule.start.find(text).ok().flatten() else {
        return Err("the start of the table was not found".into());
    };
    let rest = &text[start.end()..];
    let block = match rule.end.find(rest).ok().flatten() {
        Some(end) => &rest[..end.start()],
        None => return Err("the end of the table was not found".into()),
    };
    let mut rows: Vec<serde_json::Map<String, Value>> = Vec::new();
    // Per row: the lowest OCR confidence of the words its cells were read
    // from, and where on which page they are.
    let mut evidence: Vec<Evidence> = Vec::new();
    let mut open = false;
    let mut line_start = start.end();
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

/// Evidence of two parts of one value: the lower confidence, and the box
/// around both where they are on the same page (the first page otherwise).
fn combine(a: Evidence, b: Evidence) -> Evidence {
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

/// Read a file and extract it. Scanned pages are first read in
/// `options.ocr_languages`; when the template that matches names other
/// `languages`, the file is read again in those and extracted from that
/// reading, so umlauts and accents come out right.
pub fn extract_file(
    path: &std::path::Path,
    templates: &[Template],
    options: &crate::documents::ReadOptions,
) -> Result<Extraction, crate::documents::DocumentError> {
    let doc = crate::documents::read_file(path, options)?;
    let extraction = extract(&doc, templates);
    let scanned = doc.pages.iter().any(|p| {
        p.words
            .iter()
            .any(|w| w.source == crate::documents::Source::Ocr)
    });
    let wanted = extraction
        .template
        .as_ref()
        .and_then(|file| templates.iter().find(|t| &t.file == file))
        .filter(|t| !t.options.languages.is_empty())
        .map(|t| crate::documents::ocr::tesseract_languages(&t.options.languages));
    match wanted {
        Some(languages) if scanned && languages != options.ocr_languages => {
            let again = crate::documents::ReadOptions {
                ocr_languages: languages,
                ..options.clone()
            };
            let doc = crate::documents::read_file(path, &again)?;
            Ok(extract(&doc, templates))
        }
        _ => Ok(extraction),
    }
}

/// Extract a document with the best matching template: the matching one
/// with the highest priority, the first by file name among equals.
pub fn extract(doc: &Document, templates: &[Template]) -> Extraction {
    let document_text = doc.text();
    let text = &document_text.text;
    let checks: Vec<TemplateCheck> = templates
        .iter()
        .map(|t| check(t, &prepare(text, &t.options)))
        .collect();
    let best = templates
        .iter()
        .zip(&checks)
        .filter(|(_, c)| c.matched)
        .max_by(|(a, _), (b, _)| a.priority.cmp(&b.priority).then(b.file.cmp(&a.file)))
        .map(|(t, _)| t);
    let Some(template) = best else {
        return Extraction {
            template: None,
            fields: BTreeMap::new(),
            review: vec!["no template matched this document".into()],
            checks,
        };
    };
    let prepared = prepare_mapped(text, &template.options);
    let source = Source {
        doc,
        text: &document_text,
        prepared: &prepared,
    };
    let mut fields = BTreeMap::new();
    let mut review = Vec::new();
    let fixed = |v: &str| Field {
        value: Value::String(v.to_string()),
        raw: None,
        confidence: 1.0,
        rule: "template".into(),
        reasons: Vec::new(),
        page: None,
        bbox: None,
    };
    fields.insert("issuer".to_string(), fixed(&template.issuer));
    fields.insert("currency".to_string(), fixed(&template.options.currency));
    let mut failures: BTreeMap<String, String> = BTreeMap::new();
    for rule in &template.fields {
        match apply(rule, &source, &template.options) {
            Ok(field) => {
                fields.insert(rule.name.clone(), field);
            }
            Err(why) => {
                failures.insert(rule.name.clone(), why);
            }
        }
    }
    validate::apply(
        &template.validation,
        &mut fields,
        chrono::Local::now().date_naive(),
    );
    for rule in &template.fields {
        if let Some(field) = fields.get(&rule.name)
            && field.confidence < rule.min_confidence
        {
            review.push(format!(
                "`{}` has confidence {:.2}, below its minimum {:.2}: {}",
                rule.name,
                field.confidence,
                rule.min_confidence,
                field.reasons.join("; ")
            ));
        }
    }
    let mut required: Vec<&str> = template
        .required_fields
        .iter()
        .map(String::as_str)
        .collect();
    required.extend(
        template
            .fields
            .iter()
            .filter(|r| r.required)
            .map(|r| r.name.as_str()),
    );
    required.sort_unstable();
    required.dedup();
    for name in required {
        if !fields.contains_key(name) {
            let why = failures
                .get(name)
                .cloned()
                .unwrap_or_else(|| "the template has no rule for it".into());
            review.push(format!("required field `{name}` is missing: {why}"));
        }
    }
    Extraction {
        template: Some(template.file.clone()),
        fields,
        review,
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::{BBox, Page, Source, Word};
    use std::path::Path;

    fn doc(lines: &[&str]) -> Document {
        let mut words = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let mut x = 50.0;
            for w in line.split(' ') {
                if !w.is_empty() {
                    words.push(Word {
                        text: w.into(),
                        bbox: BBox {
                            x0: x,
                            y0: 100.0 + 12.0 * i as f64 - 10.0,
                            x1: x + 5.0 * w.chars().count() as f64,
                            y1: 100.0 + 12.0 * i as f64,
                        },
                        confidence: 1.0,
                        source: Source::TextLayer,
                    });
                }
                x += 5.0 * (w.chars().count() as f64 + 1.0);
            }
        }
        Document {
            pages: vec![Page::new(1, 595.0, 842.0, words)],
        }
    }

    fn template(yaml: &str) -> Template {
        parse_template(Path::new("t.yml"), yaml).expect("valid template")
    }

    const ACME: &str = r#"
issuer: ACME Office Supplies GmbH
keywords:
  - ACME Office
  - Rechnungsnummer
fields:
  invoice_number: Rechnungsnummer:\s+(\S+)
  date: Rechnungsdatum:\s+(\d{2}\.\d{2}\.\d{4})
  amount: Gesamtbetrag\s+([\d.,]+)
  vat:
    parser: regex
    regex: MwSt\. 19 %\s+([\d.,]+)
    type: float
  lines_total:
    parser: regex
    regex: '(?m)^\d+\s+.+?\s+\d+\s+[\d.,]+\s+([\d.,]+)$'
    type: float
    group: sum
  static_country: DE
options:
  currency: EUR
  decimal_separator: ','
"#;

    fn acme_doc() -> Document {
        doc(&[
            "ACME Office Supplies GmbH",
            "Rechnungsnummer: RE-2026-1041",
            "Rechnungsdatum: 14.03.2026",
            "1 Papier 2 10,00 20,00",
            "2 Toner 1 41,25 41,25",
            "MwSt. 19 % 11,64",
            "Gesamtbetrag 72,89 EUR",
        ])
    }

    #[test]
    fn legacy_and_regex_fields_with_types_groups_and_statics() {
        let x = extract(&acme_doc(), &[template(ACME)]);
        assert!(!x.needs_review(), "{:?}", x.review);
        let v = |k: &str| x.fields[k].value.clone();
        assert_eq!(v("invoice_number"), "RE-2026-1041");
        assert_eq!(v("date"), "2026-03-14");
        assert_eq!(v("amount"), 72.89);
        assert_eq!(v("vat"), 11.64);
        assert_eq!(v("lines_total"), 61.25);
        assert_eq!(v("country"), "DE");
        assert_eq!(v("currency"), "EUR");
        assert_eq!(v("issuer"), "ACME Office Supplies GmbH");
        assert_eq!(x.fields["amount"].raw.as_deref(), Some("72,89"));
        assert!(x.fields["amount"].rule.starts_with("regex: Gesamtbetrag"));
        assert_eq!(x.fields["amount"].confidence, 1.0);
    }

    #[test]
    fn the_highest_priority_match_wins_and_explain_says_why_others_did_not() {
        let generic = template(
            "issuer: Generic\npriority: 1\nkeywords: [Gesamtbetrag]\nfields:\n  amount: Gesamtbetrag\\s+(\\S+)\n",
        );
        let other =
            template("issuer: Other\nkeywords: [Nordwind, Factuur]\nexclude_keywords: [ACME]\n");
        let x = extract(&acme_doc(), &[generic, template(ACME), other]);
        assert_eq!(x.fields["issuer"].value, "ACME Office Supplies GmbH");
        let other = &x.checks[2];
        assert!(!other.matched);
        assert_eq!(other.missing_keywords, vec!["Nordwind", "Factuur"]);
        assert_eq!(other.excluded_by, vec!["ACME"]);
    }

    #[test]
    fn missing_or_unparsable_required_fields_go_to_review_with_reasons() {
        let d = doc(&[
            "ACME Office Supplies GmbH",
            "Rechnungsnummer: RE-1",
            "Rechnungsdatum: 61:25",
            "Gesamtbetrag 61:25",
        ]);
        let x = extract(&d, &[template(ACME)]);
        assert!(x.needs_review());
        let all = x.review.join("\n");
        // `61` out of `61:25`: a value, but flagged.
        assert_eq!(x.fields["amount"].value, 61.0);
        assert!(x.fields["amount"].confidence < 0.8);
        assert!(all.contains("`amount` has confidence 0.30"), "{all}");
        assert!(all.contains("the match is only part of `61:25`"), "{all}");
        assert!(
            all.contains("required field `date` is missing: the rule matched nothing"),
            "{all}"
        );
        let typed_badly = template(
            "issuer: T\nkeywords: [Total]\nfields:\n  amount: 'Total\\s+(\\S+)'\nrequired_fields: [amount]\n",
        );
        let x = extract(&doc(&["Total 61:25"]), &[typed_badly]);
        assert_eq!(
            x.review,
            vec![
                "required field `amount` is missing: matched, but `61:25` is not a number (it has `:`)"
            ]
        );
        let none = extract(&doc(&["Hello"]), &[template(ACME)]);
        assert_eq!(none.review, vec!["no template matched this document"]);
    }

    #[test]
    fn options_prepare_the_text_before_matching() {
        let t = template(
            "issuer: X\nkeywords: [rechnung]\nfields:\n  invoice_number: 'nr:(\\S+)'\noptions:\n  remove_whitespace: true\n  lowercase: true\n  remove_accents: true\n  replace:\n    - ['n°', 'nr']\nrequired_fields: [invoice_number]\n",
        );
        let x = extract(&doc(&["RECHNUNG N° : AB-12"]), &[t]);
        assert_eq!(x.fields["invoice_number"].value, "ab-12", "{:?}", x.review);
    }

    #[test]
    fn a_broken_regex_names_its_file_and_field() {
        let err = parse_template(
            Path::new("tpl/acme.yml"),
            "issuer: A\nkeywords: [A]\nfields:\n  amount: 'Total (\\d+'\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("tpl/acme.yml: field `amount`: bad regex `Total (\\d+`"),
            "{err}"
        );
        let err = parse_template(Path::new("t.yml"), "issuer: [unclosed\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid YAML at line"), "{err}");
        let err = parse_template(
            Path::new("t.yml"),
            "issuer: A\nkeywords: A\nfields:\n  x:\n    parser: lines\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("the lines parser needs `start`"), "{err}");
    }

    #[test]
    fn the_lines_parser_reads_rows_and_rows_over_several_lines() {
        let t = template(
            r#"
issuer: T
keywords: [Items]
required_fields: [lines]
lines:
  start: Items
  end: Total
  first_line: '^(?P<sku>[A-Z]{2}-\d+)\s+(?P<description>.+?)\s{2,}(?P<amount>[\d.]+)$'
  line: '^\s+(?P<description>\S.*)$'
  skip_line: 'continued'
  types:
    amount: float
"#,
        );
        let d = doc(&[
            "Items",
            "AB-1 Paper  12.50",
            "     A4, white",
            "(continued)",
            "CD-2 Toner  40.00",
            "Total 52.50",
        ]);
        let x = extract(&d, &[t]);
        assert!(!x.needs_review(), "{:?}", x.review);
        let rows = x.fields["lines"].value.as_array().unwrap().clone();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["description"], "Paper A4, white");
        assert_eq!(rows[0]["amount"], 12.5);
        assert_eq!(rows[1]["sku"], "CD-2");
    }

    #[test]
    fn a_table_row_read_from_doubtful_ocr_words_lowers_the_lines_field() {
        let t = template(
            r#"
issuer: T
keywords: [Items]
lines:
  start: Items
  end: Total
  line: '^(?P<description>\S+)\s+(?P<amount>[\d.]+)$'
  types:
    amount: float
"#,
        );
        let mut d = doc(&["Items", "Paper 12.50", "Toner 40.00", "Total 52.50"]);
        for w in &mut d.pages[0].words {
            w.source = Source::Ocr;
            w.confidence = if w.text == "40.00" { 0.42 } else { 0.95 };
        }
        let x = extract(&d, &[t]);
        let lines = &x.fields["lines"];
        assert!((lines.confidence - 0.42).abs() < 1e-6, "{lines:?}");
        assert_eq!(lines.reasons, vec!["row 2: OCR confidence 0.42"]);
        assert_eq!(lines.page, Some(1));
        assert!(
            x.review.iter().any(|r| r.starts_with("`lines`")),
            "{:?}",
            x.review
        );
        // Both rows are still returned, for the reviewer to check.
        assert_eq!(lines.value.as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn validation_flags_values_that_read_well_but_do_not_add_up() {
        let today = chrono::Local::now().date_naive();
        let yaml = |total: &str, iban: &str, date: chrono::NaiveDate| {
            let d = doc(&[
                "ACME Office Supplies GmbH",
                "Rechnungsnummer: RE-2026-1041",
                &format!("Rechnungsdatum: {}", date.format("%d.%m.%Y")),
                "1 Papier 2 10,00 20,00",
                "2 Toner 1 41,25 41,25",
                "MwSt. 19 % 11,64",
                &format!("Gesamtbetrag {total} EUR"),
                &format!("IBAN: {iban}"),
            ]);
            let fields = "  iban: 'IBAN: (.+)'\noptions:";
            let t = template(&format!(
                "{}validation:\n  - rule: sum\n    fields: [lines_total, vat]\n    equals: amount\n  - rule: iban\n    field: iban\n  - rule: date_range\n    field: date\n    max_age_days: 365\n    max_future_days: 31\n  - rule: regex\n    field: invoice_number\n    pattern: '^RE-\\d{{4}}-\\d+$'\n",
                ACME.replace("options:", fields)
            ));
            extract(&d, &[t])
        };
        let good = yaml("72,89", "DE89 3704 0044 0532 0130 00", today);
        assert!(!good.needs_review(), "{:?}", good.review);

        let bad_total = yaml("78,89", "DE89 3704 0044 0532 0130 00", today);
        let all = bad_total.review.join("\n");
        assert!(
            all.contains("amount 78.89 is not lines_total + vat = 72.89"),
            "{all}"
        );
        assert!(bad_total.fields["amount"].confidence <= 0.3);

        let bad_iban = yaml("72,89", "DE89 3704 0044 0532 0130 01", today);
        assert!(
            bad_iban.review.join("\n").contains("wrong checksum"),
            "{:?}",
            bad_iban.review
        );

        let old = yaml(
            "72,89",
            "DE89 3704 0044 0532 0130 00",
            today - chrono::Duration::days(800),
        );
        assert!(
            old.review.join("\n").contains("more than 365 days ago"),
            "{:?}",
            old.review
        );
    }

    #[test]
    fn ocr_confidence_of_the_words_under_a_match_carries_into_the_field() {
        let mut d = acme_doc();
        for w in &mut d.pages[0].words {
            if w.text == "72,89" {
                w.confidence = 0.55;
                w.source = Source::Ocr;
            }
        }
        let x = extract(&d, &[template(ACME)]);
        let amount = &x.fields["amount"];
        assert_eq!(amount.value, 72.89);
        assert!((amount.confidence - 0.55).abs() < 1e-6, "{amount:?}");
        assert_eq!(amount.reasons, vec!["OCR read it with confidence 0.55"]);
        assert_eq!(amount.page, Some(1));
        let b = amount.bbox.unwrap();
        assert!(b.x0 > 100.0 && b.width() > 20.0, "{b:?}");
        assert!(
            x.review
                .iter()
                .any(|r| r.starts_with("`amount` has confidence 0.55")),
            "{:?}",
            x.review
        );
        // Other fields keep full confidence.
        assert_eq!(x.fields["invoice_number"].confidence, 1.0);
    }

    #[test]
    fn word_positions_survive_the_template_options() {
        let mut d = doc(&["RECHNUNG Nr. 4711", "Betrag 61,25 EUR"]);
        for w in &mut d.pages[0].words {
            if w.text == "61,25" {
                w.confidence = 0.4;
            }
        }
        let t = template(
            "issuer: X\nkeywords: [rechnung]\nrequired_fields: [amount]\nfields:\n  amount: 'betrag(\\d+[.]\\d+)eur'\noptions:\n  remove_whitespace: true\n  lowercase: true\n  replace:\n    - ['(\\d+),(\\d+)', '\\1.\\2']\n",
        );
        let x = extract(&d, &[t]);
        let amount = &x.fields["amount"];
        assert_eq!(amount.value, 61.25, "{:?}", x.review);
        assert!((amount.confidence - 0.4).abs() < 1e-6, "{amount:?}");
    }

    #[test]
    fn an_area_limits_a_rule_to_a_box_of_a_page() {
        // Two totals: a carried-over one at the top, the real one lower right.
        let d = doc(&[
            "Total 10,00",
            "x",
            "x",
            "x",
            "x",
            "x",
            "x",
            "x",
            "x",
            "Total 72,89",
        ]);
        let t = template(
            "issuer: T\nkeywords: [Total]\nrequired_fields: [amount]\nfields:\n  amount:\n    parser: regex\n    regex: 'Total\\s+(\\S+)'\n    type: float\n    area: {page: 1, x0: 0, y0: 190, x1: 595, y1: 230}\noptions:\n  decimal_separator: ','\n",
        );
        let x = extract(&d, &[t]);
        assert_eq!(x.fields["amount"].value, 72.89, "{:?}", x.review);
        assert!(x.fields["amount"].rule.ends_with("in area of page 1"));
        let err = parse_template(
            Path::new("t.yml"),
            "issuer: T\nkeywords: [T]\nfields:\n  amount:\n    regex: x\n    area: {x0: 5, y0: 0, x1: 1, y1: 9}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`area` must be"), "{err}");
    }
}
