#!/usr/bin/env bash
# Replay benchmark (issue 5, docs/architecture.md "Performance contract").
#
# In one run, on 127.0.0.1 only, with everything in a fresh temp dir:
#   target     nginx (1 worker) answering every request with a fixed 1 KB JSON body
#   record     wrk -> doppel record --threads 1 --sample 100 -> target, stopped at ~RECORD_N
#              envelopes (doppel's /status is polled), giving session S
#   max        wrk -t1 -c64 -d10s against the target  vs
#              doppel replay --session S --target URL --max --concurrency 64 --loop --duration 10s
#              (diffing on, the default); ratio doppel/wrk (target >= 0.8)
#   max-nodiff the same replay with --no-diff (answers counted, not compared); ratio doppel/wrk
#              (target >= 0.95)
#   max-diff   the same --max replay where every answer must be decoded and diffed: session G
#              recorded from (and replayed to) an nginx answering gzip JSON that differs per
#              request ("rid": $request_id), so each comparison gunzips both bodies and finds
#              body.rid in a structural JSON diff (exit code 1, regressions, is expected);
#              compare binaries with DOPPEL=old/doppel vs DOPPEL=new/doppel
#   rate       doppel replay --session S --rate 20000 --duration 10s --loop (diffing on):
#              achieved rate (target within +-1 %) and p99 send lag (target <= 2 ms)
#   rss        peak RSS (/usr/bin/time -v) of doppel replay --max of a 1M-envelope replay
#              (target <= 150 MB). RSS_MODE=loop (default): S looped with --loop --limit 1000000;
#              RSS_MODE=real: a session of >= 1,000,000 envelopes is recorded first (slow: at the
#              proxy's rate, minutes) and replayed whole; RSS_MODE=both does both.
# Finally replaces the "replay" section of bench/RESULTS.md.
#
# Environment: BUILD_DIR (default build), SKIP_BUILD=1, DOPPEL (binary to measure, default
# $BUILD_DIR/tools/doppel), RECORD_N (default 40000), DURATION
# (default 10s), WARMUP (default 2s), CONNS (default 64), RATE (default 20000), RSS_N (default
# 1000000), RSS_MODE (loop|real|both), LOAD_MAX (default 1.5), LOAD_WAIT (default 60 s; before
# each measurement wait up to this long for the 1-minute load to drop under LOAD_MAX; the load
# is recorded either way), NO_RESULTS=1 (do not touch bench/RESULTS.md), KEEP_TMP=1.
set -euo pipefail

cd "$(dirname "$0")/.."
RECORD_N=${RECORD_N:-40000}
RATE=${RATE:-20000}
RSS_N=${RSS_N:-1000000}
RSS_MODE=${RSS_MODE:-loop}

# ---------------------------------------------------------------- tools
NAME=replay
source bench/common.sh
bench_install nginx:nginx wrk:wrk curl:curl /usr/bin/time:time

# ---------------------------------------------------------------- target: nginx, fixed 1 KB JSON
start_json_upstream target

# ---------------------------------------------------------------- target: nginx, gzip JSON per request
start_gzip_json_upstream target-gzip  # sets UP_GZ

# ---------------------------------------------------------------- recording
STORE=$tmp/store
S=bench-replay-$$
record_session "$S" "$RECORD_N"
S_SUMMARY=$rec_summary
S_SECS=$rec_secs
S_COUNT=$("$DOPPEL" --store "$STORE" sessions list | awk -v s="$S" '$1 == s {print $3}')
S_STORED=$("$DOPPEL" --store "$STORE" sessions list | awk -v s="$S" '$1 == s {print $4, $5}')
log "session $S: $S_COUNT envelopes, $S_STORED"
G=bench-replay-gzip-$$
record_session "$G" "$RECORD_N" "$UP_GZ" -H 'Accept-Encoding: gzip'
G_COUNT=$("$DOPPEL" --store "$STORE" sessions list | awk -v s="$G" '$1 == s {print $3}')
log "session $G: $G_COUNT envelopes (gzip JSON, a different rid in every answer)"

# Parses a replay's summary: lane line (TARGET SENT 2xx 3xx 4xx 5xx ERRORS p50 p90 p99 max LAG)
# and "N requests in X s (R req/s)".
parse_replay() {  # FILE -> R_SENT R_2XX R_ERR R_P50 R_P99 R_LAG R_N R_SECS R_RPS R_MATCH
  local f=$1
  read -r R_SENT R_2XX R_ERR R_P50 R_P99 R_LAG < <(awk '$1 ~ /^http/ && NF >= 12 {print $2, $3, $7, $8, $10, $12; exit}' "$f") || true
  R_P50=$(to_ms "${R_P50:-?}"); R_P99=$(to_ms "${R_P99:-?}"); R_LAG=$(to_ms "${R_LAG:-?}")
  read -r R_N R_SECS R_RPS < <(sed -n 's/^\([0-9]*\) requests in \([0-9.]*\)s (\([0-9.]*\) req\/s).*/\1 \2 \3/p' "$f" | head -1) || true
  R_MATCH=$(awk '$1 ~ /^http/ && $NF ~ /ms$/ && $0 ~ /%/ {for (i = 1; i <= NF; i++) if ($i ~ /%$/) {print $i; exit}}' "$f")
}

# doppel's CPU time (user + system, from /usr/bin/time -f '%U %S') per request, in us: unlike
# req/s it hardly moves when other processes take CPUs, so it compares binaries on a busy machine.
cpu_us_per_request() {  # CPU_FILE REQUESTS
  awk -v n="$2" 'NF == 2 && $1 ~ /^[0-9.]+$/ { c = $1 + $2 } END { if (n > 0 && c > 0) printf "%.1f", c * 1e6 / n; else print "?" }' "$1"
}

# Runs `doppel --store $STORE CMD...` under /usr/bin/time, output in $tmp/LABEL.{txt,err,cpu};
# stops the benchmark when its exit code is above MAX_RC. Sets R_* (parse_replay), T_RC and
# T_CPU (µs of CPU per request).
timed_replay() {  # LABEL MAX_RC CMD...
  local label=$1 max_rc=$2 rc=0
  shift 2
  /usr/bin/time -f '%U %S' -o "$tmp/$label.cpu" "$DOPPEL" --store "$STORE" "$@" >"$tmp/$label.txt" 2>"$tmp/$label.err" || rc=$?
  ((rc <= max_rc)) || { echo "doppel $* exited with $rc:" >&2; tail -20 "$tmp/$label.txt" "$tmp/$label.err" >&2; exit 1; }
  T_RC=$rc
  parse_replay "$tmp/$label.txt"
  T_CPU=$(cpu_us_per_request "$tmp/$label.cpu" "$R_N")
}

# ---------------------------------------------------------------- max: wrk vs doppel replay --max
wrk -t1 -c"$CONNS" -d"$WARMUP" "$UP/api/items" >/dev/null
LOAD_WRK=$(wait_load)
log "wrk -t1 -c$CONNS -d$DURATION --latency $UP/api/items (load $LOAD_WRK)"
wrk -t1 -c"$CONNS" -d"$DURATION" --latency "$UP/api/items" >"$tmp/wrk.txt"
WRK_RPS=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$tmp/wrk.txt")
WRK_P50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$tmp/wrk.txt")")
WRK_P99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$tmp/wrk.txt")")
WRK_ERR=$(grep -E 'Non-2xx|Socket errors' "$tmp/wrk.txt" | tr -s ' ' | paste -sd';' - || true)
log "wrk: $WRK_RPS req/s p50 $WRK_P50 p99 $WRK_P99 ${WRK_ERR}"

MAX_CMD=(replay --session "$S" --target "$UP" --max --concurrency "$CONNS" --loop --duration "$DURATION" --no-progress)
"$DOPPEL" --store "$STORE" replay --session "$S" --target "$UP" --max --concurrency "$CONNS" \
  --loop --duration "$WARMUP" --no-progress >/dev/null 2>&1 || true
LOAD_MAX_RUN=$(wait_load)
log "doppel ${MAX_CMD[*]} (load $LOAD_MAX_RUN)"
timed_replay max 0 "${MAX_CMD[@]}"
MAX_SENT=$R_SENT MAX_2XX=$R_2XX MAX_ERR=$R_ERR MAX_P50=$R_P50 MAX_P99=$R_P99 MAX_N=$R_N MAX_SECS=$R_SECS MAX_RPS=$R_RPS MAX_MATCH=$R_MATCH
MAX_CPU=$T_CPU
log "replay --max: $MAX_RPS req/s ($MAX_N in ${MAX_SECS}s), p50 $MAX_P50 p99 $MAX_P99, errors $MAX_ERR, match $MAX_MATCH, CPU $MAX_CPU us/request"

# ---------------------------------------------------------------- max without diffing
NODIFF_CMD=("${MAX_CMD[@]}" --no-diff)
LOAD_NODIFF=$(wait_load)
log "doppel ${NODIFF_CMD[*]} (load $LOAD_NODIFF)"
timed_replay nodiff 0 "${NODIFF_CMD[@]}"
NODIFF_2XX=$R_2XX NODIFF_ERR=$R_ERR NODIFF_P50=$R_P50 NODIFF_P99=$R_P99 NODIFF_N=$R_N NODIFF_SECS=$R_SECS NODIFF_RPS=$R_RPS
NODIFF_CPU=$T_CPU
log "replay --max --no-diff: $NODIFF_RPS req/s ($NODIFF_N in ${NODIFF_SECS}s), p50 $NODIFF_P50 p99 $NODIFF_P99, errors $NODIFF_ERR, CPU $NODIFF_CPU us/request"

# ---------------------------------------------------------------- max with decoding + JSON diff
MAXDIFF_CMD=(replay --session "$G" --target "$UP_GZ" --max --concurrency "$CONNS" --loop --duration "$DURATION" --no-progress)
LOAD_MAXDIFF=$(wait_load)
log "doppel ${MAXDIFF_CMD[*]} (load $LOAD_MAXDIFF)"
# Exit 1 is the expected verdict: every answer differs from its recording at body.rid.
timed_replay maxdiff 1 "${MAXDIFF_CMD[@]}"
grep -q 'body.rid' "$tmp/maxdiff.txt" || { echo "replay --max (diffing) reported no body.rid difference:" >&2; tail -30 "$tmp/maxdiff.txt" >&2; exit 1; }
MAXDIFF_ERR=$R_ERR MAXDIFF_P50=$R_P50 MAXDIFF_P99=$R_P99 MAXDIFF_LAG=$R_LAG MAXDIFF_N=$R_N MAXDIFF_SECS=$R_SECS MAXDIFF_RPS=$R_RPS
MAXDIFF_CPU=$T_CPU
log "replay --max with diffing: $MAXDIFF_RPS req/s ($MAXDIFF_N in ${MAXDIFF_SECS}s), p50 $MAXDIFF_P50 p99 $MAXDIFF_P99, lag p99 $MAXDIFF_LAG, errors $MAXDIFF_ERR, exit $T_RC, CPU $MAXDIFF_CPU us/request"

# ---------------------------------------------------------------- fixed rate
RATE_CMD=(replay --session "$S" --target "$UP" --rate "$RATE" --duration "$DURATION" --loop --no-progress)
LOAD_RATE=$(wait_load)
log "doppel ${RATE_CMD[*]} (load $LOAD_RATE)"
rc=0
"$DOPPEL" --store "$STORE" "${RATE_CMD[@]}" >"$tmp/rate.txt" 2>"$tmp/rate.err" || rc=$?
((rc == 0)) || { echo "replay --rate exited with $rc:" >&2; tail -20 "$tmp/rate.txt" "$tmp/rate.err" >&2; exit 1; }
parse_replay "$tmp/rate.txt"
RATE_SENT=$R_SENT RATE_ERR=$R_ERR RATE_P50=$R_P50 RATE_P99=$R_P99 RATE_LAG=$R_LAG RATE_N=$R_N RATE_SECS=$R_SECS RATE_RPS=$R_RPS RATE_MATCH=$R_MATCH
dur_s=$(secs "$DURATION")
RATE_OVER_DUR=$(bench_calc %.1f 'n / d' n="$RATE_N" d="$dur_s")
log "replay --rate $RATE: $RATE_RPS req/s ($RATE_N in ${RATE_SECS}s; $RATE_OVER_DUR over ${dur_s}s), lag p99 $RATE_LAG ms, p99 $RATE_P99"

# ---------------------------------------------------------------- RSS of a 1M-envelope replay
declare -a RSS_ROWS=()
RSS_WORST="?"  # the largest peak RSS of the runs below, "?" when one was not measured
rss_runs=0
rss_run() {  # LABEL SESSION EXTRA_ARGS...
  local label=$1 session=$2; shift 2
  local out=$tmp/rss-$session.txt err=$tmp/rss-$session.err load rc=0 kb mb
  load=$(wait_load)
  log "/usr/bin/time -v doppel replay --session $session --target $UP --max --concurrency $CONNS $* (load $load)"
  /usr/bin/time -v "$DOPPEL" --store "$STORE" replay --session "$session" --target "$UP" --max \
    --concurrency "$CONNS" --no-progress "$@" >"$out" 2>"$err" || rc=$?
  ((rc == 0)) || { echo "RSS replay exited with $rc:" >&2; tail -30 "$out" "$err" >&2; exit 1; }
  kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$err")
  mb=$(bench_calc %.1f 'k / 1024' k="$kb")
  parse_replay "$out"
  RSS_ROWS+=("| $label | \`doppel replay --session $session --target URL --max --concurrency $CONNS${*:+ $*}\` | $R_N | $R_SECS | $R_RPS | $R_ERR | $mb | $load |")
  if ((rss_runs++ == 0)); then RSS_WORST=$mb; else RSS_WORST=$(bench_calc %.1f '(b > a) ? b : a' a="$RSS_WORST" b="$mb"); fi
  log "RSS $label: $mb MiB ($R_N requests in ${R_SECS}s)"
}
if [[ "$RSS_MODE" == loop || "$RSS_MODE" == both ]]; then
  rss_run "session S ($S_COUNT envelopes) looped to $RSS_N requests" "$S" --loop --limit "$RSS_N"
fi
BIG_SUMMARY=""
if [[ "$RSS_MODE" == real || "$RSS_MODE" == both ]]; then
  BIG=bench-replay-1m-$$
  record_session "$BIG" "$RSS_N"
  BIG_SUMMARY="$rec_summary (recorded in ${rec_secs} s)"
  big_count=$("$DOPPEL" --store "$STORE" sessions list | awk -v s="$BIG" '$1 == s {print $3}')
  rss_run "recorded session of $big_count envelopes, replayed whole" "$BIG"
fi

# ---------------------------------------------------------------- report
R_MAX=$(bench_ratio "$MAX_RPS" "$WRK_RPS")
v_max=$(bench_verdict "$R_MAX" ">=" 0.8)
R_NODIFF=$(bench_ratio "$NODIFF_RPS" "$WRK_RPS")
v_nodiff=$(bench_verdict "$R_NODIFF" ">=" 0.95)
dev=$(bench_calc %+.2f '(a - r) / r * 100' a="$RATE_RPS" r="$RATE")
dev2=$(bench_calc %+.2f '(a - r) / r * 100' a="$RATE_OVER_DUR" r="$RATE")
v_rate=$(bench_verdict "${dev#[+-]}" "<=" 1 %)  # off by at most 1 %, either way
v_lag=$(bench_verdict "$RATE_LAG" "<=" 2 ms)
v_rss=$(bench_verdict "$RSS_WORST" "<=" 150 MB)

section=$tmp/section.md
{
  echo "<!-- replay:begin -->"
  echo "## Replay"
  echo
  run_header "$([[ "$RSS_MODE" != loop ]] && echo " (RSS_MODE=$RSS_MODE)")"
  echo
  echo "Target: nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), 1 worker, \`return 200\` of a fixed $body_len B JSON body, access_log off, on 127.0.0.1. Session S: \`wrk -t1 -c$CONNS URL/api/items\` through \`doppel record --threads 1 --sample 100\` (stopped once doppel's /status said ≥ $RECORD_N stored, ${S_SECS} s): $S_COUNT envelopes, $S_STORED in the store (\`$S_SUMMARY\`). All replays below but the one marked "no diffing" run with diffing on (the default) against the same target, so every answer is compared with the recorded one."
  echo
  echo "### Closed loop: \`--max\` vs wrk"
  echo
  echo "| load generator | command | req/s | p50 ms | p99 ms | errors | CPU µs/request | load before |"
  echo "|---|---|---:|---:|---:|---|---:|---|"
  echo "| wrk | \`wrk -t1 -c$CONNS -d$DURATION --latency URL/api/items\` (after a $WARMUP warm-up) | $WRK_RPS | $WRK_P50 | $WRK_P99 | ${WRK_ERR:-none} | | $LOAD_WRK |"
  echo "| doppel replay | \`doppel ${MAX_CMD[*]/$UP/URL}\` (after a $WARMUP warm-up) | $MAX_RPS ($MAX_N in ${MAX_SECS} s) | $MAX_P50 | $MAX_P99 | $MAX_ERR; 2xx $MAX_2XX; diff match ${MAX_MATCH:-?} | $MAX_CPU | $LOAD_MAX_RUN |"
  echo "| doppel replay, no diffing | \`doppel ${NODIFF_CMD[*]/$UP/URL}\` | $NODIFF_RPS ($NODIFF_N in ${NODIFF_SECS} s) | $NODIFF_P50 | $NODIFF_P99 | $NODIFF_ERR; 2xx $NODIFF_2XX | $NODIFF_CPU | $LOAD_NODIFF |"
  echo
  echo "**doppel replay --max / wrk = ${R_MAX}× (target ≥ 0.8×): $v_max. Without diffing ${R_NODIFF}× (target ≥ 0.95×): $v_nodiff.**"
  echo
  echo "### Closed loop with decoding and diffing: \`--max\` on gzip JSON that differs per request"
  echo
  echo "Session G: $G_COUNT envelopes recorded like S from a second nginx that answers the same body with a per-request \`\"rid\":\"\$request_id\"\` in front, gzip-encoded (\`wrk -H 'Accept-Encoding: gzip'\`). Replayed to that nginx, every answer differs from its recording: each comparison gunzips both bodies and diffs them as JSON (\`body.rid\` differs, so exit code 1 is expected). Compare binaries with \`DOPPEL=…\`."
  echo
  echo "| command | req/s | p50 ms | p99 ms | send lag p99 ms | errors | CPU µs/request | load before |"
  echo "|---|---:|---:|---:|---:|---|---:|---|"
  echo "| \`doppel ${MAXDIFF_CMD[*]/$UP_GZ/URL}\` | $MAXDIFF_RPS ($MAXDIFF_N in ${MAXDIFF_SECS} s) | $MAXDIFF_P50 | $MAXDIFF_P99 | $MAXDIFF_LAG | $MAXDIFF_ERR | $MAXDIFF_CPU | $LOAD_MAXDIFF |"
  echo
  echo "### Open loop: \`--rate $RATE\`"
  echo
  echo "\`doppel ${RATE_CMD[*]/$UP/URL}\` (load before: $LOAD_RATE): sent $RATE_SENT, errors $RATE_ERR, diff match ${RATE_MATCH:-?}; doppel's summary: $RATE_N requests in $RATE_SECS s = **$RATE_RPS req/s ($dev % vs $RATE)**; $RATE_N / ${dur_s} s = $RATE_OVER_DUR req/s ($dev2 %). Latency from due time p50 $RATE_P50 ms, p99 $RATE_P99 ms. **Send lag p99 $RATE_LAG ms.**"
  echo
  echo "**Achieved rate within ±1 % (judged on doppel's own req/s): $v_rate. Send lag p99 ≤ 2 ms: $v_lag.**"
  echo
  echo "### Replayer peak RSS, 1M-envelope replay"
  echo
  echo "Measured with \`/usr/bin/time -v\` (\"Maximum resident set size\"), diffing on, run persisted to the store as usual.$([[ "$RSS_MODE" == loop ]] && echo " The 1M envelopes are session S replayed in a loop (\`--loop --limit $RSS_N\`), not a stored 1M-envelope session: this measures what a long replay accumulates (per-request results, histograms, diff state) but not anything that grows with the stored session's size; \`RSS_MODE=real\` (or \`both\`) records a real ≥ 1M-envelope session first.")"
  echo
  echo "| what | command | requests | seconds | req/s | errors | peak RSS MiB | load before |"
  echo "|---|---|---:|---:|---:|---:|---:|---|"
  for row in "${RSS_ROWS[@]}"; do echo "$row"; done
  [[ -n "$BIG_SUMMARY" ]] && echo && echo "1M session recorded by doppel: \`$BIG_SUMMARY\`."
  echo
  echo "**Peak RSS ${RSS_WORST} MiB (target ≤ 150 MB): $v_rss.**"
  echo "<!-- replay:end -->"
} >"$section"

cat "$section"
if [[ -z "${NO_RESULTS:-}" ]]; then
  replace_results_section replay "$section" "$results"
  log "updated $results"
fi
