#!/usr/bin/env bash
# Paired before/after runs of one benchmark for two doppel binaries (a change's "before" and
# "after"), interleaved A B B A ... so that drift of the machine's load falls on both alike.
#
#   bench/ab.sh BENCH BINARY_A BINARY_B [ROUNDS]     BENCH: proxy or replay; ROUNDS default 2
#
# Each run is the benchmark script itself (bench/BENCH.sh with DOPPEL=<binary>, SKIP_BUILD=1,
# NO_RESULTS=1), so A and B see the same peers (nginx, wrk) started the same way. Every run's
# section is kept under bench/runs/ab-<UTC time>-BENCH/. The summary gives, per run, doppel's
# figure and the peer's from the same run (doppel/peer removes most of the machine's drift),
# then mean B/A of the doppel/peer ratios. Environment: passed through to the benchmark
# (DURATION, WARMUP, CONNS, ...). Writes the summary to stdout and to summary.md in that
# folder; bench/RESULTS.md is left to the person who reads it.
set -euo pipefail

cd "$(dirname "$0")/.."
[[ $# -ge 3 ]] || { sed -n '2,13p' "$0" >&2; exit 2; }
bench=$1 bin_a=$2 bin_b=$3 rounds=${4:-2}
case $bench in proxy|replay) ;; *) echo "ab.sh: BENCH must be proxy or replay, not '$bench'" >&2; exit 2 ;; esac
for b in "$bin_a" "$bin_b"; do
  [[ -x $b ]] || { echo "ab.sh: '$b' is not an executable doppel binary" >&2; exit 2; }
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "ab.sh: ROUNDS must be a whole number >= 1" >&2; exit 2; }

out=bench/runs/ab-$(date -u +%Y%m%dT%H%M%SZ)-$bench
mkdir -p "$out"

# The figures of one run's section: "doppel peer [extra cpu]" (req/s). extra and cpu (replay
# only): the --max replay with decoding and diffing (gzip JSON that differs per request), which
# has no peer: its req/s, and doppel's CPU time per request (us), which a busy machine moves far
# less than req/s.
figures() {
  local section=$1
  case $bench in
    proxy)  # doppel record --sample 100 vs nginx proxy_pass, same run
      awk -F'|' '
        $2 ~ /doppel record, --sample 100/ { d = $3 }
        $2 ~ /nginx proxy_pass/ { p = $3 }
        END { gsub(/ /, "", d); gsub(/ /, "", p); print d, p }' "$section" ;;
    replay)  # doppel replay --max vs wrk, same run; then the diffing --max case
      awk -F'|' '
        $2 ~ /^ doppel replay / { split($4, a, " "); d = a[1] }
        $2 ~ /^ wrk / { p = $4 }
        $2 ~ /^ `doppel replay --session/ { split($3, a, " "); x = a[1]; c = $8 }
        END { gsub(/ /, "", d); gsub(/ /, "", p); gsub(/ /, "", c); print d, p, x, c }' "$section" ;;
  esac
}

rows=()
for ((r = 1; r <= rounds; r++)); do
  if ((r % 2)); then order=(A B); else order=(B A); fi
  for label in "${order[@]}"; do
    bin=$bin_a; [[ $label == B ]] && bin=$bin_b
    section=$out/run$r-$label.md
    echo "[ab.sh $(date -u +%H:%M:%S)] round $r, $label: $bin" >&2
    DOPPEL=$bin SKIP_BUILD=1 NO_RESULTS=1 "bench/$bench.sh" >"$section" 2>"$out/run$r-$label.log"
    read -r d p x c < <(figures "$section")
    rows+=("$r $label $d $p ${x:--} ${c:--}")
  done
done

{
  echo "Paired runs of \`bench/$bench.sh\`, $(date -u +%Y-%m-%dT%H:%M:%SZ), $rounds round(s), order A B, B A, ..."
  echo
  echo "A = \`$bin_a\` ($(stat -c %s "$bin_a") B, $("$bin_a" --version 2>&1 | head -1))"
  echo "B = \`$bin_b\` ($(stat -c %s "$bin_b") B, $("$bin_b" --version 2>&1 | head -1))"
  echo
  echo "| round | binary | doppel req/s | peer req/s (same run) | doppel/peer | diffing --max req/s | diffing CPU µs/request |"
  echo "|---:|---|---:|---:|---:|---:|---:|"
  for row in "${rows[@]}"; do
    read -r r label d p x c <<<"$row"
    echo "| $r | $label | $d | $p | $(awk -v d="$d" -v p="$p" 'BEGIN { if (p > 0) printf "%.3f", d / p; else print "n/a" }') | $x | $c |"
  done
  echo
  printf '%s\n' "${rows[@]}" | awk '
    $4 > 0 { s[$2] += $3 / $4; n[$2]++ }
    $5 > 0 { xs[$2] += $5; xn[$2]++ }
    $6 > 0 { cs[$2] += $6; cn[$2]++ }
    END {
      if (n["A"] && n["B"]) {
        a = s["A"] / n["A"]; b = s["B"] / n["B"]
        printf "**Mean doppel/peer: A %.3f, B %.3f; B/A = %.3f.**\n", a, b, b / a
      } else print "**No complete pair: see the runs logs.**"
      if (xn["A"] && xn["B"]) {
        a = xs["A"] / xn["A"]; b = xs["B"] / xn["B"]
        printf "\n**Diffing --max, mean req/s: A %.0f, B %.0f; B/A = %.3f.**\n", a, b, b / a
      }
      if (cn["A"] && cn["B"]) {
        a = cs["A"] / cn["A"]; b = cs["B"] / cn["B"]
        printf "\n**Diffing --max, mean CPU per request: A %.1f us, B %.1f us; B/A = %.3f.**\n", a, b, b / a
      }
    }'
  echo
  echo "Every run: \`$out/\`."
} | tee "$out/summary.md"
