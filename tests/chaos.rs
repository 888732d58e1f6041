//! The fault suite's chaos run: invoices through the example bot as shipped
//! (extract, book into the legacy ERP through headless Chromium, confirm by
//! mail), arriving by mail through a real Dovecot and dropped into its
//! folder, some both ways, while a driver kills clerk processes with
//! SIGKILL, crashes and restarts PostgreSQL, takes the IMAP server away and
//! kills chromium. The ERP books an invoice a second time if asked, as many
//! legacy systems do, so a double booking shows as one instead of hiding as
//! a failed job.
//!
//! Afterwards: every document has exactly one job, in an end state; no
//! invoice is booked twice and every booked job's invoice once; no job is
//! left queued or running; no mail is lost (each mailed document has its
//! job and the inbox is empty).
//!
//! CI runs a short version (the 20 fixture invoices, a few kills).
//! `scripts/chaos.sh` runs the long one (300 generated invoices, a dozen
//! kills, a 60 s IMAP outage) through the `CLERK_CHAOS_*` variables below,
//! and prints the figures.
//!
//! Only the example bot's addresses and its retry pacing are changed: its
//! retries wait 2 s instead of 30 s, and a job may lose its worker 20
//! times, since losing workers is what this run does on purpose.

mod common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::dovecot::{self, Dovecot};
use common::erp::{self, Erp, install_example};
use common::postgres::PrivatePostgres;
use common::smtp::SmtpServer;
use sha2::Digest;

/// What one run does; the defaults are CI's short run.
struct Plan {
    docs: Vec<PathBuf>,
    /// SIGKILLs of clerk processes, one every `kill_every`.
    kills: usize,
    kill_every: Duration,
    imap_outage: Duration,
    chromium_kills: usize,
    /// A document is fed every this long.
    feed_every: Duration,
    /// The run fails if it has not settled by then.
    limit: Duration,
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pdfs_in(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)
            .expect("a folder of invoices")
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "pdf") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

impl Plan {
    fn from_env() -> Plan {
        let docs = match std::env::var("CLERK_CHAOS_DOCS") {
            Ok(dir) => pdfs_in(Path::new(&dir)),
            Err(_) => pdfs_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/invoices")),
        };
        assert!(!docs.is_empty(), "no invoices to feed");
        Plan {
            docs,
            kills: env_number("CLERK_CHAOS_KILLS", 4) as usize,
            kill_every: Duration::from_secs(env_number("CLERK_CHAOS_KILL_EVERY", 4)),
            imap_outage: Duration::from_secs(env_number("CLERK_CHAOS_IMAP_OUTAGE", 8)),
            chromium_kills: env_number("CLERK_CHAOS_CHROMIUM_KILLS", 1) as usize,
            feed_every: Duration::from_millis(env_number("CLERK_CHAOS_FEED_EVERY_MS", 150)),
            limit: Duration::from_secs(env_number("CLERK_CHAOS_LIMIT", 600)),
        }
    }
}

/// One clerk process of the run, started again after each kill.
struct Member {
    name: String,
    args: Vec<String>,
    data_dir: PathBuf,
    child: Option<Child>,
}

/// The clerk processes of the run.
struct Fleet {
    members: Vec<Member>,
    env: Vec<(String, String)>,
    logs: PathBuf,
}

impl Fleet {
    fn spawn(&mut self, i: usize) {
        let m = &mut self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{}.log", m.name)))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_clerk"))
            .args(&m.args)
            .env_remove("DATABASE_URL")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("CLERK_DATA_DIR", &m.data_dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start clerk");
        m.child = Some(child);
    }

    /// SIGKILL member `i` and start it again.
    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.spawn(i);
    }

    fn pids(&self) -> Vec<u32> {
        self.members
            .iter()
            .filter_map(|m| m.child.as_ref().map(Child::id))
            .collect()
    }

    /// SIGTERM everyone (they drain) and reap them.
    fn stop(&mut self) {
        for m in &mut self.members {
            if let Some(child) = &m.child {
                // SAFETY: signalling our own child.
                unsafe {
                    libc::kill(child.id() as i32, libc::SIGTERM);
                }
            }
        }
        for m in &mut self.members {
            if let Some(mut child) = m.child.take() {
                common::wait_exit(&mut child, Duration::from_secs(60));
            }
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut child) = m.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// SIGKILL the main process of a chromium a clerk process started; whether
/// there was one.
fn kill_a_chromium(parents: &[u32]) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    for entry in procs.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid …: the command may hold spaces, so split
        // after its closing parenthesis.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if ppid.is_some_and(|p| parents.contains(&p))
            && cmdline.contains("chrom")
            && !cmdline.contains("--type=")
        {
            // SAFETY: a plain signal to a process of this run.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            return true;
        }
    }
    false
}

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn mail_with(pdf: &Path, id: &str) -> Vec<u8> {
    use lettre::message::header::ContentType;
    use lettre::message::{Attachment, MultiPart, SinglePart};
    let name = pdf
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let message = lettre::Message::builder()
        .from("billing@vendor.example".parse().expect("address"))
        .to("finance@clerk.example".parse().expect("address"))
        .subject(format!("Invoice {name}"))
        .message_id(Some(format!("<{id}>")))
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain(
                    "Please find the invoice attached.".to_string(),
                ))
                .singlepart(Attachment::new(name).body(
                    std::fs::read(pdf).expect("invoice"),
                    ContentType::parse("application/pdf").expect("type"),
                )),
        )
        .expect("message");
    message.formatted()
}

/// Messages in a maildir folder (`cur` and `new`).
fn maildir_count(dir: &Path) -> usize {
    ["cur", "new"]
        .iter()
        .map(|s| std::fs::read_dir(dir.join(s)).map_or(0, |d| d.count()))
        .sum()
}

/// The last lines of each clerk log of the run, for a failure message.
fn log_tails(dir: &Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("== {}\n", path.display()));
            for line in &lines[lines.len().saturating_sub(30)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// One invoice job as the database holds it.
#[derive(Debug)]
struct JobRow {
    state: String,
    key: Option<String>,
    lost: i64,
    attempt: i64,
    /// Who holds it, while it runs.
    worker: Option<String>,
}

const QUERY: &str =
    "SELECT state, idempotency_key, lost, attempt, worker FROM jobs WHERE bot = 'invoice-intake'";

async fn invoice_jobs(url: &str) -> Vec<JobRow> {
    type Row = (String, Option<String>, i64, i64, Option<String>);
    let rows: Vec<Row> = if url.starts_with("postgres") {
        let Ok(pool) = sqlx::PgPool::connect(url).await else {
            return Vec::new();
        };
        let rows = sqlx::query_as(QUERY)
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
        pool.close().await;
        rows
    } else {
        let Ok(pool) = sqlx::SqlitePool::connect(&format!("{url}?mode=ro")).await else {
            return Vec::new();
        };
        let rows = sqlx::query_as(QUERY)
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
        pool.close().await;
        rows
    };
    rows.into_iter()
        .map(|(state, key, lost, attempt, worker)| JobRow {
            state,
            key,
            lost,
            attempt,
            worker,
        })
        .collect()
}

/// The worker id of a running invoice job, if there is one.
async fn running_worker(url: &str) -> Option<String> {
    invoice_jobs(url)
        .await
        .into_iter()
        .filter(|j| j.state == "running")
        .find_map(|j| j.worker)
}

const ENDED: [&str; 5] = ["succeeded", "failed", "dead", "waiting_review", "cancelled"];

#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Postgres,
    Sqlite,
}

/// One run at a time: each needs the machine's cores to itself.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn chaos(backend: Backend) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let plan = Plan::from_env();
    let started = Instant::now();
    let erp = Erp::start_with("0.05", true);
    let smtp = SmtpServer::start();
    let mut imap = Dovecot::start();
    let postgres = (backend == Backend::Postgres).then(PrivatePostgres::start);
    let dir = tempfile::tempdir().unwrap();
    let bots = dir.path().join("bots");
    install_example(&bots, &erp, &smtp);
    let bot_file = bots.join("invoice-intake/bot.toml");
    let manifest = std::fs::read_to_string(&bot_file).unwrap();
    let changed = manifest
        .replace(
            r#"secrets = ["ERP_PASSWORD"]"#,
            r#"secrets = ["ERP_PASSWORD", "IMAP_PASSWORD"]"#,
        )
        .replace("backoff = \"30s\"", "backoff = \"2s\"\nmax_lost = 20");
    assert!(changed.contains("IMAP_PASSWORD") && changed.contains("max_lost"));
    let manifest = format!(
        "{changed}\n[[triggers]]\nkind = \"mailbox\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"plain\"\nallow_plain = true\nuser = \"{}\"\npassword = \"${{secret:IMAP_PASSWORD}}\"\nevery = \"2s\"\ntimeout = \"5s\"\n",
        imap.port,
        dovecot::USER
    );
    std::fs::write(&bot_file, manifest).unwrap();
    let inbox = bots.join("invoice-intake/inbox");

    let url = match &postgres {
        Some(pg) => pg.url(),
        None => format!("sqlite://{}", dir.path().join("clerk.db").display()),
    };
    let timing = [
        "--lease",
        "10s",
        "--heartbeat",
        "1s",
        "--poll-interval",
        "200ms",
    ];
    let member = |name: &str, args: &[&str]| Member {
        name: name.to_string(),
        args: args
            .iter()
            .chain(timing.iter())
            .chain(["--worker-id", name].iter())
            .map(|s| s.to_string())
            .collect(),
        data_dir: dir.path().join(format!("data-{name}")),
        child: None,
    };
    let members = match backend {
        Backend::Postgres => vec![
            member("scheduler-1", &["serve", "--no-web", "--no-workers"]),
            member("scheduler-2", &["serve", "--no-web", "--no-workers"]),
            member("worker-1", &["worker", "-c", "2"]),
            member("worker-2", &["worker", "-c", "2"]),
            member("worker-3", &["worker", "-c", "2"]),
        ],
        Backend::Sqlite => vec![member("serve", &["serve", "--no-web", "-c", "2"])],
    };
    let mut fleet = Fleet {
        members,
        env: vec![
            ("DATABASE_URL".into(), url.clone()),
            ("CLERK_BOTS".into(), bots.display().to_string()),
            ("ERP_PASSWORD".into(), erp::PASSWORD.into()),
            ("IMAP_PASSWORD".into(), dovecot::PASSWORD.into()),
            ("RUST_LOG".into(), "clerk=info".into()),
            // Every process has a data folder of its own: the documents
            // are shared through the job database.
            (
                "CLERK_DOCUMENTS".into(),
                match backend {
                    Backend::Postgres => "database".into(),
                    Backend::Sqlite => "local".into(),
                },
            ),
        ],
        logs: dir.path().to_path_buf(),
    };
    // Set up the schema once before the fleet starts at the same moment.
    let migrate = Command::new(env!("CARGO_BIN_EXE_clerk"))
        .args(["db", "migrate", "--database", &url])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    for i in 0..fleet.members.len() {
        fleet.spawn(i);
    }

    // What is fed: every document once, by mail or dropped (taking turns),
    // and every tenth both ways as well.
    let mut feed: VecDeque<(PathBuf, bool)> = VecDeque::new();
    for (i, doc) in plan.docs.iter().enumerate() {
        feed.push_back((doc.clone(), i % 2 == 0));
        if i % 10 == 3 {
            feed.push_back((doc.clone(), i % 2 != 0));
        }
    }
    let mut shas: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut mailed_shas = BTreeSet::new();
    let mut unsent_mail: VecDeque<Vec<u8>> = VecDeque::new();
    let mut mails = 0usize;
    let mut rng_state = 0x2026_1202_u64;
    let mut random = |n: usize| {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        (rng_state % n as u64) as usize
    };

    let (mut kills, mut chromium_kills, mut pg_restarts) = (0usize, 0usize, 0usize);
    let mut imap_down_since: Option<Instant> = None;
    let mut imap_outage_done = plan.imap_outage.is_zero();
    let mut next_feed = Instant::now();
    let mut next_kill = Instant::now() + plan.kill_every;
    let chaos_start = Instant::now();
    loop {
        let now = Instant::now();
        if now >= next_feed
            && let Some((doc, by_mail)) = feed.pop_front()
        {
            let bytes = std::fs::read(&doc).unwrap();
            let sha = sha256_hex(&bytes);
            shas.insert(sha.clone(), doc.clone());
            let name = doc.file_name().unwrap().to_string_lossy().into_owned();
            if by_mail {
                mails += 1;
                mailed_shas.insert(sha);
                unsent_mail.push_back(mail_with(&doc, &format!("chaos-{mails}@vendor.example")));
            } else {
                std::fs::create_dir_all(&inbox).unwrap();
                let partial = dir.path().join(format!(".{name}"));
                std::fs::write(&partial, &bytes).unwrap();
                std::fs::rename(&partial, inbox.join(&name)).unwrap();
            }
            next_feed = now + plan.feed_every;
        }
        if imap_down_since.is_none()
            && !unsent_mail.is_empty()
            && let Ok(mut session) = clerk::mail::imap::connect(&imap.account())
        {
            while let Some(raw) = unsent_mail.front() {
                if session.append("INBOX", raw).is_err() {
                    break;
                }
                unsent_mail.pop_front();
            }
            session.logout();
        }
        // The chaos: kills at a steady pace; in their course the IMAP
        // server goes away for a while, PostgreSQL crashes once and
        // chromium is killed.
        if kills < plan.kills && now >= next_kill {
            // Every other kill hits the process running an invoice job, if
            // one is: a kill in the middle of a booking is the one that
            // tests exactly-once.
            let busy = if kills % 2 == 0 {
                running_worker(&url).await
            } else {
                None
            };
            let victim = busy
                .and_then(|w| {
                    fleet
                        .members
                        .iter()
                        .position(|m| w.starts_with(&format!("{}:", m.name)))
                })
                .unwrap_or_else(|| random(fleet.members.len()));
            fleet.kill(victim);
            kills += 1;
            next_kill = now + plan.kill_every;
        }
        let elapsed = now - chaos_start;
        if !imap_outage_done && imap_down_since.is_none() && elapsed >= plan.kill_every * 3 / 2 {
            imap.stop();
            imap_down_since = Some(now);
        }
        if let Some(since) = imap_down_since
            && now - since >= plan.imap_outage
        {
            imap.restart();
            imap_down_since = None;
            imap_outage_done = true;
        }
        if let Some(pg) = &postgres
            && pg_restarts == 0
            && kills >= plan.kills / 2
            && elapsed >= plan.kill_every * 2
        {
            pg.crash_and_restart(Duration::from_secs(3));
            pg_restarts += 1;
        }
        let chromium_due = chromium_kills < plan.chromium_kills
            && elapsed >= plan.kill_every * (2 + 3 * chromium_kills as u32);
        if chromium_due && kill_a_chromium(&fleet.pids()) {
            chromium_kills += 1;
        }

        let chaos_over = kills >= plan.kills
            && imap_outage_done
            && chromium_kills >= plan.chromium_kills
            && (postgres.is_none() || pg_restarts > 0);
        if chaos_over && feed.is_empty() && unsent_mail.is_empty() {
            let jobs = invoice_jobs(&url).await;
            let keys: BTreeSet<&str> = jobs.iter().filter_map(|j| j.key.as_deref()).collect();
            let all_have_jobs = shas
                .keys()
                .all(|s| keys.contains(format!("content:{s}").as_str()));
            let all_ended = jobs.iter().all(|j| ENDED.contains(&j.state.as_str()));
            let inbox_empty = maildir_count(&imap.maildir()) == 0
                && std::fs::read_dir(&inbox)
                    .map_or(0, |d| d.flatten().filter(|e| e.path().is_file()).count())
                    == 0;
            if all_have_jobs && all_ended && inbox_empty {
                break;
            }
        }
        assert!(
            started.elapsed() < plan.limit,
            "the run did not settle within {:?}:\n{}",
            plan.limit,
            log_tails(dir.path())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    fleet.stop();

    let jobs = invoice_jobs(&url).await;
    let mut per_key: BTreeMap<&str, usize> = BTreeMap::new();
    for j in &jobs {
        *per_key.entry(j.key.as_deref().unwrap_or("")).or_default() += 1;
    }
    let duplicate_jobs: usize = per_key.values().map(|n| n - 1).sum();
    let lost: Vec<&PathBuf> = shas
        .iter()
        .filter(|(s, _)| !per_key.contains_key(format!("content:{s}").as_str()))
        .map(|(_, p)| p)
        .collect();
    let refused_files = std::fs::read_dir(inbox.join("failed")).map_or(0, |d| d.count());
    let lost_mails = mailed_shas
        .iter()
        .filter(|s| !per_key.contains_key(format!("content:{s}").as_str()))
        .count()
        + maildir_count(&imap.maildir())
        + maildir_count(&imap.maildir().join(".Failed"));
    let by_state = |s: &str| jobs.iter().filter(|j| j.state == s).count();
    let stuck = by_state("queued") + by_state("running");
    let rescues: i64 = jobs.iter().map(|j| j.lost).sum();
    let retries: i64 = jobs.iter().map(|j| (j.attempt - 1).max(0)).sum();
    let bookings = erp.bookings();
    let mut per_invoice: BTreeMap<(String, String), usize> = BTreeMap::new();
    for b in &bookings {
        let key = (b["vendor"].to_string(), b["invoice"].to_string());
        *per_invoice.entry(key).or_default() += 1;
    }
    let double_bookings: usize = per_invoice.values().map(|n| n - 1).sum();
    let confirmations: BTreeSet<String> = smtp
        .messages()
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .filter(|m| m.contains("Subject: Booked:"))
        .filter_map(|m| {
            m.lines()
                .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
                .map(str::to_string)
        })
        .collect();
    let figures = serde_json::json!({
        "backend": if backend == Backend::Postgres { "postgres" } else { "sqlite" },
        "processes": fleet.members.len(),
        "documents": shas.len(),
        "fed": plan.docs.len() + plan.docs.len().div_ceil(10),
        "mailed": mails,
        "jobs": jobs.len(),
        "succeeded": by_state("succeeded"),
        "waiting_review": by_state("waiting_review"),
        "failed": by_state("failed"),
        "dead": by_state("dead"),
        "kills": kills,
        "rescues": rescues,
        "retries": retries,
        "postgres_restarts": pg_restarts,
        "imap_outage_s": plan.imap_outage.as_secs(),
        "chromium_kills": chromium_kills,
        "bookings": bookings.len(),
        "confirmations": confirmations.len(),
        "duplicate_jobs": duplicate_jobs,
        "double_bookings": double_bookings,
        "lost": lost.len(),
        "refused_files": refused_files,
        "lost_mails": lost_mails,
        "stuck": stuck,
        "seconds": started.elapsed().as_secs(),
    });
    println!("chaos figures: {figures}");

    assert_eq!(duplicate_jobs, 0, "a document got two jobs: {per_key:?}");
    assert!(lost.is_empty(), "documents without a job: {lost:?}");
    assert_eq!(refused_files, 0, "{figures}");
    assert_eq!(lost_mails, 0, "{figures}");
    assert_eq!(stuck, 0, "{figures}");
    assert_eq!(
        double_bookings, 0,
        "an invoice was booked twice: {bookings:#?}"
    );
    assert_eq!(
        bookings.len(),
        by_state("succeeded"),
        "every booked job's invoice is booked once: {figures}"
    );
    assert_eq!(kills, plan.kills);
    assert_eq!(chromium_kills, plan.chromium_kills);
    // Every job that booked confirmed it (a confirmation sent again after
    // a kill carries the same Message-ID and counts once).
    assert!(confirmations.len() >= by_state("succeeded"), "{figures}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_on_postgres_three_workers_two_schedulers() {
    chaos(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_on_sqlite_one_serve() {
    chaos(Backend::Sqlite).await;
}
