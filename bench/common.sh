# Shared by the bench/*.sh scripts: tools, build, temp dir and
# cleanup, ports, load average, the ~1 KB JSON body, an nginx started from a config fragment,
# the nginx upstream that answers every request with that body, a process's CPU time and the
# paired run of two proxies (run_pair).
# REQUIRES before sourcing: the working directory is the repository (root is set to it) and
# NAME is set (the script's name, used in log lines and the temp dir's name). Sets the
# defaults the scripts share (a script sets its own value first to differ) and log().
# Arithmetic on figures and the verdicts against targets: bench/verdict.sh; replacing a
# section of bench/RESULTS.md: bench/results_section.sh.

root=$(pwd)
source "$root/bench/verdict.sh"
source "$root/bench/results_section.sh"

build_dir=${BUILD_DIR:-build}
results=bench/RESULTS.md
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-64}
LOAD_MAX=${LOAD_MAX:-1.5}
LOAD_WAIT=${LOAD_WAIT:-60}

log() { echo "[$NAME.sh $(date -u +%H:%M:%S)] $*" >&2; }

# bench_install CMD:PACKAGE...: installs the Debian packages whose command is missing.
bench_install() {
  local sudo="" missing=() pair
  [[ $(id -u) -ne 0 ]] && sudo=sudo
  for pair in "$@"; do
    local cmd=${pair%%:*} pkg=${pair##*:}
    command -v "$cmd" >/dev/null 2>&1 || [[ -x "$cmd" || -x /usr/sbin/$cmd ]] || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    $sudo apt-get update
    $sudo apt-get install -y "${missing[@]}"
  fi
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
}

# ---------------------------------------------------------------- build
if [[ -z "${SKIP_BUILD:-}" ]]; then
  if [[ ! -d "$build_dir" ]]; then
    cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo
  fi
  cmake --build "$build_dir" -j2 --target doppel doppel-echo
fi
DOPPEL=${DOPPEL:-$root/$build_dir/tools/doppel}
ECHO=${ECHO:-$root/$build_dir/tools/echo/doppel-echo}
[[ -x "$DOPPEL" ]] || { echo "no $DOPPEL: build it first" >&2; exit 2; }
build_type=$(awk -F= '/^CMAKE_BUILD_TYPE:/ {print $2}' "$build_dir/CMakeCache.txt" 2>/dev/null || echo '?')
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none)
dirty=$(git -C "$root" status --porcelain 2>/dev/null | wc -l)
binary_note="binary \`$DOPPEL\` ($(stat -c %s "$DOPPEL") B, modified $(date -u -r "$DOPPEL" +%Y-%m-%dT%H:%M:%SZ), $("$DOPPEL" --version 2>&1 | head -1))"


# ---------------------------------------------------------------- the machine and the run
machine="$(nproc) CPUs (nproc), $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}'), $(awk '/MemTotal/ {print $2, $3}' /proc/meminfo) RAM, Linux $(uname -r)"
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)

# run_header [SETTINGS [MORE]]: the first two paragraphs of a results section: when, at which
# commit, with which binary, on which machine under which load (at start and now). SETTINGS
# follows the script's name (" (ROUNDS=2)"); MORE ends the machine paragraph.
run_header() {
  echo "Run on $started at commit $commit$( ((dirty)) && echo " (+$dirty uncommitted or untracked paths in the work tree, which the binary may include)") with \`bench/$NAME.sh\`${1:-}; doppel build type $build_type, $binary_note."
  echo
  echo "Machine: $machine. Load average (1/5/15 min) at start: $loadavg_start; at end: $(cut -d' ' -f1-3 /proc/loadavg). Other processes on the machine compete for its CPUs; the load next to each measurement was taken just before it, after waiting up to ${LOAD_WAIT} s for the 1-minute load to drop under $LOAD_MAX.${2:+ $2}"
}

# ---------------------------------------------------------------- temp dir and cleanup
tmp=$(mktemp -d "/tmp/doppel-bench-$NAME.XXXXXX")
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  if [[ -z "${KEEP_TMP:-}" ]]; then rm -rf "$tmp"; else log "kept $tmp"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free port on 127.0.0.1 (for nginx, which cannot listen on port 0).
free_port() {
  local p
  for _ in $(seq 200); do
    p=$(shuf -i 20000-60999 -n 1)
    if ! ss -Htan "( sport = :$p )" 2>/dev/null | grep -q .; then echo "$p"; return; fi
  done
  echo "no free port" >&2; return 1
}
wait_http() {  # URL
  # -k: a TLS listener of a benchmark has a certificate made for the run.
  for _ in $(seq 100); do curl -kfsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing answers at $1" >&2; return 1
}

wait_load() {
  local waited=0
  while awk -v m="$LOAD_MAX" '{exit !($1 >= m)}' /proc/loadavg && ((waited < LOAD_WAIT)); do
    sleep 5; waited=$((waited + 5))
  done
  cut -d' ' -f1-3 /proc/loadavg
}

to_ms() { awk -v v="$1" 'BEGIN {
  if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
  else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
  else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
  else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
  else printf "?" }'; }

secs() { awk -v v="$1" 'BEGIN {
  if (v ~ /ms$/) { sub(/ms$/, "", v); print v / 1000 } else if (v ~ /m$/) { sub(/m$/, "", v); print v * 60 }
  else { sub(/s$/, "", v); print v + 0 } }'; }


# ~1 KB JSON body without quotes/dollars/backslashes that nginx would interpret.
body=$(
  printf '{"items":['
  for i in 1 2 3 4 5 6 7; do  # ~940 B, padded to 1024 B below
    ((i > 1)) && printf ','
    printf '{"id":%d,"sku":"SKU-%05d","name":"Product number %d","price":%d,"currency":"EUR","in_stock":true,"tags":["shop","bench"]}' \
      "$i" "$((i * 37))" "$i" "$((1999 + i * 100))"
  done
  printf '],"total":7,"page":1,"next":null,"note":"fixed body for doppel bench","pad":"'
)
pad=$((1024 - ${#body} - 2))
body+=$(printf '%*s' "$pad" '' | tr ' ' 'x')'"}'
body_len=${#body}

start_nginx() {  # NAME CONF_HTTP_BLOCK -> sets nginx_pid_NAME
  local name=$1 http=$2 dir=$tmp/nginx-$1
  mkdir -p "$dir/logs"
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/client_body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  keepalive_requests 1000000;
$http
}
EOF
  "$NGINX" -c "$dir/nginx.conf" -p "$dir/" >"$dir/logs/stdout" 2>&1 &
  pids+=($!)
}

# start_redis -> sets redis_port, redis_pid and REDIS (redis://127.0.0.1:PORT): a fresh
# redis-server on a free port, 127.0.0.1 only, no persistence (--save '' --appendonly no),
# its files in $tmp; waits until it answers PING.
start_redis() {
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
    --logfile "$tmp/redis.log" &
  redis_pid=$!
  pids+=($redis_pid)
  for _ in $(seq 100); do
    redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
  done
  REDIS=redis://127.0.0.1:$redis_port
}

# start_json_upstream NAME -> sets UP and up_port: an nginx (1 worker) answering every
# request with the fixed $body as application/json; checks one answer before returning.
start_json_upstream() {
  local got
  up_port=$(free_port)
  start_nginx "$1" "  server {
    listen 127.0.0.1:$up_port;
    location / { default_type application/json; return 200 '$body'; }
  }"
  UP=http://127.0.0.1:$up_port
  wait_http "$UP/"
  got=$(curl -fsS "$UP/api/items")
  [[ ${#got} -eq $body_len ]] || { echo "$1 body is ${#got} B, expected $body_len" >&2; exit 1; }
}

# start_gzip_json_upstream NAME -> sets UP_GZ: an nginx answering every request with $body
# behind a per-request id ({"rid":"<nginx $request_id>",...}), gzip-encoded for clients that
# accept it: every answer differs from every other, so a replay decodes and diffs each one.
start_gzip_json_upstream() {
  local port
  port=$(free_port)
  start_nginx "$1" "  server {
    listen 127.0.0.1:$port;
    gzip on; gzip_types application/json; gzip_min_length 0;
    location / { default_type application/json; return 200 '{\"rid\":\"\$request_id\",${body:1}'; }
  }"
  UP_GZ=http://127.0.0.1:$port
  wait_http "$UP_GZ/"
  curl -fsS -H 'Accept-Encoding: gzip' -D "$tmp/$1.head" -o /dev/null "$UP_GZ/api/items"
  grep -qi '^content-encoding: gzip' "$tmp/$1.head" || { echo "$1 does not gzip" >&2; exit 1; }
}

# listening_url STDOUT_FILE PID: waits up to 10 s for the "listening on HOST:PORT" line that
# doppel and doppel-echo print, and prints http://HOST:PORT (nothing if PID exited first or the
# time ran out).
listening_url() {
  local url=""
  for _ in $(seq 100); do
    url=$(sed -n 's/^listening on \(.*\)$/http:\/\/\1/p' "$1" | head -1)
    [[ -n "$url" ]] && break
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "$url"
}

# CPU time (user + system, in clock ticks of clk_tck a second) a process has used so far.
clk_tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }  # utime + stime

# Paired run: A and B loaded at the same time (wrk -c CONNS/2 each), so whatever else the
# machine runs weighs on both alike; their ratio is far steadier than that of two runs
# minutes apart. Appends a row to PAIR_ROWS and the B/A req/s ratio to PAIR_RATIOS[NAME].
declare -a PAIR_ROWS=()
declare -A PAIR_RATIOS PAIR_CPU_RATIOS
run_pair() {  # NAME ROUND LABEL_A URL_A PID_A LABEL_B URL_B PID_B
  local name=$1 round=$2 la=$3 ua=$4 pa=$5 lb=$6 ub=$7 pb=$8 half=$((CONNS / 2)) w a0 b0 a1 b1 load
  local oa=$tmp/pair-$name-$round-a.txt ob=$tmp/pair-$name-$round-b.txt ra rb na nb ca cb
  wrk -t1 -c"$half" -d"$WARMUP" --timeout 10s "$ua/api/items" >/dev/null & w=$!
  wrk -t1 -c"$half" -d"$WARMUP" --timeout 10s "$ub/api/items" >/dev/null; wait "$w"
  load=$(wait_load)
  log "pair $name.$round: $la vs $lb, wrk -t1 -c$half -d$DURATION each, at once (load $load)"
  a0=$(cpu_ticks "$pa"); b0=$(cpu_ticks "$pb")
  wrk -t1 -c"$half" -d"$DURATION" --timeout 10s "$ua/api/items" >"$oa" & w=$!
  wrk -t1 -c"$half" -d"$DURATION" --timeout 10s "$ub/api/items" >"$ob"; wait "$w"
  a1=$(cpu_ticks "$pa"); b1=$(cpu_ticks "$pb")
  ra=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$oa"); rb=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$ob")
  na=$(awk '/requests in/ {print $1; exit}' "$oa"); nb=$(awk '/requests in/ {print $1; exit}' "$ob")
  ca=$(awk -v c=$((a1 - a0)) -v n="$na" -v hz="$clk_tck" 'BEGIN { if (n > 0) printf "%.1f", c * 1e6 / hz / n; else print "?" }')
  cb=$(awk -v c=$((b1 - b0)) -v n="$nb" -v hz="$clk_tck" 'BEGIN { if (n > 0) printf "%.1f", c * 1e6 / hz / n; else print "?" }')
  PAIR_RATIOS[$name]+="$(bench_ratio "$rb" "$ra" %.3f) "
  PAIR_CPU_RATIOS[$name]+="$(bench_ratio "$ca" "$cb" %.3f) "
  PAIR_ROWS+=("| $round | $la | $ra | $ca | $lb | $rb | $cb | $(bench_ratio "$rb" "$ra" %.3f)× | $(bench_ratio "$ca" "$cb" %.3f)× | $load |")
  log "pair $name.$round: $ra vs $rb req/s, $ca vs $cb µs/request"
}

# start_slow_echo DELAY -> SLOW_MIRROR (its URL), slow_check (seconds one request took): a
# doppel-echo ($ECHO) answering every request after DELAY, holding any number at once (an asio
# timer each): the slow mirror of bench/mirror.sh and bench/adaptive.sh.
start_slow_echo() {
  [[ -x "$ECHO" ]] || { echo "no $ECHO: build doppel-echo first" >&2; exit 2; }
  "$ECHO" --listen 127.0.0.1:0 --threads 1 --latency "$1" >"$tmp/echo.stdout" 2>"$tmp/echo.stderr" &
  pids+=($!)
  SLOW_MIRROR=$(listening_url "$tmp/echo.stdout" "$!")
  [[ -n "$SLOW_MIRROR" ]] || { echo "doppel-echo did not start:" >&2; cat "$tmp/echo.stderr" >&2; exit 1; }
  local t0
  t0=$(date +%s.%N)
  curl -fsS -o /dev/null "$SLOW_MIRROR/healthz"
  slow_check=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')
  log "slow mirror $SLOW_MIRROR answers after $slow_check s"
}

# start_doppel NAME ARGS...: `doppel record` ($DOPPEL) in the background, listening and with its
# admin endpoint on 127.0.0.1 (free ports), one proxy thread, upstream $UP, session
# bench-$NAME(script)-NAME-PID, its store and output under $tmp/doppel-NAME; ARGS are added
# (--sample ..., --mirror ...). DOPPEL_PREFIX (an array, empty by default) goes in front of the
# command: a tool that runs doppel (valgrind, strace). Returns once it answers (up to 60 s);
# sets rec_pid, rec_url (https:// with REC_SCHEME=https, for a listener given --tls-cert),
# rec_admin.
DOPPEL_PREFIX=()
start_doppel() {
  local name=$1 dir=$tmp/doppel-$1
  shift
  mkdir -p "$dir"
  # The files exist before the first read below, even if the shell has not opened them yet.
  : >"$dir/stdout"
  : >"$dir/stderr"
  "${DOPPEL_PREFIX[@]}" "$DOPPEL" --store "$dir/store" record --listen 127.0.0.1:0 \
    --admin 127.0.0.1:0 --upstream "$UP" --session "bench-$NAME-$name-$$" --threads 1 "$@" \
    >"$dir/stdout" 2>"$dir/stderr" &
  rec_pid=$!
  pids+=($rec_pid)
  rec_url="" rec_admin=""
  for _ in $(seq 600); do
    rec_url=$(sed -n "s/^listening on \\(.*\\)$/${REC_SCHEME:-http}:\\/\\/\\1/p" "$dir/stdout" | head -1)
    rec_admin=$(sed -n 's/^admin on \(.*\)$/http:\/\/\1/p' "$dir/stdout" | head -1)
    [[ -n "$rec_url" && -n "$rec_admin" ]] && break
    kill -0 "$rec_pid" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n "$rec_url" ]] || { echo "doppel record did not start:" >&2; cat "$dir/stderr" >&2; exit 1; }
  wait_http "$rec_url/"
}

# stop_doppel NAME [PID]: SIGINT to PID (default $rec_pid; under strace, doppel is its child),
# waits for $rec_pid to flush and exit (SIGKILL after 60 s);
# its "session ..." and "mirror ..." summary lines, joined by ';', go to rec_summary.
stop_doppel() {
  local name=$1 dir=$tmp/doppel-$1 rc=0
  kill -INT "${2:-$rec_pid}" 2>/dev/null || true
  for _ in $(seq 600); do kill -0 "$rec_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$rec_pid" 2>/dev/null; then
    echo "doppel record ($name) still running 60 s after SIGINT" >&2
    kill -KILL "$rec_pid"
  fi
  wait "$rec_pid" || rc=$?
  rec_summary=$(grep -E '^(session|mirror) ' "$dir/stdout" | paste -sd';' - || true)
  if ((rc != 0)); then
    echo "doppel record ($name) exited with $rc:" >&2; tail -5 "$dir/stderr" >&2
    rec_summary="$rec_summary (exit $rc)"
  fi
}

# Records at least N envelopes of GET /api/items through doppel record into $STORE (set by the
# caller), session NAME,
# from UPSTREAM (default $UP); WRK_ARGS are added to wrk's.
record_session() {  # NAME N [UPSTREAM [WRK_ARGS...]] -> rec_summary, rec_secs
  local name=$1 n=$2 upstream=${3:-$UP} dir=$tmp/record-$1 admin rec_pid wrk_pid t0 count=0 rc=0
  shift 2; (($#)) && shift
  mkdir -p "$dir"
  admin=$(free_port)
  "$DOPPEL" --store "$STORE" record --listen 127.0.0.1:0 --admin "127.0.0.1:$admin" \
    --upstream "$upstream" --session "$name" --threads 1 --sample 100 >"$dir/stdout" 2>"$dir/stderr" &
  rec_pid=$!
  pids+=($rec_pid)
  local url
  url=$(listening_url "$dir/stdout" "$rec_pid")
  [[ -n "$url" ]] || { echo "doppel record did not start:" >&2; cat "$dir/stderr" >&2; exit 1; }
  wait_http "http://127.0.0.1:$admin/healthz"
  t0=$(date +%s.%N)
  wrk -t1 -c"$CONNS" -d3600s "$@" "$url/api/items" >"$dir/wrk.txt" 2>&1 &
  wrk_pid=$!
  pids+=($wrk_pid)
  while ((count < n)); do
    sleep 0.2
    kill -0 "$rec_pid" 2>/dev/null || { echo "doppel record died while recording:" >&2; tail -5 "$dir/stderr" >&2; exit 1; }
    count=$(curl -fsS "http://127.0.0.1:$admin/status" | sed -n 's/.*"stored":\([0-9]*\).*/\1/p')
    count=${count:-0}
  done
  kill -INT "$wrk_pid" 2>/dev/null || true
  wait "$wrk_pid" 2>/dev/null || true
  rec_secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
  kill -INT "$rec_pid"
  for _ in $(seq 600); do kill -0 "$rec_pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$rec_pid" 2>/dev/null && { echo "doppel record still running 60 s after SIGINT" >&2; exit 1; }
  wait "$rec_pid" || rc=$?
  ((rc == 0)) || { echo "doppel record exited with $rc:" >&2; tail -5 "$dir/stderr" >&2; exit 1; }
  rec_summary=$(grep '^session ' "$dir/stdout" | tail -1)
  log "recorded in ${rec_secs}s: $rec_summary"
}

