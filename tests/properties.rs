//! Properties of the parsers that read what others wrote (templates, bot
//! files, mail) and of placeholder rendering, checked on generated input:
//! arbitrary bytes, and valid files changed at random. None may panic; a
//! value from a job is always written as it is.
//!
//! CI runs each property on 256 cases. A longer run (180,000 cases, about
//! two minutes):
//!
//!     PROPTEST_CASES=20000 cargo test --test properties

use std::path::Path;

use clerk::step::template::{Place, render, render_in};
use proptest::prelude::*;
use serde_json::json;

fn fixture(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

/// `text` changed at `at` (a byte position, wrapped to its length): a
/// character replaced, removed or put in twice.
fn mutate(text: &str, at: usize, how: u8, with: char) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return with.to_string();
    }
    let i = at % chars.len();
    let mut out = chars.clone();
    match how % 3 {
        0 => out[i] = with,
        1 => {
            out.remove(i);
        }
        _ => out.insert(i, chars[i]),
    }
    out.into_iter().collect()
}

/// Characters that matter to YAML, TOML, MIME and placeholders, and some
/// that do not.
fn interesting() -> impl Strategy<Value = char> {
    prop_oneof![
        prop::sample::select(vec![
            '{', '}', '[', ']', ':', '-', '&', '*', '!', '|', '>', '"', '\'', '#', '=', '\n', '\r',
            '\t', ' ', '\\', '$', '%', '.', ',', '\0', 'é', '\u{202e}',
        ]),
        any::<char>(),
    ]
}

/// Text made of the pieces placeholders and secret references are made
/// of, and anything else.
fn tricky_value() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("{{".to_string()),
            Just("}}".to_string()),
            Just("input.v".to_string()),
            Just("${secret:ERP_PASSWORD}".to_string()),
            Just(" | date: \"%Y\"".to_string()),
            Just("&number=1#x?y/z+%20".to_string()),
            "\\PC{0,6}",
        ],
        0..10,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn template_parser_never_panics_on_any_text(text in ".{0,400}") {
        let _ = clerk::extract::template::parse_template(Path::new("t.yml"), &text);
        let _ = clerk::extract::template::parse_template(Path::new("t.json"), &text);
    }

    #[test]
    fn template_parser_never_panics_on_a_changed_template(
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), interesting()), 1..8)
    ) {
        let mut text = fixture("bots/invoice-intake/templates/acme-office.yml");
        for (at, how, with) in edits {
            text = mutate(&text, at, how, with);
        }
        let _ = clerk::extract::template::parse_template(Path::new("t.yml"), &text);
    }

    #[test]
    fn manifest_parser_never_panics_and_reports_at_real_lines(
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), interesting()), 1..8)
    ) {
        let mut text = fixture("bots/invoice-intake/bot.toml");
        for (at, how, with) in edits {
            text = mutate(&text, at, how, with);
        }
        let lines = text.lines().count().max(1);
        match clerk::bot::parse_manifest(Path::new("bots/x/bot.toml"), &text) {
            Ok(bot) => prop_assert!(!bot.name.is_empty()),
            Err(diags) => {
                prop_assert!(!diags.is_empty());
                for d in diags {
                    prop_assert!(d.line <= lines + 1, "line {} of {lines}: {}", d.line, d.message);
                }
            }
        }
    }

    #[test]
    fn mime_parser_never_panics_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let _ = clerk::mail::parse(&bytes, &clerk::mail::AttachmentFilter::default());
    }

    #[test]
    fn mime_parser_never_panics_on_a_changed_message(
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), interesting()), 1..12)
    ) {
        let mut text = fixture("fixtures/mail/02-rfc2047-name.eml");
        for (at, how, with) in edits {
            text = mutate(&text, at, how, with);
        }
        let _ = clerk::mail::parse(text.as_bytes(), &clerk::mail::AttachmentFilter::default());
    }

    /// Whatever a sender calls an attachment, the name clerk keeps is a
    /// plain file name: no folder, no way up, no control characters.
    #[test]
    fn an_attachment_name_is_always_a_plain_file_name(name in "\\PC{0,80}") {
        let raw = format!(
            "From: a@b.example\r\nMessage-ID: <p@b.example>\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"x\"\r\n\r\n--x\r\n\
             Content-Type: application/pdf; name=\"{0}\"\r\n\
             Content-Disposition: attachment; filename=\"{0}\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjcKJSVFT0YK\r\n--x--\r\n",
            name.replace(['"', '\\', '\r', '\n'], "_")
        );
        if let Ok(mail) = clerk::mail::parse(raw.as_bytes(), &clerk::mail::AttachmentFilter::default()) {
            for d in mail.documents {
                prop_assert!(!d.name.is_empty());
                prop_assert!(!d.name.contains('/') && !d.name.contains('\\'), "{:?}", d.name);
                prop_assert!(d.name != "." && d.name != ".." && !d.name.starts_with(".."), "{:?}", d.name);
                prop_assert!(!d.name.chars().any(char::is_control), "{:?}", d.name);
            }
        }
    }

    /// A value from the job is written exactly as it is: never read again
    /// for placeholders or secret references, whatever it holds.
    #[test]
    fn a_value_is_written_as_it_is(value in tricky_value(), prefix in "[a-z ]{0,10}") {
        let doc = json!({"input": {"v": value}});
        let out = render(&format!("{prefix}{{{{input.v}}}}"), &doc).unwrap();
        prop_assert_eq!(out, format!("{prefix}{value}"));
    }

    /// In an address a value is one part: encoded so that it cannot add a
    /// parameter, a fragment or a path, and decodes to itself.
    #[test]
    fn a_value_in_an_address_stays_one_part(value in tricky_value()) {
        let doc = json!({"input": {"v": value}});
        let out = render_in(
            "http://erp.example/search?number={{input.v}}",
            &doc,
            Place::Address,
            &mut |l| Ok(l.to_string()),
        )
        .unwrap();
        let part = out.strip_prefix("http://erp.example/search?number=").unwrap();
        prop_assert!(!part.contains(['&', '#', '?', '/', ' ', '+']), "{part}");
        let decoded = percent_encoding::percent_decode_str(part).decode_utf8().unwrap();
        prop_assert_eq!(decoded, value);
    }

    #[test]
    fn rendering_never_panics_on_any_template(text in "\\PC{0,120}") {
        let doc = json!({"input": {"a": "x", "n": 1.5, "d": "2026-12-02"}, "steps": {}});
        let _ = render(&text, &doc);
        let _ = render_in(&text, &doc, Place::Address, &mut |l| Ok(l.to_string()));
    }
}
