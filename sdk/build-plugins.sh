#!/usr/bin/env bash
# Build every plugin shipped in plugins/ into OUT_DIR, with its manifest:
#
#   sdk/build-plugins.sh OUT_DIR
#
# proxymapd finds plugins in the `plugins/` directory beside its binary
# without configuration, so OUT_DIR is usually target/<profile>/plugins.
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
done
