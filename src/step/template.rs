//! `{{name}}` placeholders in a step's settings, filled from the job: an
//! email's subject, a browser form's values.
//!
//! A placeholder is a dotted path from the job document (`{{input.file}}`,
//! `{{steps.book.booking}}`, `{{job.id}}`), or a bare name looked up in the
//! earlier steps' outputs (a key of the output, or of its `values`, as the
//! extract step has them) and then in the job's input:
//! `{{invoice_number}}`. A name found with different values in two steps is
//! an error that asks for the full path; so is a name found nowhere.
//!
//! Filters after a `|` shape a value for the system it goes to:
//! `{{date | date: "%d.%m.%Y"}}` writes an ISO date (`2026-08-16`) in a
//! chrono format (`16.08.2026`); `{{amount | decimal_comma}}` writes a
//! number with two decimals, a decimal comma and dots between thousands
//! (`30208.34` → `30.208,34`).

use serde_json::Value;

/// The reference of placeholders, as the bot file reference shows it.
pub const REFERENCE: &str = r#"Texts of `email` and `browser` steps may hold `{{…}}` placeholders,
filled from the job when the step runs:

- a dotted path in the job: `{{input.file}}`, `{{steps.book.booking}}`,
  `{{job.id}}` (`job` has `id`, `attempt`, `bot` and `step`);
- a bare name, looked up in the earlier steps' outputs (a key of the
  output, or a key of its `values`, as the extract step has them) and then
  in the job's input: `{{invoice_number}}`. A name two steps give different
  values is an error that asks for the full path.

Filters after `|` shape a value for the system it goes to:

- `{{date | date: "%d.%m.%Y"}}` writes an ISO date (`2026-08-16`) in a
  chrono format (`16.08.2026`);
- `{{amount | decimal_comma}}` writes a number with two decimals, a decimal
  comma and dots between thousands (`30208.34` → `30.208,34`);
- `{{number | urlencode}}` percent-encodes a value for a part of an address
  (`RE 7/+1` → `RE%207%2F%2B1`).

A value is written as it is and never read again: a value holding `{{…}}`
or `${secret:…}` stays that text. In an address (a browser step's `goto`,
`guard` and `wait_url`) every value is percent-encoded, so an invoice
number with `+`, `#` or `&` finds its own booking; `| raw` writes a value
that is itself an address (or a path with its `/`) unencoded.

A placeholder that names nothing, an unknown filter or a value a filter
cannot take fails the job with the placeholder in the error.
"#;

/// Where a text goes, which decides how values are written into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// As they are (a form's field, a mail's subject).
    Plain,
    /// Percent-encoded, as part of an address.
    Address,
}

/// What a part of an address keeps as it is: letters, digits and `-._~`.
const ADDRESS_PART: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Fill every `{{…}}` of `text` from the job document (`StepContext::document`).
pub fn render(text: &str, doc: &Value) -> Result<String, String> {
    render_in(text, doc, Place::Plain, &mut |literal| {
        Ok(literal.to_string())
    })
}

/// Fill `text` for `place`: the bot file's own text between placeholders
/// goes through `literal` (where secret references are resolved), and each
/// value is written as it is, never read again.
pub fn render_in(
    text: &str,
    doc: &Value,
    place: Place,
    literal: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&literal(&rest[..start])?);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("`{{{{` without its `}}}}` in {text:?}"))?;
        let mut parts = after[..end].split('|');
        let name = parts.next().unwrap_or_default().trim();
        let mut value = value_text(&lookup(name, doc)?);
        let mut encode = place == Place::Address;
        for filter in parts.map(str::trim) {
            if matches!(filter, "raw" | "urlencode") {
                encode = false;
            }
            value = apply(filter, &value)
                .map_err(|e| format!("in `{{{{{}}}}}`: {e}", after[..end].trim()))?;
        }
        if encode {
            value = percent_encoding::utf8_percent_encode(&value, ADDRESS_PART).to_string();
        }
        out.push_str(&value);
        rest = &after[end + 2..];
    }
    out.push_str(&literal(rest)?);
    Ok(out)
}

fn path<'v>(root: &'v Value, dotted: &str) -> Option<&'v Value> {
    dotted
        .split('.')
        .try_fold(root, |v, key| match v {
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => v.get(key),
        })
        .filter(|v| !v.is_null())
}

fn lookup(name: &str, doc: &Value) -> Result<Value, String> {
    if name.is_empty() {
        return Err("an empty `{{}}`".into());
    }
    let first = name.split('.').next().unwrap_or_default();
    if matches!(first, "input" | "steps" | "job") {
        return path(doc, name)
            .cloned()
            .ok_or_else(|| format!("`{{{{{name}}}}}` names nothing in the job"));
    }
    let mut found: Vec<(String, &Value)> = Vec::new();
    if let Some(Value::Object(steps)) = doc.get("steps") {
        for (step, output) in steps {
            if let Some(v) = path(output, name).or_else(|| path(output, &format!("values.{name}")))
            {
                found.push((step.clone(), v));
            }
        }
    }
    match found.as_slice() {
        [] => doc
            .get("input")
            .and_then(|input| path(input, name))
            .cloned()
            .ok_or_else(|| {
                format!("`{{{{{name}}}}}` is in no earlier step's output and not in the input")
            }),
        [(_, v)] => Ok((*v).clone()),
        [(_, v), more @ ..] if more.iter().all(|(_, o)| o == v) => Ok((*v).clone()),
        several => Err(format!(
            "`{{{{{name}}}}}` differs between steps {}; write `{{{{steps.<step>.{name}}}}}`",
            several
                .iter()
                .map(|(s, _)| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(" and ")
        )),
    }
}

/// One filter on a value's text.
fn apply(filter: &str, value: &str) -> Result<String, String> {
    let (name, argument) = match filter.split_once(':') {
        Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
        None => (filter, None),
    };
    match (name, argument) {
        ("date", Some(format)) => {
            let date = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .map_err(|_| format!("\"{value}\" is not a date like 2026-08-16"))?;
            let mut text = String::new();
            std::fmt::Write::write_fmt(&mut text, format_args!("{}", date.format(format)))
                .map_err(|_| format!("\"{format}\" is not a date format such as \"%d.%m.%Y\""))?;
            Ok(text)
        }
        ("decimal_comma", None) => {
            let number: f64 = value
                .parse()
                .map_err(|_| format!("\"{value}\" is not a number"))?;
            Ok(decimal_comma(number))
        }
        ("urlencode", None) => {
            Ok(percent_encoding::utf8_percent_encode(value, ADDRESS_PART).to_string())
        }
        ("raw", None) => Ok(value.to_string()),
        _ => Err(format!(
            "unknown filter `{filter}` (there are `date: \"%d.%m.%Y\"`, `decimal_comma`, `urlencode` and `raw`)"
        )),
    }
}

/// `1234.5` as `1.234,50`.
fn decimal_comma(number: f64) -> String {
    let cents = (number.abs() * 100.0).round() as u64;
    let (units, cents) = (cents / 100, cents % 100);
    let digits = units.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push('.');
        }
        grouped.push(c);
    }
    let sign = if number < 0.0 && (units > 0 || cents > 0) {
        "-"
    } else {
        ""
    };
    format!("{sign}{grouped},{cents:02}")
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "job": {"id": 42},
            "input": {"file": "/in/a.pdf", "mail": {"from": "ap@acme.example"}},
            "steps": {
                "extract": {"values": {"invoice_number": "RE-1", "amount": 72.89}},
                "book": {"booking": "B00007"}
            }
        })
    }

    #[test]
    fn placeholders_are_filled_from_paths_and_bare_names() {
        let text = render(
            "Invoice {{invoice_number}} ({{ amount }} EUR) booked as {{booking}}; job {{job.id}}, from {{input.mail.from}}",
            &doc(),
        )
        .unwrap();
        assert_eq!(
            text,
            "Invoice RE-1 (72.89 EUR) booked as B00007; job 42, from ap@acme.example"
        );
    }

    #[test]
    fn a_name_found_nowhere_or_twice_is_an_error_that_says_so() {
        let missing = render("{{vendor}}", &doc()).unwrap_err();
        assert!(missing.contains("`{{vendor}}`"), "{missing}");
        let mut twice = doc();
        twice["steps"]["book"]["invoice_number"] = json!("RE-2");
        let e = render("{{invoice_number}}", &twice).unwrap_err();
        assert!(
            e.contains("`book` and `extract`") || e.contains("`extract` and `book`"),
            "{e}"
        );
        assert!(render("{{input.nothing}}", &doc()).is_err());
        assert!(render("{{unclosed", &doc()).is_err());
    }

    #[test]
    fn values_in_an_address_are_encoded_and_never_read_again() {
        let doc = serde_json::json!({
            "input": {"n": "RE 7/+1#a&b=c", "home": "http://erp/x?y=1", "sly": "{{input.n}} ${secret:ERP}"},
            "steps": {}
        });
        let address = |t: &str| render_in(t, &doc, Place::Address, &mut |l| Ok(l.to_string()));
        assert_eq!(
            address("http://erp/search?number={{input.n}}").unwrap(),
            "http://erp/search?number=RE%207%2F%2B1%23a%26b%3Dc"
        );
        assert_eq!(address("{{input.home | raw}}").unwrap(), "http://erp/x?y=1");
        assert_eq!(
            render("n={{input.n | urlencode}}", &doc).unwrap(),
            "n=RE%207%2F%2B1%23a%26b%3Dc"
        );
        // A value holding placeholders or secret references stays as it is;
        // only the bot file's own text goes through `literal`.
        let mut seen = Vec::new();
        let out = render_in("a ${x} {{input.sly}} b", &doc, Place::Plain, &mut |l| {
            seen.push(l.to_string());
            Ok(l.replace("${x}", "X"))
        })
        .unwrap();
        assert_eq!(out, "a X {{input.n}} ${secret:ERP} b");
        assert_eq!(seen, ["a ${x} ", " b"]);
    }

    #[test]
    fn filters_shape_dates_and_amounts_for_old_forms() {
        let doc = json!({"input": {"date": "2026-08-16", "amount": 30208.34, "small": "7.5", "big": 1234567.891, "neg": -0.5}});
        assert_eq!(
            render("{{ date | date: \"%d.%m.%Y\" }}", &doc).unwrap(),
            "16.08.2026"
        );
        assert_eq!(
            render("{{amount|decimal_comma}}", &doc).unwrap(),
            "30.208,34"
        );
        assert_eq!(render("{{small | decimal_comma}}", &doc).unwrap(), "7,50");
        assert_eq!(
            render("{{big | decimal_comma}}", &doc).unwrap(),
            "1.234.567,89"
        );
        assert_eq!(render("{{neg | decimal_comma}}", &doc).unwrap(), "-0,50");
        let e = render("{{amount | date: \"%d.%m.%Y\"}}", &doc).unwrap_err();
        assert!(e.contains("not a date"), "{e}");
        let e = render("{{amount | upper}}", &doc).unwrap_err();
        assert!(e.contains("unknown filter `upper`"), "{e}");
    }
}
