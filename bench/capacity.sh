#!/usr/bin/env bash
# Load balancing by capacity (issue [14]) on latency-bound HSMs: SoftHSM2 tokens behind the
# fault-injection module in state "serve <us> <n>", so each member behaves like a remote HSM
# whose calls take <us> of service with at most <n> served at once (the rest queue). The broker's
# own CPU is then not what decides the numbers; the members' capacities are.
#
# Scenarios (one broker each, encrypt-32 with a key replicated to every member, no weights):
#   equal N      N = 1, 2, 4 members of capacity C: throughput against N × C
#   unequal      one member at C, one at C/2 (service time doubled): throughput against 1.5 C,
#                and each member's share of the requests against its share of the capacity
#   slowdown     two members at C; after a while one's service time goes × 4: how long until its
#                share of new requests is within 10% of its new capacity share (1/5 of the total)
# Prints a markdown table. Needs build/bin (hsm-broker, hsm-worker, hsm-bench), build/lib's fault
# module, softhsm2, curl and jq.
#
# Environment: CAP_SERVICE_US (default 4000), CAP_SLOTS (2), so C = CAP_SLOTS / service time
# (500/s); CAP_DURATION (per run, default 6s); CAP_WARMUP (default 1s); CAP_SLOW_DURATION (the
# slowdown run, default 8s, the slowdown 2 s into it); CAP_CLIENTS (default 48); BENCH_BIN (build/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BENCH_BIN:-$PWD/build/bin}
fault=$(dirname "$bin")/lib/libhsmb-fault-pkcs11.so
softhsm=/usr/lib/softhsm/libsofthsm2.so
service_us=${CAP_SERVICE_US:-4000}
slots=${CAP_SLOTS:-2}
duration=${CAP_DURATION:-6s}
warmup=${CAP_WARMUP:-1s}
slow_duration=${CAP_SLOW_DURATION:-8s}
clients=${CAP_CLIENTS:-48}
capacity=$(awk -v n="$slots" -v us="$service_us" 'BEGIN { printf "%.0f", n * 1e6 / us }')
work=$(mktemp -d /tmp/hsm-capacity-XXXXXX)
pid=

die() { echo "capacity.sh: $*" >&2; exit 1; }
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
[[ -x $bin/hsm-broker && -x $bin/hsm-bench && -f $fault ]] || die "build first (cmake --build build)"

sock=$work/broker.sock
curl_broker() { curl -s --unix-socket "$sock" "$@"; }

# $1: member count. Fresh tokens hsm1..N, all enrolled in one cluster key, the fault module "ok".
setup_members() {
  local n=$1 i
  rm -rf "$work/m" && mkdir -p "$work/m"
  {
    echo "state_dir: $work/m/state"
    echo "listen: { unix: { path: $sock, mode: \"0600\" } }"
    echo "replication: { mode: broker, min_copies: $n }"
    echo "members:"
    for i in $(seq "$n"); do
      mkdir -p "$work/m/hsm$i/tokens"
      printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$work/m/hsm$i/tokens" > "$work/m/hsm$i.conf"
      SOFTHSM2_CONF=$work/m/hsm$i.conf softhsm2-util --init-token --free --label "hsm$i" --pin 1234 --so-pin 123456 >/dev/null
      echo 123456 > "$work/m/hsm$i.so-pin"
      echo ok > "$work/m/hsm$i.control"
      echo "  - { name: hsm$i, module: $fault, token_label: hsm$i, pin: { value: \"1234\" }, sessions: 8,"
      echo "      env: { SOFTHSM2_CONF: $work/m/hsm$i.conf, HSMB_FAULT_MODULE: $softhsm, HSMB_FAULT_CONTROL: $work/m/hsm$i.control } }"
    done
  } > "$work/m/broker.yaml"
  local pins=()
  for i in $(seq "$n"); do pins+=(--so-pin-file "hsm$i=$work/m/hsm$i.so-pin"); done
  "$bin/hsm-broker" --config "$work/m/broker.yaml" --enroll "${pins[@]}" >"$work/m/enroll.log" 2>&1 ||
    { tail -5 "$work/m/enroll.log" >&2; die "enrollment failed"; }
}

start_broker() {
  "$bin/hsm-broker" --config "$work/m/broker.yaml" >"$work/m/broker.log" 2>&1 &
  pid=$!
  local i
  for i in $(seq 300); do
    [[ $(curl_broker -o /dev/null -w '%{http_code}' http://b/v1/sys/health) == 200 ]] && break
    kill -0 "$pid" 2>/dev/null || { tail -20 "$work/m/broker.log" >&2; die "hsm-broker exited"; }
    sleep 0.1
  done
  [[ $(curl_broker -w '%{http_code}' -o /dev/null -X POST -d '{"type":"aes256-gcm96"}' http://b/v1/transit/keys/bench-aes) == 200 ]] ||
    die "creating bench-aes failed"
}
stop_broker() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; pid=; }

serve() { echo "serve $2 $slots" > "$work/m/$1.control"; }  # $1 member, $2 service time (µs)

# Requests each member has served so far, "hsm1=N hsm2=M ...".
served() { curl_broker http://b/v1/broker/members | jq -r '[.data.members[] | "\(.name)=\(.requests)"] | join(" ")'; }
count_of() { tr ' ' '\n' <<<"$1" | awk -F= -v m="$2" '$1 == m { print $2 }'; }

bench() { "$bin/hsm-bench" broker --socket "$sock" --op encrypt-32 --clients "$clients" --duration "$1" --json; }
ops_of() { jq -r '.ops_per_s' <<<"$1" | head -1; }
errors_of() { jq -r '.errors' <<<"$1" | head -1; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }

rows=()
equal() {  # $1: members
  setup_members "$1"
  start_broker
  local i
  for i in $(seq "$1"); do serve "hsm$i" "$service_us"; done
  bench "$warmup" >/dev/null  # warm-up: latency samples for every member
  local out ops sum
  out=$(bench "$duration")
  ops=$(ops_of "$out") sum=$((capacity * $1))
  rows+=("| $1 equal (C = $capacity/s each) | $sum | $(printf '%.0f' "$ops") | $(awk -v a="$ops" -v b="$sum" 'BEGIN { printf "%.2f", a / b }') | – | $(errors_of "$out") |")
  stop_broker
}

unequal() {
  setup_members 2
  start_broker
  serve hsm1 "$service_us"
  serve hsm2 $((service_us * 2))
  bench "$warmup" >/dev/null
  local before after out ops sum a b
  before=$(served)
  out=$(bench "$duration")
  after=$(served)
  ops=$(ops_of "$out") sum=$((capacity + capacity / 2))
  a=$(( $(count_of "$after" hsm1) - $(count_of "$before" hsm1) ))
  b=$(( $(count_of "$after" hsm2) - $(count_of "$before" hsm2) ))
  rows+=("| C and C/2 | $sum | $(printf '%.0f' "$ops") | $(awk -v a="$ops" -v b="$sum" 'BEGIN { printf "%.2f", a / b }') | hsm1 $(pct "$a" $((a + b))) (capacity 67%), hsm2 $(pct "$b" $((a + b))) (33%) | $(errors_of "$out") |")
  stop_broker
}

# hsm2's service time goes × 4 two seconds into the run; its share of the requests served in each
# 250 ms from then on is sampled until it is within 10% of its new capacity share (20%).
slowdown() {
  setup_members 2
  start_broker
  serve hsm1 "$service_us"
  serve hsm2 "$service_us"
  bench "$warmup" >/dev/null
  bench "$slow_duration" > "$work/slow.json" &
  local load=$! t0 prev now a b share shed= last=
  sleep 2
  serve hsm2 $((service_us * 4))
  t0=$(date +%s.%N)
  prev=$(served)
  while kill -0 "$load" 2>/dev/null; do
    sleep 0.25
    now=$(served)
    a=$(( $(count_of "$now" hsm1) - $(count_of "$prev" hsm1) ))
    b=$(( $(count_of "$now" hsm2) - $(count_of "$prev" hsm2) ))
    prev=$now
    (( a + b > 0 )) || continue
    share=$(awk -v b="$b" -v t="$((a + b))" 'BEGIN { printf "%.3f", b / t }')
    last=$(pct "$b" $((a + b)))
    if [[ -z $shed ]] && awk -v s="$share" 'BEGIN { exit !(s <= 0.22) }'; then
      shed=$(awk -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.2f s", t1 - t0 }')
    fi
  done
  wait "$load" || true
  rows+=("| C and C, then hsm2 × 4 slower | – | $(printf '%.0f' "$(ops_of "$(cat "$work/slow.json")")") | – | hsm2 at ≤ 22% of requests $([[ -n $shed ]] && echo "after $shed" || echo "never") (last 250 ms: ${last:-n/a}) | $(errors_of "$(cat "$work/slow.json")") |")
  stop_broker
}

echo "Capacity: fault-module members serving $slots calls at once, $service_us µs each (C = $capacity/s)," \
     "encrypt-32, $clients clients, $duration per run, $(nproc) CPUs"
echo
for n in 1 2 4; do equal "$n"; done
unequal
slowdown
echo "| members | sum of capacities (ops/s) | through the broker (ops/s) | ratio | shares | errors |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
