#!/usr/bin/env bash
# Build every plugin shipped in plugins/ into OUT_DIR, with its manifest:
#
#   sdk/build-plugins.sh OUT_DIR
#
# proxymapd finds plugins in the `plugins/` directory beside its binary
# without configuration, so OUT_DIR is usually target/<profile>/plugins.
# A crate's `aliases` file lists further map types the same plugin serves
# (plugins/hash is also btree).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 OUT_DIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")/.." && pwd)
out=$1
mkdir -p "$out"
for crate in "$here"/plugins/*/; do
  name=$(basename "$crate")
  bash "$here/sdk/build-plugin.sh" "$crate" "$out/$name.wasm"
  if [ -f "$crate/$name.toml" ]; then
    cp "$crate/$name.toml" "$out/$name.toml"
  fi
  # A plugin serving several map types is installed once per type.
  if [ -f "$crate/aliases" ]; then
    for alias in $(cat "$crate/aliases"); do
      cp "$out/$name.wasm" "$out/$alias.wasm"
      [ ! -f "$out/$name.toml" ] || cp "$out/$name.toml" "$out/$alias.toml"
    done
  fi
done
