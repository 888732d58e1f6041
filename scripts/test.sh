#!/usr/bin/env bash
# Set up a fresh machine and run every test: unit tests, and the integration
# suite against a real SQLite file and the real PostgreSQL at
# 127.0.0.1:5432 (override with CLERK_TEST_PG=postgres://…).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

pg_url="${CLERK_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}"
if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -d "$pg_url"; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "test: PostgreSQL is not answering; starting the local cluster"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
    for _ in $(seq 1 30); do pg_isready -q -d "$pg_url" && break; sleep 1; done
  fi
fi

cargo build --all-targets --locked
# The deploy files, read by their own tools (systemd-analyze, the
# Kubernetes schemas, buildah building the container image).
deploy/check.sh target/debug/clerk
# Unit and integration tests (the crate has no doctests to run).
cargo test --locked --lib --bins --tests
