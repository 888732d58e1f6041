//! The job's document as a file: a job names its document by hash
//! (`input.sha256`); before its steps run, the worker copies the document
//! from the store into a folder of the job's own and gives the steps that
//! copy as `input.file`. The folder is removed when the attempt ends, how
//! ever it ends.

use std::path::PathBuf;

use serde_json::Value;

use crate::documents::store::{DocumentStore, is_sha256};
use crate::jobs::ClaimedJob;
use crate::step::StepError;

/// A job's scratch folder, removed when dropped.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    dir: Option<PathBuf>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take()
            && let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a job's scratch folder");
        }
    }
}

/// The input the job's steps see, and the scratch folder that holds its
/// document's copy. A job with no `sha256` (queued with a path alone,
/// through the API or the library) keeps its input as it is; one whose
/// document the store lacks keeps its `file` if that file is here (a job
/// queued before documents were kept in a store), and fails (to be
/// retried) otherwise. Either way the input names the document (`name`).
pub(super) async fn prepare(
    store: &dyn DocumentStore,
    root: &std::path::Path,
    job: &ClaimedJob,
) -> Result<(Value, Scratch), StepError> {
    let (input, scratch) = with_document(store, root, job).await?;
    Ok((with_name(input), scratch))
}

/// [`prepare`] but for the document's name.
async fn with_document(
    store: &dyn DocumentStore,
    root: &std::path::Path,
    job: &ClaimedJob,
) -> Result<(Value, Scratch), StepError> {
    let Some(sha256) = job.input.get("sha256").and_then(Value::as_str) else {
        return Ok((job.input.clone(), Scratch::default()));
    };
    let local = job
        .input
        .get("file")
        .and_then(Value::as_str)
        .map(PathBuf::from)
        .filter(|f| f.is_file());
    if !is_sha256(sha256) {
        return match local {
            Some(_) => Ok((job.input.clone(), Scratch::default())),
            None => Err(StepError::business(format!(
                "the job's input.sha256 {sha256:?} is not a SHA-256, and it names no file"
            ))),
        };
    }
    // Absolute: steps resolve relative paths against their bot's folder.
    let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    let dir = root.join(format!("job-{}-{}", job.id, job.attempt));
    let scratch = Scratch {
        dir: Some(dir.clone()),
    };
    let copy = crate::document_store::fetch_copy(store, sha256, &dir)
        .await
        .map_err(|e| StepError::transient(format!("cannot fetch the job's document: {e}")))?;
    let file = match (copy, local) {
        (Some(copy), _) => copy,
        (None, Some(local)) => local,
        (None, None) => {
            return Err(StepError::transient(format!(
                "the job's document {sha256} is not in the document store ({}): \
                 was it put into another store, or deleted by hand?",
                store.describe()
            )));
        }
    };
    let mut input = job.input.clone();
    if let Value::Object(map) = &mut input {
        map.insert("file".into(), Value::String(file.display().to_string()));
    }
    Ok((input, scratch))
}

/// The input with the document's `name` (what a mail or a message to a
/// person names it by, where its path means nothing) from its file's name
/// when the job's creator gave only the path.
fn with_name(mut input: Value) -> Value {
    if let Value::Object(map) = &mut input
        && !map.contains_key("name")
        && let Some(name) = map
            .get("file")
            .and_then(Value::as_str)
            .and_then(|f| std::path::Path::new(f).file_name())
    {
        let name = name.to_string_lossy().into_owned();
        map.insert("name".into(), Value::String(name));
    }
    input
}

/// Remove the scratch folders a worker killed before it could (SIGKILL,
/// a crash) left behind: those of attempts the job database no longer has
/// running. Folders of attempts still running are another process's on
/// the same data folder, and stay.
pub(super) async fn sweep(db: &dyn crate::jobs::JobStore, root: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((id, attempt)) = name
            .strip_prefix("job-")
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(id, attempt)| {
                Some((id.parse::<i64>().ok()?, attempt.parse::<i64>().ok()?))
            })
        else {
            continue;
        };
        let running = match db.job(id).await {
            Ok(Some(job)) => {
                job.summary.state == crate::jobs::JobState::Running
                    && job.summary.attempt == attempt
            }
            Ok(None) => false,
            Err(_) => continue,
        };
        if !running && let Err(e) = std::fs::remove_dir_all(entry.path()) {
            tracing::warn!(dir = %entry.path().display(), error = %e, "cannot remove a scratch folder left behind");
        }
    }
}
