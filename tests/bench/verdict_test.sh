#!/usr/bin/env bash
# Tests bench/verdict.sh: a figure that was not measured ("?", empty, "n/a") gives "NOT
# measured" and is passed on as "?" by the arithmetic, never read as 0 or compared as a
# string (awk's "?" >= 1.0 is true, which once printed "met" for a failed measurement). Also
# checks that no bench script words a verdict itself. Run by ctest (tests/bench/CMakeLists.txt).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/bench/verdict.sh"

failures=0
expect() {  # WANT GOT DESCRIPTION
  if [[ "$1" != "$2" ]]; then
    echo "FAIL: $3: got '$2', want '$1'" >&2
    failures=$((failures + 1))
  fi
}

for missing in '?' '' 'n/a' 'nan' 'inf' '1.2.3' '12 ms'; do
  expect "NOT measured" "$(bench_verdict "$missing" ">=" 1.0)" "verdict of '$missing' >= 1.0"
  expect "NOT measured" "$(bench_verdict "$missing" "<=" 0.3 ms)" "verdict of '$missing' <= 0.3"
  expect "?" "$(bench_ratio "$missing" 1000)" "ratio '$missing' / 1000"
  expect "?" "$(bench_ratio 1000 "$missing")" "ratio 1000 / '$missing'"
  expect "?" "$(bench_calc %.3f 'a - b' a="$missing" b=1)" "calc '$missing' - 1"
  if [[ -n "$missing" ]]; then
    expect "?" "$(bench_mean "1.0 $missing 2.0")" "mean of a list with '$missing'"
  fi
done

expect "met" "$(bench_verdict 1.0 ">=" 1.0)" "equal, at least"
expect "met (5 % above the target)" "$(bench_verdict 1.05 ">=" 1.0)" "above, at least"
expect "NOT met — 10 % short of the target" "$(bench_verdict 0.9 ">=" 1.0)" "short"
expect "NOT met — 100 % short of the target" "$(bench_verdict 0 ">=" 0.8)" "zero is a number"
expect "met" "$(bench_verdict 0.3 "<=" 0.3 ms)" "equal, at most"
expect "met" "$(bench_verdict -0.05 "<=" 0.3 ms)" "negative, at most"
expect "NOT met — 0.12 ms over the 0.3 ms target" "$(bench_verdict 0.42 "<=" 0.3 ms)" "over"
expect "NOT met — 1.5 MB over the 150 MB target" "$(bench_verdict 151.5 "<=" 150 MB)" "over, MB"
expect "met" "$(bench_verdict 1e-3 "<=" 2 ms)" "exponent"

expect "2.50" "$(bench_ratio 5 2)" "ratio"
expect "2.500" "$(bench_ratio 5 2 %.3f)" "ratio, format"
expect "?" "$(bench_ratio 5 0)" "ratio by zero"
expect "?" "$(bench_ratio 0 0)" "ratio 0 / 0"
expect "1.000" "$(bench_calc %.3f '(a - b) / n' a=3 b=1 n=2)" "calc"
expect "-0.50" "$(bench_calc %+.2f '(a - r) / r * 100' a=1990 r=2000)" "calc, sign"
expect "2.000" "$(bench_mean "1 2 3")" "mean"
expect "?" "$(bench_mean "")" "mean of nothing"

if bench_verdict 1 "=>" 1 >/dev/null 2>&1; then
  echo "FAIL: a bad operator is accepted" >&2
  failures=$((failures + 1))
fi

# Every verdict in the bench scripts goes through bench_verdict: no script prints "met" or
# "NOT met" itself, nor defines its own ratio or verdict function.
if grep -nE '"met|NOT met|^ *(verdict|ratio)\(\)' "$root"/bench/*.sh |
  grep -v '^[^:]*/verdict\.sh:'; then
  echo "FAIL: the lines above word a verdict or define a ratio outside bench/verdict.sh" >&2
  failures=$((failures + 1))
fi

if ((failures)); then
  echo "$failures failures" >&2
  exit 1
fi
echo "bench/verdict.sh: all checks passed"
