//! What a bot file says of an `extract` step: its keys, their reference,
//! and how they become an [`ExtractStep`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::step::ExtractStep;
use crate::config::TableReader;
use crate::step::{Step, StepConfig, StepKind};

/// Config of an `extract` step.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractConfig {
    /// Folder of invoice2data templates, relative to the bot's folder.
    pub templates: PathBuf,
    /// Where the document's path is in the job document, as a dotted path:
    /// `input.file` (the default) or, say, `steps.fetch.path`.
    pub document: String,
}

impl StepConfig for ExtractConfig {
    fn build(&self, bot_dir: &Path) -> Result<Arc<dyn Step>, String> {
        Ok(Arc::new(ExtractStep::build(self, bot_dir)?))
    }
}

/// The `extract` kind, as the registry lists it.
pub struct ExtractKind;

const REFERENCE: &str = r#"Reads the job's document (a PDF or a scan), picks the template that
matches it and extracts its fields.

```toml
[[steps]]
name = "extract"
kind = "extract"
templates = "templates"
document = "input.file"
```

- `templates`: required, the folder of invoice2data templates (`.yml`,
  `.yaml`, `.json`, searched recursively), relative to the bot's folder.
  They are loaded when the bot loads: a broken one makes the bot invalid,
  with the template's file and field in `clerk bots validate`.
- `document`: optional, where the document's path is in the job, as a
  dotted path. Default: `"input.file"` (what folder and mailbox triggers
  give); `"steps.fetch.path"` takes it from an earlier step's output.

The step's output has `values` (field → value), `fields` (each with its
value, raw text, confidence, page, box, rule and reasons), `template` and
`review`. When a required field is missing, a value does not parse, a
validation fails or a field's confidence is below its minimum, the job
moves to `waiting_review` with the reasons (`clerk runs show` prints them)
and holds no worker; `clerk runs approve ID` lets it go on at the next
step. A document that cannot be read (damaged, password-protected, not a
PDF or image) fails the job at once with the file and the reason.
"#;

impl StepKind for ExtractKind {
    fn name(&self) -> &'static str {
        "extract"
    }

    fn reference(&self) -> &'static str {
        REFERENCE
    }

    fn read(&self, s: &mut TableReader<'_, '_>) -> Option<Arc<dyn StepConfig>> {
        let templates = s.required_with("templates", |t: String| Ok(PathBuf::from(t)));
        let document = s
            .optional::<String>("document")
            .unwrap_or_else(|| "input.file".to_string());
        Some(Arc::new(ExtractConfig {
            templates: templates?,
            document,
        }))
    }

    #[cfg(test)]
    fn contract(&self) -> crate::step::kind::contract::Cases {
        use crate::step::kind::contract::{Case, Cases};
        Cases {
            // Reading a degraded scan (OCR) takes longer than the contract
            // waits before it cancels.
            runs_until_stopped: Case {
                step: r#"kind = "extract"
templates = "{fixtures}/../bots/invoice-intake/templates""#,
                input: r#"{"file": "{fixtures}/scans/acme-office-degraded.pdf"}"#,
            },
            reports_a_secret: Err("an extract step is given no secret"),
            // A job without a document to read.
            business_error: Case::step(
                r#"kind = "extract"
templates = "{fixtures}/../bots/invoice-intake/templates""#,
            ),
        }
    }
}
