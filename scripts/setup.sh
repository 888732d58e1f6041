#!/usr/bin/env bash
# Installs what clerk needs on a fresh Debian machine and builds it.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the build and the tests use. The embedded SQLite is
# compiled in; PostgreSQL is only needed for the tests' PostgreSQL half.
# OCR links the tesseract library (its bindings are generated with libclang)
# and needs the English language data.
packages=(pkg-config ca-certificates clang libclang-dev libtesseract-dev libleptonica-dev tesseract-ocr-eng)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is not installed; install Rust with rustup first" >&2
  exit 1
fi
