#!/bin/sh
# Runs the libFuzzer targets built by `make fuzz-build` (build/fuzz/fuzz_<name>)
# for FUZZ_SECONDS each, FUZZ_JOBS at a time.  Each target starts from its
# seed corpus spec/fuzz/corpus/<name> (read only) and a working corpus
# build/fuzz/corpus/<name> (new inputs go there); crashes, leaks and
# timeouts are written to build/fuzz/crashes/<name>/.  Exit status: 0 when
# every target ran its time without a finding.
#   sh tools/fuzz.sh [name...]          (default: json url event http ws httpreq wsclient media)
set -u
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-2}
NAMES=${*:-json url event http ws httpreq wsclient media}
mkdir -p build/fuzz/logs

run_one() {
  name=$1
  bin=build/fuzz/fuzz_$name
  [ -x "$bin" ] || { echo "fuzz: $bin missing (make fuzz-build)"; return 1; }
  mkdir -p build/fuzz/corpus/$name build/fuzz/crashes/$name
  log=build/fuzz/logs/$name.log
  # -rss_limit_mb: the targets keep one Lua state; -timeout: one input, s
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
      -print_final_stats=1 -artifact_prefix=build/fuzz/crashes/$name/ \
      build/fuzz/corpus/$name spec/fuzz/corpus/$name >"$log" 2>&1
  rc=$?
  stats=$(grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$log" | tr '\n' ' ')
  if [ $rc -eq 0 ]; then
    echo "fuzz $name: ok ($stats)"
  else
    echo "fuzz $name: FAILED (exit $rc), see $log:"
    grep -E 'ERROR|SUMMARY|fuzz:|Test unit written' "$log" | head -20
  fi
  return $rc
}

status=0
pids=""
running=0
for n in $NAMES; do
  run_one "$n" > build/fuzz/logs/$n.result 2>&1 &
  pids="$pids $!:$n"
  running=$((running + 1))
  if [ $running -ge "$JOBS" ]; then
    wait "$(echo "$pids" | awk '{print $1}' | cut -d: -f1)" || status=1
    cat build/fuzz/logs/$(echo "$pids" | awk '{print $1}' | cut -d: -f2).result
    pids=$(echo "$pids" | awk '{$1=""; print}')
    running=$((running - 1))
  fi
done
for p in $pids; do
  wait "${p%%:*}" || status=1
  cat build/fuzz/logs/${p#*:}.result
done
exit $status
