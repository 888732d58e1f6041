//! The `clerk` command.

mod extract;
mod output;
mod parallel;
mod serve;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::bot::{self, BotRegistry};
use crate::jobs::{self, JobDb, JobState, ListFilter, NewJob};

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

const AFTER_HELP: &str = "\
Exit codes: 0 success; 1 error; 2 bad usage or invalid bot files;
3 job failed, dead or cancelled; 4 job waiting for review; 5 --wait timed out.

Examples:
  clerk bots validate                 check every bots/*/bot.toml
  clerk serve                         scheduler + workers on ./data/clerk.db
  clerk run nightly-report --wait     run a bot now and wait for the outcome
  clerk runs list --state dead        what needs attention
  DATABASE_URL=postgres://localhost/clerk clerk worker --concurrency 8";

/// clerk runs document-processing bots: a scheduler starts jobs, workers run
/// each job's steps in order, and every run is recorded with its retries in
/// a job database (an SQLite file by default, PostgreSQL to scale out).
#[derive(Debug, Parser)]
#[command(name = "clerk", version, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
    /// Job database URL: sqlite://PATH or postgres://USER@HOST/DB.
    /// Default: sqlite://DATA_DIR/clerk.db
    #[arg(long, global = true, env = "DATABASE_URL", value_name = "URL")]
    database: Option<String>,
    /// Folder for the embedded database and run artifacts.
    #[arg(
        long,
        global = true,
        env = "CLERK_DATA_DIR",
        default_value = "data",
        value_name = "DIR"
    )]
    data_dir: PathBuf,
    /// Folder holding one sub-folder per bot, each with a bot.toml.
    #[arg(
        long,
        global = true,
        env = "CLERK_BOTS",
        default_value = "bots",
        value_name = "DIR"
    )]
    bots: PathBuf,
    /// File of NAME=value lines for `${secret:NAME}` references that are not
    /// set in the environment. Keep it readable by clerk's user only.
    #[arg(long, global = true, env = "CLERK_SECRETS_FILE", value_name = "FILE")]
    secrets: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the scheduler and workers until stopped (SIGTERM or Ctrl-C drains).
    Serve(ServeArgs),
    /// Run workers only (no scheduler), e.g. on extra machines sharing PostgreSQL.
    Worker(WorkerArgs),
    /// Enqueue one job of a bot now.
    Run(RunArgs),
    /// Look at and act on jobs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Check and list bots.
    #[command(subcommand)]
    Bots(BotsCommand),
    /// Manage the job database.
    #[command(subcommand)]
    Db(DbCommand),
    /// Extract fields from documents with invoice2data-style templates.
    Extract(ExtractArgs),
    /// The document reader process clerk starts for itself.
    #[command(name = "__reader", hide = true)]
    Reader,
    /// Read documents and print their text with columns kept in place, as
    /// extraction rules see it (with --json: pages, words, boxes, confidence).
    Read(ReadArgs),
}

#[derive(Debug, Args)]
struct ExtractArgs {
    /// PDFs and scans (PNG, JPEG, TIFF), or folders of them (searched recursively).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Folder of templates (.yml, .yaml, .json), searched recursively.
    #[arg(long, short = 't')]
    templates: PathBuf,
    /// One JSON document per input, in a list.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// One CSV row per document: file, template, then every field.
    #[arg(long)]
    csv: bool,
    /// Say which template matched and why the others did not, and for each
    /// field the rule and the text it matched.
    #[arg(long)]
    explain: bool,
    /// Documents read at once (default: one per core). Cores left over read
    /// the pages of a scan in parallel.
    #[arg(long)]
    threads: Option<usize>,
    /// Languages scanned pages are first read in (ISO codes such as `de` or
    /// tesseract's `deu`; English is always added). A matching template's
    /// own `languages` then reads its documents again in those.
    #[arg(long, value_delimiter = ',', default_value = "en")]
    languages: Vec<String>,
}

#[derive(Debug, Args)]
struct ReadArgs {
    /// PDFs and scans (PNG, JPEG, TIFF).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[arg(long)]
    json: bool,
    /// Refuse documents with more pages than this.
    #[arg(long, default_value_t = 500)]
    max_pages: usize,
    /// Languages scanned pages are read in (ISO codes such as `de` or
    /// tesseract's `deu`; English is always added).
    #[arg(long, value_delimiter = ',', default_value = "en")]
    languages: Vec<String>,
    /// Documents read at once (default: one per core). Cores left over read
    /// the pages of a scan in parallel.
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct WorkerArgs {
    /// Jobs run at once by this process.
    #[arg(long, short = 'c', default_value_t = 4)]
    concurrency: usize,
    /// Jobs claimed ahead of free slots (default: as many as --concurrency).
    #[arg(long)]
    prefetch: Option<usize>,
    /// How long a claimed job stays reserved without a heartbeat; a worker
    /// that dies loses its jobs after this.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    lease: Duration,
    /// How often leases are renewed and cancels noticed.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    heartbeat: Duration,
    /// How often to look for due jobs when no wake-up arrives.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    poll_interval: Duration,
    /// On shutdown, how long running steps may take to finish before they are
    /// interrupted and their jobs given back to the queue.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    grace: Duration,
    /// Name of this worker in leases and the audit trail.
    #[arg(long)]
    worker_id: Option<String>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    worker: WorkerArgs,
    /// Delete finished jobs (and their history) older than this.
    #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
    retention: Duration,
    /// Do not start workers; only schedule.
    #[arg(long)]
    no_workers: bool,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Name of the bot.
    bot: String,
    /// Input of the job as JSON, or @FILE to read it from a file.
    #[arg(long, default_value = "{}")]
    input: String,
    /// Idempotency key: a second run with the same key returns the first job.
    #[arg(long)]
    key: Option<String>,
    /// Wait until the job ends; the exit code tells how it ended.
    #[arg(long)]
    wait: bool,
    /// With --wait: give up after this long (exit code 5).
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    /// List jobs, newest first.
    List {
        #[arg(long)]
        bot: Option<String>,
        /// queued, running, waiting_review, succeeded, failed, dead or cancelled.
        #[arg(long)]
        state: Option<JobState>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Show one job: every attempt and step with times, outcome, error and
    /// output, and the audit trail.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Queue a failed, dead or cancelled job again; it resumes at the step
    /// that failed.
    Retry { id: i64 },
    /// Cancel a queued, waiting or running job.
    Cancel { id: i64 },
    /// Let a job waiting for review go on at its next step.
    Approve {
        id: i64,
        /// Why, for the audit trail.
        #[arg(long, default_value = "approved")]
        note: String,
    },
}

#[derive(Debug, Subcommand)]
enum BotsCommand {
    /// Check bot files; prints every problem as FILE:LINE:COLUMN.
    Validate {
        /// Folder of bots (default: --bots).
        dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// List valid bots with their triggers and steps.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Create or upgrade the job database schema.
    Migrate,
    /// Delete finished jobs older than the given age now.
    Prune {
        #[arg(long, value_parser = humantime::parse_duration)]
        older_than: Duration,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    // Tesseract's OpenMP threads would fight over the cores with clerk's
    // own reading threads; one engine per thread is faster.
    // SAFETY: set before any thread is started.
    unsafe {
        std::env::set_var("OMP_THREAD_LIMIT", "1");
    }
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
    if !matches!(cli.command, Command::Serve(_) | Command::Worker(_)) {
        // SAFETY: setting a signal disposition at start-up, before any threads.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    init_logging(&cli.global, &cli.command);
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

fn init_logging(global: &Global, command: &Command) {
    use tracing_subscriber::EnvFilter;
    let long_running = matches!(command, Command::Serve(_) | Command::Worker(_));
    let level = match (global.verbose, long_running) {
        (0, true) => "info",
        (0, false) => "warn",
        (1, _) => "debug",
        _ => "trace",
    };
    // headless_chrome warns about every tab it follows that clerk closed
    // on its own connection; those are not news.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "clerk={level},lopdf=error,headless_chrome=error,warn"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match global.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

impl Global {
    fn database_url(&self) -> String {
        match &self.database {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", self.data_dir.join("clerk.db").display()),
        }
    }

    /// Open the job database and bring its schema up to date.
    async fn open_db(&self) -> anyhow::Result<JobDb> {
        let url = self.database_url();
        let db = jobs::connect(&url).await?;
        db.migrate().await?;
        Ok(db)
    }

    fn load_secrets(&self) -> anyhow::Result<Arc<crate::bot::secrets::Secrets>> {
        use crate::bot::secrets::Secrets;
        Ok(Arc::new(match &self.secrets {
            Some(path) => Secrets::with_file(path)?,
            None => Secrets::from_env(),
        }))
    }

    /// Load bots; invalid ones are reported and left out.
    fn load_bots(&self) -> Arc<BotRegistry> {
        let report = bot::load_dir(&self.bots);
        for d in &report.diagnostics {
            tracing::error!("{d}");
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
    let g = &cli.global;
    match cli.command {
        Command::Serve(args) => {
            let secrets = g.load_secrets()?;
            let db = g.open_db().await?;
            let bots = g.load_bots();
            let roles = serve::Roles {
                workers: !args.no_workers,
                scheduler: true,
                retention: Some(args.retention),
            };
            serve::serve(db, bots, secrets, &args.worker, roles).await
        }
        Command::Worker(args) => {
            let secrets = g.load_secrets()?;
            let db = g.open_db().await?;
            let bots = g.load_bots();
            let roles = serve::Roles {
                workers: true,
                scheduler: false,
                retention: None,
            };
            serve::serve(db, bots, secrets, &args, roles).await
        }
        Command::Run(args) => run(g, args).await,
        Command::Read(args) => read_documents(args),
        Command::Extract(args) => extract::extract_documents(args),
        Command::Reader => Ok(exit::OK),
        Command::Runs(cmd) => runs(g, cmd).await,
        Command::Bots(cmd) => bots(g, cmd),
        Command::Db(DbCommand::Migrate) => {
            g.open_db().await?;
            println!(
                "job database at {} is up to date",
                jobs::redact_url(&g.database_url())
            );
            Ok(exit::OK)
        }
        Command::Db(DbCommand::Prune { older_than }) => {
            let db = g.open_db().await?;
            let n = serve::prune_all(&db, older_than).await?;
            println!(
                "deleted {n} finished jobs older than {}",
                humantime::format_duration(older_than)
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

/// Who runs the command, for the audit trail: $USER, else the name of the
/// process's uid in /etc/passwd, else `uid:N`.
fn whoami() -> String {
    if let Ok(u) = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")) {
        return u;
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut f = line.split(':');
                let name = f.next()?;
                let id = f.nth(1)?;
                (id.parse::<u32>().ok()? == uid).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| format!("uid:{uid}"))
}

async fn run(g: &Global, args: RunArgs) -> anyhow::Result<u8> {
    let input = read_input(&args.input)?;
    let registry = g.load_bots();
    let Some(bot) = registry.get(&args.bot) else {
        let known = registry.names();
        let names: Vec<&str> = known.iter().map(String::as_str).collect();
        let hint = bot::closest(&args.bot, &names)
            .map(|n| format!("; did you mean `{n}`?"))
            .unwrap_or_default();
        eprintln!(
            "error: no valid bot named `{}` in {} (known: {}){hint}",
            args.bot,
            g.bots.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
        return Ok(exit::USAGE);
    };
    let db = g.open_db().await?;
    let job = NewJob {
        bot: bot.name.clone(),
        input,
        idempotency_key: args.key.clone(),
        max_attempts: bot.retry.max_attempts,
        max_lost: bot.retry.max_lost,
        run_after: None,
        created_by: format!("cli:{}", whoami()),
    };
    let enq = db
        .enqueue(std::slice::from_ref(&job))
        .await?
        .into_iter()
        .next()
        .context("enqueue returned nothing")?;
    if !args.wait {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&enq)?);
        } else if enq.created {
            println!("job {} queued for bot {}", enq.id, bot.name);
        } else {
            println!("job {} already exists for this key ({})", enq.id, enq.state);
        }
        return Ok(exit::OK);
    }
    if !args.json {
        eprintln!("job {} queued for bot {}; waiting", enq.id, bot.name);
    }
    let started = Instant::now();
    let mut hinted = false;
    let state = loop {
        let state = db
            .state(enq.id)
            .await?
            .context("the job vanished while waiting")?;
        if state.is_finished() || state == JobState::WaitingReview {
            break state;
        }
        if !hinted && state == JobState::Queued && started.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "job {} is still queued: is a worker running (`clerk serve`)?",
                enq.id
            );
            hinted = true;
        }
        if let Some(t) = args.timeout
            && started.elapsed() > t
        {
            eprintln!(
                "gave up waiting for job {} after {}; it is {state}",
                enq.id,
                humantime::format_duration(t)
            );
            return Ok(exit::WAIT_TIMEOUT);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let detail = db.job(enq.id).await?.context("the job vanished")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&detail)?);
    } else {
        output::print_outcome(&detail);
    }
    Ok(match state {
        JobState::Succeeded => exit::OK,
        JobState::WaitingReview => exit::JOB_IN_REVIEW,
        _ => exit::JOB_FAILED,
    })
}

async fn runs(g: &Global, cmd: RunsCommand) -> anyhow::Result<u8> {
    let db = g.open_db().await?;
    let actor = format!("cli:{}", whoami());
    match cmd {
        RunsCommand::List {
            bot,
            state,
            limit,
            json,
        } => {
            let jobs = db
                .list(&ListFilter {
                    bot,
                    state,
                    limit,
                    before_id: None,
                })
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&jobs)?);
            } else {
                output::print_list(&jobs);
            }
        }
        RunsCommand::Show { id, json } => {
            let Some(detail) = db.job(id).await? else {
                eprintln!("error: job {id} does not exist");
                return Ok(exit::ERROR);
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&detail)?);
            } else {
                output::print_detail(&detail);
            }
        }
        RunsCommand::Retry { id } => {
            db.retry(id, &actor).await?;
            println!("job {id} queued again; it resumes at the step that failed");
        }
        RunsCommand::Approve { id, note } => {
            db.approve(id, &actor, &note).await?;
            println!("job {id} approved; it goes on at its next step");
        }
        RunsCommand::Cancel { id } => match db.cancel(id, &actor).await? {
            jobs::CancelOutcome::Cancelled => println!("job {id} cancelled"),
            jobs::CancelOutcome::Requested => {
                println!("job {id} is running; its worker stops it within a few seconds")
            }
        },
    }
    Ok(exit::OK)
}

fn bots(g: &Global, cmd: BotsCommand) -> anyhow::Result<u8> {
    match cmd {
        BotsCommand::Validate { dir, json } => {
            let dir = dir.unwrap_or_else(|| g.bots.clone());
            if !dir.is_dir() {
                bail!("{} is not a folder", dir.display());
            }
            let report = bot::load_dir(&dir);
            let (polls, written): (Vec<_>, Vec<_>) =
                report.bots.iter().partition(|b| b.is_mailbox_poll());
            if json {
                let v = serde_json::json!({
                    "valid": written.iter().map(|b| &b.name).collect::<Vec<_>>(),
                    "mailbox_polls": polls.iter().map(|b| &b.name).collect::<Vec<_>>(),
                    "problems": report.diagnostics,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for d in &report.diagnostics {
                    println!("{d}");
                }
                let files: std::collections::BTreeSet<&Path> = report
                    .diagnostics
                    .iter()
                    .map(|d| d.file.as_path())
                    .collect();
                let polls = match polls.len() {
                    0 => String::new(),
                    n => format!(" (with {n} mailbox poll bot(s) of their triggers)"),
                };
                println!(
                    "{} valid bot(s){polls}; {} problem(s) in {} file(s)",
                    written.len(),
                    report.diagnostics.len(),
                    files.len()
                );
            }
            Ok(if report.diagnostics.is_empty() {
                exit::OK
            } else {
                exit::USAGE
            })
        }
        BotsCommand::List { json } => {
            let registry = g.load_bots();
            if json {
                let list: Vec<_> = registry.iter().map(|b| output::bot_json(b)).collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                output::print_bots(&registry);
            }
            Ok(exit::OK)
        }
    }
}
