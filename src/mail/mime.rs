//! Documents out of a message as real mail carries them.
//!
//! An invoice arrives as an attachment (its name perhaps encoded per RFC 2047
//! or RFC 2231), as `application/octet-stream` with no useful name, inside a
//! forwarded message (`message/rfc822`), or beside an HTML body whose inline
//! logo is no document. `mail-parser` decodes the MIME and the charsets; this
//! module decides what is a document: attachments (and nested messages'
//! attachments, to any depth) whose type, read from their bytes where the
//! sender did not say, passes the filter, within the size limit. Inline
//! images referenced from the body are not documents. File names are made
//! safe: no directories, no control characters.

use mail_parser::{MessageParser, MimeHeaders};

/// Which parts of a message are documents.
#[derive(Debug, Clone, PartialEq)]
pub struct AttachmentFilter {
    /// Media types taken, `type/subtype` or `type/*`.
    pub types: Vec<String>,
    /// Larger parts are skipped, with the reason recorded.
    pub max_size: u64,
    /// Whether the message's own body (text or HTML) is a document too.
    pub body: bool,
}

impl Default for AttachmentFilter {
    fn default() -> Self {
        AttachmentFilter {
            types: vec![
                "application/pdf".into(),
                "image/png".into(),
                "image/jpeg".into(),
                "image/tiff".into(),
            ],
            max_size: 25 * 1024 * 1024,
            body: false,
        }
    }
}

impl AttachmentFilter {
    fn takes(&self, media_type: &str) -> bool {
        self.types.iter().any(|t| match t.strip_suffix("/*") {
            Some(major) => media_type
                .split('/')
                .next()
                .is_some_and(|m| m.eq_ignore_ascii_case(major)),
            None => t.eq_ignore_ascii_case(media_type),
        })
    }
}

/// One document found in a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Safe to use as a file name.
    pub name: String,
    /// From the bytes where they say, else as declared.
    pub media_type: String,
    pub bytes: Vec<u8>,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
}

impl Document {
    /// The document as the document store keeps it.
    pub fn stored(&self) -> crate::documents::store::StoredDocument {
        crate::documents::store::StoredDocument {
            sha256: self.sha256.clone(),
            name: self.name.clone(),
            media_type: self.media_type.clone(),
            size: self.bytes.len() as u64,
        }
    }
}

/// A part that looked like a document but was not taken, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

/// What clerk keeps of a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    pub message_id: Option<String>,
    /// `Name <address>`, or the address alone.
    pub from: Option<String>,
    pub subject: Option<String>,
    /// RFC 3339.
    pub date: Option<String>,
    pub documents: Vec<Document>,
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MailError {
    #[error("not a mail message: {0}")]
    Malformed(String),
}

/// The documents of a message, and who sent it when.
pub fn parse(raw: &[u8], filter: &AttachmentFilter) -> Result<Mail, MailError> {
    let message = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| MailError::Malformed("it cannot be parsed".into()))?;
    // A message has at least one header field; bytes without any are not
    // mail, whatever a lenient parser makes of them.
    if message.headers().is_empty() {
        return Err(MailError::Malformed("it has no header fields".into()));
    }
    let from = message
        .from()
        .and_then(|a| a.first())
        .map(|a| match (a.name(), a.address()) {
            (Some(name), Some(address)) => format!("{name} <{address}>"),
            (None, Some(address)) => address.to_string(),
            (Some(name), None) => name.to_string(),
            (None, None) => String::new(),
        });
    let mut mail = Mail {
        message_id: message.message_id().map(String::from),
        from,
        subject: message.subject().map(String::from),
        date: message.date().map(|d| d.to_rfc3339()),
        documents: Vec::new(),
        skipped: Vec::new(),
    };
    if filter.body {
        // mail-parser offers a text body as HTML too; only real HTML counts.
        if let Some(html) = message
            .html_bodies()
            .find(|p| p.is_text_html() && !p.is_empty())
        {
            take(
                &mut mail,
                filter,
                "message.html",
                "text/html",
                html.contents(),
            );
        } else if let Some(text) = message.text_bodies().next().filter(|p| !p.is_empty()) {
            take(
                &mut mail,
                filter,
                "message.txt",
                "text/plain",
                text.contents(),
            );
        }
    }
    collect(&message, filter, &mut mail, 0);
    Ok(mail)
}

/// Forwarded messages nest; deeper than this is not followed.
const MAX_DEPTH: usize = 8;

fn collect(
    message: &mail_parser::Message,
    filter: &AttachmentFilter,
    mail: &mut Mail,
    depth: usize,
) {
    for part in message.attachments() {
        if let Some(inner) = part.message() {
            if depth < MAX_DEPTH {
                collect(inner, filter, mail, depth + 1);
            }
            continue;
        }
        let declared = part
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_string(),
            })
            .unwrap_or_else(|| "application/octet-stream".into())
            .to_ascii_lowercase();
        let disposition = part.content_disposition();
        // An image shown inside the body (a logo) is not a document.
        let inline = disposition.is_some_and(|d| d.is_inline()) && part.content_id().is_some();
        let name = part.attachment_name().map(safe_file_name);
        if inline {
            mail.skipped.push(Skipped {
                name: name.unwrap_or_else(|| "inline part".into()),
                reason: "an inline image of the message body".into(),
            });
            continue;
        }
        let bytes = part.contents();
        let media_type = crate::documents::image::media_type(bytes).map_or(declared, String::from);
        let name = name.unwrap_or_else(|| {
            format!(
                "attachment-{}{}",
                mail.documents.len() + 1,
                extension(&media_type)
            )
        });
        take(mail, filter, &name, &media_type, bytes);
    }
}

fn take(mail: &mut Mail, filter: &AttachmentFilter, name: &str, media_type: &str, bytes: &[u8]) {
    let skip = |reason: String| Skipped {
        name: name.to_string(),
        reason,
    };
    if !filter.takes(media_type) {
        mail.skipped
            .push(skip(format!("{media_type} is not a document type taken")));
    } else if bytes.len() as u64 > filter.max_size {
        mail.skipped.push(skip(format!(
            "{} bytes, more than the limit of {}",
            bytes.len(),
            filter.max_size
        )));
    } else if bytes.is_empty() {
        mail.skipped.push(skip("empty".into()));
    } else {
        mail.documents.push(Document {
            name: name.to_string(),
            media_type: media_type.to_string(),
            bytes: bytes.to_vec(),
            sha256: crate::documents::store::sha256_hex(bytes),
        });
    }
}

fn extension(media_type: &str) -> &'static str {
    match media_type {
        "application/pdf" => ".pdf",
        "image/png" => ".png",
        "image/jpeg" => ".jpg",
        "image/tiff" => ".tif",
        "text/html" => ".html",
        "text/plain" => ".txt",
        _ => "",
    }
}

pub use crate::documents::store::safe_file_name;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_directories_and_control_characters() {
        assert_eq!(
            safe_file_name("../../../etc/cron.d/\x07evil.pdf"),
            "evil.pdf"
        );
        assert_eq!(
            safe_file_name("C:\\Users\\x\\Rechnung März.pdf"),
            "Rechnung März.pdf"
        );
        assert_eq!(safe_file_name("..."), "attachment");
        assert_eq!(safe_file_name(".hidden.pdf"), "hidden.pdf");
        assert_eq!(safe_file_name("a:b?.pdf"), "a_b_.pdf");
        assert!(safe_file_name(&"x".repeat(500)).len() <= 200);
    }

    #[test]
    fn types_are_matched_exactly_or_by_major_type() {
        let filter = AttachmentFilter {
            types: vec!["application/pdf".into(), "image/*".into()],
            ..AttachmentFilter::default()
        };
        assert!(filter.takes("application/pdf"));
        assert!(filter.takes("image/webp"));
        assert!(!filter.takes("application/zip"));
    }
}
