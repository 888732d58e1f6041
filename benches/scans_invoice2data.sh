#!/usr/bin/env bash
# Scanned invoices three ways on the same pages: the `tesseract` command
# line (reading only), invoice2data's tesseract reader (ImageMagick turns
# the PDF into a 300 dpi image, tesseract reads it, pdftotext lays it out;
# as invoice2data documents it) with the example templates, and
# `clerk extract` with the same templates. Prints pages per second and the
# header fields each got right against the ground truth; asserts nothing.
#
#   benches/scans_invoice2data.sh [COUNT]   # scans to generate (default 16:
#                                           # four vendors, four qualities)
#
# Debian's ImageMagick refuses to read PDFs (its security policy); the
# policy is lifted for invoice2data's run only, in a mount namespace of its
# own (needs root), and the system's policy file is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-16}"
. scripts/packages.sh
ensure_packages poppler-utils tesseract-ocr imagemagick ghostscript
venv=.venv-bench
ensure_venv "$venv" benches/requirements.txt
fixtures=.venv-fixtures
ensure_venv "$fixtures" fixtures/requirements.txt
cargo build --release --locked -q
clerk=target/release/clerk
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$fixtures/bin/python" fixtures/generate.py --scans "$count" --out "$work/scans" >/dev/null
pages=$(ls "$work"/scans/*.pdf | wc -l)
echo "scan benchmark against invoice2data: $pages scanned invoices, one page each, $(nproc) cores"
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }

# The page images inside the PDFs, for the command line.
mkdir -p "$work/images"
for f in "$work"/scans/*.pdf; do pdfimages -j "$f" "$work/images/$(basename "$f" .pdf)"; done
t0=$(now)
for f in "$work"/images/*; do OMP_THREAD_LIMIT=1 tesseract "$f" - tsv >/dev/null 2>&1; done
t1=$(now)
cli=$(elapsed "$t0" "$t1")

sed 's|<policy domain="coder" rights="none" pattern="PDF" />|<policy domain="coder" rights="read" pattern="PDF" />|' \
  /etc/ImageMagick-6/policy.xml >"$work/policy.xml"
t0=$(now)
unshare -m sh -c 'mount --bind "$1" /etc/ImageMagick-6/policy.xml && shift && exec "$@"' sh "$work/policy.xml" \
  "$venv/bin/invoice2data" -i tesseract -t bots/invoice-intake/templates --exclude-built-in-templates \
  -f json -o "$work/i2d" "$work"/scans/*.pdf >/dev/null 2>"$work/i2d.log" || true
t1=$(now)
i2d=$(elapsed "$t0" "$t1")

t0=$(now)
$clerk extract "$work/scans" -t bots/invoice-intake/templates --json >"$work/clerk.json" 2>/dev/null || true
t1=$(now)
ext=$(elapsed "$t0" "$t1")

python3 - "$cli" "$pages" <<'PY'
import sys
cli, pages = float(sys.argv[1]), int(sys.argv[2])
print(f"reading       tesseract command line {pages / cli:8.2f} pages/s  ({cli / pages:.2f} s/page, a process per page, one thread)")
PY
python3 benches/compare_extract.py "$work/scans" "$work/i2d.json" "$work/clerk.json" "$i2d" "$ext" \
  | sed 's/invoices\/s/pages\/s   /'
if grep -q "not allowed by the security policy" "$work/i2d.log"; then
  echo "note: ImageMagick refused the PDFs; invoice2data read nothing"
fi
