#!/usr/bin/env bash
# clerk's queue beside graphile-worker, the fastest PostgreSQL job queue we
# know of, in one run on one PostgreSQL: 20,000 no-op jobs drained by one
# process with a local queue of 500, then pickup latency into an idle
# worker. graphile-worker is installed from the npm registry into
# benches/.node; each side gets a fresh database.
#
#   benches/queue_peer.sh [JOBS [CONCURRENCY]]      # default 20000 16
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="${1:-20000}"
concurrency="${2:-16}"
admin="${CLERK_BENCH_PG:-postgres://postgres@127.0.0.1:5432/postgres}"
base="${admin%/*}"

node_dir=benches/.node
if [ ! -d "$node_dir/node_modules/graphile-worker" ]; then
  mkdir -p "$node_dir"
  npm install --prefix "$node_dir" --silent --no-audit --no-fund graphile-worker@0.17.3 pg@8
fi
fresh() {
  psql -q "$admin" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1"
}

echo "== graphile-worker 0.17"
fresh bench_graphile
# Run beside its node_modules, where an ES module finds its imports.
cp benches/graphile_worker.mjs "$node_dir/run.mjs"
node "$node_dir/run.mjs" "$base/bench_graphile" "$jobs" "$concurrency" 300
echo "== clerk"
CLERK_BENCH_PG="$admin" cargo bench --locked --bench queue -- --jobs "$jobs" --workers "$concurrency" \
  --prefetch 500 --backends postgres
