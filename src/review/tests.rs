//! Reviews worked on the real ACME template: fields shown unsure first,
//! corrections typed as the template's fields, checks run again, and
//! approval only with the checks passing or overridden.

use std::path::Path;

use serde_json::json;

use super::*;
use crate::jobs::{ReviewItem, ReviewOutcome};

fn acme() -> Template {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("bots/invoice-intake/templates/acme-office.yml");
    let text = std::fs::read_to_string(&file).expect("template");
    crate::extract::parse_template(&file, &text).expect("valid template")
}

fn field(value: serde_json::Value, confidence: f32) -> serde_json::Value {
    json!({ "value": value, "raw": null, "confidence": confidence, "rule": "regex", "reasons": if confidence < 1.0 { json!(["OCR read it with confidence 0.55"]) } else { json!([]) }, "page": 1, "bbox": { "x0": 10.0, "y0": 20.0, "x1": 60.0, "y1": 30.0 } })
}

/// A review of an ACME invoice whose total was misread (9.999,00 for
/// 30.208,34) and whose invoice number was not found.
fn review(template: &Template) -> Review {
    let extraction = json!({
        "file": "/in/RE-2026-66261.pdf",
        "template": template.file.display().to_string(),
        "values": {},
        "fields": {
            "amount": field(json!(9999.0), 0.55),
            "amount_untaxed": field(json!(25385.16), 1.0),
            "vat": field(json!(4823.18), 1.0),
            "date": field(json!("2026-08-16"), 1.0),
            "issuer": field(json!("ACME Office Supplies GmbH"), 1.0),
        },
        "review": ["`amount` has confidence 0.55"],
    });
    Review {
        item: ReviewItem {
            job_id: 7,
            bot: "invoice-intake".into(),
            document: Some("RE-2026-66261.pdf".into()),
            step: "extract".into(),
            reasons: vec!["`amount` has confidence 0.55".into()],
            waiting_since: 0,
            claimed_by: None,
            claimed_until: None,
            version: 0,
            note: None,
            review_by: Vec::new(),
            due_at: None,
        },
        input: json!({ "file": "/in/RE-2026-66261.pdf" }),
        step_index: 0,
        original: extraction.clone(),
        extraction,
        template: None,
        corrections: Default::default(),
    }
}

fn today() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2026, 9, 1).unwrap()
}

fn text(field: &str, value: &str) -> Correction {
    Correction {
        field: field.into(),
        value: json!(value),
    }
}

#[test]
fn the_unsure_fields_come_first_and_missing_required_ones_are_shown() {
    let t = acme();
    let view = view(&review(&t), std::slice::from_ref(&t), today());
    // What nothing was read for comes first (confidence 0): the required
    // invoice number, and the IBAN the template reads.
    let names: Vec<&str> = view.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        &names[..3],
        ["iban", "invoice_number", "amount"],
        "{names:?}"
    );
    assert!(view.fields[1].required && !view.fields[0].required);
    assert_eq!(view.fields[0].reasons, ["not found on the page"]);
    assert_eq!(view.fields[2].kind, "number");
    assert_eq!(view.fields[2].page, Some(1));
    assert!(view.fields.iter().all(|f| f.name != "lines"));
    // 25,385.16 + 4,823.18 is not 9,999.00.
    assert!(
        view.failures
            .iter()
            .any(|f| f.fields.contains(&"amount".to_string())),
        "{:?}",
        view.failures
    );
    assert_eq!(view.issuer.as_deref(), Some("ACME Office Supplies GmbH"));
}

#[test]
fn corrections_are_typed_as_the_template_prints_them_or_plainly() {
    let t = acme();
    let mut r = review(&t);
    let templates = std::slice::from_ref(&t);
    let update = correct(
        &r,
        templates,
        &[
            text("amount", "30.208,34"),
            text("invoice_number", "RE-2026-66261"),
            text("date", "17.08.2026"),
        ],
    )
    .expect("valid corrections");
    assert_eq!(update.corrections["amount"], json!(30208.34));
    assert_eq!(update.corrections["invoice_number"], json!("RE-2026-66261"));
    assert_eq!(update.corrections["date"], json!("2026-08-17"));
    let amount = &update.events[0];
    assert_eq!(amount.detail["old"], json!(9999.0));
    assert_eq!(amount.detail["new"], json!(30208.34));
    assert!(amount.reason.contains("9999"), "{}", amount.reason);

    // A plain number works too; a word or a bad date does not, and
    // nothing is kept of a save with a bad value.
    r.corrections = update.corrections;
    let again = correct(&r, templates, &[text("amount", "30208.34")]).expect("plain");
    assert!(again.events.is_empty(), "the same value is no change");
    let errors = correct(
        &r,
        templates,
        &[
            text("amount", "thirty"),
            text("date", "31.02.2026"),
            text("Bad Name", "x"),
        ],
    )
    .expect_err("refused");
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[0].message.contains("number"), "{}", errors[0]);
    assert!(errors[1].message.contains("date"), "{}", errors[1]);

    // An empty value withdraws a correction.
    let withdrawn = correct(&r, templates, &[text("date", "")]).expect("withdrawn");
    assert!(!withdrawn.corrections.contains_key("date"));
    assert_eq!(withdrawn.events[0].detail["action"], "withdraw");
}

#[test]
fn approval_needs_the_checks_to_pass_or_an_override_with_a_note() {
    let t = acme();
    let templates = std::slice::from_ref(&t);
    let mut r = review(&t);
    let refused = approve(&r, templates, "ana", "", None, today()).expect_err("checks fail");
    let ApproveError::NeedsOverride { failures, missing } = refused;
    assert!(!failures.is_empty());
    assert_eq!(missing, vec!["invoice_number".to_string()]);

    let update = correct(
        &r,
        templates,
        &[
            text("amount", "30.208,34"),
            text("invoice_number", "RE-2026-66261"),
        ],
    )
    .expect("valid");
    r.corrections = update.corrections;
    r.item.version = 1;
    // The IBAN and lines checks cannot run (no such fields), so they pass.
    let outcome =
        approve(&r, templates, "ana", "looked at the paper", None, today()).expect("approved");
    let ReviewOutcome::Approve { output, event } = outcome else {
        panic!("an approval");
    };
    assert_eq!(output["values"]["amount"], json!(30208.34));
    assert_eq!(output["values"]["invoice_number"], json!("RE-2026-66261"));
    assert_eq!(
        output["extracted"]["fields"]["amount"]["value"],
        json!(9999.0)
    );
    assert_eq!(output["fields"]["amount"]["confidence"], json!(1.0));
    assert_eq!(output["reviewed"]["by"], "ana");
    assert_eq!(output["review"], json!([]));
    assert!(event.reason.contains("looked at the paper"));

    // Overriding a failing check needs a note, and says so.
    let mut wrong = review(&t);
    wrong
        .corrections
        .insert("invoice_number".into(), json!("RE-1"));
    assert!(approve(&wrong, templates, "ana", "", Some("  "), today()).is_err());
    let ReviewOutcome::Approve { output, event } = approve(
        &wrong,
        templates,
        "ana",
        "",
        Some("credit agreed by phone"),
        today(),
    )
    .expect("overridden") else {
        panic!("an approval");
    };
    assert_eq!(
        output["reviewed"]["overridden"]["why"],
        "credit agreed by phone"
    );
    assert!(event.reason.contains("overridden"), "{}", event.reason);
}

#[test]
fn a_rejection_and_a_postponement_say_why() {
    assert!(reject("  ").is_err());
    assert!(postpone("").is_err());
    let ReviewOutcome::Reject { reason, event } = reject("not our invoice").expect("rejected")
    else {
        panic!("a rejection");
    };
    assert_eq!(reason, "not our invoice");
    assert_eq!(event.detail["action"], "reject");
}
