#!/usr/bin/env bash
# vaultgate benchmark: gateway overhead against a fast local upstream, on the realistic path.
#
#   scripts/bench.sh            3 rounds of 5 s runs (stable numbers), writes .bench/results.md
#   scripts/bench.sh --smoke    1 round of 2 s runs, small counts: CI checks that it works (no
#                               assertions)
#   scripts/bench.sh --soak     the default runs, then a 10-minute soak at 2,000 req/s with the
#                               gateway's RSS sampled every 30 s, then 100k requests
#   scripts/bench.sh --profile  the gateway, nginx and a bare hyper relay (the gateway's HTTP
#                               stack alone) under valgrind's callgrind: user-space instructions
#                               per request (repeatable whatever else the machine does), the
#                               request's own told from per-second work, and where they go
#   scripts/bench.sh ... --redis  the same with shared limits on (rpm, tpm and parallel requests
#                               counted in a redis-server the script starts on a free port), so
#                               the cost of the one Redis round trip per request shows
#
# It builds the release binaries, installs the load tool (oha, from crates.io, into .tools/),
# starts a local OpenBao dev server that holds the provider key and the master key, the mock
# upstream (accepting only that provider key), a zero-work TCP relay in front of it (this
# machine's floor for any proxy), nginx as a reverse proxy in front of it (the best generic proxy:
# one worker, keep-alive upstream, no buffering, no access log; installed from Debian's packages
# when missing) and the gateway (SQLite, virtual keys, provider key from OpenBao), creates a
# virtual key with limits through POST /key/generate and drives load directly at the mock,
# through the relay, through nginx and through the gateway. A second mock streams 200 content
# chunks per answer, so the cost per forwarded chunk shows. Everything listens on 127.0.0.1 and
# every process started here is stopped by pid on exit.
#
# Optional comparison with another gateway: BENCH_COMPARE_CMD is run with BENCH_COMPARE_PORT,
# BENCH_UPSTREAM_URL (the mock's base URL, ending in /v1), BENCH_PROVIDER_KEY and BENCH_MODEL in its
# environment; it must serve BENCH_MODEL on 127.0.0.1:$BENCH_COMPARE_PORT/v1/chat/completions
# accepting `Authorization: Bearer ${BENCH_COMPARE_KEY:-$BENCH_PROVIDER_KEY}`. BENCH_COMPARE_NAME
# labels its rows.
#
# Environment: OHA=path uses that oha binary; BENCH_BIN_DIR=dir takes vaultgate,
# vaultgate-mock-upstream and vaultgate-bench-relay from dir instead of building them;
# BENCH_SPEND_LOGS=off sets disable_spend_logs (what the per-request rows cost);
# BENCH_OUT=file also copies the Markdown there; BENCH_GATEWAY_WORKERS=n runs the gateway with n
# serving threads (default 1: the gateway's fair share of this two-core machine).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

mode=default
redis=false
for arg in "$@"; do
  case "$arg" in
    --smoke) mode=smoke ;;
    --soak) mode=soak ;;
    --profile) mode=profile ;;
    --redis) redis=true ;;
    *) echo "usage: scripts/bench.sh [--smoke|--soak|--profile] [--redis]" >&2; exit 2 ;;
  esac
done
# Direct, relay and gateway runs alternate, round after round: the report takes medians over
# rounds, so a slow moment of this shared machine spoils one round instead of one side of the
# comparison.
case $mode in
  smoke) duration=2; rounds=1; ttfb_iterations=200; long_iterations=20; bulk_requests=5000 ;;
  *) duration=5; rounds=3; ttfb_iterations=3000; long_iterations=300; bulk_requests=100000 ;;
esac
soak_seconds=600
rate=2000
model=gpt-4o-mini
# The gateway's serving threads: one, as it shares two cores with the mock and the load tool.
workers="${BENCH_GATEWAY_WORKERS:-1}"
state="$root/.bench"
log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

log "setup: OpenBao CLI, release build, load tool"
scripts/setup.sh
if [ -n "${BENCH_BIN_DIR:-}" ]; then
  bin=$(cd "$BENCH_BIN_DIR" && pwd)
else
  cargo build --release --quiet --bin vaultgate --bin vaultgate-mock-upstream \
    --bin vaultgate-bench-relay
  bin=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release
fi
oha="${OHA:-}"
if [ -z "$oha" ]; then
  if [ -x "$root/.tools/bin/oha" ]; then
    oha="$root/.tools/bin/oha"
  elif command -v oha >/dev/null 2>&1; then
    oha=$(command -v oha)
  else
    log "installing oha into .tools/ (cargo install --locked oha: once, several minutes)"
    cargo install --locked --quiet oha --root "$root/.tools"
    oha="$root/.tools/bin/oha"
  fi
fi
"$oha" --version >/dev/null
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  log "installing nginx (Debian package) for the comparison row"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
source scripts/lib.sh

pids=()
groups=() # process groups of commands we did not write (BENCH_COMPARE_CMD), by their leader's pid
cleanup() {
  local pid
  for pid in "${groups[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
  stop_pids
  for pid in "${groups[@]}"; do kill -9 -- "-$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$state" && mkdir -p "$state/runs"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

log "starting OpenBao (dev server), the mock upstream and vaultgate on 127.0.0.1"
start_openbao
provider_key="sk-provider-$(random_secret)"
master_key="sk-master-$(random_secret)"
.venv/bin/bao kv put -mount=secret OPENAI_API_KEY key="$provider_key" >/dev/null
.venv/bin/bao kv put -mount=secret LITELLM_MASTER_KEY key="$master_key" >/dev/null

mock_port=$(free_port)
"$bin/vaultgate-mock-upstream" --port "$mock_port" --require-key "$provider_key" \
  >"$state/mock.log" 2>&1 &
pids+=($!)
upstream="http://127.0.0.1:$mock_port/v1"
# The machine's floor: a relay that does no work in front of the same mock. What it adds is what
# one more process on the path costs here, before any gateway does anything.
relay_port=$(free_port)
"$bin/vaultgate-bench-relay" --port "$relay_port" --to "127.0.0.1:$mock_port" \
  >"$state/relay.log" 2>&1 &
pids+=($!)
relay="http://127.0.0.1:$relay_port/v1"
# The streaming-heavy upstream: every stream is 200 content chunks.
long_port=$(free_port)
"$bin/vaultgate-mock-upstream" --port "$long_port" --require-key "$provider_key" --answer-words 200 \
  >"$state/mock-long.log" 2>&1 &
pids+=($!)
long_upstream="http://127.0.0.1:$long_port/v1"
long_relay_port=$(free_port)
"$bin/vaultgate-bench-relay" --port "$long_relay_port" --to "127.0.0.1:$long_port" \
  >"$state/relay-long.log" 2>&1 &
pids+=($!)
long_relay="http://127.0.0.1:$long_relay_port/v1"

# nginx as the best generic reverse proxy: one worker (the gateway gets one serving thread too),
# keep-alive connections to the mock, no buffering either way, no access log. `master_process
# off` runs that one worker as the only process (same request path; callgrind can follow it).
nginx_port=$(free_port)
long_nginx_port=$(free_port)
mkdir -p "$state/nginx"
cat >"$state/nginx/nginx.conf" <<NGINX
daemon off;
master_process off;
worker_processes 1;
pid $state/nginx/nginx.pid;
error_log $state/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $state/nginx/body;
  proxy_temp_path $state/nginx/proxy;
  fastcgi_temp_path $state/nginx/fastcgi;
  uwsgi_temp_path $state/nginx/uwsgi;
  scgi_temp_path $state/nginx/scgi;
  keepalive_requests 1000000;
  upstream mock { server 127.0.0.1:$mock_port; keepalive 64; keepalive_requests 1000000; }
  upstream mock_long { server 127.0.0.1:$long_port; keepalive 16; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / { proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_buffering off; proxy_request_buffering off; }
  }
  server {
    listen 127.0.0.1:$long_nginx_port;
    location / { proxy_pass http://mock_long; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_buffering off; proxy_request_buffering off; }
  }
}
NGINX
nginx_wrap=()
if [ "$mode" = profile ]; then
  nginx_wrap=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$state/callgrind-nginx.out")
fi
"${nginx_wrap[@]}" "$nginx_bin" -p "$state/nginx" -c "$state/nginx/nginx.conf" -e "$state/nginx/error.log" \
  >"$state/nginx.log" 2>&1 &
nginx_pid=$!
pids+=($nginx_pid)
nginx="http://127.0.0.1:$nginx_port/v1"
long_nginx="http://127.0.0.1:$long_nginx_port/v1"

cat >"$state/config.yaml" <<YAML
# Written by scripts/bench.sh: the provider key and the master key come from OpenBao.
model_list:
  - model_name: $model
    litellm_params:
      model: openai/$model
      api_base: os.environ/BENCH_UPSTREAM_BASE
      api_key: os.environ/OPENAI_API_KEY
    model_info:
      input_cost_per_token: 0.00000015
      output_cost_per_token: 0.0000006
  - model_name: $model-long
    litellm_params:
      model: openai/$model
      api_base: os.environ/BENCH_LONG_UPSTREAM_BASE
      api_key: os.environ/OPENAI_API_KEY
    model_info:
      input_cost_per_token: 0.00000015
      output_cost_per_token: 0.0000006
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
  database_url: sqlite://$state/vaultgate.db
  key_management_system: hashicorp_vault
  key_management_settings:
    hosted_keys: [OPENAI_API_KEY, LITELLM_MASTER_KEY]
YAML
if [ "${BENCH_SPEND_LOGS:-on}" = off ]; then
  # LiteLLM's switch for the per-request rows (key spend is still recorded): what they cost.
  sed -i 's/^general_settings:$/general_settings:\n  disable_spend_logs: true/' "$state/config.yaml"
fi

if $redis; then
  # Shared limits: a private redis-server (no persistence), stopped by pid with the rest.
  command -v redis-server >/dev/null 2>&1 || {
    log "installing redis-server (Debian package) for --redis"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server
  }
  redis_port=$(free_port)
  redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
    >"$state/redis.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
  done
  cat >>"$state/config.yaml" <<YAML
router_settings:
  redis_host: 127.0.0.1
  redis_port: $redis_port
YAML
fi

gw_port=$(free_port)
wrap=()
if [ "$mode" = profile ]; then
  wrap=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$state/callgrind.out")
fi
started_ns=$(date +%s%N)
HCP_VAULT_ADDR="$VAULT_ADDR" HCP_VAULT_TOKEN=root BENCH_UPSTREAM_BASE="$upstream" \
  BENCH_LONG_UPSTREAM_BASE="$long_upstream" "${wrap[@]}" "$bin/vaultgate" --config "$state/config.yaml" --host 127.0.0.1 --port "$gw_port" \
  --num_workers "$workers" \
  >"$state/vaultgate.log" 2>&1 &
gw_pid=$!
pids+=($gw_pid)
gateway="http://127.0.0.1:$gw_port"
# Start-up to ready (Vault warm: OpenBao is already up), polled every 2 ms.
ready_ms=$($py - "$gateway/health/readiness" "$started_ns" <<'PY'
import sys, time, urllib.request
url, started = sys.argv[1], int(sys.argv[2])
deadline = time.time() + 120
while time.time() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            if answer.status == 200:
                print(f"{(time.time_ns() - started) / 1e6:.0f}")
                break
    except OSError:
        time.sleep(0.002)
else:
    print("-1")
PY
)
[ "$ready_ms" != -1 ] || { echo "vaultgate did not become ready; see $state/vaultgate.log" >&2; exit 1; }
# wait_for_chat URL NAME: until URL answers a chat completion with the provider key.
wait_for_chat() {
  for _ in $(seq 1 150); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$1/chat/completions" \
      -H "Authorization: Bearer $provider_key" -H 'Content-Type: application/json' \
      -d "{\"model\":\"$model\",\"messages\":[]}" || true)
    [ "$code" = 200 ] && return 0
    sleep 0.1
  done
  echo "the $2 did not come up; see $state/$2.log" >&2
  exit 1
}
wait_for_chat "$upstream" mock
wait_for_chat "$relay" relay
wait_for_chat "$nginx" nginx
wait_for_chat "$long_upstream" mock-long

log "creating a virtual key with limits (POST /key/generate)"
virtual_key=$(curl -fsS "$gateway/key/generate" -H "Authorization: Bearer $master_key" \
  -H 'Content-Type: application/json' \
  -d "{\"key_alias\":\"bench\",\"models\":[\"$model\",\"$model-long\"],\"max_budget\":1000000,\"rpm_limit\":100000000,\"tpm_limit\":10000000000,\"max_parallel_requests\":1000}" |
  $py -c 'import json,sys; print(json.load(sys.stdin)["key"])')

body_file="$state/body.json"
printf '{"model":"%s","messages":[{"role":"user","content":"Say hello."}]}' "$model" >"$body_file"

# oha NAME URL KEY ARGS...: one load run, JSON kept in $state/runs/NAME.json
run() {
  local name=$1 url=$2 key=$3
  shift 3
  timeout 900 "$oha" --no-tui --output-format json -t 10s -m POST -H "Authorization: Bearer $key" \
    -T application/json -D "$body_file" "$@" "$url/chat/completions" >"$state/runs/$name.json"
}
vault_requests() {
  curl -fsS "$gateway/metrics" -H "Authorization: Bearer $master_key" |
    awk '/^vaultgate_vault_requests_total/ {sum += $NF} END {printf "%d\n", sum}'
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$gw_pid/status"; }

if [ "$mode" = profile ]; then
  requests=5000
  # profile_process NAME PID URL KEY ARGS...: one instrumented run of oha against a process under
  # callgrind, dumped on its own (each dump holds what ran since the one before).
  profile_process() {
    local name=$1 pid=$2 url=$3 key=$4
    shift 4
    callgrind_control -i on "$pid" >/dev/null 2>&1
    run "$name" "$url" "$key" -n "$requests" -c 4 "$@"
    callgrind_control -i off "$pid" >/dev/null 2>&1
    callgrind_control -d "$pid" >/dev/null 2>&1
  }
  # The gateway twice: as fast as it goes under callgrind, then at half that rate. Per-second
  # work (the writers' flushes, timers) is spread over fewer requests at a slower rate, and
  # under callgrind the gateway serves a few hundred requests a second, not thousands: the two
  # runs tell the request's own instructions from that work.
  log "profile: $requests requests at 4 connections through the gateway under callgrind, twice"
  run warm-gateway "$gateway/v1" "$virtual_key" -n 500 -c 4
  profile_process profile "$gw_pid" "$gateway/v1" "$virtual_key"
  half_rate=$($py -c 'import json,sys; print(max(1, int(json.load(open(sys.argv[1]))["summary"]["requestsPerSec"] / 2)))' \
    "$state/runs/profile.json")
  profile_process profile-half "$gw_pid" "$gateway/v1" "$virtual_key" -q "$half_rate"
  log "profile: $requests requests at 4 connections through nginx under callgrind"
  run warm-nginx "$nginx" "$provider_key" -n 500 -c 4
  profile_process profile-nginx "$nginx_pid" "$nginx" "$provider_key"
  # The gateway's HTTP stack alone (hyper's server and hyper-util's pooled client, no work):
  # the floor of this implementation, as nginx is the floor of the best generic proxy.
  log "profile: $requests requests at 4 connections through a bare hyper relay under callgrind"
  hyper_port=$(free_port)
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$state/callgrind-hyper.out" \
    "$bin/vaultgate-bench-relay" --port "$hyper_port" --to "127.0.0.1:$mock_port" --http \
    >"$state/hyper-relay.log" 2>&1 &
  hyper_pid=$!
  pids+=($hyper_pid)
  wait_for_chat "http://127.0.0.1:$hyper_port/v1" hyper-relay
  run warm-hyper "http://127.0.0.1:$hyper_port/v1" "$provider_key" -n 500 -c 4
  profile_process profile-hyper "$hyper_pid" "http://127.0.0.1:$hyper_port/v1" "$provider_key"
  sleep 1
  total_ir() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'; }
  out="$state/callgrind.out.1"
  callgrind_annotate --inclusive=yes "$out" 2>/dev/null | sed -n 1,80p >"$state/profile.txt"
  callgrind_annotate --inclusive=yes "$state/callgrind-nginx.out.1" 2>/dev/null | sed -n 1,60p >"$state/profile-nginx.txt"
  callgrind_annotate --inclusive=yes "$state/callgrind-hyper.out.1" 2>/dev/null | sed -n 1,60p >"$state/profile-hyper.txt"
  name=vaultgate
  $redis && name="vaultgate (shared limits on Redis)"
  $py - "$state/runs" "$requests" "$name" "$(total_ir "$out")" "$(total_ir "$state/callgrind.out.2")" \
    "$(total_ir "$state/callgrind-nginx.out.1")" "$(total_ir "$state/callgrind-hyper.out.1")" <<'PY'
import json, sys
runs, requests, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fast, half, nginx, hyper = (int(v) for v in sys.argv[4:8])
def run(n):
    summary = json.load(open(f"{runs}/{n}.json"))
    return summary["summary"]["total"], summary["summary"]["requestsPerSec"], summary.get("statusCodeDistribution", {})
(t1, r1, c1), (t2, r2, c2) = run("profile"), run("profile-half")
print(f"{name} user-space instructions per request: {fast // requests:,} at {r1:,.0f} req/s "
      f"(status codes {c1}), {half // requests:,} at {r2:,.0f} req/s (status codes {c2})")
if t2 > t1 * 1.2:
    per_second = (half - fast) / (t2 - t1)
    own = (fast - per_second * t1) / requests
    share = per_second * t1 / fast
    verdict = ("no more than run-to-run noise: the figure is the request's own"
               if abs(share) < 0.02 else f"the request's own: {own:,.0f}")
    print(f"  per-second work by a fit of the two runs: {per_second:,.0f} instructions a second, "
          f"{per_second * t1 / requests:,.0f} per request at the first run's rate "
          f"({per_second / 10000:,.0f} at 10,000 req/s); {verdict}")
for label, total, n in (("nginx", nginx, "profile-nginx"), ("bare hyper relay (the gateway's HTTP stack, no work)", hyper, "profile-hyper")):
    print(f"{label} user-space instructions per request: {total // requests:,} (status codes {run(n)[2]})")
PY
  if $redis; then
    echo "Redis commands processed during the runs: $(redis-cli -p "$redis_port" info stats |
      awk -F: '/^total_commands_processed/ {print $2}' | tr -d '\r')"
  fi
  echo "inclusive profiles: $state/profile.txt, $state/profile-nginx.txt, $state/profile-hyper.txt (callgrind_annotate FILE for more)"
  exit 0
fi

log "warm-up"
run warm-direct "$upstream" "$provider_key" -z 1s -c 16
run warm-relay "$relay" "$provider_key" -z 1s -c 16
run warm-nginx "$nginx" "$provider_key" -z 1s -c 16
run warm-gateway "$gateway/v1" "$virtual_key" -z 1s -c 16

vault_before=$(vault_requests)
for r in $(seq 1 "$rounds"); do
  log "round $r of $rounds: saturation at 1 and 16 connections, then $rate req/s (latency corrected), ${duration}s each, direct, through the relay, nginx and the gateway"
  for measure in c1 c16 rate; do
    case $measure in
      rate) load=(-c 32 -q "$rate" --latency-correction) ;;
      *) load=(-c "${measure#c}") ;;
    esac
    run "direct-$measure-r$r" "$upstream" "$provider_key" -z "${duration}s" "${load[@]}"
    run "relay-$measure-r$r" "$relay" "$provider_key" -z "${duration}s" "${load[@]}"
    run "nginx-$measure-r$r" "$nginx" "$provider_key" -z "${duration}s" "${load[@]}"
    run "gateway-$measure-r$r" "$gateway/v1" "$virtual_key" -z "${duration}s" "${load[@]}"
  done
done

log "streams, 1 connection: time to first frame ($ttfb_iterations streams each), then 200-chunk streams ($long_iterations each)"
# ttfb SIDE URL KEY MODEL ITERATIONS OUT
ttfb() { $py scripts/bench/ttfb.py "$2/chat/completions" "$3" "$4" "$5" >"$state/runs/$6.json"; }
ttfb direct "$upstream" "$provider_key" "$model" "$ttfb_iterations" ttfb-direct
ttfb relay "$relay" "$provider_key" "$model" "$ttfb_iterations" ttfb-relay
ttfb nginx "$nginx" "$provider_key" "$model" "$ttfb_iterations" ttfb-nginx
ttfb gateway "$gateway/v1" "$virtual_key" "$model" "$ttfb_iterations" ttfb-gateway
ttfb direct "$long_upstream" "$provider_key" "$model" "$long_iterations" long-direct
ttfb relay "$long_relay" "$provider_key" "$model" "$long_iterations" long-relay
ttfb nginx "$long_nginx" "$provider_key" "$model" "$long_iterations" long-nginx
ttfb gateway "$gateway/v1" "$virtual_key" "$model-long" "$long_iterations" long-gateway

if [ "$mode" = soak ]; then
  log "soak: $soak_seconds s at $rate req/s through the gateway, RSS every 30 s"
  run soak "$gateway/v1" "$virtual_key" -z "${soak_seconds}s" -c 32 -q "$rate" --latency-correction &
  soak_pid=$!
  pids+=($soak_pid)
  : >"$state/rss.txt"
  for t in $(seq 0 30 "$soak_seconds"); do
    echo "$t $(rss_kb)" >>"$state/rss.txt"
    [ "$t" -lt "$soak_seconds" ] && sleep 30
  done
  wait "$soak_pid"
fi

log "$bulk_requests requests through the gateway, 16 connections"
run bulk "$gateway/v1" "$virtual_key" -n "$bulk_requests" -c 16
vault_after=$(vault_requests)
hwm_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$gw_pid/status")
nginx_hwm_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$nginx_pid/status")
rss_end_kb=$(rss_kb)
served=$(curl -fsS "$gateway/metrics" -H "Authorization: Bearer $master_key" |
  awk '/^vaultgate_requests_total/ && /status="200"/ {sum += $NF} END {printf "%d\n", sum}')
# Spend reaches SQLite through the batch writer, never on the request path: give it a moment.
sleep 2
spend=$(curl -fsS "$gateway/key/info?key=$virtual_key" -H "Authorization: Bearer $master_key" |
  $py -c 'import json,sys; print(json.load(sys.stdin)["info"]["spend"])' 2>/dev/null || echo "?")

compare=false
if [ -n "${BENCH_COMPARE_CMD:-}" ]; then
  name="${BENCH_COMPARE_NAME:-comparison}"
  log "comparison: $name"
  compare_port=$(free_port)
  BENCH_COMPARE_PORT=$compare_port BENCH_UPSTREAM_URL=$upstream BENCH_PROVIDER_KEY=$provider_key \
    BENCH_MODEL=$model setsid bash -c "$BENCH_COMPARE_CMD" >"$state/compare.log" 2>&1 &
  compare_pid=$!
  pids+=($compare_pid)
  groups+=($compare_pid)
  compare_key="${BENCH_COMPARE_KEY:-$provider_key}"
  compare_url="http://127.0.0.1:$compare_port/v1"
  ok=false
  for _ in $(seq 1 600); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$compare_url/chat/completions" \
      -H "Authorization: Bearer $compare_key" -H 'Content-Type: application/json' -d @"$body_file" || true)
    [ "$code" = 200 ] && { ok=true; break; }
    kill -0 "$compare_pid" 2>/dev/null || break
    sleep 0.1
  done
  if $ok; then
    compare=true
    run warm-compare "$compare_url" "$compare_key" -z 1s -c 16
    run compare-c1 "$compare_url" "$compare_key" -z "${duration}s" -c 1
    run compare-c16 "$compare_url" "$compare_key" -z "${duration}s" -c 16
    run compare-rate "$compare_url" "$compare_key" -z "${duration}s" -c 32 -q "$rate" --latency-correction
    compare_hwm_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$compare_pid/status" 2>/dev/null || echo 0)
    echo "${compare_hwm_kb:-0}" >"$state/runs/compare-hwm.txt"
    $py scripts/bench/ttfb.py "$compare_url/chat/completions" "$compare_key" "$model" \
      "$ttfb_iterations" >"$state/runs/compare-ttfb.json" || rm -f "$state/runs/compare-ttfb.json"
  else
    echo "the comparison gateway did not answer within 60 s; see $state/compare.log" >&2
  fi
fi

cat >"$state/facts.json" <<JSON
{"mode": "$mode", "duration": $duration, "rounds": $rounds, "rate": $rate, "ttfb_iterations": $ttfb_iterations,
 "bulk_requests": $bulk_requests, "vault_before": $vault_before, "vault_after": $vault_after,
 "hwm_kb": $hwm_kb, "rss_end_kb": $rss_end_kb, "nginx_hwm_kb": $nginx_hwm_kb, "ready_ms": $ready_ms, "soak_seconds": $soak_seconds,
 "long_iterations": $long_iterations, "served": $served, "spend": "$spend",
 "workers": $workers, "compare": $compare, "compare_name": "${BENCH_COMPARE_NAME:-comparison}",
 "load_start": "$load_start", "load_end": "$(cut -d' ' -f1-3 /proc/loadavg)",
 "command": "scripts/bench.sh${*:+ $*}"}
JSON
$py scripts/bench/report.py "$state" | tee "$state/results.md"
if [ -n "${BENCH_OUT:-}" ]; then cp "$state/results.md" "$BENCH_OUT"; fi
