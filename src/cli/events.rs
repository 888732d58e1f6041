//! `clerk events export`: the job log for process mining.

use clap::{Args, Subcommand, ValueEnum};

use super::args::{BotsFolder, Database};
use super::exit;
use crate::eventlog::{self, Log};
use crate::jobs::now_ms;
use crate::stats::Period;

/// Jobs read from the database at a time.
const PAGE: u32 = 1000;

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Write the job log as an OCEL 2.0 object-centric event log (JSON or
    /// SQLite) or a flat CSV (case, activity, start, end, resource,
    /// automated) for process-mining tools.
    Export(ExportArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// OCEL 2.0 JSON.
    #[value(name = "ocel2-json")]
    Ocel2Json,
    /// OCEL 2.0 SQLite (needs --output).
    #[value(name = "ocel2-sqlite")]
    Ocel2Sqlite,
    /// One row per activity of a case.
    Csv,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub db: Database,
    #[command(flatten)]
    pub bots: BotsFolder,
    /// ocel2-json, ocel2-sqlite (needs --output) or csv (one row per
    /// activity of a case).
    #[arg(long, value_enum)]
    pub format: LogFormat,
    /// First day of the jobs' creation (YYYY-MM-DD, UTC).
    #[arg(long, value_name = "DATE")]
    pub from: Option<chrono::NaiveDate>,
    /// Last day, included (default: today).
    #[arg(long, value_name = "DATE")]
    pub to: Option<chrono::NaiveDate>,
    /// Days back when --from is not given.
    #[arg(long, default_value_t = 30)]
    pub days: i64,
    /// Write here (default: standard output; SQLite needs a file).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
}

pub(super) async fn events(cmd: EventsCommand) -> anyhow::Result<u8> {
    let EventsCommand::Export(args) = cmd;
    let period = match Period::between(args.from, args.to, args.days, now_ms()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit::USAGE);
        }
    };
    if matches!(args.format, LogFormat::Ocel2Sqlite) && args.output.is_none() {
        eprintln!("error: an OCEL 2.0 SQLite log needs --output FILE");
        return Ok(exit::USAGE);
    }
    let db = args.db.open().await?;
    let registry = args.bots.load();
    let kind_of = |bot: &str, step: &str| {
        registry
            .get(bot)
            .and_then(|b| b.steps.iter().find(|s| s.name == step))
            .map(|s| s.kind.to_string())
    };
    let (from, to) = period.millis();
    let bar = super::parallel::spinner("{spinner} {pos} jobs read {per_sec}", true);
    let mut log = Log::default();
    let mut after = 0;
    loop {
        let page = db.job_details(from, to, after, PAGE).await?;
        for d in &page {
            log.add(d, &kind_of);
        }
        bar.inc(page.len() as u64);
        match page.last() {
            Some(last) if page.len() as u32 == PAGE => after = last.summary.id,
            _ => break,
        }
    }
    bar.finish_and_clear();
    log.sorted();
    let (events, objects) = (log.events.len(), log.objects.len());
    match (args.format, &args.output) {
        (LogFormat::Ocel2Sqlite, Some(out)) => {
            eventlog::write_ocel_sqlite(&log, out)
                .await
                .map_err(anyhow::Error::msg)?;
        }
        (format, out) => {
            let text = match format {
                LogFormat::Csv => eventlog::flat_csv(&log),
                _ => serde_json::to_string_pretty(&eventlog::ocel_json(&log))?,
            };
            match out {
                Some(out) => std::fs::write(out, text)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?,
                None => print!("{text}"),
            }
        }
    }
    eprintln!("{events} events of {objects} objects exported");
    Ok(exit::OK)
}
