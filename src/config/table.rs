//! Reading one TOML table key by key, with every problem reported at its
//! place: the reader behind bot files and every step kind's keys.
//!
//! A [`TableReader`] hands out a table's values by name, converts them to
//! the type asked for ([`FromToml`]), and at [`finish`](TableReader::finish)
//! reports every key nobody asked for, with a did-you-mean hint. Problems go
//! to a shared [`Sink`], so a file's problems are all reported at once.

use std::cell::RefCell;
use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostics::{Diagnostic, line_column};
use super::values::{FromToml, found};

/// Collects diagnostics. Shared by reference between the readers of nested
/// tables, which are alive at the same time, hence the `RefCell`.
pub struct Sink<'a> {
    file: &'a Path,
    source: &'a str,
    diags: RefCell<Vec<Diagnostic>>,
}

impl<'a> Sink<'a> {
    /// A sink for the problems of `file`, whose text is `source`.
    pub fn new(file: &'a Path, source: &'a str) -> Self {
        Sink {
            file,
            source,
            diags: RefCell::new(Vec::new()),
        }
    }

    /// Every problem reported, in the order they were found.
    pub fn into_diagnostics(self) -> Vec<Diagnostic> {
        self.diags.into_inner()
    }

    /// A problem at byte offset `at`.
    pub fn error(&self, at: usize, message: String, hint: Option<String>) {
        let mut diag = Diagnostic::at(self.file, self.source, at, message);
        diag.hint = hint;
        self.diags.borrow_mut().push(diag);
    }

    pub fn file_error(&self, message: String) {
        self.diags
            .borrow_mut()
            .push(Diagnostic::file(self.file, message));
    }

    pub fn line(&self, at: usize) -> usize {
        line_column(self.source, at).0
    }
}

/// What is wrong with a value, said after its key: "`retry.jitter` must be
/// a number from 0 to 1, found …".
pub struct Problem {
    message: String,
    hint: Option<String>,
}

impl Problem {
    pub fn new(message: String) -> Self {
        Problem {
            message,
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// What is wrong, as said after the value's name.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<String> for Problem {
    fn from(message: String) -> Self {
        Problem::new(message)
    }
}

/// Hands out the fields of one table by name, reports what is wrong with
/// them, and at [`finish`](Self::finish) reports the keys nobody asked for.
/// Dropping a reader without `finish` leaves its unknown keys unreported,
/// for tables whose valid keys cannot be known (a step of unknown kind).
pub struct TableReader<'a, 'i> {
    sink: &'a Sink<'a>,
    table: &'a DeTable<'i>,
    /// The table's header; missing keys are reported here. `None` for the
    /// top level, where they concern the whole file.
    span: Option<Range<usize>>,
    /// Written before key names: `retry.` makes `retry.backoff`.
    prefix: String,
    /// Written after key names: ` in step `fetch``.
    suffix: String,
    /// Every valid key asked for, present or not; unknown keys are compared
    /// against these for suggestions.
    known: Vec<&'static str>,
    /// Keys reported as not belonging here, so `finish` skips them.
    rejected: Vec<&'static str>,
}

impl<'a, 'i> TableReader<'a, 'i> {
    /// The reader of a file's top-level table.
    pub fn root(sink: &'a Sink<'a>, table: &'a DeTable<'i>) -> Self {
        TableReader::new(sink, table, None, String::new(), String::new())
    }

    fn new(
        sink: &'a Sink<'a>,
        table: &'a DeTable<'i>,
        span: Option<Range<usize>>,
        prefix: String,
        suffix: String,
    ) -> Self {
        TableReader {
            sink,
            table,
            span,
            prefix,
            suffix,
            known: Vec::new(),
            rejected: Vec::new(),
        }
    }

    /// Where problems go; for checks that span several keys.
    pub fn sink(&self) -> &'a Sink<'a> {
        self.sink
    }

    /// Name this table in messages from now on: ` in step `fetch``.
    pub fn set_suffix(&mut self, suffix: String) {
        self.suffix = suffix;
    }

    /// Byte offset of the table's header (0 for the top level): where a
    /// problem of the table as a whole is reported.
    pub fn start(&self) -> usize {
        self.span.as_ref().map_or(0, |s| s.start)
    }

    pub fn has(&self, key: &str) -> bool {
        self.table.get(key).is_some()
    }

    pub fn span_of(&self, key: &str) -> Option<Range<usize>> {
        self.table.get(key).map(|v| v.span())
    }

    /// The value of `key`, remembering that `key` is valid here.
    fn take(&mut self, key: &'static str) -> Option<&'a Spanned<DeValue<'i>>> {
        if !self.known.contains(&key) {
            self.known.push(key);
        }
        self.table.get(key)
    }

    /// `key` as messages name it.
    fn display(&self, key: &str) -> String {
        format!("`{}{key}`{}", self.prefix, self.suffix)
    }

    /// Read `key` as a `T`, then check and convert it with `check`.
    pub fn required_with<T: FromToml, U>(
        &mut self,
        key: &'static str,
        check: impl FnOnce(T) -> Result<U, Problem>,
    ) -> Option<U> {
        match self.take(key) {
            Some(value) => self.convert(key, value, check),
            None => {
                let message = format!("missing required key {}", self.display(key));
                match &self.span {
                    Some(span) => self.sink.error(span.start, message, None),
                    None => self.sink.file_error(message),
                }
                None
            }
        }
    }

    /// `None` when `key` is absent or invalid (the latter is reported).
    pub fn optional<T: FromToml>(&mut self, key: &'static str) -> Option<T> {
        self.optional_with(key, Ok)
    }

    pub fn optional_with<T: FromToml, U>(
        &mut self,
        key: &'static str,
        check: impl FnOnce(T) -> Result<U, Problem>,
    ) -> Option<U> {
        let value = self.take(key)?;
        self.convert(key, value, check)
    }

    /// `Some(default)` when `key` is absent, `None` when it is invalid: for
    /// values later checked against each other, where a reported bad value
    /// must not cause a second, confusing report.
    pub fn optional_or<T: FromToml, U>(
        &mut self,
        key: &'static str,
        default: U,
        check: impl FnOnce(T) -> Result<U, Problem>,
    ) -> Option<U> {
        match self.take(key) {
            Some(value) => self.convert(key, value, check),
            None => Some(default),
        }
    }

    fn convert<T: FromToml, U>(
        &self,
        key: &str,
        value: &Spanned<DeValue>,
        check: impl FnOnce(T) -> Result<U, Problem>,
    ) -> Option<U> {
        match T::from_toml(value.get_ref()).and_then(check) {
            Ok(v) => Some(v),
            Err(p) => {
                let message = format!("{} {}", self.display(key), p.message);
                self.sink.error(value.span().start, message, p.hint);
                None
            }
        }
    }

    /// The sub-table `key`, if given.
    pub fn table(&mut self, key: &'static str) -> Option<TableReader<'a, 'i>> {
        let value = self.take(key)?;
        match value.get_ref() {
            DeValue::Table(table) => Some(TableReader::new(
                self.sink,
                table,
                Some(value.span()),
                format!("{}{key}.", self.prefix),
                self.suffix.clone(),
            )),
            other => {
                self.type_error(key, value, "a table", other);
                None
            }
        }
    }

    /// The array of tables `key` (`[[key]]`), one reader per table, named
    /// "<what> #1", "#2", … in messages until the caller names them better.
    /// `None` when absent or not an array; elements that are not tables are
    /// reported and left out.
    pub fn array_of_tables(
        &mut self,
        key: &'static str,
        what: &str,
    ) -> Option<Vec<TableReader<'a, 'i>>> {
        let value = self.take(key)?;
        let DeValue::Array(items) = value.get_ref() else {
            self.type_error(
                key,
                value,
                &format!("an array of tables (`[[{key}]]`)"),
                value.get_ref(),
            );
            return None;
        };
        let mut readers = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let suffix = format!(" in {what} #{}", index + 1);
            match item.get_ref() {
                DeValue::Table(table) => readers.push(TableReader::new(
                    self.sink,
                    table,
                    Some(item.span()),
                    String::new(),
                    suffix,
                )),
                other => self.sink.error(
                    item.span().start,
                    format!("each of `{key}` must be a table, found {}", found(other)),
                    None,
                ),
            }
        }
        Some(readers)
    }

    fn type_error(&self, key: &str, value: &Spanned<DeValue>, expected: &str, other: &DeValue) {
        self.sink.error(
            value.span().start,
            format!(
                "{} must be {expected}, found {}",
                self.display(key),
                found(other)
            ),
            None,
        );
    }

    /// Report `key`, if present, as not belonging here, and why.
    pub fn reject(&mut self, key: &'static str, why: &str) {
        self.rejected.push(key);
        if let Some((k, _)) = self.table.get_key_value(key) {
            let message = format!("{} {why}", self.display(key));
            self.sink.error(k.span().start, message, None);
        }
    }

    /// Report every key that was neither asked for nor rejected.
    pub fn finish(self) {
        for (key, _) in self.table.iter() {
            let name = key.get_ref().as_ref();
            if self.known.contains(&name) || self.rejected.contains(&name) {
                continue;
            }
            let hint = match closest(name, &self.known) {
                Some(close) => format!("did you mean `{close}`?"),
                None if self.known.is_empty() => "this table takes no keys".to_string(),
                None => format!("expected one of {}", quoted_list(&self.known)),
            };
            self.sink.error(
                key.span().start,
                format!("unknown key {}", self.display(name)),
                Some(hint),
            );
        }
    }
}

/// The candidate most like `word`, if any is close enough to be a likely
/// misspelling.
pub fn closest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(word, c), *c))
        .filter(|(score, c)| {
            // Two edits make a different word of a short key ("job" vs
            // "jab" is fine, "id" vs "env" is not), hence the length check.
            let edits = strsim::levenshtein(word, c);
            *score >= 0.8 || (edits <= 2 && edits * 2 <= c.len())
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

pub fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `s` if it is one of the `choices`, as the matching value.
pub fn one_of<T: Copy>(s: &str, choices: &[(&str, T)]) -> Result<T, Problem> {
    if let Some((_, value)) = choices.iter().find(|(name, _)| *name == s) {
        return Ok(*value);
    }
    let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
    let problem = Problem::new(format!(
        "must be one of {}, found {s:?}",
        quoted_list(&names)
    ));
    Err(match closest(s, &names) {
        Some(close) => problem.hint(format!("did you mean `{close}`?")),
        None => problem,
    })
}
