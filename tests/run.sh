#!/usr/bin/env bash
# The proxymapd test command: installs what the tests need on a fresh Debian
# machine (Postfix and its map plugins, LMDB tools, a C compiler for liblmdb,
# a Rust toolchain when none is present), then runs every test of the
# workspace, including the interop tests that drive real Postfix clients.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

packages=(postfix postfix-lmdb postfix-cdb postfix-pcre postfix-sqlite lmdb-utils db5.3-util gcc libc6-dev make)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  echo "postfix postfix/main_mailer_type select No configuration" | as_root debconf-set-selections
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  # Debian's newest Rust (rustc-web) is recent enough for our dependencies.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web >/dev/null
fi

# Build products live outside the clone so repeated runs reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/proxymapd/target}"
cargo test --workspace --all-targets --locked
