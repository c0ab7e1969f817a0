#!/usr/bin/env bash
# The audit trail's cost: hsm-bench encrypt-32 through one broker (one SoftHSM2 member), with
# audit off and on, alternated (off, on, off, on, ...) so a noisy neighbour hits both. Prints the
# best of each and their ratio; README "Audit" requires at least 0.9. On a busy machine the
# throughput ratio is noise; the CPU per request of broker + worker + client (hsm-bench
# --cpu-of), which bounds throughput on these two cores, is printed too and its ratio is steadier.
# Env: BENCH_DURATION (default 3s), BENCH_CLIENTS (16), BENCH_ROUNDS (3), BENCH_BIN (build/bin).
set -euo pipefail
bin=${BENCH_BIN:-$(cd "$(dirname "$0")/.." && pwd)/build/bin}
duration=${BENCH_DURATION:-3s}
clients=${BENCH_CLIENTS:-16}
rounds=${BENCH_ROUNDS:-3}
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

run() {  # $1: off|on → "ops/s cpu_us_per_op" (broker + workers + hsm-bench)
  if [[ $1 == on ]]; then start_broker "audit: { file: $work/audit.log, fail_closed: true }"; else start_broker ""; fi
  curl -s --unix-socket "$sock" -X POST -d '{"type":"aes256-gcm96"}' http://b/v1/transit/keys/bench-aes >/dev/null
  local watch=(--cpu-of "broker=$pid") w
  for w in $(pgrep -P "$pid"); do watch+=(--cpu-of "workers=$w"); done
  "$bin/hsm-bench" broker --socket "$sock" --op encrypt-32 --clients "$clients" --duration "$duration" --json "${watch[@]}" |
    jq -r '"\(.ops_per_s) \(.cpu_us_per_op.broker + .cpu_us_per_op.workers + .cpu_us_per_op["hsm-bench"]) \(.cpu_us_per_op.broker)"' | head -1
  stop_broker
}

best_off=0 best_on=0 cpu_off=1e9 cpu_on=1e9
for round in $(seq "$rounds"); do
  read -r off coff boff < <(run off)
  read -r on con bon < <(run on)
  echo "round $round: off $off ops/s ($coff µs CPU/op, broker $boff), on $on ops/s ($con µs CPU/op, broker $bon)" >&2
  best_off=$(awk -v a="$best_off" -v b="$off" 'BEGIN { print (b > a) ? b : a }')
  best_on=$(awk -v a="$best_on" -v b="$on" 'BEGIN { print (b > a) ? b : a }')
  cpu_off=$(awk -v a="$cpu_off" -v b="$coff" 'BEGIN { print (b < a) ? b : a }')
  cpu_on=$(awk -v a="$cpu_on" -v b="$con" 'BEGIN { print (b < a) ? b : a }')
done
lines=$(wc -l < "$work/audit.log")
echo "| encrypt-32, $clients clients | $(printf '%.0f' "$best_off") | $(printf '%.0f' "$best_on") | $(awk -v a="$best_on" -v b="$best_off" 'BEGIN { printf "%.2f", a / b }') | $(printf '%.1f' "$cpu_off") | $(printf '%.1f' "$cpu_on") | $(awk -v a="$cpu_off" -v b="$cpu_on" 'BEGIN { printf "%.2f", a / b }') | $lines |"
