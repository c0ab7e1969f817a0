#!/usr/bin/env bash
# The quickstart's war story, done the way the README's "A session with curl" tells a user to:
# deploy/quickstart.sh runs in the background (a temporary state folder, a free port, nothing
# built), keys of four types are made, then hsm1 is killed with deploy/dev-hsm.sh, brought back
# (a key made meanwhile must reach it), and hsm2 killed. Every keyed request must succeed, the
# explicit ones and those of a loop that runs throughout. The run ends well within the
# quickstart's 5-minute generation restarts, so no hand-off happens during it.
# Usage: quickstart_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$(realpath "$1") build=$(realpath "$2")
dir=$(mktemp -d /tmp/hsmb-quickstart-test.XXXXXX)
export HSMB_DEV_DIR=$dir
S=$dir/broker.sock
quickstart_pid='' load_pid=''

fail() { echo "FAIL: $*" >&2; exit 1; }
cleanup() {
  local rc=$?
  if [[ -n $load_pid ]]; then kill "$load_pid" 2>/dev/null || true; fi
  if [[ -n $quickstart_pid ]] && kill -0 "$quickstart_pid" 2>/dev/null; then
    kill -TERM "$quickstart_pid"  # the supervisor (quickstart.sh execs it): drains every broker
    for _ in $(seq 100); do kill -0 "$quickstart_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$quickstart_pid" 2>/dev/null || true  # brokers follow it (PDEATHSIG)
  fi
  wait 2>/dev/null || true
  if ((rc != 0)) && [[ -f $dir/quickstart.log ]]; then
    echo "--- quickstart.log (last 40 lines) ---"
    tail -n 40 "$dir/quickstart.log"
  fi
  rm -rf "$dir"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# As in the README.
transit() { curl -sS --fail-with-body --max-time 10 --unix-socket "$S" -X POST -d "$2" "http://broker/v1/transit/$1"; }
ciphertext() { python3 -c 'import json,sys;print(json.load(sys.stdin)["data"]["ciphertext"])'; }
field() { python3 -c 'import json,sys;print(json.load(sys.stdin)["data"][sys.argv[1]])' "$1"; }
dev() { bash "$src/deploy/dev-hsm.sh" "$@"; }
running() { kill -0 "$quickstart_pid" 2>/dev/null || fail "deploy/quickstart.sh exited"; }

state_of() {
  curl -s --max-time 5 --unix-socket "$S" http://broker/v1/broker/members 2>/dev/null | python3 -c '
import json, sys
states = {m["name"]: m["state"] for m in json.load(sys.stdin)["data"]["members"]}
print(states.get(sys.argv[1], "?"))' "$1" 2>/dev/null || echo "?"
}
# Polls GET /v1/broker/members until member $1 is in state $2, for at most $3 seconds.
await_state() {
  local t0=$SECONDS
  until [[ $(state_of "$1") == "$2" ]]; do
    running
    ((SECONDS - t0 < $3)) || fail "member $1 is not $2 after $3 s (it is $(state_of "$1"))"
    sleep 0.1
  done
  echo "$1 $2 (within $((SECONDS - t0 + 1)) s)"
}

# The keyed operations of the README, each checked for its result.
m=$(echo -n msg | base64)
keyed_ops() {
  local sig mac ct
  sig=$(transit sign/signer "{\"input\":\"$m\"}" | field signature) || fail "$1: sign (ecdsa-p256)"
  [[ $(transit verify/signer "{\"input\":\"$m\",\"signature\":\"$sig\"}" | field valid) == True ]] || fail "$1: verify"
  transit sign/report "{\"input\":\"$m\"}" >/dev/null || fail "$1: sign (rsa-2048)"
  mac=$(transit hmac/tags "{\"input\":\"$m\"}" | field hmac) || fail "$1: hmac"
  [[ $mac == "$MAC" ]] || fail "$1: hmac differs from the one made with both HSMs up"
  ct=$(transit encrypt/demo "{\"plaintext\":\"$(echo -n "$1" | base64)\"}" | ciphertext) || fail "$1: encrypt"
  [[ $(transit decrypt/demo "{\"ciphertext\":\"$ct\"}" | field plaintext) == "$(echo -n "$1" | base64)" ]] || fail "$1: decrypt"
  [[ $(transit decrypt/demo "{\"ciphertext\":\"$CT\"}" | field plaintext) == aGVsbG8= ]] ||
    fail "$1: decrypt of the ciphertext made before any HSM went down"
  echo "$1: sign, verify, hmac, encrypt, decrypt ok"
}

# Keyed requests in a loop, counted; the counts are rewritten after every round.
load() {
  local ok=0 failed=0 out req
  local requests=("sign/signer {\"input\":\"$m\"}" "sign/report {\"input\":\"$m\"}" "hmac/tags {\"input\":\"$m\"}"
                  "encrypt/demo {\"plaintext\":\"$m\"}" "decrypt/demo {\"ciphertext\":\"$CT\"}")
  while [[ ! -e $dir/load.stop ]]; do
    for req in "${requests[@]}"; do
      if out=$(transit "${req%% *}" "${req#* }" 2>&1); then ok=$((ok + 1)); else
        failed=$((failed + 1))
        echo "$(date +%T.%N) ${req%% *}: $out" >> "$dir/load.failures"
      fi
    done
    echo "$ok $failed" > "$dir/load.counts.tmp" && mv -f "$dir/load.counts.tmp" "$dir/load.counts"
  done
}
counts() { cat "$dir/load.counts" 2>/dev/null || echo "0 0"; }
# Waits (at most 20 s) until the loop has made $1 more successful requests: it ran in this phase.
await_load() {
  local start t0=$SECONDS ok
  read -r start _ < <(counts)
  while read -r ok _ < <(counts); ((ok < start + $1)); do
    ((SECONDS - t0 < 20)) || fail "the request loop made no progress ($ok ok)"
    kill -0 "$load_pid" 2>/dev/null || fail "the request loop ended"
    sleep 0.1
  done
}

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
HSMB_HTTP_ADDRESS=127.0.0.1:$port HSMB_QUICKSTART_NO_BUILD=1 HSMB_BUILD_DIR=$build \
  setsid bash "$src/deploy/quickstart.sh" > "$dir/quickstart.log" 2>&1 &
quickstart_pid=$!
t0=$SECONDS
until curl -sf --max-time 5 --unix-socket "$S" http://broker/v1/sys/health >/dev/null 2>&1; do
  running
  ((SECONDS - t0 < 45)) || fail "the quickstart's broker did not answer on $S within 45 s"
  sleep 0.1
done
await_state hsm1 serving 15
await_state hsm2 serving 15
curl -sf --max-time 5 "http://127.0.0.1:$port/v1/sys/health" >/dev/null || fail "no answer on http://127.0.0.1:$port"

for key in signer:ecdsa-p256 demo:aes256-gcm96 report:rsa-2048 tags:hmac; do
  transit "keys/${key%%:*}" "{\"type\":\"${key#*:}\"}" >/dev/null || fail "create ${key#*:} key ${key%%:*}"
done
CT=$(transit encrypt/demo "{\"plaintext\":\"$(echo -n hello | base64)\"}" | ciphertext) || fail "encrypt"
MAC=$(transit hmac/tags "{\"input\":\"$m\"}" | field hmac) || fail "hmac"
"$build/bin/hsmctl" --socket "$S" sync || fail "hsmctl sync: not every key version is on both HSMs"
keyed_ops "both up"

load &
load_pid=$!
await_load 10

dev kill hsm1
keyed_ops "hsm1 just killed"
await_state hsm1 down 15
keyed_ops "hsm1 down"
# A key made while hsm1 is down reaches it while it is syncing, before it serves again.
transit keys/late '{"type":"aes256-gcm96"}' >/dev/null || fail "create a key with hsm1 down"
LATE=$(transit encrypt/late "{\"plaintext\":\"$m\"}" | ciphertext) || fail "encrypt with the key made while hsm1 was down"
await_load 20
echo "loop so far: $(counts | awk '{print $1 " ok, " $2 " failed"}')"

dev start hsm1
await_state hsm1 serving 15
dev kill hsm2
keyed_ops "hsm2 just killed"
await_state hsm2 down 15
keyed_ops "hsm2 down"
[[ $(transit decrypt/late "{\"ciphertext\":\"$LATE\"}" | field plaintext) == "$m" ]] ||
  fail "hsm2 down: decrypt with the key made while hsm1 was down (not copied to hsm1 on its return?)"
await_load 20
dev start hsm2
await_state hsm2 serving 15
await_load 10

touch "$dir/load.stop"
wait "$load_pid"
load_pid=''
read -r ok failed < <(counts)
echo "keyed requests in the loop, through both outages: $ok ok, $failed failed"
if ((failed > 0)); then cat "$dir/load.failures"; fail "$failed keyed requests failed"; fi

for name in hsm1 hsm2; do
  for pin in "$dir/$name.pin" "$dir/$name.so-pin"; do
    ! grep -qF -- "$(cat "$pin")" "$dir/quickstart.log" || fail "a PIN of $name is in the quickstart's output"
  done
done
echo "PASS"
