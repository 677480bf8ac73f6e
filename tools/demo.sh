#!/usr/bin/env bash
# doppel in one command, on a fresh Debian 12 machine:
#   1. installs what is missing and builds doppel and doppel-echo (into build/),
#   2. starts doppel-echo v1 as the primary and `doppel record` in front of it,
#   3. drives a few thousand requests of mixed shop traffic through the proxy (wrk + a Lua
#      traffic script), then stops the recorder,
#   4. starts doppel-echo v2 (three deliberate changes) as the candidate and v1 again as the
#      secondary, replays the session against both with diffing,
#   5. prints the report and writes demo-report.html and demo-report.json.
# Every process it starts is stopped on exit and on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
source tools/deps.sh

requests=${DOPPEL_DEMO_REQUESTS:-3000}
doppel_install_deps wrk
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 --target doppel doppel-echo
doppel="$root/build/tools/doppel"
echo_bin="$root/build/tools/echo/doppel-echo"

work=$(mktemp -d /tmp/doppel-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted"; exit 130' INT TERM

# wait_for_line FILE PATTERN: waits up to 10 s for PATTERN in FILE, prints the match.
wait_for_line() {
  for _ in $(seq 100); do
    if grep -m1 -o "$2" "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "demo: timed out waiting for '$2' in $1:" >&2
  cat "$1" >&2
  return 1
}
# run_waiting CMD...: runs CMD in the background and waits for it. Bash runs a trap only
# after a foreground command ends (and not at all when that command handles SIGINT itself,
# as wrk and doppel replay do); `wait` is interrupted at once, so Ctrl-C stops the demo.
run_waiting() {
  "$@" &
  local pid=$!
  pids+=($pid)
  wait "$pid"
}

# start_echo NAME VAR ARGS...: starts doppel-echo in this shell (so cleanup can stop it) and
# stores its port in the variable VAR.
start_echo() {
  local log="$work/$1.log" var=$2; shift 2
  "$echo_bin" --listen 127.0.0.1:0 --threads 1 "$@" >"$log" 2>&1 &
  pids+=($!)
  local port
  port=$(wait_for_line "$log" 'listening on 127.0.0.1:[0-9]*' | sed 's/.*://')
  printf -v "$var" '%s' "$port"
}

echo "== 1. primary (doppel-echo v1) and the capture proxy"
start_echo primary primary --noise
"$doppel" --store "$work/store" record --listen 127.0.0.1:0 \
  --upstream "http://127.0.0.1:$primary" --session demo >"$work/record.log" 2>&1 &
recorder=$!
pids+=($recorder)
proxy=$(wait_for_line "$work/record.log" 'listening on 127.0.0.1:[0-9]*' | sed 's/.*://')
echo "   primary on :$primary, doppel record on :$proxy"

echo "== 2. $requests requests of mixed traffic through the proxy"
run_waiting env DOPPEL_REQUESTS="$requests" wrk -t1 -c4 -d10s -s tools/demo/traffic.lua \
  "http://127.0.0.1:$proxy" >"$work/wrk.log"
sed 's/^/   /' "$work/wrk.log"
kill -INT "$recorder"
wait "$recorder" || true
sed 's/^/   /' "$work/record.log" | tail -n 8
"$doppel" --store "$work/store" sessions show demo | sed 's/^/   /'

echo "== 3. candidate (doppel-echo v2) and secondary (v1 again), replay with diffing"
start_echo candidate candidate --noise --variant v2
start_echo secondary secondary --noise
set +e
# --log-bodies: show differing values on the terminal (hidden by default: real traffic may
# hold personal data; the demo's is synthetic). The HTML and JSON reports always have them.
run_waiting "$doppel" --store "$work/store" replay --session demo \
  --target "http://127.0.0.1:$candidate" --secondary "http://127.0.0.1:$secondary" \
  --max --concurrency 16 --allow-unsafe-methods \
  --html "$root/demo-report.html" --report-json "$root/demo-report.json" --log-bodies
code=$?
set -e

echo
echo "== what happened"
echo "   doppel recorded $requests requests to the v1 API, replayed them against v2 with v1 as a"
echo "   noise baseline, and exited $code (1 = regressions found: the three deliberate v2 changes)."
echo "   Reports: $root/demo-report.html (open in a browser) and $root/demo-report.json"
[ "$code" -le 1 ] || exit "$code"
