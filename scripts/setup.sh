#!/usr/bin/env bash
# Installs what clerk needs on a fresh Debian machine and builds it.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the build and the tests use. The embedded SQLite is
# compiled in; PostgreSQL is only needed for the tests' PostgreSQL half.
# Mail links OpenSSL for TLS.
# OCR links the tesseract library (its bindings are generated with libclang)
# and uses its orientation data and the language data the example templates
# ask for; pages drawn as anything but a JPEG are rendered with pdftoppm.
# The mail tests start private Dovecot IMAP servers of their own, with
# certificates made by openssl. Browser steps drive Debian's chromium.
# The lease tests run a worker whose clock is off, with libfaketime.
# deploy/check.sh verifies the systemd units with systemd-analyze, and
# builds the container image with buildah on a base mmdebstrap makes.
. scripts/packages.sh
ensure_packages pkg-config ca-certificates libssl-dev clang libclang-dev libtesseract-dev libleptonica-dev \
  tesseract-ocr-eng tesseract-ocr-osd tesseract-ocr-deu tesseract-ocr-fra tesseract-ocr-nld poppler-utils \
  dovecot-imapd openssl chromium faketime systemd buildah mmdebstrap

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is not installed; install Rust with rustup first" >&2
  exit 1
fi

# The several-machines test drops 200 invoices made by the fixture
# generator (reportlab, in a private virtualenv; DejaVu fonts).
ensure_packages fonts-dejavu-core
ensure_venv .venv-fixtures fixtures/requirements.txt

# The S3 document store is tested against a real S3-compatible server,
# s3s-fs (an S3 API over a folder), built from crates.io into .tools/.
if [ ! -x .tools/bin/s3s-fs ]; then
  cargo install --locked --quiet s3s-fs@0.14.1 --features binary --root .tools
fi

# The email tests send through a real SMTP server, aiosmtpd, kept in a
# private virtualenv.
if [ ! -x .venv-smtp/bin/python ] || ! .venv-smtp/bin/python -c "import aiosmtpd" 2>/dev/null; then
  python3 -m venv .venv-smtp
  .venv-smtp/bin/pip install -q -r tests/smtp-requirements.txt
fi

# The API tests validate the OpenAPI document and fuzz the API from it
# (openapi-spec-validator, schemathesis), kept in a private virtualenv.
if [ ! -x .venv-api/bin/schemathesis ] || ! .venv-api/bin/python -c "import schemathesis, openapi_spec_validator" 2>/dev/null; then
  python3 -m venv .venv-api
  .venv-api/bin/pip install -q -r tests/api-requirements.txt
fi

# The event log test reads clerk's OCEL 2.0 and CSV exports with PM4Py, an
# independent reader, kept in a private virtualenv.
if [ ! -x .venv-pm4py/bin/python ] || ! .venv-pm4py/bin/python -c "import pm4py" 2>/dev/null; then
  python3 -m venv .venv-pm4py
  .venv-pm4py/bin/pip install -q -r tests/pm4py-requirements.txt
fi

# The template compatibility tests load invoice2data's own built-in
# templates and compare its fields with clerk's, from the invoice2data
# package kept in a private virtualenv (poppler-utils gives it pdftotext).
if [ ! -x .venv-invoice2data/bin/invoice2data ]; then
  python3 -m venv .venv-invoice2data
  .venv-invoice2data/bin/pip install -q -r tests/invoice2data-requirements.txt
fi
