//! The registry of step kinds: every kind a bot file may name in
//! `kind = "…"`, in the order messages and the reference list them.
//!
//! A kind lives in its own module (its config, its keys' reference, its
//! step) and is added here with one line.

use crate::step::StepKind;

/// Every step kind, in the order they are listed to users.
pub static KINDS: &[&dyn StepKind] = &[
    &crate::command::CommandKind,
    &crate::extract::ExtractKind,
    &crate::mail::EmailKind,
    &crate::browser::BrowserKind,
];

/// The kind named `name`.
pub fn get(name: &str) -> Option<&'static dyn StepKind> {
    KINDS.iter().copied().find(|k| k.name() == name)
}

/// The kinds as `(name, kind)` pairs, for reading `kind = "…"` with a
/// did-you-mean hint.
pub(super) fn choices() -> Vec<(&'static str, &'static dyn StepKind)> {
    KINDS.iter().map(|k| (k.name(), *k)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_distinct_name_and_a_reference() {
        let mut names: Vec<&str> = KINDS.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KINDS.len(), "two kinds share a name");
        for kind in KINDS {
            assert!(get(kind.name()).is_some());
            assert!(
                kind.reference()
                    .contains(&format!("kind = \"{}\"", kind.name())),
                "the reference of `{}` shows a step of its kind",
                kind.name()
            );
        }
    }
}
