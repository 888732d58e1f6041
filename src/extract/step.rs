//! The `extract` step: read the job's document, extract its fields with the
//! bot's templates, and hold the job for review when the result is not sure.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::kind::ExtractConfig;
use super::rules::{self, Hit, ReviewRule, RuleTest, lookup};
use super::{Template, extract_file, load_templates};
use crate::documents::ReadOptions;
use crate::step::{Step, StepContext, StepError, StepOutcome};

#[derive(Debug)]
pub struct ExtractStep {
    templates: Arc<Vec<Template>>,
    bot_dir: PathBuf,
    document: String,
    rules: Vec<ReviewRule>,
}

impl ExtractStep {
    /// Load the templates once; one that cannot be used is skipped with a
    /// warning naming its file and line (`clerk bots validate` lists it).
    pub fn build(config: &ExtractConfig, bot_dir: &Path) -> Result<Self, String> {
        let dir = bot_dir.join(&config.templates);
        if !dir.is_dir() {
            return Err(format!("templates folder {} does not exist", dir.display()));
        }
        let set = load_templates(&dir);
        // One template that cannot be used is skipped: the documents it
        // would have read go to review as unmatched; the others extract.
        for e in set.errors.iter().chain(&set.warnings) {
            tracing::warn!(template = %e, "template problem");
        }
        let templates = set.templates;
        if templates.is_empty() {
            return Err(match set.errors.first() {
                Some(e) => format!("no usable template in {}: {e}", dir.display()),
                None => format!("no templates (.yml, .yaml, .json) in {}", dir.display()),
            });
        }
        Ok(ExtractStep {
            templates: Arc::new(templates),
            bot_dir: bot_dir.to_path_buf(),
            document: config.document.clone(),
            rules: config.rules.clone(),
        })
    }
}

impl ExtractStep {
    /// The bot's review rules that hold for these values: why, and who may
    /// review.
    async fn rule_hits(
        &self,
        ctx: &StepContext,
        values: &Value,
        job: &Value,
    ) -> Result<Vec<Hit>, StepError> {
        let today = chrono::Utc::now().date_naive();
        let mut hits = rules::check(&self.rules, values, job, today);
        for rule in self.rules.iter().filter(|r| r.test == RuleTest::Unseen) {
            let seen = match rules::comparable(values.get(&rule.field)) {
                None => None,
                Some(value) => Some(
                    ctx.intake
                        .0
                        .value_seen(&ctx.bot, &ctx.step_name, &rule.field, &value, ctx.job_id)
                        .await
                        .map_err(|e| {
                            StepError::transient(format!(
                                "cannot look up earlier values of `{}`: {e}",
                                rule.field
                            ))
                        })?,
                ),
            };
            hits.extend(rules::unseen_hit(rule, seen));
        }
        Ok(hits)
    }
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
            // The hash names the document for a reviewer on any machine.
            let sha256 = std::fs::read(&file)
                .ok()
                .map(|bytes| crate::documents::store::sha256_hex(&bytes));
            extract_file(&file, &templates, &ReadOptions::default()).map(|e| (e, sha256))
        })
        .await
        .map_err(|e| StepError::transient(format!("the extraction task failed: {e}")))?;
        let (extraction, sha256) =
            result.map_err(|e| StepError::business(format!("{}: {e}", path.display())))?;
        let output = extraction.output(&path, sha256.as_deref());
        let hits = self.rule_hits(ctx, &output["values"], &job).await?;
        if !extraction.needs_review() && hits.is_empty() {
            return Ok(StepOutcome::Done(output));
        }
        let mut reasons = extraction.review;
        let mut review_by = Vec::new();
        for hit in hits {
            reasons.push(hit.reason);
            if let Some(who) = hit.review_by
                && !review_by.contains(&who)
            {
                review_by.push(who);
            }
        }
        Ok(StepOutcome::NeedsReview {
            output,
            reasons,
            review_by,
        })
    }
}
