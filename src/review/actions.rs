//! What a reviewer does to a review: corrections typed and checked against
//! the template, a template picked, and the ways a review ends.

use serde_json::{Map, Value, json};

use super::{Failure, current_fields, kind_of, required_names, template_name, template_of};
use crate::documents::Document;
use crate::extract::{FieldType, Template, read_value, validate};
use crate::jobs::{Review, ReviewEvent, ReviewOutcome, ReviewUpdate};

/// A value a reviewer gives for a field: the text typed, or for the line
/// items (`lines`) the whole table as rows of column → text.
#[derive(Debug, Clone, PartialEq)]
pub struct Correction {
    pub field: String,
    pub value: Value,
}

/// Why a correction was refused, said of its field.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, utoipa::ToSchema)]
#[error("`{field}` {message}")]
pub struct CorrectionError {
    pub field: String,
    pub message: String,
}

/// Why a review cannot be approved as it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, utoipa::ToSchema)]
pub enum ApproveError {
    /// Checks fail or required fields are missing: approving needs an
    /// explicit override with a note saying why.
    #[error("{} check(s) fail and {} required field(s) are missing; approve with an override and a note to go on anyway", failures.len(), missing.len())]
    NeedsOverride {
        failures: Vec<Failure>,
        missing: Vec<String>,
    },
}

/// A field name a reviewer may add: what template rules name fields.
fn valid_field_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The cells of the line items, typed by the template's `lines` rule.
fn read_lines(value: &Value, template: Option<&Template>) -> Result<Value, CorrectionError> {
    let err = |message: String| CorrectionError {
        field: "lines".into(),
        message,
    };
    let Some(rows) = value.as_array() else {
        return Err(err("must be a list of rows".into()));
    };
    let types: Vec<(String, FieldType)> = template
        .and_then(|t| t.fields.iter().find(|f| f.name == "lines"))
        .and_then(|f| match &f.parser {
            crate::extract::Parser::Lines(rule) => {
                Some(rule.sets.iter().flat_map(|s| s.types.clone()).collect())
            }
            _ => None,
        })
        .unwrap_or_default();
    let options = template.map(|t| t.options.clone()).unwrap_or_default();
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let Some(cells) = row.as_object() else {
            return Err(err(format!(
                "row {} must be a table of column → value",
                i + 1
            )));
        };
        let mut typed = Map::new();
        for (column, cell) in cells {
            let kind = types
                .iter()
                .find(|(name, _)| name == column)
                .map_or(FieldType::Text, |(_, k)| *k);
            let text = match cell {
                Value::String(s) => s.clone(),
                Value::Null => continue,
                other => other.to_string(),
            };
            let value = read_value(&text, kind, &options)
                .map_err(|e| err(format!("row {} `{column}` {e}", i + 1)))?;
            typed.insert(column.clone(), value);
        }
        out.push(Value::Object(typed));
    }
    Ok(Value::Array(out))
}

/// Check `corrections` against the review's template and say what they
/// change: every value typed as its field is (a date must be a date, an
/// amount a number), each change an event with the old and new value. An
/// empty value withdraws a correction. Nothing is saved when one is wrong.
pub fn correct(
    review: &Review,
    templates: &[Template],
    corrections: &[Correction],
) -> Result<ReviewUpdate, Vec<CorrectionError>> {
    let template = template_of(review, templates);
    let options = template.map(|t| t.options.clone()).unwrap_or_default();
    let current = current_fields(review, "");
    let mut saved = review.corrections.clone();
    let mut events = Vec::new();
    let mut errors = Vec::new();
    for c in corrections {
        if !valid_field_name(&c.field) {
            errors.push(CorrectionError {
                field: c.field.clone(),
                message: "is not a field name: a-z, 0-9 and `_`, at most 64 characters".into(),
            });
            continue;
        }
        let old = current
            .get(&c.field)
            .map_or(Value::Null, |f| f.value.clone());
        let new = if c.field == "lines" {
            read_lines(&c.value, template)
        } else {
            match &c.value {
                Value::String(text) if text.trim().is_empty() => {
                    if saved.remove(&c.field).is_some() {
                        events.push(ReviewEvent {
                            reason: format!("withdrew the correction of `{}`", c.field),
                            detail: json!({ "action": "withdraw", "field": c.field }),
                        });
                    }
                    continue;
                }
                Value::String(text) => read_value(text, kind_of(template, &c.field), &options)
                    .map_err(|message| CorrectionError {
                        field: c.field.clone(),
                        message,
                    }),
                _ => Err(CorrectionError {
                    field: c.field.clone(),
                    message: "must be given as text".into(),
                }),
            }
        };
        match new {
            // Saved before with this value: nothing new.
            Ok(new) if saved.get(&c.field) == Some(&new) => {}
            // The value as read, vouched for by a person.
            Ok(new) if new == old => {
                events.push(ReviewEvent {
                    reason: format!("confirmed `{}`: {}", c.field, shown(&new)),
                    detail: json!({ "action": "confirm", "field": c.field, "value": new }),
                });
                saved.insert(c.field.clone(), new);
            }
            Ok(new) => {
                events.push(ReviewEvent {
                    reason: format!("corrected `{}`: {} → {}", c.field, shown(&old), shown(&new)),
                    detail: json!({ "action": "correct", "field": c.field, "old": old, "new": new }),
                });
                saved.insert(c.field.clone(), new);
            }
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ReviewUpdate {
        corrections: saved,
        template: None,
        extraction: None,
        events,
    })
}

/// A value as the audit trail words it.
fn shown(value: &Value) -> String {
    match value {
        Value::Null => "(none)".into(),
        Value::String(s) => s.clone(),
        Value::Array(rows) => format!("{} row(s)", rows.len()),
        other => other.to_string(),
    }
}

/// Read the document with `template`, whether its keywords match or not,
/// for a document no template recognised: the review works from that
/// reading from now on. Corrections made so far stay.
pub fn pick_template(review: &Review, template: &Template, doc: &Document) -> ReviewUpdate {
    let file = review
        .extraction
        .get("file")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let extraction = crate::extract::extract_with(doc, template);
    let name = template_name(template);
    ReviewUpdate {
        corrections: review.corrections.clone(),
        template: Some(Some(name.clone())),
        extraction: Some(extraction.output(
            std::path::Path::new(file),
            review.extraction.get("sha256").and_then(Value::as_str),
        )),
        events: vec![ReviewEvent {
            reason: format!("read the document with the template of {}", template.issuer),
            detail: json!({ "action": "template", "template": name, "issuer": template.issuer }),
        }],
    }
}

/// Approve: the values as reviewed become the step's output, the
/// extraction kept beside them under `extracted`. With failing checks or a
/// missing required field, only with `override_note` saying why.
pub fn approve(
    review: &Review,
    templates: &[Template],
    user: &str,
    note: &str,
    override_note: Option<&str>,
    today: chrono::NaiveDate,
) -> Result<ReviewOutcome, ApproveError> {
    let template = template_of(review, templates);
    let rule = format!("corrected in review by {user}");
    let fields = current_fields(review, &rule);
    let failures: Vec<Failure> = template
        .map(|t| validate::failures(&crate::extract::checks_for(t, &fields), &fields, today))
        .unwrap_or_default()
        .into_iter()
        .map(|(fields, problem)| Failure { fields, problem })
        .collect();
    let missing: Vec<String> = required_names(template)
        .into_iter()
        .filter(|n| fields.get(n).is_none_or(|f| f.value.is_null()))
        .collect();
    let overridden = match override_note.map(str::trim) {
        Some(why) if !why.is_empty() => Some(why.to_string()),
        _ => None,
    };
    if (!failures.is_empty() || !missing.is_empty()) && overridden.is_none() {
        return Err(ApproveError::NeedsOverride { failures, missing });
    }
    let values: Map<String, Value> = fields
        .iter()
        .map(|(k, f)| (k.clone(), f.value.clone()))
        .collect();
    let mut output = match &review.extraction {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    output.insert("values".into(), Value::Object(values));
    output.insert("fields".into(), json!(fields));
    output.insert("review".into(), json!([]));
    output.insert(
        "reviewed".into(),
        json!({
            "by": user,
            "at": crate::jobs::now_ms(),
            "note": note,
            "corrections": review.corrections,
            "template": template.map(template_name),
            "overridden": overridden.as_ref().map(|why| json!({ "why": why, "failures": failures, "missing": missing })),
        }),
    );
    output.insert("extracted".into(), review.original.clone());
    let reason = match (&overridden, note.trim()) {
        (Some(why), _) => format!("approved in review, checks overridden: {why}"),
        (None, "") => "approved in review".to_string(),
        (None, note) => format!("approved in review: {note}"),
    };
    Ok(ReviewOutcome::Approve {
        output: Value::Object(output),
        event: ReviewEvent {
            reason,
            detail: json!({
                "action": "approve",
                "note": note,
                "corrections": review.corrections,
                "overridden": overridden,
            }),
        },
    })
}

/// Reject: the job fails with `reason`, which must be given.
pub fn reject(reason: &str) -> Result<ReviewOutcome, CorrectionError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(CorrectionError {
            field: "reason".into(),
            message: "must say why the document is rejected".into(),
        });
    }
    Ok(ReviewOutcome::Reject {
        reason: reason.to_string(),
        event: ReviewEvent {
            reason: format!("rejected in review: {reason}"),
            detail: json!({ "action": "reject", "reason": reason }),
        },
    })
}

/// Postpone: the job keeps waiting with `note`; the claim is let go.
pub fn postpone(note: &str) -> Result<ReviewOutcome, CorrectionError> {
    let note = note.trim();
    if note.is_empty() {
        return Err(CorrectionError {
            field: "note".into(),
            message: "must say why the review is put off".into(),
        });
    }
    Ok(ReviewOutcome::Postpone {
        note: note.to_string(),
        event: ReviewEvent {
            reason: format!("postponed: {note}"),
            detail: json!({ "action": "postpone", "note": note }),
        },
    })
}
