#!/usr/bin/env bash
# Runs every test: unit tests, and end-to-end tests against a real OpenBao dev server, the local
# PostgreSQL (127.0.0.1:5432), the recording mock upstream and the official openai Python SDK.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
export VAULTGATE_BAO_BIN="$PWD/.venv/bin/bao"
export VAULTGATE_PYTHON="$PWD/.venv/bin/python"
export VAULTGATE_TEST_POSTGRES_URL="${VAULTGATE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
cargo test --workspace --all-targets --no-fail-fast "$@"
