//! Field accuracy on the generated text PDFs against their ground truth, with
//! the example bot's templates, and `clerk extract` as a user runs it.

use std::path::{Path, PathBuf};

use clerk::documents::{ReadOptions, read_file};
use clerk::extract::{extract, load_templates};
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn templates_dir() -> PathBuf {
    root().join("bots/invoice-intake/templates")
}

/// The templates of `dir`, every one usable and without a warning.
fn clean_templates(dir: &Path) -> Vec<clerk::extract::Template> {
    let set = load_templates(dir);
    assert!(
        set.errors.is_empty() && set.warnings.is_empty(),
        "{:?} {:?}",
        set.errors,
        set.warnings
    );
    set.templates
}

fn fixture_pdfs() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for vendor in std::fs::read_dir(root().join("fixtures/invoices"))
        .unwrap()
        .flatten()
    {
        for f in std::fs::read_dir(vendor.path()).unwrap().flatten() {
            if f.path().extension().is_some_and(|e| e == "pdf") {
                out.push(f.path());
            }
        }
    }
    out.sort();
    out
}

fn number(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) => s.parse().unwrap(),
        other => panic!("not a number: {other}"),
    }
}

#[test]
fn every_field_is_right_on_every_text_pdf() {
    let templates = clean_templates(&templates_dir());
    assert_eq!(templates.len(), 4);
    let pdfs = fixture_pdfs();
    assert_eq!(pdfs.len(), 20);
    for pdf in pdfs {
        let truth: Value =
            serde_json::from_str(&std::fs::read_to_string(pdf.with_extension("json")).unwrap())
                .unwrap();
        let doc = read_file(&pdf, &ReadOptions::default()).unwrap();
        let x = extract(&doc, &templates);
        let name = pdf.display();
        assert!(!x.needs_review(), "{name}: {:?}", x.review);
        let f = |k: &str| {
            &x.fields
                .get(k)
                .unwrap_or_else(|| panic!("{name}: no {k}"))
                .value
        };
        for k in ["issuer", "invoice_number", "date", "currency"] {
            assert_eq!(f(k), &truth[k], "{name}: {k}");
        }
        for k in ["amount", "amount_untaxed", "vat"] {
            assert!(
                (number(f(k)) - number(&truth[k])).abs() < 0.005,
                "{name}: {k} {} vs {}",
                f(k),
                truth[k]
            );
        }
        // Line items: every row, with its numbers.
        let rows = f("lines")
            .as_array()
            .unwrap_or_else(|| panic!("{name}: lines"));
        let want = truth["lines"].as_array().unwrap();
        assert_eq!(rows.len(), want.len(), "{name}: rows");
        for (row, item) in rows.iter().zip(want) {
            assert_eq!(row["description"], item["description"], "{name}");
            assert_eq!(row["qty"], item["qty"], "{name}");
            for k in ["unit_price", "amount"] {
                assert!(
                    (number(&row[k]) - number(&item[k])).abs() < 0.005,
                    "{name}: {k}"
                );
            }
        }
        // Clean text-layer documents pass straight through.
        assert!(
            x.fields.values().all(|f| f.confidence == 1.0),
            "{name}: {:?}",
            x.fields
        );
        // Exactly one template matched, the vendor's own.
        assert_eq!(x.checks.iter().filter(|c| c.matched).count(), 1, "{name}");
    }
}

fn clerk(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_clerk"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn clerk_extract_explains_and_reports_in_its_exit_code() {
    let one = "fixtures/invoices/nordwind-logistics/NWL13487.pdf";
    let out = clerk(&[
        "extract",
        one,
        "-t",
        "bots/invoice-intake/templates",
        "--explain",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("nordwind-logistics.yml  matched (priority 5)"),
        "{text}"
    );
    assert!(
        text.contains("acme-office.yml  missing keywords: ACME Office Supplies, Rechnungsnummer"),
        "{text}"
    );
    assert!(text.contains("rule: regex: Totaal te betalen"), "{text}");
    assert!(text.contains("text: \"16.547,34\""), "{text}");

    let json = clerk(&[
        "extract",
        "fixtures/invoices",
        "-t",
        "bots/invoice-intake/templates",
        "--json",
    ]);
    let all: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 20);
    assert_eq!(all[0]["fields"]["amount"]["confidence"], 1.0);

    // A document no template fits: exit code 4, the reason in the output.
    let unknown = clerk(&[
        "extract",
        "fixtures/bad/owner-only.pdf",
        "-t",
        "bots/invoice-intake/templates",
    ]);
    assert_eq!(unknown.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&unknown.stdout)
            .contains("review: no template matched this document")
    );

    // A bad file among good ones: reported, the others still extracted.
    let mixed = clerk(&[
        "extract",
        one,
        "fixtures/bad/truncated.pdf",
        "-t",
        "bots/invoice-intake/templates",
        "--csv",
    ]);
    assert_eq!(mixed.status.code(), Some(1));
    let csv = String::from_utf8_lossy(&mixed.stdout);
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.contains("NWL13487") && csv.contains("damaged"), "{csv}");
}

#[test]
fn a_table_carried_forward_is_read_to_its_end() {
    let dir = root().join("fixtures/continued");
    let templates = clean_templates(&dir.join("templates"));
    let pdf = dir.join("blue-harbor-BH-6860-continued.pdf");
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(pdf.with_extension("json")).unwrap())
            .unwrap();
    let doc = read_file(&pdf, &ReadOptions::default()).unwrap();
    assert_eq!(doc.pages.len(), 2);
    let x = extract(&doc, &templates);
    assert!(!x.needs_review(), "{:?}", x.review);
    let rows = x.fields["lines"].value.as_array().unwrap().clone();
    let want = truth["lines"].as_array().unwrap();
    assert_eq!(rows.len(), want.len());
    assert_eq!(rows.len(), 18);
    for (row, item) in rows.iter().zip(want) {
        assert_eq!(row["description"], item["description"]);
        assert!((number(&row["amount"]) - number(&item["amount"])).abs() < 0.005);
    }
    assert_eq!(x.fields["lines"].confidence, 1.0);
}
