# Arithmetic on measured figures and verdicts against targets, shared by bench/*.sh (sourced
# by bench/common.sh; tested by tests/bench/verdict_test.sh).
#
# A figure that was not measured (a failed run, a line wrk did not print, perf not allowed)
# is "?" or empty. awk reads such a string as 0 in arithmetic and compares it as a string
# against a number ("?" >= 1.0 is true), so every function here checks its figures first and
# passes "?" on; a verdict on a figure that is not a number is "NOT measured".

# bench_is_number VALUE: true when VALUE is a decimal number (sign, fraction, exponent).
bench_is_number() {
  [[ $1 =~ ^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$ ]]
}

# bench_calc FORMAT EXPR NAME=VALUE...: the awk expression EXPR over the named figures,
# printed with printf FORMAT (a number format); "?" when a figure is not a number or the
# result is not one either (a division by zero: mawk prints inf or nan, gawk fails).
#   bench_calc %.3f '(a - b) / n' a="$x" b="$y" n=3
bench_calc() {
  local format=$1 expr=$2 pair out
  shift 2
  local vars=()
  for pair in "$@"; do
    bench_is_number "${pair#*=}" || { echo '?'; return 0; }
    vars+=(-v "$pair")
  done
  out=$(awk "${vars[@]}" "BEGIN { printf \"$format\", ($expr) }" 2>/dev/null) || out='?'
  bench_is_number "$out" || out='?'
  echo "$out"
}

# bench_ratio A B [FORMAT]: A / B (default %.2f); "?" unless both are numbers and B is not 0.
bench_ratio() { bench_calc "${3:-%.2f}" 'a / b' a="$1" b="$2"; }

# bench_mean "V1 V2 ..." [FORMAT]: the mean of the listed figures (default %.3f); "?" when
# the list is empty or one of them is not a number.
bench_mean() {
  local v sum=0 n=0
  for v in $1; do
    bench_is_number "$v" || { echo '?'; return 0; }
    sum=$(bench_calc %.17g 's + v' s="$sum" v="$v")
    n=$((n + 1))
  done
  ((n > 0)) || { echo '?'; return 0; }
  bench_calc "${2:-%.3f}" 's / n' s="$sum" n="$n"
}

# bench_verdict VALUE OP TARGET [UNIT]: VALUE against TARGET, OP ">=" (at least) or "<="
# (at most). Prints
#   "NOT measured"                                      VALUE is not a number
#   "met" / "met (12 % above the target)"               >=, met
#   "NOT met — 8 % short of the target"                 >=, not met
#   "met"                                               <=, met
#   "NOT met — 0.12 ms over the 0.3 ms target"          <=, not met (UNIT is "ms")
bench_verdict() {
  local value=$1 op=$2 target=$3 unit=${4:-}
  if ! bench_is_number "$value"; then
    echo "NOT measured"
    return 0
  fi
  if ! bench_is_number "$target" || [[ $op != ">=" && $op != "<=" ]]; then
    echo "bench_verdict: bad target or operator: '$op' '$target'" >&2
    return 2
  fi
  awk -v v="$value" -v t="$target" -v op="$op" -v unit="${unit:+ $unit}" '
    function num(x, s) { s = sprintf("%.3f", x); sub(/0+$/, "", s); sub(/\.$/, "", s); return s }
    BEGIN {
      v += 0; t += 0
      if (op == ">=") {
        if (v > t && t > 0) print "met (" num((v / t - 1) * 100) " % above the target)"
        else if (v >= t) print "met"
        else if (t > 0) print "NOT met — " num((1 - v / t) * 100) " % short of the target"
        else print "NOT met — " num(t - v) unit " short of the target"
      } else {
        if (v <= t) print "met"
        else print "NOT met — " num(v - t) unit " over the " num(t) unit " target"
      }
    }'
}
