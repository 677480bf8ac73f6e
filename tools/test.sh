#!/usr/bin/env bash
# Installs what is missing, builds doppel into build/ and runs the whole test suite.
# Re-running is incremental. Options:
#   --sanitize   build into build-asan/ with AddressSanitizer + UBSan and run the suite there
#   -R REGEX     only run tests whose name matches (passed to ctest)
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/deps.sh

build_dir=build
cmake_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
ctest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --sanitize) build_dir=build-asan; cmake_args=(-DCMAKE_BUILD_TYPE=Debug -DDOPPEL_SANITIZE=ON) ;;
    -R) ctest_args+=(-R "$2"); shift ;;
    *) echo "usage: tools/test.sh [--sanitize] [-R REGEX]" >&2; exit 2 ;;
  esac
  shift
done

# nginx and wrk are test peers for integration tests and benchmarks.
doppel_install_deps nginx wrk zstd
cmake -S . -B "$build_dir" "${cmake_args[@]}" >/dev/null
cmake --build "$build_dir" -j2
ctest --test-dir "$build_dir" --output-on-failure -j2 "${ctest_args[@]}"
