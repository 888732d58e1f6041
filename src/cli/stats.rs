//! `clerk stats`: the dashboard's figures in the terminal.

use clap::Args;

use super::args::{BotsFolder, Database};
use super::exit;
use crate::jobs::{Ending, now_ms};
use crate::stats::{self, BotFigures, Durations, Period};

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub db: Database,
    #[command(flatten)]
    pub bots: BotsFolder,
    /// First day of the period (YYYY-MM-DD, UTC).
    #[arg(long, value_name = "DATE")]
    pub from: Option<chrono::NaiveDate>,
    /// Last day of the period, included (default: today).
    #[arg(long, value_name = "DATE")]
    pub to: Option<chrono::NaiveDate>,
    /// Length of the period in days when --from is not given.
    #[arg(long, default_value_t = 7)]
    pub days: i64,
    /// Only this bot.
    #[arg(long)]
    pub bot: Option<String>,
    /// Print the figures as JSON (overall, and per bot).
    #[arg(long)]
    pub json: bool,
}

pub(super) async fn stats(args: StatsArgs) -> anyhow::Result<u8> {
    let now = now_ms();
    let period = match Period::between(args.from, args.to, args.days, now) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit::USAGE);
        }
    };
    let db = args.db.open().await?;
    let known: Vec<String> = args.bots.load().iter().map(|b| b.name.clone()).collect();
    let overview = stats::overview(db.as_ref(), period, args.bot.as_deref(), &known, now).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&overview)?);
        return Ok(exit::OK);
    }
    println!("{} to {} (UTC)", overview.from, overview.to);
    println!();
    print_table(&overview.bots, &overview.overall, args.bot.is_none());
    print_failures(&overview.overall);
    Ok(exit::OK)
}

fn percent(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{:.1}%", r * 100.0))
}

/// A duration as people read it: `850ms`, `12.4s`, `3m 10s`, `2h 05m`.
pub(super) fn seconds(s: Option<f64>) -> String {
    let Some(s) = s else {
        return "-".into();
    };
    if s < 1.0 {
        format!("{:.0}ms", s * 1000.0)
    } else if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m {:02}s", (s / 60.0) as i64, (s % 60.0) as i64)
    } else if s < 86_400.0 {
        format!(
            "{}h {:02}m",
            (s / 3600.0) as i64,
            ((s % 3600.0) / 60.0) as i64
        )
    } else {
        format!(
            "{}d {:02}h",
            (s / 86_400.0) as i64,
            ((s % 86_400.0) / 3600.0) as i64
        )
    }
}

fn p50_p95(d: &Durations) -> String {
    format!("{} / {}", seconds(d.p50_seconds), seconds(d.p95_seconds))
}

fn print_table(bots: &[BotFigures], overall: &BotFigures, with_total: bool) {
    let header = [
        "BOT",
        "IN",
        "DONE",
        "STP",
        "EXCEPT",
        "BUSINESS",
        "RETRIES",
        "DEAD",
        "REJECTED",
        "CYCLE p50/p95",
        "QUEUE p50",
        "RUN p50",
        "REVIEW p50",
        "BACKLOG",
        "OLDEST",
    ];
    let row = |b: &BotFigures| -> Vec<String> {
        let f = &b.figures;
        vec![
            b.bot.clone(),
            f.documents_in.to_string(),
            f.finished.to_string(),
            percent(f.straight_through_rate),
            percent(f.exception_rate),
            percent(f.rate_of(Ending::Business)),
            percent(f.rate_of(Ending::TransientExhausted)),
            percent(f.rate_of(Ending::Dead)),
            percent(f.rate_of(Ending::Rejected)),
            p50_p95(&f.cycle),
            seconds(f.queue_wait.p50_seconds),
            seconds(f.run.p50_seconds),
            seconds(f.review_wait.p50_seconds),
            b.now.review_backlog.to_string(),
            seconds(b.now.oldest_review_age_seconds),
        ]
    };
    let mut rows: Vec<Vec<String>> = bots.iter().map(row).collect();
    if with_total {
        rows.push(row(overall));
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain(std::iter::once(header[i].len()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 0 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(header.iter().map(|s| s.to_string()).collect());
    for r in rows {
        line(r);
    }
    println!();
    println!(
        "IN: jobs created; DONE: finished (cancelled apart); STP: straight through, no person; \
         rates are of DONE; cycle: intake to done of jobs that succeeded"
    );
}

fn print_failures(overall: &BotFigures) {
    let failures = &overall.figures.top_failures;
    if failures.is_empty() {
        return;
    }
    println!();
    println!("Top failure reasons:");
    for r in failures {
        let examples: Vec<String> = r.examples.iter().map(|id| format!("#{id}")).collect();
        println!(
            "  {:>5}  {}  ({}; e.g. {})",
            r.count,
            r.message,
            r.ending.as_deref().unwrap_or("-"),
            examples.join(", ")
        );
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ReportFormat {
    /// One self-contained file with its charts.
    Html,
    Json,
    /// One row per bot and one for all.
    Csv,
    /// The HTML printed by headless Chromium.
    Pdf,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub db: Database,
    #[command(flatten)]
    pub bots: BotsFolder,
    /// First day of the period (YYYY-MM-DD, UTC).
    #[arg(long, value_name = "DATE")]
    pub from: Option<chrono::NaiveDate>,
    /// Last day of the period, included (default: today).
    #[arg(long, value_name = "DATE")]
    pub to: Option<chrono::NaiveDate>,
    /// Length of the period in days when --from is not given.
    #[arg(long, default_value_t = 30)]
    pub days: i64,
    /// Only this bot.
    #[arg(long)]
    pub bot: Option<String>,
    /// html (one file with its charts), json, csv (a row per bot) or pdf
    /// (printed by headless Chromium; needs --output).
    #[arg(long, value_enum, default_value = "html")]
    pub format: ReportFormat,
    /// Write the report here (default: standard output; a PDF needs a file).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
}

/// `clerk report`: the process-health report of a period, against the
/// period before.
pub(super) async fn report(args: ReportArgs) -> anyhow::Result<u8> {
    let now = now_ms();
    let period = match Period::between(args.from, args.to, args.days, now) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit::USAGE);
        }
    };
    if matches!(args.format, ReportFormat::Pdf) && args.output.is_none() {
        eprintln!("error: a PDF report needs --output FILE");
        return Ok(exit::USAGE);
    }
    let db = args.db.open().await?;
    let known: Vec<String> = args.bots.load().iter().map(|b| b.name.clone()).collect();
    let report =
        stats::report::report(db.as_ref(), period, args.bot.as_deref(), &known, now).await?;
    let text = match args.format {
        ReportFormat::Json => report.json(),
        ReportFormat::Csv => report.csv(),
        ReportFormat::Html | ReportFormat::Pdf => report.html(),
    };
    match (args.format, &args.output) {
        (ReportFormat::Pdf, Some(out)) => {
            crate::browser::print_to_pdf(&text, out).map_err(anyhow::Error::msg)?;
            eprintln!(
                "report of {} to {} written to {}",
                report.current.from,
                report.current.to,
                out.display()
            );
        }
        (_, Some(out)) => {
            std::fs::write(out, text)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
            eprintln!(
                "report of {} to {} written to {}",
                report.current.from,
                report.current.to,
                out.display()
            );
        }
        (_, None) => print!("{text}"),
    }
    Ok(exit::OK)
}
