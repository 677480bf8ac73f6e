#!/usr/bin/env bash
# Layer check (docs/architecture.md, "Layers"): each top-level library folder may include only
# itself and the folders below it, and its CMake target must link every library it includes.
# Prints each violation as FILE: ... and exits 1 if there is any. Run from anywhere; ctest runs
# it as `layer_check` in every test pass.
set -euo pipefail
cd "$(dirname "$0")/.."

# Low to high. A folder may include the folders before it (and proto's generated headers).
# recorder and replay are peers: neither includes the other; so are audit and net.
layers=(base audit net storage diff redact interop stream report replay recorder)
declare -A rank=([base]=0 [audit]=1 [net]=1 [storage]=2 [diff]=3 [redact]=4 [interop]=5 [stream]=6
                 [report]=7 [replay]=8 [recorder]=8)

bad=0
for dir in "${layers[@]}"; do
  [ -d "$dir" ] || continue
  lib="doppel_$dir"
  links=$(tr '\n' ' ' < "$dir/CMakeLists.txt")
  while IFS=: read -r file _ inc; do
    target=${inc#*\"}; target=${target%%/*}
    [ -n "${rank[$target]+x}" ] || continue   # not one of doppel's library folders
    if [ "$target" != "$dir" ]; then
      if [ "${rank[$target]}" -ge "${rank[$dir]}" ]; then
        echo "$file: includes \"${inc#*\"}: $dir/ must not include $target/ (a layer up or a peer)"
        bad=1
      elif ! grep -qE "\bdoppel_$target\b" <<< "$links"; then
        echo "$file: includes $target/ but $lib does not link doppel_$target ($dir/CMakeLists.txt)"
        bad=1
      fi
    fi
  done < <(grep -rnE '^#include "[a-z_]+/' "$dir" --include=*.h --include=*.cc || true)
done
if [ $bad -eq 0 ]; then
  echo "layer check: ${#layers[@]} library folders, no include goes up a layer"
fi
exit $bad
