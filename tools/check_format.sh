#!/usr/bin/env bash
# Format check: every tracked C++ file is as clang-format-14 formats it under .clang-format.
# Prints the files that differ and how to fix them; exits 1 if there is any. ctest runs it as
# `format_check` in every test pass. Fix with: tools/check_format.sh --fix
set -euo pipefail
cd "$(dirname "$0")/.."
clang_format=$(command -v clang-format-14 || true)
if [[ -z $clang_format ]]; then
  echo "check_format: clang-format-14 is missing (apt-get install clang-format-14)" >&2
  exit 1
fi
mapfile -t files < <(git ls-files '*.cc' '*.h' | grep -v '^tests/fuzz/corpus/')
if [[ ${1:-} == --fix ]]; then
  "$clang_format" -i "${files[@]}"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  "$clang_format" --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if ((${#bad[@]})); then
  printf '%s: not formatted as .clang-format says\n' "${bad[@]}" >&2
  echo "check_format: ${#bad[@]} file(s); run tools/check_format.sh --fix" >&2
  exit 1
fi
echo "check_format: ${#files[@]} files formatted"
