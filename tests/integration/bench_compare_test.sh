#!/usr/bin/env bash
# bench/compare.sh end to end, short: every hsm-bench operation against the direct, p11-kit and
# broker targets on real SoftHSM2 tokens. Checks that each table row carries numbers where it
# must (n/a only where p11-kit's RPC cannot carry the operation), and that the CPU table, the
# process-hop line and the memory lines are there. The numbers themselves are not judged here.
# Usage: bench_compare_test.sh SOURCE_DIR BIN_DIR
set -euo pipefail
src=$1 bin=$2
ops="sign-ecdsa-p256 sign-rsa-2048 sign-ed25519 encrypt-32 encrypt-4k decrypt-32 decrypt-4k hmac random"
out=$(BENCH_BIN=$bin BENCH_OPS=$ops BENCH_DURATION=200ms BENCH_CLIENTS=4 BENCH_SESSIONS="1 2" \
      CAP_DURATION=500ms CAP_WARMUP=300ms CAP_SLOW_DURATION=3s \
      bash "$src/bench/compare.sh" 2>&1) || { echo "$out"; echo "compare.sh failed"; exit 1; }
fail() { echo "$out"; echo "FAILED: $*"; exit 1; }
number='[0-9]+(\.[0-9]+)?'
for op in $ops; do
  row=$(grep -E "^\| $op \| [0-9]" <<<"$out" | head -1) || fail "no result row for $op"
  IFS='|' read -r _ _ direct p11kit broker sessions r1 r2 d50 b50 added _ <<<"$row"
  for cell in "$direct" "$broker" "$r1" "$d50" "$b50"; do
    [[ $(echo $cell) =~ ^$number$ ]] || fail "$op: '$cell' is not a number in: $row"
  done
  [[ $(echo $added) =~ ^-?[0-9]+$ ]] || fail "$op: added latency '$added' is not a number"
  [[ $(echo $sessions) == 1 || $(echo $sessions) == 2 ]] || fail "$op: sessions '$sessions'"
  case $op in
    encrypt-* | decrypt-* | sign-ed25519) [[ $(echo $p11kit) == n/a ]] || fail "$op: p11-kit should be n/a" ;;
    *) [[ $(echo $p11kit) =~ ^$number$ && $(echo $r2) =~ ^$number$ ]] || fail "$op: no p11-kit numbers in: $row" ;;
  esac
  cpu=$(grep -E "^\| $op \| [12] \|" <<<"$out" | head -1) || fail "no CPU row for $op"
  IFS='|' read -r _ _ _ b w c sum ceiling d _ <<<"$cpu"
  for cell in "$b" "$w" "$c" "$sum" "$ceiling" "$d"; do
    [[ $(echo $cell) =~ ^[0-9]+$ ]] || fail "$op: CPU cell '$cell' is not a number in: $cpu"
  done
done
grep -qE "^work in any of them\): p50 [0-9]+ µs \(best of 3 runs\), [0-9]+ µs of CPU" <<<"$out" || fail "no process-hop line"
[[ $(grep -cE "^broker VmRSS .*: [0-9]+ kB" <<<"$out") == 4 ]] || fail "expected 4 memory lines"
# bench/capacity.sh's table: a throughput for every scenario, no failed request.
for scenario in "1 equal" "2 equal" "4 equal" "C and C/2" "C and C, then hsm2"; do
  row=$(grep -E "^\| $scenario" <<<"$out" | head -1) || fail "no capacity row for '$scenario'"
  IFS='|' read -r _ _ _ through _ _ errors _ <<<"$row"
  [[ $(echo $through) =~ ^[0-9]+$ ]] || fail "capacity '$scenario': throughput '$through' in: $row"
  [[ $(echo $errors) == 0 ]] || fail "capacity '$scenario': errors '$errors' in: $row"
done
grep -qE "^\| C and C/2 .*hsm1 [0-9]+% \(capacity 67%\), hsm2 [0-9]+% \(33%\)" <<<"$out" || fail "no shares in the unequal row"
echo "compare.sh: every operation measured in all three modes, and the capacity scenarios"
