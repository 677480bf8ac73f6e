#!/usr/bin/env bash
# Adaptive mirroring benchmark (issue 17): the primary's throughput through doppel with an
# adaptive mirror that has turned slow stays within 10 % of doppel without a mirror, and the
# controller has backed the mirror off.
#
# In one run, on 127.0.0.1 only, with everything in a fresh temp dir:
#   upstream     nginx (1 worker) answering every request with a fixed ~1 KB JSON body
#   slow mirror  doppel-echo --threads 1 --latency 2s (holds any number of requests 2 s each)
#   A            doppel record --threads 1 --sample 0 (no mirror)
#   B            doppel record --threads 1 --sample 0 --mirror SLOW,percent=50,adaptive,
#                max-inflight=4 --mirror-budget errors=5%
# Per round, A and B are loaded at the same time (run_pair: wrk -t1 -c32 each, after a WARMUP
# of both during which B's controller backs off), so whatever else the machine runs weighs on
# both alike; B's effective mirror percentage and counters are read from /status at the end.
# Replaces the "adaptive" section of bench/RESULTS.md. Takes 1-3 min.
#
# Environment: BUILD_DIR (default build), SKIP_BUILD=1, DOPPEL, ECHO, DURATION (10s), WARMUP
# (10s: long enough for the back-off), CONNS (64), ROUNDS (3), SLOW (2s), LOAD_MAX (1.5),
# LOAD_WAIT (30), NO_RESULTS=1 (do not touch bench/RESULTS.md).
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SLOW=${SLOW:-2s}
WARMUP=${WARMUP:-10s}
LOAD_WAIT=${LOAD_WAIT:-30}

NAME=adaptive
source bench/common.sh
bench_install nginx:nginx wrk:wrk curl:curl

start_json_upstream upstream
start_slow_echo "$SLOW"

MIRROR_SPEC="$SLOW_MIRROR,percent=50,adaptive,max-inflight=4,name=adapt"
BUDGET="errors=5%"
# B's mirror at the end of a round, from /status.
adaptive_state() {
  curl -fsS "$1/status" | python3 -c '
import json, sys
m = json.load(sys.stdin)["mirrors"][0]
print("effective %.3g %%, sent %d, failed %d, dropped at max-inflight %d" % (
    m["effective_percent"], m["sent"], sum(m["failed"].values()), m["dropped"]["max_inflight"]))'
}

declare -a STATES=()
for round in $(seq "$ROUNDS"); do
  start_doppel "plain$round" --sample 0; a_pid=$rec_pid; a_url=$rec_url
  start_doppel "adaptive$round" --sample 0 --mirror "$MIRROR_SPEC" --mirror-budget "$BUDGET"
  b_pid=$rec_pid; b_url=$rec_url; b_admin=$rec_admin
  run_pair adaptive "$round" "doppel, no mirror" "$a_url" "$a_pid" \
    "doppel + adaptive mirror ($SLOW)" "$b_url" "$b_pid"
  STATES+=("| $round | $(adaptive_state "$b_admin") |")
  log "round $round: ${STATES[-1]}"
  rec_pid=$b_pid; stop_doppel "adaptive$round"
  rec_pid=$a_pid; stop_doppel "plain$round"
  sleep 3  # the slow mirror's held requests end
done

p_rps=$(bench_mean "${PAIR_RATIOS[adaptive]}")
p_cpu=$(bench_mean "${PAIR_CPU_RATIOS[adaptive]}")
section=$tmp/section.md
{
  echo "<!-- adaptive:begin -->"
  echo "## Adaptive mirroring"
  echo
  run_header " (ROUNDS=$ROUNDS)"
  echo
  echo "Setup, all on 127.0.0.1: upstream = nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), 1 worker, \`return 200\` of a fixed $body_len B JSON body. Slow mirror = \`doppel-echo --threads 1 --latency $SLOW\`. A = \`doppel record --threads 1 --sample 0\`; B = the same with \`--mirror SLOW,percent=50,adaptive,max-inflight=4,name=adapt --mirror-budget $BUDGET\`. Paired runs: A and B loaded at once, \`wrk -t1 -c$((CONNS / 2)) -d$DURATION --timeout 10s URL/api/items\` each, after a $WARMUP warm-up of both (B's controller backs the mirror off meanwhile). The CPU ratio is A's CPU µs per request over B's: what the req/s ratio becomes when the proxy's own core is the bottleneck."
  echo
  echo "| round | A | A req/s | A CPU µs/request | B | B req/s | B CPU µs/request | B/A req/s | A/B CPU per request | load before |"
  echo "|---|---|---:|---:|---|---:|---:|---:|---:|---|"
  for row in "${PAIR_ROWS[@]}"; do echo "$row"; done
  echo
  echo "B's mirror at the end of each round (\`/status\`):"
  echo
  echo "| round | adaptive mirror |"
  echo "|---|---|"
  for row in "${STATES[@]}"; do echo "$row"; done
  echo
  echo "**Verdict: primary throughput with the slow adaptive mirror / without a mirror, paired runs: ${p_rps}× by req/s — $(bench_verdict "$p_rps" ">=" 0.9); ${p_cpu}× by CPU per request — $(bench_verdict "$p_cpu" ">=" 0.9) (target ≥ 0.9×: within 10 %).**"
  echo "<!-- adaptive:end -->"
} >"$section"

cat "$section"
if [[ -z "${NO_RESULTS:-}" ]]; then
  replace_results_section adaptive "$section" "$results"
  log "updated $results"
fi
