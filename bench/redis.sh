#!/usr/bin/env bash
# Redis Streams benchmark (docs/distributed.md), two parts:
#   ingest    doppel-bench-redis: the same corpus into the RocksDB store (Store::Append) and
#             into a Redis stream (XADD pipelined, zstd with a dictionary), envelopes/s and CPU
#             per envelope, paired rounds in alternating order
#   recorder  wrk -t1 -c64 -> doppel record --threads 1 --sample 100 -> nginx upstream, with the
#             store sink (default) vs --sink redis://... (no store), paired runs interleaved
#             A B B A ... (ROUNDS pairs, default 2); target: Redis sink >= 0.9x the store sink
#   workers   a session of WORKER_N envelopes (GET /api/items recorded from the nginx upstream)
#             replayed with diffing to that upstream, --max --concurrency 64: one process
#             (replay --session) against groups of 1, 2 and 4 workers reading it from a stream
#             (replay --from redis://... --group); wall time to the last exit, CPU of the workers
#             and of redis-server per request; WORKER_ROUNDS rounds, order reversed every other
# redis-server: a fresh one on a free port, --save '' --appendonly no, 127.0.0.1 only.
# Every run's raw output is kept under bench/runs/redis-<UTC time>/; the section between
# <!-- redis:begin --> and <!-- redis:end --> of bench/RESULTS.md is replaced (NO_RESULTS=1:
# left alone). Environment: BUILD_DIR, SKIP_BUILD, DOPPEL, DURATION (10s), WARMUP (2s),
# CONNS (64), ROUNDS (2), N (20000 envelopes), INGEST_ROUNDS (3), WORKER_N (20000),
# WORKER_ROUNDS (2), LOAD_MAX, LOAD_WAIT.
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-2}
N=${N:-20000}
INGEST_ROUNDS=${INGEST_ROUNDS:-3}
WORKER_N=${WORKER_N:-20000}
WORKER_ROUNDS=${WORKER_ROUNDS:-2}

NAME=redis
source bench/common.sh
bench_install nginx:nginx wrk:wrk curl:curl redis-server:redis-server /usr/bin/time:time
if [[ -z "${SKIP_BUILD:-}" ]]; then
  cmake --build "$build_dir" -j2 --target doppel-bench-redis
fi
out=bench/runs/redis-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"

start_redis

# ---------------------------------------------------------------- ingest
log "ingest: doppel-bench-redis --n $N --rounds $INGEST_ROUNDS"
"$root/$build_dir/bench/doppel-bench-redis" --n "$N" --rounds "$INGEST_ROUNDS" \
  --redis "$REDIS/bench-ingest" --redis-pid "$redis_pid" --dir "$tmp/ingest" \
  >"$out/ingest.md" 2>"$out/ingest.log"

# ---------------------------------------------------------------- recorder
start_json_upstream upstream
run_recorder() {  # LABEL ROUND: one doppel record with that sink, one wrk; appends to rows
  local label=$1 round=$2 dir=$tmp/rec-$1-$2 sink=() rec_pid rec_url="" rps rc=0
  mkdir -p "$dir"
  [[ $label == redis ]] && sink=(--sink "$REDIS/bench-rec-$round")
  "$DOPPEL" --store "$dir/store" record --listen 127.0.0.1:0 --upstream "$UP" \
    --session "bench-$label-$round" --threads 1 --sample 100 "${sink[@]}" \
    >"$dir/stdout" 2>"$dir/stderr" &
  rec_pid=$!
  pids+=($rec_pid)
  for _ in $(seq 100); do
    rec_url=$(sed -n 's/^listening on \(.*\)$/http:\/\/\1/p' "$dir/stdout" | head -1)
    [[ -n "$rec_url" ]] && break
    sleep 0.1
  done
  [[ -n "$rec_url" ]] || { cat "$dir/stderr" >&2; exit 1; }
  wait_http "$rec_url/"
  wrk -t1 -c"$CONNS" -d"$WARMUP" "$rec_url/api/items" >/dev/null
  local load
  load=$(wait_load)
  wrk -t1 -c"$CONNS" -d"$DURATION" --latency "$rec_url/api/items" >"$out/wrk-$round-$label.txt"
  kill -INT "$rec_pid"
  wait "$rec_pid" || rc=$?
  cp "$dir/stdout" "$out/record-$round-$label.stdout"
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out/wrk-$round-$label.txt")
  local summary
  summary=$(grep -E '^(session|sink) ' "$dir/stdout" | paste -sd';' - | sed 's/|/\//g')
  log "round $round $label: $rps req/s (load $load, exit $rc)"
  rows+=("| $round | $label | $rps | $load | $summary |")
  RATE[$round-$label]=$rps
}
declare -A RATE
rows=()
for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2)); then order=(store redis); else order=(redis store); fi
  for label in "${order[@]}"; do run_recorder "$label" "$r"; done
done
ratios=()
for ((r = 1; r <= ROUNDS; r++)); do
  ratios+=("$(bench_ratio "${RATE[$r-redis]:-?}" "${RATE[$r-store]:-?}")")
done
mean_ratio=$(bench_mean "${ratios[*]}" %.2f)
verdict=$(bench_verdict "$mean_ratio" ">=" 0.9)

# ---------------------------------------------------------------- replay workers
STORE=$tmp/replay-store
record_session bench-workers "$WORKER_N"
"$DOPPEL" --store "$STORE" export bench-workers "$REDIS/bench-workers" >"$out/export.txt"
entries=$(redis-cli -p "$redis_port" XLEN bench-workers)
log "workers: $entries envelopes in stream bench-workers"
run_replay() {  # LABEL ROUND: LABEL = session (one process), or gW (a group of W workers)
  local label=$1 round=$2 dir=$out/replay-$2-$1 t0 t1 redis0 redis1 load i codes="" wpids=()
  mkdir -p "$dir"
  load=$(wait_load)
  redis0=$(cpu_ticks "$redis_pid")
  t0=$(date +%s.%N)
  if [[ $label == session ]]; then
    /usr/bin/time -f '%U %S' -o "$dir/time-0" "$DOPPEL" --store "$STORE" replay \
      --session bench-workers --target "$UP" --max --concurrency 64 --no-progress \
      >"$dir/out-0" 2>&1 &
    wpids+=($!)
  else
    for ((i = 0; i < ${label#g}; i++)); do
      /usr/bin/time -f '%U %S' -o "$dir/time-$i" "$DOPPEL" --store "$tmp/wstore-$round-$label-$i" \
        replay --from "$REDIS/bench-workers" --group "bench-$round-$label" --consumer "w$i" \
        --target "$UP" --max --concurrency 64 --no-progress >"$dir/out-$i" 2>&1 &
      wpids+=($!)
    done
  fi
  for i in "${wpids[@]}"; do
    local rc=0
    wait "$i" || rc=$?
    codes+="$rc "
  done
  t1=$(date +%s.%N)
  redis1=$(cpu_ticks "$redis_pid")
  local requests=$entries
  if [[ $label != session ]]; then  # what the group counted, from its merged report
    "$DOPPEL" --store "$STORE" report --from "$REDIS/bench-workers" --group "bench-$round-$label" \
      --report-json "$dir/group.json" >"$dir/report.txt" 2>&1 || true
    requests=$(tr -d ' \n' <"$dir/group.json" 2>/dev/null | grep -o '"requests":[0-9]*' | head -1 | cut -d: -f2)
    requests=${requests:-?}
  fi
  local wall cpu rps cpu_us redis_us
  wall=$(bench_calc %.3f 'b - a' a="$t0" b="$t1")
  cpu=$(for f in "$dir"/time-*; do tail -1 "$f"; done | awk '{s += $1 + $2} END {printf "%.2f", s}')
  rps=$(bench_calc %.0f 'n / w' n="$requests" w="$wall")
  cpu_us=$(bench_calc %.1f 'c * 1e6 / n' c="$cpu" n="$requests")
  redis_us=$(bench_calc %.1f '(b - a) / t * 1e6 / n' a="$redis0" b="$redis1" t="$(getconf CLK_TCK)" n="$requests")
  log "workers round $round $label: $requests requests in ${wall}s, $rps req/s, workers ${cpu_us} µs CPU/request, redis ${redis_us} (exit codes $codes; load $load)"
  wrows+=("| $round | $label | $requests | $wall | $rps | $cpu_us | $redis_us | ${codes% } | $load |")
  WRATE[$round-$label]=$rps
}
declare -A WRATE
wrows=()
worker_labels=(session g1 g2 g4)
for ((r = 1; r <= WORKER_ROUNDS; r++)); do
  order=("${worker_labels[@]}")
  ((r % 2)) || order=(g4 g2 g1 session)
  for label in "${order[@]}"; do run_replay "$label" "$r"; done
done
wsummary=()
for label in g1 g2 g4; do
  rs=()
  for ((r = 1; r <= WORKER_ROUNDS; r++)); do
    rs+=("$(bench_ratio "${WRATE[$r-$label]:-?}" "${WRATE[$r-session]:-?}")")
  done
  wsummary+=("$label/session ${rs[*]} (mean $(bench_mean "${rs[*]}" %.2f)×)")
done

machine="$(nproc) CPUs (nproc), $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}'), Linux $(uname -r)"
{
  echo "<!-- redis:begin -->"
  echo "## Redis Streams sink"
  echo
  echo "Run on $(date -u +%Y-%m-%dT%H:%M:%SZ) at commit $commit ($dirty files changed) with \`bench/redis.sh\`, $build_type build, $machine, $(redis-server --version | awk '{print $1, $2, $3}'), raw output in \`$out/\`. redis-server on 127.0.0.1, no persistence (\`--save '' --appendonly no\`), on the same 2 CPUs as everything else."
  echo
  echo "### Ingest: store Append vs Redis XADD"
  echo
  cat "$out/ingest.md"
  echo
  echo "### Recorder throughput: store sink vs Redis sink"
  echo
  echo "\`wrk -t1 -c$CONNS -d$DURATION --latency\` (after a $WARMUP warm-up) -> \`doppel record --threads 1 --sample 100\` -> nginx answering 1 KB JSON; store = no \`--sink\`, redis = \`--sink $REDIS/STREAM\` only. Paired, order alternating per round."
  echo
  echo "| round | sink | req/s | load before | doppel's summary |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Redis/store req/s per round: ${ratios[*]}; mean $mean_ratio× (target ≥ 0.9×: $verdict)."
  echo
  echo "### Replay: one process vs a group of 1, 2 and 4 workers"
  echo
  echo "Session: $entries envelopes of \`GET /api/items\` recorded from the nginx upstream (1 KB JSON), exported to a stream (\`doppel export\`). session = \`doppel replay --session S --target UP --max --concurrency 64\` (diffing on); gW = W workers started together, \`doppel replay --from $REDIS/STREAM --group G --consumer wI --target UP --max --concurrency 64\` each, a fresh group per run. Wall = from the start to the last worker's exit (process start and store open included: the same for every label). Requests of a group = its merged report's (\`doppel report --from ... --group\`), which must be the session's. CPU = user + system of the doppel processes (\`/usr/bin/time\`), and of redis-server, per request. Everything on the same $(nproc) CPUs, so more workers cannot add cores here: the table shows what the group's machinery costs, not how it scales on more machines."
  echo
  echo "| round | run | requests | wall s | req/s | doppel CPU µs/request | redis CPU µs/request | exit codes | load before |"
  echo "|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${wrows[@]}"
  echo
  echo "req/s against one process, per round: ${wsummary[*]}."
  echo "<!-- redis:end -->"
} >"$out/section.md"
cat "$out/section.md"

if [[ -z "${NO_RESULTS:-}" ]]; then
  replace_results_section redis "$out/section.md" "$results"
  log "updated $results"
fi
