//! Reading a template file: its YAML or JSON walked key by key into a
//! [`Template`], every problem reported at its line and column.

use std::path::Path;

use serde_json::{Map, Value};

use super::regex::compile;
use super::{
    DEFAULT_MIN_CONFIDENCE, DEFAULT_PRIORITY, DEFAULT_REQUIRED, FieldRule, FieldType, Group,
    Keyword, Parser, Template, TemplateFile, keys,
};
use crate::config::{Diagnostic, closest, quoted_list};
use crate::extract::yaml::{Positions, child};

/// Reads one template, collecting its problems.
pub(super) struct Reader<'a> {
    pub file: &'a Path,
    source: &'a str,
    at: Positions,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    /// Every field the template declares, read or not.
    pub declared: Vec<String>,
}

/// One or several strings: invoice2data accepts both wherever a list goes.
pub(super) fn strings(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => a.iter().map(|x| x.as_str().map(String::from)).collect(),
        _ => None,
    }
}

pub(super) fn read(file: &Path, text: &str) -> TemplateFile {
    let mut reader = Reader {
        file,
        source: text,
        at: Positions::default(),
        errors: Vec::new(),
        warnings: Vec::new(),
        declared: Vec::new(),
    };
    let is_json = file.extension().is_some_and(|e| e == "json");
    let doc = match crate::extract::yaml::load_with_positions(text) {
        Ok((doc, at)) => {
            reader.at = at;
            Some(doc)
        }
        // JSON that YAML does not read (tabs, long lines) is read as JSON.
        Err(_) if is_json => match serde_json::from_str::<Value>(text) {
            Ok(doc) => Some(doc),
            Err(e) => {
                reader.errors.push(Diagnostic {
                    file: file.to_path_buf(),
                    line: e.line(),
                    column: e.column(),
                    message: format!("invalid JSON: {e}"),
                    hint: None,
                });
                None
            }
        },
        Err(e) => {
            let hint = e
                .message
                .contains("mapping values are not allowed")
                .then(|| {
                    "a value containing `: ` must be quoted, e.g. regex: 'Total: (\\d+)'"
                        .to_string()
                });
            reader.errors.push(Diagnostic {
                file: file.to_path_buf(),
                line: e.line,
                column: e.column,
                message: format!("invalid YAML: {}", e.message),
                hint,
            });
            None
        }
    };
    let template = doc.and_then(|doc| reader.template(&doc));
    if let Some(t) = &template {
        super::lines::cross_references(&mut reader, t);
    }
    let template = template.filter(|_| reader.errors.is_empty());
    TemplateFile {
        template,
        errors: reader.errors,
        warnings: reader.warnings,
    }
}

impl Reader<'_> {
    fn diagnostic(&self, pointer: &str, key: bool, message: String) -> Diagnostic {
        let pos = if key {
            self.at.key(pointer)
        } else {
            self.at.value(pointer)
        };
        // A problem of the whole template has no place of its own.
        let (line, column) = match pos {
            Some(p) if !pointer.is_empty() => (p.line, p.column),
            _ => (0, 0),
        };
        Diagnostic {
            file: self.file.to_path_buf(),
            line,
            column,
            message,
            hint: None,
        }
    }

    /// A problem that makes the template unusable, at the value.
    pub fn error(&mut self, pointer: &str, message: impl Into<String>) {
        let d = self.diagnostic(pointer, false, message.into());
        self.errors.push(d);
    }

    /// A problem that leaves the template usable, at the key.
    pub fn warn(&mut self, pointer: &str, message: impl Into<String>, hint: Option<String>) {
        let mut d = self.diagnostic(pointer, true, message.into());
        d.hint = hint;
        self.warnings.push(d);
    }

    /// Warn of every key of `map` not in `known`, with the closest one.
    pub fn unknown_keys(&mut self, map: &Map<String, Value>, pointer: &str, known: &[&str]) {
        for key in map.keys() {
            if known.contains(&key.as_str()) {
                continue;
            }
            let hint = match closest(key, known) {
                Some(close) => format!("did you mean `{close}`?"),
                None => format!("expected one of {}", quoted_list(known)),
            };
            self.warn(
                &child(pointer, key),
                format!("unknown key `{key}`: it has no effect"),
                Some(hint),
            );
        }
    }

    /// A regex of the template, compiled; a bad one is reported at the
    /// character that fails.
    pub fn regex(
        &mut self,
        pattern: &str,
        pointer: &str,
        what: &str,
    ) -> Option<fancy_regex::Regex> {
        match compile(pattern) {
            Ok(r) => Some(r),
            Err(problem) => {
                let mut d = self.diagnostic(pointer, false, String::new());
                let at = match problem.at {
                    Some(at) => {
                        let failing: String = pattern.chars().skip(at).take(1).collect();
                        // Point the column at the character when the regex
                        // is written on one line (plain or quoted).
                        let quoted = self
                            .char_at(d.line, d.column)
                            .is_some_and(|c| c == '\'' || c == '"');
                        if d.line > 0 && !pattern.contains('\n') {
                            d.column += at + usize::from(quoted);
                        }
                        if failing.is_empty() {
                            " at its end".to_string()
                        } else {
                            format!(" at character {} (`{failing}`)", at + 1)
                        }
                    }
                    None => String::new(),
                };
                d.message = format!("{what}: bad regex `{pattern}`: {}{at}", problem.message);
                self.errors.push(d);
                None
            }
        }
    }

    fn char_at(&self, line: usize, column: usize) -> Option<char> {
        self.source
            .lines()
            .nth(line.checked_sub(1)?)?
            .chars()
            .nth(column.checked_sub(1)?)
    }

    /// A regex or a list of them.
    pub fn regexes(
        &mut self,
        v: &Value,
        pointer: &str,
        what: &str,
    ) -> Option<Vec<fancy_regex::Regex>> {
        let Some(patterns) = strings(v) else {
            self.error(
                pointer,
                format!("{what} must be a regex or a list of regexes"),
            );
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, p) in patterns.iter().enumerate() {
            let at = if v.is_array() {
                child(pointer, &i.to_string())
            } else {
                pointer.to_string()
            };
            match self.regex(p, &at, what) {
                Some(r) => out.push(r),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn keyword(&mut self, text: &str, pointer: &str) -> Option<Keyword> {
        // invoice2data treats keywords as regexes; one that does not compile
        // is taken literally.
        let regex = compile(text)
            .ok()
            .or_else(|| fancy_regex::Regex::new(&fancy_regex::escape(text)).ok());
        match regex {
            Some(regex) => Some(Keyword {
                text: text.to_string(),
                regex,
            }),
            None => {
                self.error(pointer, format!("keyword `{text}` cannot be read"));
                None
            }
        }
    }

    fn keywords(&mut self, map: &Map<String, Value>, key: &str) -> Option<Vec<Keyword>> {
        let pointer = child("", key);
        let Some(v) = map.get(key) else {
            return Some(Vec::new());
        };
        let items = match v {
            Value::Array(items) => items.clone(),
            one => vec![one.clone()],
        };
        let mut texts = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = if v.is_array() {
                child(&pointer, &i.to_string())
            } else {
                pointer.clone()
            };
            match item {
                Value::String(s) => texts.push(s.clone()),
                Value::Number(_) | Value::Bool(_) => {
                    self.warn(&at, format!("keyword {item} is not text: it is looked for as `{item}`, and invoice2data fails on it"), Some("quote it".into()));
                    texts.push(item.to_string());
                }
                _ => {
                    self.error(&at, format!("`{key}` must be a text or a list of texts"));
                    return None;
                }
            }
        }
        let mut out = Vec::new();
        for (i, t) in texts.iter().enumerate() {
            let at = if v.is_array() {
                child(&pointer, &i.to_string())
            } else {
                pointer.clone()
            };
            out.push(self.keyword(t, &at)?);
        }
        Some(out)
    }

    fn template(&mut self, doc: &Value) -> Option<Template> {
        let Some(map) = doc.as_object() else {
            self.error(
                "",
                "a template is a mapping of keys (issuer, keywords, fields, …)",
            );
            return None;
        };
        self.unknown_keys(map, "", keys::TOP);
        if map.contains_key("input_module") {
            self.warn(
                "/input_module",
                "clerk reads every document with its own reader; `input_module` has no effect",
                None,
            );
        }
        if !map.contains_key("keywords") {
            self.error("", "missing `keywords` (a text or a list of them)");
        }
        let keywords = self.keywords(map, "keywords").unwrap_or_default();
        let exclude_keywords = self.keywords(map, "exclude_keywords").unwrap_or_default();
        // invoice2data names a template without an issuer by its first keyword.
        let issuer = match map.get("issuer") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => {
                keywords.first().map(|k| k.text.clone()).unwrap_or_default()
            }
            Some(other) => other.to_string(),
        };
        let priority = match map.get("priority") {
            None => DEFAULT_PRIORITY,
            Some(v) => v.as_i64().unwrap_or_else(|| {
                self.error(
                    "/priority",
                    "`priority` must be a whole number (5 by default)",
                );
                DEFAULT_PRIORITY
            }),
        };
        let required_fields = match map.get("required_fields") {
            None => DEFAULT_REQUIRED.iter().map(|s| s.to_string()).collect(),
            Some(v) => strings(v).unwrap_or_else(|| {
                self.error(
                    "/required_fields",
                    "`required_fields` must be a list of field names",
                );
                Vec::new()
            }),
        };
        let mut fields = Vec::new();
        match map.get("fields") {
            None | Some(Value::Null) => {}
            Some(Value::Object(f)) => {
                for (name, spec) in f {
                    self.declared
                        .push(name.trim_start_matches("static_").to_string());
                    self.declared
                        .push(name.trim_start_matches("sum_").to_string());
                    if let Some(rule) = self.field(name, spec, &child("/fields", name)) {
                        fields.push(rule);
                    }
                }
            }
            Some(_) => self.error("/fields", "`fields` must be a mapping of field name: rule"),
        }
        self.top_level_lines(map, &mut fields);
        let tables = match map.get("tables") {
            None => Vec::new(),
            Some(v) => self.tables(v, "/tables").unwrap_or_default(),
        };
        let options = self.options(map.get("options"));
        let validation = self.validation(map.get("validation"));
        Some(Template {
            file: self.file.to_path_buf(),
            issuer,
            keywords,
            exclude_keywords,
            priority,
            required_fields,
            fields,
            tables,
            options,
            validation,
        })
    }

    /// The older top-level `lines`, read after the fields: it wins.
    fn top_level_lines(&mut self, map: &Map<String, Value>, fields: &mut Vec<FieldRule>) {
        if let Some(lines) = map.get("lines") {
            match lines.as_object() {
                Some(lines) => {
                    if let Some(rule) = self.lines(lines, "/lines", "`lines`") {
                        fields.retain(|f| f.name != "lines");
                        fields.push(FieldRule {
                            name: "lines".into(),
                            parser: Parser::Lines(Box::new(rule)),
                            kind: FieldType::Text,
                            legacy: false,
                            required: false,
                            min_confidence: DEFAULT_MIN_CONFIDENCE,
                            area: None,
                        });
                    }
                }
                None => self.error(
                    "/lines",
                    "the top-level `lines` must be a mapping (start, end, line, …); invoice2data fails on this template too",
                ),
            }
        }
    }

    fn validation(&mut self, v: Option<&Value>) -> Vec<crate::extract::validate::Check> {
        match v {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| match super::super::validate::parse_check(v) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        self.error(
                            &child("/validation", &i.to_string()),
                            format!("validation #{}: {e}", i + 1),
                        );
                        None
                    }
                })
                .collect(),
            Some(_) => {
                self.error("/validation", "`validation` must be a list of checks");
                Vec::new()
            }
        }
    }

    fn field(&mut self, name: &str, spec: &Value, pointer: &str) -> Option<FieldRule> {
        let what = format!("field `{name}`");
        let legacy_kind = match super::kind_by_name(name) {
            FieldType::Text if name.starts_with("sum_amount") => FieldType::Float,
            kind => kind,
        };
        let mut rule = FieldRule {
            name: name.trim_start_matches("static_").to_string(),
            parser: Parser::Static(Value::Null),
            kind: FieldType::Text,
            legacy: false,
            required: false,
            min_confidence: DEFAULT_MIN_CONFIDENCE,
            area: None,
        };
        match spec {
            _ if name.starts_with("static_") && !spec.is_object() => {
                rule.parser = Parser::Static(spec.clone());
            }
            Value::String(_) | Value::Array(_) => {
                let regexes = self.regexes(spec, pointer, &what)?;
                // invoice2data sums `sum_amount…: [regex, …]` into `amount…`.
                let sum = name.starts_with("sum_amount") && spec.is_array();
                if sum {
                    rule.name = name["sum_".len()..].to_string();
                }
                rule.parser = Parser::Regex {
                    regexes,
                    group: sum.then_some(Group::Sum),
                };
                rule.kind = legacy_kind;
                rule.legacy = true;
            }
            Value::Object(map) => return self.field_rule(rule, map, pointer, &what),
            _ => {
                self.error(
                    pointer,
                    format!(
                        "{what} must be a regex, a list of regexes or a mapping with a `parser`"
                    ),
                );
                return None;
            }
        }
        Some(rule)
    }

    fn field_rule(
        &mut self,
        mut rule: FieldRule,
        map: &Map<String, Value>,
        pointer: &str,
        what: &str,
    ) -> Option<FieldRule> {
        let parser = match map.get("parser") {
            Some(Value::String(p)) => p.as_str(),
            None if map.contains_key("regex") => {
                self.warn(pointer, format!("{what} has no `parser`: clerk reads it with the regex parser, invoice2data ignores it"), Some("add `parser: regex`".into()));
                "regex"
            }
            _ => {
                self.error(
                    pointer,
                    format!("{what} needs `parser`: regex, static or lines"),
                );
                return None;
            }
        };
        let own: &[&str] = match parser {
            "regex" => keys::REGEX_FIELD,
            "static" => keys::STATIC_FIELD,
            "lines" => keys::LINES_SET,
            other => {
                let hint = closest(other, &["regex", "static", "lines"])
                    .map(|c| format!("did you mean `{c}`?"));
                let mut d = self.diagnostic(
                    &child(pointer, "parser"),
                    false,
                    format!(
                        "{what}: parser `{other}` is not supported; supported: regex, static, lines"
                    ),
                );
                d.hint = hint;
                self.errors.push(d);
                return None;
            }
        };
        for (key, why) in keys::UNSUPPORTED {
            if map.contains_key(*key) {
                self.error(&child(pointer, key), format!("{what}: {why}"));
            }
        }
        let mut known: Vec<&str> = keys::FIELD_COMMON.to_vec();
        known.extend(own);
        if parser == "lines" {
            known.push("rules");
        }
        let unsupported: Vec<&str> = keys::UNSUPPORTED.iter().map(|(k, _)| *k).collect();
        let mut checked = map.clone();
        checked.retain(|k, _| !unsupported.contains(&k.as_str()));
        self.unknown_keys(&checked, pointer, &known);
        rule.kind = match map.get("type") {
            None => FieldType::Text,
            Some(t) => self.field_type(t, &child(pointer, "type"), what)?,
        };
        let group = match map.get("group").map(|g| (g, g.as_str())) {
            None => None,
            Some((_, Some("sum"))) => Some(Group::Sum),
            Some((_, Some("min"))) => Some(Group::Min),
            Some((_, Some("max"))) => Some(Group::Max),
            Some((_, Some("first"))) => Some(Group::First),
            Some((_, Some("last"))) => Some(Group::Last),
            Some((_, Some("join"))) => Some(Group::Join),
            Some((g, _)) => {
                self.error(
                    &child(pointer, "group"),
                    format!(
                        "{what}: unknown group {g}; expected sum, min, max, first, last or join"
                    ),
                );
                return None;
            }
        };
        rule.parser = match parser {
            "regex" => match map.get("regex") {
                Some(v) => Parser::Regex {
                    regexes: self.regexes(v, &child(pointer, "regex"), what)?,
                    group,
                },
                None => {
                    self.error(pointer, format!("{what}: the regex parser needs `regex`"));
                    return None;
                }
            },
            "static" => match map.get("value") {
                Some(v) => Parser::Static(v.clone()),
                None => {
                    self.error(pointer, format!("{what}: the static parser needs `value`"));
                    return None;
                }
            },
            _ => Parser::Lines(Box::new(self.lines(map, pointer, what)?)),
        };
        match map.get("required") {
            None => {}
            Some(Value::Bool(b)) => rule.required = *b,
            Some(_) => self.error(
                &child(pointer, "required"),
                format!("{what}: `required` must be true or false"),
            ),
        }
        match map.get("min_confidence").map(Value::as_f64) {
            None => {}
            Some(Some(c)) if (0.0..=1.0).contains(&c) => rule.min_confidence = c as f32,
            Some(_) => self.error(
                &child(pointer, "min_confidence"),
                format!("{what}: `min_confidence` must be a number from 0 to 1"),
            ),
        }
        if let Some(area) = map.get("area") {
            rule.area = Some(self.area(area, &child(pointer, "area"), what)?);
        }
        Some(rule)
    }

    pub fn field_type(&mut self, t: &Value, pointer: &str, what: &str) -> Option<FieldType> {
        match t.as_str() {
            Some("int") => Some(FieldType::Int),
            Some("float") => Some(FieldType::Float),
            Some("date") => Some(FieldType::Date),
            Some("datetime") => {
                self.error(
                    pointer,
                    format!("{what}: type `datetime` is not supported; use `date`"),
                );
                None
            }
            _ => {
                let hint = t
                    .as_str()
                    .and_then(|s| closest(s, &["int", "float", "date"]))
                    .map(|c| format!("did you mean `{c}`?"));
                let mut d = self.diagnostic(
                    pointer,
                    false,
                    format!("{what}: unknown type {t}; expected int, float or date"),
                );
                d.hint = hint;
                self.errors.push(d);
                None
            }
        }
    }
}
