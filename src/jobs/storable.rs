//! What the job database can keep, the same on both back ends: no text
//! holds a NUL character (PostgreSQL refuses it in text and in jsonb, so a
//! value SQLite took would break a later move to PostgreSQL), and an
//! idempotency key fits its index however long the key a trigger made.

use std::borrow::Cow;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{JobsError, NewJob, Result};

/// Keys up to this many bytes are kept as given; longer ones as
/// `sha256:<hex>` of the key, so they still work (PostgreSQL's index
/// refuses entries of about 2.7 kB).
pub const KEY_MAX_BYTES: usize = 256;

/// Where in `value` a string or a key holds a NUL character, as a path
/// from `at` (`input.mail.subject`, `input.lines[2]`).
pub fn nul_at(value: &Value, at: &str) -> Option<String> {
    match value {
        Value::String(s) => s.contains('\0').then(|| at.to_string()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_at(v, &format!("{at}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                return Some(format!("{at}.{}", k.replace('\0', "\\u0000")));
            }
            nul_at(v, &format!("{at}.{k}"))
        }),
        _ => None,
    }
}

/// The key as the database keeps it.
pub fn stored_key(key: &str) -> Cow<'_, str> {
    if key.len() <= KEY_MAX_BYTES {
        Cow::Borrowed(key)
    } else {
        let digest = Sha256::digest(key.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        Cow::Owned(format!("sha256:{hex}"))
    }
}

fn refuse(what: &str, bot: &str) -> JobsError {
    JobsError::Unstorable(format!(
        "a job of `{bot}` cannot be stored: {what} holds a NUL character (\\u0000), which the job database cannot keep"
    ))
}

impl NewJob {
    /// The state the job is created in: queued, or failed when refused.
    pub fn first_state(&self) -> super::JobState {
        if self.refused.is_some() {
            super::JobState::Failed
        } else {
            super::JobState::Queued
        }
    }

    /// The job as it is stored, or why it cannot be: a NUL character in its
    /// input, key, bot or author is refused with where it is; a long key is
    /// kept as its SHA-256.
    pub fn storable(&self) -> Result<NewJob> {
        if let Some(at) = nul_at(&self.input, "input") {
            return Err(refuse(&at, &self.bot));
        }
        for (what, text) in [
            ("the idempotency key", self.idempotency_key.as_deref()),
            ("the bot's name", Some(self.bot.as_str())),
            ("the author (created_by)", Some(self.created_by.as_str())),
            ("the reason it is refused", self.refused.as_deref()),
        ] {
            if text.is_some_and(|t| t.contains('\0')) {
                return Err(refuse(what, &self.bot.replace('\0', "\\u0000")));
            }
        }
        let mut job = self.clone();
        job.idempotency_key = self
            .idempotency_key
            .as_deref()
            .map(|k| stored_key(k).into_owned());
        Ok(job)
    }
}

/// A text made storable for a record of what went wrong: NUL characters
/// shown as `\u0000`.
pub fn printable(text: &str) -> String {
    text.replace('\0', "\\u0000")
}

/// A value made storable for a report: NUL characters in its strings and
/// keys shown as `\u0000`.
pub fn printable_value(value: Value) -> Value {
    match value {
        Value::String(s) if s.contains('\0') => Value::String(printable(&s)),
        Value::Array(items) => Value::Array(items.into_iter().map(printable_value).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (printable(&k), printable_value(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_nul_is_found_where_it_is() {
        let v = json!({"mail": {"subject": "ok", "lines": ["a", "b\u{0}c"]}});
        assert_eq!(nul_at(&v, "input").as_deref(), Some("input.mail.lines[1]"));
        assert_eq!(
            nul_at(&json!({"a\u{0}": 1}), "input").as_deref(),
            Some("input.a\\u0000")
        );
        assert_eq!(nul_at(&json!({"a": [1, "x", null]}), "input"), None);
    }

    #[test]
    fn long_keys_are_kept_as_their_digest() {
        let short = "folder:inbox:abc";
        assert_eq!(stored_key(short), short);
        let long = "m".repeat(KEY_MAX_BYTES + 1);
        let stored = stored_key(&long);
        assert!(
            stored.starts_with("sha256:") && stored.len() == 7 + 64,
            "{stored}"
        );
        assert_eq!(stored, stored_key(&long), "the same key, the same digest");
        assert_ne!(stored, stored_key(&"m".repeat(KEY_MAX_BYTES + 2)));
    }
}
