#!/usr/bin/env bash
# Two vaultgate instances behind nginx on 127.0.0.1, sharing one PostgreSQL database (keys,
# spend), one Redis (rate limits) and one OpenBao (every credential). It drives a few requests
# through nginx, shows that the pair acts as one gateway, then keeps serving until Ctrl-C
# (`--once`: stops after the demo). Everything it starts is stopped by its pid on exit.
#
# Needs: nginx and redis-server (Debian: apt-get install nginx redis-server), a PostgreSQL that
# lets it create a database (PGURL, default postgres://postgres@127.0.0.1:5432/postgres), and
# psql. OpenBao comes from scripts/setup.sh.
# Optional: VAULTGATE_BIN (a built vaultgate binary; else a release build), MODEL_BASE (an
# OpenAI-compatible base URL to use instead of the offline model), PROVIDER_KEY (the provider key
# stored in OpenBao), PORT (nginx's, default 4000), STATE_DIR (logs and nginx's files, default
# .replicas).
set -euo pipefail
cd "$(dirname "$0")/../.."

once=false
[ "${1:-}" = "--once" ] && once=true
port="${PORT:-4000}"
pgurl="${PGURL:-postgres://postgres@127.0.0.1:5432/postgres}"
state=$(mkdir -p "${STATE_DIR:-.replicas}" && cd "${STATE_DIR:-.replicas}" && pwd)
here=examples/replicas

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { echo "$*" >&2; exit 1; }

nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx" ] || fail "nginx is not installed (Debian: apt-get install nginx)"
command -v redis-server >/dev/null || fail "redis-server is not installed (Debian: apt-get install redis-server)"
command -v psql >/dev/null || fail "psql is not installed (Debian: apt-get install postgresql-client)"
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  fail "port $port on 127.0.0.1 is already in use: pick another one, e.g. PORT=4100 $0"
fi

[ -x .venv/bin/bao ] || scripts/setup.sh
if [ -z "${VAULTGATE_BIN:-}" ]; then
  step "Building vaultgate (the first build takes several minutes)"
  cargo build --release --bin vaultgate --bin vaultgate-mock-upstream
  VAULTGATE_BIN="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/vaultgate"
fi

source scripts/lib.sh
pids=()
database=""
cleanup() {
  stop_pids
  [ -n "$database" ] && psql "$pgurl" -q -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$state/nginx" && mkdir -p "$state/nginx"

step "OpenBao (a dev server) holds every credential"
start_openbao
provider_key="${PROVIDER_KEY:-sk-offline-$(random_secret)}"
master_key="sk-master-$(random_secret)"
redis_password="$(random_secret)"
database="vaultgate_replicas_$($py -c 'import secrets; print(secrets.token_hex(5))')"
database_url="${pgurl%/*}/$database"
.venv/bin/bao kv put -mount=secret OPENAI_API_KEY key="$provider_key" >/dev/null
.venv/bin/bao kv put -mount=secret LITELLM_MASTER_KEY key="$master_key" >/dev/null
.venv/bin/bao kv put -mount=secret DATABASE_URL key="$database_url" >/dev/null
.venv/bin/bao kv put -mount=secret REDIS_PASSWORD key="$redis_password" >/dev/null
echo "secret/OPENAI_API_KEY, LITELLM_MASTER_KEY, DATABASE_URL and REDIS_PASSWORD are in $VAULT_ADDR"

step "PostgreSQL: database $database for both instances"
psql "$pgurl" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $database" >/dev/null

step "Redis on 127.0.0.1 (password from OpenBao)"
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --requirepass "$redis_password" --dir "$state" --logfile "$state/redis.log" &
pids+=($!)
redis() { REDISCLI_AUTH="$redis_password" redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }
for _ in $(seq 1 100); do [ "$(redis PING 2>/dev/null)" = PONG ] && break; sleep 0.1; done
[ "$(redis PING)" = PONG ] || fail "Redis did not start; see $state/redis.log"

if [ -z "${MODEL_BASE:-}" ]; then
  model=$(dirname "$VAULTGATE_BIN")/vaultgate-mock-upstream
  [ -x "$model" ] || fail "no offline model at $model: cargo build --bin vaultgate-mock-upstream, or set MODEL_BASE"
  model_port=$(free_port)
  MOCK_REQUIRED_KEY="$provider_key" "$model" --port "$model_port" >"$state/model.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$model_port") 2>/dev/null && break; sleep 0.1; done
  MODEL_BASE="http://127.0.0.1:$model_port/v1"
fi

step "Two vaultgate instances, one config"
export HCP_VAULT_ADDR="$VAULT_ADDR" HCP_VAULT_TOKEN="$VAULT_TOKEN" OFFLINE_MODEL_BASE="$MODEL_BASE"
export REDIS_PORT="$redis_port"
instances=()
for name in a b; do
  instance_port=$(free_port)
  "$VAULTGATE_BIN" --config "$here/config.yaml" --host 127.0.0.1 --port "$instance_port" \
    2>"$state/vaultgate-$name.log" &
  pids+=($!)
  instances+=("127.0.0.1:$instance_port")
done
for address in "${instances[@]}"; do wait_for "http://$address/health/readiness" vaultgate 60; done
echo "instances on ${instances[*]}"

step "nginx on 127.0.0.1:$port in front of both"
sed -e "s/@PORT@/$port/" -e "s/@A@/${instances[0]}/" -e "s/@B@/${instances[1]}/" \
  "$here/nginx.conf" >"$state/nginx/nginx.conf"
"$nginx" -p "$state/nginx" -c nginx.conf -e "$state/nginx/error.log" &
pids+=($!)
gateway="http://127.0.0.1:$port"
wait_for "$gateway/health/liveliness" nginx

json() { $py -c "import json,sys; v=json.load(sys.stdin); print($1)"; }
# Both instances see each other through Redis (each heartbeat counts the live ones).
for _ in $(seq 1 50); do
  seen=$(curl -fsS "http://${instances[0]}/health/readiness" -H "Authorization: Bearer $master_key" \
    | json 'v["redis"].get("instances")')
  [ "$seen" = 2 ] && break
  sleep 0.2
done
for address in "${instances[@]}"; do
  echo "$address: $(curl -fsS "http://$address/health/readiness" -H "Authorization: Bearer $master_key" \
    | json 'json.dumps({k: v[k] for k in ("status", "redis")})')"
done

step "A key with rpm_limit 4, made through nginx"
# Start in the first 50 s of Redis's minute, so the six calls share one rpm window.
for _ in $(seq 1 30); do (( $(redis TIME | sed -n 1p) % 60 < 50 )) && break; sleep 0.5; done
key=$(curl -fsS "$gateway/key/generate" -H "Authorization: Bearer $master_key" \
  -H 'Content-Type: application/json' -d '{"key_alias": "replicas-demo", "rpm_limit": 4}' | json 'v["key"]')

step "Six calls through nginx: round robin over both instances, one shared limit"
ok=0 limited=0 served=""
for i in 1 2 3 4 5 6; do
  out=$(curl -sS -o "$state/answer.json" -D - -w '%{http_code}' "$gateway/v1/chat/completions" \
    -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}')
  code=${out##*$'\n'}
  instance=$(printf '%s' "$out" | tr -d '\r' | sed -n 's/^x-vaultgate-instance: //Ip')
  served="$served $instance"
  echo "call $i: $code from $instance"
  case $code in 200) ok=$((ok + 1)) ;; 429) limited=$((limited + 1)) ;; *) cat "$state/answer.json"; fail "call $i: $code" ;; esac
done
[ "$ok" = 4 ] && [ "$limited" = 2 ] || fail "expected 4 answers and 2 refusals (rpm_limit 4 for the pair), got $ok and $limited"
for address in "${instances[@]}"; do
  [[ "$served" == *"$address"* ]] || fail "nginx never sent a call to $address"
done
echo "4 answered, 2 refused with 429: the limit held for both instances together"

step "Delete the key through nginx: neither instance takes it any more"
curl -fsS "$gateway/key/delete" -H "Authorization: Bearer $master_key" \
  -H 'Content-Type: application/json' -d "{\"keys\": [\"$key\"]}" >/dev/null
for address in "${instances[@]}"; do
  code=000
  for _ in $(seq 1 20); do
    code=$(curl -sS -o /dev/null -w '%{http_code}' "http://$address/v1/models" -H "Authorization: Bearer $key")
    [ "$code" = 401 ] && break
    sleep 0.1
  done
  [ "$code" = 401 ] || fail "$address still takes the deleted key ($code)"
  echo "$address: 401"
done

if $once; then
  step "Replicas example OK"
  exit 0
fi
step "Serving on $gateway (nginx → ${instances[*]}; logs in $state/). Ctrl-C stops everything."
cat <<TXT
  master key: $master_key
  try:  curl -i $gateway/health/readiness -H "Authorization: Bearer $master_key"
TXT
wait "${pids[@]}"
