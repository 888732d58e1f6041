//! Where a path made from job data may lead.
//!
//! A bot file may name any file it likes: its author chose it. A path with
//! `{{…}}` placeholders is different: part of it comes from the job (an
//! invoice number, a mail's attachment name), and `../../etc/shadow` must
//! not become an attachment. Such a path must lead, after `..` and
//! symbolic links are followed, into the bot's folder, or be the job's own
//! document (`input.file`, which intake writes and a job's creator gives).

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The file `rendered` names, from the bot file's `written` text, relative
/// to `bot_dir`; an error naming the path when it does not exist or leads
/// where a templated path may not.
pub fn file_for_step(
    written: &str,
    rendered: &str,
    bot_dir: &Path,
    input: &Value,
) -> Result<PathBuf, String> {
    let path = bot_dir.join(rendered);
    let real = path
        .canonicalize()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !real.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    if !written.contains("{{") {
        return Ok(real);
    }
    let inside_bot = bot_dir
        .canonicalize()
        .is_ok_and(|dir| real.starts_with(dir));
    let the_document = input
        .get("file")
        .and_then(Value::as_str)
        .and_then(|f| bot_dir.join(f).canonicalize().ok())
        .is_some_and(|doc| doc == real);
    if inside_bot || the_document {
        Ok(real)
    } else {
        Err(format!(
            "`{written}` made the path {}, which is outside the bot's folder and is not the job's document",
            path.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templated_paths_stay_in_the_bot_folder_or_on_the_document() {
        let root = tempfile::tempdir().unwrap();
        let bot = root.path().join("bots/b");
        std::fs::create_dir_all(bot.join("received")).unwrap();
        std::fs::write(bot.join("received/inv.pdf"), "%PDF").unwrap();
        std::fs::write(root.path().join("secret.txt"), "x").unwrap();
        std::fs::write(root.path().join("given.pdf"), "%PDF").unwrap();
        std::os::unix::fs::symlink(root.path().join("secret.txt"), bot.join("link.pdf")).unwrap();
        let given = root.path().join("given.pdf");
        let input = serde_json::json!({"file": given});

        let ok = |written: &str, rendered: &str| file_for_step(written, rendered, &bot, &input);
        assert!(ok("received/{{name}}", "received/inv.pdf").is_ok());
        assert!(ok("{{input.file}}", given.to_str().unwrap()).is_ok());
        // The bot author may name any file; data may not lead out.
        assert!(ok("../../secret.txt", "../../secret.txt").is_ok());
        let out = ok("received/{{name}}", "received/../../../secret.txt").unwrap_err();
        assert!(out.contains("outside the bot's folder"), "{out}");
        assert!(ok("{{name}}", "link.pdf").unwrap_err().contains("outside"));
        assert!(ok("{{name}}", "/etc/passwd").is_err());
        assert!(
            ok("{{name}}", "missing.pdf")
                .unwrap_err()
                .contains("missing.pdf")
        );
    }
}
