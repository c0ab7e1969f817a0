#!/usr/bin/env bash
# Installs what is missing (Debian 12), builds into build/, and runs every test with ctest.
# Environment: HSMB_BUILD_TYPE (default Release), HSMB_JOBS (default: all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
jobs=${HSMB_JOBS:-$(nproc)}
cmake -S . -B build -DCMAKE_BUILD_TYPE="${HSMB_BUILD_TYPE:-Release}" >/dev/null
cmake --build build -j"$jobs"
cd build
ctest -j"$jobs" --output-on-failure --timeout 600
