#!/usr/bin/env bash
# Side-by-side benchmark: proxymapd against Postfix's own proxymap on this
# machine. Installs Postfix and friends when missing, builds proxymapd and
# proxymapd-bench in release mode, starts a private Postfix instance (own
# config, queue and data directories; master running proxymap with stock
# process limits) and
# proxymapd on identical 100,000-entry texthash, lmdb and cdb tables (cdb via
# proxymapd's WebAssembly plugin), plus a 500-rule regexp table and a
# 10,000-line cidr table (both through proxymapd's plugins), runs the same
# load against each (alternating) for C = 1, 8, 32, 128, and writes
# docs/benchmarks.md and docs/benchmarks.svg. Extra arguments go to
# `proxymapd-bench vs-postfix` (e.g. --duration 2 --repetitions 1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/proxymapd/target}"
export PLUGIN_TARGET_DIR="${PLUGIN_TARGET_DIR:-$HOME/.cache/proxymapd/wasm-target}"
cargo build --release --locked -p proxymapd -p proxymapd-bench
# The shipped plugins are in the binary; a plugins/ directory left beside it
# by earlier versions of this script would override them.
rm -rf "$CARGO_TARGET_DIR/release/plugins"
"$CARGO_TARGET_DIR/release/proxymapd-bench" vs-postfix \
  --proxymapd "$CARGO_TARGET_DIR/release/proxymapd" --out docs "$@"
