#!/usr/bin/env bash
# Prints the summaries that run_fuzzer.sh left under OUT_ROOT/<target>/summary as a table:
#   fuzz_table.sh OUT_ROOT
# "cov" is libFuzzer's edge coverage after loading the corpus -> at the end; "new" is the
# number of inputs that added coverage during the run.
set -euo pipefail
root=$1
printf '%-16s %12s %9s %7s %15s %6s %8s\n' target execs exec/s seconds cov new crashes
for f in "$root"/*/summary; do
  [ -f "$f" ] || continue
  # shellcheck disable=SC1090
  ( eval "$(tr ' ' '\n' <"$f" | sed 's/^/local_/')"
    printf '%-16s %12s %9s %7s %15s %6s %8s\n' "$local_target" "$local_execs" \
      "$local_exec_per_s" "$local_seconds" "$local_cov_start->$local_cov_end" \
      "$local_new_units" "$local_crashes" )
done
