//! Field rules: a template's regex, static and area rules applied to the
//! prepared text, the values typed, and each field's confidence with the
//! reasons it is below 1.

use serde_json::Value;

use super::evidence::Source;
use super::text::prepare_mapped;
use super::{Field, FieldType, Group, Parser, parse_date, parse_number, template};
use crate::documents::{Document, Page};

/// A match: the text it stands for (the whole match without groups, else
/// the first group that matched, as invoice2data's `findall` gives it), and
/// the whole token around it when the match cuts a token short.
struct Found {
    text: String,
    range: std::ops::Range<usize>,
}

fn matches(regex: &fancy_regex::Regex, text: &str) -> Result<Vec<Found>, String> {
    let mut out = Vec::new();
    for caps in regex.captures_iter(text) {
        let caps = caps.map_err(|e| super::costly(regex, &e))?;
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
    Ok(out)
}

pub(super) fn typed(
    raw: &str,
    kind: FieldType,
    options: &template::Options,
) -> Result<Value, String> {
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

/// A value a person typed for a field of `kind`: first in the plain form
/// the review page shows values in (`1234.56`, `2026-08-16`), then as the
/// template's documents print them (`1.234,56`, `16.08.2026`).
pub fn read_value(
    raw: &str,
    kind: FieldType,
    options: &template::Options,
) -> Result<Value, String> {
    let text = raw.trim();
    let plain = match kind {
        FieldType::Text => return Ok(Value::String(text.to_string())),
        FieldType::Float => text.parse::<f64>().ok().and_then(cents),
        FieldType::Int => text.parse::<i64>().ok().map(Value::from),
        FieldType::Date => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .map(|d| Value::String(d.to_string())),
    };
    if let Some(value) = plain {
        return Ok(value);
    }
    typed(text, kind, options).map_err(|_| match kind {
        FieldType::Float => format!("must be a number such as 1234.56, found {text:?}"),
        FieldType::Int => format!("must be a whole number, found {text:?}"),
        FieldType::Date => format!("must be a date such as 2026-08-16, found {text:?}"),
        FieldType::Text => format!("cannot be read: {text:?}"),
    })
}

/// A number rounded to cents, as amounts are printed; `None` if not finite.
fn cents(f: f64) -> Option<Value> {
    serde_json::Number::from_f64((f * 100.0).round() / 100.0).map(Value::Number)
}

pub(super) fn group(values: Vec<Value>, g: Group) -> Option<Value> {
    let numbers = || values.iter().filter_map(Value::as_f64);
    match g {
        Group::First => values.first().cloned(),
        Group::Last => values.last().cloned(),
        Group::Sum => cents(numbers().sum()),
        Group::Min => numbers().reduce(f64::min).and_then(cents),
        Group::Max => numbers().reduce(f64::max).and_then(cents),
        Group::Join => Some(Value::String(
            values
                .iter()
                .map(super::values::as_text)
                .collect::<Vec<_>>()
                .join(" "),
        )),
    }
}

/// Apply one field rule of a template.
pub(super) fn apply(
    rule: &template::FieldRule,
    source: &Source,
    options: &template::Options,
) -> Result<Field, String> {
    if let Some(area) = &rule.area {
        return apply_in_area(rule, area, source, options);
    }
    match &rule.parser {
        Parser::Lines(lines) => super::lines::apply_lines(lines, source, options),
        Parser::Static(v) => Ok(Field {
            value: v.clone(),
            raw: None,
            confidence: 1.0,
            rule: "static".into(),
            reasons: Vec::new(),
            confirmed: Vec::new(),
            lines_not_read: Vec::new(),
            page: None,
            bbox: None,
        }),
        Parser::Regex { regexes, group } => apply_regex(rule, regexes, *group, source, options),
    }
}

/// A rule with an `area`: only the words whose centre lies in the box,
/// laid out on their own.
fn apply_in_area(
    rule: &template::FieldRule,
    area: &template::Area,
    source: &Source,
    options: &template::Options,
) -> Result<Field, String> {
    let b = &area.bbox;
    let inside = |w: &crate::documents::Word| {
        if area.touching {
            w.bbox.x0 < b.x1 && w.bbox.x1 > b.x0 && w.bbox.y0 < b.y1 && w.bbox.y1 > b.y0
        } else {
            let (cx, cy) = ((w.bbox.x0 + w.bbox.x1) / 2.0, (w.bbox.y0 + w.bbox.y1) / 2.0);
            cx >= b.x0 && cx <= b.x1 && cy >= b.y0 && cy <= b.y1
        }
    };
    let pages: Vec<Page> = source
        .doc
        .pages
        .iter()
        .filter(|p| (area.first_page..=area.last_page).contains(&p.number))
        .map(|p| {
            let words = p.words.iter().filter(|w| inside(w)).cloned().collect();
            Page::new(p.number, p.width, p.height, words)
        })
        .collect();
    if pages.is_empty() {
        return Err(format!("the document has no page {}", area.first_page));
    }
    let doc = Document { pages };
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
    apply(&unboxed, &inner, options).map(|mut f| {
        f.rule = match area.last_page {
            last if last == area.first_page => format!("{} in area of page {last}", f.rule),
            last => format!("{} in area of pages {}–{last}", f.rule, area.first_page),
        };
        f
    })
}

/// A regex rule: every match of every regex, typed; the value, and how far
/// to trust it.
fn apply_regex(
    rule: &template::FieldRule,
    regexes: &[fancy_regex::Regex],
    g: Option<Group>,
    source: &Source,
    options: &template::Options,
) -> Result<Field, String> {
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
    let mut doubts = Vec::new();
    let mut read: f32 = 1.0;
    let mut others = Vec::new();
    let mut place = None;
    for regex in regexes {
        for found in matches(regex, &source.prepared.text)? {
            match typed(&found.text, rule.kind, options) {
                Ok(v) => {
                    if rule.kind == FieldType::Float
                        && let Some(d) =
                            super::values::separator_doubt(&found.text, options.decimal_separator)
                    {
                        doubts.push(d);
                    }
                    let (c, page, bbox) = source.words(found.range.clone());
                    read = read.min(c);
                    others.extend(source.other_readings(found.range.clone()));
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
    reasons.extend(others);
    if !refused.is_empty() {
        confidence = confidence.min(0.6);
        reasons.push(format!(
            "other matches did not parse: {}",
            refused.join("; ")
        ));
    }
    if !doubts.is_empty() {
        confidence = confidence.min(0.3);
        reasons.extend(doubts);
    }
    if !cut.is_empty() {
        confidence = confidence.min(0.3);
        reasons.push(format!(
            "the match is only part of `{}`: the text may be misread",
            cut.join("`, `")
        ));
    }
    let value = match g {
        Some(g) => group(values, g).unwrap_or(Value::Null),
        None => one_value(rule, values, &mut confidence, &mut reasons),
    };
    let (page, bbox) = place.unwrap_or((None, None));
    Ok(Field {
        value,
        raw: raws.first().cloned(),
        confidence,
        rule: rule_text,
        reasons,
        confirmed: Vec::new(),
        lines_not_read: Vec::new(),
        page,
        bbox,
    })
}

/// The value of a rule without a `group`: the one value all matches agree
/// on, or, when they differ, all of them (the first for invoice2data's
/// dates and amounts) with the confidence lowered.
fn one_value(
    rule: &template::FieldRule,
    values: Vec<Value>,
    confidence: &mut f32,
    reasons: &mut Vec<String>,
) -> Value {
    let mut distinct: Vec<Value> = Vec::new();
    for v in values {
        if !distinct.contains(&v) {
            distinct.push(v);
        }
    }
    if distinct.len() == 1 {
        distinct.remove(0)
    } else if rule.legacy && matches!(rule.kind, FieldType::Date | FieldType::Float) {
        // invoice2data takes the first match for dates and amounts.
        *confidence = confidence.min(0.5);
        reasons.push(format!(
            "{} different values matched; took the first",
            distinct.len()
        ));
        distinct.remove(0)
    } else {
        *confidence = confidence.min(0.5);
        reasons.push(format!("{} different values matched", distinct.len()));
        Value::Array(distinct)
    }
}
