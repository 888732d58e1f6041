#!/usr/bin/env bash
# Check the deploy files the way their tools read them:
# - the systemd units with `systemd-analyze verify` (pointed at the clerk
#   this checkout builds, as the units point at the installed one);
# - the Kubernetes manifests against the Kubernetes API schemas
#   (kubernetes-validate, from PyPI);
# - the container file and the compose file parsed, and what they refer
#   to checked;
# - the container image built with buildah from the container file, on a
#   base made from Debian's packages, with this checkout's clerk, and run
#   (deploy/container/build.sh).
# Usage: deploy/check.sh [PATH-TO-CLERK]   (default: target/debug/clerk)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/packages.sh
clerk="$(realpath "${1:-target/debug/clerk}")"
[ -x "$clerk" ] || { echo "deploy/check: build clerk first (cargo build)" >&2; exit 1; }

echo "== systemd units"
units=$(mktemp -d)
trap 'rm -rf "$units"' EXIT
for unit in deploy/systemd/*.service; do
  sed "s|/usr/local/bin/clerk|$clerk|g" "$unit" >"$units/$(basename "$unit")"
done
# verify prints what it finds wrong and exits non-zero on errors; the
# warnings it prints about the machine's own units are not ours.
( cd "$units" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no ./*.service ) 2>&1 |
  tee "$units/verify.log"
if grep -E "^$units|\.service:" "$units/verify.log" | grep -vq "^$"; then
  echo "deploy/check: systemd-analyze found problems in the units" >&2
  exit 1
fi

ensure_venv .venv-deploy deploy/requirements.txt
echo "== Kubernetes manifests"
.venv-deploy/bin/kubernetes-validate --strict -k 1.31.0 deploy/kubernetes/*.yaml

echo "== container file and compose file"
.venv-deploy/bin/python deploy/check_files.py

deploy/container/build.sh "$clerk"
echo "deploy files: ok"
