#!/usr/bin/env bash
# Regenerate the fixtures (invoices, their ground truth, bad inputs) with the
# pinned generator dependencies in a private virtualenv. The generated files
# are committed; run this after changing fixtures/generate.py.
set -euo pipefail
cd "$(dirname "$0")/.."
# pdftoppm renders the invoices to page images for the scans.
. scripts/packages.sh
ensure_packages poppler-utils fonts-dejavu-core
venv=.venv-fixtures
ensure_venv "$venv" fixtures/requirements.txt
"$venv/bin/python" fixtures/generate.py
# Documents printed by Chromium (Type0/CID fonts), as vendors' systems print them.
ensure_packages chromium fonts-liberation
python3 fixtures/printed.py
