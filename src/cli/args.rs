//! The `clerk` command line: every command, its flags and their help.
//! Options appear on the commands they matter to: the job database on
//! those that open it, the bots folder on those that load bots, the secrets
//! file on those that run steps.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::jobs::{JobState, Role};

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
    pub logging: Logging,
    #[command(subcommand)]
    pub command: Command,
}

/// How much clerk logs, and how; every command logs to stderr.
#[derive(Debug, Args)]
pub struct Logging {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Where the job database is.
#[derive(Debug, Args, Clone)]
pub struct Database {
    /// Job database URL: sqlite://PATH or postgres://USER@HOST/DB.
    /// Default: sqlite://DATA_DIR/clerk.db
    #[arg(long, env = "DATABASE_URL", value_name = "URL")]
    pub database: Option<String>,
    /// Folder of the embedded SQLite database when no --database is given.
    #[arg(
        long,
        env = "CLERK_DATA_DIR",
        default_value = "data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
    /// Where documents are kept: `local` (the folder `documents/` in the
    /// data folder), `local:/path` (a folder every machine mounts),
    /// `database` (in the job database: with PostgreSQL, every worker on
    /// every machine reaches them with nothing else to run), or
    /// `s3://bucket/prefix` (S3-compatible storage; credentials and
    /// endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
    /// AWS_ENDPOINT_URL).
    #[arg(
        long,
        env = "CLERK_DOCUMENTS",
        default_value = "local",
        value_name = "STORE"
    )]
    pub documents: crate::document_store::StoreChoice,
}

/// Where the bots are.
#[derive(Debug, Args, Clone)]
pub struct BotsFolder {
    /// Folder holding one sub-folder per bot, each with a bot.toml.
    #[arg(long, env = "CLERK_BOTS", default_value = "bots", value_name = "DIR")]
    pub bots: PathBuf,
}

/// Where secrets come from besides the environment.
#[derive(Debug, Args, Clone)]
pub struct SecretsFile {
    /// File of NAME=value lines for `${secret:NAME}` references that are not
    /// set in the environment. Keep it readable by clerk's user only.
    #[arg(long, env = "CLERK_SECRETS_FILE", value_name = "FILE")]
    pub secrets: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the scheduler and workers until stopped (SIGTERM or Ctrl-C drains).
    Serve(ServeArgs),
    /// Run workers only (no scheduler), e.g. on extra machines sharing PostgreSQL.
    Worker(WorkerCommand),
    /// Serve only the web pages and the API, against a shared job database.
    Web(WebCommand),
    /// Enqueue one job of a bot now.
    Run(RunArgs),
    /// Look at and act on jobs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Check and list bots, and print the reference of bot files.
    #[command(subcommand)]
    Bots(BotsCommand),
    /// Manage the job database.
    #[command(subcommand)]
    Db(DbCommand),
    /// Manage the document store: move documents to another store.
    #[command(subcommand)]
    Documents(DocumentsCommand),
    /// The figures of a period: documents in, straight-through rate,
    /// exceptions by kind, cycle time and its parts, the review backlog.
    Stats(super::stats::StatsArgs),
    /// The process-health report of a period (default: the last 30 days)
    /// against the period before: per bot volume, straight-through rate,
    /// exceptions by kind, cycle time, review effort, top failure reasons.
    Report(super::stats::ReportArgs),
    /// The job log for process mining (OCEL 2.0 or a flat CSV).
    #[command(subcommand)]
    Events(super::events::EventsCommand),
    /// Work the review queue from the command line, as a local admin.
    #[command(subcommand)]
    Review(ReviewCommand),
    /// Manage the people who sign in to the web pages.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage the tokens scripts call the API with.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Extract fields from documents with invoice2data-style templates.
    Extract(ExtractArgs),
    /// Check invoice2data-style templates.
    #[command(subcommand)]
    Templates(super::templates::TemplatesCommand),
    /// The document reader process clerk starts for itself.
    #[command(name = "__reader", hide = true)]
    Reader,
    /// Read documents and print their text with columns kept in place, as
    /// extraction rules see it (with --json: pages, words, boxes, confidence).
    Read(ReadArgs),
}

#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// PDFs and scans (PNG, JPEG, TIFF), or folders of them (searched recursively).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Folder of templates (.yml, .yaml, .json), searched recursively.
    #[arg(long, short = 't')]
    pub templates: PathBuf,
    /// One JSON document per input, in a list.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// One CSV row per document: file, template, then every field.
    #[arg(long)]
    pub csv: bool,
    /// Say which template matched and why the others did not, and for each
    /// field the rule and the text it matched.
    #[arg(long)]
    pub explain: bool,
    /// Documents read at once (default: one per core). Cores left over read
    /// the pages of a scan in parallel.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Languages scanned pages are first read in (ISO codes such as `de` or
    /// tesseract's `deu`; English is always added). A matching template's
    /// own `languages` then reads its documents again in those.
    #[arg(long, value_delimiter = ',', default_value = "en")]
    pub languages: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    /// PDFs and scans (PNG, JPEG, TIFF).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print pages, words with their boxes and confidence, and the layout
    /// text as JSON, one object per file in a list.
    #[arg(long)]
    pub json: bool,
    /// Refuse documents with more pages than this.
    #[arg(long, default_value_t = 500)]
    pub max_pages: usize,
    /// Languages scanned pages are read in (ISO codes such as `de` or
    /// tesseract's `deu`; English is always added).
    #[arg(long, value_delimiter = ',', default_value = "en")]
    pub languages: Vec<String>,
    /// Documents read at once (default: one per core). Cores left over read
    /// the pages of a scan in parallel.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// How a process's workers run jobs.
#[derive(Debug, Args, Clone)]
pub struct WorkerArgs {
    /// Jobs run at once by this process.
    #[arg(long, short = 'c', default_value_t = 4)]
    pub concurrency: usize,
    /// Jobs claimed ahead of free slots (default: as many as --concurrency).
    #[arg(long)]
    pub prefetch: Option<usize>,
    /// How long a claimed job stays reserved without a heartbeat; a worker
    /// that dies loses its jobs after this.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub lease: Duration,
    /// How often leases are renewed and cancels noticed.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub heartbeat: Duration,
    /// How often to look for due jobs when no wake-up arrives.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
    /// On shutdown, how long running steps may take to finish before they are
    /// interrupted and their jobs given back to the queue.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub grace: Duration,
    /// Name of this worker in leases and the audit trail; a random suffix
    /// makes each start unique, so a restarted process never takes over
    /// the leases of the one before it.
    #[arg(long, env = "CLERK_WORKER_ID")]
    pub worker_id: Option<String>,
    /// The step kinds this worker runs, as `browser,extract` (`ocr` is
    /// `extract`: reading scans). It claims only jobs of bots whose every
    /// step is of these kinds. Each is tried at start; one that cannot run
    /// here is an error. Default: every kind that runs here (the others are
    /// named in the log and left to other workers).
    #[arg(long, env = "CLERK_KINDS", value_delimiter = ',', value_name = "KINDS")]
    pub kinds: Vec<String>,
}

/// What every process that runs bots needs: the database, the bots, the
/// secrets.
#[derive(Debug, Args, Clone)]
pub struct Running {
    #[command(flatten)]
    pub db: Database,
    #[command(flatten)]
    pub bots: BotsFolder,
    #[command(flatten)]
    pub secrets: SecretsFile,
}

/// How the web pages and the API are served.
#[derive(Debug, Args, Clone)]
pub struct WebArgs {
    /// Address the web pages and the API listen on. An address other
    /// machines reach needs --tls-cert and --tls-key, or
    /// --insecure-http-behind-proxy.
    #[arg(
        long,
        env = "CLERK_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub listen: std::net::SocketAddr,
    /// PEM certificate chain for HTTPS (with --tls-key).
    #[arg(long, requires = "tls_key", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8) of the certificate.
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP on an address other machines reach, because a TLS
    /// reverse proxy stands in front; cookies are then marked Secure.
    #[arg(long)]
    pub insecure_http_behind_proxy: bool,
    /// A browser session ends after this long without a request.
    #[arg(long, default_value = "8h", value_parser = humantime::parse_duration)]
    pub session_ttl: Duration,
    /// Addresses or networks (CIDR) that may read /metrics without a
    /// token, comma-separated: e.g. the Prometheus server's. Others need
    /// an API token (`Authorization: Bearer`).
    #[arg(long, value_delimiter = ',', value_parser = ip_net, value_name = "NETS")]
    pub metrics_allow: Vec<ipnet::IpNet>,
}

/// An address (`10.0.0.5`) or a network (`10.0.0.0/8`).
fn ip_net(s: &str) -> Result<ipnet::IpNet, String> {
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{s}` is neither an address nor a network such as 10.0.0.0/8"))
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub running: Running,
    #[command(flatten)]
    pub worker: WorkerArgs,
    #[command(flatten)]
    pub web: WebArgs,
    /// Serve no web pages and no API (workers and the scheduler only).
    #[arg(long)]
    pub no_web: bool,
    /// Delete finished jobs (and their history) older than this.
    #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
    pub retention: Duration,
    /// Delete daily figures (the dashboard's and the report's) older than
    /// this; they are kept apart from the jobs, which go sooner.
    #[arg(long, default_value = STATS_RETENTION, value_parser = humantime::parse_duration)]
    pub stats_retention: Duration,
    /// Forget idempotency keys (of dropped files, mails, slots) older than
    /// this; until then a document seen again is known, its job pruned or
    /// not.
    #[arg(long, default_value = KEY_RETENTION, value_parser = humantime::parse_duration)]
    pub key_retention: Duration,
    /// Do not start workers; only schedule.
    #[arg(long)]
    pub no_workers: bool,
}

#[derive(Debug, Args)]
pub struct WorkerCommand {
    #[command(flatten)]
    pub running: Running,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

#[derive(Debug, Args)]
pub struct WebCommand {
    #[command(flatten)]
    pub db: Database,
    #[command(flatten)]
    pub bots: BotsFolder,
    #[command(flatten)]
    pub web: WebArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub db: Database,
    #[command(flatten)]
    pub bots: BotsFolder,
    /// Name of the bot.
    pub bot: String,
    /// Input of the job as JSON, or @FILE to read it from a file.
    #[arg(long, default_value = "{}")]
    pub input: String,
    /// Idempotency key: a second run with the same key returns the first job.
    #[arg(long)]
    pub key: Option<String>,
    /// Wait until the job ends; the exit code tells how it ended.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this long (exit code 5).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One job, by its id.
#[derive(Debug, Args)]
pub struct JobId {
    /// The job's id, as `clerk runs list` shows it.
    pub id: i64,
    #[command(flatten)]
    pub db: Database,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List jobs, newest first.
    List {
        #[command(flatten)]
        db: Database,
        /// Only jobs of this bot.
        #[arg(long)]
        bot: Option<String>,
        /// Only jobs in this state: queued, running, waiting_review,
        /// succeeded, failed, dead or cancelled.
        #[arg(long)]
        state: Option<JobState>,
        /// At most this many jobs.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Also list mailbox polls (`<bot>:<trigger>` jobs), which are left
        /// out unless --bot names one.
        #[arg(long)]
        polls: bool,
        /// Print the jobs as JSON, a list of objects.
        #[arg(long)]
        json: bool,
    },
    /// Show one job: why it waits for review and the values it extracted
    /// first, then every attempt and step with times, outcome, error and
    /// output, and the audit trail.
    Show {
        #[command(flatten)]
        job: JobId,
        /// Print the job as JSON, with every attempt, step and event.
        #[arg(long)]
        json: bool,
        /// Also the rule, page and box of every extracted field, the checks
        /// it passed, and every step's whole output.
        #[arg(long)]
        full: bool,
    },
    /// Queue a failed, dead or cancelled job again; it resumes at the step
    /// that failed.
    Retry {
        #[command(flatten)]
        job: JobId,
    },
    /// Cancel a queued, waiting or running job.
    Cancel {
        #[command(flatten)]
        job: JobId,
    },
    /// Let a job waiting for review go on at its next step.
    Approve {
        #[command(flatten)]
        job: JobId,
        /// Why, for the audit trail.
        #[arg(long, default_value = "approved")]
        note: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum BotsCommand {
    /// Check bot files; prints every problem as FILE:LINE:COLUMN. The keys
    /// a bot file may hold are in docs/bot-reference.md (or `clerk bots
    /// reference`).
    Validate {
        /// Folder of bots (default: --bots).
        dir: Option<std::path::PathBuf>,
        #[command(flatten)]
        bots: BotsFolder,
        /// Print the valid bots and every problem as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List valid bots with their triggers and steps.
    List {
        #[command(flatten)]
        bots: BotsFolder,
        /// Print the bots as JSON, a list of objects.
        #[arg(long)]
        json: bool,
    },
    /// Print the reference of every key a bot file may hold, as Markdown
    /// (the same text as docs/bot-reference.md).
    Reference,
    /// Pause a bot on every node: its triggers do not fire and its queued
    /// jobs wait until it is resumed; running jobs finish.
    Pause(super::bots::PauseArgs),
    /// Resume a paused bot.
    Resume(super::bots::PauseArgs),
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user. The password is read from stdin, or asked for twice on
    /// a terminal; it is kept only as an argon2id hash.
    Add {
        /// The name the user signs in with.
        name: String,
        /// viewer (reads), reviewer (reviews), operator (also retries,
        /// cancels, runs) or admin (also manages users).
        #[arg(long)]
        role: Role,
        /// A group the user belongs to, which a bot's `review_by` may name
        /// (repeat for several).
        #[arg(long = "group", value_name = "GROUP", value_parser = group_name)]
        groups: Vec<String>,
        #[command(flatten)]
        db: Database,
    },
    /// Change a user's role or groups; their sessions go on with the new
    /// rights.
    Set {
        /// The user's name.
        name: String,
        /// The new role.
        #[arg(long)]
        role: Option<Role>,
        /// The user's groups from now on (repeat for several); replaces
        /// the ones they had.
        #[arg(long = "group", value_name = "GROUP", value_parser = group_name)]
        groups: Vec<String>,
        /// Take the user out of every group.
        #[arg(long, conflicts_with = "groups")]
        no_groups: bool,
        #[command(flatten)]
        db: Database,
    },
    /// List users and their roles.
    List {
        #[command(flatten)]
        db: Database,
        /// Print the users as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a user and end their sessions.
    Remove {
        /// The user's name.
        name: String,
        #[command(flatten)]
        db: Database,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create an API token, sent as `Authorization: Bearer TOKEN`. It is
    /// printed once and kept only as a hash.
    Create {
        /// What the token is for, unique: it names the token in the audit
        /// trail (`token:NAME`).
        name: String,
        /// viewer, reviewer, operator or admin.
        #[arg(long)]
        role: Role,
        #[command(flatten)]
        db: Database,
    },
    /// List tokens: their names, roles and last use (never the tokens).
    List {
        #[command(flatten)]
        db: Database,
        /// Print the tokens as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token.
    Revoke {
        /// The token's name.
        name: String,
        #[command(flatten)]
        db: Database,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// List the documents waiting for review, oldest first.
    List {
        #[command(flatten)]
        db: Database,
        /// Only reviews of this bot.
        #[arg(long)]
        bot: Option<String>,
        /// Only reviews with a reason containing this text.
        #[arg(long)]
        reason: Option<String>,
        /// Only reviews past their bot's `review_within`.
        #[arg(long)]
        overdue: bool,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Print the reviews as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a review: its fields (the unsure first) and the checks that
    /// fail.
    Show {
        #[command(flatten)]
        job: JobId,
        #[command(flatten)]
        bots: BotsFolder,
        /// Print the review and its view as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Correct (or supply) a field's value, typed as the template types it.
    Set {
        #[command(flatten)]
        job: JobId,
        #[command(flatten)]
        bots: BotsFolder,
        /// The field's name.
        field: String,
        /// The value: plain (1234.56, 2026-08-16) or as the document prints
        /// it; empty to withdraw a correction. For `lines`, every row as JSON:
        /// '[{"qty": "25", "unit_price": "7.23", "amount": "180.75"}, …]'.
        value: String,
    },
    /// Approve: the reviewed values go on to the next step.
    Approve {
        #[command(flatten)]
        job: JobId,
        #[command(flatten)]
        bots: BotsFolder,
        /// A note for the audit trail.
        #[arg(long, default_value = "")]
        note: String,
        /// Why to approve although checks fail or required fields are
        /// missing.
        #[arg(long = "override", value_name = "WHY")]
        override_note: Option<String>,
    },
    /// Reject: the job fails with the reason, and its owners hear of it.
    Reject {
        #[command(flatten)]
        job: JobId,
        /// Why the document is rejected.
        #[arg(long)]
        reason: String,
    },
    /// Put a review off: it keeps waiting, with the reason as a note.
    Postpone {
        #[command(flatten)]
        job: JobId,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Write each document approved with corrections since DATE, with its
    /// final values, as a fixture a template test can use: `NAME.pdf`,
    /// `NAME.json` (field → value) and `NAME.review.json` (who, what).
    Export {
        #[command(flatten)]
        db: Database,
        /// Approvals since this date (2026-12-01) or time (RFC 3339).
        #[arg(long)]
        since: String,
        /// The folder to write the fixtures into (made if missing).
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum DocumentsCommand {
    /// Move every document of the store `--documents` names into another,
    /// each copied, read back and checked before it is removed where it
    /// was. Safe to stop and run again: nothing is lost or copied twice.
    /// Then start every process with the new `--documents`. A job that a
    /// worker still on the old store takes meanwhile does not find its
    /// document and is retried; `--keep` copies instead of moving, for a
    /// switch without such retries. Documents of unfinished jobs queued
    /// before documents were kept in a store (they name a file on this
    /// machine) are put into the new store too.
    #[command(
        after_help = "Example: move a single machine's documents into PostgreSQL\n\n  \
        clerk documents migrate --database postgres://clerk@db/clerk --to database"
    )]
    Migrate {
        #[command(flatten)]
        db: Database,
        /// The store to move to: `database` (`postgres`) or `local:/path`.
        #[arg(long, value_name = "STORE")]
        to: crate::document_store::StoreChoice,
        /// Leave the documents where they are too (a copy, not a move).
        #[arg(long)]
        keep: bool,
        /// Print what was done as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create or upgrade the job database schema.
    Migrate {
        #[command(flatten)]
        db: Database,
    },
    /// Delete finished jobs older than the given age now.
    Prune {
        #[command(flatten)]
        db: Database,
        /// Age of the finished jobs to delete, as "30d" or "12h". Their
        /// days are rolled up first: the figures outlive them.
        #[arg(long, value_parser = humantime::parse_duration)]
        older_than: Duration,
        /// Age of the daily figures to delete.
        #[arg(long, default_value = STATS_RETENTION, value_parser = humantime::parse_duration)]
        stats_retention: Duration,
        /// Age of the idempotency keys to forget (their jobs pruned).
        #[arg(long, default_value = KEY_RETENTION, value_parser = humantime::parse_duration)]
        key_retention: Duration,
        /// Documents no job refers to any more are deleted once they were
        /// last put this long ago (a document just taken may be on its way
        /// to its job).
        #[arg(long, default_value = DOCUMENT_GRACE, value_parser = humantime::parse_duration)]
        document_grace: Duration,
    },
}

/// How long a document no job refers to is kept since it was last put:
/// far longer than intake takes from keeping a document to queueing its job.
pub const DOCUMENT_GRACE: &str = "1h";
/// [`DOCUMENT_GRACE`] for `clerk serve`'s own pruning.
pub const DOCUMENT_GRACE_DURATION: Duration = Duration::from_secs(3600);

/// How long daily figures are kept by default: a year's report and the
/// year before it, for its trend.
pub const STATS_RETENTION: &str = "800d";

/// How long idempotency keys are kept by default: over a year, so a
/// document that comes again after a year's pruning of jobs is known.
pub const KEY_RETENTION: &str = "400d";

/// A group's name: as bot and step names, and not a role's.
fn group_name(name: &str) -> Result<String, String> {
    if name.parse::<Role>().is_ok() {
        return Err(format!(
            "`{name}` is a role; groups need names of their own"
        ));
    }
    crate::config::valid_name(name.to_string())
        .map_err(|p| format!("a group's name {}", p.message()))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every command and every argument a person can see explains itself.
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if arg
                    .get_help()
                    .is_none_or(|h| h.to_string().trim().is_empty())
                {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.is_hide_set() || sub.get_name() == "help" {
                    continue;
                }
                let name = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    missing.push(format!("{name} (the command)"));
                }
                walk(sub, &name, missing);
            }
        }
        let cli = Cli::command();
        cli.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&cli, "clerk", &mut missing);
        assert!(missing.is_empty(), "without help: {missing:#?}");
    }

    /// Options are offered where they matter, and only there.
    #[test]
    fn options_appear_only_on_the_commands_they_matter_to() {
        let cli = Cli::command();
        let find = |path: &[&str]| {
            let mut cmd = &cli;
            for name in path {
                cmd = cmd.find_subcommand(name).expect("a command");
            }
            cmd.get_arguments()
                .map(|a| a.get_id().as_str().to_string())
                .collect::<Vec<_>>()
        };
        for path in [&["extract"][..], &["read"], &["bots", "reference"]] {
            let args = find(path);
            for option in ["database", "data_dir", "bots", "secrets"] {
                assert!(
                    !args.iter().any(|a| a == option),
                    "{path:?} offers --{option}"
                );
            }
        }
        for path in [
            &["serve"][..],
            &["worker"],
            &["run"],
            &["runs", "list"],
            &["runs", "show"],
            &["db", "migrate"],
        ] {
            assert!(find(path).iter().any(|a| a == "database"), "{path:?}");
        }
        for path in [&["serve"][..], &["worker"]] {
            assert!(find(path).iter().any(|a| a == "secrets"), "{path:?}");
        }
        for path in [&["runs", "list"][..], &["run"], &["db", "prune"]] {
            assert!(!find(path).iter().any(|a| a == "secrets"), "{path:?}");
        }
    }
}
