//! `clerk bots`: validate bot files, list the bots, print the reference,
//! pause and resume a bot's work on every node.

use std::path::Path;

use anyhow::bail;

use clap::Args;

use super::args::{BotsCommand, BotsFolder, Database};
use super::{exit, output, whoami};
use crate::bot;

pub(super) async fn bots(cmd: BotsCommand) -> anyhow::Result<u8> {
    match cmd {
        BotsCommand::Pause(args) => pause(args, true).await,
        BotsCommand::Resume(args) => pause(args, false).await,
        BotsCommand::Validate { dir, bots, json } => {
            let dir = dir.unwrap_or(bots.bots);
            if !dir.is_dir() {
                bail!("{} is not a folder", dir.display());
            }
            let mut report = bot::load_dir(&dir);
            // Templates are checked as strictly as bot files: every problem
            // of every template an extract step reads.
            let folders: std::collections::BTreeSet<_> = report
                .bots
                .iter()
                .flat_map(|b| b.template_folders())
                .collect();
            for folder in folders {
                let set = crate::extract::load_templates(&folder);
                report.diagnostics.extend(set.errors);
                report.diagnostics.extend(set.warnings);
            }
            let (polls, written): (Vec<_>, Vec<_>) =
                report.bots.iter().partition(|b| b.is_mailbox_poll());
            if json {
                let v = serde_json::json!({
                    "valid": written.iter().map(|b| &b.name).collect::<Vec<_>>(),
                    "mailbox_polls": polls.iter().map(|b| &b.name).collect::<Vec<_>>(),
                    "problems": report.diagnostics,
                    "warnings": report.warnings,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for d in &report.diagnostics {
                    println!("{d}");
                }
                for w in &report.warnings {
                    println!("warning: {w}");
                }
                let files: std::collections::BTreeSet<&Path> = report
                    .diagnostics
                    .iter()
                    .map(|d| d.file.as_path())
                    .collect();
                let polls = match polls.len() {
                    0 => String::new(),
                    n => format!(" (with {n} mailbox poll bot(s) of their triggers)"),
                };
                println!(
                    "{} valid bot(s){polls}; {} problem(s) in {} file(s); {} warning(s)",
                    written.len(),
                    report.diagnostics.len(),
                    files.len(),
                    report.warnings.len()
                );
            }
            Ok(if report.diagnostics.is_empty() {
                exit::OK
            } else {
                exit::USAGE
            })
        }
        BotsCommand::Reference => {
            print!("{}", bot::reference::markdown());
            Ok(exit::OK)
        }
        BotsCommand::List { bots, json } => {
            let registry = bots.load();
            if json {
                let list: Vec<_> = registry.iter().map(|b| output::bot_json(b)).collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                output::print_bots(&registry);
            }
            Ok(exit::OK)
        }
    }
}

#[derive(Debug, Args)]
pub struct PauseArgs {
    /// Name of the bot.
    pub bot: String,
    /// Why, for the bot's history and the pages.
    #[arg(long, default_value = "paused by hand")]
    pub reason: String,
    #[command(flatten)]
    pub db: Database,
    #[command(flatten)]
    pub bots: BotsFolder,
}

/// `clerk bots pause` (`pause = true`) and `clerk bots resume`.
pub(super) async fn pause(args: PauseArgs, pause: bool) -> anyhow::Result<u8> {
    let registry = args.bots.load();
    if registry.get(&args.bot).is_none_or(|b| b.is_mailbox_poll()) {
        let names: Vec<&str> = registry
            .iter()
            .filter(|b| !b.is_mailbox_poll())
            .map(|b| b.name.as_str())
            .collect();
        eprintln!(
            "error: no bot `{}` in {}; the bots are: {}",
            args.bot,
            args.bots.bots.display(),
            names.join(", ")
        );
        return Ok(exit::USAGE);
    }
    let db = args.db.open().await?;
    let actor = format!("cli:{}", whoami());
    let changed = if pause {
        db.pause_bot(&args.bot, &actor, &args.reason).await?
    } else {
        db.resume_bot(&args.bot, &actor, &args.reason).await?
    };
    match (pause, changed) {
        (true, true) => println!(
            "{} paused: its triggers do not fire and its queued jobs wait; running jobs finish",
            args.bot
        ),
        (true, false) => println!("{} was paused already", args.bot),
        (false, true) => println!("{} resumed", args.bot),
        (false, false) => println!("{} was not paused", args.bot),
    }
    Ok(exit::OK)
}
