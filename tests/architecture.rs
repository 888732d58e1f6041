//! The house rules of `src/`, checked on the code itself: the layers
//! `docs/architecture.md` draws (a module imports only from layers below
//! its own, so there is no import cycle), no source file over 800 lines
//! and no function over 120 lines outside tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 800;
const MAX_FUNCTION_LINES: usize = 120;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `layer N  module module …` lines of the architecture page, by module.
fn layers() -> BTreeMap<String, u32> {
    let page =
        std::fs::read_to_string(root().join("docs/architecture.md")).expect("docs/architecture.md");
    let mut layers = BTreeMap::new();
    for line in page.lines() {
        let Some(rest) = line.trim().strip_prefix("layer ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let Some(n) = words.next().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // The module names, up to the dots of the description.
        let names = words.take_while(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        for module in names {
            let previous = layers.insert(module.to_string(), n);
            assert!(previous.is_none(), "`{module}` is in two layers");
        }
    }
    assert!(!layers.is_empty(), "docs/architecture.md draws no layers");
    // A step kind's module sits with the other kinds: whatever the
    // registry names takes the layer of the kinds the page lists.
    let registry = std::fs::read_to_string(root().join("src/bot/kinds.rs")).expect("registry");
    let kinds: Vec<String> = registry
        .split("&crate::")
        .skip(1)
        .filter_map(|rest| rest.split("::").next())
        .map(str::to_string)
        .collect();
    if let Some(layer) = kinds.iter().find_map(|k| layers.get(k).copied()) {
        for kind in kinds {
            let at = *layers.entry(kind.clone()).or_insert(layer);
            assert_eq!(at, layer, "step kind `{kind}` is not in the kinds' layer");
        }
    }
    layers
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("readable folder").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Files that are test modules of their own (`#[cfg(test)] mod name;`).
fn test_files(files: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut tests = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(file).expect("readable source");
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.windows(2) {
            if pair[0].trim() != "#[cfg(test)]" {
                continue;
            }
            let Some(name) = pair[1]
                .trim()
                .strip_prefix("mod ")
                .and_then(|n| n.strip_suffix(';'))
            else {
                continue;
            };
            let dir = match file.file_name().and_then(|n| n.to_str()) {
                Some("mod.rs" | "lib.rs") => file.parent().map(Path::to_path_buf),
                _ => file.with_extension("").into(),
            };
            if let Some(dir) = dir {
                tests.insert(dir.join(format!("{name}.rs")));
                tests.insert(dir.join(name).join("mod.rs"));
            }
        }
    }
    tests
}

/// The code of a file that is not tests: up to its test module.
fn code_of(text: &str) -> &str {
    text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text)
}

/// The top-level module a file of `src/` belongs to.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_string())
}

/// The top-level modules a piece of code names as `crate::module`, with
/// comments left out.
fn imports(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or("");
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
            rest = after;
        }
        // `use crate::{a, b}` names several at once.
        if let Some(group) = line.split("crate::{").nth(1) {
            for part in group.split(['{', '}', ',']) {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        }
    }
    out
}

#[test]
fn modules_import_only_from_layers_below_their_own() {
    let layers = layers();
    let src = root().join("src");
    let mut problems = Vec::new();
    let mut modules = BTreeSet::new();
    let files = rust_files(&src);
    let tests = test_files(&files);
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        if module == "lib" || module == "main" {
            continue;
        }
        modules.insert(module.clone());
        let Some(&own) = layers.get(&module) else {
            problems.push(format!(
                "module `{module}` is in no layer of docs/architecture.md"
            ));
            continue;
        };
        if tests.contains(file) {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("readable source");
        for used in imports(code_of(&text)) {
            if used == module {
                continue;
            }
            match layers.get(&used) {
                Some(&layer) if layer < own => {}
                Some(&layer) => problems.push(format!(
                    "{} (`{module}`, layer {own}) imports `{used}` (layer {layer})",
                    file.strip_prefix(root()).unwrap_or(file).display()
                )),
                None => problems.push(format!(
                    "{} imports `{used}`, which is in no layer",
                    file.strip_prefix(root()).unwrap_or(file).display()
                )),
            }
        }
    }
    for listed in layers.keys() {
        if !modules.contains(listed) {
            problems.push(format!(
                "docs/architecture.md lists `{listed}`, which src/ does not have"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Each `fn` of a rustfmt-formatted file with a body, by name, with its
/// first line and length: the body ends at the `}` indented like the `fn`.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let signature = trimmed
            .trim_start_matches("pub ")
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub(super) ")
            .trim_start_matches("const ")
            .trim_start_matches("async ")
            .trim_start_matches("unsafe ");
        let Some(rest) = signature.strip_prefix("fn ") else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // The signature ends with `{` (a body) or `;` (a declaration).
        let Some(open) = (i..lines.len()).find(|&j| {
            let l = lines[j].trim_end();
            l.ends_with('{') || l.ends_with(';') || l.ends_with('}')
        }) else {
            continue;
        };
        if !lines[open].trim_end().ends_with('{') {
            continue;
        }
        let close = format!("{indent}}}");
        if let Some(end) = (open..lines.len()).find(|&j| lines[j] == close) {
            out.push((name, i + 1, end - i + 1));
        }
    }
    out
}

#[test]
fn no_file_or_function_outside_tests_is_too_long() {
    let src = root().join("src");
    let files = rust_files(&src);
    let tests = test_files(&files);
    let mut problems = Vec::new();
    for file in files.iter().filter(|f| !tests.contains(*f)) {
        let text = std::fs::read_to_string(file).expect("readable source");
        let code = code_of(&text);
        let shown = file.strip_prefix(root()).unwrap_or(file).display();
        let lines = code.lines().count();
        if lines > MAX_FILE_LINES {
            problems.push(format!(
                "{shown} has {lines} lines of code (at most {MAX_FILE_LINES})"
            ));
        }
        for (name, line, length) in functions(code) {
            if length > MAX_FUNCTION_LINES {
                problems.push(format!(
                    "{shown}:{line}: fn {name} has {length} lines (at most {MAX_FUNCTION_LINES})"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_rules_see_what_they_check() {
    let code = "use crate::jobs::JobDb;\nuse crate::{config, step::Step}; // crate::cli\n";
    let found = imports(code);
    assert_eq!(
        found,
        BTreeSet::from(["config".to_string(), "jobs".into(), "step".into()])
    );
    let text = "pub fn short() {\n    one();\n}\n\ntrait T {\n    fn declared(\n        &self,\n    ) -> u32;\n}\n    async fn inner(\n        x: u32,\n    ) -> u32 {\n        x\n    }\n";
    let fns = functions(text);
    assert_eq!(
        fns,
        vec![("short".to_string(), 1, 3), ("inner".to_string(), 10, 5)]
    );
}
