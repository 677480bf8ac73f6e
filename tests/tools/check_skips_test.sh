#!/usr/bin/env bash
# Tests tools/check_skips.sh on ctest JUnit files: a skipped or disabled test fails the check
# unless allow-listed with a reason. Run by ctest (tests/tools/CMakeLists.txt).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
check=$root/tools/check_skips.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The lines ctest 3.25 writes for a passed, a skipped (GTEST_SKIP or a failed
# SetUpTestSuite), a disabled and a failed test.
cat >"$tmp/junit.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="doppel" tests="4" failures="1" disabled="1" skipped="1">
	<testcase name="A.Passes" classname="A.Passes" time="0.06" status="run">
		<system-out>[  PASSED  ] 1 test.</system-out>
	</testcase>
	<testcase name="Demo.Setup&lt;1&gt;" classname="Demo.Setup&lt;1&gt;" time="0.03" status="notrun">
		<skipped message="SKIP_REGULAR_EXPRESSION_MATCHED"/>
		<system-out>[  SKIPPED ] Demo.Setup</system-out>
	</testcase>
	<testcase name="A.Off" classname="A.Off" time="0" status="disabled">
		<system-out>Disabled</system-out>
	</testcase>
	<testcase name="plain_fail" classname="plain_fail" time="0.01" status="fail">
		<failure message=""/>
	</testcase>
</testsuite>
XML
grep -v 'status="notrun"\|status="disabled"' "$tmp/junit.xml" |
  sed '/<skipped/d;/SKIPPED/d;/Disabled/d' >"$tmp/all-ran.xml"

failures=0
expect() {  # WANT_EXIT DESCRIPTION ARGS...
  local want=$1 what=$2 got=0
  shift 2
  "$check" "$@" >"$tmp/out" 2>&1 || got=$?
  if [[ $got -ne $want ]]; then
    echo "FAIL: $what: exit $got, want $want; output:" >&2
    cat "$tmp/out" >&2
    failures=$((failures + 1))
  fi
}

: >"$tmp/empty-list"
expect 0 "every test ran" "$tmp/all-ran.xml" "$tmp/empty-list"
expect 1 "a skipped and a disabled test, empty allow-list" "$tmp/junit.xml" "$tmp/empty-list"
for named in 'Demo.Setup<1> (notrun)' 'A.Off (disabled)'; do
  if ! grep -qF "$named" "$tmp/out"; then
    echo "FAIL: '$named' is not named in the output" >&2
    failures=$((failures + 1))
  fi
done

printf '# comment\n\nDemo.Setup<1>  needs a tmpfs\n' >"$tmp/one"
expect 1 "the disabled test is not listed" "$tmp/junit.xml" "$tmp/one"
printf 'Demo.Setup<1>  needs a tmpfs\nA.Off\tbeing rewritten, issue 99\n' >"$tmp/both"
expect 0 "both listed with reasons" "$tmp/junit.xml" "$tmp/both"
printf 'Demo.Setup<1>\nA.Off reason\n' >"$tmp/no-reason"
expect 2 "an entry without a reason" "$tmp/junit.xml" "$tmp/no-reason"
printf 'Demo.Setup  prefix of the name only\nA.Off reason\n' >"$tmp/prefix"
expect 1 "names match whole, not by prefix" "$tmp/junit.xml" "$tmp/prefix"
expect 0 "the committed allow-list is well-formed" "$tmp/all-ran.xml" "$root/tests/skip-allowlist.txt"
expect 2 "no JUnit file" "$tmp/missing.xml" "$tmp/empty-list"
expect 2 "usage" "$tmp/junit.xml"

if ((failures)); then
  echo "$failures failures" >&2
  exit 1
fi
echo "tools/check_skips.sh: all checks passed"
