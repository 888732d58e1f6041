//! Mail: documents out of messages (MIME), the IMAP mailboxes they come
//! from, and messages sent (the `email` step).

pub mod imap;
pub mod mime;
pub mod poll;
pub mod send;

pub use mime::{AttachmentFilter, Document, Mail, MailError, Skipped, parse};
