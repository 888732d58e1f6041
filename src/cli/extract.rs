//! `clerk extract`: documents in, fields with confidences out.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::args::ExtractArgs;
use super::exit;
use super::output::{row_cells, text};
use crate::documents::ReadOptions;
use crate::extract::template::find_files;
use crate::extract::{Extraction, Template, extract_file, load_templates};

/// The result for one input file, as printed with `--json`.
#[derive(Debug, Serialize)]
struct Outcome {
    file: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    extraction: Option<Extraction>,
}

fn collect_inputs(inputs: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let (found, _unreadable) = find_files(input, |x| {
                ["pdf", "png", "jpg", "jpeg", "tif", "tiff"]
                    .iter()
                    .any(|e| x.eq_ignore_ascii_case(e))
            });
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    files.sort();
    files
}

fn run_one(file: &Path, templates: &[Template], options: &ReadOptions) -> Outcome {
    match extract_file(file, templates, options) {
        Ok(extraction) => Outcome {
            file: file.to_path_buf(),
            error: None,
            extraction: Some(extraction),
        },
        Err(e) => Outcome {
            file: file.to_path_buf(),
            error: Some(e.to_string()),
            extraction: None,
        },
    }
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn print_text(o: &Outcome, explain: bool) {
    println!("{}", o.file.display());
    if let Some(e) = &o.error {
        println!("  error: {e}");
        return;
    }
    let Some(x) = &o.extraction else { return };
    match &x.template {
        Some(t) => println!("  template  {}", t.display()),
        None => println!("  template  none matched"),
    }
    if explain {
        for c in &x.checks {
            let why = if c.matched {
                format!("matched (priority {})", c.priority)
            } else {
                let mut parts = Vec::new();
                if !c.missing_keywords.is_empty() {
                    parts.push(format!(
                        "missing keywords: {}",
                        c.missing_keywords.join(", ")
                    ));
                }
                if !c.excluded_by.is_empty() {
                    parts.push(format!("excluded by: {}", c.excluded_by.join(", ")));
                }
                parts.join("; ")
            };
            println!("    {}  {why}", c.template.display());
        }
    }
    for (name, f) in &x.fields {
        match f.value.as_array() {
            // A table: its size on the field's line, then a row per line.
            Some(rows) => {
                let size = format!("{} rows", rows.len());
                println!("  {name:<16} {size:<28} {:.2}", f.confidence);
                for row in rows {
                    println!("      {}", row_cells(row));
                }
            }
            None => println!("  {name:<16} {:<28} {:.2}", text(&f.value), f.confidence),
        }
        if explain {
            println!("      rule: {}", f.rule);
            if let Some(raw) = &f.raw {
                println!("      text: {raw:?}");
            }
        }
        for r in &f.reasons {
            println!("      why low: {r}");
        }
        if explain {
            for c in &f.confirmed {
                println!("      confirmed: {c}");
            }
            for l in &f.lines_not_read {
                println!("      line {l}");
            }
        }
    }
    if explain {
        for (name, why) in &x.unmatched {
            println!("  {name:<16} {:<28} {why}", "(no value)");
        }
        for v in &x.validations {
            match &v.problem {
                Some(p) => println!("  check  {}: {} ({p})", v.check, v.result),
                None => println!("  check  {}: {}", v.check, v.result),
            }
        }
    }
    for r in &x.review {
        println!("  review: {r}");
    }
}

pub(super) fn extract_documents(args: ExtractArgs) -> anyhow::Result<u8> {
    let set = load_templates(&args.templates);
    // A template that cannot be used is skipped with a warning; the exit
    // code says how the documents went (`clerk templates check` lists
    // every problem).
    for e in &set.errors {
        eprintln!("warning: template skipped: {e}");
    }
    if !set.warnings.is_empty() {
        eprintln!(
            "warning: {} problem(s) in templates that are used; see `clerk templates check {}`",
            set.warnings.len(),
            args.templates.display()
        );
    }
    let templates = set.templates;
    if templates.is_empty() {
        eprintln!("error: no usable templates in {}", args.templates.display());
        return Ok(exit::USAGE);
    }
    let files = collect_inputs(&args.inputs);
    if files.is_empty() {
        eprintln!("error: no PDFs or scans (PNG, JPEG, TIFF) in the given inputs");
        return Ok(exit::USAGE);
    }
    let progress = super::parallel::progress_bar(files.len());
    let options = ReadOptions {
        ocr_languages: crate::documents::ocr::tesseract_languages(&args.languages),
        ..ReadOptions::default()
    };
    let outcomes: Vec<Outcome> = super::parallel::for_each_document(
        &files,
        args.threads,
        &options,
        &progress,
        |file, options| run_one(file, &templates, options),
    )
    .into_iter()
    .zip(&files)
    .map(|(outcome, file)| {
        outcome.unwrap_or_else(|| Outcome {
            file: file.clone(),
            error: Some("the reader thread failed".into()),
            extraction: None,
        })
    })
    .collect();
    progress.finish_and_clear();

    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcomes)?);
    } else if args.csv {
        let mut names: Vec<String> = outcomes
            .iter()
            .filter_map(|o| o.extraction.as_ref())
            .flat_map(|x| x.fields.keys().cloned())
            .collect();
        names.sort();
        names.dedup();
        let mut header = vec![
            "file".to_string(),
            "template".into(),
            "error".into(),
            "review".into(),
        ];
        header.extend(names.iter().cloned());
        println!(
            "{}",
            header
                .iter()
                .map(|h| csv_cell(h))
                .collect::<Vec<_>>()
                .join(",")
        );
        for o in &outcomes {
            let x = o.extraction.as_ref();
            let mut row = vec![
                o.file.display().to_string(),
                x.and_then(|x| x.template.as_ref())
                    .map(|t| t.display().to_string())
                    .unwrap_or_default(),
                o.error.clone().unwrap_or_default(),
                x.map(|x| x.review.join("; ")).unwrap_or_default(),
            ];
            for n in &names {
                row.push(
                    x.and_then(|x| x.fields.get(n))
                        .map(|f| text(&f.value))
                        .unwrap_or_default(),
                );
            }
            println!(
                "{}",
                row.iter()
                    .map(|c| csv_cell(c))
                    .collect::<Vec<_>>()
                    .join(",")
            );
        }
    } else {
        for o in &outcomes {
            print_text(o, args.explain);
        }
    }
    let failed = outcomes.iter().any(|o| o.error.is_some());
    let review = outcomes
        .iter()
        .any(|o| o.extraction.as_ref().is_some_and(Extraction::needs_review));
    Ok(if failed {
        exit::ERROR
    } else if review {
        exit::JOB_IN_REVIEW
    } else {
        exit::OK
    })
}
