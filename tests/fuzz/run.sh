#!/bin/sh
# Builds the libFuzzer targets (if needed) and runs each over a copy of its seed corpus.
#
# Each runs for SECONDS (default 20); prints executions and coverage per target and exits non-zero
# on any crash.
#
#   tests/fuzz/run.sh                 # every target the build has, 20 s each
#   tests/fuzz/run.sh 600 fuzz_reply  # one target, 10 minutes
#
# Environment:
#   BUILD_DIR=build-fuzz   build directory (configured here with clang if it does not exist)
#   FUZZ_JOBS=1            targets run at once
#   FUZZ_WORK_DIR=...      where corpora and crash files go (default: a new directory in /tmp)
#   FUZZ_ARGS=...          extra libFuzzer flags, e.g. "-dict=... -use_value_profile=1"
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
seconds=${1:-20}
[ $# -gt 0 ] && shift
targets=${*:-}
build=${BUILD_DIR:-$root/build-fuzz}
case $build in /*) ;; *) build=$root/$build ;; esac
jobs=${FUZZ_JOBS:-1}
work=${FUZZ_WORK_DIR:-$(mktemp -d /tmp/readyns-fuzz.XXXXXX)}
mkdir -p "$work"

if [ ! -f "$build/build.ninja" ]; then
  echo "== configuring $build (clang, ASan+UBSan, libFuzzer instrumentation)"
  (cd "$root" && CC=clang CXX=clang++ meson setup "$build" -Dfuzz=true \
    -Db_sanitize=address,undefined -Db_lundef=false \
    -Dcpp_args='-fsanitize=fuzzer-no-link -D_GLIBCXX_ASSERTIONS' -Dintegration=false)
fi
if ! grep -q "tests/fuzz/fuzz_query:" "$build/build.ninja"; then
  echo "run.sh: $build has no fuzz targets: configure it with -Dfuzz=true (and clang), and make" >&2
  echo "        sure tests/meson.build has: if get_option('fuzz') subdir('fuzz') endif" >&2
  exit 2
fi
if [ -z "$targets" ]; then
  # Every fuzzer the build defines (fuzz_http only where src/admin and http-parser exist).
  targets=$(sed -n 's|^build tests/fuzz/\(fuzz_[a-z_]*\): .*|\1|p' "$build/build.ninja" | sort -u)
fi
outputs=""
for t in $targets; do outputs="$outputs tests/fuzz/$t"; done
echo "== building:$outputs"
# Only the fuzzers: all a run needs, and much quicker than the whole tree.
# shellcheck disable=SC2086  # one word per target
ninja -C "$build" $outputs >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 2; }

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

run_one() {
  t=$1
  dir=$work/$t
  rm -rf "$dir"
  mkdir -p "$dir/corpus"
  # A copy: what the fuzzer adds stays out of the repository.
  if [ -d "$here/corpus/$t" ]; then cp "$here/corpus/$t"/* "$dir/corpus/"; fi
  # Per-target flags: a dictionary, and whatever tests/fuzz/<target>.options holds.
  extra=""
  [ -f "$here/$t.dict" ] && extra="-dict=$here/$t.dict"
  [ -f "$here/$t.options" ] && extra="$extra $(cat "$here/$t.options")"
  rc=0
  # shellcheck disable=SC2086
  "$build/tests/fuzz/$t" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 \
    -print_final_stats=1 -artifact_prefix="$dir/" $extra ${FUZZ_ARGS:-} "$dir/corpus" \
    >"$dir/log" 2>&1 || rc=$?
  echo "$rc" >"$dir/rc"
}

echo "== fuzzing $seconds s per target, $jobs at a time, in $work"
running=0
for t in $targets; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait
    running=0
  fi
done
wait

failed=0
printf '%-20s %-7s %12s %9s %7s %8s %6s\n' target result execs exec/s cov features corpus
for t in $targets; do
  dir=$work/$t
  rc=$(cat "$dir/rc" 2>/dev/null || echo 99)
  crashes=""
  for f in "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-* "$dir"/slow-unit-*; do
    if [ -e "$f" ]; then crashes="$crashes $(basename "$f")"; fi
  done
  result=ok
  if [ "$rc" != 0 ] || [ -n "$crashes" ]; then
    result=CRASH
    failed=1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -n 1)
  last=$(grep -E '^#[0-9]+' "$dir/log" | tail -n 1)
  cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
  ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
  corp=$(echo "$last" | sed -n 's/.*corp: \([0-9]*\).*/\1/p')
  printf '%-20s %-7s %12s %9s %7s %8s %6s\n' "$t" "$result" "${execs:--}" "${rate:--}" \
    "${cov:--}" "${ft:--}" "${corp:--}"
  if [ "$result" = CRASH ]; then
    for c in $crashes; do echo "   reproducer: $dir/$c  ($build/tests/fuzz/$t $dir/$c)"; done
    grep -E 'ERROR:|FUZZ_CHECK|runtime error|SUMMARY' "$dir/log" | head -n 5 | sed 's/^/   /'
    echo "   log: $dir/log"
  fi
done
exit $failed
