#!/usr/bin/env bash
# Scan benchmark: seconds per page for clerk's OCR (the tesseract library,
# one engine per reading thread, reused) against the `tesseract` command
# line on the same page images with the same settings (English, automatic
# page segmentation, one OpenMP thread), and pages per second with 1 and 2
# reading threads. Prints figures; asserts nothing.
#
#   benches/scans.sh [COPIES]      # the 4 clean fixture scans, COPIES times (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
copies="${1:-5}"
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
echo "clerk scan benchmark: $pages pages (300 dpi, A4/Letter), $(nproc) cores"
now() { date +%s.%N; }
export OMP_THREAD_LIMIT=1
t0=$(now)
for f in "$work"/*.png; do tesseract "$f" - tsv >/dev/null 2>&1; done
t1=$(now)
$clerk extract "$work" -t bots/invoice-intake/templates --threads 1 --json >/dev/null || true
t2=$(now)
$clerk extract "$work" -t bots/invoice-intake/templates --threads 2 --json >/dev/null || true
t3=$(now)
python3 - "$t0" "$t1" "$t2" "$t3" "$pages" <<'PY'
import sys
t0, t1, t2, t3, pages = map(float, sys.argv[1:])
cli, one, two = t1 - t0, t2 - t1, t3 - t2
print(f"ocr   tesseract command line (a process per page): {cli / pages:5.2f} s/page")
print(f"ocr   clerk, 1 reading thread:                     {one / pages:5.2f} s/page  {pages / one:5.2f} pages/s  ({100 * (one - cli) / cli:+.0f} % against the command line)")
print(f"ocr   clerk, 2 reading threads:                    {two / pages:5.2f} s/page  {pages / two:5.2f} pages/s  ({one / two:.2f}x one thread)")
PY
