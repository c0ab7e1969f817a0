#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS]: builds the libFuzzer targets with clang (build-fuzz/, its own build
# directory; the GCC build is not touched) and fuzzes each one for SECONDS (default 10), starting
# from its seeds in tests/fuzz/corpus/<target>/, which are run first: every input that once
# crashed a target is kept there, so each run is also the regression test. Installs clang and
# libFuzzer first when they are missing (deploy/install-deps.sh --fuzz). Exits non-zero on any
# crash, leak, sanitizer report or hang; the input is left in build-fuzz/artifacts/.
#
# Environment: HSMB_FUZZ_TARGETS (names, default all), HSMB_FUZZ_BUILD_DIR (default build-fuzz),
# HSMB_JOBS (compile jobs, default all cores), HSMB_BUILD_LOCK (a file to flock while compiling).
# The fuzzer's own corpus grows in build-fuzz/corpus/<target>/; copy an input worth keeping (a
# new crash, after fixing it) into tests/fuzz/corpus/<target>/.
set -euo pipefail
seconds=${1:-10}
[[ $seconds =~ ^[0-9]+$ ]] || { echo "usage: tests/fuzz/run.sh [SECONDS]" >&2; exit 2; }
root=$(cd "$(dirname "$0")/../.." && pwd)
fuzz=$root/tests/fuzz
build=${HSMB_FUZZ_BUILD_DIR:-$root/build-fuzz}
all=(http_request transit_routes vault_values worker_frames worker_requests worker_replies config_yaml)
read -r -a targets <<<"${HSMB_FUZZ_TARGETS:-${all[*]}}"

bash "$root/deploy/install-deps.sh" --fuzz
command -v clang++ >/dev/null || { echo "fuzz: clang++ is missing after deploy/install-deps.sh --fuzz" >&2; exit 1; }

lock=()
[[ -n ${HSMB_BUILD_LOCK:-} ]] && lock=(flock "$HSMB_BUILD_LOCK")
cmake -S "$fuzz" -B "$build" -DCMAKE_CXX_COMPILER=clang++ >/dev/null
names=()
for t in "${targets[@]}"; do names+=("fuzz_$t"); done
started=$SECONDS
"${lock[@]}" cmake --build "$build" -j"${HSMB_JOBS:-$(nproc)}" --target "${names[@]}" >"$build/build.log" 2>&1 || {
  tail -50 "$build/build.log" >&2
  echo "fuzz: building the targets failed (full log: $build/build.log)" >&2
  exit 1
}
echo "fuzz: built ${#targets[@]} targets in $((SECONDS - started)) s"

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$build/artifacts"
failed=() passed=0
for t in "${targets[@]}"; do
  work=$build/corpus/$t
  mkdir -p "$work"
  args=(-max_total_time="$seconds" -timeout=20 -rss_limit_mb=2560 -max_len=65536 -print_final_stats=1
        -artifact_prefix="$build/artifacts/$t-")
  [[ -f $fuzz/dict/$t.dict ]] && args+=(-dict="$fuzz/dict/$t.dict")
  log=$build/$t.log
  # New inputs go to the first directory (the build's); the seeds are read, never written.
  if (cd "$build" && "./fuzz_$t" "${args[@]}" "$work" "$fuzz/corpus/$t") >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "fuzz: $t: ${execs:-?} runs (${speed:-?}/s), $cov, corpus $(ls "$work" | wc -l) inputs"
    passed=$((passed + 1))
  else
    echo "fuzz: $t FAILED; the input is in $build/artifacts/$t-*; log $log:" >&2
    # The first report, and the input that caused it.
    awk '/ERROR: |runtime error|invariant failed|terminate called|Assertion .* failed|Test unit written/ {p=1} p && n < 30 {print; n++}' "$log" >&2
    grep -m1 'Test unit written' "$log" >&2 || tail -20 "$log" >&2
    failed+=("$t")
  fi
done
((${#failed[@]} == 0)) || echo "fuzz: failed: ${failed[*]}"
echo "fuzz: ${passed} passed, ${#failed[@]} failed"
((${#failed[@]} == 0))
