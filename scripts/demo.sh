#!/usr/bin/env bash
# Set up a fresh machine, then run the example bots on the embedded SQLite
# database: start the legacy ERP fixture, a mail sink and `clerk serve`; run
# jobs and wait for them (invoices extracted, booked in the ERP through its
# web forms once, confirmations mailed); show a record; stop everything.
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

# The systems the invoice bot works with: the legacy ERP it books into (a
# fresh one each run) and a mail server that keeps what it is sent.
mkdir -p "$CLERK_DATA_DIR"
export ERP_PASSWORD="${ERP_PASSWORD:-demo-erp-password}"
rm -rf "$CLERK_DATA_DIR/erp" "$CLERK_DATA_DIR/mail"
echo "== the legacy ERP on http://127.0.0.1:8090 and a mail sink on 127.0.0.1:2525 (mail kept in $CLERK_DATA_DIR/mail)"
python3 fixtures/legacy-erp/erp.py --port 8090 --user booker --password "$ERP_PASSWORD" \
  --slow 0.5 --data "$CLERK_DATA_DIR/erp" >"$CLERK_DATA_DIR/erp.log" 2>&1 &
erp=$!
.venv-smtp/bin/python -m aiosmtpd -n -l 127.0.0.1:2525 -c aiosmtpd.handlers.Mailbox "$CLERK_DATA_DIR/mail" \
  >"$CLERK_DATA_DIR/smtp.log" 2>&1 &
smtp=$!
serve=""
trap 'kill -TERM $serve $erp $smtp 2>/dev/null || true' EXIT
for port in 8090 2525; do
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
done

echo "== clerk serve (in the background; log in $CLERK_DATA_DIR/serve.log)"
$clerk serve >"$CLERK_DATA_DIR/serve.log" 2>&1 &
serve=$!

echo "== clerk run daily-digest --wait"
status=0
$clerk run daily-digest --input '{"folder": "inbox"}' --wait --timeout 60s || status=$?

echo "== clerk extract fixtures/invoices -t bots/invoice-intake/templates --csv"
$clerk extract fixtures/invoices -t bots/invoice-intake/templates --csv | cut -d, -f1,5,7,8,11 | head -n 6

invoice="$PWD/fixtures/invoices/acme-office/RE-2026-66261.pdf"
echo "== clerk run invoice-intake (an ACME invoice) --wait: extracted, booked in the ERP, confirmed by mail"
$clerk run invoice-intake --input "{\"file\": \"$invoice\"}" --wait --timeout 120s || status=$?
echo "== the same invoice again: the ERP already has it, nothing is booked twice"
$clerk run invoice-intake --input "{\"file\": \"$invoice\"}" --wait --timeout 120s || status=$?

echo "== clerk run invoice-intake (a document no template fits) --wait: exit code 4, waiting for review"
review_status=0
$clerk run invoice-intake --input "{\"file\": \"$PWD/fixtures/bad/owner-only.pdf\"}" --wait --timeout 60s || review_status=$?
echo "exit code $review_status"

scan="$PWD/fixtures/scans/acme-office-degraded.pdf"
echo "== a degraded scan: OCR lost its VAT line, so its totals cannot be checked and it waits for a reviewer"
$clerk run invoice-intake --input "{\"file\": \"$scan\"}" --wait --timeout 120s >/dev/null || true
echo "== a reviewer (the web pages at http://127.0.0.1:8080/reviews, or the same from the command line)"
printf '%s\n' "${REVIEWER_PASSWORD:-demo-reviewer-password}" | $clerk users add rita --role reviewer || true
$clerk review list
rid=$($clerk review list --json | sed -n 's/^ *"job_id": \([0-9]*\),*/\1/p' | tail -n 1)
$clerk review show "$rid"
echo "== the reviewer supplies the VAT the scan lost and approves (a check that still failed would need --override WHY)"
$clerk review set "$rid" vat 1.094,08
$clerk review approve "$rid" ||
  $clerk review approve "$rid" --override "checked against the paper"
for _ in $(seq 1 240); do
  state=$($clerk runs show "$rid" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["state"])')
  case "$state" in succeeded|failed|dead) break ;; esac
  sleep 0.5
done
echo "== job $rid after the review: booked with the reviewed values; the trail names the reviewer"
$clerk runs show "$rid" | grep -E "succeeded|failed|book |review|correct|approved"

inbox=bots/invoice-intake/inbox
echo "== three files dropped into $inbox: a new invoice twice (one under another name) and the ACME one booked above"
mkdir -p "$inbox"
before=$($clerk runs list --limit 1 --json | sed -n 's/^ *"id": \([0-9]*\),*/\1/p' | head -n 1)
cp fixtures/invoices/nordwind-logistics/NWL13487.pdf "$inbox/"
cp fixtures/invoices/nordwind-logistics/NWL13487.pdf "$inbox/scan-0001.pdf"
cp "$invoice" "$inbox/"
for _ in $(seq 1 240); do
  left=$(find "$inbox" -maxdepth 1 -type f | wc -l)
  busy=$($clerk runs list --bot invoice-intake --state queued --json | grep -c '"id"' || true)
  running=$($clerk runs list --bot invoice-intake --state running --json | grep -c '"id"' || true)
  [ "$left" -eq 0 ] && [ "$busy" -eq 0 ] && [ "$running" -eq 0 ] && break
  sleep 0.5
done
ls "$inbox/processed"
# Every dropped invoice is booked: a failed job here is a failed demo.
failed=$($clerk runs list --bot invoice-intake --state failed --json |
  python3 -c 'import json, sys; print(sum(j["id"] > int(sys.argv[1] or 0) for j in json.load(sys.stdin)))' "$before")
if [ "$failed" -ne 0 ]; then
  echo "error: $failed dropped invoice(s) failed; see clerk runs list --state failed" >&2
  status=1
fi
echo "== the ERP's bookings: each invoice once, with its scan attached"
python3 -c '
import json, sys, urllib.request
for b in json.load(urllib.request.urlopen("http://127.0.0.1:8090/admin/bookings")):
    scan = b.get("scan") or {}
    print(b["booking"], b["vendor_name"], b["invoice"], b["date"], b["amount"], "EUR", "scan:", scan.get("name", "-"), scan.get("bytes", ""))
'
echo "== the confirmations mailed to finance"
python3 -c '
import mailbox, sys
for m in sorted(mailbox.Maildir(sys.argv[1], create=False), key=lambda m: m["Date"] or ""):
    print(m["To"], "|", m["Subject"])
' "$CLERK_DATA_DIR/mail"

echo "== clerk runs list"
$clerk runs list --limit 5
id=$($clerk runs list --bot invoice-intake --limit 1 --json | sed -n 's/^ *"id": \([0-9]*\),*/\1/p' | head -n 1)
echo "== clerk runs show $id"
$clerk runs show "$id"

kill -TERM $serve
wait $serve || true
kill -TERM $erp $smtp 2>/dev/null || true
trap - EXIT
echo "== clerk serve stopped; last log lines:"
tail -n 3 "$CLERK_DATA_DIR/serve.log"
exit $status
