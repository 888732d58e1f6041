//! The `extract` step: read the job's document, extract its fields with the
//! bot's templates, and hold the job for review when the result is not sure.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::kind::ExtractConfig;
use super::{Template, extract_file, load_templates};
use crate::documents::ReadOptions;
use crate::step::{Step, StepContext, StepError, StepOutcome};

#[derive(Debug)]
pub struct ExtractStep {
    templates: Arc<Vec<Template>>,
    bot_dir: PathBuf,
    document: String,
}

impl ExtractStep {
    /// Load the templates once; a broken one makes the bot invalid, with
    /// the template's file and field named.
    pub fn build(config: &ExtractConfig, bot_dir: &Path) -> Result<Self, String> {
        let dir = bot_dir.join(&config.templates);
        if !dir.is_dir() {
            return Err(format!("templates folder {} does not exist", dir.display()));
        }
        let (templates, errors) = load_templates(&dir);
        if !errors.is_empty() {
            return Err(errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "));
        }
        if templates.is_empty() {
            return Err(format!(
                "no templates (.yml, .yaml, .json) in {}",
                dir.display()
            ));
        }
        Ok(ExtractStep {
            templates: Arc::new(templates),
            bot_dir: bot_dir.to_path_buf(),
            document: config.document.clone(),
        })
    }
}

/// Follow a dotted path through a JSON document.
fn lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, key| v.get(key))
}

#[async_trait]
impl Step for ExtractStep {
    fn kind(&self) -> &'static str {
        "extract"
    }

    async fn run(&self, ctx: &StepContext) -> Result<StepOutcome, StepError> {
        let job = ctx.document();
        let path = lookup(&job, &self.document).and_then(Value::as_str).ok_or_else(|| {
            StepError::business(format!(
                "the job has no document path at `{}`; run it with --input '{{\"file\": \"invoice.pdf\"}}'",
                self.document
            ))
        })?;
        let path = if Path::new(path).is_absolute() {
            PathBuf::from(path)
        } else {
            self.bot_dir.join(path)
        };
        let templates = self.templates.clone();
        let file = path.clone();
        // Reading and matching are CPU work: off the async threads.
        let result = tokio::task::spawn_blocking(move || {
            extract_file(&file, &templates, &ReadOptions::default())
        })
        .await
        .map_err(|e| StepError::transient(format!("the extraction task failed: {e}")))?;
        let extraction =
            result.map_err(|e| StepError::business(format!("{}: {e}", path.display())))?;
        let output = extraction.output(&path);
        if extraction.needs_review() {
            Ok(StepOutcome::NeedsReview {
                output,
                reasons: extraction.review,
            })
        } else {
            Ok(StepOutcome::Done(output))
        }
    }
}
