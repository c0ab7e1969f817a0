#!/usr/bin/env bash
# Installs what is missing, builds, provisions a SoftHSM2 token in a local state folder, and runs
# hsm-broker in the foreground on a Unix socket and 127.0.0.1:8200. Ctrl-C stops it.
# Environment: HSMB_QUICKSTART_DIR (default ./.quickstart), HSMB_HTTP_ADDRESS (default 127.0.0.1:8200).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bash deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"

state=${HSMB_QUICKSTART_DIR:-$root/.quickstart}
address=${HSMB_HTTP_ADDRESS:-127.0.0.1:8200}
mkdir -p "$state/tokens"
chmod 700 "$state"
conf=$state/softhsm2.conf
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$state" > "$conf"
if [[ ! -f $state/hsm-a.pin ]]; then
  (umask 077; head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$state/hsm-a.pin")
fi
if ! SOFTHSM2_CONF=$conf softhsm2-util --show-slots 2>/dev/null | grep -q 'Label:.*hsm-a'; then
  SOFTHSM2_CONF=$conf softhsm2-util --init-token --free --label hsm-a \
    --pin "$(cat "$state/hsm-a.pin")" --so-pin "$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" >/dev/null
fi
cat > "$state/broker.yaml" <<YAML
state_dir: $state
listen:
  unix: { path: $state/broker.sock, mode: "0600" }
  http: { address: "$address" }
members:
  - name: hsm-a
    module: /usr/lib/softhsm/libsofthsm2.so
    token_label: hsm-a
    pin: { file: $state/hsm-a.pin }
    env: { SOFTHSM2_CONF: $conf }
YAML
build/bin/hsm-broker --config "$state/broker.yaml" --check

sock=$state/broker.sock
cat <<TXT

hsm-broker is starting on $sock and http://$address (config: $state/broker.yaml).
Try, from another terminal:

  curl -s --unix-socket $sock -X POST -d '{"type":"aes256-gcm96"}' http://broker/v1/transit/keys/demo
  curl -s --unix-socket $sock -X POST -d '{"plaintext":"'\$(echo -n hello | base64)'"}' http://broker/v1/transit/encrypt/demo
  curl -s --unix-socket $sock -X POST -d '{"ciphertext":"vault:v1:..."}' http://broker/v1/transit/decrypt/demo
  curl -s --unix-socket $sock -X POST -d '{"type":"ecdsa-p256"}' http://broker/v1/transit/keys/signer
  curl -s --unix-socket $sock -X POST -d '{"input":"'\$(echo -n msg | base64)'"}' http://broker/v1/transit/sign/signer
  $root/build/bin/hsmctl --socket $sock members
  VAULT_ADDR=http://$address vault write transit/encrypt/demo plaintext=\$(echo -n hi | base64)   # any Vault client

Ctrl-C stops the broker; the token (and its keys) stay in $state.
TXT
exec build/bin/hsm-broker --config "$state/broker.yaml"
