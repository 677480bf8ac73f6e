#!/usr/bin/env bash
# Longer fuzzing than `tools/test.sh --fuzz`: builds the libFuzzer targets into build-asan/
# (clang, ASan + UBSan; the build tools/test.sh --sanitize and --fuzz use) and runs each for SECONDS (default 600), one after another, then
# prints target / execs / exec/s / coverage / new inputs / crashes. A crash does not stop
# the other targets; its input is in build-asan/fuzz-bench/<target>/artifacts/.
#   bench/fuzz.sh [SECONDS] [TARGET...]
# Environment: SKIP_BUILD=1 uses build-asan as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/deps.sh

seconds=600
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then seconds=$1; shift; fi
targets=("$@")
[ ${#targets[@]} -eq 0 ] &&
  targets=(envelope_decode bundle_reader envelope_json rules_loader json_diff http_request)

if [[ -z "${SKIP_BUILD:-}" ]]; then
  doppel_configure_sanitize_build
  cmake --build build-asan -j2 --target doppel_fuzz
fi

out=build-asan/fuzz-bench
rm -rf "$out"
failed=0
echo "fuzzing ${#targets[@]} targets for ${seconds} s each; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for t in "${targets[@]}"; do
  tests/fuzz/run_fuzzer.sh "build-asan/tests/fuzz/fuzz_$t" "$seconds" "$out/$t" \
    "tests/fuzz/corpus/$t" "tests/fuzz/regressions/$t" || failed=1
done
echo
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo none), $(nproc) cores," \
  "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
tests/fuzz/fuzz_table.sh "$out"
exit $failed
