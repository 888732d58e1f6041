//! The `clerk` command.

mod args;
mod bots;
mod documents;
mod events;
mod extract;
mod output;
mod parallel;
mod people;
mod review;
mod runs;
mod serve;
mod stats;
mod templates;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

use crate::bot::{self, BotRegistry};
use crate::config::secrets::Secrets;
use crate::jobs::{self, JobDb};

pub use args::Cli;
use args::{BotsFolder, Command, Database, DbCommand, LogFormat, Logging, ReadArgs, SecretsFile};

/// Exit codes, documented in `--help` and the README.
pub mod exit {
    /// Job succeeded, or the command did what was asked.
    pub const OK: u8 = 0;
    /// Something went wrong running the command (database unreachable, …).
    pub const ERROR: u8 = 1;
    /// Bad usage or invalid bot files.
    pub const USAGE: u8 = 2;
    /// The job ended failed, dead or cancelled.
    pub const JOB_FAILED: u8 = 3;
    /// The job waits for a reviewer.
    pub const JOB_IN_REVIEW: u8 = 4;
    /// `--wait` gave up before the job ended.
    pub const WAIT_TIMEOUT: u8 = 5;
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    // Tesseract's OpenMP threads would fight over the cores with clerk's
    // own reading threads; one engine per thread is faster.
    // SAFETY: set before any thread is started.
    unsafe {
        std::env::set_var("OMP_THREAD_LIMIT", "1");
    }
    // Documents, the database and evidence are the user's alone.
    crate::config::permissions::keep_private();
    let cli = Cli::parse();
    if matches!(cli.command, Command::Reader) {
        return match crate::documents::isolation::serve_reader() {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(exit::ERROR),
        };
    }
    // Documents are read in reader processes of this same binary.
    if let Ok(exe) = std::env::current_exe() {
        crate::documents::isolation::use_reader_executable(exe);
    }
    // Like other Unix tools, end quietly when the reader of our output goes
    // away (`clerk runs list | head`) instead of failing on a broken pipe.
    // Not in the long-running processes: they write job documents to steps'
    // stdin, and a step that exits without reading must cost an EPIPE, not
    // the worker.
    if !matches!(
        cli.command,
        Command::Serve(_) | Command::Worker(_) | Command::Web(_)
    ) {
        // SAFETY: setting a signal disposition at start-up, before any threads.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    init_logging(&cli.logging, &cli.command);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::from(exit::ERROR)
        }
    }
}

/// An error with its causes, leaving out causes whose text the message
/// already contains (many errors repeat their source in their own text).
fn error_chain(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}

fn init_logging(logging: &Logging, command: &Command) {
    use tracing_subscriber::EnvFilter;
    let long_running = matches!(
        command,
        Command::Serve(_) | Command::Worker(_) | Command::Web(_)
    );
    let level = match (logging.verbose, long_running) {
        (0, true) => "info",
        (0, false) => "warn",
        (1, _) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("clerk={level},lopdf=error,warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match logging.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

impl Database {
    fn url(&self) -> String {
        match &self.database {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", self.data_dir.join("clerk.db").display()),
        }
    }

    /// The document store `--documents` names.
    fn documents(&self, db: &JobDb) -> anyhow::Result<crate::document_store::Documents> {
        self.documents
            .open(&self.data_dir, db)
            .map_err(anyhow::Error::msg)
    }

    /// Where workers copy jobs' documents for their steps.
    fn scratch(&self) -> std::path::PathBuf {
        self.data_dir.join("scratch")
    }

    /// Open the job database and bring its schema up to date.
    async fn open(&self) -> anyhow::Result<JobDb> {
        let url = self.url();
        let db = jobs::connect(&url).await?;
        db.migrate().await?;
        if let Some(path) = url.strip_prefix("sqlite://").map(std::path::Path::new)
            && let Some(mode) = crate::config::permissions::open_to_others(path)
        {
            tracing::warn!(
                database = %path.display(),
                mode = format!("{mode:o}"),
                "the job database can be read by other users: chmod 600 {}*",
                path.display()
            );
        }
        Ok(db)
    }
}

/// How the web server runs, checked: plain HTTP on an address others reach
/// is refused unless a TLS proxy is said to stand in front.
fn web_config(args: &args::WebArgs, db: &Database) -> anyhow::Result<crate::server::WebConfig> {
    let config = crate::server::WebConfig {
        listen: args.listen,
        tls: args.tls_cert.clone().zip(args.tls_key.clone()),
        behind_proxy: args.insecure_http_behind_proxy,
        session_ttl: args.session_ttl,
        cache_dir: db.data_dir.join("pages"),
        metrics_allow: args.metrics_allow.clone(),
    };
    config.check().map_err(anyhow::Error::msg)?;
    Ok(config)
}

impl SecretsFile {
    fn load(&self) -> anyhow::Result<Arc<Secrets>> {
        Ok(Arc::new(match &self.secrets {
            Some(path) => Secrets::with_file(path)?,
            None => Secrets::from_env(),
        }))
    }
}

impl BotsFolder {
    /// Load bots; invalid ones are reported and left out.
    fn load(&self) -> Arc<BotRegistry> {
        let report = bot::load_dir(&self.bots);
        for d in &report.diagnostics {
            tracing::error!("{d}");
        }
        for w in &report.warnings {
            tracing::warn!("{w}");
        }
        if !report.diagnostics.is_empty() {
            tracing::warn!(
                problems = report.diagnostics.len(),
                "some bot files are invalid and were not loaded; run `clerk bots validate`"
            );
        }
        Arc::new(BotRegistry::new(report.bots))
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Serve(args) => {
            let r = &args.running;
            let secrets = r.secrets.load()?;
            let db = r.db.open().await?;
            let bots = r.bots.load();
            let web = (!args.no_web)
                .then(|| web_config(&args.web, &r.db))
                .transpose()?;
            let roles = serve::Roles {
                workers: !args.no_workers,
                scheduler: true,
                retention: Some(serve::Retention {
                    jobs: args.retention,
                    stats: args.stats_retention,
                    keys: args.key_retention,
                    document_grace: args::DOCUMENT_GRACE_DURATION,
                }),
                web,
            };
            let place = serve::Place {
                documents: r.db.documents(&db)?,
                scratch: r.db.scratch(),
            };
            serve::serve(db, bots, secrets, &args.worker, roles, place).await
        }
        Command::Web(args) => {
            let web = web_config(&args.web, &args.db)?;
            let db = args.db.open().await?;
            let bots = args.bots.load();
            let documents = args.db.documents(&db)?;
            serve::web(db, bots, web, documents).await
        }
        Command::Worker(args) => {
            let r = &args.running;
            let secrets = r.secrets.load()?;
            let db = r.db.open().await?;
            let bots = r.bots.load();
            let roles = serve::Roles {
                workers: true,
                scheduler: false,
                retention: None,
                web: None,
            };
            let place = serve::Place {
                documents: r.db.documents(&db)?,
                scratch: r.db.scratch(),
            };
            serve::serve(db, bots, secrets, &args.worker, roles, place).await
        }
        Command::Run(args) => runs::run(args).await,
        Command::Read(args) => read_documents(args),
        Command::Extract(args) => extract::extract_documents(args),
        Command::Templates(cmd) => templates::templates(cmd),
        Command::Reader => Ok(exit::OK),
        Command::Runs(cmd) => runs::runs(cmd).await,
        Command::Bots(cmd) => bots::bots(cmd).await,
        Command::Stats(a) => stats::stats(a).await,
        Command::Report(a) => stats::report(a).await,
        Command::Events(cmd) => events::events(cmd).await,
        Command::Review(cmd) => review::review(cmd).await,
        Command::Users(cmd) => people::users(cmd).await,
        Command::Tokens(cmd) => people::tokens(cmd).await,
        Command::Documents(cmd) => documents::documents(cmd).await,
        Command::Db(DbCommand::Migrate { db }) => {
            db.open().await?;
            println!(
                "job database at {} is up to date",
                jobs::redact_url(&db.url())
            );
            Ok(exit::OK)
        }
        Command::Db(DbCommand::Prune {
            db,
            older_than,
            stats_retention,
            key_retention,
            document_grace,
        }) => {
            let store = db.open().await?;
            let documents = db.documents(&store)?;
            let keep = serve::Retention {
                jobs: older_than,
                stats: stats_retention,
                keys: key_retention,
                document_grace,
            };
            let pruned = serve::prune_all(&store, documents.as_ref(), &keep).await?;
            println!(
                "deleted {} finished jobs older than {} (their figures are kept), {} daily figures older than {} and {} keys older than {}",
                pruned.jobs,
                humantime::format_duration(older_than),
                pruned.days,
                humantime::format_duration(stats_retention),
                pruned.keys,
                humantime::format_duration(key_retention)
            );
            let d = &pruned.documents;
            println!(
                "deleted {} documents no job refers to ({}) from {}; kept {} that jobs refer to and {} put within {}",
                d.deleted,
                output::bytes(d.freed_bytes),
                documents.describe(),
                d.in_use,
                d.recent,
                humantime::format_duration(document_grace)
            );
            Ok(exit::OK)
        }
    }
}

/// `clerk read`: every file is tried; one bad file does not stop the others.
fn read_documents(args: ReadArgs) -> anyhow::Result<u8> {
    use crate::documents::{ReadOptions, read_file};
    let options = ReadOptions {
        max_pages: args.max_pages,
        ocr_languages: crate::documents::ocr::tesseract_languages(&args.languages),
        ..ReadOptions::default()
    };
    let progress = parallel::progress_bar(args.files.len());
    let read =
        parallel::for_each_document(&args.files, args.threads, &options, &progress, read_file);
    progress.finish_and_clear();
    let mut failed = 0;
    let mut results = Vec::new();
    for (file, result) in args.files.iter().zip(read) {
        let result = result.unwrap_or_else(|| {
            Err(crate::documents::DocumentError::ReaderCrashed(
                "the reader thread failed".into(),
            ))
        });
        match result {
            Ok(doc) => {
                if args.json {
                    results.push(serde_json::json!({ "file": file, "document": doc }));
                } else {
                    if args.files.len() > 1 {
                        println!("==> {} <==", file.display());
                    }
                    println!("{}", doc.layout_text());
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {}: {e}", file.display());
                if args.json {
                    results.push(serde_json::json!({ "file": file, "error": e.to_string() }));
                }
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    Ok(if failed == 0 { exit::OK } else { exit::ERROR })
}

fn read_input(arg: &str) -> anyhow::Result<serde_json::Value> {
    let text = match arg.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading input file {path}"))?
        }
        None => arg.to_string(),
    };
    serde_json::from_str(&text).context("--input is not valid JSON")
}

/// Who runs the command, for the audit trail: the name of the process's
/// real uid in the user database, else `uid:N`. Never `$USER`, which
/// anyone can set to anyone.
fn whoami() -> String {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    user_name(uid).unwrap_or_else(|| format!("uid:{uid}"))
}

/// The login name of `uid` (getpwuid_r: /etc/passwd, LDAP, … as the
/// system is set up).
fn user_name(uid: libc::uid_t) -> Option<String> {
    let mut buffer = vec![0 as libc::c_char; 4096];
    // SAFETY: an all-zero passwd is a valid value to be filled in.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is to memory we own, sized as passed.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() || entry.pw_name.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points to a NUL-terminated string in `buffer`.
    let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) };
    Some(name.to_string_lossy().into_owned())
}
