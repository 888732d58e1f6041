//! The `[[triggers]]` of a bot file: what starts jobs besides `clerk run`.
//! Cron, interval, manual and folder triggers are read here; a mailbox
//! trigger's own keys are read by `mail::poll`, which runs it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use croner::parser::{CronParser, Seconds, Year};
use serde_json::Value as Json;

use super::{CatchUp, Trigger, TriggerKind};
use crate::config::{JsonTable, Problem, Sink, TableReader, at_least_a_second, closest, one_of};
use crate::mail::poll::read_mailbox;

/// The reference of `[[triggers]]`, but for a mailbox trigger's own keys.
pub const REFERENCE: &str = r#"What starts jobs besides `clerk run`. A bot has zero or more.

```toml
[[triggers]]
kind = "cron"
schedule = "0 30 6 * * Mon-Fri"
timezone = "Europe/Berlin"
catch_up = "once"
name = "morning"
input = { folder = "inbox" }

[[triggers]]
kind = "folder"
path = "inbox"
patterns = ["*.pdf", "*.tif"]
```

Keys of every trigger:

- `kind`: required; `"cron"`, `"interval"`, `"folder"`, `"mailbox"` or
  `"manual"`.
- `name`: optional; the trigger's identity, remembered with the last slot
  fired. Default: `cron:<schedule>@<timezone>`, `every:<seconds>s`,
  `folder:<path>`, `mailbox:<user>@<host>/<folder>` or `manual`. No two
  triggers of a bot may have the same identity.
- `input`: optional table, the input of the jobs the trigger starts.
  Default: an empty table.

A key of another kind (`every` on a cron trigger) is an error.

`kind = "cron"`:

- `schedule`: required. 5 fields (minute hour day-of-month month
  day-of-week) or 6 with seconds first.
- `timezone`: optional IANA zone such as `"Europe/Berlin"`, default `"UTC"`.
- `catch_up`: `"once"` (default) runs the latest slot missed while no
  scheduler ran, once; `"skip"` waits for the next slot. A slot seen less
  than a minute late is on time either way.

`kind = "interval"`:

- `every`: required; duration of at least `"1s"`. Slots are aligned to the
  Unix epoch, so every scheduler computes the same ones.
- `catch_up`: as for cron.

Each cron or interval slot is one job, keyed `schedule:<trigger>:<slot
time>`, however many `clerk serve` processes share the job database.

`kind = "manual"`: only `clerk run` starts the bot. Every bot can be run by
hand; this trigger says it is meant to be.

`kind = "folder"`: a job for every file dropped into a folder.

- `path`: required; the folder watched, relative to the bot's folder.
- `patterns`: optional list of file name patterns (`*`, `?`, `[abc]`; case
  does not matter). Default: PDFs and scans (`*.pdf`, `*.png`, `*.jpg`,
  `*.jpeg`, `*.tif`, `*.tiff`).
- `settle`: optional duration, default `"2s"`. A file is taken once its
  size and modification time have not changed for this long, so a file
  still being copied in is left alone.
- `rescan`: optional duration of at least `"1s"`, default `"30s"`. The
  folder is read on every change the system reports, and at least this
  often besides (network shares report none).

A dropped file is hard-linked to `processed/<first 12 hex digits of its
SHA-256>-<name>` (copied where links are not possible), queued as one job
keyed `drop:<trigger>:<sha256>` with the input `{"name", "sha256",
"size", "media_type"}` plus the trigger's `input` (the document is kept
in the document store, and the job's steps get a copy as `input.file`),
and only then removed: the same
content dropped twice, under any name, is one job. Empty or unreadable
files go to `failed/` with `<name>.error.txt` saying why.

`kind = "mailbox"`: see *Mailbox triggers* below.
"#;

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

pub fn read_triggers(sink: &Sink, readers: Option<Vec<TableReader>>) -> Vec<Trigger> {
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
        t.set_suffix(format!(" in trigger `{name}`"));
    }
    let at = t.span_of("name").map_or_else(|| t.start(), |s| s.start);
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
        TriggerKindName::Cron => read_cron(&mut t),
        TriggerKindName::Interval => read_interval(&mut t),
        TriggerKindName::Manual => Some((TriggerKind::Manual, "manual".to_string())),
        TriggerKindName::Mailbox => read_mailbox(&mut t).map(|config| {
            let id = format!("mailbox:{}@{}/{}", config.user, config.host, config.folder);
            (TriggerKind::Mailbox(Box::new(config)), id)
        }),
        TriggerKindName::Folder => read_folder(&mut t),
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

/// A cron trigger's keys, and the id derived from them.
fn read_cron(t: &mut TableReader) -> Option<(TriggerKind, String)> {
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

/// An interval trigger's keys, and the id derived from them.
fn read_interval(t: &mut TableReader) -> Option<(TriggerKind, String)> {
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

/// Files a folder trigger takes when it names no `patterns`: the documents
/// clerk reads.
const DEFAULT_FOLDER_PATTERNS: &[&str] = &["*.pdf", "*.png", "*.jpg", "*.jpeg", "*.tif", "*.tiff"];

/// A folder trigger's keys, and the id derived from them.
fn read_folder(t: &mut TableReader) -> Option<(TriggerKind, String)> {
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
    path.zip(patterns)
        .zip(settle.zip(rescan))
        .map(|((path, patterns), (settle, rescan))| {
            let id = format!("folder:{}", path.display());
            let kind = TriggerKind::Folder {
                path,
                patterns,
                settle,
                rescan,
            };
            (kind, id)
        })
}

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
