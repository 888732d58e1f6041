//! Parsing and validating one `bot.toml`: the bot's own keys (name,
//! owners, `[retry]`, `[timeouts]`) and its `[[steps]]`, whose keys each
//! step kind reads for itself (`kinds`). Triggers are read in `triggers`.
//! Every problem is reported at once, each with its line and column; the
//! reference of every key is `clerk bots reference`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use super::{Bot, StepDecl, Timeouts, kinds, triggers};
use crate::config::{
    Diagnostic, Fraction, Positive, Problem, Sink, TableReader, one_of, positive, valid_name,
};
use crate::jobs::RetryPolicy;

/// The reference of a bot's own keys: the top level, `[retry]` and
/// `[timeouts]`.
pub const REFERENCE: &str = r#"A bot is a folder under `bots/` with a `bot.toml`. Durations are
strings with a unit, as in `"30s"`, `"10m"`, `"1h 30m"`. Names of bots and
steps start with a lowercase letter or digit, hold only `a-z`, `0-9`, `_`
and `-`, and are at most 64 characters long. Any key not listed here is an
error, and every problem in a file is reported at once, each with its line
and column (`clerk bots validate`).

```toml
name = "invoice-intake"
description = "Books invoices"
owners = ["ops@example.com"]
reviewers = ["ap@example.com"]
secrets = ["ERP_PASSWORD"]
concurrency = 2
review_within = "4h"
review_by = "accounts-payable"

[retry]
max_attempts = 5
backoff = "10s"

[timeouts]
step = "10m"
job = "1h"
```

## Top level

- `name`: required. The bot's name; jobs refer to their bot by it.
- `description`: optional text, default empty.
- `owners`: optional array of mail addresses (`a@b.example` or
  `Name <a@b.example>`); mailed when a job fails or goes dead (with
  `[notify]`). Mailbox poll bots mail them too, when a mailbox cannot be
  read.
- `reviewers`: optional array of mail addresses; mailed, in batches, when
  jobs wait for review. Needs `[notify]`.
- `secrets`: optional array of names; the secrets the bot's
  `${secret:NAME}` references may name (see "Secrets"). A reference to a
  name not listed is an error.
- `concurrency`: optional positive integer; at most this many jobs of the
  bot run at once, across all workers. Default: no limit.
- `review_within`: optional duration > 0. A job that has waited for review
  this long is overdue: the review queue marks it, and `owners` and
  `reviewers` are mailed once (with `[notify]`).
- `dedupe`: optional, `message` (default) or `content`. With `message`, a
  document is taken once per message it comes in and once per folder it
  is dropped into; with `content`, once for the bot whichever trigger
  brings it (mailed and dropped, or mailed twice), by its SHA-256.
- `review_by`: optional; who may review this bot's documents: a role
  (`reviewer`, `operator`, `admin`: that role or a higher one) or the name
  of a group of users (`clerk users add NAME --group G`). Default: anyone
  who may review. A review rule's own `review_by` takes its place for the
  documents the rule holds for.

## `[retry]`: how a job is retried after a transient failure

- `max_attempts`: integer >= 1, default 5. Attempts that may end in a
  transient error before the job is dead.
- `backoff`: duration > 0, default `"10s"`. Delay before the second
  attempt; it doubles with each further attempt.
- `backoff_cap`: duration, not shorter than `backoff`, default `"1h"`. No
  delay is longer than this.
- `jitter`: number from 0 to 1, default 0.2. Fraction of the delay added or
  taken at random, so jobs that failed together do not return together.
- `max_lost`: integer >= 1, default 3. Attempts whose worker vanished
  before the job is dead.

## `[timeouts]`

- `step`: duration > 0, default `"10m"`. Time limit of a step that sets no
  `timeout` of its own.
- `job`: optional duration > 0. Time limit of all steps of one attempt.
"#;

/// The reference of the keys every `[[steps]]` table has.
pub const STEPS_REFERENCE: &str = r#"What a job does, in order; a bot has at least one step. Every step has:

- `name`: required, unique within the bot. Later steps read this step's
  output by it.
- `kind`: required; one of the kinds below.
- `timeout`: optional duration > 0; overrides `[timeouts] step`.

The other keys belong to the step's kind.
"#;

/// Parse and validate one manifest. On failure, every problem found is
/// returned, not only the first, sorted by position.
pub fn parse_manifest(file: &Path, source: &str) -> Result<Bot, Vec<Diagnostic>> {
    let root = match DeTable::parse(source) {
        Ok(root) => root,
        // The parser stops at the first syntax error; what follows it cannot
        // be trusted, so this is the only diagnostic.
        Err(e) => {
            let message = format!("invalid TOML: {}", e.message().trim_end());
            let diag = match e.span() {
                Some(span) => Diagnostic::at(file, source, span.start, message),
                None => Diagnostic::file(file, message),
            };
            return Err(vec![diag]);
        }
    };
    let sink = Sink::new(file, source);
    let bot = read_bot(&sink, root.get_ref(), file);
    let mut diags = sink.into_diagnostics();
    match bot {
        Some(bot) if diags.is_empty() => Ok(bot),
        _ => {
            // Every path that yields no bot records why; this only guards
            // against returning an empty error list should one forget to.
            if diags.is_empty() {
                diags.push(Diagnostic::file(file, "invalid manifest"));
            }
            diags.sort_by_key(|d| (d.line, d.column));
            Err(diags)
        }
    }
}

fn read_bot(sink: &Sink, root: &DeTable, file: &Path) -> Option<Bot> {
    let mut top = TableReader::root(sink, root);
    let name = top.required_with("name", valid_name);
    let description = top.optional::<String>("description").unwrap_or_default();
    let owners = top.optional_with("owners", addresses);
    let secrets = top
        .optional_with("secrets", secret_names)
        .unwrap_or_default();
    undeclared_secrets(sink, root, &secrets);
    let reviewers = top.optional_with("reviewers", addresses);
    let notify = top.table("notify").map(crate::mail::notify::read_config);
    if notify.is_none()
        && let Some(at) = top.span_of("reviewers")
    {
        sink.error(
            at.start,
            "reviewers are mailed through the server a `[notify]` table names, and this bot has none".into(),
            Some("add `[notify]` with `host` and `from`".into()),
        );
    }
    let concurrency = top.optional::<Positive>("concurrency").map(|p| p.0);
    let review_within = top.optional_or("review_within", None, |d| positive(d).map(Some));
    let review_by = top.optional_with("review_by", valid_name);
    let dedupe = top
        .optional_with("dedupe", |text: String| {
            crate::jobs::Dedupe::parse(&text).ok_or_else(|| {
                Problem::new(format!("`dedupe` is `message` or `content`, not `{text}`"))
            })
        })
        .unwrap_or_default();
    let retry = top
        .table("retry")
        .map_or_else(RetryPolicy::default, read_retry);
    let timeouts = top
        .table("timeouts")
        .map_or_else(Timeouts::default, read_timeouts);
    let triggers = triggers::read_triggers(sink, top.array_of_tables("triggers", "trigger"));
    let steps = match top.array_of_tables("steps", "step") {
        Some(readers) if readers.is_empty() => {
            let at = top.span_of("steps").map_or(0, |s| s.start);
            sink.error(at, "a bot needs at least one step".into(), None);
            Vec::new()
        }
        Some(readers) => read_steps(sink, readers),
        None => {
            if !top.has("steps") {
                sink.file_error("a bot needs at least one step: add a `[[steps]]` table".into());
            }
            Vec::new()
        }
    };
    top.finish();

    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = name?;
    let notify = match notify {
        Some(config) => Some(config?),
        None => None,
    };
    let mut runners = Vec::with_capacity(steps.len());
    for step in &steps {
        match step.config.build(&dir) {
            Ok(runner) => runners.push(runner),
            Err(e) => sink.file_error(format!("step `{}`: {e}", step.name)),
        }
    }
    if runners.len() != steps.len() {
        return None;
    }
    Some(Bot {
        name,
        description,
        file: file.to_path_buf(),
        dir,
        owners: owners.unwrap_or_default(),
        reviewers: reviewers.unwrap_or_default(),
        notify,
        secrets,
        triggers,
        retry,
        timeouts,
        concurrency,
        review_within: review_within?,
        review_by,
        dedupe,
        steps,
        runners,
    })
}

/// A list of mail addresses (`a@b.example` or `Name <a@b.example>`).
fn addresses(list: Vec<String>) -> Result<Vec<String>, Problem> {
    for one in &list {
        if let Err(e) = one.trim().parse::<lettre::message::Mailbox>() {
            return Err(Problem::new(format!("`{one}` is not a mail address: {e}")));
        }
    }
    Ok(list)
}

/// The names in `secrets = [...]`: well formed, each once.
fn secret_names(list: Vec<String>) -> Result<Vec<String>, Problem> {
    let mut seen = std::collections::BTreeSet::new();
    for name in &list {
        crate::config::secrets::check_references(&format!("${{secret:{name}}}"))
            .map_err(Problem::new)?;
        if !seen.insert(name) {
            return Err(Problem::new(format!("`{name}` is listed twice")));
        }
    }
    Ok(list)
}

/// Report every `${secret:NAME}` anywhere in the file whose name the bot
/// does not declare, at the string that holds it.
fn undeclared_secrets(sink: &Sink, root: &DeTable, declared: &[String]) {
    fn walk(sink: &Sink, value: &toml::Spanned<DeValue>, declared: &[String]) {
        match value.get_ref() {
            DeValue::String(text) => {
                for name in crate::config::secrets::referenced_names(text) {
                    if !declared.iter().any(|d| d == name) {
                        sink.error(
                            value.span().start,
                            format!("secret `{name}` is used but not declared"),
                            Some(format!(
                                "list it at the top of the file: `secrets = [\"{name}\"]`"
                            )),
                        );
                    }
                }
            }
            DeValue::Array(items) => items.iter().for_each(|v| walk(sink, v, declared)),
            DeValue::Table(table) => table.values().for_each(|v| walk(sink, v, declared)),
            _ => {}
        }
    }
    root.values().for_each(|v| walk(sink, v, declared));
}

fn read_retry(mut r: TableReader) -> RetryPolicy {
    let d = RetryPolicy::default();
    let max_attempts = r
        .optional::<Positive>("max_attempts")
        .map_or(d.max_attempts, |p| p.0);
    // `None` here means "given but invalid", already reported; the order
    // check below only compares values that are valid.
    let backoff = r.optional_or("backoff", d.backoff, positive);
    let backoff_cap = r.optional_or("backoff_cap", d.backoff_cap, positive);
    let jitter = r.optional::<Fraction>("jitter").map_or(d.jitter, |f| f.0);
    let max_lost = r
        .optional::<Positive>("max_lost")
        .map_or(d.max_lost, |p| p.0);
    if let (Some(backoff), Some(cap)) = (backoff, backoff_cap)
        && cap < backoff
    {
        // Point at the cap if it is written down, else at the backoff that
        // outgrew the default cap.
        let at = r.span_of("backoff_cap").or_else(|| r.span_of("backoff"));
        r.sink().error(
            at.map_or(0, |s| s.start),
            format!(
                "`retry.backoff_cap` ({}) must not be shorter than `retry.backoff` ({})",
                humantime::format_duration(cap),
                humantime::format_duration(backoff)
            ),
            None,
        );
    }
    r.finish();
    RetryPolicy {
        max_attempts,
        backoff: backoff.unwrap_or(d.backoff),
        backoff_cap: backoff_cap.unwrap_or(d.backoff_cap),
        jitter,
        max_lost,
    }
}

fn read_timeouts(mut r: TableReader) -> Timeouts {
    let d = Timeouts::default();
    let step = r.optional_with("step", positive).unwrap_or(d.step);
    let job = r.optional_with("job", positive);
    r.finish();
    Timeouts { step, job }
}

fn read_steps(sink: &Sink, readers: Vec<TableReader>) -> Vec<StepDecl> {
    let mut first_at: HashMap<String, usize> = HashMap::new();
    let mut steps = Vec::new();
    for reader in readers {
        let Some((step, at)) = read_step(reader) else {
            continue;
        };
        // Later steps read outputs by step name, so names must be unique.
        if let Some(&first) = first_at.get(&step.name) {
            sink.error(
                at,
                format!("step name `{}` is used twice", step.name),
                Some(format!("the other is at line {}", sink.line(first))),
            );
            continue;
        }
        first_at.insert(step.name.clone(), at);
        steps.push(step);
    }
    steps
}

/// One step and where its name is.
fn read_step(mut s: TableReader) -> Option<(StepDecl, usize)> {
    let name = s.required_with("name", valid_name);
    if let Some(name) = &name {
        s.set_suffix(format!(" in step `{name}`"));
    }
    let at = s.span_of("name").map_or_else(|| s.start(), |s| s.start);
    let kind = s.required_with("kind", |k: String| one_of(&k, &kinds::choices()));
    let timeout = s.optional_with("timeout", positive);
    let Some(kind) = kind else {
        // Without a kind there is no telling which keys belong.
        return None;
    };
    let config = kind.read(&mut s);
    s.finish();
    let decl = StepDecl {
        name: name?,
        kind: kind.name(),
        timeout,
        config: config?,
    };
    Some((decl, at))
}
