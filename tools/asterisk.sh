#!/usr/bin/env bash
# Starts and stops a real Asterisk for the real-server specs (spec/asterisk/),
# from the prebuilt bundles in ../shared/asterisk (development and CI only;
# never needed to build, install or run ari-lua).
#
#   bash tools/asterisk.sh dir                      -> the bundle directory, or exit 3 when absent
#   bash tools/asterisk.sh start VERSION [CONFDIR]  -> prints "URL DIR" (a free loopback port)
#   bash tools/asterisk.sh restart DIR              -> same version, port and config again
#   bash tools/asterisk.sh stop DIR
#
# ARI_SHARED_DIR overrides where shared/ is (default: ../shared beside the repo).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${ARI_SHARED_DIR:-$ROOT/../shared}
BUNDLE=$SHARED/asterisk

bundle() {
  [ -x "$BUNDLE/start.sh" ] || [ -f "$BUNDLE/start.sh" ] || exit 3
  (cd "$BUNDLE" && pwd)
}

# a loopback TCP port nobody listens on (start.sh refuses a port that answers)
free_port() {
  i=0
  while [ $i -lt 50 ]; do
    p=$(( ( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 20000 ) + 21000 ))
    if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo $p; return 0; fi
    i=$((i + 1))
  done
  return 1
}

cmd=${1:-}
case $cmd in
  dir) bundle ;;
  start)
    b=$(bundle)
    v=${2:?version}
    conf=${3:-}
    tries=0
    while :; do
      port=$(free_port)
      dir=$(mktemp -d "${TMPDIR:-/tmp}/ari-lua-ast-$v.XXXXXX")
      set -- --version "$v" --port "$port" --dir "$dir"
      [ -n "$conf" ] && set -- "$@" --conf "$conf"
      if sh "$b/start.sh" "$@" >"$dir.log" 2>&1; then
        printf '%s %s %s\n' "$v" "$port" "$conf" > "$dir/.ari-lua-instance"
        rm -f "$dir.log"
        echo "http://127.0.0.1:$port $dir"
        exit 0
      fi
      tries=$((tries + 1))
      if [ $tries -ge 3 ]; then cat "$dir.log" >&2; rm -f "$dir.log"; exit 1; fi
      rm -f "$dir.log"; rm -rf "$dir"
    done ;;
  restart)
    b=$(bundle)
    dir=${2:?dir}
    read -r v port conf < "$dir/.ari-lua-instance"
    sh "$b/stop.sh" --dir "$dir" >/dev/null 2>&1 || true
    set -- --version "$v" --port "$port" --dir "$dir"
    [ -n "${conf:-}" ] && set -- "$@" --conf "$conf"
    # start.sh recreates DIR only when empty or made by it: it made it
    sh "$b/start.sh" "$@" >/dev/null
    printf '%s %s %s\n' "$v" "$port" "${conf:-}" > "$dir/.ari-lua-instance" ;;
  stop)
    b=$(bundle)
    dir=${2:?dir}
    sh "$b/stop.sh" --dir "$dir" >/dev/null 2>&1 || true
    rm -rf "$dir" ;;
  *) echo "usage: $0 dir | start VERSION [CONFDIR] | restart DIR | stop DIR" >&2; exit 2 ;;
esac
