#!/usr/bin/env bash
# vaultgate quick start, fully offline: a local OpenBao dev server holds the provider key and the
# master key, an offline model answers only to that provider key, and the gateway (SQLite, virtual
# keys mirrored into OpenBao) serves on http://127.0.0.1:${PORT:-4000}.
# It creates a virtual key, calls the model with it and shows the key's copy in OpenBao, then keeps
# serving until Ctrl-C. `--once` stops after the demo (CI).
set -euo pipefail
cd "$(dirname "$0")/.."

once=false
[ "${1:-}" = "--once" ] && once=true
port="${PORT:-4000}"
state=.quickstart

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Fail before the long build if the port is taken, and say by what.
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "port $port on 127.0.0.1 is already in use:" >&2
  (ss -ltnp "sport = :$port" 2>/dev/null || true) | tail -n +2 >&2
  echo "stop that process, or pick another port: PORT=4100 scripts/quickstart.sh" >&2
  exit 1
fi

step "Installing OpenBao and building vaultgate (the first build takes several minutes)"
scripts/setup.sh
cargo build --release --bin vaultgate --bin vaultgate-mock-upstream
bin=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release

source scripts/lib.sh
pids=()
trap stop_pids EXIT
trap 'exit 130' INT TERM

rm -rf "$state" && mkdir -p "$state"
step "Starting a local OpenBao dev server"
start_openbao
echo "OpenBao dev server on $VAULT_ADDR (root token for this demo: $VAULT_TOKEN)"
model_port=$(free_port)

provider_key="sk-offline-$(random_secret)"
master_key="sk-master-$(random_secret)"
.venv/bin/bao kv put -mount=secret OPENAI_API_KEY key="$provider_key" >/dev/null
.venv/bin/bao kv put -mount=secret LITELLM_MASTER_KEY key="$master_key" >/dev/null
echo "stored secret/OPENAI_API_KEY and secret/LITELLM_MASTER_KEY in OpenBao"

step "Starting the offline model on 127.0.0.1:$model_port (it accepts only the key stored in OpenBao)"
MOCK_REQUIRED_KEY="$provider_key" "$bin/vaultgate-mock-upstream" --port "$model_port" >"$state/model.log" 2>&1 &
pids+=($!)

export HCP_VAULT_ADDR="$VAULT_ADDR" HCP_VAULT_TOKEN=root OFFLINE_MODEL_BASE="http://127.0.0.1:$model_port/v1"

step "vaultgate check --config examples/quickstart.yaml"
"$bin/vaultgate" check --config examples/quickstart.yaml

step "Starting vaultgate on http://127.0.0.1:$port"
"$bin/vaultgate" --config examples/quickstart.yaml --host 127.0.0.1 --port "$port" 2>"$state/vaultgate.log" &
gateway=$!
pids+=($gateway)
wait_for "http://127.0.0.1:$port/health/readiness" vaultgate
curl -fsS "http://127.0.0.1:$port/health/readiness"; echo

step "Creating a virtual key (POST /key/generate with the master key)"
generated=$(curl -fsS "http://127.0.0.1:$port/key/generate" -H "Authorization: Bearer $master_key" \
  -H 'Content-Type: application/json' \
  -d '{"key_alias": "quickstart-demo", "models": ["gpt-4o-mini", "demo-echo"], "max_budget": 1.0}')
echo "$generated" | $py -m json.tool
virtual_key=$(echo "$generated" | $py -c 'import json,sys; print(json.load(sys.stdin)["key"])')

step "Calling gpt-4o-mini with the virtual key"
curl -fsS "http://127.0.0.1:$port/v1/chat/completions" -H "Authorization: Bearer $virtual_key" \
  -H 'Content-Type: application/json' \
  -d '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}' | $py -m json.tool

bao="$PWD/.venv/bin/bao"
step "The virtual key's copy in OpenBao ($bao kv get -mount=secret litellm/quickstart-demo)"
.venv/bin/bao kv get -mount=secret litellm/quickstart-demo

stored=$(.venv/bin/bao kv get -mount=secret -field=key litellm/quickstart-demo)
[ "$stored" = "$virtual_key" ] || { echo "the key stored in OpenBao differs from the one generated" >&2; exit 1; }

if $once; then
  step "Quick start OK"
  exit 0
fi
step "vaultgate is serving on http://127.0.0.1:$port (logs: $state/vaultgate.log). Ctrl-C stops everything."
cat <<TXT
  OpenBao:     VAULT_ADDR=$VAULT_ADDR VAULT_TOKEN=$VAULT_TOKEN $bao kv get -mount=secret litellm/quickstart-demo
  master key:  $master_key
  virtual key: $virtual_key
  try:  curl http://127.0.0.1:$port/v1/chat/completions -H "Authorization: Bearer $virtual_key" \\
          -H 'Content-Type: application/json' -d '{"model":"demo-echo","messages":[{"role":"user","content":"hi"}]}'
TXT
wait "$gateway"
