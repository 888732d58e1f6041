//! The reference of bot files, assembled from the texts kept beside the
//! code that reads each part: the bot's own keys (`manifest`), triggers,
//! mailbox triggers (`mail::poll`), `[notify]` (`mail::notify`), every
//! step kind of the registry, placeholders and secrets.
//!
//! `clerk bots reference` prints it; `docs/bot-reference.md` is a copy that
//! a test keeps equal to it.

use std::fmt::Write as _;

use super::{kinds, manifest, triggers};

/// The whole reference, as Markdown.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Bot file reference\n\n\
         <!-- Made by `clerk bots reference` from the code that reads bot files; \
         edit the texts there, then run `clerk bots reference > docs/bot-reference.md`. -->\n\n",
    );
    out.push_str(manifest::REFERENCE);
    section(&mut out, "## `[notify]`", &crate::mail::notify::reference());
    section(&mut out, "## `[[triggers]]`", triggers::REFERENCE);
    section(
        &mut out,
        "### Mailbox triggers",
        crate::mail::poll::REFERENCE,
    );
    section(&mut out, "## `[[steps]]`", manifest::STEPS_REFERENCE);
    for kind in kinds::KINDS {
        let title = format!("### `kind = \"{}\"`", kind.name());
        section(&mut out, &title, kind.reference());
    }
    section(
        &mut out,
        "## Placeholders",
        crate::step::template::REFERENCE,
    );
    section(&mut out, "## Secrets", crate::config::secrets::REFERENCE);
    out
}

fn section(out: &mut String, title: &str, text: &str) {
    let _ = write!(out, "\n{title}\n\n{}\n", text.trim_end());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The copy in `docs/` is what the README links to; it must say what
    /// the code reads.
    #[test]
    fn the_reference_in_docs_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/bot-reference.md");
        let written = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            written == markdown(),
            "docs/bot-reference.md is out of date: run `clerk bots reference > docs/bot-reference.md`"
        );
    }

    #[test]
    fn every_kind_and_trigger_kind_is_in_the_reference() {
        let text = markdown();
        for kind in kinds::KINDS {
            assert!(text.contains(&format!("### `kind = \"{}\"`", kind.name())));
        }
        for trigger in ["cron", "interval", "manual", "folder", "mailbox"] {
            assert!(
                text.contains(&format!("`kind = \"{trigger}\"`")),
                "{trigger}"
            );
        }
    }
}
