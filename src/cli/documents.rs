//! `clerk documents`: the document store.

use super::args::DocumentsCommand;
use super::exit;

pub(super) async fn documents(cmd: DocumentsCommand) -> anyhow::Result<u8> {
    match cmd {
        DocumentsCommand::Migrate { db, to, keep, json } => {
            let store = db.open().await?;
            let from = db.documents(&store)?;
            let target = to.open(&db.data_dir, &store).map_err(anyhow::Error::msg)?;
            if from.describe() == target.describe() {
                anyhow::bail!(
                    "the documents are {} already: give --to another store",
                    from.describe()
                );
            }
            let bar = super::parallel::spinner("{spinner} {msg} {elapsed}", !json);
            let done = crate::document_store::migrate(from.as_ref(), target.as_ref(), keep, |m| {
                bar.set_message(format!(
                    "{} copied, {} there already, {} removed",
                    m.copied, m.present, m.removed
                ));
                bar.tick();
            })
            .await;
            let done = done.map_err(anyhow::Error::msg)?;
            // Jobs queued before documents were kept in a store name a file
            // here; their documents go to the new store too.
            bar.set_message("documents of unfinished jobs that name a file");
            let (adopted, missing) =
                crate::document_store::adopt_job_files(store.as_ref(), target.as_ref())
                    .await
                    .map_err(anyhow::Error::msg)?;
            bar.finish_and_clear();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "from": from.describe(),
                        "to": target.describe(),
                        "copied": done.copied,
                        "present": done.present,
                        "removed": done.removed,
                        "bytes": done.bytes,
                        "from_job_files": adopted,
                        "jobs_without_their_file": missing,
                    })
                );
            } else {
                println!(
                    "copied {} documents ({}) from {} to {}; {} were there already; {} removed from {}",
                    done.copied,
                    super::output::bytes(done.bytes),
                    from.describe(),
                    target.describe(),
                    done.present,
                    done.removed,
                    from.describe()
                );
                if adopted > 0 {
                    println!(
                        "put {adopted} documents of unfinished jobs that named a file here into {}",
                        target.describe()
                    );
                }
            }
            if !missing.is_empty() {
                eprintln!(
                    "warning: {} unfinished jobs name a file that is gone or changed, and only this machine's workers could have read it: {:?}",
                    missing.len(),
                    missing
                );
            }
            Ok(exit::OK)
        }
    }
}
