//! invoice2data's `tables`: between a start and an end line, every line
//! matching `body` gives the values of its named groups as fields of the
//! document. Names starting with `date` (or ending with it) are dates,
//! names starting with `amount` numbers, others as `types` says; a name
//! read on several lines becomes a list unless the table's `fields` group
//! it.

use std::collections::BTreeMap;

use serde_json::Value;

use super::evidence::{Evidence, Source, combine};
use super::fields::typed;
use super::template::{FieldType, Options, TableRule};
use super::{Field, costly};

/// The fields one table gives, or why it gives none.
pub(super) fn apply_table(
    table: &TableRule,
    source: &Source,
    options: &Options,
) -> Result<BTreeMap<String, Field>, String> {
    let text = source.prepared.text.as_str();
    let find = |r: &fancy_regex::Regex| r.find(text).map_err(|e| costly(r, &e));
    let (Some(start), Some(end)) = (find(&table.start)?, find(&table.end)?) else {
        return Err("the table's start or end was not found".into());
    };
    let (from, to) = (start.end(), end.start().max(start.end()));
    let mut values: BTreeMap<String, (Vec<Value>, Evidence, String)> = BTreeMap::new();
    let mut offset = from;
    for raw_line in text[from..to].split_inclusive('\n') {
        let at = offset;
        offset += raw_line.len();
        let line = raw_line.trim_end_matches(['\n', '\r']);
        let Some(caps) = table
            .body
            .captures(line)
            .map_err(|e| costly(&table.body, &e))?
        else {
            continue;
        };
        for name in table.body.capture_names().flatten() {
            let Some(m) = caps.name(name) else { continue };
            let kind = match super::template::kind_by_name(name) {
                FieldType::Text => table
                    .types
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or(FieldType::Text, |(_, k)| *k),
                kind => kind,
            };
            let value = typed(m.as_str(), kind, options)
                .map_err(|e| format!("table value `{name}`: {e}"))?;
            let seen = source.words(at + m.start()..at + m.end());
            let entry = values
                .entry(name.to_string())
                .or_insert_with(|| (Vec::new(), (1.0, None, None), m.as_str().to_string()));
            entry.0.push(value);
            entry.1 = combine(entry.1, seen);
        }
    }
    if values.is_empty() {
        return Err("no line of the table matched its `body`".into());
    }
    let rule = format!("tables: {} … {}", table.start.as_str(), table.end.as_str());
    Ok(values
        .into_iter()
        .map(|(name, (mut list, seen, raw))| {
            let group = table
                .groups
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, g)| *g);
            let value = match (group, list.len()) {
                (Some(g), _) => super::fields::group(list, g).unwrap_or(Value::Null),
                (None, 1) => list.remove(0),
                (None, _) => Value::Array(list),
            };
            let mut reasons = Vec::new();
            if seen.0 < 1.0 {
                reasons.push(format!("OCR read it with confidence {:.2}", seen.0));
            }
            let field = Field {
                value,
                raw: Some(raw),
                confidence: seen.0,
                rule: rule.clone(),
                reasons,
                confirmed: Vec::new(),
                lines_not_read: Vec::new(),
                page: seen.1,
                bbox: seen.2,
            };
            (name, field)
        })
        .collect())
}
