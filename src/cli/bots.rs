//! `clerk bots`: validate bot files, list the bots, print the reference.

use std::path::Path;

use anyhow::bail;

use super::args::BotsCommand;
use super::{exit, output};
use crate::bot;

pub(super) fn bots(cmd: BotsCommand) -> anyhow::Result<u8> {
    match cmd {
        BotsCommand::Validate { dir, bots, json } => {
            let dir = dir.unwrap_or(bots.bots);
            if !dir.is_dir() {
                bail!("{} is not a folder", dir.display());
            }
            let report = bot::load_dir(&dir);
            let (polls, written): (Vec<_>, Vec<_>) =
                report.bots.iter().partition(|b| b.is_mailbox_poll());
            if json {
                let v = serde_json::json!({
                    "valid": written.iter().map(|b| &b.name).collect::<Vec<_>>(),
                    "mailbox_polls": polls.iter().map(|b| &b.name).collect::<Vec<_>>(),
                    "problems": report.diagnostics,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for d in &report.diagnostics {
                    println!("{d}");
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
                    "{} valid bot(s){polls}; {} problem(s) in {} file(s)",
                    written.len(),
                    report.diagnostics.len(),
                    files.len()
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
