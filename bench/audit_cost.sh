#!/usr/bin/env bash
# The audit trail's cost: hsm-bench through a broker (one SoftHSM2 member, 1 session) with audit
# off and through one with audit on, per op. README "Audit" requires at least 0.9. Two regimes:
#  - sign-ecdsa-p256: the HSM bounds throughput, as with real HSMs (milliseconds per call);
#  - encrypt-32: SoftHSM2's AES costs about what the broker's own request handling costs, and
#    client, broker and worker share 2 cores, so every microsecond of audit work is throughput.
# Both brokers run side by side (each on a token of its own), idle but for their probes while
# the other is measured, and the load goes to each in short turns (off, on, on, off, ...): a VM
# whose speed swings over minutes slows both halves of a pair alike. Printed: the median of the
# pairs' ratios and their spread, by throughput and by the CPU per request of broker + worker +
# client (hsm-bench --cpu-of).
# BENCH_MODE=instructions counts instead the broker's user-space instructions per request under
# callgrind (valgrind), off and on: a count that the VM's speed cannot move. It leaves out the
# kernel's share (the audit file's write()), and valgrind runs SHA-256 without the CPU's SHA
# extensions, so the chain's hash weighs more there than on the machine.
# Env: BENCH_DURATION (a turn, default 2s), BENCH_CLIENTS (16), BENCH_ROUNDS (pairs, 10),
#      BENCH_AUDIT_OPS ("encrypt-32 sign-ecdsa-p256"), BENCH_BIN (build/bin),
#      BENCH_MODE (throughput | instructions), BENCH_COUNT (instructions: requests per run, 4000),
#      BENCH_AUDIT_FILE (default a file in the run's temporary directory; /dev/null leaves out
#      the file system's share).
set -euo pipefail
bin=${BENCH_BIN:-$(cd "$(dirname "$0")/.." && pwd)/build/bin}
duration=${BENCH_DURATION:-2s}
clients=${BENCH_CLIENTS:-16}
rounds=${BENCH_ROUNDS:-10}
ops=${BENCH_AUDIT_OPS:-encrypt-32 sign-ecdsa-p256}
mode=${BENCH_MODE:-throughput}
count=${BENCH_COUNT:-4000}
if [[ $mode == instructions ]] && ! command -v callgrind_control >/dev/null; then
  echo "BENCH_MODE=instructions needs valgrind (apt-get install valgrind)" >&2
  exit 1
fi
softhsm=${SOFTHSM2_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
work=$(mktemp -d /tmp/hsm-audit-bench-XXXXXX)
declare -A pid=()
cleanup() {
  local p
  for p in "${pid[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
export SOFTHSM2_CONF=$work/softhsm2.conf
mkdir -p "$work/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$work" > "$SOFTHSM2_CONF"
for b in off on; do softhsm2-util --init-token --free --label "bench-$b" --pin 1234 --so-pin 123456 >/dev/null; done
audit_file=${BENCH_AUDIT_FILE:-$work/audit.log}
audit_yaml="audit: { file: $audit_file, fail_closed: true }"

start_broker() {  # $1: off|on; the broker's socket is $work/$1.sock
  local sock=$work/$1.sock extra=
  [[ $1 == on ]] && extra=$audit_yaml
  cat > "$work/$1.yaml" <<YAML
state_dir: $work/state-$1
listen: { unix: { path: $sock, mode: "0600" } }
members:
  - { name: bench-$1, module: $softhsm, token_label: bench-$1, pin: { value: "1234" }, env: { SOFTHSM2_CONF: $SOFTHSM2_CONF }, sessions: 1 }
$extra
YAML
  local under=()
  [[ $mode == instructions ]] && under=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/callgrind.out")
  "${under[@]}" "$bin/hsm-broker" --config "$work/$1.yaml" >>"$work/$1.log" 2>&1 &
  pid[$1]=$!
  for _ in $(seq 600); do
    if [[ $(curl -s --unix-socket "$sock" -o /dev/null -w '%{http_code}' http://b/v1/sys/health) == 200 ]]; then
      curl -s --unix-socket "$sock" -X POST -d '{"type":"aes256-gcm96"}' http://b/v1/transit/keys/bench-aes >/dev/null
      curl -s --unix-socket "$sock" -X POST -d '{"type":"ecdsa-p256"}' http://b/v1/transit/keys/bench-ec >/dev/null
      return
    fi
    sleep 0.1
  done
  tail -20 "$work/$1.log" >&2
  exit 1
}
stop_broker() { kill "${pid[$1]}"; wait "${pid[$1]}" 2>/dev/null || true; unset "pid[$1]"; }

turn() {  # $1: off|on, $2: op → "ops/s cpu_us_per_op broker_cpu_us_per_op errors"
  local workers
  workers=$(pgrep -P "${pid[$1]}")
  [[ $workers =~ ^[0-9]+$ ]] || { echo "broker $1: expected one worker, found: ${workers:-none}" >&2; exit 1; }
  # A process whose CPU could not be read is null: fail rather than leave it out of the sum.
  "$bin/hsm-bench" broker --socket "$work/$1.sock" --op "$2" --clients "$clients" --duration "$duration" --json \
      --cpu-of "broker=${pid[$1]}" --cpu-of "workers=$workers" |
    jq -r '.cpu_us_per_op as $c | if ([$c.broker, $c.workers, $c["hsm-bench"]] | any(. == null or . < 0)) then error("CPU not measured: \($c)") else
           "\(.ops_per_s) \($c.broker + $c.workers + $c["hsm-bench"]) \($c.broker) \(.errors)" end' | head -1
}

requests_answered() {  # $1: off|on; all but the probes and these reads of the count
  curl -s --unix-socket "$work/$1.sock" http://b/metrics |
    awk '/^hsmb_requests_total/ && !/metrics|health/ { n += $NF } END { printf "%d", n }'
}

instructions() {  # $1: off|on, $2: op → instructions per request
  start_broker "$1"
  local before after
  before=$(requests_answered "$1")
  callgrind_control -i on "${pid[$1]}" >/dev/null 2>&1
  "$bin/hsm-bench" broker --socket "$work/$1.sock" --op "$2" --clients "$clients" --count "$count" >/dev/null
  callgrind_control -i off "${pid[$1]}" >/dev/null 2>&1
  after=$(requests_answered "$1")
  stop_broker "$1"  # callgrind writes its counts at exit
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

# The median (of the two middle values when they are even in number) and the quartiles (the
# nearest ranks) of a column of numbers on stdin: "median q1 q3".
spread() { sort -g | awk '{ v[NR] = $1 } END { printf "%.2f %.2f %.2f", (v[int((NR + 1) / 2)] + v[int(NR / 2) + 1]) / 2, v[int((NR + 3) / 4)], v[int((3 * NR + 3) / 4)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

start_broker off
start_broker on
echo "| op, $clients clients, $rounds pairs of $duration | ops/s off (median) | ops/s on (median) | on/off: median (quartiles) | CPU µs/op off → on | CPU off/on: median (quartiles) | broker µs/op off → on |"
echo "|---|---|---|---|---|---|---|"
for op in $ops; do
  : > "$work/pairs"
  # Each op starts with the file empty and nothing dirty: the last op's writeback is not this one's.
  [[ -f $audit_file ]] && : > "$audit_file"
  sync
  for round in $(seq "$rounds"); do
    order=(off on)
    ((round % 2 == 0)) && order=(on off)  # so a steady drift does not favour one side
    declare -A got=()
    for b in "${order[@]}"; do got[$b]=$(turn "$b" "$op"); done
    read -r off coff boff eoff <<<"${got[off]}"
    read -r on con bon eon <<<"${got[on]}"
    [[ $eoff == 0 && $eon == 0 ]] || { echo "$op: errors (off $eoff, on $eon)" >&2; tail -20 "$work"/*.log >&2; exit 1; }
    echo "$op pair $round: off $off ops/s ($coff µs CPU/op, broker $boff), on $on ops/s ($con µs CPU/op, broker $bon)" >&2
    echo "$off $on $coff $con $boff $bon $(ratio "$on" "$off") $(ratio "$coff" "$con")" >> "$work/pairs"
  done
  col() { awk -v c="$1" '{ print $c }' "$work/pairs" | spread; }
  read -r m_off _ _ <<<"$(col 1)"; read -r m_on _ _ <<<"$(col 2)"
  read -r c_off _ _ <<<"$(col 3)"; read -r c_on _ _ <<<"$(col 4)"
  read -r b_off _ _ <<<"$(col 5)"; read -r b_on _ _ <<<"$(col 6)"
  read -r r q1 q3 <<<"$(col 7)"; read -r rc qc1 qc3 <<<"$(col 8)"
  printf '| %s | %.0f | %.0f | **%s** (%s–%s) | %.1f → %.1f | **%s** (%s–%s) | %.1f → %.1f |\n' \
    "$op" "$m_off" "$m_on" "$r" "$q1" "$q3" "$c_off" "$c_on" "$rc" "$qc1" "$qc3" "$b_off" "$b_on"
done
if [[ -f $audit_file ]]; then echo "audit lines written: $(wc -l < "$audit_file")"; fi
