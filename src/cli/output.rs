//! Human-readable output of the CLI. `--json` output is the serde form of
//! the `jobs` types instead.

use chrono::{TimeZone, Utc};

use crate::bot::{Bot, BotRegistry};
use crate::jobs::{JobDetail, JobSummary};

/// `2026-11-22 06:30:00.123Z`
pub(super) fn time(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn took(from: i64, to: Option<i64>) -> String {
    match to {
        Some(to) => format!("{:.3}s", (to - from) as f64 / 1000.0),
        None => "…".into(),
    }
}

fn one_line(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// The reasons of a job's review, as its step wrote them.
pub(super) fn review_reasons(review: Option<&serde_json::Value>) -> Vec<String> {
    review
        .and_then(|r| r.get("reasons"))
        .and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| {
                    x.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| x.to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `reasons`: why each job waiting for review waits, by id.
pub(super) fn print_list(jobs: &[JobSummary], reasons: &std::collections::HashMap<i64, String>) {
    if jobs.is_empty() {
        println!("no jobs");
        return;
    }
    println!(
        "{:>8}  {:<20} {:<15} {:>7}  {:<24} {:<9} ERROR OR REVIEW REASON",
        "ID", "BOT", "STATE", "ATTEMPT", "CREATED", "TOOK"
    );
    for j in jobs {
        let why = match reasons.get(&j.id) {
            Some(r) => Some(r.as_str()),
            None => j.last_error.as_deref(),
        };
        println!(
            "{:>8}  {:<20} {:<15} {:>7}  {:<24} {:<9} {}",
            j.id,
            one_line(&j.bot, 20),
            j.state.as_str(),
            j.attempt,
            time(j.created_at),
            j.started_at
                .map(|s| took(s, j.finished_at))
                .unwrap_or_default(),
            why.map(|e| one_line(e, 80)).unwrap_or_default()
        );
    }
}

pub(super) fn print_outcome(d: &JobDetail) {
    let s = &d.summary;
    print!("job {} ({}) {}", s.id, s.bot, s.state);
    if let (Some(a), Some(b)) = (s.started_at, s.finished_at) {
        print!(" after {} attempt(s) in {}", s.attempt, took(a, Some(b)));
    }
    println!();
    if let Some(e) = &s.last_error
        && !matches!(s.state, crate::jobs::JobState::Succeeded)
    {
        println!("error: {e}");
    }
    if let Some(r) = &d.review {
        println!("review: {r}");
    }
    if let Some(o) = &d.output {
        println!(
            "output: {}",
            serde_json::to_string_pretty(o).unwrap_or_default()
        );
    }
}

/// The fields of the last extract step that ran, if any.
fn extracted_fields(d: &JobDetail) -> Option<&serde_json::Map<String, serde_json::Value>> {
    d.attempts
        .iter()
        .rev()
        .flat_map(|a| a.steps.iter().rev())
        .find_map(|st| st.output.as_ref()?.get("fields")?.as_object())
}

pub(super) use crate::extract::as_text as text;

/// A table row as `column=value` pairs.
pub(super) fn row_cells(row: &serde_json::Value) -> String {
    match row.as_object() {
        Some(cells) => cells
            .iter()
            .map(|(k, v)| format!("{k}={}", text(v)))
            .collect::<Vec<_>>()
            .join("  "),
        None => text(row),
    }
}

/// Each field's value and confidence with its reasons; with `verbose`,
/// the rule, page and box it was read from and the checks it passed.
fn print_fields(fields: &serde_json::Map<String, serde_json::Value>, verbose: bool) {
    println!("  values");
    for (name, f) in fields {
        let confidence = f["confidence"].as_f64().unwrap_or(0.0);
        match f["value"].as_array() {
            Some(rows) => {
                println!(
                    "    {name:<18} {:<32} {confidence:.2}",
                    format!("{} rows", rows.len())
                );
                for row in rows {
                    println!("        {}", one_line(&row_cells(row), 160));
                }
            }
            None => println!(
                "    {name:<18} {:<32} {confidence:.2}",
                one_line(&text(&f["value"]), 60)
            ),
        }
        for r in f["reasons"].as_array().into_iter().flatten() {
            println!("        why low: {}", text(r));
        }
        if verbose {
            println!("        rule: {}", text(&f["rule"]));
            if let (Some(page), Some(b)) = (f.get("page"), f.get("bbox")) {
                println!("        page {page}, box {b}");
            }
            for c in f["confirmed"].as_array().into_iter().flatten() {
                println!("        confirmed: {}", text(c));
            }
        }
    }
}

/// `clerk runs show`: why the job waits and what it read first, then its
/// attempts and audit trail.
pub(super) fn print_detail(d: &JobDetail, verbose: bool) {
    let s = &d.summary;
    println!("job {}  bot {}  {}", s.id, s.bot, s.state);
    let reasons = review_reasons(d.review.as_ref());
    if !reasons.is_empty() {
        println!("  waits for review because");
        for r in &reasons {
            println!("    - {r}");
        }
    }
    let fields = extracted_fields(d);
    if let Some(fields) = fields {
        print_fields(fields, verbose);
    }
    println!("  created   {} by {}", time(s.created_at), d.created_by);
    if let Some(k) = &s.idempotency_key {
        println!("  key       {k}");
    }
    if s.state == crate::jobs::JobState::Queued && s.attempt > 0 {
        println!("  next run  {}", time(s.run_after));
    }
    println!(
        "  attempts  {} (transient errors {} of {}, lost {} of {})",
        s.attempt, d.errors, d.max_attempts, d.lost, d.max_lost
    );
    if let Some(w) = &d.worker {
        println!("  worker    {w}");
    }
    if d.cancel_requested {
        println!("  cancel    requested");
    }
    println!("  input     {}", one_line(&d.input.to_string(), 200));
    if let Some(e) = &s.last_error {
        println!("  error     {}", one_line(e, 200));
    }
    if let Some(r) = d.review.as_ref().filter(|_| reasons.is_empty()) {
        println!("  review    {}", one_line(&r.to_string(), 200));
    }
    if let Some(o) = &d.output {
        println!("  output    {}", one_line(&o.to_string(), 200));
    }
    for a in &d.attempts {
        println!(
            "  attempt {}  {}  {} → {} ({})  by {}",
            a.attempt,
            a.outcome.as_deref().unwrap_or("running"),
            time(a.started_at),
            a.finished_at.map(time).unwrap_or_else(|| "…".into()),
            took(a.started_at, a.finished_at),
            a.worker
        );
        if let Some(e) = &a.error {
            println!("      error: {}", one_line(e, 200));
        }
        for st in &a.steps {
            println!(
                "    step {} {:<16} {:<14} {}",
                st.index,
                st.name,
                st.outcome.as_str(),
                took(st.started_at, Some(st.finished_at))
            );
            if let Some(e) = &st.error {
                println!("        error:  {}", one_line(e, 200));
            }
            // A failed step's output holds only the evidence it kept.
            let kept = st
                .error
                .as_ref()
                .and(st.output.as_ref())
                .and_then(|o| o.get("artifacts"))
                .and_then(|a| a.as_array());
            match (kept, &st.output) {
                (Some(files), _) => {
                    for f in files {
                        println!("        kept:   {}", f.as_str().unwrap_or_default());
                    }
                }
                (None, Some(o)) if verbose => println!(
                    "        output: {}",
                    serde_json::to_string_pretty(o)
                        .unwrap_or_default()
                        .replace('\n', "\n        ")
                ),
                (None, Some(o)) if o.get("fields").is_some() => {
                    println!(
                        "        output: the values above (--full for rules, boxes and the rest)"
                    )
                }
                (None, Some(o)) => println!("        output: {}", one_line(&o.to_string(), 200)),
                (None, None) => {}
            }
        }
    }
    println!("  events");
    for e in &d.events {
        println!(
            "    {}  {:<14} → {:<14} {} ({})",
            time(e.at),
            e.from_state.as_deref().unwrap_or("-"),
            e.to_state,
            one_line(&e.reason, 120),
            e.actor
        );
    }
}

pub(super) fn bot_json(b: &Bot) -> serde_json::Value {
    serde_json::json!({
        "name": b.name,
        "description": b.description,
        "file": b.file,
        "triggers": b.triggers.iter().map(|t| t.describe()).collect::<Vec<_>>(),
        "steps": b.steps.iter().zip(&b.runners)
            .map(|(s, r)| serde_json::json!({ "name": s.name, "kind": r.kind() }))
            .collect::<Vec<_>>(),
        "concurrency": b.concurrency,
        "max_attempts": b.retry.max_attempts,
    })
}

pub(super) fn print_bots(registry: &BotRegistry) {
    if registry.is_empty() {
        println!("no valid bots");
        return;
    }
    for b in registry.iter() {
        println!("{}  {}", b.name, b.description);
        for t in &b.triggers {
            println!("    trigger  {}", t.describe());
        }
        let steps: Vec<String> = b
            .steps
            .iter()
            .zip(&b.runners)
            .map(|(s, r)| format!("{} ({})", s.name, r.kind()))
            .collect();
        println!("    steps    {}", steps.join(" → "));
    }
}

pub(super) fn print_reviews(items: &[crate::jobs::ReviewItem]) {
    if items.is_empty() {
        println!("nothing waits for review");
        return;
    }
    let now = crate::jobs::now_ms();
    println!(
        "{:>8}  {:<20} {:<28} {:>9}  {:<12} WHY",
        "JOB", "BOT", "DOCUMENT", "WAITING", "HELD BY"
    );
    for i in items {
        let held = i
            .claimed_by
            .as_deref()
            .filter(|_| i.claimed_until.is_some_and(|u| u > now))
            .unwrap_or("");
        let late = if i.due_at.is_some_and(|d| d <= now) {
            "OVERDUE "
        } else {
            ""
        };
        let by = if i.review_by.is_empty() {
            String::new()
        } else {
            format!("[for {}] ", i.review_by.join(", "))
        };
        println!(
            "{:>8}  {:<20} {:<28} {:>8}m  {:<12} {late}{by}{}",
            i.job_id,
            one_line(&i.bot, 20),
            one_line(i.document.as_deref().unwrap_or("-"), 28),
            (now - i.waiting_since).max(0) / 60_000,
            one_line(held, 12),
            one_line(&i.reasons.join("; "), 100)
        );
    }
}

pub(super) fn print_review(r: &crate::jobs::Review, view: &crate::review::ReviewView) {
    let i = &r.item;
    println!(
        "job {}  bot {}  step {}  version {}",
        i.job_id, i.bot, i.step, i.version
    );
    println!("  document  {}", i.document.as_deref().unwrap_or("-"));
    println!("  template  {}", view.issuer.as_deref().unwrap_or("none"));
    for reason in &i.reasons {
        println!("  why       {}", one_line(reason, 120));
    }
    if let Some(by) = &i.claimed_by {
        println!(
            "  held by   {by} until {}",
            i.claimed_until.map(time).unwrap_or_default()
        );
    }
    println!("  fields (the unsure first)");
    for f in &view.fields {
        let value = match &f.value {
            serde_json::Value::Null => "(none)".to_string(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        println!(
            "    {:<20} {:<32} {:>4.0} %{}{}",
            f.name,
            one_line(&value, 32),
            f.confidence * 100.0,
            if f.required { "  required" } else { "" },
            if f.corrected { "  corrected" } else { "" }
        );
        for reason in &f.reasons {
            println!("        {}", one_line(reason, 110));
        }
    }
    if let Some(lines) = &view.lines {
        println!("  line items: {} row(s)", lines.len());
    }
    if view.failures.is_empty() {
        println!("  checks    all pass");
    } else {
        for f in &view.failures {
            println!("  fails     {}", one_line(&f.problem, 120));
        }
    }
}

/// A size as people read it: `512 B`, `3.4 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut size = n as f64 / 1024.0;
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < UNITS.len() {
        size /= 1024.0;
        unit += 1;
    }
    format!("{size:.1} {}", UNITS[unit])
}
