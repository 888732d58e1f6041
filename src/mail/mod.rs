//! Mail: documents out of messages (MIME), the IMAP mailboxes they come
//! from, messages sent (the `email` step), and owners and reviewers told
//! about jobs that need them.

pub mod imap;
pub mod mime;
pub mod notify;
pub mod poll;
pub mod send;

pub use mime::{AttachmentFilter, Document, Mail, MailError, Skipped, parse};
