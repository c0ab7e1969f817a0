#!/usr/bin/env bash
# The audit trail's cost: hsm-bench encrypt-32 through one broker (one SoftHSM2 member), with
# audit off and on, alternated (off, on, off, on) so a noisy neighbour hits both. Prints the
# best of each and their ratio; README "Audit" requires at least 0.9.
# Env: BENCH_DURATION (default 3s), BENCH_CLIENTS (16), BENCH_BIN (build/bin).
set -euo pipefail
bin=${BENCH_BIN:-$(cd "$(dirname "$0")/.." && pwd)/build/bin}
duration=${BENCH_DURATION:-3s}
clients=${BENCH_CLIENTS:-16}
softhsm=${SOFTHSM2_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
work=$(mktemp -d /tmp/hsm-audit-bench-XXXXXX)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
export SOFTHSM2_CONF=$work/softhsm2.conf
mkdir -p "$work/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$work" > "$SOFTHSM2_CONF"
softhsm2-util --init-token --free --label bench1 --pin 1234 --so-pin 123456 >/dev/null
sock=$work/broker.sock

start_broker() {  # $1: extra YAML
  cat > "$work/broker.yaml" <<YAML
state_dir: $work/state
listen: { unix: { path: $sock, mode: "0600" } }
members:
  - { name: bench1, module: $softhsm, token_label: bench1, pin: { value: "1234" }, env: { SOFTHSM2_CONF: $SOFTHSM2_CONF }, sessions: 1 }
$1
YAML
  "$bin/hsm-broker" --config "$work/broker.yaml" >>"$work/broker.log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do
    [[ $(curl -s --unix-socket "$sock" -o /dev/null -w '%{http_code}' http://b/v1/sys/health) == 200 ]] && return
    sleep 0.1
  done
  tail -20 "$work/broker.log" >&2
  exit 1
}
stop_broker() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

run() {  # $1: off|on → ops/s
  if [[ $1 == on ]]; then start_broker "audit: { file: $work/audit.log, fail_closed: true }"; else start_broker ""; fi
  curl -s --unix-socket "$sock" -X POST -d '{"type":"aes256-gcm96"}' http://b/v1/transit/keys/bench-aes >/dev/null
  "$bin/hsm-bench" broker --socket "$sock" --op encrypt-32 --clients "$clients" --duration "$duration" --json |
    jq -r '.ops_per_s // empty' | head -1
  stop_broker
}

best_off=0 best_on=0
for round in 1 2; do
  off=$(run off); on=$(run on)
  echo "round $round: off $off ops/s, on $on ops/s" >&2
  best_off=$(awk -v a="$best_off" -v b="$off" 'BEGIN { print (b > a) ? b : a }')
  best_on=$(awk -v a="$best_on" -v b="$on" 'BEGIN { print (b > a) ? b : a }')
done
lines=$(wc -l < "$work/audit.log")
echo "| encrypt-32, $clients clients | $(printf '%.0f' "$best_off") | $(printf '%.0f' "$best_on") | $(awk -v a="$best_on" -v b="$best_off" 'BEGIN { printf "%.2f", a / b }') | $lines |"
