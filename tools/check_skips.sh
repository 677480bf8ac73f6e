#!/usr/bin/env bash
# check_skips.sh JUNIT ALLOWLIST: fails (exit 1) when a test in JUNIT (written by
# `ctest --output-junit`) did not run and is not on ALLOWLIST. ctest passes a run whose tests
# were skipped: a GTEST_SKIP, a test suite whose SetUpTestSuite failed (GoogleTest then skips
# its tests), a disabled test. A test that did not run tested nothing, so tools/test.sh fails
# the run unless the test is listed, with the reason, in ALLOWLIST (tests/skip-allowlist.txt).
#
# ALLOWLIST: one test per line, "CTEST_NAME REASON...", as `ctest -N` names the test; blank
# lines and lines starting with '#' are ignored. An entry without a reason is an error.
set -euo pipefail
if [[ $# -ne 2 ]]; then
  echo "usage: tools/check_skips.sh JUNIT_FILE ALLOWLIST" >&2
  exit 2
fi
junit=$1 allowlist=$2
if [[ ! -s "$junit" ]]; then
  echo "check_skips: no test results in '$junit' (ctest --output-junit wrote nothing)" >&2
  exit 2
fi

declare -A allowed=()
lineno=0
while IFS= read -r line || [[ -n "$line" ]]; do
  lineno=$((lineno + 1))
  [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
  read -r name reason <<<"$line"
  if [[ -z "${reason:-}" ]]; then
    echo "$allowlist:$lineno: '$name' has no reason: write why it may skip after the name" >&2
    exit 2
  fi
  allowed[$name]=1
done <"$allowlist"

# ctest writes one <testcase ...> line per test; status "notrun" (skipped, or no executable)
# or "disabled" means it did not run. Names are XML-escaped.
unescape() {
  local s=$1
  s=${s//&quot;/\"}; s=${s//&apos;/\'}; s=${s//&lt;/<}; s=${s//&gt;/>}; s=${s//&amp;/&}
  printf '%s' "$s"
}
bad=()
listed=0
while IFS=$'\t' read -r name status; do
  name=$(unescape "$name")
  if [[ -n "${allowed[$name]:-}" ]]; then
    listed=$((listed + 1))
  else
    bad+=("$name ($status)")
  fi
done < <(sed -n \
  's/.*<testcase name="\([^"]*\)".* status="\(notrun\|disabled\)".*/\1\t\2/p' "$junit")

if ((${#bad[@]})); then
  echo >&2
  echo "${#bad[@]} test(s) did not run (skipped or disabled) and are not on $allowlist:" >&2
  printf '  %s\n' "${bad[@]}" >&2
  echo "A test that did not run tested nothing, so the run fails. Make it run (a failed" >&2
  echo "setup must be a test failure, not a skip), or add it to $allowlist with the reason." >&2
  exit 1
fi
((listed == 0)) || echo "check_skips: $listed allow-listed test(s) did not run ($allowlist)"
exit 0
