#!/usr/bin/env bash
# Simulated network HSMs for development: SoftHSM2 tokens served by `p11-kit server` on Unix
# sockets, reached by the broker through p11-kit-client.so, as real network HSMs would be.
#
#   deploy/dev-hsm.sh init  NAME   create the token NAME (PIN in $DIR/NAME.pin)
#   deploy/dev-hsm.sh start NAME   serve it on $DIR/NAME.sock (in its own process group)
#   deploy/dev-hsm.sh kill  NAME   crash it: SIGKILL the server and every connection it forked
#   deploy/dev-hsm.sh stop  NAME   hang it: SIGSTOP (calls block)      cont NAME: SIGCONT
#   deploy/dev-hsm.sh status       which are running
# DIR is $HSMB_DEV_DIR (default ./.quickstart).
set -euo pipefail
dir=${HSMB_DEV_DIR:-$PWD/.quickstart}
cmd=${1:-status}
name=${2:-}
conf=$dir/$name.conf
pidfile=$dir/$name.pid

need_name() { [[ -n $name ]] || { echo "usage: $0 $cmd NAME" >&2; exit 2; }; }
pgid() { [[ -f $pidfile ]] && cat "$pidfile"; }
alive() { local p; p=$(pgid) && kill -0 "$p" 2>/dev/null; }
random_hex() { head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

case $cmd in
  init)
    need_name
    mkdir -p "$dir/$name-tokens"
    chmod 700 "$dir"
    printf 'directories.tokendir = %s/%s-tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$dir" "$name" > "$conf"
    [[ -f $dir/$name.pin ]] || (umask 077; random_hex > "$dir/$name.pin")
    if ! SOFTHSM2_CONF=$conf softhsm2-util --show-slots 2>/dev/null | grep -q "Label:.*$name"; then
      SOFTHSM2_CONF=$conf softhsm2-util --init-token --free --label "$name" --pin "$(cat "$dir/$name.pin")" \
        --so-pin "$(random_hex)" >/dev/null
    fi ;;
  start)
    need_name
    alive && { echo "$name is already running (process group $(pgid))"; exit 0; }
    rm -f "$dir/$name.sock"
    SOFTHSM2_CONF=$conf setsid p11-kit server -f -n "$dir/$name.sock" --provider /usr/lib/softhsm/libsofthsm2.so \
      "pkcs11:token=$name" >>"$dir/$name.log" 2>&1 < /dev/null &
    echo $! > "$pidfile"
    for _ in $(seq 100); do [[ -S $dir/$name.sock ]] && break; sleep 0.05; done
    echo "$name serving on $dir/$name.sock (process group $(pgid))" ;;
  kill) need_name; alive && kill -KILL -- "-$(pgid)"; rm -f "$pidfile"; echo "$name crashed" ;;
  stop) need_name; alive && kill -STOP -- "-$(pgid)"; echo "$name hung" ;;
  cont) need_name; alive && kill -CONT -- "-$(pgid)"; echo "$name resumed" ;;
  status)
    for f in "$dir"/*.conf; do
      [[ -e $f ]] || continue
      name=$(basename "$f" .conf); pidfile=$dir/$name.pid
      if alive; then echo "$name running (process group $(pgid))"; else echo "$name stopped"; fi
    done ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
