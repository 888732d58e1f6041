//! Tests of reading bot files: every problem reported with its place, the
//! values read, and each kind's keys through the registry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::command::CommandConfig;
use crate::step::FailureKind;

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

/// A bot file with every section, read by the two tests below.
const FULL: &str = r#"name = "invoice-intake"
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

#[test]
fn full_manifest_parses_into_expected_values() {
    let source = FULL;
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
}

#[test]
fn full_manifest_steps_parse_into_expected_values() {
    let bot = parse(FULL).expect("valid manifest");
    assert_eq!(bot.steps.len(), 2);
    assert_eq!(bot.runners.len(), 2);
    assert!(bot.runners.iter().all(|r| r.kind() == "command"));
    let fetch = &bot.steps[0];
    assert_eq!(fetch.name, "fetch");
    assert_eq!(fetch.timeout, Some(Duration::from_secs(120)));
    let config = fetch
        .config
        .downcast_ref::<CommandConfig>()
        .expect("fetch is a command step");
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
    let config = book
        .config
        .downcast_ref::<CommandConfig>()
        .expect("book is a command step");
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
        "name = \"mail\"\nsecrets = [\"IMAP_PW\"]\n[[triggers]]\nkind = \"mailbox\"\nhost = \"imap.example.com\"\nuser = \"finance\"\npassword = \"${{secret:IMAP_PW}}\"\nafter = \"flag\"\n{MINIMAL_STEP}"
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
    let source = "name = \"b\"\n[[steps]]\nname = \"fetch\"\nkind = \"comand\"\nargv = [\"x\"]\n";
    let diags = errors(source);
    // Only the kind: its keys are not reported as unknown on top.
    assert_eq!(diags.len(), 1, "{diags:#?}");
    let d = &diags[0];
    // Every kind the registry lists, in its order; a new kind joins the list.
    let kinds: Vec<String> = kinds::KINDS
        .iter()
        .map(|k| format!("`{}`", k.name()))
        .collect();
    assert!(
        kinds
            .join(", ")
            .starts_with("`command`, `extract`, `email`, `browser`")
    );
    assert_eq!(
        d.message,
        format!(
            "`kind` in step `fetch` must be one of {}, found \"comand\"",
            kinds.join(", ")
        )
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
fn a_bot_names_the_secrets_it_uses() {
    let source = "name = \"b\"\nsecrets = [\"ERP_PW\"]\n[[steps]]\nname = \"s\"\nkind = \"command\"\nargv = [\"x\", \"${secret:ERP_PW}\"]\nenv = { A = \"${secret:AWS_SECRET_ACCESS_KEY}\" }\n";
    let diags = errors(source);
    let d = find(
        &diags,
        "secret `AWS_SECRET_ACCESS_KEY` is used but not declared",
    );
    assert_eq!(d.line, 7);
    assert!(
        d.hint.as_deref().unwrap_or("").contains("secrets = ["),
        "{d:?}"
    );
    assert!(
        !diags.iter().any(|d| d.message.contains("ERP_PW")),
        "{diags:?}"
    );

    let bot = parse(&format!(
        "name = \"b\"\nsecrets = [\"ERP_PW\"]\n{MINIMAL_STEP}"
    ))
    .expect("valid");
    assert_eq!(bot.secrets, vec!["ERP_PW"]);
    let diags = errors(&format!(
        "name = \"b\"\nsecrets = [\"ERP_PW\", \"ERP_PW\", \"a b\"]\n{MINIMAL_STEP}"
    ));
    assert_eq!(find(&diags, "listed twice").line, 2);
}

#[test]
fn browser_actions_have_one_verb_each() {
    let step = |actions: &str| {
        format!(
            "name = \"b\"\nsecrets = [\"ERP_USER\"]\n[[steps]]\nname = \"erp\"\nkind = \"browser\"\nactions = [\n{actions}\n]\n"
        )
    };
    let bot = parse(&step(
        r##"{ goto = "http://erp/login" },
  { fill = "#user", value = "${secret:ERP_USER}", timeout = "3s" },
  { dialog = "dismiss" },
  { read = "#n", into = "booking" },"##,
    ))
    .expect("valid");
    let config = bot.steps[0]
        .config
        .downcast_ref::<crate::browser::BrowserConfig>()
        .expect("a browser step");
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
    assert_eq!(diags[0].line, 7);
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
    let source =
        format!("name = \"b\"\n[retry]\nbackoff = \"1m\"\nbackoff_cap = \"30s\"\n{MINIMAL_STEP}");
    let diags = errors(&source);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(
        diags[0].message,
        "`retry.backoff_cap` (30s) must not be shorter than `retry.backoff` (1m)"
    );
    assert_eq!((diags[0].line, diags[0].column), (4, 15));

    // An invalid backoff is reported once, not compared on top.
    let source =
        format!("name = \"b\"\n[retry]\nbackoff = \"0s\"\nbackoff_cap = \"30s\"\n{MINIMAL_STEP}");
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

/// A bot whose extract step has `rules`, with the fixture templates.
fn with_rules(top: &str, rules: &str) -> String {
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("bots/invoice-intake/templates");
    format!(
        "name = \"b\"\n{top}\n[[steps]]\nname = \"extract\"\nkind = \"extract\"\ntemplates = \"{}\"\n{rules}",
        templates.display()
    )
}

#[test]
fn review_rules_and_deadlines_are_read() {
    let bot = parse(&with_rules(
        "review_within = \"4h\"\nreview_by = \"accounts\"",
        "[[steps.review_if]]\nfield = \"amount\"\nabove = 10000\nreason = \"big\"\nreview_by = \"controllers\"\n\
         [[steps.review_if]]\nfield = \"issuer\"\nunseen = true\nreason = \"new vendor\"\n\
         [[steps.review_if]]\nfield = \"date\"\noutside = \"-45d..0d\"\nreason = \"closed period\"\n\
         [[steps.review_if]]\nfield = \"amount\"\ndiffers_from = \"input.po_total\"\nreason = \"not the PO\"\n",
    ))
    .unwrap();
    assert_eq!(bot.review_within, Some(Duration::from_secs(4 * 3600)));
    assert_eq!(bot.review_by.as_deref(), Some("accounts"));
    let config = bot.steps[0]
        .config
        .downcast_ref::<crate::extract::ExtractConfig>()
        .unwrap();
    use crate::extract::rules::RuleTest;
    let tests: Vec<&RuleTest> = config.rules.iter().map(|r| &r.test).collect();
    assert_eq!(tests[0], &RuleTest::Above(10000.0));
    assert_eq!(tests[1], &RuleTest::Unseen);
    assert!(matches!(tests[2], RuleTest::Outside(_)));
    assert_eq!(tests[3], &RuleTest::DiffersFrom("input.po_total".into()));
    assert_eq!(config.rules[0].review_by.as_deref(), Some("controllers"));
    assert_eq!(config.rules[1].reason, "new vendor");
}

#[test]
fn a_wrong_review_rule_is_reported_at_its_place() {
    let diags = errors(&with_rules(
        "review_within = \"0s\"",
        "[[steps.review_if]]\nfield = \"amount\"\nreason = \"no test\"\n\
         [[steps.review_if]]\nfield = \"amount\"\nabove = 1\nbelow = 0\nreason = \"two tests\"\n\
         [[steps.review_if]]\nfield = \"date\"\noutside = \"2026-12-01..2026-11-01\"\nreason = \"r\"\n\
         [[steps.review_if]]\nfield = \"amount\"\nabove = \"lots\"\nreason = \"r\"\n\
         [[steps.review_if]]\nfield = \"amount\"\nabove = 1\nreson = \"typo\"\n",
    ));
    find(
        &diags,
        "`review_within` must be a duration longer than zero",
    );
    let none = find(&diags, "needs one test");
    assert_eq!(none.line, 7);
    find(&diags, "takes one test");
    find(&diags, "starts after it ends");
    find(&diags, "`above` in review_if #4 must be a number");
    find(&diags, "unknown key `reson` in review_if #5");
    find(&diags, "missing required key `reason` in review_if #5");
}
