//! Template choice: each template's keywords checked against the text as
//! its options prepare it, and the best match taken.

use super::text::prepare;
use super::{Template, TemplateCheck, template};

/// Check a template's keywords against the prepared text.
fn check(template: &Template, text: &str) -> TemplateCheck {
    // invoice2data 1.0 looks for a keyword as text, earlier versions as a
    // regex (templates such as `NL8152[.]54` rely on it): either counts.
    let found =
        |k: &template::Keyword| text.contains(&k.text) || k.regex.is_match(text).unwrap_or(false);
    let missing: Vec<String> = template
        .keywords
        .iter()
        .filter(|k| !found(k))
        .map(|k| k.text.clone())
        .collect();
    let excluded: Vec<String> = template
        .exclude_keywords
        .iter()
        .filter(|k| found(k))
        .map(|k| k.text.clone())
        .collect();
    TemplateCheck {
        template: template.file.clone(),
        issuer: template.issuer.clone(),
        priority: template.priority,
        matched: missing.is_empty() && excluded.is_empty(),
        missing_keywords: missing,
        excluded_by: excluded,
    }
}

/// The template that fits best, and how every template fared: the
/// matching one with the highest priority, the first by file name among
/// equals.
pub(super) fn choose<'t>(
    text: &str,
    templates: &'t [Template],
) -> (Option<&'t Template>, Vec<TemplateCheck>) {
    let checks: Vec<TemplateCheck> = templates
        .iter()
        .map(|t| check(t, &prepare(text, &t.options)))
        .collect();
    let best = templates
        .iter()
        .zip(&checks)
        .filter(|(_, c)| c.matched)
        .max_by(|(a, _), (b, _)| a.priority.cmp(&b.priority).then(b.file.cmp(&a.file)))
        .map(|(t, _)| t);
    (best, checks)
}
