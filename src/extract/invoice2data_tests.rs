//! invoice2data's template forms read with its meaning, and the table
//! problems clerk no longer passes over in silence.

use super::tests::{doc, template};
use super::*;

#[test]
fn a_garbled_row_inside_a_table_is_flagged_with_its_text() {
    let t = template(
        r#"
issuer: T
keywords: [Items]
fields:
  lines:
    parser: lines
    start: Items
    end: Total
    line: '^(?P<qty>\d+)\s+(?P<name>.+?)\s{2,}(?P<amount>\d+\.\d{2})$'
    skip_line: '^-+$'
    types:
      qty: int
      amount: float
"#,
    );
    // OCR read the second row's figures as letters: the row regex skips it.
    let x = extract(
        &doc(&[
            "Items",
            "1 Paper  12.50",
            "-----",
            "2 Toner  4O.OO",
            "Total 52.50",
        ]),
        std::slice::from_ref(&t),
    );
    let lines = &x.fields["lines"];
    assert_eq!(lines.value.as_array().unwrap().len(), 1);
    assert!(lines.confidence < 0.8, "{lines:?}");
    assert_eq!(
        lines.reasons,
        ["a line inside the table was read as no row: `2 Toner  4O.OO`"]
    );
    assert!(
        x.review.iter().any(|r| r.contains("`lines`")),
        "{:?}",
        x.review
    );

    // A template that says such lines are expected is not flagged.
    let yaml = "issuer: T\nkeywords: [Items]\nfields:\n  lines:\n    parser: lines\n    start: Items\n    end: Total\n    line: '^(?P<qty>\\d+)\\s+(?P<name>.+?)\\s{2,}(?P<amount>\\d+\\.\\d{2})$'\n    other_lines: expected\n";
    let x = extract(
        &doc(&["Items", "1 Paper  12.50", "note: thanks", "Total 12.50"]),
        &[template(yaml)],
    );
    assert!(
        x.fields["lines"].reasons.is_empty(),
        "{:?}",
        x.fields["lines"]
    );
}

#[test]
fn a_row_in_which_no_column_was_read_is_not_a_row() {
    let t = template(
        "issuer: T\nkeywords: [Items]\nfields:\n  lines:\n    parser: lines\n    start: Items\n    end: Total\n    line: '^(?P<sku>[A-Z]+-\\d+)?\\s*(?P<note>\\d+)?$'\n    other_lines: expected\n",
    );
    let x = extract(&doc(&["Items", "AB-1", "xyz", "Total"]), &[t]);
    let rows = x.fields["lines"].value.as_array().unwrap().clone();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["sku"], "AB-1");
    // invoice2data gives a group that did not take part as empty text.
    assert_eq!(rows[0]["note"], "");
}

#[test]
fn several_rule_sets_and_lists_of_line_patterns_are_all_read() {
    let t = template(
        r#"
keywords: [Goods, Services]
required_fields: [lines]
fields:
  lines:
    parser: lines
    rules:
      - start: Goods
        end: Subtotal goods
        line:
          - '^(?P<name>\w+)\s+(?P<amount>\d+\.\d{2})$'
          - '^(?P<name>\w+)\s+free$'
        types:
          amount: float
      - start: Services
        end: Subtotal services
        line: '^(?P<name>\w+)\s+(?P<hours>\d+)h\s+(?P<amount>\d+\.\d{2})$'
        types:
          amount: float
"#,
    );
    // No `issuer`: invoice2data names the template by its first keyword.
    assert_eq!(t.issuer, "Goods");
    let x = extract(
        &doc(&[
            "Goods",
            "Paper 10.00",
            "Sample free",
            "Subtotal goods 10.00",
            "Services",
            "Setup 2h 90.00",
            "Subtotal services 90.00",
        ]),
        &[t],
    );
    let rows = x.fields["lines"].value.as_array().unwrap().clone();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[1]["name"], "Sample");
    assert_eq!(rows[2]["hours"], "2");
    assert_eq!(rows[2]["amount"], 90.0);
    assert!(
        x.fields["lines"].reasons.is_empty(),
        "{:?}",
        x.fields["lines"]
    );
}

#[test]
fn repeated_keys_sums_and_tables_as_invoice2data_reads_them() {
    let t = template(
        r#"
issuer: T
keywords: [Fuel]
fields:
  amount: 'Wrong\s+(\d+\.\d{2})'
  amount: 'Total\s+(\d+\.\d{2})'
  sum_amount_tax:
    - 'VAT low\s+(\d+\.\d{2})'
    - 'VAT high\s+(\d+\.\d{2})'
tables:
  - start: Station\s+Date
    end: Total
    body: '(?P<station>\w+)\s+(?P<date>\d{4}-\d{2}-\d{2})'
"#,
    );
    let x = extract(
        &doc(&[
            "Fuel",
            "Station Date",
            "Utrecht 2026-11-02",
            "VAT low 1.10",
            "VAT high 2.20",
            "Total 30.00",
            "Wrong 99.99",
        ]),
        &[t],
    );
    // The last of a repeated key wins, as in PyYAML.
    assert_eq!(x.fields["amount"].value, 30.0);
    assert_eq!(x.fields["amount_tax"].value, 3.3);
    assert_eq!(x.fields["station"].value, "Utrecht");
    assert_eq!(x.fields["date"].value, "2026-11-02");
}

#[test]
fn invoice2datas_area_is_a_box_in_pixels_at_its_resolution() {
    // Words of line i sit at y = 90 + 12 i … 100 + 12 i points.
    let d = doc(&[
        "Total 10.00",
        "x",
        "x",
        "x",
        "x",
        "x",
        "x",
        "x",
        "x",
        "Total 72.89",
    ]);
    // y 190–230 pt is 792–958 px at 300 dpi (pt × 300 / 72).
    let t = template(
        "issuer: T\nkeywords: [Total]\nfields:\n  amount:\n    parser: regex\n    regex: 'Total\\s+(\\S+)'\n    type: float\n    area: {f: 1, l: 1, r: 300, x: 0, y: 792, W: 2479, H: 166}\n",
    );
    let x = extract(&d, &[t]);
    assert_eq!(x.fields["amount"].value, 72.89, "{:?}", x.fields["amount"]);
}

#[test]
fn a_pattern_that_gives_up_is_an_error_not_no_match() {
    let t = template(
        "issuer: T\nkeywords: [aaaa]\nfields:\n  code:\n    parser: regex\n    regex: '(a|aa)+\\1c'\n",
    );
    let long = "a".repeat(40);
    let x = extract(&doc(&[&long]), std::slice::from_ref(&t));
    assert!(!x.fields.contains_key("code"));
    let t2 = Template {
        required_fields: vec!["code".into()],
        ..t
    };
    let x = extract(&doc(&[&long]), &[t2]);
    assert!(
        x.review.iter().any(|r| r.contains("pattern too costly")),
        "{:?}",
        x.review
    );
}

const PLAIN: &str = r#"
issuer: Plain Ltd
keywords: [Plain Ltd]
fields:
  invoice_number: 'Invoice\s+(\S+)'
  date: 'Date\s+(\d{4}-\d{2}-\d{2})'
  amount: 'Total\s+(\d+\.\d{2})'
  amount_untaxed: 'Net\s+(\d+\.\d{2})'
  amount_tax: 'VAT\s+(\d+\.\d{2})'
  lines:
    parser: lines
    start: Item
    end: Net
    line: '^(?P<description>\w+)\s+(?P<qty>\d+)\s+(?P<unit_price>\d+\.\d{2})\s+(?P<amount>\d+\.\d{2})$'
    types: {qty: int, unit_price: float, amount: float}
"#;

fn plain(total: &str, second_row: &str) -> Document {
    let date = chrono::Local::now().date_naive().to_string();
    doc(&[
        "Plain Ltd",
        "Invoice P-1",
        &format!("Date {date}"),
        "Item Qty Price Amount",
        "Paper 2 5.00 10.00",
        second_row,
        "Net 40.00",
        "VAT 8.00",
        &format!("Total {total}"),
    ])
}

#[test]
fn every_document_gets_the_arithmetic_checks_without_asking() {
    // The template has no `validation`: the checks run all the same, and
    // the ones that pass are recorded as evidence.
    let t = template(PLAIN);
    let x = extract(
        &plain("48.00", "Toner 1 30.00 30.00"),
        std::slice::from_ref(&t),
    );
    assert!(x.review.is_empty(), "{:?}", x.review);
    assert_eq!(
        x.fields["amount"].confirmed,
        ["amount = amount_untaxed + amount_tax"]
    );
    assert!(
        x.fields["lines"]
            .confirmed
            .contains(&"qty × unit_price = amount in every row".to_string())
    );
    assert!(
        x.fields["date"]
            .confirmed
            .contains(&"date is a plausible date".to_string())
    );

    // A total that is not net + tax is flagged, with the reason.
    let x = extract(
        &plain("84.00", "Toner 1 30.00 30.00"),
        std::slice::from_ref(&t),
    );
    let amount = &x.fields["amount"];
    assert!(amount.confidence <= 0.3, "{amount:?}");
    assert_eq!(
        amount.reasons,
        ["validation failed: amount 84.00 is not amount_untaxed + amount_tax = 48.00"]
    );
    assert!(
        x.review.iter().any(|r| r.starts_with("`amount`")),
        "{:?}",
        x.review
    );

    // A row whose figures do not multiply out is named.
    let x = extract(
        &plain("48.00", "Toner 2 30.00 30.00"),
        std::slice::from_ref(&t),
    );
    assert!(
        x.fields["lines"]
            .reasons
            .iter()
            .any(|r| r.contains("row 2: qty × unit_price = 60.00, not amount 30.00")),
        "{:?}",
        x.fields["lines"]
    );

    // A template can turn them off.
    let off = template(&format!("{PLAIN}options:\n  cross_checks: false\n"));
    let x = extract(&plain("84.00", "Toner 1 30.00 30.00"), &[off]);
    assert!(
        x.fields["amount"].reasons.is_empty(),
        "{:?}",
        x.fields["amount"]
    );
}

#[test]
fn separators_that_contradict_the_template_are_flagged_on_their_own() {
    // `.` is the decimal separator: "228,56" would read as 22856.
    let t = template(
        "issuer: T\nkeywords: [Total]\nfields:\n  amount: 'Total\\s+([\\d.,]+)'\n  invoice_number: 'Nr\\s+(\\S+)'\n",
    );
    let x = extract(&doc(&["Nr 7", "Total 228,56"]), std::slice::from_ref(&t));
    let amount = &x.fields["amount"];
    assert!(amount.confidence <= 0.3, "{amount:?}");
    assert!(
        amount.reasons[0].contains("`,56` looks like decimals"),
        "{amount:?}"
    );
    let x = extract(&doc(&["Nr 7", "Total 1,228.56"]), &[t]);
    assert!(
        x.fields["amount"].reasons.is_empty(),
        "{:?}",
        x.fields["amount"]
    );
}

#[test]
fn the_explanation_names_what_matched_nothing_and_how_every_check_went() {
    let t = template(&format!("{PLAIN}  iban: 'IBAN\\s+(\\S+)'\n"));
    let x = extract(&plain("84.00", "Toner 1 30.00 30.00"), &[t]);
    assert_eq!(x.unmatched["iban"], "the rule matched nothing");
    let outcomes: Vec<(&str, &str)> = x
        .validations
        .iter()
        .map(|v| (v.check.as_str(), v.result.as_str()))
        .collect();
    assert!(
        outcomes.contains(&("amount = amount_untaxed + amount_tax", "failed")),
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains(&("the lines' amount add up to amount_untaxed", "passed")),
        "{outcomes:?}"
    );
}
