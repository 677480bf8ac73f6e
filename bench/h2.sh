#!/usr/bin/env bash
# HTTP/2 proxy benchmark (issue 15, "Benchmark").
#
# In one run, on 127.0.0.1 only, with everything in a fresh temp dir:
#   upstream    nginx (1 worker) answering every request with a fixed ~1 KB JSON body over
#               HTTP/1.1 (the upstream of bench/proxy.sh)
#   nginx       h2load -> nginx `listen ... http2` (h2c, 1 worker) proxy_pass (upstream
#               keepalive 64, HTTP/1.1) -> upstream
#   doppel 0%   h2load -> doppel record --threads 1 --sample 0   (h2c prior knowledge) -> upstream
#   doppel 100% h2load -> doppel record --threads 1 --sample 100 (h2c prior knowledge) -> upstream
# Every measurement is `h2load -c$CONNS -m$STREAMS -t1 -D$DURATION URL/api/items` (HTTP/2
# prior knowledge) after `h2load ... -D$WARMUP` against the same proxy as warm-up. ROUNDS
# rounds, the three configurations back to back in each round, the order reversed every other
# round (nginx d0 d100, d100 d0 nginx, ...), so a round's doppel/nginx ratios compare runs a few
# seconds apart; each doppel run is a fresh process with its own store. Also the proxy's CPU
# time per request (utime + stime of the nginx worker or the whole doppel process over the
# measured run, from /proc/PID/stat). Targets: doppel/nginx req/s >= 1.0x at 0 %, >= 0.9x at
# 100 % (median over the rounds).
# Then, unless H2C_UPSTREAM=0, doppel alone in front of an HTTP/2 upstream (no nginx peer:
# nginx 1.22 proxies HTTP/2 upstream only as grpc_pass): h2load -> nghttpd --no-tls directly,
# and -> doppel record --upstream h2c://nghttpd at 0 % and 100 %, absolute figures, one run each;
# the same over TLS (nghttpd with a certificate made for the run, doppel --upstream h2://); and
# TLS on the listener, h2load over TLS to nginx `listen ... ssl http2` and to doppel
# --tls-cert, one run each in a row.
# Every run's raw output is kept under bench/runs/h2-<UTC time>/; the section between
# <!-- h2:begin --> and <!-- h2:end --> of bench/RESULTS.md is replaced (NO_RESULTS=1: left
# alone).
#
# Environment: BUILD_DIR (default build), SKIP_BUILD=1 (use the binaries as they are), DOPPEL
# (binary to measure), DURATION (default 10s), WARMUP (default 2s), CONNS (h2load clients,
# default 16), STREAMS (h2load -m, default 10), ROUNDS (default 3), H2C_UPSTREAM (default 1),
# LOAD_MAX (default 1.5) and LOAD_WAIT (default 10 s here: the benchmark itself keeps both CPUs
# busy, so waiting longer rarely helps): before each measurement, wait up to LOAD_WAIT s for
# the 1-minute load average to drop under LOAD_MAX (it is recorded either way).
set -euo pipefail

cd "$(dirname "$0")/.."
CONNS=${CONNS:-16}
STREAMS=${STREAMS:-10}
ROUNDS=${ROUNDS:-3}
LOAD_WAIT=${LOAD_WAIT:-10}
H2C_UPSTREAM=${H2C_UPSTREAM:-1}

NAME=h2
source bench/common.sh
bench_install nginx:nginx h2load:nghttp2-client curl:curl nghttpd:nghttp2-server
NGHTTPD=$(command -v nghttpd || echo /usr/sbin/nghttpd)
script_start=$(date +%s)
out=bench/runs/h2-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
dur_s=$(secs "$DURATION")
warm_s=$(secs "$WARMUP")
hz=$(getconf CLK_TCK)

start_json_upstream upstream

# nginx keeps at most `keepalive` idle upstream connections; with fewer than the requests in
# flight (CONNS x STREAMS) it would open and close upstream connections all the time.
NGX_KEEPALIVE=$((CONNS * STREAMS > 64 ? CONNS * STREAMS : 64))
px_port=$(free_port)
start_nginx proxy "  upstream backend { server 127.0.0.1:$up_port; keepalive $NGX_KEEPALIVE; }
  server {
    listen 127.0.0.1:$px_port http2;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
    }
  }"
NGX_MASTER=${pids[-1]}
NGX=http://127.0.0.1:$px_port
# nginx's `listen ... http2` without ssl speaks HTTP/2 prior knowledge only (no HTTP/1.1).
for _ in $(seq 100); do
  curl -fsS --http2-prior-knowledge -o /dev/null "$NGX/" 2>/dev/null && break
  sleep 0.1
done
curl -fsS --http2-prior-knowledge -o /dev/null "$NGX/" || { echo "nginx h2c proxy does not answer" >&2; exit 1; }
NGX_PID=""
for _ in $(seq 50); do NGX_PID=$(pgrep -P "$NGX_MASTER" | head -1 || true); [[ -n "$NGX_PID" ]] && break; sleep 0.1; done
[[ -n "$NGX_PID" ]] || { echo "no nginx worker" >&2; exit 1; }


h2load_cmd() { echo "h2load -c$CONNS -m$STREAMS -t1 -D$1"; }

# measure LABEL URL PID FILE: warm-up, load wait, measured h2load run (raw output to FILE);
# sets m_rps m_ok m_fail m_err m_mean m_cpu m_load (CPU µs per succeeded request of PID).
measure() {
  local label=$1 url=$2 pid=$3 file=$4 c0 c1 total
  h2load -c"$CONNS" -m"$STREAMS" -t1 -D"$warm_s" "$url/api/items" >"$file.warmup" 2>&1 || true
  m_load=$(wait_load)
  log "$label: $(h2load_cmd "$dur_s") $url/api/items (load $m_load)"
  c0=$(cpu_ticks "$pid")
  h2load -c"$CONNS" -m"$STREAMS" -t1 -D"$dur_s" "$url/api/items" >"$file" 2>&1 || true
  c1=$(cpu_ticks "$pid")
  m_rps=$(awk '/^finished in/ {v = $4; sub(/,$/, "", v); printf "%.0f", v}' "$file")
  read -r total m_ok m_fail m_err < <(awk '/^requests:/ {print $2, $8, $10, $12}' "$file") || true
  m_mean=$(to_ms "$(awk '/^time for request:/ {print $6}' "$file")")
  m_rps=${m_rps:-?} m_ok=${m_ok:-?} m_fail=${m_fail:-?} m_err=${m_err:-?}
  m_cpu=$(bench_calc %.1f '(c1 - c0) / hz * 1e6 / n' c1="$c1" c0="$c0" hz="$hz" n="$m_ok")
  [[ $m_ok == 0 ]] && m_cpu='?'
  log "$label: $m_rps req/s, $m_ok succeeded, $m_fail failed, $m_err errored, mean $m_mean ms, proxy CPU $m_cpu µs/request"
}

# median "V1 V2 ...": the median of the figures ("?" when one is not a number).
median() {
  local v sorted n
  for v in $1; do bench_is_number "$v" || { echo '?'; return 0; }; done
  sorted=($(printf '%s\n' $1 | sort -g))
  n=${#sorted[@]}
  ((n > 0)) || { echo '?'; return 0; }
  if ((n % 2)); then echo "${sorted[n / 2]}"
  else bench_calc %.3f '(a + b) / 2' a="${sorted[n / 2 - 1]}" b="${sorted[n / 2]}"; fi
}

# start_doppel (common.sh) polls "$dir/stdout" with sed as soon as doppel is started in the
# background; if the background job has not created the file yet, sed fails and set -e ends the
# script (seen on a busy machine). Creating the file first closes that race without changing
# common.sh (doppel's redirection truncates it).
start_doppel_h2() {  # NAME ARGS...
  mkdir -p "$tmp/doppel-$1"
  : >"$tmp/doppel-$1/stdout"
  start_doppel "$@"
}

declare -A RPS CPU
rows=()
run_config() {  # CONFIG ROUND
  local cfg=$1 r=$2 file=$out/h2load-$2-$1.txt summary="" label
  case $cfg in
    nginx)
      label="nginx http2 + proxy_pass"
      measure "round $r $cfg" "$NGX" "$NGX_PID" "$file" ;;
    d0|d100)
      label="doppel record --sample ${cfg#d}"
      start_doppel_h2 "$cfg-$r" --sample "${cfg#d}"
      measure "round $r $cfg" "$rec_url" "$rec_pid" "$file"
      stop_doppel "$cfg-$r"
      summary=$rec_summary
      cp "$tmp/doppel-$cfg-$r/stdout" "$out/doppel-$r-$cfg.stdout"
      cp "$tmp/doppel-$cfg-$r/stderr" "$out/doppel-$r-$cfg.stderr" ;;
  esac
  RPS[$r-$cfg]=$m_rps CPU[$r-$cfg]=$m_cpu
  rows+=("| $r | $label | $m_rps | $m_mean | $m_cpu | $m_ok / $m_fail / $m_err | $m_load | ${summary:-} |")
}

for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2)); then order=(nginx d0 d100); else order=(d100 d0 nginx); fi
  for cfg in "${order[@]}"; do run_config "$cfg" "$r"; done
done

ratio_rows=()
r0s=() r100s=() c0s=() c100s=()
for ((r = 1; r <= ROUNDS; r++)); do
  a=$(bench_ratio "${RPS[$r-d0]}" "${RPS[$r-nginx]}" %.3f)
  b=$(bench_ratio "${RPS[$r-d100]}" "${RPS[$r-nginx]}" %.3f)
  ca=$(bench_ratio "${CPU[$r-nginx]}" "${CPU[$r-d0]}" %.3f)
  cb=$(bench_ratio "${CPU[$r-nginx]}" "${CPU[$r-d100]}" %.3f)
  r0s+=("$a") r100s+=("$b") c0s+=("$ca") c100s+=("$cb")
  ratio_rows+=("| $r | ${RPS[$r-nginx]} | ${RPS[$r-d0]} | ${RPS[$r-d100]} | ${a}× | ${b}× | ${ca}× | ${cb}× |")
done
med0=$(median "${r0s[*]}")
med100=$(median "${r100s[*]}")
medc0=$(median "${c0s[*]}")
medc100=$(median "${c100s[*]}")
v0=$(bench_verdict "$med0" ">=" 1.0)
v100=$(bench_verdict "$med100" ">=" 0.9)

# ---------------------------------------------------------------- HTTP/2 upstream (doppel alone)
h2c_rows=() tls_rows=()
declare -A TLS_RPS
if [[ $H2C_UPSTREAM != 0 ]]; then
  mkdir -p "$tmp/htdocs/api"
  printf '%s' "$body" >"$tmp/htdocs/api/items"
  printf '%s' "$body" >"$tmp/htdocs/index.html"
  h2_port=$(free_port)
  "$NGHTTPD" --no-tls -a 127.0.0.1 -d "$tmp/htdocs" "$h2_port" >"$out/nghttpd.log" 2>&1 &
  H2_PID=$!
  pids+=($H2_PID)
  for _ in $(seq 100); do
    curl -fsS --http2-prior-knowledge -o /dev/null "http://127.0.0.1:$h2_port/api/items" 2>/dev/null && break
    sleep 0.1
  done
  got=$(curl -fsS --http2-prior-knowledge "http://127.0.0.1:$h2_port/api/items")
  [[ ${#got} -eq $body_len ]] || { echo "nghttpd body is ${#got} B, expected $body_len" >&2; exit 1; }
  measure "h2c direct" "http://127.0.0.1:$h2_port" "$H2_PID" "$out/h2load-h2c-direct.txt"
  h2c_rows+=("| h2load → nghttpd directly | $m_rps | $m_mean | $m_cpu (nghttpd) | $m_ok / $m_fail / $m_err | $m_load | |")
  UP_SAVED=$UP
  UP=h2c://127.0.0.1:$h2_port
  for cfg in d0 d100; do
    start_doppel_h2 "h2c-$cfg" --sample "${cfg#d}"
    measure "h2c $cfg" "$rec_url" "$rec_pid" "$out/h2load-h2c-$cfg.txt"
    stop_doppel "h2c-$cfg"
    cp "$tmp/doppel-h2c-$cfg/stdout" "$out/doppel-h2c-$cfg.stdout"
    cp "$tmp/doppel-h2c-$cfg/stderr" "$out/doppel-h2c-$cfg.stderr"
    h2c_rows+=("| h2load → doppel record --sample ${cfg#d} → h2c nghttpd | $m_rps | $m_mean | $m_cpu (doppel) | $m_ok / $m_fail / $m_err | $m_load | $rec_summary |")
  done

  # The same over TLS: nghttpd with a certificate made for 127.0.0.1, doppel's upstream
  # h2:// (ALPN h2, the certificate checked against it as the CA).
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$tmp/tls.key" -out "$tmp/tls.crt" 2>/dev/null
  h2s_port=$(free_port)
  "$NGHTTPD" -a 127.0.0.1 -d "$tmp/htdocs" "$h2s_port" "$tmp/tls.key" "$tmp/tls.crt" \
    >"$out/nghttpd-tls.log" 2>&1 &
  H2S_PID=$!
  pids+=($H2S_PID)
  for _ in $(seq 100); do
    curl -kfsS --http2 -o /dev/null "https://127.0.0.1:$h2s_port/api/items" 2>/dev/null && break
    sleep 0.1
  done
  measure "h2 direct" "https://127.0.0.1:$h2s_port" "$H2S_PID" "$out/h2load-h2-direct.txt"
  h2c_rows+=("| h2load → nghttpd over TLS directly | $m_rps | $m_mean | $m_cpu (nghttpd) | $m_ok / $m_fail / $m_err | $m_load | |")
  UP=h2://127.0.0.1:$h2s_port
  for cfg in d0 d100; do
    start_doppel_h2 "h2-$cfg" --sample "${cfg#d}" --upstream-ca "$tmp/tls.crt"
    measure "h2 $cfg" "$rec_url" "$rec_pid" "$out/h2load-h2-$cfg.txt"
    stop_doppel "h2-$cfg"
    cp "$tmp/doppel-h2-$cfg/stdout" "$out/doppel-h2-$cfg.stdout"
    cp "$tmp/doppel-h2-$cfg/stderr" "$out/doppel-h2-$cfg.stderr"
    h2c_rows+=("| h2load → doppel record --sample ${cfg#d} → h2:// nghttpd (TLS) | $m_rps | $m_mean | $m_cpu (doppel) | $m_ok / $m_fail / $m_err | $m_load | $rec_summary |")
  done
  UP=$UP_SAVED

  # TLS on the listener: h2load over TLS (ALPN h2) to nginx `listen ... ssl http2` and to
  # doppel --tls-cert, both in front of the HTTP/1.1 upstream, one run each in a row.
  pxs_port=$(free_port)
  start_nginx tlsproxy "  upstream backend { server 127.0.0.1:$up_port; keepalive $NGX_KEEPALIVE; }
  server {
    listen 127.0.0.1:$pxs_port ssl http2;
    ssl_certificate $tmp/tls.crt;
    ssl_certificate_key $tmp/tls.key;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
    }
  }"
  NGXS_MASTER=${pids[-1]}
  wait_http "https://127.0.0.1:$pxs_port/"
  NGXS_PID=$(pgrep -P "$NGXS_MASTER" | head -1 || true)
  measure "tls nginx" "https://127.0.0.1:$pxs_port" "$NGXS_PID" "$out/h2load-tls-nginx.txt"
  tls_rows+=("| nginx \`listen ... ssl http2\` + proxy_pass | $m_rps | $m_mean | $m_cpu (nginx) | $m_ok / $m_fail / $m_err | $m_load | |")
  TLS_RPS[nginx]=$m_rps
  for cfg in d0 d100; do
    REC_SCHEME=https start_doppel_h2 "tls-$cfg" --sample "${cfg#d}" --tls-cert "$tmp/tls.crt" \
      --tls-key "$tmp/tls.key"
    measure "tls $cfg" "$rec_url" "$rec_pid" "$out/h2load-tls-$cfg.txt"
    stop_doppel "tls-$cfg"
    cp "$tmp/doppel-tls-$cfg/stdout" "$out/doppel-tls-$cfg.stdout"
    cp "$tmp/doppel-tls-$cfg/stderr" "$out/doppel-tls-$cfg.stderr"
    tls_rows+=("| doppel record --tls-cert --sample ${cfg#d} | $m_rps | $m_mean | $m_cpu (doppel) | $m_ok / $m_fail / $m_err | $m_load | $rec_summary |")
    TLS_RPS[$cfg]=$m_rps
  done
fi
cp "$tmp/nginx-proxy/logs/error.log" "$out/nginx-proxy-error.log" 2>/dev/null || true
cp "$tmp/nginx-upstream/logs/error.log" "$out/nginx-upstream-error.log" 2>/dev/null || true
elapsed=$(($(date +%s) - script_start))

# ---------------------------------------------------------------- report
{
  echo "<!-- h2:begin -->"
  echo "## HTTP/2"
  echo
  run_header " (ROUNDS=$ROUNDS, DURATION=$DURATION, CONNS=$CONNS, STREAMS=$STREAMS)" "The runs of a round follow each other within about a minute, so their ratio is steadier than that of runs minutes apart."
  echo
  echo "Setup, all on 127.0.0.1: upstream = nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), 1 worker, \`return 200\` of a fixed $body_len B JSON body (\`application/json\`), HTTP/1.1, access_log off (the upstream of \`bench/proxy.sh\`). nginx proxy = a second nginx, 1 worker, \`listen 127.0.0.1:PORT http2;\` (plaintext HTTP/2 with prior knowledge, h2c), \`proxy_pass\` to an \`upstream\` block with \`keepalive $NGX_KEEPALIVE\` (at least the $((CONNS * STREAMS)) requests h2load keeps in flight, so that nginx does not close and reopen upstream connections), \`proxy_http_version 1.1\`, \`proxy_set_header Connection \"\"\`, \`keepalive_requests 1000000\` (which also bounds requests per HTTP/2 connection since nginx 1.19.7). doppel = \`doppel record --listen 127.0.0.1:0 --upstream UPSTREAM --threads 1 --sample 0|100 --session UNIQUE --store FRESH_DIR\`, which takes h2c prior knowledge on its listener and forwards over HTTP/1.1 keep-alive; a fresh process and store for every run. One proxy thread / one worker each because the machine has 2 CPUs shared by h2load, the proxy, the upstream and (at 100 %) doppel's capture writer and RocksDB's flush thread. Load: \`$(h2load_cmd "$dur_s") URL/api/items\` ($(h2load --version | head -1); HTTP/2 prior knowledge, $CONNS connections × $STREAMS concurrent streams), each after \`$(h2load_cmd "$warm_s")\` against the same proxy as warm-up. Order within a round: nginx, doppel 0 %, doppel 100 %, reversed in every other round. Raw output of every run (h2load, doppel's stdout/stderr, nginx error logs): \`$out/\`."
  echo
  echo "\"proxy CPU\" = user + system CPU time of the proxy process over the measured run (the nginx worker; the whole doppel process, i.e. at 100 % including its capture writer and RocksDB threads) divided by the requests h2load completed. It depends less on what else the machine runs than req/s does."
  echo
  echo "| round | config | req/s | mean request time ms | proxy CPU µs/request | h2load succeeded / failed / errored | load before | doppel's summary |"
  echo "|---:|---|---:|---:|---:|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "| round | nginx req/s | doppel 0 % req/s | doppel 100 % req/s | 0 %: doppel/nginx req/s | 100 %: doppel/nginx req/s | 0 %: nginx/doppel CPU per request | 100 %: nginx/doppel CPU per request |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${ratio_rows[@]}"
  echo "| median | | | | **${med0}×** | **${med100}×** | ${medc0}× | ${medc100}× |"
  echo
  echo "**HTTP/2, doppel/nginx req/s, median of $ROUNDS paired rounds: 0 % recording ${med0}× (target ≥ 1.0×): $v0. 100 % recording ${med100}× (target ≥ 0.9×): $v100.** By CPU per request (nginx µs / doppel µs, median): 0 % ${medc0}×, 100 % ${medc100}×."
  if ((${#h2c_rows[@]})); then
    echo
    echo "### HTTP/2 upstream (doppel alone)"
    echo
    echo "\`doppel record --upstream h2c://127.0.0.1:PORT --threads 1\` in front of \`nghttpd --no-tls -a 127.0.0.1 -d HTDOCS PORT\` ($("$NGHTTPD" --version | head -1), 1 worker) serving the same $body_len B body as a static file: doppel multiplexes the requests onto its HTTP/2 connection to the upstream. No nginx peer: nginx 1.22 proxies to an HTTP/2 upstream only through \`grpc_pass\`, so these are absolute figures, one run each, same h2load settings; \"direct\" is h2load against nghttpd itself, and its CPU column is nghttpd's."
    echo
    echo "| path | req/s | mean request time ms | CPU µs/request | h2load succeeded / failed / errored | load before | doppel's summary |"
    echo "|---|---:|---:|---:|---|---|---|"
    printf '%s\n' "${h2c_rows[@]}"
    echo
    echo "### TLS on the listener"
    echo
    echo "h2load over TLS (ALPN h2, a 2048-bit RSA certificate made for the run) to nginx \`listen 127.0.0.1:PORT ssl http2\` (\`proxy_pass\` as above) and to \`doppel record --tls-cert FILE --tls-key FILE\`, both in front of the same HTTP/1.1 upstream; one run each, in a row, same h2load settings (the $CONNS connections' handshakes are part of each run)."
    echo
    echo "| proxy | req/s | mean request time ms | CPU µs/request | h2load succeeded / failed / errored | load before | doppel's summary |"
    echo "|---|---:|---:|---:|---|---|---|"
    printf '%s\n' "${tls_rows[@]}"
    echo
    echo "TLS listener, doppel/nginx req/s (one run each): 0 % $(bench_ratio "${TLS_RPS[d0]}" "${TLS_RPS[nginx]}" %.3f)×, 100 % $(bench_ratio "${TLS_RPS[d100]}" "${TLS_RPS[nginx]}" %.3f)×."
  fi
  echo
  echo "Script run time: $elapsed s."
  echo "<!-- h2:end -->"
} >"$out/section.md"
cat "$out/section.md"

if [[ -z "${NO_RESULTS:-}" ]]; then
  replace_results_section h2 "$out/section.md" "$results"
  log "updated $results"
fi
