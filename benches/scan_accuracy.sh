#!/usr/bin/env bash
# Scan accuracy figures: generates COUNT scanned invoices (the four vendors,
# each in four qualities: clean, office, degraded, poor) with their ground
# truth, extracts them with the example bot's templates, and prints
# header-field and line-item accuracy, the silent-error rate, calibration,
# the straight-through and false-alarm rates and seconds per page.
# Asserts nothing.
#
#   benches/scan_accuracy.sh [COUNT [SEED]]     # default 48, the fixed seed;
#                                               # another seed, other invoices
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-48}"
seed="${2:-20261204}"
. scripts/packages.sh
ensure_packages poppler-utils
venv=.venv-fixtures
ensure_venv "$venv" fixtures/requirements.txt
cargo build --release --locked -q
clerk=target/release/clerk
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$venv/bin/python" fixtures/generate.py --scans "$count" --seed "$seed" --out "$work/scans" >/dev/null
t0=$(date +%s.%N)
$clerk extract "$work/scans" -t bots/invoice-intake/templates --json >"$work/clerk.json" 2>/dev/null || true
t1=$(date +%s.%N)
python3 benches/scan_accuracy.py "$work/scans" "$work/clerk.json" "$(python3 -c "print($t1 - $t0)")"
