#!/bin/sh
# make soak: the long load runs whose figures are in docs/reliability.md.
#   1. concurrent: spec/load_spec.lua with SOAK_CONCURRENT calls at once
#      (simulator in the same process; no lost events, every sequence
#      complete, RSS printed), then 1,000 calls one at a time.
#   2. sequential: tools/soak_sim.lua (a separate simulator process, no
#      transcript, speed SOAK_SPEED) places up to SOAK_SEQUENTIAL calls,
#      SOAK_SEQ_CONCURRENCY at a time, for at most SOAK_SECONDS;
#      tools/soak_client.lua answers them, RSS printed every SOAK_SAMPLE s.
#      The client must have handled exactly the events the simulator sent,
#      and every call must be complete.
#   3. valgrind: the same as 2 with the client under valgrind for
#      SOAK_VALGRIND_SECONDS: no definite leak, no invalid access.
# SOAK_STEPS picks steps (default "concurrent sequential valgrind").
# Output: the console, and build/soak/<step>.log.
set -e
BIN=${ARI_LUA_BIN:-./ari-lua}
CONCURRENT=${SOAK_CONCURRENT:-10000}
SEQUENTIAL=${SOAK_SEQUENTIAL:-1000000}
SECONDS_SEQ=${SOAK_SECONDS:-1200}
SEQ_CONC=${SOAK_SEQ_CONCURRENCY:-1}
VG_SECONDS=${SOAK_VALGRIND_SECONDS:-600}
SPEED=${SOAK_SPEED:-1000}
SAMPLE=${SOAK_SAMPLE:-60}
STEPS=${SOAK_STEPS:-"concurrent sequential valgrind"}
OUT=build/soak
mkdir -p "$OUT"

field() { sed -n "s/.*[ ]$2=\([^ ]*\).*/\1/p" "$1" | tail -1; }

# run_seq LABEL SECONDS SAMPLE [client prefix...]
run_seq() {
  label=$1; secs=$2; sample=$3; shift 3
  log="$OUT/$label.log"
  "$BIN" tools/soak_sim.lua 0 "$SPEED" "$SEQUENTIAL" "$SEQ_CONC" "$secs" > "$OUT/$label.sim" 2> "$OUT/$label.sim.err" &
  simpid=$!
  i=0
  while ! grep -q listening "$OUT/$label.sim" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 100 ] && { echo "soak: simulator did not start"; kill $simpid; exit 1; }
    sleep 0.1
  done
  url=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$OUT/$label.sim")
  echo "== $label: up to $SEQUENTIAL calls, $SEQ_CONC at a time, at most $secs s (simulator $url, speed $SPEED)"
  { "$@" "$BIN" --url "$url" --user asterisk --password asterisk --log-level warn \
      tools/soak_client.lua "$SEQUENTIAL" "$secs" "$sample" 2>&1; echo $? > "$OUT/$label.rc"; } | tee "$log"
  rc=$(cat "$OUT/$label.rc")
  wait $simpid || true
  cat "$OUT/$label.sim"
  calls=$(field "$log" calls); events=$(field "$log" events)
  scalls=$(sed -n 's/.*soak_sim calls=\([0-9]*\).*/\1/p' "$OUT/$label.sim")
  sevents=$(sed -n 's/.*soak_sim .*events=\([0-9]*\).*/\1/p' "$OUT/$label.sim")
  ok=1
  [ -n "$calls" ] && [ "$calls" -gt 0 ] || ok=0
  [ "$calls" = "$scalls" ] || ok=0
  [ "$events" = "$sevents" ] || ok=0
  for k in normal digits complete; do [ "$(field "$log" $k)" = "$calls" ] || ok=0; done
  for k in bad left objs; do [ "$(field "$log" $k)" = "0" ] || ok=0; done
  if [ $ok = 1 ] && [ $rc = 0 ]; then
    echo "== $label: OK ($calls calls, client events $events = simulator events $sevents)"
  else
    echo "== $label: FAILED (rc $rc; client calls $calls events $events, simulator calls $scalls events $sevents)"
    exit 1
  fi
}

for step in $STEPS; do
  case $step in
    concurrent)
      echo "== concurrent: $CONCURRENT calls at once (spec/load_spec.lua)"
      ARI_LOAD_CONCURRENT=$CONCURRENT ARI_LOAD_SEQUENTIAL=1000 \
        lua5.4 /usr/bin/busted -o TAP spec/load_spec.lua 2>&1 | tee "$OUT/concurrent.log"
      grep -q '^not ok' "$OUT/concurrent.log" && { echo "== concurrent: FAILED"; exit 1; }
      grep -q '^ok' "$OUT/concurrent.log" || { echo "== concurrent: FAILED"; exit 1; }
      ;;
    sequential) run_seq sequential "$SECONDS_SEQ" "$SAMPLE" ;;
    valgrind)
      run_seq valgrind "$VG_SECONDS" "$SAMPLE" valgrind --quiet --leak-check=full \
        --errors-for-leak-kinds=definite --error-exitcode=9 ;;
    *) echo "soak: unknown step $step"; exit 1 ;;
  esac
done
echo "soak: all steps passed"
