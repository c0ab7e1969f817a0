#!/usr/bin/env bash
# The systemd units: `systemd-analyze verify` accepts them, the service's exposure score
# (`systemd-analyze security --offline=true`) stays at or below 2.5, and socket files inside the
# service's RuntimeDirectory survive its restarts.
# Usage: systemd_units_test.sh SOURCE_DIR BIN_DIR
set -euo pipefail
src=$1 bin=$2
limit=2.5
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# verify checks that ExecStart programs exist: point them at the build.
sed "s|/usr/bin/hsm-|$bin/hsm-|g" "$src/systemd/hsm-broker.service" > "$work/hsm-broker.service"
cp "$src"/systemd/*.socket "$work/"
cd "$work"
runtime=$(sed -n 's/^RuntimeDirectory=//p' hsm-broker.service)
if [[ -n $runtime ]] && grep -q "^ListenStream=/run/$runtime/" ./*.socket &&
   ! grep -q '^RuntimeDirectoryPreserve=yes' hsm-broker.service; then
  echo "a socket listens in /run/$runtime, which systemd removes when the service stops: set RuntimeDirectoryPreserve=yes"
  exit 1
fi
# Resources are set deliberately: with systemd's default LimitNOFILE (1024) the default connection
# caps do not fit, and ~@resources keeps the broker from raising it.
for setting in LimitNOFILE MemoryMax TasksMax; do
  grep -q "^$setting=" hsm-broker.service || { echo "hsm-broker.service sets no $setting="; exit 1; }
done
nofile=$(sed -n 's/^LimitNOFILE=//p' hsm-broker.service)
(( nofile >= 2048 + 64 + 8 * 16 )) || { echo "LimitNOFILE=$nofile cannot carry two listeners' default caps"; exit 1; }
if ! out=$(systemd-analyze verify ./hsm-broker.service ./hsm-broker.socket ./hsm-broker-http.socket 2>&1) || [[ -n $out ]]; then
  echo "systemd-analyze verify complained:"; echo "$out"; exit 1
fi
report=$(systemd-analyze security --offline=true ./hsm-broker.service 2>&1)
score=$(sed -n 's/.*Overall exposure level for hsm-broker.service: \([0-9.]*\).*/\1/p' <<<"$report")
if [[ -z $score ]]; then echo "no exposure score in:"; echo "$report"; exit 1; fi
echo "exposure level: $score (limit $limit)"
awk -v s="$score" -v l="$limit" 'BEGIN { exit !(s <= l) }' || { echo "$report" | grep '✗'; exit 1; }
