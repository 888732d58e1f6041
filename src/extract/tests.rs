//! Extraction of documents built word by word: template choice, field
//! rules, tables, confidence and review reasons.

use super::*;
use crate::documents::{BBox, Page, Source, Word};
use std::path::Path;

pub(super) fn doc(lines: &[&str]) -> Document {
    let mut words = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let mut x = 50.0;
        for w in line.split(' ') {
            if !w.is_empty() {
                words.push(Word {
                    text: w.into(),
                    bbox: BBox {
                        x0: x,
                        y0: 100.0 + 12.0 * i as f64 - 10.0,
                        x1: x + 5.0 * w.chars().count() as f64,
                        y1: 100.0 + 12.0 * i as f64,
                    },
                    confidence: 1.0,
                    source: Source::TextLayer,
                    other_reading: None,
                });
            }
            x += 5.0 * (w.chars().count() as f64 + 1.0);
        }
    }
    Document {
        pages: vec![Page::new(1, 595.0, 842.0, words)],
    }
}

pub(super) fn template(yaml: &str) -> Template {
    parse_template(Path::new("t.yml"), yaml).expect("valid template")
}

const ACME: &str = r#"
issuer: ACME Office Supplies GmbH
keywords:
  - ACME Office
  - Rechnungsnummer
fields:
  invoice_number: Rechnungsnummer:\s+(\S+)
  date: Rechnungsdatum:\s+(\d{2}\.\d{2}\.\d{4})
  amount: Gesamtbetrag\s+([\d.,]+)
  vat:
    parser: regex
    regex: MwSt\. 19 %\s+([\d.,]+)
    type: float
  lines_total:
    parser: regex
    regex: '(?m)^\d+\s+.+?\s+\d+\s+[\d.,]+\s+([\d.,]+)$'
    type: float
    group: sum
  static_country: DE
options:
  currency: EUR
  decimal_separator: ','
"#;

fn acme_doc() -> Document {
    doc(&[
        "ACME Office Supplies GmbH",
        "Rechnungsnummer: RE-2026-1041",
        "Rechnungsdatum: 14.03.2026",
        "1 Papier 2 10,00 20,00",
        "2 Toner 1 41,25 41,25",
        "MwSt. 19 % 11,64",
        "Gesamtbetrag 72,89 EUR",
    ])
}

#[test]
fn legacy_and_regex_fields_with_types_groups_and_statics() {
    let x = extract(&acme_doc(), &[template(ACME)]);
    assert!(!x.needs_review(), "{:?}", x.review);
    let v = |k: &str| x.fields[k].value.clone();
    assert_eq!(v("invoice_number"), "RE-2026-1041");
    assert_eq!(v("date"), "2026-03-14");
    assert_eq!(v("amount"), 72.89);
    assert_eq!(v("vat"), 11.64);
    assert_eq!(v("lines_total"), 61.25);
    assert_eq!(v("country"), "DE");
    assert_eq!(v("currency"), "EUR");
    assert_eq!(v("issuer"), "ACME Office Supplies GmbH");
    assert_eq!(x.fields["amount"].raw.as_deref(), Some("72,89"));
    assert!(x.fields["amount"].rule.starts_with("regex: Gesamtbetrag"));
    assert_eq!(x.fields["amount"].confidence, 1.0);
}

#[test]
fn the_highest_priority_match_wins_and_explain_says_why_others_did_not() {
    let generic = template(
        "issuer: Generic\npriority: 1\nkeywords: [Gesamtbetrag]\nfields:\n  amount: Gesamtbetrag\\s+(\\S+)\n",
    );
    let other =
        template("issuer: Other\nkeywords: [Nordwind, Factuur]\nexclude_keywords: [ACME]\n");
    let x = extract(&acme_doc(), &[generic, template(ACME), other]);
    assert_eq!(x.fields["issuer"].value, "ACME Office Supplies GmbH");
    let other = &x.checks[2];
    assert!(!other.matched);
    assert_eq!(other.missing_keywords, vec!["Nordwind", "Factuur"]);
    assert_eq!(other.excluded_by, vec!["ACME"]);
}

#[test]
fn missing_or_unparsable_required_fields_go_to_review_with_reasons() {
    let d = doc(&[
        "ACME Office Supplies GmbH",
        "Rechnungsnummer: RE-1",
        "Rechnungsdatum: 61:25",
        "Gesamtbetrag 61:25",
    ]);
    let x = extract(&d, &[template(ACME)]);
    assert!(x.needs_review());
    let all = x.review.join("\n");
    // `61` out of `61:25`: a value, but flagged.
    assert_eq!(x.fields["amount"].value, 61.0);
    assert!(x.fields["amount"].confidence < 0.8);
    assert!(all.contains("`amount` has confidence 0.30"), "{all}");
    assert!(all.contains("the match is only part of `61:25`"), "{all}");
    assert!(
        all.contains("required field `date` is missing: the rule matched nothing"),
        "{all}"
    );
    let typed_badly = template(
        "issuer: T\nkeywords: [Total]\nfields:\n  amount: 'Total\\s+(\\S+)'\nrequired_fields: [amount]\n",
    );
    let x = extract(&doc(&["Total 61:25"]), &[typed_badly]);
    assert_eq!(
        x.review,
        vec![
            "required field `amount` is missing: matched, but `61:25` is not a number (it has `:`)"
        ]
    );
    let none = extract(&doc(&["Hello"]), &[template(ACME)]);
    assert_eq!(none.review, vec!["no template matched this document"]);
}

#[test]
fn options_prepare_the_text_before_matching() {
    let t = template(
        "issuer: X\nkeywords: [rechnung]\nfields:\n  invoice_number: 'nr:(\\S+)'\noptions:\n  remove_whitespace: true\n  lowercase: true\n  remove_accents: true\n  replace:\n    - ['n°', 'nr']\nrequired_fields: [invoice_number]\n",
    );
    let x = extract(&doc(&["RECHNUNG N° : AB-12"]), &[t]);
    assert_eq!(x.fields["invoice_number"].value, "ab-12", "{:?}", x.review);
}

#[test]
fn a_broken_regex_names_its_file_and_field() {
    let err = parse_template(
        Path::new("tpl/acme.yml"),
        "issuer: A\nkeywords: [A]\nfields:\n  amount: 'Total (\\d+'\n",
    )
    .unwrap_err()
    .to_string();
    // At the place of the failing character: line 4, past the `(`.
    assert!(
        err.starts_with("tpl/acme.yml:4:22: field `amount`: bad regex `Total (\\d+`"),
        "{err}"
    );
    let err = parse_template(Path::new("t.yml"), "issuer: [unclosed\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("t.yml:2:1: invalid YAML"), "{err}");
    let err = parse_template(
        Path::new("t.yml"),
        "issuer: A\nkeywords: A\nfields:\n  x:\n    parser: lines\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("the lines parser needs `start`"), "{err}");
}

#[test]
fn the_lines_parser_reads_rows_and_rows_over_several_lines() {
    let t = template(
        r#"
issuer: T
keywords: [Items]
required_fields: [lines]
lines:
  start: Items
  end: Total
  first_line: '^(?P<sku>[A-Z]{2}-\d+)\s+(?P<description>.+?)\s{2,}(?P<amount>[\d.]+)$'
  line: '^\s+(?P<description>\S.*)$'
  skip_line: 'continued'
  types:
    amount: float
"#,
    );
    let d = doc(&[
        "Items",
        "AB-1 Paper  12.50",
        "     A4, white",
        "(continued)",
        "CD-2 Toner  40.00",
        "Total 52.50",
    ]);
    let x = extract(&d, &[t]);
    assert!(!x.needs_review(), "{:?}", x.review);
    let rows = x.fields["lines"].value.as_array().unwrap().clone();
    assert_eq!(rows.len(), 2);
    // As invoice2data joins a cell read over several lines.
    assert_eq!(rows[0]["description"], "Paper\nA4, white");
    assert_eq!(rows[0]["amount"], 12.5);
    assert_eq!(rows[1]["sku"], "CD-2");
}

#[test]
fn a_table_row_read_from_doubtful_ocr_words_lowers_the_lines_field() {
    let t = template(
        r#"
issuer: T
keywords: [Items]
lines:
  start: Items
  end: Total
  line: '^(?P<description>\S+)\s+(?P<amount>[\d.]+)$'
  types:
    amount: float
"#,
    );
    let mut d = doc(&["Items", "Paper 12.50", "Toner 40.00", "Total 52.50"]);
    for w in &mut d.pages[0].words {
        w.source = Source::Ocr;
        w.confidence = if w.text == "40.00" { 0.42 } else { 0.95 };
    }
    let x = extract(&d, &[t]);
    let lines = &x.fields["lines"];
    assert!((lines.confidence - 0.42).abs() < 1e-6, "{lines:?}");
    assert_eq!(lines.reasons, vec!["row 2: OCR confidence 0.42"]);
    assert_eq!(lines.page, Some(1));
    assert!(
        x.review.iter().any(|r| r.starts_with("`lines`")),
        "{:?}",
        x.review
    );
    // Both rows are still returned, for the reviewer to check.
    assert_eq!(lines.value.as_array().map(Vec::len), Some(2));
}

#[test]
fn words_a_second_reading_read_otherwise_are_named_in_the_reasons() {
    let t = template(
        r#"
issuer: T
keywords: [Items]
fields:
  invoice_number: Invoice\s+(\S+)
lines:
  start: Items
  end: Total
  line: '^(?P<description>\S+)\s+(?P<amount>[\d.]+)$'
  types:
    amount: float
"#,
    );
    let mut d = doc(&[
        "Invoice A-17",
        "Items",
        "Paper 12.50",
        "Toner 40.00",
        "Total 52.50",
    ]);
    for w in &mut d.pages[0].words {
        w.source = Source::Ocr;
        w.confidence = 0.97;
        let other = match w.text.as_str() {
            "Toner" => "Tuner",
            "A-17" => "A-11",
            _ => continue,
        };
        w.confidence = 0.5;
        w.other_reading = Some(other.into());
    }
    let x = extract(&d, &[t]);
    assert_eq!(
        x.fields["lines"].reasons,
        vec!["row 2: OCR confidence 0.50; two readings of the scan differ: `Toner` or `Tuner`"]
    );
    assert_eq!(
        x.fields["invoice_number"].reasons,
        vec![
            "OCR read it with confidence 0.50",
            "two readings of the scan differ: `A-17` or `A-11`"
        ]
    );
    assert!(x.needs_review());
}

#[test]
fn a_known_iban_confirms_the_one_read_and_a_changed_one_goes_to_review() {
    let t = template(
        r#"
issuer: T
keywords: [Invoice]
required_fields: [iban]
fields:
  iban: 'IBAN:\s+([A-Z]{2}\d{2}(?: ?[A-Z0-9]{1,4})+)'
validation:
  - rule: known
    field: iban
    value: de89 3704 0044 0532 0130 00
"#,
    );
    let read = |iban: &str, confidence: f32| {
        let mut d = doc(&["Invoice", &format!("IBAN: {iban}")]);
        for w in &mut d.pages[0].words {
            w.source = Source::Ocr;
            w.confidence = confidence;
        }
        extract(&d, std::slice::from_ref(&t))
    };
    // Read with some doubt, but the vendor is known by this IBAN: it passes.
    let x = read("DE89 3704 0044 0532 0130 00", 0.7);
    let iban = &x.fields["iban"];
    assert!(!x.needs_review(), "{:?}", x.review);
    assert_eq!(iban.confidence, validate::CONFIRMED_CONFIDENCE);
    assert!(
        iban.confirmed
            .iter()
            .any(|c| c == "iban is the vendor's known iban"),
        "{iban:?}"
    );
    // A different account, read with full confidence and a valid checksum:
    // the classic fraud, so it goes to review whatever OCR says.
    let x = read("GB82 WEST 1234 5698 7654 32", 1.0);
    assert!(x.needs_review());
    assert!(
        x.review
            .join("\n")
            .contains("is not the vendor's known `de89 3704 0044 0532 0130 00`"),
        "{:?}",
        x.review
    );
}

#[test]
fn validation_flags_values_that_read_well_but_do_not_add_up() {
    let today = chrono::Local::now().date_naive();
    let yaml = |total: &str, iban: &str, date: chrono::NaiveDate| {
        let d = doc(&[
            "ACME Office Supplies GmbH",
            "Rechnungsnummer: RE-2026-1041",
            &format!("Rechnungsdatum: {}", date.format("%d.%m.%Y")),
            "1 Papier 2 10,00 20,00",
            "2 Toner 1 41,25 41,25",
            "MwSt. 19 % 11,64",
            &format!("Gesamtbetrag {total} EUR"),
            &format!("IBAN: {iban}"),
        ]);
        let fields = "  iban: 'IBAN: (.+)'\noptions:";
        let t = template(&format!(
            "{}validation:\n  - rule: sum\n    fields: [lines_total, vat]\n    equals: amount\n  - rule: iban\n    field: iban\n  - rule: date_range\n    field: date\n    max_age_days: 365\n    max_future_days: 31\n  - rule: regex\n    field: invoice_number\n    pattern: '^RE-\\d{{4}}-\\d+$'\n",
            ACME.replace("options:", fields)
        ));
        extract(&d, &[t])
    };
    let good = yaml("72,89", "DE89 3704 0044 0532 0130 00", today);
    assert!(!good.needs_review(), "{:?}", good.review);

    let bad_total = yaml("78,89", "DE89 3704 0044 0532 0130 00", today);
    let all = bad_total.review.join("\n");
    assert!(
        all.contains("amount 78.89 is not lines_total + vat = 72.89"),
        "{all}"
    );
    assert!(bad_total.fields["amount"].confidence <= 0.3);

    let bad_iban = yaml("72,89", "DE89 3704 0044 0532 0130 01", today);
    assert!(
        bad_iban.review.join("\n").contains("wrong checksum"),
        "{:?}",
        bad_iban.review
    );

    let old = yaml(
        "72,89",
        "DE89 3704 0044 0532 0130 00",
        today - chrono::Duration::days(800),
    );
    assert!(
        old.review.join("\n").contains("more than 365 days ago"),
        "{:?}",
        old.review
    );
}

#[test]
fn ocr_confidence_of_the_words_under_a_match_carries_into_the_field() {
    let mut d = acme_doc();
    for w in &mut d.pages[0].words {
        if w.text == "72,89" {
            w.confidence = 0.55;
            w.source = Source::Ocr;
        }
    }
    let x = extract(&d, &[template(ACME)]);
    let amount = &x.fields["amount"];
    assert_eq!(amount.value, 72.89);
    assert!((amount.confidence - 0.55).abs() < 1e-6, "{amount:?}");
    assert_eq!(amount.reasons, vec!["OCR read it with confidence 0.55"]);
    assert_eq!(amount.page, Some(1));
    let b = amount.bbox.unwrap();
    assert!(b.x0 > 100.0 && b.width() > 20.0, "{b:?}");
    assert!(
        x.review
            .iter()
            .any(|r| r.starts_with("`amount` has confidence 0.55")),
        "{:?}",
        x.review
    );
    // Other fields keep full confidence.
    assert_eq!(x.fields["invoice_number"].confidence, 1.0);
}

#[test]
fn word_positions_survive_the_template_options() {
    let mut d = doc(&["RECHNUNG Nr. 4711", "Betrag 61,25 EUR"]);
    for w in &mut d.pages[0].words {
        if w.text == "61,25" {
            w.confidence = 0.4;
        }
    }
    let t = template(
        "issuer: X\nkeywords: [rechnung]\nrequired_fields: [amount]\nfields:\n  amount: 'betrag(\\d+[.]\\d+)eur'\noptions:\n  remove_whitespace: true\n  lowercase: true\n  replace:\n    - ['(\\d+),(\\d+)', '\\1.\\2']\n",
    );
    let x = extract(&d, &[t]);
    let amount = &x.fields["amount"];
    assert_eq!(amount.value, 61.25, "{:?}", x.review);
    assert!((amount.confidence - 0.4).abs() < 1e-6, "{amount:?}");
}

#[test]
fn an_area_limits_a_rule_to_a_box_of_a_page() {
    // Two totals: a carried-over one at the top, the real one lower right.
    let d = doc(&[
        "Total 10,00",
        "x",
        "x",
        "x",
        "x",
        "x",
        "x",
        "x",
        "x",
        "Total 72,89",
    ]);
    let t = template(
        "issuer: T\nkeywords: [Total]\nrequired_fields: [amount]\nfields:\n  amount:\n    parser: regex\n    regex: 'Total\\s+(\\S+)'\n    type: float\n    area: {page: 1, x0: 0, y0: 190, x1: 595, y1: 230}\noptions:\n  decimal_separator: ','\n",
    );
    let x = extract(&d, &[t]);
    assert_eq!(x.fields["amount"].value, 72.89, "{:?}", x.review);
    assert!(x.fields["amount"].rule.ends_with("in area of page 1"));
    let err = parse_template(
            Path::new("t.yml"),
            "issuer: T\nkeywords: [T]\nfields:\n  amount:\n    regex: x\n    area: {x0: 5, y0: 0, x1: 1, y1: 9}\n",
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("`area` must be"), "{err}");
}
