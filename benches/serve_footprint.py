"""What `clerk serve --no-workers` (the scheduler pods of
deploy/kubernetes/scheduler.yaml) uses: its process tree's memory
(proportional set size, summed over clerk and the pdftoppm processes it
starts, sampled every half second) and CPU time, while it works as a
scheduler node does, against PostgreSQL with documents in the job database:

1. folder intake: N invoices dropped into its inbox are hashed, stored and
   queued (a `clerk worker` of its own process, not measured, runs them;
   the ERP fixture books them);
2. the pages ops teams keep open: the dashboard for 1, 30 and 365 days,
   the runs page and /metrics, R rounds;
(before those) a scanned invoice waiting for review: the server renders
its pages and reads its words (OCR) before a reviewer asks, then a
reviewer opens it.

Prints the peak and the CPU time of each phase. Run by
benches/serve_footprint.sh, which builds clerk and makes the invoices."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

CLERK, INVOICES_DIR, ADMIN_URL, COUNT, ROUNDS = sys.argv[1:6]
COUNT, ROUNDS = int(COUNT), int(ROUNDS)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree(pid):
    """pid and its descendants (the children of each of their threads)."""
    pids, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        children = []
        try:
            for task in os.listdir(f"/proc/{parent}/task"):
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    children += [int(c) for c in f.read().split()]
        except OSError:
            pass
        pids += children
        frontier += children
    return pids


def pss_kib(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_seconds(pid):
    """User and system time of clerk, of its running children (the
    document readers it keeps) and of those it waited for."""
    ticks = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(fields[i]) for i in ((11, 12, 13, 14) if p == pid else (11, 12)))
    return ticks / os.sysconf("SC_CLK_TCK")


class Phase:
    """A phase of work, its peak sampled every 0.2 s by a thread."""

    def __init__(self, pid, name):
        self.pid, self.name = pid, name

    def __enter__(self):
        self.peak, self.cpu0, self.t0 = pss_kib(self.pid), cpu_seconds(self.pid), time.time()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.watch)
        self.thread.start()
        return self

    def watch(self):
        while not self.done.wait(0.2):
            self.sample()

    def sample(self):
        self.peak = max(self.peak, pss_kib(self.pid))

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()
        self.sample()
        took = time.time() - self.t0
        cpu = cpu_seconds(self.pid) - self.cpu0
        print(f"{self.name:<44} {took:7.1f} s  peak {self.peak / 1024:6.0f} MiB  "
              f"CPU {cpu:6.1f} s ({100 * cpu / max(took, 1e-9):3.0f} % of a core)", flush=True)


def main():
    work = tempfile.mkdtemp(prefix="clerk-serve-footprint-")
    database = "clerk_bench_serve"
    subprocess.run(["psql", "-q", ADMIN_URL, "-c", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)",
                    "-c", f"CREATE DATABASE {database}"], check=True)
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + database
    erp_port, web_port = free_port(), free_port()
    bots = os.path.join(work, "bots")
    subprocess.run(["cp", "-r", os.path.join(ROOT, "bots"), bots], check=True)
    manifest = os.path.join(bots, "invoice-intake/bot.toml")
    with open(manifest) as f:
        text = f.read()
    text = (text.replace("127.0.0.1:8090", f"127.0.0.1:{erp_port}")
            .replace("concurrency = 1", "concurrency = 2"))
    with open(manifest, "w") as f:
        f.write(text)
    env = dict(os.environ, DATABASE_URL=url, CLERK_DOCUMENTS="database", CLERK_BOTS=bots,
               ERP_PASSWORD="footprint", RUST_LOG="clerk=warn")
    procs = []

    def start(args, data, log, **kw):
        p = subprocess.Popen(args, env=dict(env, CLERK_DATA_DIR=os.path.join(work, data)),
                             stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, log), "w"), **kw)
        procs.append(p)
        return p

    try:
        start([sys.executable, os.path.join(ROOT, "fixtures/legacy-erp/erp.py"), "--port", str(erp_port),
               "--user", "booker", "--password", "footprint", "--data", os.path.join(work, "erp")],
              "erp", "erp.log")
        subprocess.run([CLERK, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        token = subprocess.run([CLERK, "tokens", "create", "footprint", "--role", "admin"], env=env,
                               check=True, capture_output=True, text=True).stdout.split()[-1]
        serve = start([CLERK, "serve", "--no-workers", "--listen", f"127.0.0.1:{web_port}"], "serve", "serve.log")
        start([CLERK, "worker", "-c", "2"], "worker", "worker.log")

        def get(path):
            req = urllib.request.Request(f"http://127.0.0.1:{web_port}{path}",
                                         headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req, timeout=300) as r:
                return r.read()

        for _ in range(100):
            try:
                get("/livez")
                break
            except OSError:
                time.sleep(0.1)
        with Phase(serve.pid, "idle, 10 s"):
            time.sleep(10)

        # A scan that goes to review (OCR lost its VAT line), run by hand:
        # the server prepares its pages and reads its words (OCR) before a
        # reviewer asks, then the reviewer opens it.
        scan = os.path.join(ROOT, "fixtures/scans/acme-office-degraded.pdf")
        with Phase(serve.pid, "a scan waiting for review, prepared and opened"):
            ran = subprocess.run([CLERK, "run", "invoice-intake", "--json", "--wait", "--timeout", "300s",
                                  "--input", json.dumps({"file": scan})],
                                 env=dict(env, CLERK_DATA_DIR=os.path.join(work, "cli")),
                                 capture_output=True, text=True)
            if not ran.stdout.strip().startswith("{"):
                print(f"the scan's job did not come back: {ran.stderr}", file=sys.stderr)
                sys.exit(1)
            job = json.loads(ran.stdout)["id"]
            # The server looks for waiting reviews every 10 s.
            time.sleep(12)
            get(f"/reviews/{job}")
            for page in (1, 2):
                try:
                    get(f"/documents/{job}/pages/{page}")
                except urllib.error.HTTPError:
                    pass
            get(f"/documents/{job}/words")

        inbox = os.path.join(bots, "invoice-intake/inbox")
        os.makedirs(inbox, exist_ok=True)
        pdfs = sorted(f for f in os.listdir(INVOICES_DIR) if f.endswith(".pdf"))[:COUNT]
        with Phase(serve.pid, f"folder intake of {len(pdfs)} invoices"):
            for name in pdfs:
                subprocess.run(["cp", os.path.join(INVOICES_DIR, name), inbox], check=True)
            while any(f.endswith(".pdf") for f in os.listdir(inbox)):
                time.sleep(0.2)

        with Phase(serve.pid, f"dashboard, runs, /metrics, {ROUNDS} rounds"):
            for _ in range(ROUNDS):
                for path in ("/dashboard?days=1", "/dashboard?days=30", "/dashboard?days=365", "/runs", "/bots",
                             "/reviews", "/metrics", "/api/v1/stats?days=30"):
                    try:
                        get(path)
                    except urllib.error.HTTPError as e:
                        print(f"GET {path}: {e.code}", file=sys.stderr)

    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run(["rm", "-rf", work])


main()
