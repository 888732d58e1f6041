//! `${secret:NAME}` references in bot files.
//!
//! A bot file never holds a password; it names one. At run time the name is
//! looked up in the environment (`NAME`), then in the secrets file (lines of
//! `NAME=value`, `#` comments; `--secrets FILE` or `CLERK_SECRETS_FILE`).
//! A bot can resolve only the names it declares (`secrets = [...]`): a
//! bot file cannot read an arbitrary variable of the worker's environment.
//! Resolved values are handed to the step that needs them and to nobody
//! else: anything a step reports back (its output, its error) has every
//! value it was given replaced by `***` before it is stored or logged.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const OPEN: &str = "${secret:";

/// The reference of secret references, as the bot file reference shows it.
pub const REFERENCE: &str = r#"A bot file names a secret, never holds it: `${secret:NAME}` (in a
command's `argv` or `env`, a browser action's values, a mail server's
`password`) is replaced when the step runs by the environment variable
`NAME`, or else by the line `NAME=value` of the secrets file (`--secrets
FILE` or `CLERK_SECRETS_FILE`; `#` starts a comment). A bot lists the
secrets it uses at its top level, `secrets = ["ERP_PASSWORD"]`: a
reference to a name not listed is an error when the file is loaded, and
no other variable of the worker's environment can be read through a
reference. A secret that is not set fails the job with its name.
References are resolved in the bot file's own text only: a value from a
job (its input, a field read off a document, a mail's subject) is always
written as it is, so `${secret:…}` arriving in data stays text. Whatever a step reports back (its output,
its error text, the evidence it keeps) has every secret value it was given
replaced by `***` before it is stored or logged, so `clerk runs show` never
shows one. Passwords of mail servers must be secret references.
"#;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SecretError {
    #[error(
        "secret `{0}` is not set: export it as an environment variable or add `{0}=…` to the secrets file"
    )]
    Missing(String),
    #[error("cannot read the secrets file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{path}:{line}: expected NAME=value")]
    Syntax { path: PathBuf, line: usize },
    #[error("secret `{0}` is not declared by the bot: add it to `secrets = [...]` in its bot.toml")]
    Undeclared(String),
}

/// Where secrets come from.
#[derive(Clone, Default)]
pub struct Secrets {
    file: Arc<BTreeMap<String, String>>,
    /// The names that may be resolved; `None` before a bot narrows them.
    declared: Option<Arc<BTreeSet<String>>>,
}

/// Names only: values must not reach a log through `{:?}`.
impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("file", &self.file.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A string with its references resolved, and the values it now contains.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub text: String,
    pub values: Vec<String>,
}

impl Secrets {
    /// Secrets from the environment only.
    pub fn from_env() -> Self {
        Secrets::default()
    }

    /// Secrets from the environment, then from `path`.
    pub fn with_file(path: &Path) -> Result<Self, SecretError> {
        if let Some(mode) = super::permissions::open_to_others(path) {
            tracing::warn!(
                file = %path.display(),
                mode = format!("{mode:o}"),
                "the secrets file can be read by other users: chmod 600 {}",
                path.display()
            );
        }
        let text = std::fs::read_to_string(path).map_err(|e| SecretError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut file = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, value) = line.split_once('=').ok_or(SecretError::Syntax {
                path: path.to_path_buf(),
                line: i + 1,
            })?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            file.insert(name.trim().to_string(), value.to_string());
        }
        Ok(Secrets {
            file: Arc::new(file),
            declared: None,
        })
    }

    /// The same secrets, of which only `names` (what a bot declares) can
    /// be resolved.
    pub fn only(&self, names: &[String]) -> Secrets {
        Secrets {
            file: self.file.clone(),
            declared: Some(Arc::new(names.iter().cloned().collect())),
        }
    }

    fn lookup(&self, name: &str) -> Result<String, SecretError> {
        if let Some(declared) = &self.declared
            && !declared.contains(name)
        {
            return Err(SecretError::Undeclared(name.to_string()));
        }
        std::env::var(name)
            .ok()
            .or_else(|| self.file.get(name).cloned())
            .ok_or_else(|| SecretError::Missing(name.to_string()))
    }

    /// Replace every `${secret:NAME}` in `text` by its value.
    pub fn resolve(&self, text: &str) -> Result<Resolved, SecretError> {
        let mut out = String::with_capacity(text.len());
        let mut values = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find(OPEN) {
            out.push_str(&rest[..start]);
            let after = &rest[start + OPEN.len()..];
            let Some(end) = after.find('}') else {
                // Unterminated: validation reports it; keep the text as is.
                out.push_str(&rest[start..]);
                rest = "";
                break;
            };
            let name = &after[..end];
            let value = self.lookup(name)?;
            out.push_str(&value);
            values.push(value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(Resolved { text: out, values })
    }
}

/// What of the worker's environment a child process (a command step, the
/// document reader, chromium) is given: what programs need to run, never
/// the rest, where secrets exported for clerk live.
pub const CHILD_ENVIRONMENT: [&str; 10] = [
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "TZ",
    "TMPDIR",
    "TERM",
    "PYENV_ROOT",
];

/// The worker's values of [`CHILD_ENVIRONMENT`] and of `LC_*`, for a child
/// started with a cleared environment.
pub fn child_environment() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| CHILD_ENVIRONMENT.contains(&k.as_str()) || k.starts_with("LC_"))
        .collect()
}

/// Check the references in one string from a bot file; returns a message for
/// the first malformed one.
pub fn check_references(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("`{}` is not closed with `}}`", &rest[start..]));
        };
        let inner = &after[..end];
        let Some(name) = inner.strip_prefix("secret:") else {
            return Err(format!(
                "`${{{inner}}}` is not a reference clerk knows; secrets are written `${{secret:NAME}}`"
            ));
        };
        let mut chars = name.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "`${{secret:{name}}}`: a secret's name is letters, digits and `_`, starting with a letter"
            ));
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

/// The names of the well-formed references in `text`, in order.
pub fn referenced_names(text: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find('}') else { break };
        names.push(&after[..end]);
        rest = &after[end + 1..];
    }
    names
}

/// Replace every secret value in `text` by `***`.
pub fn redact(text: &str, values: &[String]) -> String {
    let mut out = text.to_string();
    // Longest first, so a value that contains another is hidden whole.
    let mut sorted: Vec<&String> = values.iter().filter(|v| !v.is_empty()).collect();
    sorted.sort_by_key(|v| std::cmp::Reverse(v.len()));
    for v in sorted {
        out = out.replace(v.as_str(), "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(pairs: &[(&str, &str)]) -> Secrets {
        Secrets {
            file: Arc::new(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            declared: None,
        }
    }

    #[test]
    fn resolves_references_and_remembers_values() {
        let s = secrets(&[
            ("CLERK_TEST_ERP_USER", "booker"),
            ("CLERK_TEST_ERP_PW", "s3cr3t"),
        ]);
        let r = s
            .resolve("--user=${secret:CLERK_TEST_ERP_USER} --pw ${secret:CLERK_TEST_ERP_PW}!")
            .unwrap();
        assert_eq!(r.text, "--user=booker --pw s3cr3t!");
        assert_eq!(r.values, vec!["booker", "s3cr3t"]);
        assert_eq!(s.resolve("no refs").unwrap().values.len(), 0);
    }

    #[test]
    fn a_missing_secret_is_named() {
        let err = secrets(&[])
            .resolve("${secret:CLERK_TEST_NOT_SET_ANYWHERE}")
            .unwrap_err();
        assert_eq!(
            err,
            SecretError::Missing("CLERK_TEST_NOT_SET_ANYWHERE".into())
        );
        assert!(err.to_string().contains("secrets file"));
    }

    #[test]
    fn a_bot_resolves_only_what_it_declares() {
        // PATH is set in every environment; a bot that does not declare it
        // cannot read it through a reference.
        let all = secrets(&[("CLERK_TEST_ERP_PW", "s3cr3t")]);
        assert!(all.resolve("${secret:PATH}").is_ok());
        let bot = all.only(&["CLERK_TEST_ERP_PW".to_string()]);
        assert_eq!(
            bot.resolve("${secret:PATH}").unwrap_err(),
            SecretError::Undeclared("PATH".into())
        );
        assert_eq!(
            bot.resolve("pw=${secret:CLERK_TEST_ERP_PW}").unwrap().text,
            "pw=s3cr3t"
        );
        assert_eq!(
            referenced_names("a ${secret:A} b ${secret:B_2} ${secret:C"),
            vec!["A", "B_2"]
        );
    }

    #[test]
    fn malformed_references_are_reported() {
        assert!(check_references("plain ${secret:ERP_PW} text").is_ok());
        assert!(
            check_references("${secret:ERP PW}")
                .unwrap_err()
                .contains("letters, digits")
        );
        assert!(
            check_references("${secrt:ERP_PW}")
                .unwrap_err()
                .contains("${secret:NAME}")
        );
        assert!(
            check_references("${secret:ERP_PW")
                .unwrap_err()
                .contains("not closed")
        );
    }

    #[test]
    fn redaction_hides_every_value_longest_first() {
        let values = vec!["pw".to_string(), "pw-long".to_string(), String::new()];
        assert_eq!(
            redact("login pw-long then pw", &values),
            "login *** then ***"
        );
    }

    #[test]
    fn reads_a_secrets_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.env");
        std::fs::write(&path, "# ERP\nCLERK_TEST_FILE_PW = \"a=b\"\n\n").unwrap();
        let s = Secrets::with_file(&path).unwrap();
        assert_eq!(
            s.resolve("${secret:CLERK_TEST_FILE_PW}").unwrap().text,
            "a=b"
        );
        std::fs::write(&path, "oops\n").unwrap();
        let err = Secrets::with_file(&path).unwrap_err().to_string();
        assert!(err.ends_with("secrets.env:1: expected NAME=value"), "{err}");
    }
}
