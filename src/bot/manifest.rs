//! Parsing and validating one `bot.toml`.
//!
//! # The manifest format
//!
//! ```toml
//! name = "invoice-intake"          # required
//! description = "Books invoices"   # optional
//! owners = ["ops@example.com"]     # optional
//! reviewers = ["ap@example.com"]   # optional; needs [notify]
//! concurrency = 2                  # optional
//!
//! [notify]                         # optional
//! host = "smtp.example.com"
//! from = "clerk@example.com"
//! review_every = "10m"
//!
//! [retry]                          # optional
//! max_attempts = 5
//! backoff = "10s"
//! backoff_cap = "1h"
//! jitter = 0.2
//! max_lost = 3
//!
//! [timeouts]                       # optional
//! step = "10m"
//! job = "1h"
//!
//! [[triggers]]                     # zero or more
//! kind = "cron"
//! schedule = "0 30 6 * * Mon-Fri"
//! timezone = "Europe/Berlin"
//! catch_up = "once"
//! name = "morning"
//! input = { folder = "in" }
//!
//! [[steps]]                        # one or more
//! name = "fetch"
//! kind = "command"
//! timeout = "2m"
//! argv = ["./fetch.sh", "--since", "yesterday"]
//! env = { API_URL = "http://127.0.0.1:8080" }
//! workdir = "work"
//! failure = "transient"
//! ```
//!
//! Durations are strings with a unit, as in `"30s"`, `"10m"`, `"1h 30m"`.
//! Names of bots and steps start with a lowercase letter or digit, hold only
//! `a-z`, `0-9`, `_` and `-`, and are at most 64 characters long.
//!
//! ## Top level
//!
//! - `name`: required. The bot's name; jobs refer to their bot by it.
//! - `description`: optional text, default empty.
//! - `owners`: optional array of mail addresses; mailed when a job fails or
//!   goes dead (if the bot has `[notify]`). Mailbox poll bots mail them too,
//!   when a mailbox cannot be read.
//! - `reviewers`: optional array of mail addresses; mailed when jobs wait for
//!   review, in batches. Needs `[notify]`.
//! - `concurrency`: optional positive integer; at most this many jobs of the
//!   bot run at once, across all workers. Default: no limit.
//!
//! ## `[retry]`: how a job is retried after a transient failure
//!
//! - `max_attempts`: integer >= 1, default 5. Attempts that may end in a
//!   transient error before the job is dead.
//! - `backoff`: duration > 0, default `"10s"`. Delay before the second
//!   attempt; it doubles with each further attempt.
//! - `backoff_cap`: duration, not shorter than `backoff`, default `"1h"`. No
//!   delay is longer than this.
//! - `jitter`: number from 0 to 1, default 0.2. Fraction of the delay added or
//!   taken at random.
//! - `max_lost`: integer >= 1, default 3. Attempts whose worker vanished before
//!   the job is dead.
//!
//! ## `[timeouts]`
//!
//! - `step`: duration > 0, default `"10m"`. Time limit of a step that sets no
//!   `timeout` of its own.
//! - `job`: optional duration > 0. Time limit of all steps of one attempt.
//!
//! ## `[notify]`: how owners and reviewers are mailed
//!
//! - `host`: required, the SMTP server. `tls` (`"starttls"`, the default;
//!   `"implicit"`; `"plain"` with `allow_plain = true`), `port` (587, 465 or
//!   25 by `tls`), `user`, `password` (a `${secret:NAME}` reference),
//!   `ca_file` (PEM certificates to trust besides the system's, relative to
//!   the bot's folder): as in the `email` step.
//! - `from`: required, the sender's address.
//! - `review_every`: duration of at least `"1s"`, default `"10m"`. Reviewers
//!   get at most one mail per this long, listing every job that started
//!   waiting since the last. Failures are mailed at once, several together
//!   when they come together.
//!
//! ## `[[triggers]]`: what starts jobs besides `clerk run`
//!
//! - `kind`: required; `"cron"`, `"interval"`, `"folder"`, `"mailbox"` or
//!   `"manual"`.
//! - `schedule`: cron only, required. 5 fields (minute hour day-of-month
//!   month day-of-week) or 6 with seconds first.
//! - `timezone`: cron only, optional IANA zone such as `"Europe/Berlin"`,
//!   default `"UTC"`.
//! - `every`: interval only, required; duration of at least `"1s"`. Slots are
//!   aligned to the Unix epoch.
//! - `catch_up`: cron and interval; `"once"` (default) runs the latest missed
//!   slot after downtime, `"skip"` waits for the next slot.
//! - `path`: folder only, required; the folder watched for dropped files,
//!   relative to the bot's folder.
//! - `patterns`: folder only, optional list of file name patterns (`*`, `?`,
//!   `[abc]`; case does not matter). Default: PDFs and scans (`*.pdf`,
//!   `*.png`, `*.jpg`, `*.jpeg`, `*.tif`, `*.tiff`).
//! - `settle`: folder only, optional duration, default `"2s"`. A file is taken
//!   once its size and modification time have not changed for this long, so
//!   a file still being copied in is left alone.
//! - `rescan`: folder only, optional duration of at least `"1s"`, default
//!   `"30s"`. The folder is read on every change the system reports, and at
//!   least this often besides (network shares report none).
//! - `host`, `user`, `password`: mailbox only, required. The password must
//!   be a `${secret:NAME}` reference.
//! - `port`: mailbox only; default 993 with `tls = "implicit"` (the default),
//!   143 with `"starttls"` or `"plain"`. `"plain"` sends the password
//!   unencrypted and needs `allow_plain = true` besides: for a server on the
//!   same machine only.
//! - `folder` (default `"INBOX"`), `every` (poll interval, default `"1m"`),
//!   `after` (`"move"` to `move_to`, default `"Processed"`; `"flag"` as seen;
//!   `"leave"`), `failed_to` (default `"Failed"`): mailbox only.
//! - `types` (media types, `type/*` allowed; default PDF, PNG, JPEG, TIFF),
//!   `max_mb` (default 25), `body` (the message text is a document too,
//!   default false), `store` (folder the documents are saved in, relative to
//!   the bot's, default `"mail"`), `timeout` (per server answer, default
//!   `"30s"`), `ca_file` (PEM certificates to trust besides the system's,
//!   relative to the bot's folder): mailbox only.
//! - `idle`: mailbox only, default false. Listen for new mail (IMAP IDLE)
//!   and take it within seconds; each poll listens for `every`, then the
//!   next takes over. A server without IDLE is polled every `every`.
//! - `name`: optional; the trigger's identity, remembered with the last slot
//!   fired. Default: `cron:<schedule>@<timezone>`, `every:<seconds>s`,
//!   `folder:<path>`, `mailbox:<user>@<host>/<folder>` or `manual`. No two triggers of a bot may have the same identity.
//! - `input`: optional table, the input of the jobs the trigger starts.
//!   Default: an empty table.
//!
//! A key of another kind (`every` on a cron trigger) is an error.
//!
//! ## `[[steps]]`: what a job does, in order; at least one
//!
//! - `name`: required, unique within the bot. Later steps read this step's
//!   output by it.
//! - `kind`: required; `"command"`, `"extract"`, `"email"` or `"browser"`
//!   (see the README for the keys of `extract`, `email` and `browser`).
//! - `timeout`: optional duration > 0; overrides `[timeouts] step`.
//!
//! Keys of `kind = "command"`:
//!
//! - `argv`: required non-empty array of strings: the program and its
//!   arguments. No shell is involved unless you name one.
//! - `env`: optional table of strings; extra environment variables.
//! - `workdir`: optional path, relative to the bot's folder. Default: the
//!   bot's folder.
//! - `failure`: `"transient"` (default) or `"business"`: what a non-zero exit
//!   other than 75 means. Exit 75 is always transient.
//!
//! Any other key is an error, and so is every problem below: all of them are
//! reported at once, each with its line and column.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use croner::parser::{CronParser, Seconds, Year};
use serde_json::Value as Json;
use toml::Spanned;
use toml::de::{DeInteger, DeTable, DeValue};

use super::diagnostics::line_column;
use super::{Bot, CatchUp, Diagnostic, RetryPolicy, Timeouts, Trigger, TriggerKind};
use crate::step::command::CommandConfig;
use crate::step::{FailureKind, StepConfig, StepDecl};

/// Longest name of a bot or a step.
const MAX_NAME_LEN: usize = 64;

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
    let sink = Sink {
        file,
        source,
        diags: RefCell::new(Vec::new()),
    };
    let bot = read_bot(&sink, root.get_ref(), file);
    let mut diags = sink.diags.into_inner();
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
    let mut top = TableReader::new(sink, root, None, String::new(), String::new());
    let name = top.required_with("name", valid_name);
    let description = top.optional::<String>("description").unwrap_or_default();
    let owners = top.optional_with("owners", addresses);
    let reviewers = top.optional_with("reviewers", addresses);
    let notify = top.table("notify").map(read_notify);
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
    let retry = top
        .table("retry")
        .map_or_else(RetryPolicy::default, read_retry);
    let timeouts = top
        .table("timeouts")
        .map_or_else(Timeouts::default, read_timeouts);
    let triggers = read_triggers(sink, top.array_of_tables("triggers", "trigger"));
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
        triggers,
        retry,
        timeouts,
        concurrency,
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

/// `[notify]`: through which server, and from whom, owners and reviewers
/// are mailed.
fn read_notify(mut r: TableReader) -> Option<crate::mail::notify::NotifyConfig> {
    let server = read_smtp(&mut r);
    let from = r.required_with("from", |f: String| {
        f.trim()
            .parse::<lettre::message::Mailbox>()
            .map(|_| f.clone())
            .map_err(|e| Problem::new(format!("`{f}` is not a mail address: {e}")))
    });
    let review_every = r.optional_or(
        "review_every",
        crate::mail::notify::DEFAULT_REVIEW_EVERY,
        at_least_a_second,
    );
    r.finish();
    Some(crate::mail::notify::NotifyConfig {
        server: server?,
        from: from?,
        review_every: review_every?,
    })
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
        r.sink.error(
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

#[derive(Debug, Clone, Copy, PartialEq)]
enum TriggerKindName {
    Cron,
    Interval,
    Manual,
    Folder,
    Mailbox,
}

const TRIGGER_KINDS: &[(&str, TriggerKindName)] = &[
    ("cron", TriggerKindName::Cron),
    ("interval", TriggerKindName::Interval),
    ("manual", TriggerKindName::Manual),
    ("folder", TriggerKindName::Folder),
    ("mailbox", TriggerKindName::Mailbox),
];

/// Keys that only some trigger kinds take, with those kinds.
const KIND_ONLY_KEYS: &[(&str, &[&str])] = &[
    ("schedule", &["cron"]),
    ("timezone", &["cron"]),
    ("every", &["interval", "mailbox"]),
    ("catch_up", &["cron", "interval"]),
    ("path", &["folder"]),
    ("patterns", &["folder"]),
    ("settle", &["folder"]),
    ("rescan", &["folder"]),
    ("host", &["mailbox"]),
    ("port", &["mailbox"]),
    ("tls", &["mailbox"]),
    ("allow_plain", &["mailbox"]),
    ("user", &["mailbox"]),
    ("password", &["mailbox"]),
    ("folder", &["mailbox"]),
    ("after", &["mailbox"]),
    ("move_to", &["mailbox"]),
    ("failed_to", &["mailbox"]),
    ("types", &["mailbox"]),
    ("max_mb", &["mailbox"]),
    ("body", &["mailbox"]),
    ("store", &["mailbox"]),
    ("timeout", &["mailbox"]),
];

fn read_triggers(sink: &Sink, readers: Option<Vec<TableReader>>) -> Vec<Trigger> {
    let mut first_at: HashMap<String, usize> = HashMap::new();
    let mut triggers = Vec::new();
    for reader in readers.unwrap_or_default() {
        let Some((trigger, at)) = read_trigger(reader) else {
            continue;
        };
        // The id keys the scheduler's memory of the last slot fired; two
        // triggers sharing one would steal each other's slots.
        if let Some(&first) = first_at.get(&trigger.id) {
            sink.error(
                at,
                format!("two triggers have the id `{}`", trigger.id),
                Some(format!(
                    "the other is at line {}; give one of them a distinct `name`",
                    sink.line(first)
                )),
            );
            continue;
        }
        first_at.insert(trigger.id.clone(), at);
        triggers.push(trigger);
    }
    triggers
}

/// One trigger and where to point at when its id is taken.
fn read_trigger(mut t: TableReader) -> Option<(Trigger, usize)> {
    let name = t.optional_with("name", |s: String| {
        if s.trim().is_empty() {
            Err("must not be empty".to_string().into())
        } else {
            Ok(s)
        }
    });
    if let Some(name) = &name {
        t.suffix = format!(" in trigger `{name}`");
    }
    let at = t
        .span_of("name")
        .or_else(|| t.span.clone())
        .map_or(0, |s| s.start);
    let kind = t.required_with("kind", |s: String| one_of(&s, TRIGGER_KINDS));
    let input = t
        .optional::<JsonTable>("input")
        .map_or_else(|| Json::Object(Default::default()), |j| j.0);
    let Some(kind) = kind else {
        // Without a kind there is no telling which keys belong.
        return None;
    };
    let kind_str = TRIGGER_KINDS
        .iter()
        .find(|(_, k)| *k == kind)
        .map_or("", |(s, _)| s);
    for &(key, kinds) in KIND_ONLY_KEYS {
        if !kinds.contains(&kind_str) {
            let kinds = kinds.join(" and ");
            t.reject(
                key,
                &format!("does not apply to a {kind_str} trigger (only to {kinds} triggers)"),
            );
        }
    }
    let catch_up = t
        .optional_with("catch_up", |s: String| {
            one_of(&s, &[("once", CatchUp::Once), ("skip", CatchUp::Skip)])
        })
        .unwrap_or(CatchUp::Once);
    // `None` when a kind's own keys are bad; those are reported already.
    let kind_and_id = match kind {
        TriggerKindName::Cron => {
            let schedule = t.required_with("schedule", parse_cron);
            let timezone = t.optional_or("timezone", chrono_tz::Tz::UTC, parse_timezone);
            schedule
                .zip(timezone)
                .map(|((expression, schedule), timezone)| {
                    let id = format!("cron:{expression}@{}", timezone.name());
                    let kind = TriggerKind::Cron {
                        expression,
                        schedule: Box::new(schedule),
                        timezone,
                    };
                    (kind, id)
                })
        }
        TriggerKindName::Interval => {
            let every = t.required_with("every", at_least_a_second);
            every.map(|every| {
                // Whole seconds as promised; the rare sub-second rest keeps
                // "1500ms" apart from "1s".
                let id = if every.subsec_nanos() == 0 {
                    format!("every:{}s", every.as_secs())
                } else {
                    format!("every:{}ms", every.as_millis())
                };
                (TriggerKind::Interval { every }, id)
            })
        }
        TriggerKindName::Manual => Some((TriggerKind::Manual, "manual".to_string())),
        TriggerKindName::Mailbox => read_mailbox(&mut t).map(|config| {
            let id = format!("mailbox:{}@{}/{}", config.user, config.host, config.folder);
            (TriggerKind::Mailbox(Box::new(config)), id)
        }),
        TriggerKindName::Folder => {
            let path = t.required_with("path", |p: String| {
                if p.trim().is_empty() {
                    Err("must not be empty".to_string().into())
                } else {
                    Ok(PathBuf::from(p))
                }
            });
            let patterns = t.optional_or(
                "patterns",
                DEFAULT_FOLDER_PATTERNS
                    .iter()
                    .filter_map(|p| glob::Pattern::new(p).ok())
                    .collect(),
                |list: Vec<String>| {
                    if list.is_empty() {
                        return Err("must name at least one pattern, such as \"*.pdf\""
                            .to_string()
                            .into());
                    }
                    list.iter()
                        .map(|p| {
                            glob::Pattern::new(p)
                                .map_err(|e| Problem::from(format!("`{p}` is not a pattern: {e}")))
                        })
                        .collect()
                },
            );
            let settle = t.optional_or("settle", Duration::from_secs(2), Ok);
            let rescan = t.optional_or("rescan", Duration::from_secs(30), at_least_a_second);
            path.zip(patterns).zip(settle.zip(rescan)).map(
                |((path, patterns), (settle, rescan))| {
                    let id = format!("folder:{}", path.display());
                    let kind = TriggerKind::Folder {
                        path,
                        patterns,
                        settle,
                        rescan,
                    };
                    (kind, id)
                },
            )
        }
    };
    t.finish();
    let (kind, derived_id) = kind_and_id?;
    let trigger = Trigger {
        id: name.unwrap_or(derived_id),
        kind,
        catch_up,
        input,
    };
    Some((trigger, at))
}

/// A period of at least one second (poll and rescan intervals).
fn at_least_a_second(d: Duration) -> Result<Duration, Problem> {
    if d < Duration::from_secs(1) {
        Err(format!(
            "must be at least 1s, found {}",
            humantime::format_duration(d)
        )
        .into())
    } else {
        Ok(d)
    }
}

/// A password: only ever a `${secret:NAME}` reference.
fn secret_reference(p: String) -> Result<String, Problem> {
    if p.trim_start().starts_with("${secret:") {
        super::secrets::check_references(&p).map_err(Problem::new)?;
        Ok(p)
    } else {
        Err(Problem::new(
            "must name a secret, such as \"${secret:MAIL_PASSWORD}\"; a bot file never holds a password"
                .to_string(),
        ))
    }
}

/// `tls` and `allow_plain` of a mail server: `None` (reported) when plain
/// text is asked for without the opt-in.
fn read_tls(
    t: &mut TableReader,
    default: crate::mail::imap::Tls,
) -> Option<crate::mail::imap::Tls> {
    use crate::mail::imap::Tls;
    let tls = t.optional_or("tls", default, |s: String| {
        one_of(
            &s,
            &[
                ("implicit", Tls::Implicit),
                ("starttls", Tls::StartTls),
                ("plain", Tls::Plain),
            ],
        )
    })?;
    let allow_plain = t.optional::<bool>("allow_plain").unwrap_or(false);
    if tls == Tls::Plain && !allow_plain {
        t.reject(
            "tls",
            "`plain` sends the password unencrypted; set `allow_plain = true` only for a server on this machine",
        );
        return None;
    }
    Some(tls)
}

fn read_port(t: &mut TableReader) -> Option<u16> {
    t.optional_with("port", |p: Positive| {
        u16::try_from(p.0)
            .map_err(|_| Problem::new(format!("must be a port number, found {}", p.0)))
    })
}

/// The keys naming an SMTP server, in an `email` step or `[notify]`.
fn read_smtp(t: &mut TableReader) -> Option<crate::mail::send::SmtpServer> {
    use crate::mail::imap::Tls;
    let host = t.required_with("host", |h: String| Ok::<_, Problem>(h));
    let tls = read_tls(t, Tls::StartTls);
    let port = read_port(t);
    let user = t.optional::<String>("user");
    let password = t.optional_with("password", secret_reference);
    let ca_file = t.optional::<String>("ca_file").map(PathBuf::from);
    let tls = tls?;
    Some(crate::mail::send::SmtpServer {
        host: host?,
        port: port.unwrap_or(match tls {
            Tls::Implicit => 465,
            Tls::StartTls => 587,
            Tls::Plain => 25,
        }),
        tls,
        user,
        password,
        ca_file,
        // In a step, `timeout` is the step's own limit.
        timeout: Duration::from_secs(30),
    })
}

/// The verbs a browser action may start with; each action has one.
const BROWSER_VERBS: &[&str] = &[
    "goto",
    "fill",
    "select",
    "check",
    "click",
    "press",
    "wait_for",
    "wait_text",
    "wait_url",
    "wait_idle",
    "upload",
    "frame",
    "top",
    "dialog",
    "read",
    "assert_text",
    "screenshot",
    "guard",
];

fn read_browser(s: &mut TableReader) -> Option<crate::browser::BrowserConfig> {
    let action_timeout = s.optional_or("action_timeout", Duration::from_secs(10), positive);
    let chromium = s.optional::<String>("chromium").map(PathBuf::from);
    let readers = match s.array_of_tables("actions", "action") {
        Some(r) if !r.is_empty() => r,
        Some(_) | None => {
            s.reject(
                "actions",
                "a browser step needs `actions`, e.g. [{ goto = \"http://…\" }]",
            );
            return None;
        }
    };
    let mut actions = Vec::new();
    let mut ok = true;
    for r in readers {
        match read_action(r) {
            Some(a) => actions.push(a),
            None => ok = false,
        }
    }
    let action_timeout = action_timeout?;
    ok.then_some(crate::browser::BrowserConfig {
        actions,
        action_timeout,
        chromium,
    })
}

fn read_action(mut r: TableReader) -> Option<crate::browser::Action> {
    use crate::browser::Action;
    let verbs: Vec<&str> = BROWSER_VERBS.iter().copied().filter(|v| r.has(v)).collect();
    let [verb] = verbs.as_slice() else {
        let at = r.span.clone().map_or(0, |s| s.start);
        let message = if verbs.is_empty() {
            format!("an action needs one of {}", BROWSER_VERBS.join(", "))
        } else {
            format!("an action has one verb, found {}", verbs.join(" and "))
        };
        r.sink.error(at, message, None);
        return None;
    };
    let timeout = r.optional_with("timeout", positive);
    let text = |r: &mut TableReader, key: &'static str| {
        r.required_with(key, |t: String| Ok::<_, Problem>(t))
    };
    let action = match *verb {
        "goto" => Action::Goto {
            url: text(&mut r, "goto")?,
            timeout,
        },
        "fill" => Action::Fill {
            selector: text(&mut r, "fill")?,
            value: text(&mut r, "value")?,
            timeout,
        },
        "select" => Action::Select {
            selector: text(&mut r, "select")?,
            value: text(&mut r, "value")?,
            timeout,
        },
        "check" => Action::Check {
            selector: text(&mut r, "check")?,
            checked: r.optional::<bool>("checked").unwrap_or(true),
            timeout,
        },
        "click" => Action::Click {
            selector: text(&mut r, "click")?,
            timeout,
        },
        "press" => Action::Press {
            key: text(&mut r, "press")?,
        },
        "wait_for" => Action::WaitFor {
            selector: text(&mut r, "wait_for")?,
            timeout,
        },
        "wait_text" => Action::WaitText {
            text: text(&mut r, "wait_text")?,
            timeout,
        },
        "wait_url" => Action::WaitUrl {
            part: text(&mut r, "wait_url")?,
            timeout,
        },
        "wait_idle" => Action::WaitIdle {
            quiet: r.required_with("wait_idle", positive)?,
            timeout,
        },
        "upload" => Action::Upload {
            selector: text(&mut r, "upload")?,
            file: text(&mut r, "file")?,
            timeout,
        },
        "frame" => Action::Frame {
            selector: text(&mut r, "frame")?,
            timeout,
        },
        "top" => {
            r.optional::<bool>("top");
            Action::Top
        }
        "dialog" => Action::Dialog {
            accept: r.required_with("dialog", |d: String| {
                one_of(&d, &[("accept", true), ("dismiss", false)])
            })?,
        },
        "read" => Action::Read {
            selector: text(&mut r, "read")?,
            into: r.required_with("into", valid_name)?,
            attribute: r.optional::<String>("attribute"),
            timeout,
        },
        "assert_text" => Action::AssertText {
            text: text(&mut r, "assert_text")?,
            timeout,
        },
        "screenshot" => Action::Screenshot {
            name: r.required_with("screenshot", valid_name)?,
        },
        _ => Action::Guard {
            url: text(&mut r, "guard")?,
            found: text(&mut r, "found")?,
            into: r.optional_with("into", valid_name),
            timeout,
        },
    };
    r.finish();
    Some(action)
}

fn read_email(s: &mut TableReader) -> Option<crate::mail::send::EmailConfig> {
    let server = read_smtp(s);
    let from = s.required_with("from", |f: String| Ok::<_, Problem>(f));
    let to = s.required_with("to", |to: Vec<String>| {
        if to.is_empty() {
            Err(Problem::new("must name at least one recipient".into()))
        } else {
            Ok(to)
        }
    });
    let cc = s.optional::<Vec<String>>("cc").unwrap_or_default();
    let subject = s.required_with("subject", |t: String| Ok::<_, Problem>(t));
    let body = s.required_with("body", |t: String| Ok::<_, Problem>(t));
    let attach = s.optional::<Vec<String>>("attach").unwrap_or_default();
    Some(crate::mail::send::EmailConfig {
        server: server?,
        from: from?,
        to: to?,
        cc,
        subject: subject?,
        body: body?,
        attach,
    })
}

/// The keys of a mailbox trigger; `None` when one is wrong (reported).
fn read_mailbox(t: &mut TableReader) -> Option<crate::mail::poll::MailboxConfig> {
    use crate::mail::imap::Tls;
    use crate::mail::poll::{After, MailboxConfig};
    let host = t.required_with("host", |s: String| Ok::<_, Problem>(s));
    let tls = read_tls(t, Tls::Implicit);
    let port = read_port(t);
    let user = t.required_with("user", |s: String| Ok::<_, Problem>(s));
    let password = t.required_with("password", secret_reference);
    let folder = t
        .optional::<String>("folder")
        .unwrap_or_else(|| "INBOX".into());
    let every = t.optional_or("every", Duration::from_secs(60), at_least_a_second);
    let after = t.optional_or("after", After::Move, |s: String| {
        one_of(
            &s,
            &[
                ("move", After::Move),
                ("flag", After::Flag),
                ("leave", After::Leave),
            ],
        )
    });
    let move_to = t
        .optional::<String>("move_to")
        .unwrap_or_else(|| "Processed".into());
    let failed_to = t
        .optional::<String>("failed_to")
        .unwrap_or_else(|| "Failed".into());
    let mut filter = crate::mail::AttachmentFilter::default();
    if let Some(types) = t.optional::<Vec<String>>("types") {
        filter.types = types;
    }
    if let Some(mb) = t.optional::<Positive>("max_mb") {
        filter.max_size = u64::from(mb.0) * 1024 * 1024;
    }
    filter.body = t.optional::<bool>("body").unwrap_or(false);
    let store = t
        .optional::<String>("store")
        .unwrap_or_else(|| "mail".into());
    let timeout = t.optional_or("timeout", Duration::from_secs(30), Ok);
    let ca_file = t.optional::<String>("ca_file").map(PathBuf::from);
    let idle = t.optional::<bool>("idle").unwrap_or(false);
    let tls = tls?;
    Some(MailboxConfig {
        host: host?,
        port: port.unwrap_or(match tls {
            Tls::Implicit => 993,
            Tls::StartTls | Tls::Plain => 143,
        }),
        tls,
        user: user?,
        password: password?,
        folder,
        every: every?,
        after: after?,
        move_to,
        failed_to,
        filter,
        store: PathBuf::from(store),
        ca_file,
        idle,
        timeout: timeout?,
    })
}

/// Files a folder trigger takes when it names no `patterns`: the documents
/// clerk reads.
const DEFAULT_FOLDER_PATTERNS: &[&str] = &["*.pdf", "*.png", "*.jpg", "*.jpeg", "*.tif", "*.tiff"];

/// A cron expression as written, with its parsed schedule.
fn parse_cron(expression: String) -> Result<(String, croner::Cron), Problem> {
    let parser = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build();
    match parser.parse(&expression) {
        Ok(cron) => Ok((expression, cron)),
        Err(e) => Err(Problem::new(format!(
            "is not a valid cron schedule, found {expression:?}: {e}"
        ))
        .hint(
            "5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, \
             e.g. \"0 30 6 * * Mon-Fri\"",
        )),
    }
}

fn parse_timezone(zone: String) -> Result<chrono_tz::Tz, Problem> {
    zone.parse::<chrono_tz::Tz>().map_err(|_| {
        let names: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
        let hint = match closest(&zone, &names) {
            Some(name) => format!("did you mean `{name}`?"),
            None => "use an IANA time zone name, e.g. \"Europe/Berlin\" or \"UTC\"".to_string(),
        };
        Problem::new(format!("must be a known time zone, found {zone:?}")).hint(hint)
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum StepKind {
    Command,
    Extract,
    Email,
    Browser,
}

const STEP_KINDS: &[(&str, StepKind)] = &[
    ("command", StepKind::Command),
    ("extract", StepKind::Extract),
    ("email", StepKind::Email),
    ("browser", StepKind::Browser),
];

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
        s.suffix = format!(" in step `{name}`");
    }
    let at = s
        .span_of("name")
        .or_else(|| s.span.clone())
        .map_or(0, |s| s.start);
    let kind = s.required_with("kind", |k: String| one_of(&k, STEP_KINDS));
    let timeout = s.optional_with("timeout", positive);
    let Some(kind) = kind else {
        // Without a kind there is no telling which keys belong.
        return None;
    };
    let config = match kind {
        StepKind::Command => read_command(&mut s).map(StepConfig::Command),
        StepKind::Extract => read_extract(&mut s).map(StepConfig::Extract),
        StepKind::Email => read_email(&mut s).map(StepConfig::Email),
        StepKind::Browser => read_browser(&mut s).map(StepConfig::Browser),
    };
    s.finish();
    let decl = StepDecl {
        name: name?,
        timeout,
        config: config?,
    };
    Some((decl, at))
}

/// `${secret:NAME}` references in a value must be well formed.
fn references(value: &str) -> Result<(), Problem> {
    super::secrets::check_references(value)
        .map_err(|m| Problem::new(format!("has a bad reference: {m}")))
}

fn read_extract(s: &mut TableReader) -> Option<crate::extract::step::ExtractConfig> {
    let templates = s.required_with("templates", |t: String| Ok(PathBuf::from(t)));
    let document = s
        .optional::<String>("document")
        .unwrap_or_else(|| "input.file".to_string());
    Some(crate::extract::step::ExtractConfig {
        templates: templates?,
        document,
    })
}

fn read_command(s: &mut TableReader) -> Option<CommandConfig> {
    let argv = s.required_with("argv", |argv: Vec<String>| {
        if argv.is_empty() {
            Err(Problem::new("must not be empty".into())
                .hint("give the program and its arguments, e.g. [\"./fetch.sh\"]"))
        } else {
            argv.iter().try_for_each(|a| references(a))?;
            Ok(argv)
        }
    });
    let env = s
        .optional_with("env", |env: BTreeMap<String, String>| {
            env.values().try_for_each(|v| references(v))?;
            Ok(env)
        })
        .unwrap_or_default();
    let workdir = s.optional::<String>("workdir").map(PathBuf::from);
    let failure = s
        .optional_with("failure", |f: String| {
            one_of(
                &f,
                &[
                    ("transient", FailureKind::Transient),
                    ("business", FailureKind::Business),
                ],
            )
        })
        .unwrap_or(FailureKind::Transient);
    Some(CommandConfig {
        argv: argv?,
        env,
        workdir,
        failure,
    })
}

// ---------------------------------------------------------------------------
// Reading tables with diagnostics
// ---------------------------------------------------------------------------

/// Collects diagnostics. Shared by reference between the readers of nested
/// tables, which are alive at the same time, hence the `RefCell`.
struct Sink<'a> {
    file: &'a Path,
    source: &'a str,
    diags: RefCell<Vec<Diagnostic>>,
}

impl Sink<'_> {
    /// A problem at byte offset `at`.
    fn error(&self, at: usize, message: String, hint: Option<String>) {
        let mut diag = Diagnostic::at(self.file, self.source, at, message);
        diag.hint = hint;
        self.diags.borrow_mut().push(diag);
    }

    fn file_error(&self, message: String) {
        self.diags
            .borrow_mut()
            .push(Diagnostic::file(self.file, message));
    }

    fn line(&self, at: usize) -> usize {
        line_column(self.source, at).0
    }
}

/// What is wrong with a value, said after its key: "`retry.jitter` must be
/// a number from 0 to 1, found …".
struct Problem {
    message: String,
    hint: Option<String>,
}

impl Problem {
    fn new(message: String) -> Self {
        Problem {
            message,
            hint: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl From<String> for Problem {
    fn from(message: String) -> Self {
        Problem::new(message)
    }
}

/// Hands out the fields of one table by name, reports what is wrong with
/// them, and at [`finish`](Self::finish) reports the keys nobody asked for.
/// Dropping a reader without `finish` leaves its unknown keys unreported,
/// for tables whose valid keys cannot be known (a step of unknown kind).
struct TableReader<'a, 'i> {
    sink: &'a Sink<'a>,
    table: &'a DeTable<'i>,
    /// The table's header; missing keys are reported here. `None` for the
    /// top level, where they concern the whole file.
    span: Option<Range<usize>>,
    /// Written before key names: `retry.` makes `retry.backoff`.
    prefix: String,
    /// Written after key names: ` in step `fetch``.
    suffix: String,
    /// Every valid key asked for, present or not; unknown keys are compared
    /// against these for suggestions.
    known: Vec<&'static str>,
    /// Keys reported as not belonging here, so `finish` skips them.
    rejected: Vec<&'static str>,
}

impl<'a, 'i> TableReader<'a, 'i> {
    fn new(
        sink: &'a Sink<'a>,
        table: &'a DeTable<'i>,
        span: Option<Range<usize>>,
        prefix: String,
        suffix: String,
    ) -> Self {
        TableReader {
            sink,
            table,
            span,
            prefix,
            suffix,
            known: Vec::new(),
            rejected: Vec::new(),
        }
    }

    fn has(&self, key: &str) -> bool {
        self.table.get(key).is_some()
    }

    fn span_of(&self, key: &str) -> Option<Range<usize>> {
        self.table.get(key).map(|v| v.span())
    }

    /// The value of `key`, remembering that `key` is valid here.
    fn take(&mut self, key: &'static str) -> Option<&'a Spanned<DeValue<'i>>> {
        if !self.known.contains(&key) {
            self.known.push(key);
        }
        self.table.get(key)
    }

    /// `key` as messages name it.
    fn display(&self, key: &str) -> String {
        format!("`{}{key}`{}", self.prefix, self.suffix)
    }

    /// Read `key` as a `T`, then check and convert it with `check`.
    fn required_with<T: FromToml, U>(
        &mut self,
        key: &'static str,
        check: impl FnOnce(T) -> Result<U, Problem>,
    ) -> Option<U> {
        match self.take(key) {
            Some(value) => self.convert(key, value, check),
            None => {
                let message = format!("missing required key {}", self.display(key));
                match &self.span {
                    Some(span) => self.sink.error(span.start, message, None),
                    None => self.sink.file_error(message),
                }
                None
            }
        }
    }

    /// `None` when `key` is absent or invalid (the latter is reported).
    fn optional<T: FromToml>(&mut self, key: &'static str) -> Option<T> {
        self.optional_with(key, Ok)
    }

    fn optional_with<T: FromToml, U>(
        &mut self,
        key: &'static str,
        check: impl FnOnce(T) -> Result<U, Problem>,
    ) -> Option<U> {
        let value = self.take(key)?;
        self.convert(key, value, check)
    }

    /// `Some(default)` when `key` is absent, `None` when it is invalid: for
    /// values later checked against each other, where a reported bad value
    /// must not cause a second, confusing report.
    fn optional_or<T: FromToml, U>(
        &mut self,
        key: &'static str,
        default: U,
        check: impl FnOnce(T) -> Result<U, Problem>,
    ) -> Option<U> {
        match self.take(key) {
            Some(value) => self.convert(key, value, check),
            None => Some(default),
        }
    }

    fn convert<T: FromToml, U>(
        &self,
        key: &str,
        value: &Spanned<DeValue>,
        check: impl FnOnce(T) -> Result<U, Problem>,
    ) -> Option<U> {
        match T::from_toml(value.get_ref()).and_then(check) {
            Ok(v) => Some(v),
            Err(p) => {
                let message = format!("{} {}", self.display(key), p.message);
                self.sink.error(value.span().start, message, p.hint);
                None
            }
        }
    }

    /// The sub-table `key`, if given.
    fn table(&mut self, key: &'static str) -> Option<TableReader<'a, 'i>> {
        let value = self.take(key)?;
        match value.get_ref() {
            DeValue::Table(table) => Some(TableReader::new(
                self.sink,
                table,
                Some(value.span()),
                format!("{}{key}.", self.prefix),
                self.suffix.clone(),
            )),
            other => {
                self.type_error(key, value, "a table", other);
                None
            }
        }
    }

    /// The array of tables `key` (`[[key]]`), one reader per table, named
    /// "<what> #1", "#2", … in messages until the caller names them better.
    /// `None` when absent or not an array; elements that are not tables are
    /// reported and left out.
    fn array_of_tables(
        &mut self,
        key: &'static str,
        what: &str,
    ) -> Option<Vec<TableReader<'a, 'i>>> {
        let value = self.take(key)?;
        let DeValue::Array(items) = value.get_ref() else {
            self.type_error(
                key,
                value,
                &format!("an array of tables (`[[{key}]]`)"),
                value.get_ref(),
            );
            return None;
        };
        let mut readers = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let suffix = format!(" in {what} #{}", index + 1);
            match item.get_ref() {
                DeValue::Table(table) => readers.push(TableReader::new(
                    self.sink,
                    table,
                    Some(item.span()),
                    String::new(),
                    suffix,
                )),
                other => self.sink.error(
                    item.span().start,
                    format!("each of `{key}` must be a table, found {}", found(other)),
                    None,
                ),
            }
        }
        Some(readers)
    }

    fn type_error(&self, key: &str, value: &Spanned<DeValue>, expected: &str, other: &DeValue) {
        self.sink.error(
            value.span().start,
            format!(
                "{} must be {expected}, found {}",
                self.display(key),
                found(other)
            ),
            None,
        );
    }

    /// Report `key`, if present, as not belonging here, and why.
    fn reject(&mut self, key: &'static str, why: &str) {
        self.rejected.push(key);
        if let Some((k, _)) = self.table.get_key_value(key) {
            let message = format!("{} {why}", self.display(key));
            self.sink.error(k.span().start, message, None);
        }
    }

    /// Report every key that was neither asked for nor rejected.
    fn finish(self) {
        for (key, _) in self.table.iter() {
            let name = key.get_ref().as_ref();
            if self.known.contains(&name) || self.rejected.contains(&name) {
                continue;
            }
            let hint = match closest(name, &self.known) {
                Some(close) => format!("did you mean `{close}`?"),
                None if self.known.is_empty() => "this table takes no keys".to_string(),
                None => format!("expected one of {}", quoted_list(&self.known)),
            };
            self.sink.error(
                key.span().start,
                format!("unknown key {}", self.display(name)),
                Some(hint),
            );
        }
    }
}

/// The candidate most like `word`, if any is close enough to be a likely
/// misspelling.
pub fn closest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(word, c), *c))
        .filter(|(score, c)| {
            // Two edits make a different word of a short key ("job" vs
            // "jab" is fine, "id" vs "env" is not), hence the length check.
            let edits = strsim::levenshtein(word, c);
            *score >= 0.8 || (edits <= 2 && edits * 2 <= c.len())
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `s` if it is one of the `choices`, as the matching value.
fn one_of<T: Copy>(s: &str, choices: &[(&str, T)]) -> Result<T, Problem> {
    if let Some((_, value)) = choices.iter().find(|(name, _)| *name == s) {
        return Ok(*value);
    }
    let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
    let problem = Problem::new(format!(
        "must be one of {}, found {s:?}",
        quoted_list(&names)
    ));
    Err(match closest(s, &names) {
        Some(close) => problem.hint(format!("did you mean `{close}`?")),
        None => problem,
    })
}

fn valid_name(name: String) -> Result<String, Problem> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if name.len() > MAX_NAME_LEN {
        Err(format!(
            "must be at most {MAX_NAME_LEN} characters long, found {} characters",
            name.chars().count()
        )
        .into())
    } else if !first_ok || !rest_ok {
        Err(Problem::new(format!(
            "must start with a lowercase letter or digit and hold only a-z, 0-9, `_` and `-`, found {name:?}"
        ))
        .hint("e.g. \"invoice-intake\""))
    } else {
        Ok(name)
    }
}

fn positive(d: Duration) -> Result<Duration, Problem> {
    if d.is_zero() {
        Err("must be a duration longer than zero".to_string().into())
    } else {
        Ok(d)
    }
}

// ---------------------------------------------------------------------------
// Value types
// ---------------------------------------------------------------------------

/// A type a TOML value can be read as.
trait FromToml: Sized {
    /// What the value must be, as said after "must be".
    const EXPECTED: &'static str;

    fn from_toml(value: &DeValue) -> Result<Self, Problem>;

    /// The usual problem: a value of the wrong type or range.
    fn mismatch(value: &DeValue) -> Problem {
        Problem::new(format!(
            "must be {}, found {}",
            Self::EXPECTED,
            found(value)
        ))
    }
}

/// What a value is, for messages: `string "five"`, `integer 0`, `a table`.
fn found(value: &DeValue) -> String {
    match value {
        DeValue::String(s) => format!("string {s:?}"),
        DeValue::Integer(i) => format!("integer {i}"),
        DeValue::Float(f) => format!("float {f}"),
        DeValue::Boolean(b) => format!("boolean {b}"),
        DeValue::Datetime(d) => format!("datetime {d}"),
        DeValue::Array(_) => "an array".to_string(),
        DeValue::Table(_) => "a table".to_string(),
    }
}

fn integer(i: &DeInteger) -> Option<i64> {
    i64::from_str_radix(i.as_str(), i.radix()).ok()
}

impl FromToml for String {
    const EXPECTED: &'static str = "a string";

    fn from_toml(value: &DeValue) -> Result<Self, Problem> {
        match value {
            DeValue::String(s) => Ok(s.to_string()),
            other => Err(Self::mismatch(other)),
        }
    }
}

impl FromToml for Vec<String> {
    const EXPECTED: &'static str = "an array of strings";

    fn from_toml(value: &DeValue) -> Result<Self, Problem> {
        let DeValue::Array(items) = value else {
            return Err(Self::mismatch(value));
        };
        items
            .iter()
            .map(|item| match item.get_ref() {
                DeValue::String(s) => Ok(s.to_string()),
                other => Err(Problem::new(format!(
                    "must be {}, found {} in it",
                    Self::EXPECTED,
                    found(other)
                ))),
            })
            .collect()
    }
}

impl FromToml for BTreeMap<String, String> {
    const EXPECTED: &'static str = "a table of strings";

    fn from_toml(value: &DeValue) -> Result<Self, Problem> {
        let DeValue::Table(table) = value else {
            return Err(Self::mismatch(value));
        };
        table
            .iter()
            .map(|(k, v)| match v.get_ref() {
                DeValue::String(s) => Ok((k.get_ref().to_string(), s.to_string())),
                other => Err(Problem::new(format!(
                    "must be {}, found {} at `{}`",
                    Self::EXPECTED,
                    found(other),
                    k.get_ref()
                ))),
            })
            .collect()
    }
}

/// An integer >= 1 that fits a `u32`.
struct Positive(u32);

impl FromToml for Positive {
    const EXPECTED: &'static str = "a positive integer";

    fn from_toml(value: &DeValue) -> Result<Self, Problem> {
        match value {
            DeValue::Integer(i) => match integer(i).and_then(|n| u32::try_from(n).ok()) {
                Some(n) if n >= 1 => Ok(Positive(n)),
                _ => Err(Self::mismatch(value)),
            },
            other => Err(Self::mismatch(other)),
        }
    }
}

/// A number from 0 to 1; integers are accepted, `jitter = 1` is natural.
struct Fraction(f64);

impl FromToml for Fraction {
    const EXPECTED: &'static str = "a number from 0 to 1";

    fn from_toml(value: &DeValue) -> Result<Self, Problem> {
        let number = match value {
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            DeValue::Integer(i) => integer(i).map(|n| n as f64),
            _ => None,
        };
        match number {
            // `contains` is false for NaN, which is thus rejected too.
            Some(n) if (0.0..=1.0).contains(&n) => Ok(Fraction(n)),
            _ => Err(Self::mismatch(value)),
        }
    }
}

impl FromToml for bool {
    const EXPECTED: &'static str = "true or false";

    fn from_toml(value: &DeValue) -> Result<Self, Problem> {
        match value {
            DeValue::Boolean(b) => Ok(*b),
            other => Err(Self::mismatch(other)),
        }
    }
}

impl FromToml for Duration {
    const EXPECTED: &'static str = "a duration such as \"10s\" or \"5m\"";

    fn from_toml(value: &DeValue) -> Result<Self, Problem> {
        match value {
            DeValue::String(s) => humantime::parse_duration(s.trim()).map_err(|e| {
                Problem::new(format!(
                    "must be {}, found {:?}: {e}",
                    Self::EXPECTED,
                    s.as_ref()
                ))
            }),
            DeValue::Integer(_) | DeValue::Float(_) => {
                Err(Self::mismatch(value)
                    .hint("write durations as strings with a unit, e.g. \"30s\""))
            }
            other => Err(Self::mismatch(other)),
        }
    }
}

/// A table turned into a JSON object (trigger input).
struct JsonTable(Json);

impl FromToml for JsonTable {
    const EXPECTED: &'static str = "a table such as { folder = \"in\" }";

    fn from_toml(value: &DeValue) -> Result<Self, Problem> {
        if !matches!(value, DeValue::Table(_)) {
            return Err(Self::mismatch(value));
        }
        to_json(value)
            .map(JsonTable)
            .map_err(|what| Problem::new(format!("cannot be turned into JSON: {what}")))
    }
}

fn to_json(value: &DeValue) -> Result<Json, String> {
    Ok(match value {
        DeValue::String(s) => Json::String(s.to_string()),
        DeValue::Integer(i) => {
            Json::from(integer(i).ok_or_else(|| format!("integer {i} is too large"))?)
        }
        DeValue::Float(f) => f
            .as_str()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Json::Number)
            .ok_or_else(|| format!("float {f} has no JSON form"))?,
        DeValue::Boolean(b) => Json::Bool(*b),
        // JSON has no dates; the TOML text form is what a step would parse.
        DeValue::Datetime(d) => Json::String(d.to_string()),
        DeValue::Array(items) => Json::Array(
            items
                .iter()
                .map(|item| to_json(item.get_ref()))
                .collect::<Result<_, _>>()?,
        ),
        DeValue::Table(table) => Json::Object(
            table
                .iter()
                .map(|(k, v)| Ok((k.get_ref().to_string(), to_json(v.get_ref())?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "bots/invoice-intake/bot.toml";

    fn parse(source: &str) -> Result<Bot, Vec<Diagnostic>> {
        parse_manifest(Path::new(FILE), source)
    }

    fn errors(source: &str) -> Vec<Diagnostic> {
        match parse(source) {
            Ok(bot) => panic!("expected errors, got bot {:?}", bot.name),
            Err(diags) => diags,
        }
    }

    /// The one diagnostic whose message contains `text`.
    fn find<'d>(diags: &'d [Diagnostic], text: &str) -> &'d Diagnostic {
        let found: Vec<_> = diags.iter().filter(|d| d.message.contains(text)).collect();
        assert_eq!(found.len(), 1, "one diagnostic with {text:?} in {diags:#?}");
        found[0]
    }

    const MINIMAL_STEP: &str =
        "[[steps]]\nname = \"fetch\"\nkind = \"command\"\nargv = [\"./fetch.sh\"]\n";

    #[test]
    fn full_manifest_parses_into_expected_values() {
        let source = r#"name = "invoice-intake"
description = "Books invoices"
owners = ["ops@example.com", "lead@example.com"]
concurrency = 2

[retry]
max_attempts = 4
backoff = "30s"
backoff_cap = "2h"
jitter = 1
max_lost = 2

[timeouts]
step = "5m"
job = "1h"

[[triggers]]
kind = "cron"
schedule = "0 30 6 * * Mon-Fri"
timezone = "Europe/Berlin"
catch_up = "skip"
input = { folder = "in", limit = 3, nested = { ok = true } }

[[triggers]]
kind = "interval"
every = "15m"
name = "poll"

[[triggers]]
kind = "manual"

[[steps]]
name = "fetch"
kind = "command"
timeout = "2m"
argv = ["./fetch.sh", "--since", "yesterday"]
env = { API_URL = "http://127.0.0.1:8080" }
workdir = "work"
failure = "business"

[[steps]]
name = "book_2"
kind = "command"
argv = ["./book.sh"]
"#;
        let bot = parse(source).expect("valid manifest");
        assert_eq!(bot.name, "invoice-intake");
        assert_eq!(bot.description, "Books invoices");
        assert_eq!(bot.file, PathBuf::from(FILE));
        assert_eq!(bot.dir, PathBuf::from("bots/invoice-intake"));
        assert_eq!(bot.owners, ["ops@example.com", "lead@example.com"]);
        assert_eq!(bot.concurrency, Some(2));
        assert_eq!(
            bot.retry,
            RetryPolicy {
                max_attempts: 4,
                backoff: Duration::from_secs(30),
                backoff_cap: Duration::from_secs(7200),
                jitter: 1.0,
                max_lost: 2,
            }
        );
        assert_eq!(
            bot.timeouts,
            Timeouts {
                step: Duration::from_secs(300),
                job: Some(Duration::from_secs(3600)),
            }
        );

        assert_eq!(bot.triggers.len(), 3);
        let cron = &bot.triggers[0];
        assert_eq!(cron.id, "cron:0 30 6 * * Mon-Fri@Europe/Berlin");
        assert_eq!(cron.catch_up, CatchUp::Skip);
        assert_eq!(
            cron.input,
            serde_json::json!({ "folder": "in", "limit": 3, "nested": { "ok": true } })
        );
        match &cron.kind {
            TriggerKind::Cron {
                expression,
                timezone,
                ..
            } => {
                assert_eq!(expression, "0 30 6 * * Mon-Fri");
                assert_eq!(*timezone, chrono_tz::Europe::Berlin);
            }
            other => panic!("expected cron, got {other:?}"),
        }
        let interval = &bot.triggers[1];
        assert_eq!(interval.id, "poll");
        assert_eq!(interval.catch_up, CatchUp::Once);
        assert_eq!(interval.input, serde_json::json!({}));
        assert!(
            matches!(interval.kind, TriggerKind::Interval { every } if every == Duration::from_secs(900))
        );
        assert_eq!(bot.triggers[2].id, "manual");
        assert!(matches!(bot.triggers[2].kind, TriggerKind::Manual));

        assert_eq!(bot.steps.len(), 2);
        assert_eq!(bot.runners.len(), 2);
        assert!(bot.runners.iter().all(|r| r.kind() == "command"));
        let fetch = &bot.steps[0];
        assert_eq!(fetch.name, "fetch");
        assert_eq!(fetch.timeout, Some(Duration::from_secs(120)));
        let StepConfig::Command(config) = &fetch.config else {
            panic!("fetch is a command step")
        };
        assert_eq!(
            *config,
            CommandConfig {
                argv: vec!["./fetch.sh".into(), "--since".into(), "yesterday".into()],
                env: BTreeMap::from([("API_URL".into(), "http://127.0.0.1:8080".into())]),
                workdir: Some(PathBuf::from("work")),
                failure: FailureKind::Business,
            }
        );
        let book = &bot.steps[1];
        assert_eq!(book.name, "book_2");
        assert_eq!(book.timeout, None);
        let StepConfig::Command(config) = &book.config else {
            panic!("book is a command step")
        };
        assert_eq!(config.failure, FailureKind::Transient);
        assert!(config.env.is_empty());
        assert_eq!(config.workdir, None);
        assert_eq!(bot.step_timeout(0), Duration::from_secs(120));
        assert_eq!(bot.step_timeout(1), Duration::from_secs(300));
    }

    #[test]
    fn a_folder_trigger_takes_its_own_keys_and_refuses_others() {
        let source = format!(
            "name = \"drop\"\n[[triggers]]\nkind = \"folder\"\npath = \"inbox\"\npatterns = [\"*.pdf\", \"scan-??.tif\"]\nsettle = \"5s\"\n{MINIMAL_STEP}"
        );
        let bot = parse(&source).expect("valid manifest");
        let trigger = &bot.triggers[0];
        assert_eq!(trigger.id, "folder:inbox");
        let TriggerKind::Folder {
            path,
            patterns,
            settle,
            rescan,
        } = &trigger.kind
        else {
            panic!("a folder trigger: {:?}", trigger.kind);
        };
        assert_eq!(path, Path::new("inbox"));
        assert_eq!(patterns.len(), 2);
        assert!(patterns[1].matches("scan-07.tif"));
        assert_eq!(*settle, Duration::from_secs(5));
        assert_eq!(*rescan, Duration::from_secs(30));

        let source = format!(
            "name = \"drop\"\n[[triggers]]\nkind = \"folder\"\npatterns = [\"[*.pdf\"]\nevery = \"1m\"\n{MINIMAL_STEP}"
        );
        let diags = errors(&source);
        assert_eq!(find(&diags, "missing required key `path`").line, 2);
        assert_eq!(find(&diags, "is not a pattern").line, 4);
        assert_eq!(find(&diags, "does not apply to a folder trigger").line, 5);
    }

    #[test]
    fn a_mailbox_trigger_needs_a_secret_and_an_opt_in_for_plain_text() {
        let source = format!(
            "name = \"mail\"\n[[triggers]]\nkind = \"mailbox\"\nhost = \"imap.example.com\"\nuser = \"finance\"\npassword = \"${{secret:IMAP_PW}}\"\nafter = \"flag\"\n{MINIMAL_STEP}"
        );
        let bot = parse(&source).expect("valid manifest");
        assert_eq!(bot.triggers[0].id, "mailbox:finance@imap.example.com/INBOX");
        let TriggerKind::Mailbox(m) = &bot.triggers[0].kind else {
            panic!("a mailbox trigger");
        };
        assert_eq!(m.port, 993);
        assert_eq!(m.every, Duration::from_secs(60));
        assert_eq!(m.after, crate::mail::poll::After::Flag);

        let source = format!(
            "name = \"mail\"\n[[triggers]]\nkind = \"mailbox\"\nhost = \"imap.example.com\"\nuser = \"finance\"\npassword = \"hunter2\"\n{MINIMAL_STEP}"
        );
        let diags = errors(&source);
        let d = find(&diags, "a bot file never holds a password");
        assert_eq!(d.line, 6);
        assert!(!d.message.contains("hunter2"), "{}", d.message);

        let source = format!(
            "name = \"mail\"\n[[triggers]]\nkind = \"mailbox\"\nhost = \"127.0.0.1\"\ntls = \"plain\"\nuser = \"finance\"\npassword = \"${{secret:IMAP_PW}}\"\n{MINIMAL_STEP}"
        );
        let diags = errors(&source);
        assert_eq!(find(&diags, "allow_plain = true").line, 5);
    }

    #[test]
    fn omitted_sections_take_their_defaults() {
        let source = format!(
            "name = \"min\"\n[[triggers]]\nkind = \"interval\"\nevery = \"90s\"\n[[triggers]]\nkind = \"cron\"\nschedule = \"*/5 * * * *\"\n{MINIMAL_STEP}"
        );
        let bot = parse(&source).expect("valid manifest");
        assert_eq!(bot.description, "");
        assert!(bot.owners.is_empty());
        assert_eq!(bot.concurrency, None);
        assert_eq!(bot.retry, RetryPolicy::default());
        assert_eq!(bot.timeouts, Timeouts::default());
        assert_eq!(bot.triggers[0].id, "every:90s");
        assert_eq!(bot.triggers[1].id, "cron:*/5 * * * *@UTC");
        assert_eq!(bot.triggers[1].catch_up, CatchUp::Once);
        assert_eq!(bot.step_timeout(0), Duration::from_secs(600));
        // A bare file name still has a folder to run steps in.
        let bot = parse_manifest(Path::new("bot.toml"), &source).expect("valid manifest");
        assert_eq!(bot.dir, PathBuf::from("."));
    }

    #[test]
    fn reports_every_problem_with_its_position() {
        let source = r#"name = "Bad Name"
concurrency = 0

[retry]
max_atempts = 5
backoff = "ten"
jitter = 1.5

[[triggers]]
kind = "cron"
schedule = "0 30 6 * * Mon-Fri"
every = "15m"

[[steps]]
name = "fetch"
kind = "command"
timeout = 30
"#;
        let diags = errors(source);
        let expected: &[(usize, usize, &str)] = &[
            (1, 8, "`name` must start with a lowercase letter or digit"),
            (
                2,
                15,
                "`concurrency` must be a positive integer, found integer 0",
            ),
            (5, 1, "unknown key `retry.max_atempts`"),
            (6, 11, "`retry.backoff` must be a duration"),
            (
                7,
                10,
                "`retry.jitter` must be a number from 0 to 1, found float 1.5",
            ),
            (
                12,
                1,
                "`every` in trigger #1 does not apply to a cron trigger",
            ),
            (14, 1, "missing required key `argv` in step `fetch`"),
            (17, 11, "`timeout` in step `fetch` must be a duration"),
        ];
        for (line, column, text) in expected {
            let d = find(&diags, text);
            assert_eq!((d.line, d.column), (*line, *column), "position of {d:?}");
            assert_eq!(d.file, PathBuf::from(FILE));
        }
        assert_eq!(diags.len(), expected.len(), "{diags:#?}");
        // Sorted by position, so the CLI prints them in file order.
        assert!(
            diags
                .windows(2)
                .all(|w| (w[0].line, w[0].column) <= (w[1].line, w[1].column))
        );
        // The humantime error is part of the message.
        assert!(
            find(&diags, "retry.backoff")
                .message
                .contains("expected number")
        );
        // A bare number as duration gets a hint on how to write it.
        let timeout = find(&diags, "`timeout`");
        assert!(timeout.hint.as_deref().unwrap().contains("\"30s\""));
    }

    #[test]
    fn type_mismatch_message_says_what_was_expected_and_found() {
        let source = format!("name = \"b\"\n[retry]\nmax_attempts = \"five\"\n{MINIMAL_STEP}");
        let diags = errors(&source);
        assert_eq!(diags.len(), 1);
        assert_eq!(
            diags[0].message,
            "`retry.max_attempts` must be a positive integer, found string \"five\""
        );
        assert_eq!((diags[0].line, diags[0].column), (3, 16));
        assert_eq!(
            diags[0].to_string(),
            format!(
                "{FILE}:3:16: `retry.max_attempts` must be a positive integer, found string \"five\""
            )
        );
    }

    #[test]
    fn misspelt_key_gets_did_you_mean_hint() {
        let source = format!("name = \"b\"\n[retry]\nmax_atempts = 5\n{MINIMAL_STEP}");
        let diags = errors(&source);
        assert_eq!(diags.len(), 1);
        let d = &diags[0];
        assert_eq!(d.message, "unknown key `retry.max_atempts`");
        assert_eq!((d.line, d.column), (3, 1));
        assert_eq!(d.hint.as_deref(), Some("did you mean `max_attempts`?"));
    }

    #[test]
    fn unknown_key_without_close_match_lists_expected_keys() {
        let source = format!("name = \"b\"\ncolour = \"red\"\n{MINIMAL_STEP}");
        let diags = errors(&source);
        assert_eq!(diags.len(), 1);
        let hint = diags[0].hint.as_deref().unwrap();
        assert!(hint.starts_with("expected one of `name`"), "{hint}");
        assert!(hint.contains("`steps`"), "{hint}");
    }

    #[test]
    fn unknown_step_kind_lists_known_kinds_with_suggestion() {
        let source =
            "name = \"b\"\n[[steps]]\nname = \"fetch\"\nkind = \"comand\"\nargv = [\"x\"]\n";
        let diags = errors(source);
        // Only the kind: its keys are not reported as unknown on top.
        assert_eq!(diags.len(), 1, "{diags:#?}");
        let d = &diags[0];
        assert_eq!(
            d.message,
            "`kind` in step `fetch` must be one of `command`, `extract`, `email`, `browser`, found \"comand\""
        );
        assert_eq!((d.line, d.column), (4, 8));
        assert_eq!(d.hint.as_deref(), Some("did you mean `command`?"));
    }

    #[test]
    fn bad_cron_schedule_is_reported_with_croners_reason() {
        let source = format!(
            "name = \"b\"\n[[triggers]]\nkind = \"cron\"\nschedule = \"0 61 * * *\"\n{MINIMAL_STEP}"
        );
        let diags = errors(&source);
        assert_eq!(diags.len(), 1, "{diags:#?}");
        let d = &diags[0];
        assert!(d.message.starts_with(
            "`schedule` in trigger #1 is not a valid cron schedule, found \"0 61 * * *\": "
        ));
        assert_eq!((d.line, d.column), (4, 12));

        // Seven fields (a year) are not allowed.
        let source = format!(
            "name = \"b\"\n[[triggers]]\nkind = \"cron\"\nschedule = \"0 0 6 * * * 2030\"\n{MINIMAL_STEP}"
        );
        let d = &errors(&source)[0];
        assert!(d.message.contains("5 or 6 fields"), "{}", d.message);
    }

    #[test]
    fn bad_time_zone_is_reported_with_a_hint() {
        let source = format!(
            "name = \"b\"\n[[triggers]]\nkind = \"cron\"\nschedule = \"0 6 * * *\"\ntimezone = \"Europe/Berln\"\n{MINIMAL_STEP}"
        );
        let diags = errors(&source);
        assert_eq!(diags.len(), 1, "{diags:#?}");
        assert_eq!(
            diags[0].message,
            "`timezone` in trigger #1 must be a known time zone, found \"Europe/Berln\""
        );
        assert_eq!((diags[0].line, diags[0].column), (5, 12));
        assert_eq!(
            diags[0].hint.as_deref(),
            Some("did you mean `Europe/Berlin`?")
        );

        let source = format!(
            "name = \"b\"\n[[triggers]]\nkind = \"cron\"\nschedule = \"0 6 * * *\"\ntimezone = \"Nowhere At All\"\n{MINIMAL_STEP}"
        );
        let hint = errors(&source)[0].hint.clone().unwrap();
        assert!(hint.contains("\"Europe/Berlin\""), "{hint}");
    }

    #[test]
    fn notify_names_the_server_owners_and_reviewers_are_mailed_through() {
        let source = format!(
            r#"name = "b"
owners = ["ops@example.com"]
reviewers = ["AP Team <ap@example.com>"]

[notify]
host = "127.0.0.1"
port = 2525
tls = "plain"
allow_plain = true
from = "clerk@example.com"
review_every = "15m"

{MINIMAL_STEP}"#
        );
        let bot = parse(&source).expect("valid manifest");
        assert_eq!(bot.reviewers, ["AP Team <ap@example.com>"]);
        let notify = bot.notify.expect("notify");
        assert_eq!(notify.server.port, 2525);
        assert_eq!(notify.from, "clerk@example.com");
        assert_eq!(notify.review_every, Duration::from_secs(900));
    }

    #[test]
    fn reviewers_without_a_server_and_bad_addresses_are_errors() {
        let diags = errors(&format!(
            "name = \"b\"\nreviewers = [\"ap@example.com\"]\n{MINIMAL_STEP}"
        ));
        assert_eq!(diags.len(), 1, "{diags:#?}");
        assert_eq!(diags[0].line, 2);
        assert!(diags[0].message.contains("[notify]"), "{diags:#?}");

        let diags = errors(&format!(
            "name = \"b\"\nowners = [\"ops at example\"]\n{MINIMAL_STEP}"
        ));
        assert_eq!(diags.len(), 1, "{diags:#?}");
        assert!(
            diags[0]
                .message
                .contains("`ops at example` is not a mail address"),
            "{diags:#?}"
        );

        let diags = errors(&format!(
            "name = \"b\"\n[notify]\nhost = \"h\"\nfrom = \"x\"\nreview_evry = \"1m\"\n{MINIMAL_STEP}"
        ));
        assert_eq!(diags.len(), 2, "{diags:#?}");
    }

    #[test]
    fn browser_actions_have_one_verb_each() {
        let step = |actions: &str| {
            format!(
                "name = \"b\"\n[[steps]]\nname = \"erp\"\nkind = \"browser\"\nactions = [\n{actions}\n]\n"
            )
        };
        let bot = parse(&step(
            r##"{ goto = "http://erp/login" },
  { fill = "#user", value = "${secret:ERP_USER}", timeout = "3s" },
  { dialog = "dismiss" },
  { read = "#n", into = "booking" },"##,
        ))
        .expect("valid");
        let StepConfig::Browser(config) = &bot.steps[0].config else {
            panic!("a browser step");
        };
        assert_eq!(config.actions.len(), 4);
        assert_eq!(
            config.actions[1],
            crate::browser::Action::Fill {
                selector: "#user".into(),
                value: "${secret:ERP_USER}".into(),
                timeout: Some(Duration::from_secs(3)),
            }
        );
        assert_eq!(
            config.actions[2],
            crate::browser::Action::Dialog { accept: false }
        );

        let diags = errors(&step(r##"{ click = "#a", fill = "#b", value = "x" }"##));
        assert!(
            diags[0].message.contains("one verb, found fill and click"),
            "{diags:#?}"
        );
        assert_eq!(diags[0].line, 6);
        let diags = errors(&step(r##"{ clik = "#a" }"##));
        assert!(
            diags[0].message.contains("an action needs one of goto"),
            "{diags:#?}"
        );
    }

    #[test]
    fn syntax_error_gives_one_diagnostic_at_its_location() {
        let diags = errors("name = \"b\"\nconcurrency = = 2\n[[steps]]\n");
        assert_eq!(diags.len(), 1, "{diags:#?}");
        assert!(diags[0].message.starts_with("invalid TOML: "));
        assert_eq!((diags[0].line, diags[0].column), (2, 15));

        let diags = errors("name = \"b\"\nowners = [\"a\"\n");
        assert_eq!(diags.len(), 1, "{diags:#?}");
        assert_eq!(diags[0].line, 2);
    }

    #[test]
    fn duplicate_step_names_are_reported_at_the_second() {
        let source = format!("name = \"b\"\n{MINIMAL_STEP}{MINIMAL_STEP}");
        let diags = errors(&source);
        assert_eq!(diags.len(), 1, "{diags:#?}");
        assert_eq!(diags[0].message, "step name `fetch` is used twice");
        assert_eq!((diags[0].line, diags[0].column), (7, 8));
        assert_eq!(diags[0].hint.as_deref(), Some("the other is at line 3"));
    }

    #[test]
    fn duplicate_trigger_ids_are_reported() {
        let source = format!(
            "name = \"b\"\n[[triggers]]\nkind = \"interval\"\nevery = \"1m\"\n[[triggers]]\nkind = \"interval\"\nevery = \"60s\"\n{MINIMAL_STEP}"
        );
        let diags = errors(&source);
        assert_eq!(diags.len(), 1, "{diags:#?}");
        assert_eq!(diags[0].message, "two triggers have the id `every:60s`");
        assert_eq!((diags[0].line, diags[0].column), (5, 1));
    }

    #[test]
    fn missing_steps_is_a_file_level_error() {
        let diags = errors("name = \"b\"\n");
        assert_eq!(diags.len(), 1, "{diags:#?}");
        assert_eq!((diags[0].line, diags[0].column), (0, 0));
        assert!(diags[0].message.contains("at least one step"));

        let diags = errors("name = \"b\"\nsteps = []\n");
        assert_eq!(diags.len(), 1, "{diags:#?}");
        assert_eq!((diags[0].line, diags[0].column), (2, 9));

        // An empty file misses both its name and its steps.
        let diags = errors("");
        assert_eq!(diags.len(), 2, "{diags:#?}");
        find(&diags, "missing required key `name`");
        find(&diags, "at least one step");
    }

    #[test]
    fn structural_problems_are_reported() {
        let source = r#"name = "b"
retry = 5

[[triggers]]
kind = "manual"
catch_up = "skip"

[[triggers]]
kind = "interval"
every = "500ms"

[[triggers]]
every = "1m"

[[steps]]
kind = "command"
argv = []
env = { A = 1 }
failure = "fatal"
"#;
        let diags = errors(source);
        let expected: &[(usize, usize, &str)] = &[
            (2, 9, "`retry` must be a table, found integer 5"),
            (
                6,
                1,
                "`catch_up` in trigger #1 does not apply to a manual trigger",
            ),
            (
                10,
                9,
                "`every` in trigger #2 must be at least 1s, found 500ms",
            ),
            (12, 1, "missing required key `kind` in trigger #3"),
            (15, 1, "missing required key `name` in step #1"),
            (17, 8, "`argv` in step #1 must not be empty"),
            (
                18,
                7,
                "`env` in step #1 must be a table of strings, found integer 1 at `A`",
            ),
            (
                19,
                11,
                "`failure` in step #1 must be one of `transient`, `business`, found \"fatal\"",
            ),
        ];
        for (line, column, text) in expected {
            let d = find(&diags, text);
            assert_eq!((d.line, d.column), (*line, *column), "position of {d:?}");
        }
        assert_eq!(diags.len(), expected.len(), "{diags:#?}");
    }

    #[test]
    fn backoff_cap_shorter_than_backoff_is_an_error() {
        let source = format!(
            "name = \"b\"\n[retry]\nbackoff = \"1m\"\nbackoff_cap = \"30s\"\n{MINIMAL_STEP}"
        );
        let diags = errors(&source);
        assert_eq!(diags.len(), 1, "{diags:#?}");
        assert_eq!(
            diags[0].message,
            "`retry.backoff_cap` (30s) must not be shorter than `retry.backoff` (1m)"
        );
        assert_eq!((diags[0].line, diags[0].column), (4, 15));

        // An invalid backoff is reported once, not compared on top.
        let source = format!(
            "name = \"b\"\n[retry]\nbackoff = \"0s\"\nbackoff_cap = \"30s\"\n{MINIMAL_STEP}"
        );
        let diags = errors(&source);
        assert_eq!(diags.len(), 1, "{diags:#?}");
        assert!(
            diags[0]
                .message
                .starts_with("`retry.backoff` must be a duration longer than zero")
        );
    }

    #[test]
    fn bad_names_are_rejected() {
        let long = "a".repeat(65);
        let source = format!("name = \"{long}\"\n{MINIMAL_STEP}");
        let diags = errors(&source);
        assert_eq!(diags.len(), 1);
        assert!(diags[0].message.contains("at most 64 characters"));
        let source = format!("name = \"-x\"\n{MINIMAL_STEP}");
        assert_eq!(errors(&source).len(), 1);
        let source = format!("name = \"{}\"\n{MINIMAL_STEP}", "a".repeat(64));
        assert!(parse(&source).is_ok());
    }

    #[test]
    fn malformed_secret_references_are_reported_at_their_value() {
        let diags = errors(
            "name = \"b\"\n[[steps]]\nname = \"s\"\nkind = \"command\"\nargv = [\"x\", \"${secret:erp pw}\"]\nenv = { A = \"${secrt:B}\" }\n",
        );
        let argv = find(&diags, "`argv` in step `s` has a bad reference");
        assert_eq!((argv.line, argv.column), (5, 8));
        let env = find(&diags, "`env` in step `s` has a bad reference");
        assert!(env.message.contains("${secret:NAME}"), "{}", env.message);
    }

    #[test]
    fn an_extract_step_needs_usable_templates() {
        let diags = errors(
            "name = \"b\"\n[[steps]]\nname = \"extract\"\nkind = \"extract\"\ntemplates = \"no-such-folder\"\n",
        );
        let d = find(&diags, "step `extract`: templates folder");
        assert!(
            d.message.ends_with("no-such-folder does not exist"),
            "{}",
            d.message
        );
        let diags = errors("name = \"b\"\n[[steps]]\nname = \"extract\"\nkind = \"extract\"\n");
        find(&diags, "missing required key `templates` in step `extract`");
    }
}
