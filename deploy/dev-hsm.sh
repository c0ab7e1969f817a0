#!/usr/bin/env bash
# Simulated HSMs for development: SoftHSM2 tokens that the broker loads through the fault-injection
# PKCS#11 module (libhsmb-fault-pkcs11.so, a development stand-in for a real HSM outage). The module
# reads the control file $DIR/NAME.control on every call: "ok", "down" (no slots, every call
# CKR_DEVICE_ERROR: a crashed or unreachable HSM) or "hang" (every call blocks until the file
# changes: a hung HSM).
#
#   deploy/dev-hsm.sh init  NAME   create the token NAME: user PIN in $DIR/NAME.pin, SO PIN in
#                                  $DIR/NAME.so-pin (for hsm-broker --enroll), up
#   deploy/dev-hsm.sh kill  NAME   crash it: down                  start NAME: back up
#   deploy/dev-hsm.sh stop  NAME   hang it: calls block            cont  NAME: resume
#   deploy/dev-hsm.sh status       the state of every token
# DIR is $HSMB_DEV_DIR (default ./.quickstart).
set -euo pipefail
dir=${HSMB_DEV_DIR:-$PWD/.quickstart}
cmd=${1:-status}
name=${2:-}

need_name() {
  [[ -n $name ]] || { echo "usage: $0 $cmd NAME" >&2; exit 2; }
  [[ $cmd == init || -f $dir/$name.conf ]] || { echo "$0: no token $name in $dir (run init first)" >&2; exit 2; }
}
random_hex() { head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
# Write-then-rename: the module never reads a half-written state.
set_state() { printf '%s\n' "$1" > "$dir/$name.control.tmp"; mv -f "$dir/$name.control.tmp" "$dir/$name.control"; }
has_token() { SOFTHSM2_CONF=$dir/$name.conf softhsm2-util --show-slots 2>/dev/null | grep -q "Label: *$name *$"; }

# softhsm2-util takes PINs on its command line (visible to every local user) or from a terminal:
# give it one (script(1)), fed from the PIN files; the echo goes nowhere.
init_token() {
  local so user
  so=$(cat "$dir/$name.so-pin") user=$(cat "$dir/$name.pin")
  printf '%s\n%s\n%s\n%s\n' "$so" "$so" "$user" "$user" |
    SOFTHSM2_CONF=$dir/$name.conf script -qec "softhsm2-util --init-token --free --label $name" /dev/null >/dev/null
  has_token || { echo "$0: softhsm2-util could not create token $name" >&2; exit 1; }
}

case $cmd in
  init)
    need_name
    mkdir -p "$dir/$name-tokens"
    chmod 700 "$dir"
    printf 'directories.tokendir = %s/%s-tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$dir" "$name" > "$dir/$name.conf"
    if has_token; then
      [[ -f $dir/$name.so-pin ]] || {
        echo "$0: token $name in $dir has no SO PIN file (made by an older dev-hsm.sh); remove $dir to start afresh" >&2
        exit 1
      }
    else
      (umask 077; random_hex > "$dir/$name.pin"; random_hex > "$dir/$name.so-pin")
      init_token
    fi
    set_state ok ;;
  start|cont) need_name; set_state ok; echo "$name up" ;;
  kill) need_name; set_state down; echo "$name down (unreachable: no slots, CKR_DEVICE_ERROR)" ;;
  stop) need_name; set_state hang; echo "$name hung (every call blocks until: cont $name)" ;;
  status)
    for f in "$dir"/*.control; do
      [[ -e $f ]] || continue
      state=$(cat "$f")
      case $state in ok) state=up ;; hang) state=hung ;; esac
      echo "$(basename "$f" .control) $state"
    done ;;
  *) sed -n '2,13p' "$0"; exit 2 ;;
esac
