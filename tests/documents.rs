//! The PDF reader on the generated invoice fixtures: every value of the
//! ground truth is in the layout text where a rule would look for it, and
//! each bad input gives its own clear error.

use std::path::{Path, PathBuf};

use clerk::documents::{DocumentError, ReadOptions, Source, read_file};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Every generated invoice with its ground truth.
fn invoices() -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    let root = fixtures().join("invoices");
    let mut vendors: Vec<_> = std::fs::read_dir(&root)
        .expect("fixtures/invoices")
        .flatten()
        .collect();
    vendors.sort_by_key(|e| e.path());
    for vendor in vendors {
        let mut files: Vec<_> = std::fs::read_dir(vendor.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        for pdf in files
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "pdf"))
        {
            let truth: Value =
                serde_json::from_str(&std::fs::read_to_string(pdf.with_extension("json")).unwrap())
                    .unwrap();
            out.push((pdf, truth));
        }
    }
    out
}

#[test]
fn every_ground_truth_value_is_in_the_layout_text() {
    let all = invoices();
    assert_eq!(all.len(), 20, "four vendors, five invoices each");
    for (pdf, truth) in all {
        let doc = read_file(&pdf, &ReadOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", pdf.display()));
        let text = doc.layout_text();
        let lines: Vec<&str> = text.lines().collect();
        let has = |s: &str| text.contains(s);
        let name = pdf.display();
        assert!(
            has(truth["issuer"].as_str().unwrap()),
            "{name}: issuer\n{text}"
        );
        assert!(
            has(truth["invoice_number"].as_str().unwrap()),
            "{name}: number\n{text}"
        );
        assert!(
            has(truth["printed"]["date"].as_str().unwrap()),
            "{name}: date\n{text}"
        );
        // The total is printed with its currency, on a line of its own.
        let total = format!(
            "{} {}",
            truth["printed"]["amount"].as_str().unwrap(),
            truth["currency"].as_str().unwrap()
        );
        assert!(
            lines.iter().any(|l| l.trim_end().ends_with(&total)),
            "{name}: total {total}\n{text}"
        );
        // Line items in order, each on one line with its amount.
        let mut from = 0;
        for item in truth["lines"].as_array().unwrap() {
            let description = item["description"].as_str().unwrap();
            let at = lines[from..]
                .iter()
                .position(|l| l.contains(description))
                .unwrap_or_else(|| {
                    panic!("{name}: line item {description} missing after line {from}\n{text}")
                });
            from += at + 1;
        }
        for page in &doc.pages {
            assert!(
                page.words
                    .iter()
                    .all(|w| w.source == Source::TextLayer && w.confidence == 1.0)
            );
        }
    }
}

#[test]
fn a_long_invoice_continues_on_its_second_page() {
    let (pdf, truth) = invoices()
        .into_iter()
        .find(|(_, t)| t["lines"].as_array().unwrap().len() > 12)
        .expect("a two-page invoice");
    let doc = read_file(&pdf, &ReadOptions::default()).unwrap();
    assert_eq!(doc.pages.len(), 2);
    assert_eq!(doc.pages[1].number, 2);
    let last = truth["lines"].as_array().unwrap().last().unwrap()["amount"]
        .as_str()
        .unwrap()
        .to_string();
    // Amounts print with thousands commas on this vendor's invoices.
    let printed_last = {
        let (whole, frac) = last.split_once('.').unwrap();
        let mut groups = Vec::new();
        let mut w = whole.to_string();
        while w.len() > 3 {
            groups.insert(0, w.split_off(w.len() - 3));
        }
        groups.insert(0, w);
        format!("{}.{frac}", groups.join(","))
    };
    assert!(
        doc.pages[1].layout_text().contains(&printed_last),
        "{}",
        doc.pages[1].layout_text()
    );
    assert!(doc.layout_text().contains('\u{c}'));
}

#[test]
fn bad_inputs_each_give_their_own_error() {
    let bad = fixtures().join("bad");
    let read = |name: &str| read_file(&bad.join(name), &ReadOptions::default());
    assert_eq!(read("empty.pdf").unwrap_err(), DocumentError::Empty);
    assert!(matches!(
        read("not-a-pdf.pdf").unwrap_err(),
        DocumentError::NotAPdf { .. }
    ));
    assert!(matches!(
        read("truncated.pdf").unwrap_err(),
        DocumentError::Corrupt(_)
    ));
    assert_eq!(read("password.pdf").unwrap_err(), DocumentError::Encrypted);
    assert_eq!(
        read("3000-pages.pdf").unwrap_err(),
        DocumentError::TooManyPages {
            pages: 3000,
            limit: 500
        }
    );
    // Within a raised limit the same file reads, every page of it.
    let long = read_file(
        &bad.join("3000-pages.pdf"),
        &ReadOptions {
            max_pages: 3000,
            ..ReadOptions::default()
        },
    )
    .expect("3000 pages within the limit");
    assert_eq!(long.pages.len(), 3000);
    assert_eq!(long.pages[2999].number, 3000);
    // Encrypted with an owner password only: opens like any PDF.
    let doc = read("owner-only.pdf").expect("an empty user password opens");
    assert!(doc.layout_text().contains("Invoice number ENC-1001"));
    let missing = read_file(&bad.join("no-such-file.pdf"), &ReadOptions::default()).unwrap_err();
    assert!(
        missing.to_string().contains("no-such-file.pdf"),
        "{missing}"
    );
}

#[test]
fn clerk_read_prints_layout_text_and_reports_bad_files_without_stopping() {
    let good = invoices().remove(0).0;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clerk"))
        .arg("read")
        .arg(&good)
        .arg(fixtures().join("bad/password.pdf"))
        .arg(&good)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout.matches("==> ").count(), 2, "{stdout}");
    assert_eq!(
        stdout.matches("ACME Office Supplies GmbH").count(),
        2,
        "{stdout}"
    );
    assert!(
        stderr.contains("password.pdf: the PDF is password-protected"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("WARN"),
        "library noise on stderr: {stderr}"
    );
}
