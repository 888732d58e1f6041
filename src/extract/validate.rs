//! Checks across fields (clerk's `validation:` key in a template). A value
//! that reads well can still be wrong; these catch it: the total must be the
//! net plus the tax, the line items must add up, an IBAN must carry a valid
//! checksum, a date must be plausible, a number must look like the vendor's.
//!
//! ```yaml
//! validation:
//!   - rule: sum              # amount = amount_untaxed + vat
//!     fields: [amount_untaxed, vat]
//!     equals: amount
//!     tolerance: 0.01        # the default
//!   - rule: lines_sum        # the lines' `amount` column adds up to amount_untaxed
//!     column: amount
//!     equals: amount_untaxed
//!   - rule: lines_product    # in every row, qty × unit_price = amount
//!     columns: [qty, unit_price]
//!     equals: amount
//!   - rule: iban
//!     field: iban
//!   - rule: date_range       # not older than a year, not more than 31 days ahead
//!     field: date
//!     max_age_days: 365
//!     max_future_days: 31
//!   - rule: regex
//!     field: invoice_number
//!     pattern: '^RE-2026-\d+$'
//! ```
//!
//! invoice2data ignores the key, so such a template still works there.

use std::collections::BTreeMap;

use fancy_regex::Regex;
use serde_json::Value;

use super::Field;

#[derive(Debug, Clone)]
pub enum Check {
    Sum {
        fields: Vec<String>,
        equals: String,
        tolerance: f64,
    },
    LinesSum {
        column: String,
        equals: String,
        tolerance: f64,
    },
    LinesProduct {
        columns: Vec<String>,
        equals: String,
        tolerance: f64,
    },
    Iban {
        field: String,
    },
    DateRange {
        field: String,
        max_age_days: i64,
        max_future_days: i64,
    },
    Pattern {
        field: String,
        regex: Regex,
    },
    /// The field holds a value known from the vendor's master data (an
    /// IBAN, a VAT id): equal but for spaces and case.
    Known {
        field: String,
        value: String,
    },
}

/// Read one entry of `validation:`; the error says what is wrong with it.
pub fn parse_check(v: &Value) -> Result<Check, String> {
    let map = v
        .as_object()
        .ok_or("each validation is a mapping with a `rule`")?;
    let text = |k: &str| -> Result<String, String> {
        map.get(k)
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| format!("needs `{k}`"))
    };
    let tolerance = map.get("tolerance").and_then(Value::as_f64).unwrap_or(0.01);
    let rule = text("rule")?;
    Ok(match rule.as_str() {
        "sum" => Check::Sum {
            fields: map
                .get("fields")
                .and_then(Value::as_array)
                .and_then(|a| a.iter().map(|x| x.as_str().map(String::from)).collect())
                .ok_or("`sum` needs `fields`, a list of field names")?,
            equals: text("equals")?,
            tolerance,
        },
        "lines_sum" => Check::LinesSum {
            column: text("column")?,
            equals: text("equals")?,
            tolerance,
        },
        "lines_product" => Check::LinesProduct {
            columns: map
                .get("columns")
                .and_then(Value::as_array)
                .and_then(|a| a.iter().map(|x| x.as_str().map(String::from)).collect())
                .ok_or("`lines_product` needs `columns`, a list of column names")?,
            equals: text("equals")?,
            tolerance,
        },
        "iban" => Check::Iban {
            field: text("field")?,
        },
        "date_range" => Check::DateRange {
            field: text("field")?,
            max_age_days: map
                .get("max_age_days")
                .and_then(Value::as_i64)
                .unwrap_or(365),
            max_future_days: map
                .get("max_future_days")
                .and_then(Value::as_i64)
                .unwrap_or(31),
        },
        "regex" => {
            let pattern = text("pattern")?;
            Check::Pattern {
                field: text("field")?,
                regex: Regex::new(&pattern).map_err(|e| format!("bad regex `{pattern}`: {e}"))?,
            }
        }
        "known" => Check::Known {
            field: text("field")?,
            value: match map.get("value") {
                Some(Value::String(s)) => s.clone(),
                Some(n @ Value::Number(_)) => n.to_string(),
                _ => return Err("`known` needs `value`, the value the vendor is known by".into()),
            },
        },
        other => {
            return Err(format!(
                "unknown rule `{other}`; expected sum, lines_sum, lines_product, iban, date_range, regex or known"
            ));
        }
    })
}

/// Whether an IBAN's check digits are right (ISO 13616, mod 97).
pub fn iban_valid(iban: &str) -> bool {
    let s: String = iban
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_uppercase();
    if s.len() < 15 || s.len() > 34 || !s.chars().all(|c| c.is_ascii_alphanumeric()) {
        return false;
    }
    let rearranged = format!("{}{}", &s[4..], &s[..4]);
    let mut rem: u32 = 0;
    for c in rearranged.chars() {
        let digits = match c.to_digit(36) {
            Some(d) => d,
            None => return false,
        };
        for d in digits.to_string().chars() {
            rem = (rem * 10 + d.to_digit(10).unwrap_or(0)) % 97;
        }
    }
    rem == 1
}

fn number(fields: &BTreeMap<String, Field>, name: &str) -> Option<f64> {
    fields.get(name).and_then(|f| f.value.as_f64())
}

/// A check across fields that cannot run because some of them are missing
/// (or not numbers) confirms nothing: the fields that are there lose the
/// confidence the check would have given them, so a total whose tax was
/// never read does not pass on its own.
fn unconfirmed(fields: &mut BTreeMap<String, Field>, names: &[String]) {
    let missing: Vec<&str> = names
        .iter()
        .filter(|n| match fields.get(n.as_str()) {
            Some(f) => !(f.value.is_number() || f.value.is_array()),
            None => true,
        })
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return;
    }
    let reason = format!("cannot be cross-checked: {} missing", missing.join(", "));
    for name in names {
        if missing.contains(&name.as_str()) {
            continue;
        }
        if let Some(f) = fields.get_mut(name) {
            f.confidence = f.confidence.min(0.5);
            f.reasons.push(reason.clone());
        }
    }
}

/// Run the checks; a failed check lowers the confidence of the fields it
/// involves and says why.
/// How one check went, for `--explain`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheckOutcome {
    /// What it checks, in a reviewer's words.
    pub check: String,
    /// `passed`, `failed`, or `not run` (a field it needs is missing).
    pub result: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// A check that passes is recorded on the fields it involves as evidence
/// (`confirmed`). Returns how each check went.
pub fn apply(
    checks: &[Check],
    fields: &mut BTreeMap<String, Field>,
    today: chrono::NaiveDate,
) -> Vec<CheckOutcome> {
    let mut outcomes = Vec::new();
    let mut corroborated: Vec<String> = Vec::new();
    for check in checks {
        let (involved, problem) = run(check, fields, today);
        if problem.is_none() && corroborates(check) {
            corroborated.extend(involved.iter().cloned());
        }
        outcomes.push(CheckOutcome {
            check: describe(check),
            result: match (&problem, involved.is_empty()) {
                (Some(_), _) => "failed",
                (None, true) => "not run",
                (None, false) => "passed",
            }
            .to_string(),
            problem: problem.clone(),
        });
        for name in involved {
            if let Some(f) = fields.get_mut(&name) {
                match &problem {
                    Some(problem) => {
                        f.confidence = f.confidence.min(0.3);
                        f.reasons.push(format!("validation failed: {problem}"));
                    }
                    None => f.confirmed.push(describe(check)),
                }
            }
        }
    }
    for name in corroborated {
        if let Some(f) = fields.get_mut(&name) {
            raise_confirmed(f);
        }
    }
    outcomes
}

/// Checks whose passing is evidence of the value itself: sums that hold
/// across independently read numbers, an IBAN's checksum, and a value the
/// vendor is known by. (A date in range or a number that fits a pattern
/// says little about its digits.)
fn corroborates(check: &Check) -> bool {
    matches!(
        check,
        Check::Sum { .. } | Check::LinesSum { .. } | Check::Iban { .. } | Check::Known { .. }
    )
}

/// The confidence a value whose only doubt was OCR's gets when arithmetic
/// or a checksum confirms it.
pub const CONFIRMED_CONFIDENCE: f32 = 0.95;

/// A number or an IBAN that OCR read with some doubt (a low confidence,
/// or a second reading that differs), and nothing else doubted, is raised when a check across independently read fields holds:
/// a misread digit would break the sum. Tables are not raised: the text of
/// their rows is checked by nothing.
fn raise_confirmed(f: &mut Field) {
    let only_ocr = f.reasons.iter().all(|r| {
        r.starts_with("OCR read it with confidence")
            || r.starts_with(super::evidence::READINGS_DIFFER)
    });
    if only_ocr && !f.value.is_array() && f.confidence >= 0.5 && f.confidence < CONFIRMED_CONFIDENCE
    {
        f.reasons.push(format!(
            "raised from {:.2}: confirmed by {}",
            f.confidence,
            f.confirmed.join("; ")
        ));
        f.confidence = CONFIRMED_CONFIDENCE;
    }
}

/// What a check that passed confirms, in a reviewer's words.
fn describe(check: &Check) -> String {
    match check {
        Check::Sum { fields, equals, .. } => format!("{equals} = {}", fields.join(" + ")),
        Check::LinesSum { column, equals, .. } => format!("the lines' {column} add up to {equals}"),
        Check::LinesProduct {
            columns, equals, ..
        } => {
            format!("{} = {equals} in every row", columns.join(" × "))
        }
        Check::Iban { field } => format!("{field} has a valid checksum"),
        Check::DateRange { field, .. } => format!("{field} is a plausible date"),
        Check::Pattern { field, regex } => format!("{field} matches `{}`", regex.as_str()),
        Check::Known { field, .. } => format!("{field} is the vendor's known {field}"),
    }
}

/// What is wrong with `fields`, check by check: the fields each failing
/// check involves and the problem, for a reviewer to see before approving.
/// The fields themselves are left as they are.
pub fn failures(
    checks: &[Check],
    fields: &BTreeMap<String, Field>,
    today: chrono::NaiveDate,
) -> Vec<(Vec<String>, String)> {
    let mut scratch = fields.clone();
    checks
        .iter()
        .filter_map(|check| {
            let (involved, problem) = run(check, &mut scratch, today);
            problem.map(|p| (involved, p))
        })
        .collect()
}

/// One check: the fields it involves, and what is wrong if anything is.
/// A check that cannot run for a missing field confirms nothing.
fn run(
    check: &Check,
    fields: &mut BTreeMap<String, Field>,
    today: chrono::NaiveDate,
) -> (Vec<String>, Option<String>) {
    match check {
        Check::Sum {
            fields: parts,
            equals,
            tolerance,
        } => sum(fields, parts, equals, *tolerance),
        Check::LinesSum {
            column,
            equals,
            tolerance,
        } => lines_sum(fields, column, equals, *tolerance),
        Check::LinesProduct {
            columns,
            equals,
            tolerance,
        } => lines_product(fields, columns, equals, *tolerance),
        Check::Iban { field } => match fields.get(field).and_then(|f| f.value.as_str()) {
            Some(iban) => (
                vec![field.clone()],
                (!iban_valid(iban)).then(|| format!("{field} `{iban}` has a wrong checksum")),
            ),
            None => (Vec::new(), None),
        },
        Check::DateRange {
            field,
            max_age_days,
            max_future_days,
        } => date_range(fields, field, *max_age_days, *max_future_days, today),
        Check::Pattern { field, regex } => text_check(fields, field, |text| {
            let ok = regex.is_match(text).unwrap_or(false);
            (!ok).then(|| format!("{field} `{text}` does not match `{}`", regex.as_str()))
        }),
        Check::Known { field, value } => text_check(fields, field, |text| {
            (plain(text) != plain(value)).then(|| {
                format!(
                    "{field} `{text}` is not the vendor's known `{value}`: \
                     confirm a changed {field} with the vendor before paying"
                )
            })
        }),
    }
}

/// A check on one field's value as text; a field that is missing confirms
/// nothing.
fn text_check(
    fields: &BTreeMap<String, Field>,
    field: &str,
    problem: impl FnOnce(&str) -> Option<String>,
) -> (Vec<String>, Option<String>) {
    match fields.get(field) {
        Some(f) => (
            vec![field.to_string()],
            problem(&super::values::as_text(&f.value)),
        ),
        None => (Vec::new(), None),
    }
}

/// A value without its spaces, in capitals: `DE89 3704…` is `de893704…`.
fn plain(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_uppercase)
        .collect()
}

/// `parts` add up to `equals`.
fn sum(
    fields: &mut BTreeMap<String, Field>,
    parts: &[String],
    equals: &str,
    tolerance: f64,
) -> (Vec<String>, Option<String>) {
    let mut all = parts.to_vec();
    all.push(equals.to_string());
    let values: Option<Vec<f64>> = parts.iter().map(|p| number(fields, p)).collect();
    match (values, number(fields, equals)) {
        (Some(values), Some(total)) => {
            let sum: f64 = values.iter().sum();
            let bad = (sum - total).abs() > tolerance;
            (
                all,
                bad.then(|| {
                    format!(
                        "{equals} {total:.2} is not {} = {sum:.2}",
                        parts.join(" + ")
                    )
                }),
            )
        }
        _ => {
            unconfirmed(fields, &all);
            (Vec::new(), None)
        }
    }
}

/// The lines' `column` adds up to `equals`.
fn lines_sum(
    fields: &mut BTreeMap<String, Field>,
    column: &str,
    equals: &str,
    tolerance: f64,
) -> (Vec<String>, Option<String>) {
    let rows = fields.get("lines").and_then(|f| f.value.as_array());
    match (rows, number(fields, equals)) {
        (Some(rows), Some(total)) => {
            let sum: f64 = rows
                .iter()
                .filter_map(|r| r.get(column).and_then(Value::as_f64))
                .sum();
            let bad = (sum - total).abs() > tolerance;
            (
                vec![equals.to_string(), "lines".into()],
                bad.then(|| {
                    format!("the lines' {column} add up to {sum:.2}, not {equals} {total:.2}")
                }),
            )
        }
        _ => {
            unconfirmed(fields, &["lines".to_string(), equals.to_string()]);
            (Vec::new(), None)
        }
    }
}

/// In every row, the product of `columns` is `equals`.
fn lines_product(
    fields: &BTreeMap<String, Field>,
    columns: &[String],
    equals: &str,
    tolerance: f64,
) -> (Vec<String>, Option<String>) {
    let Some(rows) = fields.get("lines").and_then(|f| f.value.as_array()) else {
        return (Vec::new(), None);
    };
    let wrong: Vec<String> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, row)| {
            let factors: Option<Vec<f64>> = columns
                .iter()
                .map(|c| row.get(c).and_then(Value::as_f64))
                .collect();
            let product: f64 = factors?.iter().product();
            let amount = row.get(equals).and_then(Value::as_f64)?;
            // Credit notes and discount lines print a positive quantity and
            // price beside a negative amount: the sizes must agree, and the
            // sign is the sum check's to confirm.
            ((product.abs() - amount.abs()).abs() > tolerance).then(|| {
                format!(
                    "row {}: {} = {product:.2}, not {equals} {amount:.2}",
                    i + 1,
                    columns.join(" × ")
                )
            })
        })
        .collect();
    (
        vec!["lines".into()],
        (!wrong.is_empty()).then(|| wrong.join("; ")),
    )
}

/// A date neither too old nor too far ahead.
fn date_range(
    fields: &BTreeMap<String, Field>,
    field: &str,
    max_age_days: i64,
    max_future_days: i64,
    today: chrono::NaiveDate,
) -> (Vec<String>, Option<String>) {
    let date = fields
        .get(field)
        .and_then(|f| f.value.as_str())
        .and_then(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok());
    let Some(d) = date else {
        return (Vec::new(), None);
    };
    let age = (today - d).num_days();
    let problem = if age > max_age_days {
        Some(format!("{field} {d} is more than {max_age_days} days ago"))
    } else if -age > max_future_days {
        Some(format!(
            "{field} {d} is more than {max_future_days} days ahead"
        ))
    } else {
        None
    };
    (vec![field.to_string()], problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number_field(v: f64) -> Field {
        Field {
            value: serde_json::json!(v),
            raw: None,
            confidence: 0.95,
            rule: "regex".into(),
            reasons: Vec::new(),
            confirmed: Vec::new(),
            lines_not_read: Vec::new(),
            page: None,
            bbox: None,
        }
    }

    #[test]
    fn a_credit_line_with_a_negative_amount_has_the_size_of_its_product() {
        let lines = |amount: f64| {
            let mut f = number_field(0.0);
            f.value = serde_json::json!([{ "qty": 4, "unit_price": 38.5, "amount": amount }]);
            BTreeMap::from([("lines".to_string(), f)])
        };
        let columns = ["qty".to_string(), "unit_price".to_string()];
        assert_eq!(
            lines_product(&lines(-154.0), &columns, "amount", 0.01).1,
            None
        );
        assert_eq!(
            lines_product(&lines(154.0), &columns, "amount", 0.01).1,
            None
        );
        let wrong = lines_product(&lines(-145.0), &columns, "amount", 0.01).1;
        assert_eq!(
            wrong.as_deref(),
            Some("row 1: qty × unit_price = 154.00, not amount -145.00")
        );
    }

    #[test]
    fn a_sum_missing_a_part_leaves_the_others_unconfirmed() {
        let check = Check::Sum {
            fields: vec!["amount_untaxed".into(), "vat".into()],
            equals: "amount".into(),
            tolerance: 0.01,
        };
        let mut fields = BTreeMap::new();
        fields.insert("amount".to_string(), number_field(119.0));
        fields.insert("amount_untaxed".to_string(), number_field(100.0));
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        apply(std::slice::from_ref(&check), &mut fields, today);
        let amount = &fields["amount"];
        assert!(amount.confidence <= 0.5, "{amount:?}");
        assert!(
            amount.reasons[0].contains("vat missing"),
            "{:?}",
            amount.reasons
        );

        // With every part present and adding up, nothing is lowered.
        fields.insert("amount".to_string(), number_field(119.0));
        fields.insert("amount_untaxed".to_string(), number_field(100.0));
        fields.insert("vat".to_string(), number_field(19.0));
        apply(&[check], &mut fields, today);
        assert!(
            fields
                .values()
                .all(|f| f.confidence == 0.95 && f.reasons.is_empty())
        );
    }

    #[test]
    fn a_row_whose_quantity_times_price_is_not_its_amount_is_named() {
        let check = parse_check(&serde_json::json!({
            "rule": "lines_product",
            "columns": ["qty", "unit_price"],
            "equals": "amount",
        }))
        .unwrap();
        let mut fields = BTreeMap::new();
        let mut lines = number_field(0.0);
        lines.value = serde_json::json!([
            {"qty": 25, "unit_price": 220.47, "amount": 5511.75},
            {"qty": 25, "unit_price": 3.23, "amount": 180.75},
        ]);
        fields.insert("lines".to_string(), lines);
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        apply(&[check], &mut fields, today);
        let lines = &fields["lines"];
        assert!(lines.confidence <= 0.3, "{lines:?}");
        assert_eq!(
            lines.reasons,
            vec!["validation failed: row 2: qty × unit_price = 80.75, not amount 180.75"]
        );
    }

    #[test]
    fn a_value_only_ocr_doubted_is_raised_when_a_sum_confirms_it() {
        let check = Check::Sum {
            fields: vec!["amount_untaxed".into(), "vat".into()],
            equals: "amount".into(),
            tolerance: 0.01,
        };
        let mut fields = BTreeMap::new();
        let mut doubted = number_field(119.0);
        doubted.confidence = 0.7;
        doubted.reasons = vec!["OCR read it with confidence 0.70".into()];
        fields.insert("amount".to_string(), doubted.clone());
        fields.insert("amount_untaxed".to_string(), number_field(100.0));
        fields.insert("vat".to_string(), number_field(19.0));
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let outcomes = apply(std::slice::from_ref(&check), &mut fields, today);
        assert_eq!(outcomes[0].result, "passed");
        let amount = &fields["amount"];
        assert_eq!(amount.confidence, CONFIRMED_CONFIDENCE);
        assert!(
            amount.reasons[1]
                .starts_with("raised from 0.70: confirmed by amount = amount_untaxed + vat"),
            "{amount:?}"
        );

        // When the sum does not hold, nothing is raised and all three are flagged.
        fields.insert("amount".to_string(), doubted.clone());
        fields.insert("vat".to_string(), number_field(18.0));
        apply(std::slice::from_ref(&check), &mut fields, today);
        assert!(fields["amount"].confidence <= 0.3);
        // A doubt other than OCR's is not lifted by arithmetic.
        let mut other = doubted;
        other.reasons = vec!["2 different values matched".into()];
        fields.insert("amount".to_string(), other);
        fields.insert("vat".to_string(), number_field(19.0));
        apply(&[check], &mut fields, today);
        assert_eq!(fields["amount"].confidence, 0.7);
    }

    #[test]
    fn iban_checksums() {
        assert!(iban_valid("DE89 3704 0044 0532 0130 00"));
        assert!(iban_valid("NL91ABNA0417164300"));
        assert!(iban_valid("FR14 2004 1010 0505 0001 3M02 606"));
        assert!(!iban_valid("DE89 3704 0044 0532 0130 01"));
        assert!(!iban_valid("DE89"));
    }
}
