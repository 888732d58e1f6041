//! Templates in invoice2data's format (YAML or JSON), read as they are.
//!
//! Supported: `issuer`, `keywords`, `exclude_keywords`, `priority`,
//! `required_fields`, fields in the legacy form (a regex or a list of them;
//! names starting with `date` or ending with `date` become dates, names
//! starting with `amount` numbers; `static_*` fields), fields with the
//! `regex` parser (`regex`, `type` int/float/date, `group`
//! sum/min/max/first/last) and the `static` parser (`value`), and `options`
//! (`remove_whitespace`, `remove_accents`, `lowercase`, `currency`,
//! `date_formats`, `languages`, `decimal_separator`, `replace`).
//! clerk's own keys on a field: `required` and `min_confidence`.
//!
//! Regexes are compiled when the template loads, so a broken one is reported
//! with its file and field before any document is read.

use std::path::{Path, PathBuf};

use fancy_regex::Regex;
use serde_json::Value;

/// A problem in a template file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {message}", file.display())]
pub struct TemplateError {
    pub file: PathBuf,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Text,
    Int,
    Float,
    Date,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Sum,
    Min,
    Max,
    First,
    Last,
}

#[derive(Debug, Clone)]
pub enum Parser {
    /// Regexes tried in order; every match of every regex is a candidate.
    Regex {
        regexes: Vec<Regex>,
        group: Option<Group>,
    },
    Static(Value),
    /// Table rows between a start and an end line.
    Lines(Box<LinesRule>),
}

/// invoice2data's `lines` parser: every block of text between a match of
/// `start` and the next match of `end` is read line by line; every line
/// matching `line` (named groups) is a row. With `first_line`, a row starts
/// at a `first_line` match and later `line` matches add to it (for rows
/// printed over several lines), until `last_line` or the next first line.
#[derive(Debug, Clone)]
pub struct LinesRule {
    pub start: Regex,
    pub end: Regex,
    pub line: Regex,
    pub first_line: Option<Regex>,
    pub last_line: Option<Regex>,
    pub skip_line: Vec<Regex>,
    /// Types of the row's fields: float, int or date.
    pub types: Vec<(String, FieldType)>,
}

#[derive(Debug, Clone)]
pub struct FieldRule {
    pub name: String,
    pub parser: Parser,
    pub kind: FieldType,
    /// Written in the legacy form: several distinct matches become a list.
    pub legacy: bool,
    /// clerk: a document without this field goes to review.
    pub required: bool,
    /// clerk: below this confidence the field goes to review.
    pub min_confidence: f32,
    /// clerk: look only at the words inside this box of this page.
    pub area: Option<Area>,
}

/// A box on a page, in points (1/72 inch) from the page's top left corner.
#[derive(Debug, Clone, PartialEq)]
pub struct Area {
    /// From 1.
    pub page: u32,
    pub bbox: crate::documents::BBox,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub remove_whitespace: bool,
    pub remove_accents: bool,
    pub lowercase: bool,
    pub currency: String,
    pub date_formats: Vec<String>,
    pub languages: Vec<String>,
    pub decimal_separator: char,
    pub replace: Vec<(Regex, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            remove_whitespace: false,
            remove_accents: false,
            lowercase: false,
            currency: "EUR".into(),
            date_formats: Vec::new(),
            languages: Vec::new(),
            decimal_separator: '.',
            replace: Vec::new(),
        }
    }
}

/// A keyword: a regex, or the literal text when it is not a valid regex.
#[derive(Debug, Clone)]
pub struct Keyword {
    pub text: String,
    pub regex: Regex,
}

#[derive(Debug, Clone)]
pub struct Template {
    pub file: PathBuf,
    pub issuer: String,
    pub keywords: Vec<Keyword>,
    pub exclude_keywords: Vec<Keyword>,
    pub priority: i64,
    pub required_fields: Vec<String>,
    pub fields: Vec<FieldRule>,
    pub options: Options,
    /// clerk: checks across fields, run after extraction.
    pub validation: Vec<super::validate::Check>,
}

/// Below this a field goes to review unless its rule sets `min_confidence`:
/// a value the engine doubts is never passed through silently.
pub const DEFAULT_MIN_CONFIDENCE: f32 = 0.8;

/// invoice2data's default when a template names no `required_fields`.
const DEFAULT_REQUIRED: [&str; 4] = ["date", "amount", "invoice_number", "issuer"];

/// One or several strings: invoice2data accepts both wherever a list goes.
fn strings(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => a.iter().map(|x| x.as_str().map(String::from)).collect(),
        _ => None,
    }
}

struct Loader<'a> {
    file: &'a Path,
}

impl Loader<'_> {
    fn err(&self, message: impl Into<String>) -> TemplateError {
        TemplateError {
            file: self.file.to_path_buf(),
            message: message.into(),
        }
    }

    fn regex(&self, pattern: &str, what: &str) -> Result<Regex, TemplateError> {
        Regex::new(pattern).map_err(|e| self.err(format!("{what}: bad regex `{pattern}`: {e}")))
    }

    fn keyword(&self, text: &str) -> Result<Keyword, TemplateError> {
        // invoice2data treats keywords as regexes; one that does not compile
        // is taken literally.
        let regex = Regex::new(text).or_else(|_| Regex::new(&fancy_regex::escape(text)));
        Ok(Keyword {
            text: text.to_string(),
            regex: regex.map_err(|e| self.err(format!("keyword `{text}`: {e}")))?,
        })
    }

    fn field(&self, name: &str, spec: &Value) -> Result<FieldRule, TemplateError> {
        let what = format!("field `{name}`");
        let legacy_kind = if name.starts_with("date") || name.ends_with("date") {
            FieldType::Date
        } else if name.starts_with("amount") {
            FieldType::Float
        } else {
            FieldType::Text
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
                let patterns = strings(spec).ok_or_else(|| {
                    self.err(format!("{what}: expected a regex or a list of regexes"))
                })?;
                rule.parser = Parser::Regex {
                    regexes: patterns
                        .iter()
                        .map(|p| self.regex(p, &what))
                        .collect::<Result<_, _>>()?,
                    group: None,
                };
                rule.kind = legacy_kind;
                rule.legacy = true;
            }
            Value::Object(map) => {
                let parser = map.get("parser").and_then(Value::as_str).unwrap_or("regex");
                rule.kind = match map.get("type").and_then(Value::as_str) {
                    None => FieldType::Text,
                    Some("int") => FieldType::Int,
                    Some("float") => FieldType::Float,
                    Some("date") => FieldType::Date,
                    Some(other) => {
                        return Err(self.err(format!(
                            "{what}: unknown type `{other}`; expected int, float or date"
                        )));
                    }
                };
                let group = match map.get("group").and_then(Value::as_str) {
                    None => None,
                    Some("sum") => Some(Group::Sum),
                    Some("min") => Some(Group::Min),
                    Some("max") => Some(Group::Max),
                    Some("first") => Some(Group::First),
                    Some("last") => Some(Group::Last),
                    Some(other) => {
                        return Err(self.err(format!(
                            "{what}: unknown group `{other}`; expected sum, min, max, first or last"
                        )));
                    }
                };
                rule.parser = match parser {
                    "regex" => {
                        let patterns = map.get("regex").and_then(strings).ok_or_else(|| {
                            self.err(format!("{what}: the regex parser needs `regex`"))
                        })?;
                        Parser::Regex {
                            regexes: patterns
                                .iter()
                                .map(|p| self.regex(p, &what))
                                .collect::<Result<_, _>>()?,
                            group,
                        }
                    }
                    "static" => Parser::Static(map.get("value").cloned().ok_or_else(|| {
                        self.err(format!("{what}: the static parser needs `value`"))
                    })?),
                    "lines" => Parser::Lines(Box::new(self.lines(map, &what)?)),
                    other => {
                        return Err(self.err(format!(
                            "{what}: parser `{other}` is not supported yet; supported: regex, static, lines"
                        )));
                    }
                };
                rule.required = map
                    .get("required")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                rule.min_confidence = map
                    .get("min_confidence")
                    .and_then(Value::as_f64)
                    .map_or(DEFAULT_MIN_CONFIDENCE, |c| c as f32);
                if let Some(area) = map.get("area") {
                    rule.area = Some(self.area(area, &what)?);
                }
            }
            other => {
                rule.parser = Parser::Static(other.clone());
            }
        }
        Ok(rule)
    }

    fn lines(
        &self,
        map: &serde_json::Map<String, Value>,
        what: &str,
    ) -> Result<LinesRule, TemplateError> {
        let one = |key: &str| -> Result<Option<Regex>, TemplateError> {
            match map.get(key) {
                None => Ok(None),
                Some(Value::String(p)) => Ok(Some(self.regex(p, &format!("{what}: `{key}`"))?)),
                Some(_) => Err(self.err(format!("{what}: `{key}` must be a regex"))),
            }
        };
        let need = |key: &str| -> Result<Regex, TemplateError> {
            one(key)?.ok_or_else(|| self.err(format!("{what}: the lines parser needs `{key}`")))
        };
        let mut types = Vec::new();
        if let Some(t) = map.get("types").and_then(Value::as_object) {
            for (name, kind) in t {
                let kind = match kind.as_str() {
                    Some("float") => FieldType::Float,
                    Some("int") => FieldType::Int,
                    Some("date") => FieldType::Date,
                    _ => {
                        return Err(self.err(format!(
                            "{what}: type of `{name}` must be int, float or date"
                        )));
                    }
                };
                types.push((name.clone(), kind));
            }
        }
        let skip_line = match map.get("skip_line") {
            None => Vec::new(),
            Some(v) => strings(v)
                .ok_or_else(|| {
                    self.err(format!(
                        "{what}: `skip_line` must be a regex or a list of them"
                    ))
                })?
                .iter()
                .map(|p| self.regex(p, &format!("{what}: `skip_line`")))
                .collect::<Result<_, _>>()?,
        };
        Ok(LinesRule {
            start: need("start")?,
            end: need("end")?,
            line: need("line")?,
            first_line: one("first_line")?,
            last_line: one("last_line")?,
            skip_line,
            types,
        })
    }

    /// `area: {page: 1, x0: 300, y0: 100, x1: 560, y1: 160}`, in points.
    fn area(&self, v: &Value, what: &str) -> Result<Area, TemplateError> {
        let bad = || {
            self.err(format!(
                "{what}: `area` must be {{page, x0, y0, x1, y1}} in points from the top left, with x0 < x1 and y0 < y1"
            ))
        };
        let map = v.as_object().ok_or_else(bad)?;
        let n = |k: &str| map.get(k).and_then(Value::as_f64).ok_or_else(bad);
        let bbox = crate::documents::BBox {
            x0: n("x0")?,
            y0: n("y0")?,
            x1: n("x1")?,
            y1: n("y1")?,
        };
        if bbox.x0 >= bbox.x1 || bbox.y0 >= bbox.y1 {
            return Err(bad());
        }
        let page = map.get("page").and_then(Value::as_u64).unwrap_or(1);
        Ok(Area {
            page: u32::try_from(page).map_err(|_| bad())?.max(1),
            bbox,
        })
    }

    fn options(&self, v: Option<&Value>) -> Result<Options, TemplateError> {
        let mut o = Options::default();
        let map = match v {
            None | Some(Value::Null) => return Ok(o),
            Some(Value::Object(map)) => map,
            Some(_) => return Err(self.err("`options` must be a mapping of option: value")),
        };
        // A value of the wrong type is an error, not a default in silence.
        let wrong = |k: &str, what: &str| self.err(format!("options.{k} must be {what}"));
        let flag = |k: &str| match map.get(k) {
            None => Ok(false),
            Some(v) => v.as_bool().ok_or_else(|| wrong(k, "true or false")),
        };
        o.remove_whitespace = flag("remove_whitespace")?;
        o.remove_accents = flag("remove_accents")?;
        o.lowercase = flag("lowercase")?;
        if let Some(c) = map.get("currency") {
            o.currency = c
                .as_str()
                .ok_or_else(|| wrong("currency", "text"))?
                .to_string();
        }
        let texts = |k: &str| match map.get(k) {
            None => Ok(Vec::new()),
            Some(v) => strings(v).ok_or_else(|| wrong(k, "a text or a list of texts")),
        };
        o.date_formats = texts("date_formats")?;
        o.languages = texts("languages")?;
        if let Some(sep) = map.get("decimal_separator") {
            let sep = sep
                .as_str()
                .ok_or_else(|| wrong("decimal_separator", "\".\" or \",\""))?;
            o.decimal_separator = match sep {
                "." => '.',
                "," => ',',
                other => {
                    return Err(self.err(format!(
                        "options.decimal_separator must be \".\" or \",\", not `{other}`"
                    )));
                }
            };
        }
        if let Some(pairs) = map.get("replace").and_then(Value::as_array) {
            for pair in pairs {
                let p = strings(pair).filter(|p| p.len() == 2).ok_or_else(|| {
                    self.err("options.replace must be a list of [regex, replacement] pairs")
                })?;
                o.replace
                    .push((self.regex(&p[0], "options.replace")?, p[1].clone()));
            }
        }
        Ok(o)
    }

    fn template(&self, doc: &Value) -> Result<Template, TemplateError> {
        let map = doc
            .as_object()
            .ok_or_else(|| self.err("a template is a mapping of keys"))?;
        let issuer = map
            .get("issuer")
            .and_then(Value::as_str)
            .ok_or_else(|| self.err("missing `issuer`"))?
            .to_string();
        let keywords = map
            .get("keywords")
            .and_then(strings)
            .ok_or_else(|| self.err("missing `keywords` (a string or a list of them)"))?;
        let exclude = map
            .get("exclude_keywords")
            .and_then(strings)
            .unwrap_or_default();
        let mut fields = Vec::new();
        match map.get("fields") {
            None | Some(Value::Null) => {}
            Some(Value::Object(f)) => {
                for (name, spec) in f {
                    fields.push(self.field(name, spec)?);
                }
            }
            Some(_) => {
                return Err(self.err("`fields` must be a mapping of field name: rule"));
            }
        }
        // Older templates put the lines rule at the top level.
        if let Some(lines) = map.get("lines").and_then(Value::as_object)
            && !fields.iter().any(|f| f.name == "lines")
        {
            fields.push(FieldRule {
                name: "lines".into(),
                parser: Parser::Lines(Box::new(self.lines(lines, "`lines`")?)),
                kind: FieldType::Text,
                legacy: false,
                required: false,
                min_confidence: DEFAULT_MIN_CONFIDENCE,
                area: None,
            });
        }
        let required_fields = match map.get("required_fields") {
            Some(v) => strings(v)
                .ok_or_else(|| self.err("`required_fields` must be a list of field names"))?,
            None => DEFAULT_REQUIRED.iter().map(|s| s.to_string()).collect(),
        };
        Ok(Template {
            file: self.file.to_path_buf(),
            issuer,
            keywords: keywords
                .iter()
                .map(|k| self.keyword(k))
                .collect::<Result<_, _>>()?,
            exclude_keywords: exclude
                .iter()
                .map(|k| self.keyword(k))
                .collect::<Result<_, _>>()?,
            priority: map.get("priority").and_then(Value::as_i64).unwrap_or(5),
            required_fields,
            fields,
            options: self.options(map.get("options"))?,
            validation: match map.get("validation") {
                None => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        super::validate::parse_check(v)
                            .map_err(|e| self.err(format!("validation #{}: {e}", i + 1)))
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(self.err("`validation` must be a list of checks")),
            },
        })
    }
}

/// Parse one template file's text (`.yml`, `.yaml` or `.json`).
pub fn parse_template(file: &Path, text: &str) -> Result<Template, TemplateError> {
    let loader = Loader { file };
    let is_json = file.extension().is_some_and(|e| e == "json");
    let doc = if is_json {
        serde_json::from_str::<Value>(text).map_err(|e| loader.err(format!("invalid JSON: {e}")))?
    } else {
        super::yaml::load(text).map_err(|e| {
            loader.err(format!(
                "invalid YAML at line {}, column {}: {}",
                e.line, e.column, e.message
            ))
        })?
    };
    loader.template(&doc)
}

/// Every template below `dir` (recursively), and every file that failed.
/// Every file below `dir` (recursively) whose extension `keep` accepts,
/// sorted, and the folders that could not be read.
pub fn find_files(
    dir: &Path,
    keep: impl Fn(&str) -> bool,
) -> (Vec<PathBuf>, Vec<(PathBuf, std::io::Error)>) {
    let mut files = Vec::new();
    let mut unreadable = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        match std::fs::read_dir(&d) {
            Ok(entries) => {
                for e in entries.flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if p.extension().and_then(|e| e.to_str()).is_some_and(&keep) {
                        files.push(p);
                    }
                }
            }
            Err(e) => unreadable.push((d, e)),
        }
    }
    files.sort();
    (files, unreadable)
}

pub fn load_templates(dir: &Path) -> (Vec<Template>, Vec<TemplateError>) {
    let (files, unreadable) = find_files(dir, |e| matches!(e, "yml" | "yaml" | "json"));
    let mut errors: Vec<TemplateError> = unreadable
        .into_iter()
        .map(|(d, e)| TemplateError {
            file: d,
            message: format!("cannot read the templates folder: {e}"),
        })
        .collect();
    let mut templates = Vec::new();
    for f in files {
        match std::fs::read_to_string(&f) {
            Ok(text) => match parse_template(&f, &text) {
                Ok(t) => templates.push(t),
                Err(e) => errors.push(e),
            },
            Err(e) => errors.push(TemplateError {
                file: f.clone(),
                message: format!("cannot read: {e}"),
            }),
        }
    }
    (templates, errors)
}
