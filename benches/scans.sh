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
ensure_packages tesseract-ocr
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
