#!/usr/bin/env bash
# The fault suite's long chaos run (tests/chaos.rs): 300 generated invoices
# through the example bot by mail and by folder, on PostgreSQL with three
# workers and two schedulers, then on SQLite with one `serve`, while
# clerk processes are killed with SIGKILL, PostgreSQL crashes and restarts,
# the IMAP server is away for 60 s and chromium is killed. Prints each
# run's figures; fails if any document got two jobs or none, an invoice was
# booked twice, a mail was lost or a job was left running.
#
#   scripts/chaos.sh [postgres|sqlite]      # default: both
#
# Sizes can be changed: CLERK_CHAOS_COUNT (invoices, default 300),
# CLERK_CHAOS_KILLS (12), CLERK_CHAOS_KILL_EVERY (seconds, 5),
# CLERK_CHAOS_IMAP_OUTAGE (seconds, 60), CLERK_CHAOS_CHROMIUM_KILLS (2).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
. scripts/packages.sh
ensure_packages fonts-dejavu-core

count="${CLERK_CHAOS_COUNT:-300}"
docs="$PWD/target/chaos-invoices-$count"
if [ ! -f "$docs/done" ]; then
  venv=.venv-fixtures
  ensure_venv "$venv" fixtures/requirements.txt
  rm -rf "$docs"
  "$venv/bin/python" fixtures/generate.py --many "$count" --out "$docs"
  touch "$docs/done"
fi

export CLERK_CHAOS_DOCS="$docs"
export CLERK_CHAOS_KILLS="${CLERK_CHAOS_KILLS:-12}"
export CLERK_CHAOS_KILL_EVERY="${CLERK_CHAOS_KILL_EVERY:-5}"
export CLERK_CHAOS_IMAP_OUTAGE="${CLERK_CHAOS_IMAP_OUTAGE:-60}"
export CLERK_CHAOS_CHROMIUM_KILLS="${CLERK_CHAOS_CHROMIUM_KILLS:-2}"
export CLERK_CHAOS_LIMIT="${CLERK_CHAOS_LIMIT:-5400}"
case "${1:-both}" in
  postgres) filter=chaos_on_postgres ;;
  sqlite) filter=chaos_on_sqlite ;;
  both) filter=chaos_ ;;
  *) echo "usage: scripts/chaos.sh [postgres|sqlite]" >&2; exit 2 ;;
esac
cargo test --locked --test chaos -- --nocapture --test-threads 1 "$filter"
