#!/usr/bin/env bash
# Prints the summaries that run_fuzzer.sh left under OUT_ROOT/<target>/summary as a table:
#   fuzz_table.sh [--markdown] OUT_ROOT
# "cov" is libFuzzer's edge coverage after loading the corpus -> at the end; "new" is the
# number of inputs that added coverage during the run.
set -euo pipefail
format='%-24s %12s %9s %7s %15s %6s %8s\n'
if [ "${1:-}" = "--markdown" ]; then
  format='| %s | %s | %s | %s | %s | %s | %s |\n'
  shift
fi
root=$1
# shellcheck disable=SC2059
printf "$format" target execs exec/s seconds cov new crashes
# shellcheck disable=SC2059
[[ "$format" == "|"* ]] && printf "$format" --- ---: ---: ---: ---: ---: ---:
for f in "$root"/*/summary; do
  [ -f "$f" ] || continue
  # shellcheck disable=SC1090
  ( eval "$(tr ' ' '\n' <"$f" | sed 's/^/local_/')"
    # shellcheck disable=SC2059
    printf "$format" "$local_target" "$local_execs" \
      "$local_exec_per_s" "$local_seconds" "$local_cov_start->$local_cov_end" \
      "$local_new_units" "$local_crashes" )
done
