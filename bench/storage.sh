#!/usr/bin/env bash
# Storage benchmark: builds doppel-bench-storage, runs it, and replaces the "Storage" section
# of bench/RESULTS.md (between <!-- storage:begin --> and <!-- storage:end -->) with its
# report. Arguments are passed to the benchmark (e.g. --n 100000 --repeat 3 --levels 3,1).
#
# Environment: BUILD_DIR (default build), BUILD_TYPE (used only when BUILD_DIR is not yet
# configured; default Release). Build dependencies (compiler, CMake, RocksDB, ...) are
# installed by tools/test.sh; this script only adds what the comparison needs (gzip, zstd).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
build_dir=${BUILD_DIR:-build}
results=bench/RESULTS.md

missing=()
command -v gzip >/dev/null 2>&1 || missing+=(gzip)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
if ((${#missing[@]})); then
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo=sudo; fi
  echo "installing ${missing[*]}..." >&2
  $sudo apt-get update
  $sudo apt-get install -y "${missing[@]}"
fi

if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" >/dev/null
fi
cmake --build "$build_dir" -j2 --target doppel-bench-storage

report=$(mktemp)
trap 'rm -f "$report" "$report.section" "$report.new"' EXIT
"$build_dir/bench/doppel-bench-storage" "$@" >"$report"

{
  echo "<!-- storage:begin -->"
  echo "## Storage"
  echo
  echo "Run on $(date -u +%Y-%m-%dT%H:%M:%SZ) at commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo 'none') with \`bench/storage.sh${*:+ $*}\`."
  echo
  cat "$report"
  echo "<!-- storage:end -->"
} >"$report.section"

. "$root/bench/results_section.sh"
replace_results_section storage "$report.section" "$results"

cat "$report"
echo "updated $results" >&2
