//! The checks every document gets, whatever its template says, unless the
//! template turns them off (`options.cross_checks: false`): where a
//! document has line amounts and a net total, they add up; net plus tax is
//! the total; quantity times unit price is the line amount; an IBAN carries
//! a valid checksum; the date is neither years old nor far ahead. Each runs
//! only where all the fields it needs were read, and not where the
//! template's own `validation` already checks the same thing.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Field;
use super::validate::Check;

const NET: &[&str] = &["amount_untaxed", "amount_net", "net_amount", "subtotal"];
const TAX: &[&str] = &["vat", "amount_tax", "tax", "tax_amount"];
const LINE_AMOUNT: &[&str] = &["amount", "price_subtotal", "line_total", "total"];
const QUANTITY: &[&str] = &["qty", "quantity"];
const UNIT_PRICE: &[&str] = &["unit_price", "price_unit", "price"];
/// Five years.
const MAX_AGE_DAYS: i64 = 1826;
const MAX_FUTURE_DAYS: i64 = 31;

fn number(fields: &BTreeMap<String, Field>, name: &str) -> bool {
    fields.get(name).is_some_and(|f| f.value.is_number())
}

fn first<'n>(fields: &BTreeMap<String, Field>, names: &[&'n str]) -> Option<&'n str> {
    names.iter().copied().find(|n| number(fields, n))
}

/// The first of `names` that every row has as a number.
fn column<'n>(rows: &[Value], names: &[&'n str]) -> Option<&'n str> {
    names
        .iter()
        .copied()
        .find(|c| rows.iter().all(|r| r.get(*c).is_some_and(Value::is_number)))
}

/// The implicit checks for these fields, leaving out kinds the template
/// checks itself.
pub(super) fn implicit(explicit: &[Check], fields: &BTreeMap<String, Field>) -> Vec<Check> {
    let has = |f: fn(&Check) -> bool| explicit.iter().any(f);
    let mut checks = Vec::new();
    let net = first(fields, NET);
    let tax = first(fields, TAX);
    if let (Some(net), Some(tax), true) = (net, tax, number(fields, "amount"))
        && !has(|c| matches!(c, Check::Sum { .. }))
    {
        checks.push(Check::Sum {
            fields: vec![net.to_string(), tax.to_string()],
            equals: "amount".into(),
            tolerance: 0.01,
        });
    }
    let rows = fields
        .get("lines")
        .and_then(|f| f.value.as_array())
        .filter(|rows| !rows.is_empty());
    if let Some(rows) = rows {
        let line_amount = column(rows, LINE_AMOUNT);
        // Lines add up to the net, or to the total where there is no tax.
        let total = net.or_else(|| (tax.is_none() && number(fields, "amount")).then_some("amount"));
        if let (Some(col), Some(total)) = (line_amount, total)
            && !has(|c| matches!(c, Check::LinesSum { .. }))
        {
            checks.push(Check::LinesSum {
                column: col.to_string(),
                equals: total.to_string(),
                tolerance: 0.01,
            });
        }
        if let (Some(q), Some(p), Some(a)) = (
            column(rows, QUANTITY),
            column(rows, UNIT_PRICE),
            line_amount,
        ) && !has(|c| matches!(c, Check::LinesProduct { .. }))
        {
            checks.push(Check::LinesProduct {
                columns: vec![q.to_string(), p.to_string()],
                equals: a.to_string(),
                tolerance: 0.01,
            });
        }
    }
    if fields.get("iban").is_some_and(|f| f.value.is_string())
        && !has(|c| matches!(c, Check::Iban { .. }))
    {
        checks.push(Check::Iban {
            field: "iban".into(),
        });
    }
    if fields.get("date").is_some_and(|f| f.value.is_string())
        && !has(|c| matches!(c, Check::DateRange { .. }))
    {
        checks.push(Check::DateRange {
            field: "date".into(),
            max_age_days: MAX_AGE_DAYS,
            max_future_days: MAX_FUTURE_DAYS,
        });
    }
    checks
}
