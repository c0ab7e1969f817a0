#!/usr/bin/env bash
# Compares hsm-broker with calling PKCS#11 directly, on throwaway SoftHSM2 tokens: for each
# operation, in-process PKCS#11 (the "handles cached" baseline), PKCS#11 through p11-kit's RPC
# (what a network HSM costs), and the broker's HTTP API; where each process's CPU goes; the
# latency floor of the process hops alone; then whether the broker's memory stays flat under
# repeated load. Prints markdown tables. Needs a build in build/bin (hsm-broker, hsm-worker,
# hsm-bench), softhsm2, p11-kit, curl and jq.
#
# The broker runs once per worker session count in BENCH_SESSIONS, as the direct baseline runs
# with 1 and 2 threads: each side gets its best setting (the sessions column says which won).
#
# Last, bench/capacity.sh: load balancing by capacity on latency-bound (simulated remote) HSMs,
# where the members' capacities, not the broker's CPU, decide the numbers (BENCH_CAPACITY=0 skips it).
#
# Environment: BENCH_OPS (space-separated, default below), BENCH_DURATION (per run, default 5s),
# BENCH_CLIENTS (broker clients, default 16), BENCH_SESSIONS (default "1 4"), BENCH_BIN (the
# programs, default build/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BENCH_BIN:-$PWD/build/bin}
softhsm=/usr/lib/softhsm/libsofthsm2.so
p11kit_client=/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so
ops=${BENCH_OPS:-sign-ecdsa-p256 encrypt-32 encrypt-4k decrypt-32 decrypt-4k hmac random sign-rsa-2048}
duration=${BENCH_DURATION:-5s}
clients=${BENCH_CLIENTS:-16}
sessions_list=${BENCH_SESSIONS:-1 4}
first_sessions=${sessions_list%% *}
export BENCH_PIN=1234  # hsm-bench reads the user PIN from the environment (--pin-env)

work=$(mktemp -d /tmp/hsm-bench-XXXXXX)
export SOFTHSM2_CONF=$work/softhsm2.conf
p11kit_sock=$work/p11kit.sock
declare -A broker_pid=()  # by session count
p11kit_pgid=""

broker_sock() { echo "$work/broker-$1.sock"; }

cleanup() {
  set +e  # a process already gone must not stop the rest of the clean-up
  local pid
  for pid in "${broker_pid[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  # p11-kit server forks a child per connection: kill the whole process group.
  [[ -n $p11kit_pgid ]] && kill -- "-$p11kit_pgid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

die() { echo "compare.sh: $*" >&2; exit 1; }

check_prerequisites() {
  local f
  for f in hsm-broker hsm-worker hsm-bench; do
    [[ -x $bin/$f ]] || die "$bin/$f is missing: cmake -S . -B build && cmake --build build"
  done
  for f in softhsm2-util p11-kit curl jq; do command -v $f >/dev/null || die "$f is not installed"; done
}

# Two tokens in one SoftHSM2 configuration: the broker's two members.
provision_tokens() {
  mkdir -p "$work/tokens"
  printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$work" > "$SOFTHSM2_CONF"
  local t
  for t in bench1 bench2; do
    softhsm2-util --init-token --free --label "$t" --pin "$BENCH_PIN" --so-pin 123456 >/dev/null
  done
}

# Default replication mode (broker) without enrollment: new keys stay on the first member,
# bench1, which is the token the direct and p11-kit runs use. $1: sessions per worker.
write_broker_config() {
  local t
  {
    echo "state_dir: $work/state-$1"
    echo "listen:"
    echo "  unix: { path: $(broker_sock "$1"), mode: \"0600\" }"
    echo "members:"
    for t in bench1 bench2; do
      echo "  - name: $t"
      echo "    module: $softhsm"
      echo "    token_label: $t"
      echo "    pin: { value: \"$BENCH_PIN\" }"
      echo "    env: { SOFTHSM2_CONF: $SOFTHSM2_CONF }"
      echo "    sessions: $1"
    done
  } > "$work/broker-$1.yaml"
}

broker_curl() { curl -s --unix-socket "$(broker_sock "$first_sessions")" "$@"; }

# $1: sessions per worker. A broker started after create_keys reads the keys' records from the
# tokens at start.
start_broker() {
  local s=$1 i
  write_broker_config "$s"
  "$bin/hsm-broker" --config "$work/broker-$s.yaml" >"$work/broker-$s.log" 2>&1 &
  broker_pid[$s]=$!
  for i in $(seq 300); do
    [[ $(curl -s --unix-socket "$(broker_sock "$s")" -o /dev/null -w '%{http_code}' http://broker/v1/sys/health) == 200 ]] &&
      return
    kill -0 "${broker_pid[$s]}" 2>/dev/null || { tail -20 "$work/broker-$s.log" >&2; die "hsm-broker exited"; }
    sleep 0.1
  done
  tail -20 "$work/broker-$s.log" >&2
  die "hsm-broker not healthy after 30 s"
}

# The key names hsm-bench uses by default in both modes.
create_keys() {
  local spec name type body
  for spec in bench-ec:ecdsa-p256 bench-rsa:rsa-2048 bench-ed:ed25519 bench-aes:aes256-gcm96 bench-mac:hmac; do
    name=${spec%%:*} type=${spec#*:}
    body=$(broker_curl -w '\n%{http_code}' -X POST -d "{\"type\":\"$type\"}" "http://broker/v1/transit/keys/$name") ||
      die "creating $name ($type): the broker did not answer"
    [[ ${body##*$'\n'} == 200 ]] || die "creating $name ($type): ${body%$'\n'*}"
  done
}

# bench1 behind p11-kit's RPC, as the failover tests' simulated network HSMs.
start_p11kit_server() {
  setsid p11-kit server -f -n "$p11kit_sock" --provider "$softhsm" "pkcs11:token=bench1" \
    >"$work/p11kit.log" 2>&1 </dev/null &
  p11kit_pgid=$!  # setsid did not fork (a background job is no group leader): pid = group id
  local i
  for i in $(seq 100); do [[ -S $p11kit_sock ]] && return; sleep 0.05; done
  die "p11-kit server did not create $p11kit_sock"
}

# ---- measuring: each function prints hsm-bench's JSON lines, or fails ----

bench_direct() {
  "$bin/hsm-bench" pkcs11 --module "$softhsm" --token bench1 --pin-env BENCH_PIN \
    --op "$1" --threads 1..2 --duration "$duration" --json
}

bench_p11kit() {
  P11_KIT_SERVER_ADDRESS="unix:path=$p11kit_sock" "$bin/hsm-bench" pkcs11 --module "$p11kit_client" \
    --token bench1 --pin-env BENCH_PIN --op "$1" --threads 1..4 --duration "$duration" --json
}

# $1 op, $2 clients, $3 sessions: that broker, with its own and its workers' CPU per call.
bench_broker() {
  local pid=${broker_pid[$3]} w watch=()
  watch=(--cpu-of "broker=$pid")
  for w in $(pgrep -P "$pid"); do watch+=(--cpu-of "workers=$w"); done
  "$bin/hsm-bench" broker --socket "$(broker_sock "$3")" --op "$1" --clients "$2" --duration "$duration" \
    "${watch[@]}" --json
}

bench_relay() { "$bin/hsm-bench" relay --hops 2 --duration "$duration" --json; }

# p11-kit 0.24's RPC cannot carry AES-GCM parameters or CKM_EDDSA.
p11kit_can_carry() { [[ $1 != encrypt-* && $1 != decrypt-* && $1 != sign-ed25519 ]]; }

# Field $2 of the run selected by jq filter $3 from JSON lines $1 ("" when absent).
field() { jq -r "select($3) | .$2 // empty" <<<"$1" | head -1; }

# "1234" from "1234.5"; "n/a" for nothing.
whole() { [[ -n $1 ]] && printf '%.0f' "$1" || echo n/a; }
ratio() { [[ -n $1 && -n $2 ]] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }' || echo n/a; }
ms3() { [[ -n $1 ]] && printf '%.3f' "$1" || echo n/a; }
added_us() { [[ -n $1 && -n $2 ]] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) * 1000 }' || echo n/a; }

# Runs a measuring function; a failed run yields nothing (its cells show n/a) and is remembered
# in a file, since measure runs in a subshell, $(...), whose variables die with it.
measure() {
  local out
  if out=$("$@"); then echo "$out"; else echo "compare.sh: FAILED: $*" >&2; touch "$work/failed"; fi
}

print_header() {
  echo "| op | direct ops/s | p11-kit ops/s | broker ops/s ($clients clients) | sessions | broker/direct | broker/p11-kit | direct p50 ms (1 thread) | broker p50 ms (1 client) | added p50 µs |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
}

# µs of CPU per call of process group $2 in JSON line $1 ("n/a" when absent).
cpu_us() { whole "$(jq -r ".cpu_us_per_op[\"$2\"] // empty" <<<"$1")"; }

# One row of the CPU table: where the cycles of the best broker run went, against the direct
# baseline's CPU per call (its best run, all threads).
cpu_row() {
  local op=$1 direct=$2 broker=$3 s=$4 b w c
  b=$(cpu_us "$broker" broker) w=$(cpu_us "$broker" workers) c=$(cpu_us "$broker" hsm-bench)
  local total=n/a ceiling=n/a
  if [[ $b != n/a && $w != n/a && $c != n/a ]]; then
    total=$((b + w + c))
    ceiling=$(awk -v t="$total" -v n="$(nproc)" 'BEGIN { printf "%.0f", n * 1e6 / t }')
  fi
  echo "| $op | $s | $b | $w | $c | $total | $ceiling | $(whole "$(field "$direct" 'cpu_us_per_op["hsm-bench"]' '.best == true')") |"
}

measure_op() {
  local op=$1 direct p11kit="" broker_1 best="" best_s="" s run
  direct=$(measure bench_direct "$op")
  p11kit_can_carry "$op" && p11kit=$(measure bench_p11kit "$op")
  for s in $sessions_list; do
    run=$(measure bench_broker "$op" "$clients" "$s")
    if [[ -n $run ]] && { [[ -z $best ]] || awk -v a="$(field "$run" ops_per_s true)" -v b="$(field "$best" ops_per_s true)" 'BEGIN { exit !(a > b) }'; }; then
      best=$run best_s=$s
    fi
  done
  broker_1=$(measure bench_broker "$op" 1 "$first_sessions")
  local d_ops k_ops b_ops d_p50 b_p50
  d_ops=$(field "$direct" ops_per_s '.best == true')
  k_ops=$(field "$p11kit" ops_per_s '.best == true')
  b_ops=$(field "$best" ops_per_s 'true')
  d_p50=$(field "$direct" p50_ms '.concurrency == 1 and .best != true')
  b_p50=$(field "$broker_1" p50_ms 'true')
  echo "| $op | $(whole "$d_ops") | $(whole "$k_ops") | $(whole "$b_ops") | ${best_s:-n/a} | $(ratio "$b_ops" "$d_ops")" \
       "| $(ratio "$b_ops" "$k_ops") | $(ms3 "$d_p50") | $(ms3 "$b_p50") | $(added_us "$d_p50" "$b_p50") |"
  cpu_row "$op" "$direct" "$best" "${best_s:-n/a}" >> "$work/cpu_rows"
}

print_cpu_table() {
  echo "Where the CPU goes, µs per call: the best broker run above, each process measured over the"
  echo "same window; \"ceiling\" is $(nproc) CPUs divided by the sum, in calls per second."
  echo
  echo "| op | sessions | broker | workers | hsm-bench (clients) | sum | ceiling ops/s | direct, per call (all threads) |"
  echo "|---|---|---|---|---|---|---|---|"
  cat "$work/cpu_rows"
}

# The process hops of a request with no work in them: the best p50 of three runs (the scheduler
# makes single runs vary by tens of µs on a small VM).
print_floor() {
  local i run best=""
  for i in 1 2 3; do
    run=$(measure bench_relay)
    [[ -n $run ]] || continue
    if [[ -z $best ]] || awk -v a="$(field "$run" p50_ms true)" -v b="$(field "$best" p50_ms true)" 'BEGIN { exit !(a < b) }'; then
      best=$run
    fi
  done
  [[ -n $best ]] || return 0
  echo "Process hops alone: a message through two relay processes and back (client -> relay ->"
  echo "relay -> relay -> client: the hops of client -> broker -> worker -> broker -> client, with no"
  echo "work in any of them): p50 $(awk -v a="$(field "$best" p50_ms true)" 'BEGIN { printf "%.0f", a * 1000 }') µs" \
       "(best of 3 runs), $(cpu_us "$best" relays) µs of CPU in the relays per message."
}

# VmRSS of the broker and, for context, of its hsm-worker children (separate processes).
print_rss() {
  local label=$1 broker workers=0 n=0 pid
  local main_pid=${broker_pid[$first_sessions]}
  broker=$(awk '/^VmRSS/ { print $2 }' "/proc/$main_pid/status") || die "the broker (pid $main_pid) is gone"
  for pid in $(pgrep -P "$main_pid" || true); do
    workers=$((workers + $(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)))
    n=$((n + 1))
  done
  echo "broker VmRSS $label: $broker kB  (its $n hsm-worker processes: $workers kB together)"
}

# Repeats one op: a broker whose RSS keeps growing run after run leaks.
memory_check() {
  local i
  print_rss "after the load"
  for i in 1 2 3; do
    measure bench_broker encrypt-32 "$clients" "$first_sessions" >/dev/null
    print_rss "after encrypt-32 run $i"
  done
}

main() {
  check_prerequisites
  provision_tokens
  local s op
  start_broker "$first_sessions"
  create_keys
  for s in $sessions_list; do [[ -n ${broker_pid[$s]:-} ]] || start_broker "$s"; done
  start_p11kit_server
  echo "hsm-bench comparison: $duration per run, SoftHSM2 $(softhsm2-util --version), $(nproc) CPUs," \
       "broker sessions per worker: $sessions_list"
  echo
  print_header
  : > "$work/cpu_rows"
  for op in $ops; do measure_op "$op"; done
  echo
  print_cpu_table
  echo
  print_floor
  echo
  memory_check
  [[ ! -e $work/failed ]] || die "some runs failed (see above)"
  if [[ ${BENCH_CAPACITY:-1} != 0 ]]; then
    echo
    BENCH_BIN=$bin bash bench/capacity.sh
  fi
}

main
