//! Mail intake: documents out of the MIME real mail has, and messages out
//! of a real IMAP server (a private Dovecot started by the test).

mod common;

use std::path::{Path, PathBuf};

use clerk::mail::imap::{self, ImapError};
use clerk::mail::{AttachmentFilter, MailError, parse};
use common::dovecot::{Dovecot, append_all, fixture_messages};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(&format!("mail/{name}.eml"))).unwrap()
}

#[test]
fn every_fixture_message_gives_its_documents_and_who_sent_it() {
    let filter = AttachmentFilter::default();
    let docs = |name: &str| -> Vec<(String, String)> {
        parse(&read(name), &filter)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .documents
            .into_iter()
            .map(|d| (d.name, d.media_type))
            .collect()
    };
    let pdf = |n: &str| vec![(n.to_string(), "application/pdf".to_string())];
    assert_eq!(docs("01-plain-pdf"), pdf("RE-2026-67181.pdf"));
    // RFC 2047 encoded-words in the name, RFC 2231 percent-encoding.
    assert_eq!(docs("02-rfc2047-name"), pdf("Rechnung_März_2026.pdf"));
    assert_eq!(docs("03-rfc2231-name"), pdf("Facture n° F94255.pdf"));
    // Sent as application/octet-stream without an extension: a PDF by its bytes.
    assert_eq!(docs("04-octet-stream"), pdf("scan0001"));
    // The invoice inside a forwarded message.
    assert_eq!(docs("05-forwarded"), pdf("RE-2026-67181.pdf"));
    // The HTML body's inline logo is not a document.
    assert_eq!(docs("06-related-inline"), pdf("NWL43238.pdf"));
    assert_eq!(
        docs("07-latin1"),
        vec![("scan.png".to_string(), "image/png".to_string())]
    );
    // No way out of the folder, no control characters.
    assert_eq!(docs("08-hostile-name"), pdf("evil.pdf"));
    assert!(docs("09-no-documents").is_empty());

    let plain = parse(&read("01-plain-pdf"), &filter).unwrap();
    assert_eq!(plain.message_id.as_deref(), Some("fixture-01@mail.example"));
    assert_eq!(
        plain.from.as_deref(),
        Some("ACME Office Supplies <billing@acme.example>")
    );
    assert_eq!(plain.subject.as_deref(), Some("Rechnung RE-2026-67181"));
    assert_eq!(plain.date.as_deref(), Some("2026-11-16T09:01:00+01:00"));
    // The document is the attached file, byte for byte.
    let original = std::fs::read(fixture("invoices/acme-office/RE-2026-67181.pdf")).unwrap();
    assert!(
        plain.documents[0].bytes == original,
        "the attachment differs"
    );

    let latin1 = parse(&read("07-latin1"), &filter).unwrap();
    assert_eq!(
        latin1.from.as_deref(),
        Some("François Müller <fm@example.fr>")
    );
    assert_eq!(latin1.subject.as_deref(), Some("Facture n° F94255 à payer"));
    let german = parse(&read("02-rfc2047-name"), &filter).unwrap();
    assert_eq!(german.subject.as_deref(), Some("Rechnung für März"));
    let related = parse(&read("06-related-inline"), &filter).unwrap();
    assert_eq!(related.skipped.len(), 1, "{:?}", related.skipped);
    assert!(related.skipped[0].reason.contains("inline"));
}

#[test]
fn a_message_that_is_not_one_is_an_error_and_limits_skip_with_reasons() {
    assert!(matches!(
        parse(&read("10-malformed"), &AttachmentFilter::default()),
        Err(MailError::Malformed(_))
    ));
    let small = AttachmentFilter {
        max_size: 1000,
        ..AttachmentFilter::default()
    };
    let mail = parse(&read("01-plain-pdf"), &small).unwrap();
    assert!(mail.documents.is_empty());
    assert!(
        mail.skipped[0].reason.contains("more than the limit"),
        "{:?}",
        mail.skipped
    );
    let pdf_only = AttachmentFilter {
        types: vec!["application/pdf".into()],
        ..AttachmentFilter::default()
    };
    let mail = parse(&read("07-latin1"), &pdf_only).unwrap();
    assert!(mail.documents.is_empty());
    assert!(
        mail.skipped[0].reason.contains("image/png"),
        "{:?}",
        mail.skipped
    );
    // The body itself, when the bot asks for it.
    let body = AttachmentFilter {
        types: vec!["text/*".into()],
        body: true,
        ..AttachmentFilter::default()
    };
    let mail = parse(&read("09-no-documents"), &body).unwrap();
    assert_eq!(mail.documents.len(), 1);
    assert_eq!(mail.documents[0].name, "message.txt");
    assert_eq!(mail.documents[0].bytes, b"Shall we have lunch at noon?\r\n");
}

#[test]
fn messages_come_out_of_dovecot_whole_in_batches_and_move_when_done() {
    let server = Dovecot::start();
    let account = server.account();
    let messages = fixture_messages();
    assert_eq!(messages.len(), 10);
    append_all(
        &account,
        "INBOX",
        &messages.iter().map(PathBuf::as_path).collect::<Vec<_>>(),
    );

    let mut session = imap::connect(&account).unwrap();
    let selected = session.select("INBOX").unwrap();
    assert_eq!(selected.exists, 10);
    assert!(selected.uid_validity > 0);
    let uids = session.uids_after(0).unwrap();
    assert_eq!(uids, (1..=10).collect::<Vec<u32>>());
    let fetched = session.fetch(&uids).unwrap();
    assert_eq!(fetched.len(), 10);
    // Byte for byte what was appended, in UID order.
    for (f, path) in fetched.iter().zip(&messages) {
        assert!(
            f.raw == std::fs::read(path).unwrap(),
            "{} differs",
            path.display()
        );
    }
    // Every message parses but the one that is not a message.
    let parsed: Vec<_> = fetched
        .iter()
        .map(|f| parse(&f.raw, &AttachmentFilter::default()))
        .collect();
    assert_eq!(parsed.iter().filter(|p| p.is_err()).count(), 1);
    let documents: usize = parsed.iter().flatten().map(|m| m.documents.len()).sum();
    assert_eq!(documents, 8);

    // Nothing above the last UID, even though `n:*` names the highest.
    assert!(session.uids_after(10).unwrap().is_empty());

    session.move_to(&uids[..9], "Processed").unwrap();
    session.move_to(&uids[9..], "Failed").unwrap();
    assert_eq!(session.select("INBOX").unwrap().exists, 0);
    assert_eq!(session.select("Processed").unwrap().exists, 9);
    assert_eq!(session.select("Failed").unwrap().exists, 1);
    // The mailbox keeps its identity; new mail gets higher UIDs.
    let again = session.select("INBOX").unwrap();
    assert_eq!(again.uid_validity, selected.uid_validity);
    session.logout();
    append_all(&account, "INBOX", &[messages[0].as_path()]);
    let mut session = imap::connect(&account).unwrap();
    session.select("INBOX").unwrap();
    assert_eq!(session.uids_after(10).unwrap(), vec![11]);
    session.logout();
}

#[test]
fn a_wrong_password_and_a_stopped_server_are_told_apart() {
    let mut server = Dovecot::start();
    let mut account = server.account();
    account.password = "wrong".into();
    let refused = imap::connect(&account).err().expect("login refused");
    assert!(matches!(refused, ImapError::Login { .. }), "{refused:?}");
    assert!(!refused.is_transient());
    // The message names the user, never the password.
    assert!(refused.to_string().contains("finance") && !refused.to_string().contains("wrong"));

    let account = server.account();
    server.stop();
    let down = imap::connect(&account).err().expect("server down");
    assert!(down.is_transient(), "{down:?}");
    assert!(down.to_string().contains("cannot reach"), "{down}");
}

#[test]
fn implicit_tls_and_starttls_trust_the_servers_certificate_only_when_told() {
    let server = Dovecot::start();
    append_all(
        &server.account(),
        "INBOX",
        &[&fixture("mail/01-plain-pdf.eml")],
    );
    let tls = |tls: imap::Tls, port: u16, ca: bool| {
        let mut account = server.account();
        account.tls = tls;
        account.port = port;
        account.ca_file = ca.then(|| server.ca_file.clone());
        account
    };
    for (mode, port) in [
        (imap::Tls::Implicit, server.tls_port),
        (imap::Tls::StartTls, server.port),
    ] {
        let mut session = imap::connect(&tls(mode, port, true))
            .unwrap_or_else(|e| panic!("{mode:?} with the CA file: {e}"));
        session.select("INBOX").expect("select");
        let uids = session.uids_after(0).expect("search");
        let fetched = session.fetch(&uids).expect("fetch");
        assert_eq!(fetched.len(), 1, "{mode:?}");
        assert_eq!(
            fetched[0].raw,
            std::fs::read(fixture("mail/01-plain-pdf.eml")).unwrap()
        );
        session.logout();

        // A certificate nobody vouches for is refused, saying why.
        let refused = imap::connect(&tls(mode, port, false))
            .err()
            .unwrap_or_else(|| panic!("{mode:?} trusted a self-signed certificate"));
        assert!(
            refused.to_string().contains("certificate"),
            "{mode:?}: {refused}"
        );
    }
    // STARTTLS really encrypts: the server logs the TLS session.
    assert!(server.log().contains("TLS"), "{}", server.log());

    let mut account = tls(imap::Tls::Implicit, server.tls_port, false);
    account.ca_file = Some(PathBuf::from("/nonexistent/ca.pem"));
    let settings = imap::connect(&account).err().expect("no CA file");
    assert!(!settings.is_transient(), "{settings:?}");
    assert!(
        settings.to_string().contains("/nonexistent/ca.pem"),
        "{settings}"
    );
}
