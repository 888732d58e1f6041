//! Reviews as a reviewer works them: the fields of a document waiting for
//! review with their confidence, reasons and place on the page, corrections
//! typed and checked against the template, the template's validations run
//! again on the corrected values, and how a review ends (the reviewed
//! values become the step's output; the original is kept beside them).
//!
//! The records themselves (claims, versions, the audit trail) are kept by
//! the job database (`jobs::ReviewStore`); the templates come from the
//! bot's extract step, handed in by the caller.

mod actions;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

pub use actions::{
    ApproveError, Correction, CorrectionError, approve, correct, pick_template, postpone, reject,
};

use crate::extract::validate;
use crate::extract::{Field, FieldType, Template, TemplateCheck};
use crate::jobs::Review;

/// A field as the review page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FieldView {
    pub name: String,
    /// `text`, `number`, `whole number` or `date`: how a correction is read.
    pub kind: &'static str,
    /// The value now: the correction, else what was extracted.
    pub value: Value,
    /// What extraction read, before any correction.
    pub extracted: Value,
    pub corrected: bool,
    /// The text the rule matched.
    pub raw: Option<String>,
    pub confidence: f32,
    pub reasons: Vec<String>,
    /// Where on which page (from 1) the value was read.
    pub page: Option<u32>,
    pub bbox: Option<crate::documents::BBox>,
    /// The template requires it.
    pub required: bool,
}

/// A template a reviewer may pick for the document, with the keywords it
/// did not find.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TemplateChoice {
    pub file: String,
    pub issuer: String,
    pub missing_keywords: Vec<String>,
}

/// A failing check of the template, on the values as they are now.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Failure {
    pub fields: Vec<String>,
    pub problem: String,
}

/// Everything a review page shows.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReviewView {
    /// The template the values come from, if any.
    pub template: Option<String>,
    pub issuer: Option<String>,
    /// Lowest confidence first, so the unsure ones come first.
    pub fields: Vec<FieldView>,
    /// The line items, each row a table of column → value.
    pub lines: Option<Vec<Map<String, Value>>>,
    /// Checks that fail on the values as they are now.
    pub failures: Vec<Failure>,
    /// The templates a reviewer may pick, for a document none matched.
    pub templates: Vec<TemplateChoice>,
    /// The document, as the job names it.
    pub document: Option<String>,
}

/// The name of a template as outputs name it: its file.
fn template_name(template: &Template) -> String {
    template.file.display().to_string()
}

/// The template the review's values come from: the one the reviewer
/// picked, else the one extraction used.
pub fn template_of<'t>(review: &Review, templates: &'t [Template]) -> Option<&'t Template> {
    let name = review.template.clone().or_else(|| {
        review
            .extraction
            .get("template")
            .and_then(Value::as_str)
            .map(str::to_string)
    })?;
    templates
        .iter()
        .find(|t| template_name(t) == name || t.file == Path::new(&name))
}

/// How a field of `template` is typed; text for one it does not know.
fn kind_of(template: Option<&Template>, name: &str) -> FieldType {
    template
        .and_then(|t| t.fields.iter().find(|f| f.name == name))
        .map_or(FieldType::Text, |f| f.kind)
}

fn kind_word(kind: FieldType) -> &'static str {
    match kind {
        FieldType::Text => "text",
        FieldType::Float => "number",
        FieldType::Int => "whole number",
        FieldType::Date => "date",
    }
}

/// The fields of the extraction the review works from, as extract wrote them.
fn extracted_fields(review: &Review) -> BTreeMap<String, Field> {
    review
        .extraction
        .get("fields")
        .and_then(Value::as_object)
        .map(|fields| {
            fields
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), serde_json::from_value(v.clone()).ok()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// The fields with the corrections applied: a corrected field is sure.
fn current_fields(review: &Review, user_rule: &str) -> BTreeMap<String, Field> {
    let mut fields = extracted_fields(review);
    for (name, value) in &review.corrections {
        let field = fields.entry(name.clone()).or_insert_with(|| Field {
            value: Value::Null,
            raw: None,
            confidence: 0.0,
            rule: String::new(),
            reasons: Vec::new(),
            confirmed: Vec::new(),
            lines_not_read: Vec::new(),
            page: None,
            bbox: None,
        });
        field.value = value.clone();
        field.confidence = 1.0;
        field.rule = user_rule.to_string();
        field.reasons.clear();
    }
    fields
}

/// The names a template requires.
fn required_names(template: Option<&Template>) -> Vec<String> {
    let Some(t) = template else {
        return Vec::new();
    };
    let mut names: Vec<String> = t.required_fields.clone();
    names.extend(
        t.fields
            .iter()
            .filter(|f| f.required)
            .map(|f| f.name.clone()),
    );
    names.sort();
    names.dedup();
    names
}

/// What the review page shows for `review`.
pub fn view(review: &Review, templates: &[Template], today: chrono::NaiveDate) -> ReviewView {
    let template = template_of(review, templates);
    let extracted = extracted_fields(review);
    let current = current_fields(review, "corrected in review");
    let required = required_names(template);
    let mut names: Vec<String> = current.keys().cloned().collect();
    // A field the template reads but found nothing for is shown too, empty,
    // for the reviewer to supply.
    let template_fields = template.into_iter().flat_map(|t| {
        t.fields
            .iter()
            .filter(|f| !matches!(f.parser, crate::extract::Parser::Static(_)))
            .map(|f| f.name.clone())
    });
    for name in required.iter().cloned().chain(template_fields) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    // Issuer and currency come from the template, not the page; lines are
    // shown as a table of their own.
    names.retain(|n| n != "lines");
    let mut fields: Vec<FieldView> = names
        .iter()
        .map(|name| {
            let now = current.get(name);
            let before = extracted.get(name);
            FieldView {
                name: name.clone(),
                kind: kind_word(kind_of(template, name)),
                value: now.map_or(Value::Null, |f| f.value.clone()),
                extracted: before.map_or(Value::Null, |f| f.value.clone()),
                corrected: review.corrections.contains_key(name),
                raw: before.and_then(|f| f.raw.clone()),
                confidence: now.map_or(0.0, |f| f.confidence),
                reasons: match now {
                    Some(f) => f.reasons.clone(),
                    None => vec!["not found on the page".to_string()],
                },
                page: before.and_then(|f| f.page),
                bbox: before.and_then(|f| f.bbox),
                required: required.contains(name),
            }
        })
        .collect();
    fields.sort_by(|a, b| {
        a.confidence
            .total_cmp(&b.confidence)
            .then_with(|| a.name.cmp(&b.name))
    });
    let lines = current
        .get("lines")
        .and_then(|f| f.value.as_array())
        .map(|rows| rows.iter().filter_map(|r| r.as_object().cloned()).collect());
    let failures = template
        .map(|t| validate::failures(&crate::extract::checks_for(t, &current), &current, today))
        .unwrap_or_default()
        .into_iter()
        .map(|(fields, problem)| Failure { fields, problem })
        .collect();
    let checks: Vec<TemplateCheck> = review
        .extraction
        .get("checks")
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    let templates = templates
        .iter()
        .map(|t| TemplateChoice {
            file: template_name(t),
            issuer: t.issuer.clone(),
            missing_keywords: checks
                .iter()
                .find(|c| c.template == t.file)
                .map(|c| c.missing_keywords.clone())
                .unwrap_or_default(),
        })
        .collect();
    ReviewView {
        template: template.map(template_name),
        issuer: template.map(|t| t.issuer.clone()),
        fields,
        lines,
        failures,
        templates,
        document: review
            .input
            .get("file")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

#[cfg(test)]
mod tests;
