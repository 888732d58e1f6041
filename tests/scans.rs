//! Scans through real tesseract: clean 300 dpi PNGs and degraded image-only
//! PDFs (200 dpi, tilted, noisy, blurred, JPEG) of the fixture invoices.
//! Whatever OCR gets wrong must be flagged: a wrong value never passes with
//! full confidence.

use std::path::Path;

use clerk::documents::{DocumentError, Limits, Source, read_file};
use clerk::extract::{extract, load_templates};
use serde_json::Value;

const FIELDS: [&str; 7] = [
    "issuer",
    "invoice_number",
    "date",
    "currency",
    "amount",
    "amount_untaxed",
    "vat",
];

fn same(field: &str, got: &Value, want: &Value) -> bool {
    match field {
        "amount" | "amount_untaxed" | "vat" => match (
            got.as_f64(),
            want.as_str().and_then(|s| s.parse::<f64>().ok()),
        ) {
            (Some(g), Some(w)) => (g - w).abs() < 0.005,
            _ => false,
        },
        _ => got == want,
    }
}

#[test]
fn every_wrong_value_read_from_a_scan_is_flagged() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (templates, errors) = load_templates(&root.join("bots/invoice-intake/templates"));
    assert!(errors.is_empty(), "{errors:?}");
    let mut scans: Vec<_> = std::fs::read_dir(root.join("fixtures/scans"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "png" || e == "pdf"))
        .collect();
    scans.sort();
    assert_eq!(scans.len(), 8);
    let (mut right, mut wrong_flagged, mut clean_right, mut clean_total) = (0, 0, 0, 0);
    for scan in &scans {
        let truth: Value =
            serde_json::from_str(&std::fs::read_to_string(scan.with_extension("json")).unwrap())
                .unwrap();
        let doc = read_file(scan, &Limits::default())
            .unwrap_or_else(|e| panic!("{}: {e}", scan.display()));
        assert!(
            doc.pages[0].words.iter().all(|w| w.source == Source::Ocr),
            "{}",
            scan.display()
        );
        assert!(
            doc.pages[0].words.len() > 40,
            "{}: too few words",
            scan.display()
        );
        let x = extract(&doc, &templates);
        let clean = scan.to_string_lossy().contains("clean");
        for f in FIELDS {
            let Some(field) = x.fields.get(f) else {
                continue;
            };
            if same(f, &field.value, &truth[f]) {
                right += 1;
                if clean {
                    clean_right += 1;
                }
            } else {
                // The point of the confidence model: a wrong value is never
                // passed through.
                assert!(
                    field.confidence < 0.8 || x.needs_review(),
                    "{}: wrong {f} {} (truth {}) passed with confidence {:.2}",
                    scan.display(),
                    field.value,
                    truth[f],
                    field.confidence
                );
                wrong_flagged += 1;
            }
        }
        if clean {
            clean_total += FIELDS.len();
        }
    }
    eprintln!(
        "scans: {right} fields right, {wrong_flagged} wrong and flagged; clean scans {clean_right}/{clean_total}"
    );
    // Clean scans read mostly right; a drop here means OCR or layout broke.
    assert!(
        clean_right * 10 >= clean_total * 7,
        "clean scans: only {clean_right} of {clean_total} fields right"
    );
}

#[test]
fn an_image_header_claiming_ten_billion_pixels_is_refused_unread() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let err = read_file(
        &root.join("fixtures/bad/huge-header.png"),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            DocumentError::ImageTooLarge {
                width: 100_000,
                height: 100_000,
                ..
            }
        ),
        "{err:?}"
    );
}
