//! Mail: documents out of messages (MIME), and the IMAP mailboxes they
//! come from.

pub mod imap;
pub mod mime;
pub mod poll;

pub use mime::{AttachmentFilter, Document, Mail, MailError, Skipped, parse};
