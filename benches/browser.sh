#!/usr/bin/env bash
# Browser benchmark: bookings through the legacy ERP fixture's forms (login,
# guard search, iframe form, submit, booking number), in headless Debian
# chromium. Prints bookings per minute with one and two `clerk worker`
# processes, then clerk's time per action next to a Playwright script
# (playwright-core from the npm registry, driving the same chromium) doing
# the same booking flow. The ERP answers at once (--slow 0), so the figures
# are the browser's and clerk's, not the fixture's. Asserts nothing.
#
#   benches/browser.sh [BOOKINGS]     # default 60 per run
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-60}"
. scripts/packages.sh
ensure_packages chromium
# Node with npm (nodejs from NodeSource carries npm; Debian's needs both).
command -v npm >/dev/null || ensure_packages nodejs npm
cargo build --release --locked -q
clerk="$PWD/target/release/clerk"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# playwright-core, pinned, kept out of the tree's lock files.
node_dir="$PWD/benches/.node"
if [ ! -f "$node_dir/node_modules/playwright-core/package.json" ]; then
  npm install --silent --no-audit --no-fund --prefix "$node_dir" playwright-core@1.65.1 >/dev/null
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
erp="http://127.0.0.1:$port"
export ERP_PASSWORD=bench-erp-password
python3 fixtures/legacy-erp/erp.py --port "$port" --user booker --password "$ERP_PASSWORD" \
  --slow 0 --data "$work/erp" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

mkdir -p "$work/bots/book"
cat >"$work/bots/book/bot.toml" <<BOT
name = "book"
secrets = ["ERP_PASSWORD"]
[[steps]]
name = "erp"
kind = "browser"
actions = [
  { goto = "$erp/login" },
  { fill = "#user", value = "booker" },
  { fill = "#password", value = "\${secret:ERP_PASSWORD}" },
  { click = "#login" },
  { wait_for = "#main" },
  { guard = "$erp/search?number={{invoice}}", found = "#results .booking", into = "booking" },
  { goto = "$erp/app" },
  { frame = "#main" },
  { select = "#vendor", value = "{{vendor}}" },
  { fill = "#invoice", value = "{{invoice}}" },
  { fill = "#date", value = "{{date}}" },
  { fill = "#amount", value = "{{amount}}" },
  { click = "#save" },
  { wait_for = "#booking-number" },
  { read = "#booking-number", into = "booking" },
]
BOT

vendors=("ACME Office Supplies GmbH" "Blue Harbor Trading Ltd" "Nordwind Logistik B.V.")
enqueue() { # DB PREFIX
  for i in $(seq 1 "$n"); do
    printf '{"vendor": "%s", "invoice": "%s-%05d", "date": "23.10.2026", "amount": "%d.234,56"}\n' \
      "${vendors[$((i % 3))]}" "$2" "$i" "$i"
  done | while read -r input; do
    "$clerk" run book --database "$1" --bots "$work/bots" --input "$input" >/dev/null
  done
}

echo "== $n bookings per run; chromium $(chromium --version 2>/dev/null | awk '{print $2}'), clerk release build"
for workers in 1 2; do
  db="sqlite://$work/run-$workers.db"
  enqueue "$db" "W$workers"
  start=$(date +%s.%N)
  running=()
  for w in $(seq 1 "$workers"); do
    "$clerk" --log-format json -v worker --database "$db" --bots "$work/bots" \
      --concurrency 1 --poll-interval 50ms 2>"$work/worker-$workers-$w.log" &
    running+=($!)
  done
  pids+=("${running[@]}")
  while :; do
    done_count=$("$clerk" runs list --database "$db" --state succeeded --limit 100000 --json | grep -c '"id"' || true)
    [ "$done_count" -ge "$n" ] && break
    failed=$("$clerk" runs list --database "$db" --state failed --limit 100000 --json | grep -c '"id"' || true)
    [ "$failed" -gt 0 ] && { echo "a booking failed:"; "$clerk" runs list --database "$db" --state failed; exit 1; }
    sleep 0.1
  done
  end=$(date +%s.%N)
  kill "${running[@]}" 2>/dev/null || true
  wait "${running[@]}" 2>/dev/null || true
  python3 -c "import sys; n, s, e, w = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]; print(f'clerk, {w} worker(s): {n} bookings in {e - s:.1f} s = {n / (e - s) * 60:.0f} bookings/min')" "$n" "$start" "$end" "$workers"
done

echo "== the same flow in Playwright (playwright-core 1.65.1, one browser, a context per booking)"
node benches/browser_playwright.mjs "$erp" booker "$ERP_PASSWORD" "$n" P1 >"$work/playwright.json"

python3 benches/browser_compare.py "$work/worker-1-1.log" "$work/playwright.json"
