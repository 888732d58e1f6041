#!/usr/bin/env bash
# Set up a fresh machine, then run the example bot on the embedded SQLite
# database: start `clerk serve`, run a job and wait for it, show its record,
# and stop the server gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release --locked
clerk=target/release/clerk
export CLERK_DATA_DIR="${CLERK_DATA_DIR:-data}"
export CLERK_BOTS="${CLERK_BOTS:-bots}"
unset DATABASE_URL

echo "== clerk bots validate"
$clerk bots validate

echo "== clerk serve (in the background; log in $CLERK_DATA_DIR/serve.log)"
mkdir -p "$CLERK_DATA_DIR"
$clerk serve >"$CLERK_DATA_DIR/serve.log" 2>&1 &
serve=$!
trap 'kill -TERM $serve 2>/dev/null || true' EXIT

echo "== clerk run daily-digest --wait"
status=0
$clerk run daily-digest --input '{"folder": "inbox"}' --wait --timeout 60s || status=$?

echo "== clerk extract fixtures/invoices -t bots/invoice-intake/templates --csv"
$clerk extract fixtures/invoices -t bots/invoice-intake/templates --csv | cut -d, -f1,5-7,10 | head -n 6

invoice="$PWD/fixtures/invoices/acme-office/RE-2026-66261.pdf"
echo "== clerk run invoice-intake (an ACME invoice) --wait"
$clerk run invoice-intake --input "{\"file\": \"$invoice\"}" --wait --timeout 60s || status=$?
echo "== the same invoice again: booked once"
$clerk run invoice-intake --input "{\"file\": \"$invoice\"}" --wait --timeout 60s || status=$?
cat bots/invoice-intake/ledger.csv

echo "== clerk run invoice-intake (a document no template fits) --wait: exit code 4, waiting for review"
review_status=0
$clerk run invoice-intake --input "{\"file\": \"$PWD/fixtures/bad/owner-only.pdf\"}" --wait --timeout 60s || review_status=$?
echo "exit code $review_status"

inbox=bots/invoice-intake/inbox
echo "== three files dropped into $inbox: a new invoice twice (one under another name) and the ACME one booked above"
mkdir -p "$inbox"
cp fixtures/invoices/nordwind-logistics/NWL13487.pdf "$inbox/"
cp fixtures/invoices/nordwind-logistics/NWL13487.pdf "$inbox/scan-0001.pdf"
cp "$invoice" "$inbox/"
for _ in $(seq 1 120); do
  left=$(find "$inbox" -maxdepth 1 -type f | wc -l)
  busy=$($clerk runs list --bot invoice-intake --state queued --json | grep -c '"id"' || true)
  running=$($clerk runs list --bot invoice-intake --state running --json | grep -c '"id"' || true)
  [ "$left" -eq 0 ] && [ "$busy" -eq 0 ] && [ "$running" -eq 0 ] && break
  sleep 0.5
done
ls "$inbox/processed"
echo "== the ledger: each invoice booked once"
cat bots/invoice-intake/ledger.csv

echo "== clerk runs list"
$clerk runs list --limit 5
id=$($clerk runs list --bot invoice-intake --limit 1 --json | sed -n 's/^ *"id": \([0-9]*\),*/\1/p' | head -n 1)
echo "== clerk runs show $id"
$clerk runs show "$id"

kill -TERM $serve
wait $serve || true
trap - EXIT
echo "== clerk serve stopped; last log lines:"
tail -n 3 "$CLERK_DATA_DIR/serve.log"
exit $status
