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
    /// When a person reviews the document although extraction is sure.
    pub rules: Vec<super::rules::ReviewRule>,
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
  They are loaded when the bot loads; one that cannot be used is skipped
  with a warning naming its file, line and column while the others work,
  and `clerk bots validate` lists every problem of every template (a
  folder with no usable template makes the bot invalid). The format is in
  docs/templates.md.
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

A document can need a person although extraction is sure of it. Each
`[[steps.review_if]]` under an extract step is one such rule:

```toml
[[steps.review_if]]
field = "amount"
above = 10000
reason = "Invoices over 10,000 need a controller's look"
review_by = "controllers"

[[steps.review_if]]
field = "issuer"
unseen = true
reason = "A vendor we have not booked before"

[[steps.review_if]]
field = "date"
outside = "-45d..0d"
reason = "Dated outside the open period"

[[steps.review_if]]
field = "amount"
differs_from = "input.po_total"
reason = "The total does not match the purchase order"
```

- `field`: required, the name of an extracted field.
- exactly one test: `above = N` or `below = N` (a number, compared with
  the field's number); `unseen = true` (no earlier job of the bot that
  finished had this value in this field; text is compared without case
  and surrounding spaces); `outside = "FROM..TO"` (a date before FROM or
  after TO; each end is a date `2026-11-01`, days from the day the job runs
  `-45d`, or left out: `"2026-11-01.."`); `differs_from = "PATH"` (the
  value differs from the one at this dotted path of the job, as
  `input.po_total` or `steps.lookup.total`; numbers are compared to the
  cent, text without case and surrounding spaces).
- `reason`: required, what the reviewer is shown.
- `review_by`: optional, who may review documents this rule holds for: a
  role (`reviewer`, `operator`, `admin`: that role or a higher one) or the
  name of a group of users (`clerk users add NAME --group G`). Without it,
  the bot's `review_by`, else anyone who may review.

When a rule cannot be checked because the field has no value (or the
value is not a number or date where one is needed), the document goes to
review all the same, saying so. A rule only adds reasons: a document
extraction is unsure of waits for review whatever the rules say.
"#;

impl StepKind for ExtractKind {
    fn name(&self) -> &'static str {
        "extract"
    }

    /// Scans are read with tesseract: a worker without it would fail every
    /// scanned document.
    fn available(&self) -> Result<(), String> {
        crate::documents::ocr::available().map_err(|e| e.to_string())
    }

    /// A template that reads scans in other languages than English needs
    /// their OCR data here; a worker without it would fail those scans.
    fn can_run(&self, config: &dyn StepConfig, bot_dir: &Path) -> Result<(), String> {
        let Some(config) = config.downcast_ref::<ExtractConfig>() else {
            return Ok(());
        };
        let set = super::load_templates(&bot_dir.join(&config.templates));
        let mut asked: Vec<String> = set
            .templates
            .iter()
            .filter(|t| !t.options.languages.is_empty())
            .map(|t| crate::documents::ocr::tesseract_languages(&t.options.languages))
            .collect();
        asked.sort_unstable();
        asked.dedup();
        let missing: Vec<String> = asked
            .iter()
            .filter_map(|l| crate::documents::ocr::languages_available(l).err())
            .map(|e| e.to_string())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "its templates read scans in languages this machine lacks: {}",
                missing.join("; ")
            ))
        }
    }

    fn reference(&self) -> &'static str {
        REFERENCE
    }

    fn read(&self, s: &mut TableReader<'_, '_>) -> Option<Arc<dyn StepConfig>> {
        let templates = s.required_with("templates", |t: String| Ok(PathBuf::from(t)));
        let document = s
            .optional::<String>("document")
            .unwrap_or_else(|| "input.file".to_string());
        let rules = super::rules::read_rules(s);
        Some(Arc::new(ExtractConfig {
            templates: templates?,
            document,
            rules: rules?,
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
