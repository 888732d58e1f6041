#!/usr/bin/env bash
# Build the container image with buildah (no daemon, no registry): on a
# Debian bookworm base that mmdebstrap makes from Debian's packages, with a
# clerk built beforehand; then check the image as an ops team would meet it:
# clerk starts as its own user, reads a scanned invoice with the image's
# tesseract and poppler, starts a worker that must run browser and OCR
# steps (chromium and tesseract tried, as clerk tries them), and answers
# /livez, which the image's health check asks.
# Usage: deploy/container/build.sh [PATH-TO-CLERK]   (default: target/debug/clerk)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/packages.sh
ensure_packages buildah mmdebstrap
clerk="$(realpath "${1:-target/debug/clerk}")"
[ -x "$clerk" ] || { echo "deploy/container/build: build clerk first (cargo build)" >&2; exit 1; }
export BUILDAH_ISOLATION=chroot
base=localhost/clerk-base:bookworm
image=localhost/clerk:check
work=$(mktemp -d)
container=
cleanup() {
  [ -n "$container" ] && buildah rm "$container" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
  echo "== base image from Debian's packages (mmdebstrap)"
  mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm "$work/base.tar" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main"
  base_container=$(buildah from scratch)
  buildah add --quiet "$base_container" "$work/base.tar" / >/dev/null
  buildah commit --quiet --rm "$base_container" "$base" >/dev/null
  rm -f "$work/base.tar"
fi

echo "== image from deploy/container/Containerfile"
mkdir "$work/context"
cp "$clerk" "$work/context/clerk"
# The docker format keeps the health check (OCI images have none).
buildah bud --quiet --layers --format docker -f deploy/container/Containerfile \
  --build-arg CLERK_BUILD=prebuilt --build-arg DEBIAN_IMAGE="$base" \
  -t "$image" "$work/context"

echo "== the image at work"
health=$(buildah inspect --type image --format '{{.Docker.Config.Healthcheck.Test}}' "$image")
case "$health" in
  *"/livez"*) ;;
  *) echo "deploy/container/build: the image's health check is not /livez: $health" >&2; exit 1 ;;
esac
container=$(buildah from "$image")
in_image() { buildah run "$container" -- "$@"; }
user=$(in_image id -un)
[ "$user" = clerk ] || { echo "deploy/container/build: the image runs as $user, not clerk" >&2; exit 1; }
in_image clerk --version
buildah copy --quiet --chown 10001:10001 "$container" fixtures/scans/acme-office-degraded.pdf /tmp/scan.pdf >/dev/null
in_image clerk read /tmp/scan.pdf >"$work/read.txt"
grep -q "ACME Office Supplies" "$work/read.txt" ||
  { echo "deploy/container/build: the image's OCR did not read the scan:" >&2; head -20 "$work/read.txt" >&2; exit 1; }
echo "read a scanned invoice with the image's tesseract"
# A worker told to run browser and OCR steps refuses to start when either
# cannot run; started, it says so and runs until stopped.
in_image timeout -s INT 10 clerk worker --kinds browser,ocr >"$work/worker.log" 2>&1 || true
grep -q "worker started" "$work/worker.log" ||
  { echo "deploy/container/build: a browser and OCR worker did not start:" >&2; cat "$work/worker.log" >&2; exit 1; }
echo "a worker that runs browser and OCR steps started"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
in_image timeout -s INT 15 clerk serve --no-workers --listen "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
serve=$!
for _ in $(seq 1 100); do
  in_image curl -fsS "http://127.0.0.1:$port/livez" >/dev/null 2>&1 && break
  sleep 0.1
done
in_image curl -fsS "http://127.0.0.1:$port/livez" ||
  { echo "deploy/container/build: /livez did not answer:" >&2; cat "$work/serve.log" >&2; exit 1; }
echo " (/livez, as the image's health check asks: $health)"
wait "$serve" || true
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$image"
echo "container image: ok"
