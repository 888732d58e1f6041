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

/// The step kinds a worker runs: those asked for (`--kinds`; all when
/// none are), each checked to run on this machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Served {
    pub kinds: Vec<&'static str>,
    /// Kinds this machine cannot run, and why; left out when no kinds were
    /// asked for.
    pub missing: Vec<(&'static str, String)>,
    /// Whether the kinds were tried on this machine ([`Served::check`]);
    /// then each bot's steps are tried too ([`Served::cannot_run`]).
    pub tried: bool,
}

impl Served {
    /// Check the kinds `asked` names (`ocr` is the `extract` kind: reading
    /// scans), or every kind when `asked` is empty. A name that is no kind
    /// is an error; so is a kind asked for by name that cannot run here.
    pub fn check(asked: &[String]) -> Result<Served, String> {
        let mut wanted = Vec::new();
        for name in asked {
            let name = if name == "ocr" {
                "extract"
            } else {
                name.as_str()
            };
            let kind = get(name).ok_or_else(|| {
                let names: Vec<&str> = KINDS.iter().map(|k| k.name()).collect();
                format!(
                    "--kinds: `{name}` is no step kind; the kinds are {} (and `ocr`, the same as `extract`)",
                    names.join(", ")
                )
            })?;
            if !wanted
                .iter()
                .any(|k: &&dyn StepKind| k.name() == kind.name())
            {
                wanted.push(kind);
            }
        }
        let named = !wanted.is_empty();
        if !named {
            wanted = KINDS.to_vec();
        }
        let mut served = Served {
            tried: true,
            ..Served::default()
        };
        for kind in wanted {
            match kind.available() {
                Ok(()) => served.kinds.push(kind.name()),
                Err(why) if named => {
                    return Err(format!(
                        "--kinds names `{}`, which this machine cannot run: {why}",
                        kind.name()
                    ));
                }
                Err(why) => served.missing.push((kind.name(), why)),
            }
        }
        Ok(served)
    }

    /// Every kind, unchecked: for workers that are told, not asked.
    pub fn all() -> Served {
        Served {
            kinds: KINDS.iter().map(|k| k.name()).collect(),
            missing: Vec::new(),
            tried: false,
        }
    }

    /// The kinds of `bot`'s steps this worker does not run (none: it can
    /// run the bot's jobs). A poll bot's own step runs anywhere.
    pub fn lacking(&self, bot: &super::Bot) -> Vec<&'static str> {
        let mut lacking: Vec<&'static str> = Vec::new();
        for step in &bot.steps {
            if get(step.kind).is_some()
                && !self.kinds.contains(&step.kind)
                && !lacking.contains(&step.kind)
            {
                lacking.push(step.kind);
            }
        }
        lacking
    }

    /// Why this worker does not run `bot`'s jobs (nothing: it does): the
    /// kinds of its steps it does not run and, where the kinds were tried,
    /// what a step of a kind it runs needs and this machine lacks.
    pub fn cannot_run(&self, bot: &super::Bot) -> Vec<String> {
        let lacking = self.lacking(bot);
        let mut why = Vec::new();
        if !lacking.is_empty() {
            why.push(format!(
                "this worker does not run {} steps",
                lacking.join(", ")
            ));
        }
        if self.tried {
            for step in &bot.steps {
                if let Some(kind) = get(step.kind)
                    && self.kinds.contains(&step.kind)
                    && let Err(e) = kind.can_run(step.config.as_ref(), &bot.dir)
                {
                    why.push(format!("step `{}`: {e}", step.name));
                }
            }
        }
        why
    }
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
