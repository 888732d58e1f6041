//! Mail: documents out of messages (MIME), the IMAP mailboxes they come
//! from (mailbox triggers and their polls), messages sent through SMTP (the
//! `email` step kind), and owners and reviewers told about jobs that need
//! them.

pub mod email;
pub mod imap;
pub mod mime;
pub mod notify;
pub mod poll;
pub mod smtp;

pub use email::{EmailConfig, EmailKind};
pub use mime::{AttachmentFilter, Document, Mail, MailError, Skipped, parse};
