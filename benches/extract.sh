#!/usr/bin/env bash
# Text-PDF benchmark: clerk's reader against `pdftotext -layout`, and
# `clerk extract` against invoice2data on the same PDFs with the same
# templates. Prints figures; asserts nothing.
#
#   benches/extract.sh [COPIES]     # the 20 fixture invoices, COPIES times (default 50)
#
# Installs poppler-utils (for pdftotext, which invoice2data also uses) and
# invoice2data into a private virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."
copies="${1:-50}"

. scripts/packages.sh
ensure_packages poppler-utils
venv=.venv-bench
ensure_venv "$venv" benches/requirements.txt
cargo build --release --locked -q
clerk=target/release/clerk

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/pdfs"
for i in $(seq 1 "$copies"); do
  for f in fixtures/invoices/*/*.pdf; do
    base=$(basename "$f" .pdf)
    cp "$f" "$work/pdfs/$base-$i.pdf"
    cp "${f%.pdf}.json" "$work/pdfs/$base-$i.json"
  done
done
files=$(ls "$work"/pdfs/*.pdf | wc -l)
pages=$($clerk read --json "$work"/pdfs/*.pdf | python3 -c 'import json,sys; print(sum(len(d["document"]["pages"]) for d in json.load(sys.stdin)))')
echo "clerk text-PDF benchmark: $files invoices, $pages pages, $(nproc) cores"

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }

t0=$(now)
for f in "$work"/pdfs/*.pdf; do pdftotext -layout "$f" - >/dev/null; done
t1=$(now)
$clerk read --threads 1 "$work"/pdfs/*.pdf >/dev/null
t2=$(now)
python3 - "$(elapsed "$t0" "$t1")" "$(elapsed "$t1" "$t2")" "$pages" <<'PY'
import sys
pdftotext, clerk, pages = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
print(f"layout text   pdftotext -layout (a process per file): {1000 * pdftotext / pages:6.2f} ms/page")
print(f"layout text   clerk read (one process, one thread):    {1000 * clerk / pages:6.2f} ms/page")
PY

t0=$(now)
"$venv/bin/invoice2data" -i pdftotext -t bots/invoice-intake/templates --exclude-built-in-templates \
  -f json -o "$work/i2d" "$work"/pdfs/*.pdf >/dev/null 2>"$work/i2d.log"
t1=$(now)
$clerk extract "$work/pdfs" -t bots/invoice-intake/templates --json >"$work/clerk.json" || true
t2=$(now)
python3 benches/compare_extract.py "$work/pdfs" "$work/i2d.json" "$work/clerk.json" \
  "$(elapsed "$t0" "$t1")" "$(elapsed "$t1" "$t2")"
