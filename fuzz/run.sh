#!/usr/bin/env bash
# Builds the fuzz targets and runs each in turn for SECONDS (see fuzz/README.md).
#   fuzz/run.sh SECONDS [BUILD_DIR]        (make fuzz / make fuzz-smoke call this)
# FUZZ_TARGETS="name range" limits the run to those targets.
# Each target starts from its seed corpus fuzz/corpus/<t>/ (read only: new inputs go to
# BUILD_DIR/fuzz/scratch/<t>/, findings to BUILD_DIR/fuzz/artifacts/<t>/, the output to
# BUILD_DIR/fuzz/logs/<t>.log). Exits non-zero if any target found a crash, leak, timeout or OOM.
set -uo pipefail
SECONDS_PER_TARGET=${1:?usage: fuzz/run.sh SECONDS [BUILD_DIR]}
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${2:-$SRC/build-fuzz}
case $BUILD in /*) ;; *) BUILD=$SRC/$BUILD ;; esac
CC_FUZZ=${CC_FUZZ:-clang}

# clang must be able to link a libFuzzer binary; as root, install what is missing.
can_fuzz() {
  command -v "$CC_FUZZ" >/dev/null &&
    echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' |
      "$CC_FUZZ" -fsanitize=fuzzer,address,undefined -x c - -o /dev/null 2>/dev/null
}
if ! can_fuzz; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "fuzz: installing clang and its libFuzzer runtime" >&2
    "$SRC/scripts/apt-install.sh" clang libclang-rt-dev || true
  fi
  can_fuzz || { echo "fuzz: $CC_FUZZ cannot link -fsanitize=fuzzer (Debian: apt-get install clang libclang-rt-dev)" >&2; exit 2; }
fi
cmake -S "$SRC" -B "$BUILD" -DBERTH_FUZZ=ON -DCMAKE_C_COMPILER="$CC_FUZZ" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 2
cmake --build "$BUILD" --target fuzz_all -j "$(nproc)" >/dev/null || {
  cmake --build "$BUILD" --target fuzz_all -j 1 2>&1 | tail -30; exit 2; }

OUT=$BUILD/fuzz
mkdir -p "$OUT/logs"
targets=${FUZZ_TARGETS:-$(cd "$SRC/fuzz" && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//')}
failed=()
printf '%-10s %-7s %6s %6s %9s %8s %s\n' target result secs cov ft execs exec/s
for t in $targets; do
  bin=$OUT/fuzz_$t
  mkdir -p "$OUT/scratch/$t" "$OUT/artifacts/$t"
  dict=()
  [ -f "$SRC/fuzz/dict/$t.dict" ] && dict=(-dict="$SRC/fuzz/dict/$t.dict")
  log=$OUT/logs/$t.log
  start=$(date +%s)
  "$bin" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "${dict[@]}" -artifact_prefix="$OUT/artifacts/$t/" "$OUT/scratch/$t" "$SRC/fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  last=$(grep -E '(DONE|pulse|NEW|REDUCE|INITED) +cov:' "$log" | tail -1)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log")
  eps=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+).*/\1/p' "$log")
  result=ok
  [ $rc -ne 0 ] && { result=FAILED; failed+=("$t"); }
  printf '%-10s %-7s %6s %6s %6s %9s %8s\n' "$t" "$result" "$secs" "${cov:--}" "${ft:--}" "${execs:--}" "${eps:--}"
  if [ $rc -ne 0 ]; then
    echo "---- $t: exit $rc, last lines of $log ----"
    grep -vE '^(#[0-9]+|INFO:|stat::)' "$log" | tail -40
    ls "$OUT/artifacts/$t"/ 2>/dev/null | sed "s|^|  artifact: $OUT/artifacts/$t/|"
    echo "----"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}"
  exit 1
fi
echo "fuzz: all targets ok"
