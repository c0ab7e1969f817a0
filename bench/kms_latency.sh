#!/usr/bin/env bash
# hsm-kms-plugin's Decrypt latency as kube-apiserver's start-up loads it: hsm-kms-load sends
# Decrypts of 32-byte data keys at a fixed rate (open loop) to the plugin in front of one broker
# on a SoftHSM2 member (and, with KMS_MEMBERS=2, two members), then prints the percentiles and
# the peak memory (VmHWM) of the broker, its workers and the plugin, which sizes the manifests'
# resources. Env: KMS_RATE (1000), KMS_SECONDS (10), KMS_THREADS (8), KMS_MEMBERS (1), BENCH_BIN.
set -euo pipefail
bin=${BENCH_BIN:-$(cd "$(dirname "$0")/.." && pwd)/build/bin}
rate=${KMS_RATE:-1000}
seconds=${KMS_SECONDS:-10}
threads=${KMS_THREADS:-8}
members=${KMS_MEMBERS:-1}
softhsm=${SOFTHSM2_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
work=$(mktemp -d /tmp/hsm-kms-bench-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
export SOFTHSM2_CONF=$work/softhsm2.conf
mkdir -p "$work/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$work" > "$SOFTHSM2_CONF"
{
  echo "state_dir: $work/state"
  echo "listen: { unix: { path: $work/broker.sock, mode: \"0600\" } }"
  echo "replication: { mode: none }"
  echo "members:"
  for i in $(seq "$members"); do
    softhsm2-util --init-token --free --label "kms$i" --pin 1234 --so-pin 123456 >/dev/null
    echo "  - { name: kms$i, module: $softhsm, token_label: kms$i, pin: { value: \"1234\" }, env: { SOFTHSM2_CONF: $SOFTHSM2_CONF }, sessions: 4 }"
  done
} > "$work/broker.yaml"
"$bin/hsm-broker" --config "$work/broker.yaml" >>"$work/broker.log" 2>&1 &
broker=$!
pids+=("$broker")
for _ in $(seq 300); do
  [[ $(curl -s --unix-socket "$work/broker.sock" -o /dev/null -w '%{http_code}' http://b/v1/sys/health) == 200 ]] && break
  sleep 0.1  # polling for readiness, bounded
done
"$bin/hsmctl" --socket "$work/broker.sock" keys create kube-secrets >/dev/null
"$bin/hsm-kms-plugin" --listen "$work/kms.sock" --broker-socket "$work/broker.sock" --key kube-secrets >>"$work/plugin.log" 2>&1 &
plugin=$!
pids+=("$plugin")
for _ in $(seq 100); do [[ -S $work/kms.sock ]] && break; sleep 0.1; done
"$bin/hsm-kms-load" --socket "$work/kms.sock" --rate "$rate" --seconds "$seconds" --threads "$threads"
hwm() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
workers=$(pgrep -P "$broker" | while read -r w; do hwm "$w"; done | awk '{s += $1} END {print s + 0}')
echo "peak RSS (VmHWM) kB: broker $(hwm "$broker"), its workers ${workers:-0} together, plugin $(hwm "$plugin")"
