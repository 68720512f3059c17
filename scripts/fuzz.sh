#!/usr/bin/env bash
# Fuzzing (cargo fuzz, libFuzzer) of everything that reads input the gateway does not control:
# config.yaml, the request body splice, every provider's request, answer and stream translation
# (Bedrock's event stream included). A target fails on a panic, an input slower than 10 s, or
# more than 1 GiB of memory; fuzz/README.md lists the targets and how to reproduce a crash.
#
#   scripts/fuzz.sh             every target for 60 s
#   scripts/fuzz.sh SECONDS     every target for SECONDS
#   scripts/fuzz.sh --ci        every target for a few seconds (CI)
#
# Environment: FUZZ_TARGETS="config chat_body" runs only those; CARGO_FUZZ=path uses that
# cargo-fuzz binary (else .tools/bin, then PATH, else it is installed into .tools/).
# libFuzzer needs compiler flags that stable Rust keeps behind RUSTC_BOOTSTRAP; the fuzz crate is
# its own workspace (fuzz/), so the product's build never sees them. New corpus entries go to
# fuzz/target/corpus (not committed); fuzz/corpus holds the seeds, made from the test fixtures.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

seconds=60
case "${1:-}" in
  "") ;;
  --ci) seconds=8 ;;
  *[!0-9]* | 0) echo "usage: scripts/fuzz.sh [--ci|SECONDS]" >&2; exit 2 ;;
  *) seconds=$1 ;;
esac
log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

cargo_fuzz="${CARGO_FUZZ:-}"
if [ -z "$cargo_fuzz" ]; then
  if [ -x "$root/.tools/bin/cargo-fuzz" ]; then
    cargo_fuzz="$root/.tools/bin/cargo-fuzz"
  elif command -v cargo-fuzz >/dev/null 2>&1; then
    cargo_fuzz=$(command -v cargo-fuzz)
  else
    log "installing cargo-fuzz into .tools/ (cargo install --locked cargo-fuzz: once, about 2 minutes)"
    cargo install --locked --quiet cargo-fuzz --version 0.13.2 --root "$root/.tools"
    cargo_fuzz="$root/.tools/bin/cargo-fuzz"
  fi
fi

export RUSTC_BOOTSTRAP=1
# No AddressSanitizer: the product forbids unsafe code, so it would find nothing a panic does not
# show, at twice the build and run time.
fuzz=("$cargo_fuzz" fuzz)
common=(--fuzz-dir "$root/fuzz" --target-dir "$root/fuzz/target" --sanitizer none --debug-assertions)
mapfile -t targets < <(if [ -n "${FUZZ_TARGETS:-}" ]; then tr ' ' '\n' <<<"$FUZZ_TARGETS"; else "${fuzz[@]}" list --fuzz-dir "$root/fuzz"; fi)

log "building the fuzz targets"
"${fuzz[@]}" build "${common[@]}"

failed=()
for target in "${targets[@]}"; do
  log "fuzzing $target for ${seconds}s"
  mkdir -p "fuzz/target/corpus/$target"
  if ! "${fuzz[@]}" run "${common[@]}" "$target" "fuzz/target/corpus/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -max_len=65536 -dict=fuzz/json.dict \
    -print_final_stats=1 2>"fuzz/target/$target.log"; then
    tail -n 40 "fuzz/target/$target.log" >&2
    failed+=("$target")
  else
    grep -E "^stat::(number_of_executed_units|peak_rss_mb)" "fuzz/target/$target.log" | tr '\n' ' ' >&2
    echo >&2
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz targets failed: ${failed[*]} (inputs in fuzz/artifacts/; reproduce with" \
    "RUSTC_BOOTSTRAP=1 cargo fuzz run -s none TARGET fuzz/artifacts/TARGET/FILE)" >&2
  exit 1
fi
log "fuzzing passed"
