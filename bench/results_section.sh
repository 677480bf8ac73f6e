# Sourced by the bench/*.sh scripts: replaces one script's section of bench/RESULTS.md.
#
#   replace_results_section NAME SECTION_FILE [RESULTS_FILE]
#
# SECTION_FILE holds the whole section, from "<!-- NAME:begin -->" to "<!-- NAME:end -->". The
# lines between those markers in RESULTS_FILE (default bench/RESULTS.md) are replaced by it, or
# it is appended when the file has no such section yet; a missing RESULTS_FILE is created with
# the page's header first. Other sections are left alone.
replace_results_section() {
  local name=$1 section=$2 results=${3:-bench/RESULTS.md}
  if [[ ! -f "$results" ]]; then
    printf '%s\n' '# Benchmark results' '' \
      'Every number here comes from a run of the script named in its section, on the machine' \
      'described there. Re-run the script to update its section; other sections are left alone.' \
      '' >"$results"
  fi
  local new
  new=$(mktemp)
  if grep -q "<!-- $name:begin -->" "$results"; then
    awk -v section="$section" -v begin="<!-- $name:begin -->" -v end="<!-- $name:end -->" '
      $0 == begin { while ((getline line < section) > 0) print line; skip = 1; next }
      $0 == end { skip = 0; next }
      !skip { print }' "$results" >"$new"
  else
    { cat "$results"; echo; cat "$section"; } >"$new"
  fi
  cat "$new" >"$results"
  rm -f "$new"
}
