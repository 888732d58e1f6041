//! Mail: documents out of messages (MIME).

pub mod mime;

pub use mime::{AttachmentFilter, Document, Mail, MailError, Skipped, parse};
