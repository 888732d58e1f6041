//! Templates as a user writes and loads them: invoice2data's own built-in
//! set read with invoice2data's meaning, a broken template skipped with a
//! warning while the others extract, and every mistake in a template
//! reported at its file, line and column.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn clerk() -> Command {
    Command::new(env!("CARGO_BIN_EXE_clerk"))
}

/// The built-in templates of the invoice2data package `scripts/setup.sh`
/// installs into a private virtualenv.
fn invoice2data_templates() -> PathBuf {
    let python = root().join(".venv-invoice2data/bin/python");
    assert!(
        python.exists(),
        "{} is missing; scripts/setup.sh installs invoice2data there",
        python.display()
    );
    let out = Command::new(python)
        .args([
            "-c",
            "import invoice2data.extract, pathlib; print(pathlib.Path(invoice2data.extract.__file__).parent / 'templates')",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn name(path: &Value) -> String {
    Path::new(path.as_str().unwrap())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn invoice2datas_own_templates_load_with_their_meaning() {
    let dir = invoice2data_templates();
    let out = clerk()
        .args(["templates", "check", "--json"])
        .arg(&dir)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let files = report["files"].as_u64().unwrap();
    let usable = report["usable"].as_array().unwrap().len();
    println!("invoice2data's built-in templates: {usable} of {files} load");
    for e in report["errors"].as_array().unwrap() {
        println!("  skipped {}: {}", name(&e["file"]), e["message"]);
    }
    assert_eq!(files, 215);
    // The two that do not load fail in invoice2data too: a top-level
    // `lines` given as a list, and a regex with an unclosed parenthesis.
    let skipped: Vec<String> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(name)
        .collect();
    assert_eq!(skipped, ["nl.blokker.yml", "nl.gulf.yml"], "{report:#}");
    let errors = report["errors"].to_string();
    assert!(
        errors.contains("the top-level `lines` must be a mapping"),
        "{errors}"
    );
    assert!(errors.contains("bad regex `(BTW type`"), "{errors}");
    assert_eq!(usable, 213);
    // Keys invoice2data ignores are warnings with their place, not errors.
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("unknown key `country_code`"),
        "{warnings}"
    );
    assert_eq!(out.status.code(), Some(2));
}

/// The example bot's templates, in a folder of their own, with `extra`
/// files added.
fn templates_with(extra: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(root().join("bots/invoice-intake/templates")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
    }
    for (file, text) in extra {
        std::fs::write(dir.path().join(file), text).unwrap();
    }
    dir
}

#[test]
fn a_bad_template_is_skipped_with_a_warning_while_the_others_extract() {
    let dir = templates_with(&[(
        "zz-broken.yml",
        "issuer: Broken Ltd\nkeywords: [Broken Ltd]\nfields:\n  amount: 'Total (\\d+'\n",
    )]);
    let out = clerk()
        .args(["extract", "--json", "-t"])
        .arg(dir.path())
        .arg(root().join("fixtures/invoices"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let broken = dir.path().join("zz-broken.yml");
    assert!(
        stderr.contains(&format!(
            "warning: template skipped: {}:4:22: field `amount`: bad regex",
            broken.display()
        )),
        "{stderr}"
    );
    let results: Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = results.as_array().unwrap();
    assert!(results.len() >= 20, "{}", results.len());
    for r in results {
        assert!(r["error"].is_null(), "{r:#}");
        assert!(r["template"].is_string(), "{r:#}");
        assert!(r["fields"]["amount"]["value"].is_number(), "{r:#}");
    }
    // The exit code says how the documents went: all straight through.
    let review = results
        .iter()
        .any(|r| !r["review"].as_array().unwrap().is_empty());
    assert_eq!(
        out.status.code(),
        Some(if review { 4 } else { 0 }),
        "{stderr}"
    );
}

#[test]
fn templates_check_lists_every_problem_at_its_place() {
    let typos = "issuer: Typo GmbH
keywords: [Typo GmbH]
required_fields: [invoice_number, ammount_tax]
fields:
  invoice_number: 'Nr\\.\\s+(\\S+)'
  amount_tax:
    parser: regex
    regex: 'MwSt\\s+(\\S+)'
    tpye: float
  date:
    parser: regex
    regex: 'Datum\\s+(\\d+.\\d+.\\d+'
    type: date
validation:
  - rule: sum
    fields: [amount_untaxed, ammount_tax]
    equals: amount
";
    let unquoted = "issuer: Colon AG\nkeywords: [Colon AG]\nfields:\n  amount:\n    parser: regex\n    regex: Total: (\\d+)\n";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("typos.yml"), typos).unwrap();
    std::fs::write(dir.path().join("unquoted.yml"), unquoted).unwrap();
    let out = clerk()
        .args(["templates", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let typos = dir.path().join("typos.yml").display().to_string();
    let unquoted = dir.path().join("unquoted.yml").display().to_string();
    for expected in [
        format!(
            "warning: {typos}:9:5: unknown key `tpye`: it has no effect (did you mean `type`?)"
        ),
        format!(
            "warning: {typos}:3:35: required field `ammount_tax` is produced by no rule: every document would go to review (did you mean `amount_tax`?)"
        ),
        format!(
            "warning: {typos}:15:9: validation #1 uses `ammount_tax`, which no rule produces: the check never runs (did you mean `amount_tax`?)"
        ),
        // The column of the character that fails: the end of the pattern.
        format!(
            "error: {typos}:12:33: field `date`: bad regex `Datum\\s+(\\d+.\\d+.\\d+`: Opening parenthesis without closing parenthesis at its end"
        ),
        format!(
            "error: {unquoted}:6:17: invalid YAML: mapping values are not allowed in this context (a value containing `: ` must be quoted, e.g. regex: 'Total: (\\d+)')"
        ),
        "0 of 2 template(s) usable; 2 skipped for 2 error(s); 5 warning(s)".to_string(),
    ] {
        assert!(text.contains(&expected), "expected\n{expected}\nin\n{text}");
    }
    assert_eq!(out.status.code(), Some(2));

    // `clerk bots validate` reports the templates its bots read.
    let bots = tempfile::tempdir().unwrap();
    let bot = bots.path().join("invoice-intake");
    std::fs::create_dir_all(bot.join("templates")).unwrap();
    std::fs::copy(
        root().join("bots/invoice-intake/bot.toml"),
        bot.join("bot.toml"),
    )
    .unwrap();
    for f in std::fs::read_dir(root().join("bots/invoice-intake/templates")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, bot.join("templates").join(f.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        bot.join("templates/typos.yml"),
        std::fs::read(dir.path().join("typos.yml")).unwrap(),
    )
    .unwrap();
    let out = clerk()
        .args(["bots", "validate"])
        .arg(bots.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("typos.yml:9:5: unknown key `tpye`"), "{text}");
    assert!(
        text.contains("typos.yml:12:33: field `date`: bad regex"),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(2), "{text}");
}
