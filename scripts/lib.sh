# Shell helpers shared by the quick start and the benchmark scripts (sourced, not run).
# The caller sets `state` (a folder for logs) and keeps the pids of what it starts in `pids`.

py=.venv/bin/python

# A free TCP port on 127.0.0.1.
free_port() { $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A random URL-safe secret of 24 characters.
random_secret() { $py -c 'import secrets; print(secrets.token_urlsafe(18))'; }

# wait_for URL WHAT [SECONDS]: waits (15 s by default) for URL to answer 2xx.
wait_for() {
  local seconds=${3:-15}
  for _ in $(seq 1 $((seconds * 10))); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "$2 did not come up within $seconds s; see $state/*.log" >&2
  exit 1
}

# Starts an OpenBao dev server (root token `root`) on a free port; exports VAULT_ADDR/VAULT_TOKEN.
start_openbao() {
  local port
  port=$(free_port)
  export VAULT_ADDR="http://127.0.0.1:$port" VAULT_TOKEN=root
  .venv/bin/bao server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$port" \
    -dev-no-store-token >"$state/openbao.log" 2>&1 &
  pids+=($!)
  wait_for "$VAULT_ADDR/v1/sys/health" OpenBao
}

# stop_pids: stops every process in `pids` (SIGTERM, then SIGKILL after 5 s).
stop_pids() {
  local pid alive
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    alive=false
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=true; done
    $alive || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
}
