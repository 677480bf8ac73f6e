#!/usr/bin/env bash
# Fuzzing campaigns, longer than `tools/test.sh --fuzz` (tests/fuzz/README.md). Builds the
# libFuzzer targets in build-asan/ (clang, ASan + UBSan: the build tools/test.sh --sanitize
# and --fuzz use) and runs each target (J at a time) until it has run N inputs or SECONDS have
# passed, whichever comes first. A crash does not stop the other targets; its input is in
# build-asan/fuzz-bench/<run>/<target>/artifacts/ (a directory per run, named by its start).
#
#   bench/fuzz.sh [SECONDS] [--runs N] [--jobs J] [--corpus DIR] [--merge] [--write-doc] [TARGET...]
#
#   SECONDS       time cap per target (default 600)
#   --runs N      stop a target after N executions (default: the time cap only)
#   --jobs J      run J targets at a time (default 1; each libFuzzer process uses one core)
#   --corpus DIR  keep what the fuzzer finds in DIR/<target>/ (outside the repository), so the
#                 next campaign starts from it; default: a scratch directory per run
#   --merge       afterwards, libFuzzer's -merge=1 picks the kept inputs that add coverage over
#                 the committed seeds and regressions; they are copied into
#                 tests/fuzz/corpus/<target>/ only when they are few and small (at most
#                 MERGE_MAX_FILES files and MERGE_MAX_BYTES bytes per target, default 16 and
#                 32768); otherwise the script says so and leaves them in the merge directory
#   --write-doc   write the result table into docs/reliability.md ("Last fuzzing campaign")
#   TARGET...     default: every fuzz target
# Environment: SKIP_BUILD=1 uses build-asan as it is.
#
# The documented campaign (#22): bench/fuzz.sh 5400 --runs 10000000 \
#   --corpus ~/.cache/doppel-fuzz --merge --write-doc
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/deps.sh
source bench/results_section.sh

usage() {
  echo "usage: bench/fuzz.sh [SECONDS] [--runs N] [--jobs J] [--corpus DIR] [--merge] [--write-doc] [TARGET...]" >&2
  exit 2
}
seconds=600 runs="" jobs=1 keep="" merge="" write_doc=""
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) [[ "${2:-}" =~ ^[0-9]+$ ]] || usage; runs=$2; shift ;;
    --jobs) [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || usage; jobs=$2; shift ;;
    --corpus) [ -n "${2:-}" ] || usage; keep=$2; shift ;;
    --merge) merge=1 ;;
    --write-doc) write_doc=1 ;;
    -*) usage ;;
    *) if [[ "$1" =~ ^[0-9]+$ ]] && [ ${#targets[@]} -eq 0 ]; then seconds=$1; else targets+=("$1"); fi ;;
  esac
  shift
done
if [ -n "$merge" ] && [ -z "$keep" ]; then
  echo "bench/fuzz.sh: --merge needs --corpus DIR (the inputs to merge are the kept ones)" >&2
  exit 2
fi
if [ -n "$keep" ]; then
  keep=$(realpath -m "$keep")
  case "$keep/" in
    "$(realpath .)"/*)
      echo "bench/fuzz.sh: --corpus $keep is inside the repository; give a directory outside" \
           "it (e.g. ~/.cache/doppel-fuzz), so generated inputs are never committed" >&2
      exit 2 ;;
  esac
  mkdir -p "$keep"
fi

if [[ -z "${SKIP_BUILD:-}" ]]; then
  doppel_configure_sanitize_build
  cmake --build build-asan -j2 --target doppel_fuzz
fi
if [ ${#targets[@]} -eq 0 ]; then
  for b in build-asan/tests/fuzz/fuzz_*; do
    t=${b##*/fuzz_}
    [[ -x "$b" && "$t" != regress_* && "$t" != make_seeds ]] && targets+=("$t")
  done
fi

# A directory per run: runs side by side (other targets on the other core) keep their own
# logs, artifacts and table.
out=build-asan/fuzz-bench/$(date -u +%Y%m%dT%H%M%SZ)-$$
mkdir -p "$out"
failed=0
started=$(date -u +%Y-%m-%dT%H:%MZ)
for t in "${targets[@]}"; do
  [ -x "build-asan/tests/fuzz/fuzz_$t" ] || { echo "bench/fuzz.sh: no fuzz target $t" >&2; exit 2; }
done
echo "fuzzing ${#targets[@]} targets, $jobs at a time, each for ${runs:+$runs runs or }${seconds} s;" \
  "load: $(cut -d' ' -f1-3 /proc/loadavg)"
running=0
for t in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
  corpus_arg=()
  [ -n "$keep" ] && corpus_arg=(--keep-corpus "$keep/$t")
  tests/fuzz/run_fuzzer.sh "${corpus_arg[@]}" "build-asan/tests/fuzz/fuzz_$t" "$seconds" "$out/$t" \
    "tests/fuzz/corpus/$t" "tests/fuzz/regressions/$t" -- ${runs:+-runs=$runs} &
  running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done

# --merge: inputs that add coverage over the committed seeds and regressions.
merge_notes=()
if [ -n "$merge" ]; then
  max_files=${MERGE_MAX_FILES:-16} max_bytes=${MERGE_MAX_BYTES:-32768}
  for t in "${targets[@]}"; do
    m="$out/$t/merge"
    mkdir -p "$m"
    cp tests/fuzz/corpus/"$t"/* "$m"/ 2>/dev/null || true
    cp tests/fuzz/regressions/"$t"/* "$m"/ 2>/dev/null || true
    ls "$m" | sort >"$out/$t/merge.before"
    "build-asan/tests/fuzz/fuzz_$t" -merge=1 -rss_limit_mb=2048 -malloc_limit_mb=300 \
      -timeout=10 "$m" "$keep/$t" >"$out/$t/merge.log" 2>&1 || {
        merge_notes+=("$t: merge failed, see $out/$t/merge.log"); failed=1; continue; }
    mapfile -t added < <(ls "$m" | sort | comm -13 "$out/$t/merge.before" -)
    bytes=0
    for f in "${added[@]}"; do bytes=$((bytes + $(stat -c %s "$m/$f"))); done
    if [ ${#added[@]} -eq 0 ]; then
      merge_notes+=("$t: no input adds coverage over the committed seeds")
    elif [ ${#added[@]} -le "$max_files" ] && [ "$bytes" -le "$max_bytes" ]; then
      for f in "${added[@]}"; do cp "$m/$f" "tests/fuzz/corpus/$t/campaign-$f"; done
      merge_notes+=("$t: ${#added[@]} inputs ($bytes bytes) added to tests/fuzz/corpus/$t/")
    else
      merge_notes+=("$t: ${#added[@]} inputs ($bytes bytes) add coverage, over the limit ($max_files files, $max_bytes bytes): not merged, they are in $m")
    fi
  done
fi

echo
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo none), $(nproc) cores," \
  "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
tests/fuzz/fuzz_table.sh "$out"
printf '%s\n' "${merge_notes[@]}"

if [ -n "$write_doc" ]; then
  section=$(mktemp)
  {
    echo "<!-- fuzz-campaign:begin -->"
    echo "### Last fuzzing campaign"
    echo
    echo "\`bench/fuzz.sh $seconds${runs:+ --runs $runs} --jobs $jobs${keep:+ --corpus DIR}${merge:+ --merge} --write-doc\`," \
         "started $started on commit $(git rev-parse --short HEAD 2>/dev/null || echo none)," \
         "$(nproc) cores, $jobs target(s) at a time; each target stops at" \
         "${runs:+$runs executions or }$seconds s. \"cov\" is libFuzzer's edge coverage after" \
         "loading the corpus → at the end; \"new\" the inputs that added coverage."
    echo
    tests/fuzz/fuzz_table.sh --markdown "$out"
    if [ ${#merge_notes[@]} -gt 0 ]; then
      echo
      printf -- '- %s\n' "${merge_notes[@]}"
    fi
    echo "<!-- fuzz-campaign:end -->"
  } >"$section"
  replace_results_section fuzz-campaign "$section" docs/reliability.md
  rm -f "$section"
  echo "wrote the table into docs/reliability.md"
fi
exit $failed
