#!/usr/bin/env bash
# How closely a group of replay workers keeps --rate (#14; docs/distributed.md, "Rate"):
# `doppel replay --from redis://... --group G --rate R` on every worker sends R requests a
# second in total, each worker 1/N of it (N: the live workers), re-split when one joins or
# leaves. Target: the group's total within ±2 % of R.
#
# A session of N envelopes (GET /api/items recorded from an nginx upstream) is exported to a
# stream once; each run replays it from the stream with a fresh group at --rate R to another
# nginx, whose access log stamps every request it answers ($msec, ms resolution). The
# achieved rate is (requests - 1) / (last stamp - first stamp): the group's own pace from its
# first request to its last, whatever the processes' start-up took. Runs:
#   g1, g2, g4  1, 2 and 4 workers started together
#   g2-join     one worker, a second joining JOIN_AFTER s later (the split changes mid-run)
#   g3-leave    three workers, one stopped (SIGINT) LEAVE_AFTER s in: it leaves the group at
#               once, the others speed up; what it held and had not sent is claimed by them
#               after --claim-idle 3s, so the group keeps its rate only while they still
#               have entries of their own
# Each run's requests must be the session's (from the merged report). Everything runs on the
# same CPUs: ROUNDS rounds, the order reversed every other one; every run is kept.
# Every run's raw output (workers' output, reports, the target's access log gzipped) is kept
# under bench/runs/group-rate-<UTC time>/; the section between
# <!-- group-rate:begin --> and <!-- group-rate:end --> of bench/RESULTS.md is replaced
# (NO_RESULTS=1: left alone). Environment: R (1000), N (15000), ROUNDS (2), JOIN_AFTER (3),
# LEAVE_AFTER (4), BUILD_DIR, SKIP_BUILD, DOPPEL, LOAD_MAX, LOAD_WAIT.
set -euo pipefail

cd "$(dirname "$0")/.."
R=${R:-1000}
N=${N:-15000}
ROUNDS=${ROUNDS:-2}
JOIN_AFTER=${JOIN_AFTER:-3}
LEAVE_AFTER=${LEAVE_AFTER:-4}

NAME=group-rate
source bench/common.sh
bench_install nginx:nginx wrk:wrk curl:curl redis-server:redis-server
out=bench/runs/group-rate-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"

start_redis

start_json_upstream upstream
STORE=$tmp/store
record_session bench-rate "$N"
"$DOPPEL" --store "$STORE" export bench-rate "$REDIS/bench-rate" >"$out/export.txt"
entries=$(redis-cli -p "$redis_port" XLEN bench-rate)
log "$entries envelopes in stream bench-rate"

# The target: nginx answering the same body, logging each request's time.
target_port=$(free_port)
start_nginx target "  log_format stamp '\$msec';
  server {
    listen 127.0.0.1:$target_port;
    access_log $tmp/nginx-target/logs/access.log stamp;
    location / { default_type application/json; return 200 '$body'; }
  }"
TARGET=http://127.0.0.1:$target_port
wait_http "$TARGET/"
access_log=$tmp/nginx-target/logs/access.log

worker() {  # DIR GROUP I: one worker in the background (its store in $tmp); its pid in wpid
  "$DOPPEL" --store "$tmp/$2-store-$3" replay --from "$REDIS/bench-rate" --group "$2" \
    --consumer "w$3" --target "$TARGET" --rate "$R" --timeout 2s --claim-idle 3s --no-progress \
    >"$1/out-$3" 2>&1 &
  wpid=$!
  pids+=($wpid)
}

run() {  # LABEL ROUND
  local label=$1 round=$2 dir=$out/$2-$1 group=rate-$2-$1 load codes="" wpids=() n
  mkdir -p "$dir"
  load=$(wait_load)
  : >"$access_log"
  kill -USR1 "$(cat "$tmp/nginx-target/nginx.pid")"  # reopen the emptied log
  sleep 0.2
  case $label in
    g1 | g2 | g4)
      for ((n = 0; n < ${label#g}; n++)); do worker "$dir" "$group" "$n"; wpids+=($wpid); done ;;
    g2-join)
      worker "$dir" "$group" 0; wpids+=($wpid)
      sleep "$JOIN_AFTER"
      worker "$dir" "$group" 1; wpids+=($wpid) ;;
    g3-leave)
      for n in 0 1 2; do worker "$dir" "$group" "$n"; wpids+=($wpid); done
      sleep "$LEAVE_AFTER"
      kill -INT "${wpids[2]}" ;;
  esac
  for p in "${wpids[@]}"; do
    local rc=0
    wait "$p" || rc=$?
    codes+="$rc "
  done
  sleep 0.5  # nginx writes its log lines as it answers; let the last ones land
  cp "$access_log" "$dir/access.log"
  "$DOPPEL" --store "$STORE" report --from "$REDIS/bench-rate" --group "$group" \
    --report-json "$dir/group.json" >"$dir/report.txt" 2>&1 || true
  local counted="?"
  [[ -f "$dir/group.json" ]] &&
    counted=$(tr -d ' \n' <"$dir/group.json" | grep -o '"requests":[0-9]*' | head -1 | cut -d: -f2)
  local stats
  stats=$(sort -n "$dir/access.log" | awk 'NR == 1 {first = $1} {last = $1; n++}
    END { if (n > 1 && last > first) printf "%d %.3f %.1f", n, last - first, (n - 1) / (last - first);
          else printf "%d ? ?", n }')
  local sent span rate err
  read -r sent span rate <<<"$stats"
  gzip -9 "$dir/access.log"
  err=$(bench_calc %+.2f '(a / r - 1) * 100' a="$rate" r="$R")
  log "round $round $label: $sent requests at the target over ${span}s = $rate req/s ($err % of $R); the group counted ${counted:-?} (exit codes ${codes% }; load $load)"
  rows+=("| $round | $label | ${counted:-?} | $sent | $span | $rate | $err % | ${codes% } | $load |")
  ERR[$round-$label]=$err
}
declare -A ERR
rows=()
labels=(g1 g2 g4 g2-join g3-leave)
for ((r = 1; r <= ROUNDS; r++)); do
  order=("${labels[@]}")
  ((r % 2)) || order=(g3-leave g2-join g4 g2 g1)
  for label in "${order[@]}"; do run "$label" "$r"; done
done

# The verdict: the largest error of any run, against ±2 %.
worst=0
for e in "${ERR[@]}"; do
  a=$(bench_calc %.2f 'e < 0 ? -e : e' e="$e")
  [[ $a == '?' ]] && { worst='?'; break; }
  worst=$(bench_calc %.2f 'a > w ? a : w' a="$a" w="$worst")
done
verdict=$(bench_verdict "$worst" "<=" 2)

{
  echo "<!-- group-rate:begin -->"
  echo "## A group of workers keeping --rate"
  echo
  run_header " (R=$R, N=$N, ROUNDS=$ROUNDS, JOIN_AFTER=$JOIN_AFTER, LEAVE_AFTER=$LEAVE_AFTER)" "redis-server ($(redis-server --version | awk '{print $3}')) and both nginx on 127.0.0.1; raw output in \`$out/\`."
  echo
  echo "Session: $entries envelopes of \`GET /api/items\`, exported to a stream. Each run: a fresh group, every worker \`doppel replay --from $REDIS/STREAM --group G --consumer wI --target T --rate $R --timeout 2s --claim-idle 3s\` against an nginx that logs \`\$msec\` for every request; g1/g2/g4 = 1, 2, 4 workers started together; g2-join = the second worker started ${JOIN_AFTER} s after the first; g3-leave = one of three stopped with SIGINT ${LEAVE_AFTER} s in (exit 0 or 130 for it). Achieved = (requests at the target - 1) / (last - first \`\$msec\`); error = achieved / $R - 1. \"Counted\" is the merged report's requests, which must be $entries."
  echo
  echo "| round | run | counted | requests at the target | span s | achieved req/s | error | exit codes | load before |"
  echo "|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Largest error of any run: ${worst} % (target: within ±2 %: $verdict)."
  echo "<!-- group-rate:end -->"
} >"$out/section.md"
cat "$out/section.md"

if [[ -z "${NO_RESULTS:-}" ]]; then
  replace_results_section group-rate "$out/section.md" "$results"
  log "updated $results"
fi
