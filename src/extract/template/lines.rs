//! Reading the table parts of a template: the `lines` parser's sets, the
//! older `tables`, and the check that the names the template asks for
//! (`required_fields`, validations) are produced by one of its rules.

use serde_json::{Map, Value};

use super::read::Reader;
use super::{FieldType, Group, LinesRule, LinesSet, Parser, TableRule, Template, keys};
use crate::config::closest;
use crate::extract::validate::Check;
use crate::extract::yaml::child;

impl Reader<'_> {
    /// A `lines` rule: one set, or several under `rules`.
    pub(super) fn lines(
        &mut self,
        map: &Map<String, Value>,
        pointer: &str,
        what: &str,
    ) -> Option<LinesRule> {
        let sets = match map.get("rules") {
            None => vec![self.lines_set(map, pointer, what)?],
            Some(Value::Array(rules)) => {
                let mut sets = Vec::new();
                let mut ok = true;
                for (i, rule) in rules.iter().enumerate() {
                    let at = child(&child(pointer, "rules"), &i.to_string());
                    let set = match rule.as_object() {
                        Some(rule) => {
                            self.unknown_keys(rule, &at, keys::LINES_SET);
                            self.lines_set(rule, &at, &format!("{what}, rule #{}", i + 1))
                        }
                        None => {
                            self.error(
                                &at,
                                format!(
                                    "{what}: each of `rules` is a mapping (start, end, line, …)"
                                ),
                            );
                            None
                        }
                    };
                    match set {
                        Some(s) => sets.push(s),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                sets
            }
            Some(_) => {
                self.error(
                    &child(pointer, "rules"),
                    format!("{what}: `rules` must be a list of sets (start, end, line, …)"),
                );
                return None;
            }
        };
        if sets.is_empty() {
            self.error(pointer, format!("{what}: `rules` is empty"));
            return None;
        }
        Some(LinesRule { sets })
    }

    fn lines_set(
        &mut self,
        map: &Map<String, Value>,
        pointer: &str,
        what: &str,
    ) -> Option<LinesSet> {
        let mut ok = true;
        let mut need = |r: &mut Self, key: &str| -> Option<Vec<fancy_regex::Regex>> {
            match map.get(key) {
                Some(v) => {
                    let got = r.regexes(v, &child(pointer, key), &format!("{what}: `{key}`"));
                    ok &= got.is_some();
                    got
                }
                None => None,
            }
        };
        let start = need(self, "start");
        let end = need(self, "end");
        let line = need(self, "line");
        let first_line = need(self, "first_line").unwrap_or_default();
        let last_line = need(self, "last_line").unwrap_or_default();
        let skip_line = need(self, "skip_line").unwrap_or_default();
        for key in ["start", "end", "line"] {
            if !map.contains_key(key) {
                self.error(pointer, format!("{what}: the lines parser needs `{key}`"));
                ok = false;
            }
        }
        for key in ["start", "end"] {
            if map.get(key).is_some_and(Value::is_array) {
                self.error(
                    &child(pointer, key),
                    format!("{what}: `{key}` must be one regex"),
                );
                ok = false;
            }
        }
        let end_at_last = match map.get("end_match").map(Value::as_str) {
            None | Some(Some("first")) => false,
            Some(Some("last")) => true,
            Some(_) => {
                self.error(
                    &child(pointer, "end_match"),
                    format!("{what}: `end_match` must be first or last"),
                );
                false
            }
        };
        match map.get("line_separator").map(Value::as_str) {
            None | Some(Some("\\n" | "\n")) => {}
            Some(_) => {
                self.error(
                    &child(pointer, "line_separator"),
                    format!("{what}: only the default `line_separator` (\\n) is supported"),
                );
                ok = false;
            }
        }
        let other_lines_expected = match map.get("other_lines").map(Value::as_str) {
            None | Some(Some("flag")) => false,
            Some(Some("expected")) => true,
            Some(_) => {
                self.error(
                    &child(pointer, "other_lines"),
                    format!("{what}: `other_lines` must be `flag` (the default) or `expected`"),
                );
                false
            }
        };
        if !last_line.is_empty() && first_line.is_empty() {
            self.warn(
                pointer,
                format!(
                    "{what}: `last_line` without `first_line` reads no rows (as in invoice2data)"
                ),
                Some("add `first_line`".into()),
            );
        }
        let types = self.types(map.get("types"), &child(pointer, "types"), what)?;
        let (Some(start), Some(end), Some(line)) = (start, end, line) else {
            return None;
        };
        if !ok {
            return None;
        }
        Some(LinesSet {
            start: start.into_iter().next()?,
            end: end.into_iter().next()?,
            end_at_last,
            line,
            first_line,
            last_line,
            skip_line,
            types,
            other_lines_expected,
        })
    }

    fn types(
        &mut self,
        v: Option<&Value>,
        pointer: &str,
        what: &str,
    ) -> Option<Vec<(String, FieldType)>> {
        let Some(v) = v else {
            return Some(Vec::new());
        };
        let Some(map) = v.as_object() else {
            self.error(
                pointer,
                format!("{what}: `types` must be a mapping of column: int, float or date"),
            );
            return None;
        };
        let mut types = Vec::new();
        for (name, kind) in map {
            let kind = self.field_type(
                kind,
                &child(pointer, name),
                &format!("{what}: column `{name}`"),
            )?;
            types.push((name.clone(), kind));
        }
        Some(types)
    }

    /// invoice2data's `tables`: a list of {start, end, body, types}.
    pub(super) fn tables(&mut self, v: &Value, pointer: &str) -> Option<Vec<TableRule>> {
        let Some(items) = v.as_array() else {
            self.error(
                pointer,
                "`tables` must be a list of tables (start, end, body)",
            );
            return None;
        };
        let mut tables = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = child(pointer, &i.to_string());
            let what = format!("table #{}", i + 1);
            let Some(map) = item.as_object() else {
                self.error(&at, format!("{what} must be a mapping (start, end, body)"));
                continue;
            };
            self.unknown_keys(map, &at, keys::TABLE);
            let one = |r: &mut Self, key: &str| match map.get(key) {
                Some(Value::String(p)) => r.regex(p, &child(&at, key), &format!("{what}: `{key}`")),
                _ => {
                    r.error(&at, format!("{what} needs `{key}`, a regex"));
                    None
                }
            };
            let (start, end, body) = (one(self, "start"), one(self, "end"), one(self, "body"));
            let types = self.types(map.get("types"), &child(&at, "types"), &what);
            let mut groups = Vec::new();
            if let Some(fields) = map.get("fields").and_then(Value::as_object) {
                for (name, spec) in fields {
                    let group = match spec.get("group").and_then(Value::as_str) {
                        Some("sum") => Group::Sum,
                        Some("min") => Group::Min,
                        Some("max") => Group::Max,
                        Some("first") => Group::First,
                        Some("last") => Group::Last,
                        _ => continue,
                    };
                    groups.push((name.clone(), group));
                }
            }
            for key in ["field_separator", "line_separator"] {
                if map.contains_key(key) {
                    self.error(
                        &child(&at, key),
                        format!("{what}: `{key}` is not supported"),
                    );
                }
            }
            if let (Some(start), Some(end), Some(body), Some(types)) = (start, end, body, types) {
                tables.push(TableRule {
                    start,
                    end,
                    body,
                    types,
                    groups,
                });
            }
        }
        Some(tables)
    }
}

/// The names a template's rules produce: its fields, the named groups of
/// its tables, and what every template has.
fn produced(t: &Template) -> (Vec<String>, Vec<String>) {
    let mut names: Vec<String> = ["issuer", "currency", "desc"].map(String::from).to_vec();
    let mut columns = Vec::new();
    for f in &t.fields {
        names.push(f.name.clone());
        if let Parser::Lines(rule) = &f.parser {
            for set in &rule.sets {
                for r in set.line.iter().chain(&set.first_line).chain(&set.last_line) {
                    columns.extend(r.capture_names().flatten().map(String::from));
                }
            }
        }
    }
    for table in &t.tables {
        names.extend(table.body.capture_names().flatten().map(String::from));
    }
    (names, columns)
}

/// Warn of every name in `required_fields` or a validation that no rule of
/// the template produces: each such document would go to review, or the
/// check would never run.
pub(super) fn cross_references(reader: &mut Reader, t: &Template) {
    let (mut names, columns) = produced(t);
    names.extend(reader.declared.iter().cloned());
    let known: Vec<&str> = names.iter().map(String::as_str).collect();
    let known_columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    let hint =
        |name: &str, among: &[&str]| closest(name, among).map(|c| format!("did you mean `{c}`?"));
    for (i, name) in t.required_fields.iter().enumerate() {
        if !known.contains(&name.as_str()) {
            let at = child("/required_fields", &i.to_string());
            reader.warn(&at, format!("required field `{name}` is produced by no rule: every document would go to review"), hint(name, &known));
        }
    }
    for (i, check) in t.validation.iter().enumerate() {
        let at = child("/validation", &i.to_string());
        let (fields, cols) = check_names(check);
        for name in fields {
            if !known.contains(&name.as_str()) {
                reader.warn(&at, format!("validation #{} uses `{name}`, which no rule produces: the check never runs", i + 1), hint(&name, &known));
            }
        }
        for name in cols {
            if !known_columns.contains(&name.as_str()) {
                reader.warn(
                    &at,
                    format!(
                        "validation #{} uses the column `{name}`, which no `lines` rule reads",
                        i + 1
                    ),
                    hint(&name, &known_columns),
                );
            }
        }
    }
}

/// The fields and the table columns a check reads.
fn check_names(check: &Check) -> (Vec<String>, Vec<String>) {
    match check {
        Check::Sum { fields, equals, .. } => {
            let mut all = fields.clone();
            all.push(equals.clone());
            (all, Vec::new())
        }
        Check::LinesSum { column, equals, .. } => {
            (vec!["lines".into(), equals.clone()], vec![column.clone()])
        }
        Check::LinesProduct {
            columns, equals, ..
        } => {
            let mut cols = columns.clone();
            cols.push(equals.clone());
            (vec!["lines".into()], cols)
        }
        Check::Iban { field }
        | Check::DateRange { field, .. }
        | Check::Pattern { field, .. }
        | Check::Known { field, .. } => (vec![field.clone()], Vec::new()),
    }
}
