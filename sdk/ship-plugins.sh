#!/usr/bin/env bash
# Build the plugins shipped inside the proxymapd binary from plugins/ and
# write them to host/shipped-plugins/ (or compare them with it):
#
#   sdk/ship-plugins.sh           rebuild host/shipped-plugins/
#   sdk/ship-plugins.sh --check   fail when a rebuild differs from it
#
# Always on Debian's Rust (PLUGIN_TOOLCHAIN=debian) so the bytes do not
# depend on whether a machine also has rustup's wasm32 target; the committed
# files are what these sources give with that toolchain, and the test
# command runs --check so the binary never carries code the sources do not
# produce. Componentizing needs a proxymapd binary ($PROXYMAPD, else built).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dest="$here/host/shipped-plugins"
mode=${1:-write}
case "$mode" in write|--check) ;; *) echo "usage: $0 [--check]" >&2; exit 2 ;; esac

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for crate in "$here"/plugins/*/; do
  name=$(basename "$crate")
  PLUGIN_TOOLCHAIN=debian bash "$here/sdk/build-plugin.sh" "$crate" "$out/$name.wasm" >/dev/null
  cp "$crate/$name.toml" "$out/$name.toml"
done

# The toolchain is part of what the bytes depend on: recorded, and compared
# first, so a different Debian Rust is named as the reason.
{ /usr/bin/rustc -V; /usr/bin/cargo -V; } > "$out/TOOLCHAIN"

if [ "$mode" = --check ]; then
  if ! cmp -s "$dest/TOOLCHAIN" "$out/TOOLCHAIN"; then
    echo "host/shipped-plugins/ was built with another toolchain:" >&2
    diff "$dest/TOOLCHAIN" "$out/TOOLCHAIN" >&2 || true
    echo "rebuild them with this one ('bash sdk/ship-plugins.sh') and commit, or install the recorded one" >&2
    exit 1
  fi
  if ! diff -r "$dest" "$out" >/dev/null; then
    echo "host/shipped-plugins/ differs from what plugins/ builds:" >&2
    diff -rq "$dest" "$out" >&2 || true
    echo "run 'bash sdk/ship-plugins.sh', rebuild proxymapd and commit host/shipped-plugins/" >&2
    exit 1
  fi
  echo "shipped plugins match their sources:"
else
  mkdir -p "$dest"
  rm -f "$dest"/*.wasm "$dest"/*.toml "$dest/TOOLCHAIN"
  cp "$out"/* "$dest"/
  echo "shipped plugins written to host/shipped-plugins/:"
fi
for f in "$out"/*.wasm; do
  printf '  %-12s %8d bytes\n' "$(basename "$f")" "$(stat -c %s "$f")"
done
