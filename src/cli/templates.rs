//! `clerk templates check`: every problem of every template in a folder,
//! at its file, line and column.

use std::path::PathBuf;

use clap::Subcommand;

use super::exit;
use crate::extract::load_templates;

#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// Check a folder of templates (searched recursively) as strictly as
    /// bot files: YAML and regex errors, unknown keys (with the closest
    /// known one), names in `required_fields` or validations that no rule
    /// produces. Prints every problem as FILE:LINE:COLUMN; exits 2 when
    /// there is any. A template with an error is skipped by `clerk extract`
    /// and by workers; one with only warnings is used.
    Check {
        /// Folder of templates (.yml, .yaml, .json), or one template file.
        dir: PathBuf,
        /// Print the usable and the skipped templates and every problem as
        /// JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn templates(cmd: TemplatesCommand) -> anyhow::Result<u8> {
    let TemplatesCommand::Check { dir, json } = cmd;
    if !dir.exists() {
        anyhow::bail!("{} does not exist", dir.display());
    }
    let set = load_templates(&dir);
    let skipped = set.skipped();
    if json {
        let v = serde_json::json!({
            "files": set.files,
            "usable": set.templates.iter().map(|t| &t.file).collect::<Vec<_>>(),
            "skipped": skipped,
            "errors": set.errors,
            "warnings": set.warnings,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for e in &set.errors {
            println!("error: {e}");
        }
        for w in &set.warnings {
            println!("warning: {w}");
        }
        println!(
            "{} of {} template(s) usable; {} skipped for {} error(s); {} warning(s)",
            set.templates.len(),
            set.files,
            skipped.len(),
            set.errors.len(),
            set.warnings.len()
        );
    }
    Ok(if set.errors.is_empty() && set.warnings.is_empty() {
        exit::OK
    } else {
        exit::USAGE
    })
}
