#!/usr/bin/env bash
# Installs what is missing, builds doppel into build/ and runs the whole test suite.
# Re-running is incremental. Options:
#   --sanitize   build into build-asan/ (clang, AddressSanitizer + UBSan, libFuzzer's coverage
#                instrumentation) and run the suite there
#   -R REGEX     only run tests whose name matches (passed to ctest)
#   --fuzz [SECONDS]  build the libFuzzer targets in the same build-asan/ and run each for
#                SECONDS (default 30); prints execs per target (tests/fuzz/README.md). After
#                --sanitize this builds nothing new: CI's two passes share one build.
# A test that did not run (skipped or disabled) fails the run unless tests/skip-allowlist.txt
# lists it with the reason (tools/check_skips.sh); ctest alone counts a skip as a pass.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/deps.sh

build_dir=build
ctest_args=()
fuzz_seconds=""
sanitize=""

# run_ctest BUILD_DIR ARGS...: ctest, then the skip check on its JUnit output; the first
# failure's exit code.
run_ctest() {
  local dir=$1 rc=0
  shift
  local junit=$PWD/$dir/ctest-junit.xml
  rm -f "$junit"
  ctest --test-dir "$dir" --output-junit "$junit" "$@" || rc=$?
  tools/check_skips.sh "$junit" tests/skip-allowlist.txt || { ((rc)) || rc=1; }
  return $rc
}

while [ $# -gt 0 ]; do
  case "$1" in
    --sanitize)
      sanitize=1
      # The timed fuzzing tests belong to --fuzz; the regression runners stay in the suite.
      ctest_args+=(-LE '^fuzz$')
      # Under ASan a process is 2-5x slower, and a few integration tests that race a signal
      # or a kill against a running replay can lose the race on a loaded 2-core machine: a
      # failed test is run once more. A deterministic sanitizer finding aborts the process in
      # both runs; the log keeps the first run's report either way.
      ctest_args+=(--repeat until-pass:2) ;;
    -R) ctest_args+=(-R "$2"); shift ;;
    --fuzz)
      fuzz_seconds=30
      if [[ "${2:-}" =~ ^[0-9]+$ ]]; then fuzz_seconds=$2; shift; fi ;;
    *) echo "usage: tools/test.sh [--sanitize | --fuzz [SECONDS]] [-R REGEX]" >&2; exit 2 ;;
  esac
  shift
done

if [ -n "$sanitize$fuzz_seconds" ]; then
  build_dir=build-asan
  doppel_configure_sanitize_build ${fuzz_seconds:+-DDOPPEL_FUZZ_SECONDS="$fuzz_seconds"}
fi

if [ -n "$fuzz_seconds" ]; then
  start=$(date +%s)
  # Only the fuzz targets and the libraries they link.
  cmake --build "$build_dir" -j2 --target doppel_fuzz
  built=$(date +%s)
  # Two targets at a time: a libFuzzer process uses one core, so each still has a core of
  # its own and the exec counts stay comparable, and the pass takes half the time.
  rc=0
  rm -rf "$build_dir/fuzz-out"
  run_ctest "$build_dir" -L '^fuzz$' -j2 --no-tests=error --output-on-failure "${ctest_args[@]}" || rc=$?
  echo "fuzz build: $((built - start)) s, fuzzing: $(( $(date +%s) - built )) s"
  tests/fuzz/fuzz_table.sh "$build_dir/fuzz-out"
  exit $rc
fi

# nginx and wrk are test peers for integration tests and benchmarks; curl runs the commands
# `doppel export --format curl` writes (tests/integration/interop_cli_test.cc).
doppel_install_deps nginx wrk zstd curl
[ -n "$sanitize" ] || cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
start=$(date +%s)
cmake --build "$build_dir" -j2
built=$(date +%s)
rc=0
run_ctest "$build_dir" --output-on-failure -j2 "${ctest_args[@]}" || rc=$?
echo "build ($build_dir): $((built - start)) s, suite: $(($(date +%s) - built)) s"
exit $rc
