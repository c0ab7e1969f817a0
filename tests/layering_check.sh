#!/usr/bin/env bash
# ctest `layering`: no product folder includes a layer above it. Every #include in a layer's
# folder must name that folder, a layer it uses, or something outside the repository (<boost/...>).
# The rules come from cmake/layers.cmake (tests/CMakeLists.txt passes them); the build enforces
# them too (per-layer include roots), and this names each offending file, line and layer.
# usage: layering_check.sh SOURCE_DIR LAYER=USED,USED ...   e.g. broker=hsm_backends,common
set -euo pipefail
src=$1
shift
declare -A uses
for rule in "$@"; do
  layer=${rule%%=*}
  list=${rule#*=}
  uses[$layer]=" $layer ${list//,/ } "
done
# Folders of the repository an include may reach: the layers, and tests/ and bench/ (used by none).
reachable=" ${!uses[*]} tests bench "

violations=0
include_re='^[[:space:]]*#[[:space:]]*include[[:space:]]*["<]([^">]+)[">]'
for layer in "${!uses[@]}"; do
  [[ -d $src/$layer ]] || { echo "layering: no folder $layer in $src"; exit 2; }
  while IFS= read -r hit; do
    file=${hit%%:*}
    rest=${hit#*:}
    line=${rest%%:*}
    text=${rest#*:}
    [[ $text =~ $include_re ]] || continue
    target=${BASH_REMATCH[1]}
    if [[ $target == ../* || $target == */../* ]]; then  # relative: where it lands
      resolved=$(realpath -m --relative-to="$src" "$src/$(dirname "$file")/$target")
      reached=${resolved%%/*}
    elif [[ $target == */* ]]; then
      reached=${target%%/*}
    else
      continue  # a file beside this one
    fi
    [[ $reachable == *" $reached "* ]] || continue
    if [[ ${uses[$layer]} != *" $reached "* ]]; then
      echo "$file:$line: includes \"$target\": layer $reached is not below $layer ($layer may include:${uses[$layer]% })"
      violations=$((violations + 1))
    fi
  done < <(cd "$src" && grep -rnE --include='*.h' --include='*.hpp' --include='*.cpp' --include='*.cc' \
                          '^[[:space:]]*#[[:space:]]*include' "$layer" || true)
done
if ((violations)); then
  echo "layering: $violations include(s) against the layer rules (cmake/layers.cmake; docs/design.md, 'Layout and layers')"
  exit 1
fi
echo "layering: OK (${!uses[*]})"
