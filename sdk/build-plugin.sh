#!/usr/bin/env bash
# Build a proxymapd plugin crate into a WebAssembly component, in one command:
#
#   sdk/build-plugin.sh PATH/TO/CRATE OUT.wasm
#
# Uses the ordinary route when the wasm32-unknown-unknown target is installed
# (`rustup target add wasm32-unknown-unknown`), otherwise Debian's Rust
# (rustc-web, with the standard library built from source, installed on
# demand). The core module is then turned into a component with
# `proxymapd componentize` ($PROXYMAPD, `proxymapd` on PATH, or built from
# this repository). Build products go to $PLUGIN_TARGET_DIR (default
# ~/.cache/proxymapd/wasm-target) so the standard library is built once.
#
# The release profile is set for size (opt-level "s", fat LTO, one codegen
# unit, abort on panic, no debug information, stripped) unless the caller
# sets those CARGO_PROFILE_RELEASE_* variables, and source paths are written
# relative to the crate and cargo's registry, so the same sources and
# toolchain give the same bytes wherever they are checked out.
# PLUGIN_TOOLCHAIN=debian forces the Debian route (sdk/ship-plugins.sh does,
# so shipped plugins do not depend on which route a machine has).
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 CRATE_DIR OUT.wasm" >&2; exit 2; }
crate=$(cd "$1" && pwd)
out=$2
here=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${PLUGIN_TARGET_DIR:-$HOME/.cache/proxymapd/wasm-target}
name=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$crate/Cargo.toml" | head -n 1)
lib=${name//-/_}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

export CARGO_PROFILE_RELEASE_OPT_LEVEL=${CARGO_PROFILE_RELEASE_OPT_LEVEL:-s}
export CARGO_PROFILE_RELEASE_LTO=${CARGO_PROFILE_RELEASE_LTO:-true}
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=${CARGO_PROFILE_RELEASE_CODEGEN_UNITS:-1}
export CARGO_PROFILE_RELEASE_PANIC=${CARGO_PROFILE_RELEASE_PANIC:-abort}
export CARGO_PROFILE_RELEASE_DEBUG=${CARGO_PROFILE_RELEASE_DEBUG:-false}
export CARGO_PROFILE_RELEASE_STRIP=${CARGO_PROFILE_RELEASE_STRIP:-true}
# Panic messages name source files: write them without this machine's paths
# (one set of flags for every crate, so the standard library is built once).
registry="${CARGO_HOME:-$HOME/.cargo}/registry/src"
export RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=$registry=/crates --remap-path-prefix=$here=/proxymapd"

if [ "${PLUGIN_TOOLCHAIN:-}" != debian ] && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  cargo build --release --target wasm32-unknown-unknown \
    --manifest-path "$crate/Cargo.toml" --target-dir "$target_dir"
else
  if [ ! -x /usr/bin/rustc ] || [ ! -d /usr/lib/rustlib/src/rust/library ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web rust-web-src cargo-web >/dev/null
  fi
  lld="$(rustc --print sysroot 2>/dev/null)/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld"
  [ -x "$lld" ] || lld=$(command -v wasm-ld-16 || command -v wasm-ld || true)
  [ -n "$lld" ] || { echo "no WebAssembly linker (rust-lld or wasm-ld) found" >&2; exit 1; }
  PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER="$lld" \
    /usr/bin/cargo build --release --target wasm32-unknown-unknown \
      -Zbuild-std=std,panic_abort \
      --manifest-path "$crate/Cargo.toml" --target-dir "$target_dir"
fi

core="$target_dir/wasm32-unknown-unknown/release/$lib.wasm"
if [ -n "${PROXYMAPD:-}" ]; then
  tool=("$PROXYMAPD")
elif command -v proxymapd >/dev/null 2>&1; then
  tool=(proxymapd)
else
  tool=(cargo run --quiet --release --manifest-path "$here/host/Cargo.toml" --)
fi
mkdir -p "$(dirname "$out")"
"${tool[@]}" componentize "$core" "$out"
