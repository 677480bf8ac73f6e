#!/usr/bin/env bash
# Diff benchmark: builds doppel-bench-diff, runs it, and replaces the "Diff" section of
# bench/RESULTS.md (between <!-- diff:begin --> and <!-- diff:end -->) with its report.
# Arguments are passed to the benchmark (e.g. --n 20000 --seconds 2 --repeat 3).
#
# Environment: BUILD_DIR (default build), BUILD_TYPE (used only when BUILD_DIR is not yet
# configured; default Release), SKIP_BUILD=1, NO_RESULTS=1 (print only).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
build_dir=${BUILD_DIR:-build}
results=bench/RESULTS.md

if [[ -z "${SKIP_BUILD:-}" ]]; then
  if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
    cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" >/dev/null
  fi
  cmake --build "$build_dir" -j2 --target doppel-bench-diff
fi

report=$(mktemp)
trap 'rm -f "$report" "$report.section" "$report.new"' EXIT
uptime_before=$(uptime)
"$build_dir/bench/doppel-bench-diff" "$@" >"$report"
uptime_after=$(uptime)

if [[ -n "${NO_RESULTS:-}" ]]; then
  cat "$report"
  exit 0
fi

{
  echo "<!-- diff:begin -->"
  echo "## Diff"
  echo
  echo "Run on $(date -u +%Y-%m-%dT%H:%M:%SZ) at commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo 'none') with \`bench/diff.sh${*:+ $*}\` (build dir \`$build_dir\`)."
  echo
  cat "$report"
  echo
  echo "\`uptime\` before: \`${uptime_before# }\`; after: \`${uptime_after# }\`."
  echo "<!-- diff:end -->"
} >"$report.section"

. "$root/bench/results_section.sh"
replace_results_section diff "$report.section" "$results"

cat "$report"
echo "updated $results" >&2
