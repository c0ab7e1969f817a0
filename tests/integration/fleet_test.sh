#!/usr/bin/env bash
# A fleet of sidecars on shared HSMs: N brokers (HSMB_FLEET_BROKERS, default 20) started together
# on two fresh simulated network HSMs (SoftHSM2 behind `p11-kit server`), with opensc's
# pkcs11-spy between each server and SoftHSM2 counting every PKCS#11 call that reaches the "HSM".
#   1. every broker serves both members within 10 s of a simultaneous start (the canary key pair
#      that several brokers make at once on a fresh token is no reason for a member to be down);
#   2. idle, the HSMs see at most 0.1 calls/s per broker each (HSMB_FLEET_IDLE_SECONDS, default 40,
#      which holds one cycle of idle probes);
#   3. hsm1 killed: its keys answer 503 (never 404) on every broker, hsm2's keys keep working;
#      hsm1 restarted: every broker sees it serving within 2 x probe_interval + max_backoff;
#   4. every request on a key whose HSM is up succeeds throughout.
# Usage: fleet_test.sh SOURCE_DIR BIN_DIR
set -euo pipefail
src=$1 bin=$2
brokers=${HSMB_FLEET_BROKERS:-20}
idle_seconds=${HSMB_FLEET_IDLE_SECONDS:-40}
probe_ms=1000 max_backoff_ms=4000
dir=$(mktemp -d /tmp/hsmb-fleet-XXXXXX)
client=/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so
spy=/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so
softhsm=/usr/lib/softhsm/libsofthsm2.so
pids=()

# Background processes are disowned (no job notices on stderr) and ended here, whatever happened.
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for h in hsm1 hsm2; do [[ -f $dir/$h.pgid ]] && kill -KILL -- "-$(cat "$dir/$h.pgid")" 2>/dev/null || true; done
  [[ -n ${HSMB_KEEP_TEST_DIRS:-} ]] || rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; tail -n 20 "$dir"/b1/log >&2 || true; exit 1; }
now_ms() { date +%s%3N; }
# Waits up to $1 seconds for the command after it to succeed; fails with the message $2.
await() {
  local seconds=$1 what=$2; shift 2
  local deadline=$(( $(now_ms) + seconds * 1000 ))
  until "$@"; do (( $(now_ms) < deadline )) || fail "$what (after ${seconds} s)"; sleep 0.1; done
}

# ---- two fresh network HSMs, each behind a call counter ------------------------------------
for h in hsm1 hsm2; do
  mkdir -p "$dir/$h-tokens"
  printf 'directories.tokendir = %s/%s-tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$dir" "$h" > "$dir/$h.conf"
  echo 1234 > "$dir/$h.pin"
  SOFTHSM2_CONF=$dir/$h.conf softhsm2-util --init-token --free --label "$h" --pin 1234 --so-pin 123456 >/dev/null
done
start_hsm() {
  local h=$1
  rm -f "$dir/$h.sock"
  SOFTHSM2_CONF=$dir/$h.conf PKCS11SPY=$softhsm PKCS11SPY_OUTPUT=$dir/$h.calls \
    setsid p11-kit server -f -n "$dir/$h.sock" --provider "$spy" "pkcs11:token=$h" >>"$dir/$h.log" 2>&1 </dev/null &
  echo $! > "$dir/$h.pgid"
  disown $!
  await 5 "$h's socket" test -S "$dir/$h.sock"
}
calls() { grep -cE '^[0-9]+: C_' "$dir/$1.calls" 2>/dev/null || echo 0; }
start_hsm hsm1
start_hsm hsm2

# ---- the fleet ---------------------------------------------------------------------------------
write_config() {  # NAME MEMBERS...
  local name=$1; shift
  mkdir -p "$dir/$name"
  {
    echo "state_dir: $dir/$name"
    echo "listen: { unix: { path: $dir/$name/sock, mode: \"0600\" } }"
    echo "members:"
    for h in "$@"; do
      echo "  - { name: $h, module: $client, token_label: $h, pin: { file: $dir/$h.pin }, sessions: 1,"
      echo "      env: { P11_KIT_SERVER_ADDRESS: \"unix:path=$dir/$h.sock\" } }"
    done
    echo "health: { probe_interval: ${probe_ms}ms, max_backoff: ${max_backoff_ms}ms }"
  } > "$dir/$name/broker.yaml"
}
for i in $(seq "$brokers"); do write_config "b$i" hsm1 hsm2; done
started=$(now_ms)
for i in $(seq "$brokers"); do
  "$bin/hsm-broker" --config "$dir/b$i/broker.yaml" >"$dir/b$i/log" 2>&1 &
  pids+=($!)
  disown $!
done
members_json() { curl -s --max-time 5 --unix-socket "$dir/$1/sock" http://broker/v1/broker/members; }
state_of() {  # BROKER MEMBER
  members_json "$1" | python3 -c 'import json,sys
m={x["name"]:x for x in json.load(sys.stdin)["data"]["members"]}; print(m[sys.argv[1]]["state"])' "$2" 2>/dev/null
}
every_broker() {  # MEMBER STATE
  local i
  for i in $(seq "$brokers"); do [[ $(state_of "b$i" "$1") == "$2" ]] || return 1; done
}
both_serving() { every_broker hsm1 serving && every_broker hsm2 serving; }
await 10 "every broker serving both members after a simultaneous start" both_serving
echo "fleet of $brokers brokers serving both members $(( $(now_ms) - started )) ms after starting together"
if grep -l HSMB_KNOWN_ANSWER_FAILED "$dir"/b*/log >/dev/null; then
  grep -h "known-answer" "$dir"/b*/log | head -3 >&2
  fail "a known-answer check failed on a healthy HSM"
fi
canaries() {
  SOFTHSM2_CONF=$dir/$1.conf pkcs11-tool --module "$softhsm" --token-label "$1" --login --pin 1234 --list-objects 2>/dev/null |
    grep -c 'label: *hsmb-canary$' || true
}
echo "canary objects left: hsm1 $(canaries hsm1), hsm2 $(canaries hsm2) (a pair is 2)"

# ---- idle load ---------------------------------------------------------------------------------
sleep 2  # start-up calls still in flight are not idle load
c1=$(calls hsm1) c2=$(calls hsm2)
sleep "$idle_seconds"  # the measurement window itself: nothing to await
d1=$(( $(calls hsm1) - c1 )) d2=$(( $(calls hsm2) - c2 ))
python3 - "$d1" "$d2" "$idle_seconds" "$brokers" <<'PY' || fail "idle load above 0.1 calls/s per broker per HSM"
import sys
d1, d2, secs, n = (int(x) for x in sys.argv[1:])
for name, d in (("hsm1", d1), ("hsm2", d2)):
    print(f"idle: {name} {d} calls in {secs} s = {d/secs:.2f}/s = {d/secs/n:.3f} per broker per s")
sys.exit(0 if max(d1, d2) / secs / n <= 0.1 else 1)
PY

# ---- a key on each HSM, made by a one-member broker (p11-kit 0.24 carries no key wrap: no copies)
for h in hsm1 hsm2; do
  write_config "maker-$h" "$h"
  "$bin/hsm-broker" --config "$dir/maker-$h/broker.yaml" >"$dir/maker-$h/log" 2>&1 &
  maker=$!
  await 10 "a broker for $h alone" curl -sf --unix-socket "$dir/maker-$h/sock" http://broker/v1/sys/health -o /dev/null
  curl -sf --unix-socket "$dir/maker-$h/sock" -X POST -d '{"type":"ecdsa-p256"}' "http://broker/v1/transit/keys/on-$h" >/dev/null ||
    fail "creating on-$h"
  kill -TERM "$maker"; wait "$maker" || true
done

# ---- keyed load on every broker while hsm1 dies and returns -----------------------------------
sign() {  # BROKER KEY -> status
  curl -s -o /dev/null -w '%{http_code}' --max-time 10 --unix-socket "$dir/$1/sock" -X POST \
    -d "{\"input\":\"$(echo -n "m$RANDOM" | base64)\"}" "http://broker/v1/transit/sign/$2"
}
: > "$dir/load.statuses"
load() {
  local i=1
  while [[ ! -f $dir/stop ]]; do
    echo "$(sign "b$i" on-hsm2)" >> "$dir/load.statuses"
    i=$(( i % brokers + 1 ))
  done
}
load & load_pid=$!
pids+=("$load_pid")
for i in $(seq "$brokers"); do
  s=$(sign "b$i" on-hsm1)
  [[ $s == 200 ]] || fail "b$i: on-hsm1 (a key made by another broker) answered $s"
done
kill -KILL -- "-$(cat "$dir/hsm1.pgid")"
for i in $(seq "$brokers"); do
  s=$(sign "b$i" on-hsm1)
  [[ $s == 503 ]] || fail "b$i: on-hsm1 with hsm1 dead answered $s (expected 503, never 404)"
done
await 15 "every broker sees hsm1 down" every_broker hsm1 down
back=$(now_ms)
start_hsm hsm1
bound=$(( 2 * probe_ms + max_backoff_ms ))
await 30 "every broker sees hsm1 serving again" every_broker hsm1 serving
# When each broker saw it, from its own log (polling 20 brokers would add its own second).
took=$(python3 - "$back" "$dir" "$brokers" <<'PY'
import datetime, re, sys
back, d, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
latest = 0
for i in range(1, n + 1):
    at = None
    for line in open(f"{d}/b{i}/log", errors="replace"):
        m = re.match(r"(\S+) info member hsm1: syncing -> serving", line)
        if m:
            t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")  # the broker logs local time
            at = int(t.timestamp() * 1000)
    latest = max(latest, (at or 0) - back)
print(latest)
PY
)
echo "hsm1 back: the last of $brokers brokers serving it $took ms after its restart (bound: 2 x probe_interval + max_backoff = $bound ms)"
(( took <= bound )) || fail "recovery took $took ms, more than the bound $bound ms"
for i in $(seq "$brokers"); do
  s=$(sign "b$i" on-hsm1)
  [[ $s == 200 ]] || fail "b$i: on-hsm1 after hsm1 returned answered $s"
done
touch "$dir/stop"; wait "$load_pid" || true
total=$(wc -l < "$dir/load.statuses"); failed=$(grep -vc '^200$' "$dir/load.statuses" || true)
echo "keyed load on hsm2's key through every broker: $total requests, $failed failed"
(( total > 50 )) || fail "too little load ($total requests)"
(( failed == 0 )) || fail "$failed requests failed on a key whose HSM was up: $(sort "$dir/load.statuses" | uniq -c | tr '\n' ' ')"
echo "fleet test passed"
