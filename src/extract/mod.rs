//! Extraction: choose the template that fits a document (`choose`), prepare
//! the document's layout text as its options say (`text`), apply its field
//! rules (`fields`) and line tables (`lines`), type the values (`values`),
//! check them (`validate`), and say for every field how far to trust it and
//! why, from the words it was read from (`evidence`). The `extract` step
//! kind is in `kind` and `step`.

mod choose;
mod cross_checks;
mod evidence;
mod fields;
mod kind;
mod lines;
pub mod rules;
pub mod step;
mod tables;
pub mod template;
mod text;
pub mod validate;
mod values;
mod yaml;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use crate::documents::Document;
pub use kind::{ExtractConfig, ExtractKind};
pub use template::{
    FieldType, Group, Parser, Template, TemplateError, TemplateSet, check_template, load_templates,
    parse_template,
};
pub use values::{as_text, parse_date, parse_number};

/// What a template regex that gave up says: the pattern backtracks too
/// much on this text, which is not the same as matching nothing.
fn costly(regex: &fancy_regex::Regex, e: &fancy_regex::Error) -> String {
    match e {
        fancy_regex::Error::RuntimeError(_) => format!(
            "pattern too costly: `{}` gave up on this document (backtracking limit); make it more specific",
            regex.as_str()
        ),
        other => format!("`{}`: {other}", regex.as_str()),
    }
}

/// One extracted field.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
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
    /// Checks across fields this value passed (evidence it is right).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub confirmed: Vec<String>,
    /// For a table: the lines inside it that were read as no row, skipped
    /// (`skip_line`) or read by no pattern.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines_not_read: Vec<String>,
    /// Page (from 1) and box of the words the value was read from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bbox: Option<crate::documents::BBox>,
}

/// How one template fared against the document, for `--explain` and for
/// a reviewer choosing a template.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
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
    /// Each page's number and size in points, for drawing the boxes of
    /// fields over the page.
    pub pages: Vec<PageSize>,
    /// Fields the template has a rule for that found no value, and why.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub unmatched: BTreeMap<String, String>,
    /// Every check across fields that ran, and how it went.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub validations: Vec<validate::CheckOutcome>,
}

/// A page's number (from 1) and size in points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct PageSize {
    pub number: u32,
    pub width: f64,
    pub height: f64,
}

fn page_sizes(doc: &Document) -> Vec<PageSize> {
    doc.pages
        .iter()
        .map(|p| PageSize {
            number: p.number,
            width: p.width,
            height: p.height,
        })
        .collect()
}

impl Extraction {
    pub fn needs_review(&self) -> bool {
        !self.review.is_empty()
    }

    /// The output of an extract step that read `file`: each field's value
    /// (`values`, what later steps use), each field in full (`fields`), the
    /// template, the review reasons, and how each template fared (`checks`:
    /// a reviewer of a document none matched sees which keywords were
    /// missing).
    /// The step's output: `file` is where the document was read, `sha256`
    /// the hash that finds it in the document store from any machine.
    pub fn output(&self, file: &std::path::Path, sha256: Option<&str>) -> Value {
        let values: serde_json::Map<String, Value> = self
            .fields
            .iter()
            .map(|(k, f)| (k.clone(), f.value.clone()))
            .collect();
        serde_json::json!({
            "file": file,
            "sha256": sha256,
            "template": self.template,
            "values": values,
            "fields": self.fields,
            "review": self.review,
            "checks": self.checks,
            "pages": self.pages,
        })
    }
}

pub use fields::read_value;
pub use text::{Prepared, prepare, prepare_mapped};

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
    let (best, checks) = choose::choose(&document_text.text, templates);
    let Some(template) = best else {
        return Extraction {
            template: None,
            fields: BTreeMap::new(),
            review: vec!["no template matched this document".into()],
            checks,
            pages: page_sizes(doc),
            unmatched: BTreeMap::new(),
            validations: Vec::new(),
        };
    };
    apply_template(doc, &document_text, template, checks)
}

/// Extract a document with `template` whether its keywords match or not:
/// a reviewer who knows the vendor picks its template for a document no
/// template recognised. What the keywords say is in `checks`.
pub fn extract_with(doc: &Document, template: &Template) -> Extraction {
    let document_text = doc.text();
    let (_, checks) = choose::choose(&document_text.text, std::slice::from_ref(template));
    apply_template(doc, &document_text, template, checks)
}

/// The fields `template` finds in the document, checked and validated.
fn apply_template(
    doc: &Document,
    document_text: &crate::documents::DocumentText,
    template: &Template,
    checks: Vec<TemplateCheck>,
) -> Extraction {
    let text = &document_text.text;
    let prepared = prepare_mapped(text, &template.options);
    let source = evidence::Source {
        doc,
        text: document_text,
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
        confirmed: Vec::new(),
        lines_not_read: Vec::new(),
        page: None,
        bbox: None,
    };
    fields.insert("issuer".to_string(), fixed(&template.issuer));
    fields.insert("currency".to_string(), fixed(&template.options.currency));
    let mut failures: BTreeMap<String, String> = BTreeMap::new();
    for rule in &template.fields {
        match fields::apply(rule, &source, &template.options) {
            Ok(field) => {
                fields.insert(rule.name.clone(), field);
            }
            Err(why) => {
                failures.insert(rule.name.clone(), why);
            }
        }
    }
    for table in &template.tables {
        match tables::apply_table(table, &source, &template.options) {
            Ok(found) => fields.extend(found),
            Err(why) => {
                for name in table.body.capture_names().flatten() {
                    failures
                        .entry(name.to_string())
                        .or_insert_with(|| why.clone());
                }
            }
        }
    }
    let today = chrono::Local::now().date_naive();
    let validations = validate::apply(&checks_for(template, &fields), &mut fields, today);
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
    // invoice2data describes a document that has all its required fields.
    if review.iter().all(|r| !r.starts_with("required field")) {
        fields.insert(
            "desc".to_string(),
            fixed(&format!("Invoice from {}", template.issuer)),
        );
    }
    Extraction {
        template: Some(template.file.clone()),
        fields,
        review,
        checks,
        pages: page_sizes(doc),
        unmatched: failures,
        validations,
    }
}

/// The checks a document read with `template` gets: the template's own
/// `validation`, and the implicit ones unless it turns them off.
pub fn checks_for(template: &Template, fields: &BTreeMap<String, Field>) -> Vec<validate::Check> {
    let mut checks = template.validation.clone();
    if template.options.cross_checks {
        checks.extend(cross_checks::implicit(&template.validation, fields));
    }
    checks
}

#[cfg(test)]
mod invoice2data_tests;
#[cfg(test)]
mod tests;
