#!/usr/bin/env bash
# Installs what is missing, builds, makes two simulated HSMs (hsm1, hsm2: SoftHSM2 tokens loaded
# through the fault-injection module, which deploy/dev-hsm.sh takes down, hangs and brings back),
# enrolls them in one cluster key so every key is copied to both, and runs hsm-supervisor (which
# runs hsm-broker generations, restarted every few minutes here to show hand-offs) in the
# foreground on a Unix socket and 127.0.0.1:8200. Ctrl-C stops it; tokens and keys stay in the
# state folder, and the next run uses them again.
# Environment: HSMB_DEV_DIR (state folder, default .quickstart/ in the repository),
# HSMB_HTTP_ADDRESS (default 127.0.0.1:8200), HSMB_BUILD_DIR (default build/ in the repository),
# HSMB_QUICKSTART_NO_BUILD=1 (install and build nothing: use what HSMB_BUILD_DIR holds).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath -m "${HSMB_BUILD_DIR:-$root/build}")  # relative paths: from where you are
HSMB_DEV_DIR=$(realpath -m "${HSMB_DEV_DIR:-$root/.quickstart}")
export HSMB_DEV_DIR
cd "$root"
if [[ ${HSMB_QUICKSTART_NO_BUILD:-0} != 1 ]]; then
  bash deploy/install-deps.sh
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" -j"$(nproc)" --target hsm-supervisor hsm-broker hsm-worker hsmctl hsmb_fault_pkcs11
fi
fault_module=$build/lib/libhsmb-fault-pkcs11.so
[[ -f $fault_module ]] || { echo "quickstart: $fault_module is missing (build target hsmb_fault_pkcs11)" >&2; exit 1; }

state=$HSMB_DEV_DIR
address=${HSMB_HTTP_ADDRESS:-127.0.0.1:8200}
hsm=deploy/dev-hsm.sh
members=(hsm1 hsm2)
for name in "${members[@]}"; do bash $hsm init "$name"; done

{
  echo "state_dir: $state"
  echo "listen:"
  echo "  unix: { path: $state/broker.sock, mode: \"0600\" }"
  echo "  http: { address: \"$address\" }"
  echo "members:"
  for name in "${members[@]}"; do
    echo "  - name: $name"
    echo "    module: $fault_module"
    echo "    token_label: $name"
    echo "    pin: { file: $state/$name.pin }"
    echo "    env: { SOFTHSM2_CONF: $state/$name.conf, HSMB_FAULT_MODULE: /usr/lib/softhsm/libsofthsm2.so, HSMB_FAULT_CONTROL: $state/$name.control }"
  done
  echo "replication: { mode: broker, min_copies: 1 }"
  echo "health: { probe_interval: 1s }"
  echo "timeouts: { request: 5s, call: 2s }"
  echo "supervisor: { restart_interval: 5m, restart_jitter: 10%, drain_timeout: 30s, heartbeat_timeout: 10s }"
} > "$state/broker.yaml"
"$build/bin/hsm-broker" --config "$state/broker.yaml" --check
# The cluster key ceremony (docs/replication.md), before any broker runs: it makes the cluster
# key on hsm1 and carries it to hsm2; on later runs it finds both enrolled and changes nothing.
so_pins=()
for name in "${members[@]}"; do so_pins+=(--so-pin-file "$name=$state/$name.so-pin"); done
"$build/bin/hsm-broker" --config "$state/broker.yaml" --enroll "${so_pins[@]}"

sock=$state/broker.sock
cat <<TXT

hsm-supervisor is starting hsm-broker on $sock and http://$address over two
simulated HSMs, hsm1 and hsm2, each holding a copy of every key (but ed25519 keys: SoftHSM2 cannot
wrap them). Every 5 minutes (±10%) it starts a fresh broker generation and drains the old one: no
request fails (\`kill -HUP $$\`, this supervisor, does it at once, with the configuration re-read).
In another terminal (bash or zsh):

  ctl() { $build/bin/hsmctl --socket $sock "\$@"; }
  dev() { HSMB_DEV_DIR=$state $root/$hsm "\$@"; }
  ctl members                         # both serving
  ctl keys create signer --type ecdsa-p256; ctl keys create demo     # demo: aes256-gcm96
  CT=\$(ctl encrypt demo hello); ctl sign signer hello
  ctl sync                            # each key version on both HSMs, with one fingerprint

The war story, on keyed operations:

  dev kill hsm1                       # HSM 1 dies
  ctl sign signer hello; ctl decrypt demo \$CT; echo       # still answered, by hsm2
  dev start hsm1                      # HSM 1 returns: probed, checked, synced, then serving
  until ctl members | grep -q '^hsm1 *serving'; do sleep 0.2; done
  dev kill hsm2                       # now HSM 2 dies
  ctl sign signer hello; ctl decrypt demo \$CT; echo       # still answered, by hsm1
  dev start hsm2; dev stop hsm1       # a hang: calls block ... dev cont hsm1

The outages are simulated by the fault-injection module (a development stand-in for a real HSM
outage, in $build/lib): "kill" makes the token vanish (no slots, CKR_DEVICE_ERROR),
"stop" makes every call block. Ctrl-C stops the supervisor, draining the broker.
TXT
exec "$build/bin/hsm-supervisor" --config "$state/broker.yaml"
