#!/usr/bin/env bash
# The memory and CPU of `clerk serve --no-workers` at a scheduler node's
# work (see benches/serve_footprint.py), for sizing its pods.
#   benches/serve_footprint.sh [INVOICES [ROUNDS]]   # default 200 20
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-200}"
rounds="${2:-20}"
admin="${CLERK_BENCH_PG:-postgres://postgres@127.0.0.1:5432/postgres}"
cargo build --release --locked --quiet --bin clerk
invoices="target/invoices-$count"
if [ ! -f "$invoices/done" ]; then
  .venv-fixtures/bin/python fixtures/generate.py --many "$count" --out "$invoices"
  touch "$invoices/done"
fi
python3 benches/serve_footprint.py "$PWD/target/release/clerk" "$PWD/$invoices" "$admin" "$count" "$rounds"
