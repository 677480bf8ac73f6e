#!/usr/bin/env bash
# Proxy benchmark (issue 3, docs/architecture.md "Performance contract").
#
# In one run, on 127.0.0.1 only, with everything in a fresh temp dir:
#   upstream   nginx (1 worker) answering every request with a fixed ~1 KB JSON body
#   direct     wrk -> upstream
#   nginx      wrk -> nginx proxy_pass (1 worker, upstream keepalive 64, HTTP/1.1) -> upstream
#   doppel 0%  wrk -> doppel record --threads 1 --sample 0   -> upstream
#   doppel 100% wrk -> doppel record --threads 1 --sample 100 -> upstream
# Each is measured with `wrk -t1 -c64 -d10s --latency` after a 2 s warm-up; the table gives
# req/s, p50, p99 and doppel/nginx. Then the added p99 at half of doppel's (100 %) max load
# with a fixed-rate load generator: wrk2 if the distribution has it, else `doppel replay
# --rate R` (open loop, latency measured from each request's due time) of the session just
# recorded, against the upstream directly and through a fresh doppel record (100 %).
# Finally replaces the "proxy" section of bench/RESULTS.md.
#
# Environment: BUILD_DIR (default build), SKIP_BUILD=1 (use the binaries as they are), DOPPEL
# (binary to measure, default $BUILD_DIR/tools/doppel),
# DURATION (default 10s), WARMUP (default 2s), CONNS (default 64), FIXED_RUNS (default 2:
# direct/doppel pairs at the fixed rate), LOAD_MAX (default 1.5) and LOAD_WAIT (default 60 s):
# before each measurement, wait up to LOAD_WAIT s for the 1-minute load average to drop under
# LOAD_MAX (it is recorded either way), NO_RESULTS=1 (do not touch bench/RESULTS.md).
set -euo pipefail

cd "$(dirname "$0")/.."
FIXED_RUNS=${FIXED_RUNS:-2}

# ---------------------------------------------------------------- tools
NAME=proxy
source bench/common.sh
bench_install nginx:nginx wrk:wrk curl:curl
sudo=""
[[ $(id -u) -ne 0 ]] && sudo=sudo
# wrk2 (fixed-rate wrk) is not packaged by every distribution; check the apt candidate.
wrk2_candidate=$(apt-cache policy wrk2 2>/dev/null | awk '/Candidate:/ {print $2}')
if [[ -z "$wrk2_candidate" || "$wrk2_candidate" == "(none)" ]]; then
  # The package lists may be missing or stale: refresh once and ask again.
  $sudo apt-get update >/dev/null 2>&1 || true
  wrk2_candidate=$(apt-cache policy wrk2 2>/dev/null | awk '/Candidate:/ {print $2}')
fi
WRK2=""
if command -v wrk2 >/dev/null 2>&1; then
  WRK2=$(command -v wrk2)
elif [[ -n "$wrk2_candidate" && "$wrk2_candidate" != "(none)" ]]; then
  log "installing wrk2 $wrk2_candidate"
  $sudo apt-get install -y wrk2 && WRK2=$(command -v wrk2 || true)
fi
wrk2_note="\`apt-cache policy wrk2\` on $(. /etc/os-release; echo "$PRETTY_NAME"): ${wrk2_candidate:-no such package}"

start_json_upstream upstream

px_port=$(free_port)
start_nginx proxy "  upstream backend { server 127.0.0.1:$up_port; keepalive 64; }
  server {
    listen 127.0.0.1:$px_port;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
    }
  }"
NGX=http://127.0.0.1:$px_port
wait_http "$NGX/"

# ---------------------------------------------------------------- wrk

declare -A RPS P50 P99 LOAD ERRS
run_wrk() {  # NAME URL
  local name=$1 url=$2 out=$tmp/wrk-$1.txt
  wrk -t1 -c"$CONNS" -d"$WARMUP" "$url/api/items" >/dev/null
  LOAD[$name]=$(wait_load)
  log "$name: wrk -t1 -c$CONNS -d$DURATION --latency $url/api/items (load ${LOAD[$name]})"
  wrk -t1 -c"$CONNS" -d"$DURATION" --latency "$url/api/items" >"$out"
  RPS[$name]=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
  P50[$name]=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
  P99[$name]=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
  ERRS[$name]=$(grep -E 'Non-2xx|Socket errors' "$out" | tr -s ' ' | paste -sd';' - || true)
  log "$name: ${RPS[$name]} req/s, p50 ${P50[$name]} ms, p99 ${P99[$name]} ms ${ERRS[$name]}"
}

run_wrk direct "$UP"
run_wrk nginx "$NGX"

start_doppel s0 --sample 0
run_wrk doppel0 "$rec_url"
stop_doppel s0
SUMMARY0=$rec_summary

start_doppel s100 --sample 100
run_wrk doppel100 "$rec_url"
stop_doppel s100
SUMMARY100=$rec_summary
SRC_STORE=$tmp/doppel-s100/store
SRC_SESSION=bench-proxy-s100-$$

# ---------------------------------------------------------------- added p99 at half load
half=$((RPS[doppel100] / 2))
declare -a FIX_ROWS=()
declare -A FIX_P99SUM=([direct]=0 [doppel]=0) FIX_P50SUM=([direct]=0 [doppel]=0)
fixed_method=""
fixed_run() {  # NAME URL RUN -> appends a row
  local name=$1 url=$2 run=$3 out=$tmp/fixed-$1-$3.txt load p50 p99 rate lag sent
  if [[ -n "$WRK2" ]]; then
    "$WRK2" -t1 -c"$CONNS" -d"$WARMUP" -R"$half" "$url/api/items" >/dev/null
    load=$(wait_load)
    "$WRK2" -t1 -c"$CONNS" -d"$DURATION" -R"$half" --latency "$url/api/items" >"$out"
    p50=$(to_ms "$(awk '$1 ~ /^50\.0*%$/ {print $2; exit}' "$out")")
    p99=$(to_ms "$(awk '$1 ~ /^99\.0*%$/ {print $2; exit}' "$out")")
    rate=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out"); lag="n/a"; sent="?"
  else
    "$DOPPEL" --store "$SRC_STORE" replay --session "$SRC_SESSION" --target "$url" \
      --rate "$half" --duration "$WARMUP" --loop --no-diff --no-progress --concurrency "$CONNS" \
      >/dev/null 2>&1 || true
    load=$(wait_load)
    "$DOPPEL" --store "$SRC_STORE" replay --session "$SRC_SESSION" --target "$url" \
      --rate "$half" --duration "$DURATION" --loop --no-diff --no-progress --concurrency "$CONNS" \
      >"$out" 2>"$out.err" || { echo "replay failed:" >&2; cat "$out.err" >&2; exit 1; }
    # Lane summary: TARGET SENT 2xx 3xx 4xx 5xx ERRORS p50 p90 p99 max LAG-p99
    read -r sent p50 p99 lag < <(awk '$1 ~ /^http/ && NF >= 12 {print $2, $8, $10, $12; exit}' "$out") || true
    p50=$(to_ms "$p50"); p99=$(to_ms "$p99"); lag=$(to_ms "$lag")
    rate=$(sed -n 's/.* requests in .*(\([0-9.]*\) req\/s).*/\1/p' "$out" | head -1)
  fi
  FIX_P99SUM[$name]=$(bench_calc %.3f 'a + b' a="${FIX_P99SUM[$name]}" b="$p99")
  FIX_P50SUM[$name]=$(bench_calc %.3f 'a + b' a="${FIX_P50SUM[$name]}" b="$p50")
  FIX_ROWS+=("| $run | $name | $half | $rate | $sent | $p50 | $p99 | $lag | $load |")
  log "fixed $name run $run: rate $rate, p50 $p50 ms, p99 $p99 ms, lag p99 $lag ms (load $load)"
}
# Cross-check with an independent, lighter generator: wrk whose Lua delay() holds each of the
# CONNS connections for CONNS/R s between requests (closed loop per connection, integer ms, so
# the rate is approximate and a stall is partly hidden: coordinated omission), latency from send.
delay_ms=$(( (CONNS * 1000 + half / 2) / half ))
printf 'function delay() return %d end\n' "$delay_ms" >"$tmp/paced.lua"
fixed_run_wrk() {  # NAME URL RUN
  local name=$1 url=$2 run=$3 out=$tmp/paced-$1-$3.txt load p50 p99 rate sent
  wrk -t1 -c"$CONNS" -d"$WARMUP" -s "$tmp/paced.lua" "$url/api/items" >/dev/null
  load=$(wait_load)
  wrk -t1 -c"$CONNS" -d"$DURATION" -s "$tmp/paced.lua" --latency "$url/api/items" >"$out"
  rate=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
  sent=$(awk '/requests in/ {print $1; exit}' "$out")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
  PACED_P99SUM[$name]=$(bench_calc %.3f 'a + b' a="${PACED_P99SUM[$name]}" b="$p99")
  PACED_ROWS+=("| $run | $name | $rate | $sent | $p50 | $p99 | $load |")
  log "paced wrk $name run $run: rate $rate, p50 $p50 ms, p99 $p99 ms (load $load)"
}
declare -a PACED_ROWS=()
declare -A PACED_P99SUM=([direct]=0 [doppel]=0)

if [[ -n "$WRK2" ]]; then
  fixed_method="\`wrk2 -t1 -c$CONNS -d$DURATION -R$half --latency\` (after a $WARMUP warm-up at the same rate)"
else
  fixed_method="\`doppel replay --session $SRC_SESSION --target URL --rate $half --duration $DURATION --loop --no-diff --concurrency $CONNS\` (after a $WARMUP warm-up at the same rate): open loop, request i is due at t0 + i/R and its latency is measured from that due time, so a stall is not hidden (no coordinated omission). The replayed session is the one recorded by the doppel 100 % run above (GET /api/items, 1 KB JSON answers). p50/p99 are the replayer's per-target latency percentiles (the summary table it prints); LAG p99 is how late the replayer itself sent, which bounds how much of the latency is the generator's own."
fi
for run in $(seq "$FIXED_RUNS"); do
  fixed_run direct "$UP" "$run"
  [[ -n "$WRK2" ]] || fixed_run_wrk direct "$UP" "$run"
  start_doppel fixed$run --sample 100
  fixed_run doppel "$rec_url" "$run"
  [[ -n "$WRK2" ]] || fixed_run_wrk doppel "$rec_url" "$run"
  stop_doppel fixed$run
done
paced_added=$(bench_calc %.3f '(a - b) / n' a="${PACED_P99SUM[doppel]}" b="${PACED_P99SUM[direct]}" n="$FIXED_RUNS")
p99_direct=$(bench_calc %.3f 's / n' s="${FIX_P99SUM[direct]}" n="$FIXED_RUNS")
p99_doppel=$(bench_calc %.3f 's / n' s="${FIX_P99SUM[doppel]}" n="$FIXED_RUNS")
added=$(bench_calc %.3f 'a - b' a="$p99_doppel" b="$p99_direct")
p50_added=$(bench_calc %.3f '(a - b) / n' a="${FIX_P50SUM[doppel]}" b="${FIX_P50SUM[direct]}" n="$FIXED_RUNS")

# ---------------------------------------------------------------- report
r0=$(bench_ratio "${RPS[doppel0]}" "${RPS[nginx]}")
r100=$(bench_ratio "${RPS[doppel100]}" "${RPS[nginx]}")
v100=$(bench_verdict "$r100" ">=" 1.0)
vadd=$(bench_verdict "$added" "<=" 0.3 ms)

section=$tmp/section.md
{
  echo "<!-- proxy:begin -->"
  echo "## Proxy"
  echo
  run_header
  echo
  echo "Setup, all on 127.0.0.1: upstream = nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), 1 worker, \`return 200\` of a fixed $body_len B JSON body (\`application/json\`), access_log off. nginx proxy = a second nginx, 1 worker, \`proxy_pass\` to an \`upstream\` block with \`keepalive 64\`, \`proxy_http_version 1.1\`, \`proxy_set_header Connection \"\"\`. doppel = \`doppel record --listen 127.0.0.1:0 --upstream UPSTREAM --threads 1 --sample 0|100 --session UNIQUE --store FRESH_DIR\`. Load: \`wrk -t1 -c$CONNS -d$DURATION --latency URL/api/items\` ($(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')), each after \`wrk -t1 -c$CONNS -d$WARMUP\` as warm-up."
  echo
  echo "| config | req/s | p50 ms | p99 ms | vs nginx proxy_pass | load before | wrk errors |"
  echo "|---|---:|---:|---:|---:|---|---|"
  for n in direct nginx doppel0 doppel100; do
    case $n in
      direct) label="direct to upstream" ;;
      nginx) label="nginx proxy_pass" ;;
      doppel0) label="doppel record, --sample 0" ;;
      doppel100) label="doppel record, --sample 100" ;;
    esac
    echo "| $label | ${RPS[$n]} | ${P50[$n]} | ${P99[$n]} | $(bench_ratio "${RPS[$n]}" "${RPS[nginx]}")× | ${LOAD[$n]} | ${ERRS[$n]:-none} |"
  done
  echo
  echo "doppel's own summaries: 0 %: \`${SUMMARY0}\`; 100 %: \`${SUMMARY100}\`."
  echo
  echo "**Throughput, 100 % recording: doppel/nginx = ${r100}× (target ≥ 1.0×): $v100.** At 0 %: ${r0}×."
  echo
  echo "### Added p99 at half of doppel's max load"
  echo
  echo "Fixed rate R = $half req/s = half of the doppel 100 % req/s above. wrk2: $wrk2_note. Generator: $fixed_method Each run: the upstream directly, then a fresh \`doppel record --threads 1 --sample 100\` (own store) in front of it."
  echo
  echo "| run | path | R req/s | achieved req/s | sent | p50 ms | p99 ms | generator lag p99 ms | load before |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---|"
  for row in "${FIX_ROWS[@]}"; do echo "$row"; done
  echo
  if ((${#PACED_ROWS[@]})); then
    echo "Cross-check with a second generator: \`wrk -t1 -c$CONNS -d$DURATION --latency -s paced.lua\` where paced.lua is \`function delay() return $delay_ms end\` (each connection waits $delay_ms ms before each request: ≈ $CONNS/$delay_ms ms ≈ R; closed loop per connection, latency from the actual send, so unlike the replay it does not count queueing behind a stall). Same runs, right after the replay on the same path (the doppel one against the same doppel process)."
    echo
    echo "| run | path | achieved req/s | requests | p50 ms | p99 ms | load before |"
    echo "|---|---|---:|---:|---:|---:|---|"
    for row in "${PACED_ROWS[@]}"; do echo "$row"; done
    echo
    echo "Added p99 with the paced wrk (mean over $FIXED_RUNS run(s)): $paced_added ms."
    echo
  fi
  echo "**Added p99 = mean doppel p99 − mean direct p99 over $FIXED_RUNS run(s) = $p99_doppel − $p99_direct = $added ms (target ≤ 0.3 ms): $vadd.** Added p50: $p50_added ms."
  echo "<!-- proxy:end -->"
} >"$section"

cat "$section"
if [[ -z "${NO_RESULTS:-}" ]]; then
  replace_results_section proxy "$section" "$results"
  log "updated $results"
fi
