#!/usr/bin/env bash
# Runs one libFuzzer target for a fixed time (the fuzz_<target> CTest tests, bench/fuzz.sh).
#   run_fuzzer.sh [--keep-corpus DIR] BINARY SECONDS OUT_DIR CORPUS_DIR... [-- EXTRA_LIBFUZZER_FLAGS...]
# New inputs go to OUT_DIR/corpus, or to DIR with --keep-corpus (a campaign's corpus kept
# between runs, bench/fuzz.sh): the first corpus libFuzzer is given, so the only one it
# writes to. The CORPUS_DIRs (the committed seeds and regressions) are read, never grown.
# A crash, leak, timeout or OOM input is saved in OUT_DIR/artifacts/ — add it under
# tests/fuzz/regressions/<target>/ once fixed. The full log is OUT_DIR/log; a one-line
# summary is printed and written to OUT_DIR/summary as key=value pairs.
set -uo pipefail
keep=""
if [ "${1:-}" = "--keep-corpus" ]; then keep=$2; shift 2; fi
bin=$1 seconds=$2 out=$3
shift 3
dirs=()
extra=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; extra=("$@"); break; fi
  [ -d "$1" ] && dirs+=("$1")
  shift
done
name=$(basename "$bin")
rm -rf "$out"
mkdir -p "$out/corpus" "$out/artifacts"
corpus=${keep:-$out/corpus}
mkdir -p "$corpus"

# Leak checks stay on (libFuzzer's per-input check needs ASan's LSan); symbolized traces.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# -malloc_limit_mb: no single allocation over 300 MB. The largest legitimate ones are the
# 256 MiB decode and record limits; anything bigger from an input of a few KB is a bug (a
# corrupt length field once made the bundle reader allocate 512 MB).
start=$(date +%s)
"$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=300 -timeout=10 \
  -print_final_stats=1 \
  -artifact_prefix="$out/artifacts/" "${extra[@]}" "$corpus" "${dirs[@]}" >"$out/log" 2>&1
rc=$?
elapsed=$(( $(date +%s) - start ))

stat() { sed -n "s/^stat::$1: *\([0-9]*\).*/\1/p" "$out/log" | tail -1; }
execs=$(stat number_of_executed_units)
rate=$(stat average_exec_per_sec)
new_units=$(stat new_units_added)
cov_start=$(sed -n 's/.*INITED cov: \([0-9]*\).*/\1/p' "$out/log" | head -1)
cov_end=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' "$out/log" | tail -1)
crashes=$(find "$out/artifacts" -type f | wc -l)
summary="target=${name#fuzz_} execs=${execs:-0} exec_per_s=${rate:-0} seconds=$elapsed"
summary+=" cov_start=${cov_start:-0} cov_end=${cov_end:-0} new_units=${new_units:-0}"
summary+=" crashes=$crashes exit=$rc"
echo "$summary" | tee "$out/summary"
if [ $rc -ne 0 ] || [ "$crashes" -ne 0 ]; then
  echo "---- $name failed (exit $rc); last 60 lines of $out/log:"
  tail -60 "$out/log"
  find "$out/artifacts" -type f | sed 's/^/artifact: /'
  exit 1
fi
