//! Chromium's processes and the ERP password as an operator sees them,
//! around the `clerk worker` binary: two hundred jobs, failed and timed-out
//! ones among them, leave no browser behind; a worker killed with
//! SIGKILL takes its browser with it; the password shows in no log, no
//! `clerk runs show` and no kept page.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clerk::jobs::JobState;
use common::erp::{self, Erp, invoice, manifest};
use common::{
    Kind, Stopped, TestDb, enqueue_ids, load_bots, new_job, signal, wait_exit, wait_for, write_bot,
};

/// A temporary folder of the worker's own, given as its `TMPDIR`: chromium
/// inherits it (it is of the little a child's clean environment keeps), so
/// it finds the browser's processes even after they lost their parent.
fn mark() -> String {
    let dir = std::env::temp_dir().join(format!(
        "clerk-test-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).expect("the worker's temporary folder");
    dir.display().to_string()
}

/// Live processes other than the worker that carry `mark`: chromium's.
fn browser_processes(mark: &str) -> Vec<(u32, String)> {
    let needle = format!("TMPDIR={mark}\0");
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let environ = String::from_utf8_lossy(&environ);
        if !environ.contains(&needle) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let exe = cmdline.split(' ').next().unwrap_or_default().to_string();
        if exe.ends_with("/clerk") || cmdline.trim().is_empty() {
            continue;
        }
        // The worker's secrets stay with the worker: chromium starts with a
        // clean environment.
        assert!(
            !environ.contains("ERP_PASSWORD="),
            "process {pid} of the browser has the worker's secret in its environment: {cmdline}"
        );
        found.push((pid, cmdline));
    }
    found
}

fn spawn_worker(db_url: &str, bots: &Path, log: &Path, mark: &str) -> Child {
    let log = std::fs::File::create(log).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_clerk"))
        .args(["worker", "--concurrency", "2", "--poll-interval", "100ms"])
        .arg("--database")
        .arg(db_url)
        .arg("--bots")
        .arg(bots)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "clerk=debug")
        .env("ERP_PASSWORD", erp::PASSWORD)
        .env("TMPDIR", mark)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start clerk worker")
}

/// Wait until no process of the browser is left; panics naming them.
fn wait_no_browser(mark: &str, limit: Duration) {
    let start = Instant::now();
    loop {
        let left = browser_processes(mark);
        if left.is_empty() {
            return;
        }
        if start.elapsed() > limit {
            panic!("chromium still running after {limit:?}: {left:#?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A quick job for the bulk of the two hundred: the ERP's login page,
/// and a text that is there or, to fail, is not.
fn lookup_manifest(erp: &str) -> String {
    format!(
        r##"
name = "look"
[retry]
max_attempts = 3
backoff = "200ms"
jitter = 0
[[steps]]
name = "login-page"
kind = "browser"
action_timeout = "2s"
actions = [
  {{ goto = "{erp}/login" }},
  {{ fill = "#user", value = "{{{{user}}}}" }},
  {{ assert_text = "{{{{expect}}}}", timeout = "300ms" }},
  {{ read = "h3", into = "title" }},
]
"##
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_jobs_leave_no_stray_chromium_and_no_password() {
    let erp = Erp::start_with_delay("0");
    let t = TestDb::new(Kind::Sqlite).await;
    write_bot(t.path(), "look", &lookup_manifest(&erp.url()));
    let bots = write_bot(t.path(), "book", &manifest(&erp.url(), "#save", "2s"));
    let registry = load_bots(&bots);
    let db = t.open().await;
    let mark = mark();
    let log = t.path().join("worker.log");
    let mut worker = Stopped([spawn_worker(&t.url, &bots, &log, &mark)]);

    // Two hundred jobs, failures among them. Every tenth books an invoice
    // through the whole flow with the ERP's password: the first two
    // bookings never get an answer (their actions time out and the jobs
    // are retried), and two invoices have a date the form refuses. The
    // others open the login page; every tenth of those looks for a text
    // that is not there.
    erp.fail_next("hang", 2, "POST", "/book");
    let (book, look) = (registry.get("book").unwrap(), registry.get("look").unwrap());
    let mut jobs = Vec::new();
    let mut wanted = Vec::new();
    for n in 1..=200u32 {
        if n % 10 == 0 {
            let refused = n % 100 == 0;
            let date = if refused { "31.13.2026" } else { "23.10.2026" };
            jobs.push(new_job(book, invoice(n, date)));
            wanted.push(if refused {
                JobState::Failed
            } else {
                JobState::Succeeded
            });
        } else {
            let missing = n % 10 == 5 && n % 20 == 5;
            let expect = if missing {
                "Kein solcher Text"
            } else {
                "Anmeldung"
            };
            jobs.push(new_job(
                look,
                serde_json::json!({ "user": format!("user-{n}"), "expect": expect }),
            ));
            wanted.push(if missing {
                JobState::Failed
            } else {
                JobState::Succeeded
            });
        }
    }
    let ids = enqueue_ids(&db, &jobs).await;

    // While they run, the browser's processes stay few: one browser, its
    // helpers, a renderer per open job.
    let sampler = {
        let mark = mark.clone();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let handle = std::thread::spawn(move || {
            let mut most = 0;
            while rx.recv_timeout(Duration::from_millis(200)).is_err() {
                most = most.max(browser_processes(&mark).len());
            }
            most
        });
        (tx, handle)
    };
    let ends = [JobState::Succeeded, JobState::Failed, JobState::Dead];
    for id in &ids {
        wait_for(&db, *id, &ends, Duration::from_secs(600)).await;
    }
    let _ = sampler.0.send(());
    let most = sampler.1.join().unwrap();

    let mut details = Vec::new();
    for id in &ids {
        details.push(db.job(*id).await.unwrap().unwrap());
    }
    for (detail, want) in details.iter().zip(&wanted) {
        assert_eq!(detail.summary.state, *want, "{detail:#?}");
    }
    assert_eq!(
        wanted.iter().filter(|w| **w == JobState::Failed).count(),
        12
    );
    assert_eq!(erp.bookings().len(), 18);
    let retried = details.iter().filter(|d| d.summary.attempt > 1).count();
    assert!(retried >= 1, "the hanging bookings were retried");
    assert!(most > 0, "the browser was seen running");
    assert!(
        most <= 16,
        "at most {most} chromium processes at once for two jobs at a time"
    );

    // Idle after the work: the jobs' renderers are gone.
    std::thread::sleep(Duration::from_secs(2));
    let idle = browser_processes(&mark);
    let renderers = idle
        .iter()
        .filter(|(_, cmd)| cmd.contains("--type=renderer"))
        .count();
    assert!(renderers <= 1, "renderers left over: {idle:#?}");

    // A refused form: its step lists the page it kept, without the password.
    let refused = &details[99];
    let show = Command::new(env!("CARGO_BIN_EXE_clerk"))
        .args(["runs", "show", &refused.summary.id.to_string()])
        .arg("--database")
        .arg(&t.url)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&show.stdout).into_owned();
    assert!(show.status.success(), "{text}");
    let kept: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("kept:"))
        .map(str::trim)
        .collect();
    assert_eq!(kept.len(), 3, "{text}");
    assert!(
        kept[0].ends_with(".png") && kept[1].ends_with(".html"),
        "{kept:?}"
    );
    for file in &kept {
        let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(!String::from_utf8_lossy(&bytes).contains(erp::PASSWORD));
    }
    assert!(text.contains("Datum ungültig"), "{text}");

    // Stopped, the worker takes its browser with it.
    signal(&worker.0[0], libc::SIGTERM);
    wait_exit(&mut worker.0[0], Duration::from_secs(30));
    wait_no_browser(&mark, Duration::from_secs(10));

    // The password is nowhere an operator looks.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("browser started"), "{logged}");
    assert!(
        !logged.contains(erp::PASSWORD),
        "the password is in the log"
    );
    for id in [details[9].summary.id, refused.summary.id] {
        for json in [false, true] {
            let mut c = Command::new(env!("CARGO_BIN_EXE_clerk"));
            c.args(["runs", "show", &id.to_string()])
                .arg("--database")
                .arg(&t.url)
                .env_remove("DATABASE_URL");
            if json {
                c.arg("--json");
            }
            let out = c.output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(!text.contains(erp::PASSWORD), "{text}");
        }
    }
}

/// A `clerk worker` process (its `TMPDIR` marked) in the middle of a
/// booking the ERP takes 30 s over; what must stay alive meanwhile.
async fn booking_in_flight() -> (Erp, TestDb, Stopped<1>, String) {
    let erp = Erp::start_with_delay("30");
    let t = TestDb::new(Kind::Sqlite).await;
    let bots = write_bot(t.path(), "book", &manifest(&erp.url(), "#save", "60s"));
    let registry = load_bots(&bots);
    let db = t.open().await;
    let mark = mark();
    let worker = Stopped([spawn_worker(
        &t.url,
        &bots,
        &t.path().join("worker.log"),
        &mark,
    )]);
    let bot = registry.get("book").unwrap();
    db.enqueue(&[new_job(bot, invoice(1, "23.10.2026"))])
        .await
        .unwrap();
    let start = Instant::now();
    while erp.in_flight() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the booking never reached the ERP"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (erp, t, worker, mark)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_with_9_takes_its_chromium_with_it() {
    let (_erp, _t, mut worker, mark) = booking_in_flight().await;
    assert!(!browser_processes(&mark).is_empty());
    signal(&worker.0[0], libc::SIGKILL);
    let _ = worker.0[0].wait();
    wait_no_browser(&mark, Duration::from_secs(10));
}

/// Inodes of the TCP sockets listening on this machine.
fn listening_sockets() -> Vec<String> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // `st` 0A is LISTEN; the inode is the tenth field.
            if fields.get(3) == Some(&"0A")
                && let Some(inode) = fields.get(9)
            {
                inodes.push(inode.to_string());
            }
        }
    }
    inodes
}

/// The browser is driven over a pipe only its worker holds: it runs with
/// `--remote-debugging-pipe` and none of its processes listens on a TCP
/// port that another local process could drive it through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_listens_on_no_port() {
    let (_erp, _t, worker, mark) = booking_in_flight().await;
    let browser = browser_processes(&mark);
    let main: Vec<&(u32, String)> = browser
        .iter()
        .filter(|(_, cmd)| cmd.contains("--user-data-dir=") && !cmd.contains("--type="))
        .collect();
    assert_eq!(main.len(), 1, "{browser:#?}");
    assert!(
        main[0].1.contains("--remote-debugging-pipe"),
        "{}",
        main[0].1
    );
    assert!(
        !main[0].1.contains("--remote-debugging-port"),
        "{}",
        main[0].1
    );
    let listening = listening_sockets();
    for (pid, cmd) in &browser {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten();
        for fd in fds.flatten() {
            let target = std::fs::read_link(fd.path()).unwrap_or_default();
            let target = target.to_string_lossy();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
            {
                assert!(
                    !listening.iter().any(|l| l == inode),
                    "chromium process {pid} listens on a TCP port: {cmd}"
                );
            }
        }
    }
    drop(worker);
}
