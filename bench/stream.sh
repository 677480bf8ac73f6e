#!/usr/bin/env bash
# Streaming benchmark (issue 23): what a proxy in front of a streaming endpoint costs.
#
# In one run, on 127.0.0.1 only, with everything in a fresh temp dir:
#   origin (events)  a Python asyncio server: every GET is answered at once with the head of a
#                    chunked text/event-stream and its first event, then HOLD later the second
#                    event and the end
#   origin (files)   nginx (1 worker, sendfile) serving a SIZE_MB file and a 100 MB file
#   nginx proxy      nginx (1 worker) proxy_pass to either origin with `proxy_buffering off`
#                    (how nginx is set up in front of a stream) and `proxy_buffer_size 256k`
#                    (doppel's piece size; with nginx's default 4 KiB it reads 4 KiB at a time)
#   doppel           doppel record --threads 1 in front of either origin (capture on, 100 %,
#                    default --capture-body-limit)
# Measures:
#   1. time to first byte of a streamed response: TTFB_N requests each, interleaved direct /
#      nginx / doppel, curl's time_starttransfer (the head and the first event come in one write
#      from the origin); the added ms is the median through the proxy minus the median direct;
#   2. throughput of one SIZE_MB download, doppel vs nginx, ROUNDS interleaved pairs (curl -o
#      /dev/null, speed_download); target ≥ 0.9× nginx;
#   3. doppel's peak RSS (VmHWM) while 64 clients download 100 MB each at once, RSS_ROUNDS
#      rounds one after another (what a round leaves behind shows in the next); target
#      < 150 MB;
#   4. throughput of one SIZE_MB upload (curl -T, a PUT with Content-Length) to the file
#      origin's WebDAV PUT (written to /dev/shm), ROUNDS interleaved pairs, doppel (its body
#      over --request-buffer streams) vs nginx with `proxy_request_buffering off`; doppel's
#      peak RSS over the uploads (VmHWM reset before them).
# Replaces the "stream" section of bench/RESULTS.md. Takes 1-3 min.
#
# Environment: BUILD_DIR (default build), SKIP_BUILD=1, DOPPEL, ROUNDS (5), TTFB_N (30),
# SIZE_MB (1024), HOLD (0.3), PARALLEL (64), RSS_ROUNDS (3), LOAD_MAX (1.5), LOAD_WAIT (60),
# NO_RESULTS=1 (do not touch bench/RESULTS.md).
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
TTFB_N=${TTFB_N:-30}
SIZE_MB=${SIZE_MB:-1024}
HOLD=${HOLD:-0.3}
PARALLEL=${PARALLEL:-64}
RSS_ROUNDS=${RSS_ROUNDS:-3}

NAME=stream
source bench/common.sh
bench_install nginx:nginx curl:curl python3:python3

# ---------------------------------------------------------------- origins
files=$tmp/files  # read from the page cache after the first download
mkdir -p "$files"
chmod 755 "$tmp" "$files"  # nginx's worker user reads them
log "writing ${SIZE_MB} MB and 100 MB files to $files"
head -c "$((SIZE_MB * 1024 * 1024))" /dev/zero | tr '\0' 'a' >"$files/big.bin"
head -c "$((100 * 1024 * 1024))" /dev/zero | tr '\0' 'b' >"$files/100m.bin"
echo ok >"$files/index.html"  # what start_doppel's readiness check gets

events_port=$(free_port)
cat >"$tmp/events.py" <<EOF
import asyncio

def chunk(data):
    return b"%x\r\n" % len(data) + data + b"\r\n"

async def handle(reader, writer):
    try:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                         b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
                         + chunk(b"data: event 1\n\n"))
            await writer.drain()
            await asyncio.sleep($HOLD)
            writer.write(chunk(b"data: event 2\n\n") + b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", $events_port)
    async with server:
        await server.serve_forever()

asyncio.run(main())
EOF
/usr/bin/python3 "$tmp/events.py" &
pids+=($!)
EVENTS=http://127.0.0.1:$events_port

files_port=$(free_port)
# PUT /upload/NAME is written to $shm/upload/NAME (memory, so a disk does not set the pace).
shm=$(mktemp -d /dev/shm/doppel-bench-stream.XXXXXX)
chmod 777 "$shm"
trap 'rc=$?; rm -rf "$shm"; (exit $rc); cleanup' EXIT  # common.sh's cleanup, with its exit code
start_nginx files "  sendfile on;
  client_max_body_size 0;
  server {
    listen 127.0.0.1:$files_port;
    root $files;
    location /upload/ {
      root $shm;
      client_body_temp_path $shm/body;
      dav_methods PUT;
      create_full_put_path on;
    }
  }"
FILES=http://127.0.0.1:$files_port
wait_http "$FILES/100m.bin" 2>/dev/null || true
for _ in $(seq 100); do curl -fsS -o /dev/null "$EVENTS/events" 2>/dev/null && break; sleep 0.1; done

nginx_events_port=$(free_port)
nginx_files_port=$(free_port)
start_nginx proxy "  proxy_http_version 1.1;
  proxy_buffering off;
  proxy_buffer_size 256k;
  proxy_buffers 8 256k;
  proxy_busy_buffers_size 512k;
  proxy_request_buffering off;
  client_max_body_size 0;
  proxy_set_header Connection '';
  upstream events { server 127.0.0.1:$events_port; keepalive 16; }
  upstream files { server 127.0.0.1:$files_port; keepalive 16; }
  server { listen 127.0.0.1:$nginx_events_port; location / { proxy_pass http://events; } }
  server { listen 127.0.0.1:$nginx_files_port; location / { proxy_pass http://files; } }"
NGINX_EVENTS=http://127.0.0.1:$nginx_events_port
NGINX_FILES=http://127.0.0.1:$nginx_files_port
wait_http "$NGINX_FILES/100m.bin"

UP=$EVENTS
start_doppel events
doppel_events=$rec_url
events_pid=$rec_pid
UP=$FILES
start_doppel files --max-request-body 2GiB
doppel_files=$rec_url
files_pid=$rec_pid

# ---------------------------------------------------------------- 1. time to first byte
ttfb() { curl -fsS -o /dev/null -w '%{time_starttransfer}\n' "$1/events"; }
median_ms() { sort -n "$1" | awk '{v[NR] = $1} END {
  if (NR == 0) { print "?"; exit }
  m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.3f", m * 1000 }'; }
p90_ms() { sort -n "$1" | awk '{v[NR] = $1} END {
  if (NR == 0) { print "?"; exit }
  i = int(NR * 0.9 + 0.999); if (i > NR) i = NR; printf "%.3f", v[i] * 1000 }'; }
load_ttfb=$(wait_load)
log "TTFB: $TTFB_N requests each, interleaved (load $load_ttfb)"
: >"$tmp/ttfb-direct"; : >"$tmp/ttfb-nginx"; : >"$tmp/ttfb-doppel"
for i in $(seq "$TTFB_N"); do
  ttfb "$EVENTS" >>"$tmp/ttfb-direct"
  ttfb "$NGINX_EVENTS" >>"$tmp/ttfb-nginx"
  ttfb "$doppel_events" >>"$tmp/ttfb-doppel"
done
# The whole stream through doppel still takes HOLD: the first event did not wait for it.
total_doppel=$(curl -fsS -o /dev/null -w '%{time_total}' "$doppel_events/events")
t_direct=$(median_ms "$tmp/ttfb-direct")
t_nginx=$(median_ms "$tmp/ttfb-nginx")
t_doppel=$(median_ms "$tmp/ttfb-doppel")
add_nginx=$(bench_calc %.3f 'a - b' a="$t_nginx" b="$t_direct")
add_doppel=$(bench_calc %.3f 'a - b' a="$t_doppel" b="$t_direct")
log "TTFB medians: direct $t_direct ms, nginx $t_nginx ms, doppel $t_doppel ms"

# ---------------------------------------------------------------- 2. one big download
mb() { bench_calc %.0f 'a / 1048576' a="$1"; }
# paired ROWS LABEL FN: ROUNDS rounds of FN URL (prints bytes/s) through nginx and doppel,
# interleaved with the order alternating by round, then direct; a table row per round is
# appended to the array ROWS, and paired_ratio is the mean doppel / nginx.
paired() {
  local -n rows=$1
  local label=$2 fn=$3 ratios="" round load v_nginx v_doppel v_direct r
  for round in $(seq "$ROUNDS"); do
    load=$(wait_load)
    if ((round % 2)); then
      v_nginx=$($fn "$NGINX_FILES"); v_doppel=$($fn "$doppel_files")
    else
      v_doppel=$($fn "$doppel_files"); v_nginx=$($fn "$NGINX_FILES")
    fi
    v_direct=$($fn "$FILES")
    r=$(bench_ratio "$v_doppel" "$v_nginx" %.3f)
    ratios+="$r "
    rows+=("| $round | $(mb "$v_direct") | $(mb "$v_nginx") | $(mb "$v_doppel") | ${r}× | $load |")
    log "$label $round: direct $(mb "$v_direct"), nginx $(mb "$v_nginx"), doppel $(mb "$v_doppel") MB/s"
  done
  paired_ratio=$(bench_mean "$ratios")
}
speed() { curl -fsS -o /dev/null -w '%{speed_download}' "$1/big.bin"; }
declare -a DL_ROWS=()
paired DL_ROWS download speed
dl_ratio=$paired_ratio

# ---------------------------------------------------------------- 3. RSS under 64 downloads
# RSS_ROUNDS rounds one after another: memory the process keeps after a round (a memtable of
# captured bodies, allocator caches) shows in the later rounds' peaks, not in the first's.
rss_before=$(awk '/VmRSS/ {print $2}' "/proc/$files_pid/status")
load_rss=$(wait_load)
peak_sampled=0
complete=0
par_secs=""
rss_after=""
running() { local p; for p in "${curls[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
for round in $(seq "$RSS_ROUNDS"); do
  log "RSS $round: $PARALLEL downloads of 100 MB at once through doppel (load $(cut -d" " -f1-3 /proc/loadavg))"
  t0=$(date +%s.%N)
  curls=()
  for i in $(seq "$PARALLEL"); do
    curl -sS -o /dev/null -w '%{size_download}\n' "$doppel_files/100m.bin" >"$tmp/par-$round-$i" &
    curls+=($!)
  done
  while running; do
    now=$(awk '/VmRSS/ {print $2}' "/proc/$files_pid/status")
    ((now > peak_sampled)) && peak_sampled=$now
    sleep 0.05
  done
  for p in "${curls[@]}"; do wait "$p" || true; done
  t1=$(date +%s.%N)
  par_secs+="$(bench_calc %.1f 'b - a' a="$t0" b="$t1") s, "
  rss_after+="$(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$files_pid/status") MB, "
done
par_secs=${par_secs%, }
rss_after=${rss_after%, }
complete=$(cat "$tmp"/par-* | awk -v want=$((100 * 1024 * 1024)) '$1 == want {n++} END {print n + 0}')
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$files_pid/status")
hwm_mb=$(bench_calc %.1f 'a / 1024' a="$hwm")
log "RSS: peak (VmHWM) $hwm_mb MB, $complete of $((RSS_ROUNDS * PARALLEL)) downloads complete ($par_secs); RSS after each round $rss_after"

# ---------------------------------------------------------------- 4. one big upload
upload() { curl -fsS -o /dev/null -T "$files/big.bin" -w '%{speed_upload}' "$1/upload/big.bin"; }
echo 5 >"/proc/$files_pid/clear_refs"  # VmHWM from here on
rss_before_up=$(awk '/VmRSS/ {print $2}' "/proc/$files_pid/status")
declare -a UP_ROWS=()
paired UP_ROWS upload upload
up_ratio=$paired_ratio
up_hwm_mb=$(bench_calc %.1f 'a / 1024' a="$(awk '/VmHWM/ {print $2}' "/proc/$files_pid/status")")
log "uploads: doppel / nginx ${up_ratio}x, doppel peak RSS $up_hwm_mb MB"

UP=$FILES; rec_pid=$events_pid; stop_doppel events; events_summary=$rec_summary
rec_pid=$files_pid; stop_doppel files; files_summary=$rec_summary

section=$tmp/section.md
{
  echo "<!-- stream:begin -->"
  echo "## Streaming"
  echo
  run_header " (ROUNDS=$ROUNDS, TTFB_N=$TTFB_N, SIZE_MB=$SIZE_MB, PARALLEL=$PARALLEL, RSS_ROUNDS=$RSS_ROUNDS)"
  echo
  echo "Setup, all on 127.0.0.1: event origin = a Python asyncio server answering each GET at once with a chunked \`text/event-stream\` head and its first event, the second event $HOLD s later; file origin = nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), 1 worker, sendfile (the files in the page cache). nginx proxy = 1 worker, \`proxy_pass\` with \`proxy_buffering off\` and \`proxy_buffer_size 256k\` (doppel's piece size; \`proxy_buffers 8 256k\`, which nginx then requires), HTTP/1.1 keep-alive upstreams. doppel = \`doppel record --threads 1\` (every exchange captured, default \`--capture-body-limit\` 1 MiB). Clients: curl, one request per process."
  echo
  echo "**1. Time to first byte of a streamed response** ($TTFB_N requests each, interleaved; curl \`time_starttransfer\`; load before: $load_ttfb):"
  echo
  echo "| path | median ms | p90 ms | added ms (median) |"
  echo "|---|---:|---:|---:|"
  echo "| direct | $t_direct | $(p90_ms "$tmp/ttfb-direct") | |"
  echo "| nginx | $t_nginx | $(p90_ms "$tmp/ttfb-nginx") | $add_nginx |"
  echo "| doppel | $t_doppel | $(p90_ms "$tmp/ttfb-doppel") | $add_doppel |"
  echo
  echo "The whole stream through doppel took $total_doppel s (the origin holds the second event $HOLD s): the first event did not wait for it."
  echo
  echo "**2. One ${SIZE_MB} MB download** (MB/s, curl \`speed_download\`; nginx and doppel interleaved, the order alternating by round):"
  echo
  echo "| round | direct | nginx | doppel | doppel / nginx | load before |"
  echo "|---|---:|---:|---:|---:|---|"
  for row in "${DL_ROWS[@]}"; do echo "$row"; done
  echo
  echo "**3. Memory:** $PARALLEL clients downloading 100 MB each at once through doppel, $RSS_ROUNDS rounds one after another ($complete of $((RSS_ROUNDS * PARALLEL)) complete; the rounds took $par_secs; load before: $load_rss): doppel's peak RSS (VmHWM, since it started) $hwm_mb MB (${rss_before} kB before; RSS after each round $rss_after; highest sampled VmRSS $(bench_calc %.1f 'a / 1024' a="$peak_sampled") MB)."
  echo
  echo "**4. One ${SIZE_MB} MB upload** (MB/s, curl \`-T\` = PUT with \`Content-Length\` and \`Expect: 100-continue\`, curl \`speed_upload\`; to the file origin's WebDAV \`PUT\`, written to /dev/shm; nginx proxy with \`proxy_request_buffering off\`, doppel with \`--max-request-body 2GiB\` and the default \`--request-buffer\` 1 MiB, so the body streams; interleaved, the order alternating by round):"
  echo
  echo "| round | direct | nginx | doppel | doppel / nginx | load before |"
  echo "|---|---:|---:|---:|---:|---|"
  for row in "${UP_ROWS[@]}"; do echo "$row"; done
  echo
  echo "doppel's peak RSS (VmHWM, reset before the uploads) over the ${ROUNDS} uploads: $up_hwm_mb MB (${rss_before_up} kB before)."
  echo
  echo "doppel's summaries: events: $events_summary; files: $files_summary."
  echo
  echo "**Verdicts: added time to first byte through doppel ${add_doppel} ms (nginx ${add_nginx} ms); ${SIZE_MB} MB download doppel / nginx ${dl_ratio}× — $(bench_verdict "$dl_ratio" ">=" 0.9) (target ≥ 0.9×); peak RSS under $PARALLEL × 100 MB downloads ${hwm_mb} MB — $(bench_verdict "$hwm_mb" "<=" 150 MB) (target < 150 MB); ${SIZE_MB} MB upload doppel / nginx ${up_ratio}× — $(bench_verdict "$up_ratio" ">=" 0.9) (the download's bar), peak RSS over the uploads ${up_hwm_mb} MB.**"
  echo "<!-- stream:end -->"
} >"$section"

cat "$section"
if [[ -z "${NO_RESULTS:-}" ]]; then
  replace_results_section stream "$section" "$results"
  log "updated $results"
fi
