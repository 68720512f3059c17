#!/usr/bin/env bash
# Runs every test: unit tests, and end-to-end tests against a real OpenBao dev server, the local
# PostgreSQL (127.0.0.1:5432, or $VAULTGATE_TEST_POSTGRES_URL), the recording mock upstream and the
# official openai Python SDK. Extra arguments go to `cargo nextest run` (e.g. `-p vaultgate-keys`).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
export VAULTGATE_BAO_BIN="$PWD/.venv/bin/bao"
export VAULTGATE_PYTHON="$PWD/.venv/bin/python"
export VAULTGATE_TEST_POSTGRES_URL="${VAULTGATE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-targets --no-fail-fast "$@"
else
  echo "cargo-nextest not found; running cargo test (install it: cargo install --locked cargo-nextest)" >&2
  cargo test --workspace --all-targets --no-fail-fast "$@"
fi
