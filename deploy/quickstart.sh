#!/usr/bin/env bash
# Installs what is missing, builds, starts two simulated network HSMs (SoftHSM2 tokens behind
# `p11-kit server`) and runs hsm-supervisor (which runs hsm-broker generations, restarted every
# few minutes here to show hand-offs) over them and one local SoftHSM2 token, in the foreground,
# on a Unix socket and 127.0.0.1:8200. Ctrl-C stops everything; tokens and keys stay in the state
# folder. (The local token takes AES-GCM and Ed25519 keys, which Debian 12's p11-kit cannot carry.)
# Environment: HSMB_DEV_DIR (default ./.quickstart), HSMB_HTTP_ADDRESS (default 127.0.0.1:8200).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bash deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"

export HSMB_DEV_DIR=${HSMB_DEV_DIR:-$root/.quickstart}
state=$HSMB_DEV_DIR
address=${HSMB_HTTP_ADDRESS:-127.0.0.1:8200}
hsm=deploy/dev-hsm.sh
for name in hsm1 hsm2; do bash $hsm init $name; bash $hsm start $name; done
bash $hsm init local
trap 'for name in hsm1 hsm2; do bash '"$hsm"' cont $name >/dev/null 2>&1; bash '"$hsm"' kill $name >/dev/null; done' EXIT

client=/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so
{
  echo "state_dir: $state"
  echo "listen:"
  echo "  unix: { path: $state/broker.sock, mode: \"0600\" }"
  echo "  http: { address: \"$address\" }"
  echo "members:"
  for name in hsm1 hsm2; do
    echo "  - name: $name"
    echo "    module: $client"
    echo "    token_label: $name"
    echo "    pin: { file: $state/$name.pin }"
    echo "    env: { P11_KIT_SERVER_ADDRESS: \"unix:path=$state/$name.sock\" }"
  done
  echo "  - name: local"
  echo "    module: /usr/lib/softhsm/libsofthsm2.so"
  echo "    token_label: local"
  echo "    pin: { file: $state/local.pin }"
  echo "    env: { SOFTHSM2_CONF: $state/local.conf }"
  echo "health: { probe_interval: 1s }"
  echo "timeouts: { request: 5s, call: 2s }"
  echo "supervisor: { restart_interval: 5m, restart_jitter: 10%, drain_timeout: 30s, heartbeat_timeout: 10s }"
} > "$state/broker.yaml"
build/bin/hsm-broker --config "$state/broker.yaml" --check

sock=$state/broker.sock
ctl="$root/build/bin/hsmctl --socket $sock"
cat <<TXT

hsm-supervisor is starting hsm-broker on $sock and http://$address over two simulated network
HSMs (hsm1, hsm2) and a local SoftHSM2 token (local). Every 5 minutes (±10%) the supervisor starts a
fresh broker generation and drains the old one: no request fails. \`kill -HUP <supervisor pid>\`
does the same at once with the configuration re-read; killing the broker (\`pkill -KILL -x hsm-broker\`)
shows crash recovery.
From another terminal:

  $ctl members                                  # state, latency, failovers, hedges, last error
  $ctl keys create signer --type ecdsa-p256
  $ctl sign signer hello
  $ctl keys create demo                         # aes256-gcm96: placed on 'local', see below
  $ctl encrypt demo hello
  curl -s --unix-socket $sock -X POST -d '{"bytes":16}' http://broker/v1/transit/random
  while sleep 0.2; do $ctl random 8; done       # steady traffic, to watch failover

Break an HSM and watch \`$ctl members\` (requests keep succeeding while one HSM is up):

  HSMB_DEV_DIR=$state $root/$hsm kill hsm1    # crash      ... start hsm1 to bring it back
  HSMB_DEV_DIR=$state $root/$hsm stop hsm2    # hang       ... cont hsm2 to resume

Note: Debian 12's p11-kit 0.24 cannot carry AES-GCM or Ed25519 to a network HSM: the broker sees
that in each member's mechanism list and places such keys on 'local'. Real vendor libraries have
no such limit.
Ctrl-C stops the supervisor (draining the broker) and the simulated HSMs.
TXT
build/bin/hsm-supervisor --config "$state/broker.yaml"
