#!/usr/bin/env bash
# Mirroring benchmark (issue 4, docs/architecture.md "Performance contract": proxy + 1 mirror ≥ 1.0×
# nginx + mirror; proxy with a mirror answering after 2 s ≥ 0.9× doppel without mirror).
#
# In one run, on 127.0.0.1 only, with everything in a fresh temp dir:
#   upstream     nginx (1 worker) answering every request with a fixed ~1 KB JSON body
#   mirror       a second nginx (1 worker) answering every request 200 "ok" (the fast mirror)
#   slow mirror  doppel-echo --threads 1 --latency 2s (asio timer: holds any number of
#                requests 2 s each without blocking; nginx 1.22 has no sleep directive)
#   nginx        proxy_pass (1 worker, upstream keepalive 64), without mirror / with
#                `mirror /mirror; mirror_request_body on;` to the mirror / to the slow mirror
#   doppel       doppel record --threads 1 --sample 0, without mirror / with
#                --mirror MIRROR (100 %) / with --mirror SLOW_MIRROR,timeout=5s (100 %)
# Each is measured with `wrk -t1 -c64 -d10s --latency --timeout 10s` after a 2 s warm-up, in
# ROUNDS rounds (nginx and doppel alternate inside a round), with the proxy's CPU time and
# (when perf can trace) its syscalls per request. Then, per round, the two comparisons that
# have targets are run *paired*: both sides loaded at the same time (wrk -c32 each), which
# cancels most of the noise of a shared machine. Finally replaces the "mirror" section of
# bench/RESULTS.md.
#
# A separate script from bench/proxy.sh (sharing bench/common.sh): it needs two more
# upstreams and three nginx configurations of its own, and can be re-run without
# re-measuring (and rewriting) the proxy section. It takes 5–15 min (more when it waits for
# the load to drop).
#
# Environment: BUILD_DIR (default build), SKIP_BUILD=1, DOPPEL (binary to measure), ECHO
# (doppel-echo binary), DURATION (10s), WARMUP (2s), CONNS (64), ROUNDS (2), SLOW (2s: the
# slow mirror's delay), LOAD_MAX (1.5) and LOAD_WAIT (30 s): before each measurement wait up
# to LOAD_WAIT s for the 1-minute load average to drop under LOAD_MAX (recorded either way),
# NO_RESULTS=1 (do not touch bench/RESULTS.md).
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-2}
SLOW=${SLOW:-2s}
LOAD_WAIT=${LOAD_WAIT:-30}

NAME=mirror
source bench/common.sh
bench_install nginx:nginx wrk:wrk curl:curl
# ---------------------------------------------------------------- upstreams
start_json_upstream upstream

mt_port=$(free_port)
start_nginx mirror-target "  server {
    listen 127.0.0.1:$mt_port;
    location / { default_type text/plain; return 200 'ok'; }
  }"
MIRROR=http://127.0.0.1:$mt_port
wait_http "$MIRROR/"

start_slow_echo "$SLOW"

# ---------------------------------------------------------------- nginx proxies
nginx_proxy() {  # NAME MIRROR_URL|"" -> sets proxy_url (not in a subshell: start_nginx records the pid)
  local name=$1 target=$2 port mirror_conf="" mirror_dir="" mirror_loc=""
  port=$(free_port)
  if [[ -n "$target" ]]; then
    mirror_conf="  upstream mirror_$name { server ${target#http://}; keepalive 64; }"
    mirror_dir="      mirror /mirror;
      mirror_request_body on;"
    mirror_loc="    location = /mirror {
      internal;
      proxy_pass http://mirror_$name\$request_uri;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
    }"
  fi
  start_nginx "proxy-$name" "  upstream backend { server 127.0.0.1:$up_port; keepalive 64; }
$mirror_conf
  server {
    listen 127.0.0.1:$port;
    location / {
$mirror_dir
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
    }
$mirror_loc
  }"
  proxy_url="http://127.0.0.1:$port"
  proxy_master=${pids[-1]}
}
# The worker of an nginx master (1 worker each): the process whose CPU time is measured.
nginx_worker() {
  local w=""
  for _ in $(seq 50); do w=$(pgrep -P "$1" | head -1); [[ -n "$w" ]] && break; sleep 0.1; done
  echo "$w"
}
nginx_proxy plain ""; NGX_PLAIN=$proxy_url; NGX_PLAIN_MASTER=$proxy_master
nginx_proxy fast "$MIRROR"; NGX_MIRROR=$proxy_url; NGX_MIRROR_MASTER=$proxy_master
nginx_proxy slow "$SLOW_MIRROR"; NGX_SLOW=$proxy_url; NGX_SLOW_MASTER=$proxy_master
for u in "$NGX_PLAIN" "$NGX_MIRROR" "$NGX_SLOW"; do
  wait_http "$u/" || { tail -n 20 "$tmp"/nginx-proxy-*/logs/* >&2; exit 1; }
done
NGX_PLAIN_PID=$(nginx_worker "$NGX_PLAIN_MASTER")
NGX_MIRROR_PID=$(nginx_worker "$NGX_MIRROR_MASTER")
NGX_SLOW_PID=$(nginx_worker "$NGX_SLOW_MASTER")

# ---------------------------------------------------------------- doppel

# ---------------------------------------------------------------- wrk
declare -A RPS P50 P99 LOAD ERRS SUMMARY CPU SYSC
# Syscalls per request (perf's raw_syscalls tracepoint), when perf may trace: a count of work
# done that, unlike req/s and CPU time, does not depend on how busy the machine is.
PERF_OK=""
if command -v perf >/dev/null 2>&1 &&
   perf stat -x, -e raw_syscalls:sys_enter -o /dev/null -- true >/dev/null 2>&1; then
  PERF_OK=1
fi
duration_s=$(secs "$DURATION")
run_wrk() {  # KEY URL PROXY_PID -> RPS[KEY], CPU[KEY] (proxy CPU µs per request) ...
  local key=$1 url=$2 pid=$3 out=$tmp/wrk-$1.txt c0 c1 n
  wrk -t1 -c"$CONNS" -d"$WARMUP" --timeout 10s "$url/api/items" >/dev/null
  LOAD[$key]=$(wait_load)
  log "$key: wrk -t1 -c$CONNS -d$DURATION --latency --timeout 10s $url/api/items (load ${LOAD[$key]})"
  c0=$(cpu_ticks "$pid")
  local sp=""
  if [[ -n "$PERF_OK" ]]; then
    perf stat -x, -e raw_syscalls:sys_enter -p "$pid" -o "$out.perf" -- sleep "$duration_s" \
      >/dev/null 2>&1 &
    sp=$!
  fi
  wrk -t1 -c"$CONNS" -d"$DURATION" --latency --timeout 10s "$url/api/items" >"$out"
  c1=$(cpu_ticks "$pid")
  [[ -n "$sp" ]] && wait "$sp"
  n=$(awk '/requests in/ {print $1; exit}' "$out")
  SYSC[$key]="n/a"
  if [[ -n "$sp" ]]; then
    SYSC[$key]=$(awk -F, -v n="$n" '$3 ~ /raw_syscalls/ { if (n > 0) printf "%.2f", $1 / n }' "$out.perf")
  fi
  CPU[$key]=$(awk -v c=$((c1 - c0)) -v n="$n" -v hz="$clk_tck" 'BEGIN { if (n > 0) printf "%.1f", c * 1e6 / hz / n; else print "?" }')
  RPS[$key]=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
  P50[$key]=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
  P99[$key]=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
  ERRS[$key]=$(grep -E 'Non-2xx|Socket errors' "$out" | tr -s ' ' | paste -sd';' - || true)
  log "$key: ${RPS[$key]} req/s, p50 ${P50[$key]} ms, p99 ${P99[$key]} ms, proxy CPU ${CPU[$key]} µs/request, ${SYSC[$key]} syscalls/request ${ERRS[$key]}"
}
# doppel's mirror counters from /status, as "sent S, dropped at cap D, failed F".
doppel_mirror_counts() {
  curl -fsS "$rec_admin/status" | python3 -c '
import json, sys
for m in json.load(sys.stdin).get("mirrors", []):
    print("sent %d, succeeded %d, failed %d, dropped at max-inflight %d, in flight %d, mirror p50 <= %s us, primary p50 <= %s us" % (
        m["sent"], m["succeeded"], sum(m["failed"].values()), m["dropped"]["max_inflight"],
        m["inflight"], m["latency_p50_us_le"], m["primary_latency_p50_us_le"]))' 2>/dev/null || echo "?"
}

CONFIGS=(nginx nginx_mirror nginx_slow doppel doppel_mirror doppel_slow)
declare -A RPS_ROUNDS CPU_ROUNDS SYSC_ROUNDS
# Per configuration, the rounds' figures as a list ("?" where one was not measured).
for c in "${CONFIGS[@]}"; do RPS_ROUNDS[$c]=""; CPU_ROUNDS[$c]=""; SYSC_ROUNDS[$c]=""; done

for round in $(seq "$ROUNDS"); do
  run_wrk "nginx.$round" "$NGX_PLAIN" "$NGX_PLAIN_PID"
  start_doppel "plain$round" --sample 0
  run_wrk "doppel.$round" "$rec_url" "$rec_pid"
  stop_doppel "plain$round"; SUMMARY[doppel.$round]=$rec_summary

  run_wrk "nginx_mirror.$round" "$NGX_MIRROR" "$NGX_MIRROR_PID"
  start_doppel "mirror$round" --sample 0 --mirror "$MIRROR,name=mirror"
  run_wrk "doppel_mirror.$round" "$rec_url" "$rec_pid"
  SUMMARY[doppel_mirror.$round]="$(doppel_mirror_counts)"
  stop_doppel "mirror$round"

  run_wrk "nginx_slow.$round" "$NGX_SLOW" "$NGX_SLOW_PID"
  sleep 3  # let nginx's last slow subrequests finish before doppel is measured
  start_doppel "slow$round" --sample 0 --mirror "$SLOW_MIRROR,name=slow,timeout=5s"
  run_wrk "doppel_slow.$round" "$rec_url" "$rec_pid"
  SUMMARY[doppel_slow.$round]="$(doppel_mirror_counts)"
  stop_doppel "slow$round"
  sleep 3

  # The same comparisons, paired: both sides loaded at once.
  start_doppel "pplain$round" --sample 0; a_pid=$rec_pid; a_url=$rec_url
  start_doppel "pslow$round" --sample 0 --mirror "$SLOW_MIRROR,name=slow,timeout=5s"; b_pid=$rec_pid; b_url=$rec_url
  run_pair slow "$round" "doppel, no mirror" "$a_url" "$a_pid" "doppel + $SLOW mirror" "$b_url" "$b_pid"
  rec_pid=$b_pid; stop_doppel "pslow$round"
  rec_pid=$a_pid; stop_doppel "pplain$round"
  sleep 3
  start_doppel "pmirror$round" --sample 0 --mirror "$MIRROR,name=mirror"
  run_pair mirror "$round" "nginx + mirror" "$NGX_MIRROR" "$NGX_MIRROR_PID" "doppel + mirror" "$rec_url" "$rec_pid"
  stop_doppel "pmirror$round"

  for c in "${CONFIGS[@]}"; do
    RPS_ROUNDS[$c]+="${RPS[$c.$round]:-?} "
    CPU_ROUNDS[$c]+="${CPU[$c.$round]:-?} "
    SYSC_ROUNDS[$c]+="${SYSC[$c.$round]:-?} "
  done
done

# ---------------------------------------------------------------- report
p_slow=$(bench_mean "${PAIR_RATIOS[slow]}")
p_mirror=$(bench_mean "${PAIR_RATIOS[mirror]}")
pc_slow=$(bench_mean "${PAIR_CPU_RATIOS[slow]}")
pc_mirror=$(bench_mean "${PAIR_CPU_RATIOS[mirror]}")
declare -A MEAN MEANCPU MEANSYS
for c in "${CONFIGS[@]}"; do
  MEAN[$c]=$(bench_mean "${RPS_ROUNDS[$c]}" %.0f)
  MEANCPU[$c]=$(bench_mean "${CPU_ROUNDS[$c]}" %.1f)
  MEANSYS[$c]=$(bench_mean "${SYSC_ROUNDS[$c]}" %.2f)
done
s_mirror=$(bench_ratio "${MEANSYS[nginx_mirror]}" "${MEANSYS[doppel_mirror]}" %.3f)
s_slow=$(bench_ratio "${MEANSYS[doppel]}" "${MEANSYS[doppel_slow]}" %.3f)
c_mirror=$(bench_ratio "${MEANCPU[nginx_mirror]}" "${MEANCPU[doppel_mirror]}" %.3f)
c_slow=$(bench_ratio "${MEANCPU[doppel]}" "${MEANCPU[doppel_slow]}" %.3f)
r_mirror=$(bench_ratio "${MEAN[doppel_mirror]}" "${MEAN[nginx_mirror]}" %.3f)
r_slow=$(bench_ratio "${MEAN[doppel_slow]}" "${MEAN[doppel]}" %.3f)
r_nginx_slow=$(bench_ratio "${MEAN[nginx_slow]}" "${MEAN[nginx]}" %.3f)
r_nginx_mirror=$(bench_ratio "${MEAN[nginx_mirror]}" "${MEAN[nginx]}" %.3f)
r_doppel_mirror=$(bench_ratio "${MEAN[doppel_mirror]}" "${MEAN[doppel]}" %.3f)
label() {
  case $1 in
    nginx) echo "nginx proxy_pass, no mirror" ;;
    nginx_mirror) echo "nginx proxy_pass + mirror (fast mirror)" ;;
    nginx_slow) echo "nginx proxy_pass + mirror answering after $SLOW" ;;
    doppel) echo "doppel record --sample 0, no mirror" ;;
    doppel_mirror) echo "doppel record --sample 0 --mirror FAST (100 %)" ;;
    doppel_slow) echo "doppel record --sample 0 --mirror SLOW,timeout=5s (100 %)" ;;
  esac
}

section=$tmp/section.md
{
  echo "<!-- mirror:begin -->"
  echo "## Mirroring"
  echo
  run_header " (ROUNDS=$ROUNDS)" "nginx and doppel alternate within each round so both see similar load."
  echo
  echo "Setup, all on 127.0.0.1: upstream = nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), 1 worker, \`return 200\` of a fixed $body_len B JSON body. Fast mirror target = a second nginx, 1 worker, \`return 200 'ok'\`. Slow mirror target = \`doppel-echo --threads 1 --latency $SLOW\` (a timer per request, so it holds any number of requests; one request took $slow_check s). nginx proxy = 1 worker, \`proxy_pass\` to an \`upstream\` block with \`keepalive 64\`, \`proxy_http_version 1.1\`, \`proxy_set_header Connection \"\"\`; with a mirror it adds \`mirror /mirror; mirror_request_body on;\` and \`location = /mirror { internal; proxy_pass http://mirror_upstream\$request_uri; }\` (again HTTP/1.1 keep-alive, \`keepalive 64\`). doppel = \`doppel record --threads 1 --sample 0 [--mirror URL[,timeout=5s]]\` (own fresh store each run; the mirror at the default 100 %, max-inflight 1000; timeout 5 s for the slow mirror so its answers arrive rather than time out). Load: \`wrk -t1 -c$CONNS -d$DURATION --latency --timeout 10s URL/api/items\` ($(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')), each after a $WARMUP warm-up."
  echo
  echo "### Separate runs"
  echo
  echo "\"proxy CPU\" is the user + system CPU time of the proxy process (the nginx worker, or doppel) during the measured run divided by the requests wrk completed: it depends less on what else the machine runs than req/s does, but still varies with it (cache and scheduler effects). \"syscalls\" is the number of system calls the proxy process made per request (perf's \`raw_syscalls:sys_enter\` tracepoint over the same run; n/a without perf): a count of work, independent of the machine's load — a sound measure of the extra work of a mirror in the same program (doppel with vs without), only a rough one between nginx and doppel, which do different amounts of user-space work per call. The ratios are given all three ways."
  echo
  echo "| round | config | req/s | p50 ms | p99 ms | proxy CPU µs/request | syscalls/request | load before | wrk errors | doppel mirror counters at the end of the run |"
  echo "|---|---|---:|---:|---:|---:|---:|---|---|---|"
  for round in $(seq "$ROUNDS"); do
    for c in "${CONFIGS[@]}"; do
      k=$c.$round
      echo "| $round | $(label "$c") | ${RPS[$k]} | ${P50[$k]} | ${P99[$k]} | ${CPU[$k]} | ${SYSC[$k]} | ${LOAD[$k]} | ${ERRS[$k]:-none} | ${SUMMARY[$k]:-} |"
    done
  done
  echo
  echo "Means over $ROUNDS round(s), req/s: $(for c in "${CONFIGS[@]}"; do printf '%s %s; ' "$c" "${MEAN[$c]}"; done)"
  echo
  echo "Means over $ROUNDS round(s), proxy CPU µs/request: $(for c in "${CONFIGS[@]}"; do printf '%s %s; ' "$c" "${MEANCPU[$c]}"; done)"
  echo
  echo "Means over $ROUNDS round(s), proxy syscalls/request: $(for c in "${CONFIGS[@]}"; do printf '%s %s; ' "$c" "${MEANSYS[$c]}"; done)"
  echo
  echo "### Paired runs"
  echo
  echo "Two proxies loaded at the same time, \`wrk -t1 -c$((CONNS / 2)) -d$DURATION --timeout 10s\` each (after a $WARMUP warm-up of both): whatever else the machine runs weighs on both alike, so their ratio is much steadier than that of two runs minutes apart. The two share the 2 CPUs, the upstream and the mirror target, so the absolute req/s are lower than above. Caveat: with the CPUs saturated the scheduler gives the busier process more CPU time, so the paired req/s ratio understates a difference in cost; the paired CPU-per-request ratio does not, and it is what the req/s ratio becomes when the proxy's own core is the bottleneck (1 proxy thread, as in the contract). It is therefore the verdict below."
  echo
  echo "| round | A | A req/s | A CPU µs/request | B | B req/s | B CPU µs/request | B/A req/s | A/B CPU per request | load before |"
  echo "|---|---|---:|---:|---|---:|---:|---:|---:|---|"
  for row in "${PAIR_ROWS[@]}"; do echo "$row"; done
  echo
  echo "### Verdict"
  echo
  echo "| ratio | value | target | verdict |"
  echo "|---|---:|---:|---|"
  echo "| doppel + 1 mirror / nginx + mirror, req/s, paired runs | ${p_mirror}× | ≥ 1.0× | $(bench_verdict "$p_mirror" ">=" 1.0) |"
  echo "| the same, CPU per request, paired runs (nginx µs / doppel µs) | ${pc_mirror}× | ≥ 1.0× | $(bench_verdict "$pc_mirror" ">=" 1.0) |"
  echo "| doppel + 1 mirror / nginx + mirror, req/s, separate runs | ${r_mirror}× | ≥ 1.0× | $(bench_verdict "$r_mirror" ">=" 1.0) |"
  echo "| the same by CPU per request (nginx µs / doppel µs) | ${c_mirror}× | ≥ 1.0× | $(bench_verdict "$c_mirror" ">=" 1.0) |"
  [[ -n "$PERF_OK" ]] && echo "| the same by syscalls per request (nginx / doppel; rough) | ${s_mirror}× | ≥ 1.0× | $(bench_verdict "$s_mirror" ">=" 1.0) |"
  echo "| doppel with the $SLOW mirror / doppel without mirror, req/s, paired runs | ${p_slow}× | ≥ 0.9× | $(bench_verdict "$p_slow" ">=" 0.9) |"
  echo "| the same, CPU per request, paired runs (without µs / with µs) | ${pc_slow}× | ≥ 0.9× | $(bench_verdict "$pc_slow" ">=" 0.9) |"
  echo "| doppel with the $SLOW mirror / doppel without mirror, req/s, separate runs | ${r_slow}× | ≥ 0.9× | $(bench_verdict "$r_slow" ">=" 0.9) |"
  echo "| the same by CPU per request (without µs / with µs) | ${c_slow}× | ≥ 0.9× | $(bench_verdict "$c_slow" ">=" 0.9) |"
  [[ -n "$PERF_OK" ]] && echo "| the same by syscalls per request (without / with) | ${s_slow}× | ≥ 0.9× | $(bench_verdict "$s_slow" ">=" 0.9) |"
  echo "| nginx with the $SLOW mirror / nginx without mirror | ${r_nginx_slow}× | (reference) | |"
  echo "| nginx + fast mirror / nginx without mirror | ${r_nginx_mirror}× | (reference) | |"
  echo "| doppel + fast mirror / doppel without mirror | ${r_doppel_mirror}× | (reference) | |"
  echo
  echo "**Verdict (paired runs, CPU per request): doppel + 1 mirror vs nginx + mirror ${pc_mirror}× (target ≥ 1.0×): $(bench_verdict "$pc_mirror" ">=" 1.0). doppel with a $SLOW mirror vs without ${pc_slow}× (target ≥ 0.9×): $(bench_verdict "$pc_slow" ">=" 0.9).** Paired req/s: ${p_mirror}× and ${p_slow}×."
  echo
  echo "Separate runs: doppel + 1 mirror vs nginx + mirror (target ≥ 1.0×): ${r_mirror}× by req/s — $(bench_verdict "$r_mirror" ">=" 1.0); ${c_mirror}× by CPU per request — $(bench_verdict "$c_mirror" ">=" 1.0); ${s_mirror}× by syscalls per request — $(bench_verdict "$s_mirror" ">=" 1.0). doppel with a $SLOW mirror vs without (target ≥ 0.9×): ${r_slow}× by req/s — $(bench_verdict "$r_slow" ">=" 0.9); ${c_slow}× by CPU per request — $(bench_verdict "$c_slow" ">=" 0.9); ${s_slow}× by syscalls per request — $(bench_verdict "$s_slow" ">=" 0.9). nginx with the same slow mirror keeps ${r_nginx_slow}× of its own throughput. On this shared machine the req/s and CPU ratios move by ±30 % between rounds of the same configuration (see the table); the syscall counts do not."
  echo "<!-- mirror:end -->"
} >"$section"

cat "$section"
if [[ -z "${NO_RESULTS:-}" ]]; then
  replace_results_section mirror "$section" "$results"
  log "updated $results"
fi
