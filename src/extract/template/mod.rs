//! Templates in invoice2data's format (YAML or JSON), read with
//! invoice2data's meaning.
//!
//! Supported: `issuer` (the first keyword when absent), `keywords`,
//! `exclude_keywords`, `priority`, `required_fields`, fields in the legacy
//! form (a regex or a list of them; names starting with `date` or ending
//! with `date` become dates, names starting with `amount` numbers,
//! `sum_amount*` lists are summed; `static_*` fields), fields with the
//! `regex` parser (`regex`, `type` int/float/date, `group`
//! sum/min/max/first/last), the `static` parser (`value`) and the `lines`
//! parser (one set of `start`/`end`/`line` or several under `rules`; `line`,
//! `first_line` and `last_line` a regex or a list of them), the older
//! top-level `lines` and `tables`, invoice2data's `area` (`f`, `l`, `r`,
//! `x`, `y`, `W`, `H`: pages, and a box in pixels at `r` dpi) and `options`
//! (`remove_whitespace`, `remove_accents`, `lowercase`, `currency`,
//! `date_formats`, `languages`, `decimal_separator`, `replace`). A key
//! repeated in one mapping keeps its last value, as in PyYAML.
//!
//! clerk's own keys: on a field `required`, `min_confidence` and `area` in
//! points (`page`, `x0`, `y0`, `x1`, `y1`); on a lines set
//! `other_lines: expected`; `options.cross_checks: false`; and
//! `validation` (see [`super::validate`]). invoice2data ignores them.
//!
//! Every problem is reported with its file, line and column. One that
//! changes what the template reads (a bad regex, a value of the wrong type)
//! makes the template unusable; one that does not (an unknown key, a name
//! no rule produces) is a warning.

mod keys;
mod lines;
mod options;
mod read;
mod regex;

use std::path::{Path, PathBuf};

use fancy_regex::Regex;
use serde_json::Value;

pub use crate::config::Diagnostic;

/// A problem in a template file, at its line and column.
pub type TemplateError = Diagnostic;

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
    /// The matches' text, joined by spaces.
    Join,
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

/// invoice2data's `lines` parser: one or several sets of patterns, each
/// read over the whole document; the rows of all sets, in order.
#[derive(Debug, Clone)]
pub struct LinesRule {
    pub sets: Vec<LinesSet>,
}

/// One set of a `lines` rule: every block of text between a match of
/// `start` and the next match of `end` (the last, with `end_match: last`)
/// is read line by line. Without `first_line` and `last_line`, every line
/// matching `line` is a row. With `first_line`, a row starts at a
/// `first_line` match and later `line` matches add to it (for rows printed
/// over several lines), until `last_line` or the next first line.
#[derive(Debug, Clone)]
pub struct LinesSet {
    pub start: Regex,
    pub end: Regex,
    pub end_at_last: bool,
    pub line: Vec<Regex>,
    pub first_line: Vec<Regex>,
    pub last_line: Vec<Regex>,
    pub skip_line: Vec<Regex>,
    /// Types of the row's fields: float, int or date.
    pub types: Vec<(String, FieldType)>,
    /// clerk: lines inside the table that match no pattern are expected;
    /// otherwise each is a row that may have been lost, and flagged.
    pub other_lines_expected: bool,
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
    /// Look only at the words inside this box.
    pub area: Option<Area>,
}

/// A box on a range of pages, in points (1/72 inch) from each page's top
/// left corner.
#[derive(Debug, Clone, PartialEq)]
pub struct Area {
    /// From 1.
    pub first_page: u32,
    pub last_page: u32,
    pub bbox: crate::documents::BBox,
    /// invoice2data's areas take every word that touches the box; clerk's
    /// take the words whose centre is inside it.
    pub touching: bool,
}

/// invoice2data's `tables`: between `start` and `end`, every line matching
/// `body` gives the values of its named groups as fields of the document
/// (a name seen on several lines becomes a list).
#[derive(Debug, Clone)]
pub struct TableRule {
    pub start: Regex,
    pub end: Regex,
    pub body: Regex,
    pub types: Vec<(String, FieldType)>,
    pub groups: Vec<(String, Group)>,
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
    /// clerk: the checks every document gets (sums, IBAN, dates).
    pub cross_checks: bool,
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
            cross_checks: true,
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
    pub tables: Vec<TableRule>,
    pub options: Options,
    /// clerk: checks across fields, run after extraction.
    pub validation: Vec<super::validate::Check>,
}

/// How invoice2data types a value by its name alone: names starting or
/// ending with `date` are dates, names starting with `amount` numbers.
pub fn kind_by_name(name: &str) -> FieldType {
    if name.starts_with("date") || name.ends_with("date") {
        FieldType::Date
    } else if name.starts_with("amount") {
        FieldType::Float
    } else {
        FieldType::Text
    }
}

/// Below this a field goes to review unless its rule sets `min_confidence`:
/// a value the engine doubts is never passed through silently.
pub const DEFAULT_MIN_CONFIDENCE: f32 = 0.8;

/// invoice2data's default when a template names no `required_fields`.
const DEFAULT_REQUIRED: [&str; 4] = ["date", "amount", "invoice_number", "issuer"];

/// Default priority, as in invoice2data.
pub const DEFAULT_PRIORITY: i64 = 5;

/// What reading one template file found: the template when it can be
/// used, the problems that make it unusable, and the warnings.
#[derive(Debug, Clone)]
pub struct TemplateFile {
    pub template: Option<Template>,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

/// Read one template file's text (`.yml`, `.yaml` or `.json`), with every
/// problem found.
pub fn check_template(file: &Path, text: &str) -> TemplateFile {
    read::read(file, text)
}

/// Parse one template file's text; the first problem that makes it
/// unusable is the error.
pub fn parse_template(file: &Path, text: &str) -> Result<Template, TemplateError> {
    let checked = check_template(file, text);
    match (checked.template, checked.errors.into_iter().next()) {
        (Some(t), None) => Ok(t),
        (_, Some(e)) => Err(e),
        (None, None) => Err(Diagnostic::file(file, "the template cannot be used")),
    }
}

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

/// The templates of a folder: those that can be used, and the problems of
/// all of them.
#[derive(Debug, Clone, Default)]
pub struct TemplateSet {
    pub templates: Vec<Template>,
    /// Problems that make a template unusable; it is skipped.
    pub errors: Vec<Diagnostic>,
    /// Problems that leave the template usable.
    pub warnings: Vec<Diagnostic>,
    /// Files read.
    pub files: usize,
}

impl TemplateSet {
    /// The files skipped for their errors, each once.
    pub fn skipped(&self) -> Vec<&Path> {
        let mut files: Vec<&Path> = self.errors.iter().map(|e| e.file.as_path()).collect();
        files.dedup();
        files
    }
}

/// Every template below `dir` (recursively), with the problems of each;
/// `dir` may also be one template file.
pub fn load_templates(dir: &Path) -> TemplateSet {
    let (files, unreadable) = if dir.is_file() {
        (vec![dir.to_path_buf()], Vec::new())
    } else {
        find_files(dir, |e| matches!(e, "yml" | "yaml" | "json"))
    };
    let mut set = TemplateSet {
        files: files.len(),
        errors: unreadable
            .into_iter()
            .map(|(d, e)| Diagnostic::file(&d, format!("cannot read the templates folder: {e}")))
            .collect(),
        ..TemplateSet::default()
    };
    for f in files {
        match std::fs::read(&f) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let checked = check_template(&f, &text);
                set.errors.extend(checked.errors);
                set.warnings.extend(checked.warnings);
                set.templates.extend(checked.template);
            }
            Err(e) => set
                .errors
                .push(Diagnostic::file(&f, format!("cannot read: {e}"))),
        }
    }
    set
}
