#!/usr/bin/env bash
# Installs the Debian 12 packages hsm-broker builds and tests with, when any is missing.
# --fuzz: also clang and libFuzzer, for the fuzz build only (tests/fuzz/run.sh).
set -euo pipefail
packages=(build-essential cmake pkg-config libboost1.81-dev libboost-json1.81-dev libssl-dev libyaml-cpp-dev
          libspdlog-dev doctest-dev softhsm2 p11-kit p11-kit-modules libp11-kit-dev opensc openssl curl
          python3 python3-hvac systemd nodejs prometheus libgrpc++-dev protobuf-compiler-grpc
          python3-yaml python3-grpcio libengine-pkcs11-openssl default-jdk-headless)
[[ ${1:-} == --fuzz ]] && packages+=(clang libclang-rt-14-dev libfuzzer-14-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The Node.js Vault client the tests drive, pinned by tests/clients/package-lock.json.
clients="$(dirname "$0")/../tests/clients"
if [[ ! -d $clients/node_modules/node-vault ]]; then
  echo "installing: node-vault (npm, tests/clients)"
  npm ci --prefix "$clients" --no-audit --no-fund --silent
fi
