#!/usr/bin/env bash
# Instructions and system calls per request, counted by Valgrind's callgrind and strace, for
# two doppel binaries: a comparison of CPU work that the machine's load does not move (req/s
# and CPU time do, a lot, on a shared 2-CPU machine).
#
#   bench/instr.sh [replay|proxy] BINARY_A BINARY_B [N]     default replay; N default 2500
#
# replay: each binary records its own session (its own store format) through `doppel record`
# from an nginx that answers gzip JSON with a per-request id in front (the "diffing --max" case
# of bench/replay.sh), then replays it under callgrind twice, `--max --loop --limit 500` and
# `--limit N`.
# proxy: each binary runs `doppel record --threads 1 --sample 100` under callgrind in front of
# an nginx answering the ~1 KB JSON body of bench/proxy.sh, once for 500 requests and once for
# N (sent by `doppel replay --max --concurrency 16` of B, outside callgrind): the work of
# proxying and recording a request (bench/proxy.sh's "--sample 100" case).
# Per request = (Ir(N) - Ir(500)) / (N - 500): start-up and shut-down (RocksDB open, flag
# parsing) cancel out. Kernel work is not in that count, so the same two runs under
# `strace -f -c` give the system calls per request (a futex wake or an extra read costs
# microseconds on a virtual machine). Writes the summary to stdout and to
# bench/runs/instr-<UTC time>/summary.md, and the callgrind files of the N runs under $tmp
# (KEEP_TMP=1 keeps them: `callgrind_annotate --inclusive=yes FILE` shows where the
# instructions go).
set -euo pipefail

cd "$(dirname "$0")/.."
mode=replay
if [[ ${1:-} == replay || ${1:-} == proxy ]]; then mode=$1; shift; fi
[[ $# -ge 2 ]] || { sed -n '2,23p' "$0" >&2; exit 2; }
bin_a=$1 bin_b=$2 n=${3:-2500} n0=500
for b in "$bin_a" "$bin_b"; do
  [[ -x $b ]] || { echo "instr.sh: '$b' is not an executable doppel binary" >&2; exit 2; }
done
[[ $n =~ ^[0-9]+$ ]] && ((n > n0)) || { echo "instr.sh: N must be a whole number > $n0" >&2; exit 2; }

NAME=instr
SKIP_BUILD=1
DOPPEL=$bin_a
source bench/common.sh
bench_install nginx:nginx wrk:wrk curl:curl valgrind:valgrind strace:strace

out=bench/runs/instr-$(date -u +%Y%m%dT%H%M%SZ)-$mode
mkdir -p "$out"

if [[ $mode == replay ]]; then
  start_gzip_json_upstream target-gzip
  UP=$UP_GZ
else
  start_json_upstream upstream
fi

# Instructions of one replay under callgrind (all threads): the "summary:" line of its file.
count_ir() {  # LABEL LIMIT STORE SESSION
  local file=$tmp/callgrind-$1-$2.out
  valgrind --tool=callgrind --callgrind-out-file="$file" \
    "$DOPPEL" --store "$3" replay --session "$4" --target "$UP" --max --concurrency 16 \
    --loop --limit "$2" --no-progress >"$tmp/replay-$1-$2.txt" 2>"$tmp/replay-$1-$2.err" || true
  grep -q "^$2 requests in" "$tmp/replay-$1-$2.txt" ||
    { echo "replay under callgrind ($1, $2) did not finish:" >&2; tail -5 "$tmp/replay-$1-$2.err" >&2; exit 1; }
  awk '/^(summary|totals):/ {print $2; exit}' "$file"
}

# System calls of one replay under strace -f -c, as "NAME COUNT" lines with the total last.
count_syscalls() {  # LABEL LIMIT STORE SESSION
  local file=$tmp/strace-$1-$2.txt
  strace -f -c -o "$file" \
    "$DOPPEL" --store "$3" replay --session "$4" --target "$UP" --max --concurrency 16 \
    --loop --limit "$2" --no-progress >/dev/null 2>&1 || true
  awk '$NF ~ /^[a-z_0-9]+$/ && $(NF-1) ~ /^[0-9]+$|^$/ && $4 ~ /^[0-9]+$/ {print $NF, $4}' "$file"
}

# Per request: (count at N - count at N0) / (N - N0) per system call, those above 0.05, the
# total first: "total 2.23, recvmsg 1.01, sendmsg 1.00, ...".
syscalls_per_request() {  # FILE_N0 FILE_N
  awk -v d="$((n - n0))" 'NR == FNR {a[$1] = $2; next} {v = ($2 - a[$1]) / d; if (v > 0.05) r[$1] = v}
    END {printf "total %.2f", r["total"]; for (k in r) if (k != "total") printf ", %s %.2f", k, r[k]; print ""}' "$1" "$2"
}

# proxy mode: runs `doppel record` ($DOPPEL) under TOOL... while LIMIT requests of the
# generator session go through it. count_proxy_ir LABEL LIMIT prints the Ir total;
# count_proxy_syscalls LABEL LIMIT prints "NAME COUNT" lines.
proxy_run() {  # NAME LIMIT TOOL...
  local name=$1 limit=$2
  shift 2
  DOPPEL_PREFIX=("$@")
  start_doppel "$name" --sample 100
  DOPPEL_PREFIX=()
  "$bin_b" --store "$gen_store" replay --session "$gen_session" --target "$rec_url" --max \
    --concurrency 16 --loop --limit "$limit" --no-diff --no-progress \
    >"$tmp/gen-$name.txt" 2>&1 || true
  grep -q "^$limit requests in" "$tmp/gen-$name.txt" ||
    { echo "the generator did not send $limit requests through $name:" >&2; tail -5 "$tmp/gen-$name.txt" >&2; exit 1; }
  # Under strace the signal goes to doppel (strace's child), not to strace.
  local pid=$rec_pid
  [[ $1 == strace ]] && pid=$(pgrep -P "$rec_pid" | head -1)
  stop_doppel "$name" "$pid"
  # Every request recorded (wait_http's probe too): the same work per request in A and B.
  local sampled stored
  sampled=$(sed -n 's/.*sampled \([0-9]*\),.*/\1/p' <<<"$rec_summary")
  stored=$(sed -n 's/.*stored \([0-9]*\),.*/\1/p' <<<"$rec_summary")
  [[ -n $sampled && $sampled -ge $limit && $stored == "$sampled" ]] ||
    { echo "$name did not record every request: $rec_summary" >&2; exit 1; }
}
count_proxy_ir() {  # LABEL LIMIT
  local file=$tmp/callgrind-$1-$2.out
  proxy_run "ir-$1-$2" "$2" valgrind --tool=callgrind --callgrind-out-file="$file"
  awk '/^(summary|totals):/ {print $2; exit}' "$file"
}
count_proxy_syscalls() {  # LABEL LIMIT
  local file=$tmp/strace-$1-$2.txt
  proxy_run "sys-$1-$2" "$2" strace -f -c -o "$file"
  awk '$NF ~ /^[a-z_0-9]+$/ && $(NF-1) ~ /^[0-9]+$|^$/ && $4 ~ /^[0-9]+$/ {print $NF, $4}' "$file"
}

if [[ $mode == proxy ]]; then
  # The generator's session: GET /api/items, recorded once through B.
  DOPPEL=$bin_b
  start_doppel gen --sample 100
  wrk -t1 -c4 -d1s "$rec_url/api/items" >/dev/null
  stop_doppel gen
  gen_store=$tmp/doppel-gen/store gen_session=bench-$NAME-gen-$$
fi

rows=()
for label in A B; do
  DOPPEL=$bin_a; [[ $label == B ]] && DOPPEL=$bin_b
  if [[ $mode == proxy ]]; then
    ir0=$(count_proxy_ir "$label" "$n0")
    ir1=$(count_proxy_ir "$label" "$n")
    count_proxy_syscalls "$label" "$n0" >"$tmp/sys-$label-$n0"
    count_proxy_syscalls "$label" "$n" >"$tmp/sys-$label-$n"
  else
    start_doppel "$label" --sample 100
    wrk -t1 -c4 -d1s -H 'Accept-Encoding: gzip' "$rec_url/api/items" >/dev/null
    stop_doppel "$label"
    log "$label: $rec_summary"
    session=bench-$NAME-$label-$$
    store=$tmp/doppel-$label/store
    # Not counted: the first open after recording replays RocksDB's log and flushes it, which
    # would fall on the first measured run only.
    "$DOPPEL" --store "$store" replay --session "$session" --target "$UP" --max --limit 100 \
      --no-progress >/dev/null 2>&1 || true
    ir0=$(count_ir "$label" "$n0" "$store" "$session")
    ir1=$(count_ir "$label" "$n" "$store" "$session")
    count_syscalls "$label" "$n0" "$store" "$session" >"$tmp/sys-$label-$n0"
    count_syscalls "$label" "$n" "$store" "$session" >"$tmp/sys-$label-$n"
  fi
  per=$(awk -v a="$ir0" -v b="$ir1" -v n0="$n0" -v n="$n" 'BEGIN {printf "%.0f", (b - a) / (n - n0)}')
  sys=$(syscalls_per_request "$tmp/sys-$label-$n0" "$tmp/sys-$label-$n")
  log "$label ($DOPPEL): Ir $ir0 at $n0 requests, $ir1 at $n: $per per request; system calls $sys"
  rows+=("$label|$DOPPEL|$ir0|$ir1|$per|$sys")
done

{
  if [[ $mode == proxy ]]; then
    echo "### Instructions per proxied and recorded request (callgrind), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "\`bench/instr.sh proxy A B $n\`: \`doppel record --threads 1 --sample 100\` in front of nginx"
    echo "answering a ~1 KB JSON body, driven by \`replay --max --concurrency 16\` (B, not counted)."
  else
    echo "### Instructions per diffed replay request (callgrind), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "\`bench/instr.sh A B $n\`: \`replay --max --concurrency 16 --loop\` of a session recorded by"
    echo "the same binary from nginx answering ~1 KB gzip JSON with a per-request id (every answer"
    echo "differs: gunzip both sides, JSON diff)."
  fi
  echo "Per request = (count at $n - count at $n0) / $((n - n0)), for callgrind's instructions"
  echo "(user space, all threads) and for strace's system calls."
  echo
  echo "| | binary | Ir, $n0 requests | Ir, $n requests | instructions per request | system calls per request |"
  echo "|---|---|---:|---:|---:|---|"
  for r in "${rows[@]}"; do
    IFS='|' read -r label bin ir0 ir1 per sys <<<"$r"
    echo "| $label | \`$bin\` | $ir0 | $ir1 | $per | $sys |"
  done
  IFS='|' read -r _ _ _ _ pa _ <<<"${rows[0]}"
  IFS='|' read -r _ _ _ _ pb _ <<<"${rows[1]}"
  echo
  echo "Instructions per request B/A = $(awk -v a="$pa" -v b="$pb" 'BEGIN {printf "%.3f", b / a}')"
} | tee "$out/summary.md"
