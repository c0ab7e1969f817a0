#!/usr/bin/env bash
# The audit trail's cost: hsm-bench through one broker (one SoftHSM2 member, 1 session), with
# audit off and on, alternated (off, on, off, on, ...) so a noisy neighbour hits both; the best
# of each and their ratio, per op. README "Audit" requires at least 0.9. Two regimes:
#  - sign-ecdsa-p256: the HSM bounds throughput, as with real HSMs (milliseconds per call);
#  - encrypt-32: SoftHSM2's AES costs about what the broker's own request handling costs, and
#    client, broker and worker share 2 cores, so every microsecond of audit work is throughput.
# The CPU per request of broker + worker + client (hsm-bench --cpu-of) is printed too: on a busy
# machine the throughput ratio is noise and the CPU ratio is steadier.
# BENCH_MODE=instructions counts instead the broker's user-space instructions per request under
# callgrind (valgrind), off and on: a VM whose speed swings between runs cannot move that count.
# It leaves out the kernel's share (the audit file's write()), and valgrind runs SHA-256 without
# the CPU's SHA extensions, so the chain's hash weighs more there than on the machine.
# Env: BENCH_DURATION (default 3s), BENCH_CLIENTS (16), BENCH_ROUNDS (3),
#      BENCH_AUDIT_OPS ("encrypt-32 sign-ecdsa-p256"), BENCH_BIN (build/bin),
#      BENCH_MODE (throughput | instructions), BENCH_COUNT (instructions: requests per run, 4000).
set -euo pipefail
bin=${BENCH_BIN:-$(cd "$(dirname "$0")/.." && pwd)/build/bin}
duration=${BENCH_DURATION:-3s}
clients=${BENCH_CLIENTS:-16}
rounds=${BENCH_ROUNDS:-3}
ops=${BENCH_AUDIT_OPS:-encrypt-32 sign-ecdsa-p256}
mode=${BENCH_MODE:-throughput}
count=${BENCH_COUNT:-4000}
if [[ $mode == instructions ]] && ! command -v callgrind_control >/dev/null; then
  echo "BENCH_MODE=instructions needs valgrind (apt-get install valgrind)" >&2
  exit 1
fi
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
  local under=()
  [[ $mode == instructions ]] && under=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/callgrind.out")
  "${under[@]}" "$bin/hsm-broker" --config "$work/broker.yaml" >>"$work/broker.log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do
    [[ $(curl -s --unix-socket "$sock" -o /dev/null -w '%{http_code}' http://b/v1/sys/health) == 200 ]] && return
    sleep 0.1
  done
  tail -20 "$work/broker.log" >&2
  exit 1
}
stop_broker() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

run() {  # $1: off|on, $2: op → "ops/s cpu_us_per_op broker_cpu_us_per_op"
  if [[ $1 == on ]]; then start_broker "audit: { file: $work/audit.log, fail_closed: true }"; else start_broker ""; fi
  curl -s --unix-socket "$sock" -X POST -d '{"type":"aes256-gcm96"}' http://b/v1/transit/keys/bench-aes >/dev/null
  curl -s --unix-socket "$sock" -X POST -d '{"type":"ecdsa-p256"}' http://b/v1/transit/keys/bench-ec >/dev/null
  local watch=(--cpu-of "broker=$pid") w
  for w in $(pgrep -P "$pid"); do watch+=(--cpu-of "workers=$w"); done
  "$bin/hsm-bench" broker --socket "$sock" --op "$2" --clients "$clients" --duration "$duration" --json "${watch[@]}" |
    jq -r '"\(.ops_per_s) \(.cpu_us_per_op.broker + .cpu_us_per_op.workers + .cpu_us_per_op["hsm-bench"]) \(.cpu_us_per_op.broker) \(.errors)"' | head -1
  stop_broker
}

requests_answered() {  # all but the probes and these reads of the count
  curl -s --unix-socket "$sock" http://b/metrics |
    awk '/^hsmb_requests_total/ && !/metrics|health/ { n += $NF } END { printf "%d", n }'
}

instructions() {  # $1: off|on, $2: op → instructions per request
  if [[ $1 == on ]]; then start_broker "audit: { file: $work/audit.log, fail_closed: true }"; else start_broker ""; fi
  curl -s --unix-socket "$sock" -X POST -d '{"type":"aes256-gcm96"}' http://b/v1/transit/keys/bench-aes >/dev/null
  curl -s --unix-socket "$sock" -X POST -d '{"type":"ecdsa-p256"}' http://b/v1/transit/keys/bench-ec >/dev/null
  local before after
  before=$(requests_answered)
  callgrind_control -i on "$pid" >/dev/null 2>&1
  "$bin/hsm-bench" broker --socket "$sock" --op "$2" --clients "$clients" --count "$count" >/dev/null
  callgrind_control -i off "$pid" >/dev/null 2>&1
  after=$(requests_answered)
  stop_broker  # callgrind writes its counts at exit
  awk -v n=$((after - before)) '/^totals:/ { printf "%.0f", $2 / n }' "$work/callgrind.out"
}

if [[ $mode == instructions ]]; then
  echo "| op, $clients clients | broker instructions/request, audit off | audit on | audit's share |"
  echo "|---|---|---|---|"
  for op in $ops; do
    off=$(instructions off "$op") on=$(instructions on "$op")
    echo "| $op | $off | $on | $((on - off)) |"
  done
  exit 0
fi

max() { awk -v a="$1" -v b="$2" 'BEGIN { print (b > a) ? b : a }'; }
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (b < a) ? b : a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "| op, $clients clients | audit off ops/s | audit on ops/s | on/off | CPU µs/op off | CPU µs/op on | off/on CPU | broker µs/op off | broker µs/op on |"
echo "|---|---|---|---|---|---|---|---|---|"
for op in $ops; do
  best_off=0 best_on=0 cpu_off=1e9 cpu_on=1e9 b_off=1e9 b_on=1e9
  for round in $(seq "$rounds"); do
    read -r off coff boff eoff < <(run off "$op")
    read -r on con bon eon < <(run on "$op")
    [[ $eoff == 0 && $eon == 0 ]] || { echo "$op: errors (off $eoff, on $eon)" >&2; tail -20 "$work/broker.log" >&2; exit 1; }
    echo "$op round $round: off $off ops/s ($coff µs CPU/op, broker $boff), on $on ops/s ($con µs CPU/op, broker $bon)" >&2
    best_off=$(max "$best_off" "$off") best_on=$(max "$best_on" "$on")
    cpu_off=$(min "$cpu_off" "$coff") cpu_on=$(min "$cpu_on" "$con")
    b_off=$(min "$b_off" "$boff") b_on=$(min "$b_on" "$bon")
  done
  echo "| $op | $(printf '%.0f' "$best_off") | $(printf '%.0f' "$best_on") | $(ratio "$best_on" "$best_off") | $(printf '%.1f' "$cpu_off") | $(printf '%.1f' "$cpu_on") | $(ratio "$cpu_off" "$cpu_on") | $(printf '%.1f' "$b_off") | $(printf '%.1f' "$b_on") |"
done
echo "audit lines written by the last run: $(wc -l < "$work/audit.log")"
