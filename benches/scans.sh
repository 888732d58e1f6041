#!/usr/bin/env bash
# Scan benchmark: seconds per page for clerk's OCR (the tesseract library,
# pooled engines, each page straightened and turned upright first) against
# the `tesseract` command line on the same page images with the same
# settings (English, automatic page segmentation, one OpenMP thread), pages
# per second with 1 and 2 reading threads, and the whole extraction with
# the templates' own languages. Prints figures; asserts nothing.
#
#   benches/scans.sh [COPIES]      # the clean fixture PNG scans, COPIES times (default 7)
set -euo pipefail
cd "$(dirname "$0")/.."
copies="${1:-7}"
. scripts/packages.sh
ensure_packages tesseract-ocr time
cargo build --release --locked -q
clerk=target/release/clerk
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for i in $(seq 1 "$copies"); do
  for f in fixtures/scans/*-clean.png; do cp "$f" "$work/$(basename "$f" .png)-$i.png"; done
done
pages=$(ls "$work"/*.png | wc -l)
echo "clerk scan benchmark: $pages pages (300 dpi, A4), $(nproc) cores"
now() { date +%s.%N; }
export OMP_THREAD_LIMIT=1
t0=$(now)
for f in "$work"/*.png; do tesseract "$f" - tsv >/dev/null 2>&1; done
t1=$(now)
$clerk read --threads 1 --json "$work"/*.png >/dev/null
t2=$(now)
$clerk read --threads 2 --json "$work"/*.png >/dev/null
t3=$(now)
$clerk extract "$work" -t bots/invoice-intake/templates --json >/dev/null || true
t4=$(now)
python3 - "$t0" "$t1" "$t2" "$t3" "$t4" "$pages" <<'PY'
import sys
t0, t1, t2, t3, t4, pages = map(float, sys.argv[1:])
cli, one, two, ext = t1 - t0, t2 - t1, t3 - t2, t4 - t3
print(f"ocr      tesseract command line (a process per page): {cli / pages:5.2f} s/page")
print(f"ocr      clerk read, 1 thread:                        {one / pages:5.2f} s/page  {pages / one:5.2f} pages/s  ({100 * (one - cli) / cli:+.0f} % against the command line)")
print(f"ocr      clerk read, 2 threads:                       {two / pages:5.2f} s/page  {pages / two:5.2f} pages/s  ({one / two:.2f}x one thread)")
print(f"extract  clerk extract, template languages:           {ext / pages:5.2f} s/page  {pages / ext:5.2f} pages/s")
PY

# The speckled page (fixtures/noisy): CPU seconds of the tesseract command
# line (stopped after 10 minutes) and of clerk, which cleans it first.
noisy=fixtures/noisy/acme-office-noisy.jpg
cpu() { /usr/bin/time -f "%U %S" -o "$work/cpu" "$@" >/dev/null 2>&1 || true; awk '{print $1 + $2}' "$work/cpu"; }
cli=$(cpu timeout 600 tesseract "$noisy" "$work/noisy")
words=$(grep -c '[A-Za-z]' "$work/noisy.txt" 2>/dev/null || true)
# clerk reads documents in reader processes of its own, which `time` does
# not count: its wall time on one reading thread bounds its CPU time.
t0=$(now)
$clerk read --threads 1 "$noisy" >/dev/null
t1=$(now)
read_wall=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
found=$($clerk extract "$noisy" -t bots/invoice-intake/templates --json 2>/dev/null | python3 -c 'import json,sys; f=json.load(sys.stdin)[0]["fields"]; print(f.get("invoice_number",{}).get("value"), f.get("amount",{}).get("value"))' || true)
echo "noisy    tesseract command line: ${cli} s CPU, ${words:-0} lines with letters"
echo "noisy    clerk read (cleaned first, one thread): ${read_wall} s wall, so at most that much CPU; clerk extract finds ${found}"
