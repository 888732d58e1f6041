#!/usr/bin/env bash
# clerk's queue beside graphile-worker, the fastest PostgreSQL job queue we
# know of, in one run on one PostgreSQL: 20,000 no-op jobs drained by one
# process with a local queue of 500, then pickup latency into an idle
# worker. graphile-worker is installed from the npm registry into
# benches/.node; each side gets a fresh database.
#
#   benches/queue_peer.sh [JOBS [CONCURRENCY [ROUNDS]]]   # default 20000 16 3
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="${1:-20000}"
concurrency="${2:-16}"
rounds="${3:-3}"
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

# This machine's speed drifts by a third within an hour, so the two take
# turns, several rounds, and the summary compares their medians. It also
# compares the busy CPU time per drained job (every process on the
# machine, so the server's share too), which drifts far less than the
# rate and bounds it on a machine the queue keeps busy.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cp benches/graphile_worker.mjs "$node_dir/run.mjs"  # beside its node_modules, where imports resolve
cargo bench --locked --bench queue --no-run --quiet
for round in $(seq 1 "$rounds"); do
  echo "== round $round: graphile-worker 0.17"
  fresh bench_graphile
  node "$node_dir/run.mjs" "$base/bench_graphile" "$jobs" "$concurrency" 300 | tee -a "$log"
  echo "== round $round: clerk"
  CLERK_BENCH_PG="$admin" cargo bench --locked --quiet --bench queue -- --jobs "$jobs" --workers "$concurrency" \
    --prefetch 500 --backends postgres | grep -v '^clerk queue benchmark' | tee -a "$log"
done
median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
drain() { grep "^$1" "$log" | grep -o 'drain *[0-9]*' | awk '{print $2}' | median; }
cpu() { grep "^$1" "$log" | grep -o '[0-9]* µs CPU/job' | awk '{print $1}' | median; }
pickup() { grep "^$1.*pickup.*$2" "$log" | grep -o 'p50 [0-9.]*' | awk '{print $2}' | median; }
g=$(drain graphile-worker)
c=$(drain postgres)
echo "== medians of $rounds rounds"
printf 'drain:  graphile-worker %s jobs/s, clerk %s jobs/s, clerk/graphile-worker %.2f\n' "$g" "$c" "$(awk -v c="$c" -v g="$g" 'BEGIN { print c / g }')"
gc=$(cpu graphile-worker)
cc=$(cpu postgres)
printf 'CPU per job, all processes:  graphile-worker %s µs, clerk %s µs, graphile-worker/clerk %.2f\n' "$gc" "$cc" "$(awk -v c="$cc" -v g="$gc" 'BEGIN { print g / c }')"
for how in "back to back" "after 10 ms quiet"; do
  printf 'pickup p50, %s:  graphile-worker %s ms, clerk %s ms\n' "$how" "$(pickup graphile-worker "$how")" "$(pickup postgres "$how")"
done
