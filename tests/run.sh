#!/usr/bin/env bash
# The proxymapd test command: installs what the tests need on a fresh Debian
# machine (tests/install-deps.sh), then runs every test of the workspace,
# including the interop tests that drive real Postfix clients and the
# benchmark smoke run against a private Postfix instance.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/install-deps.sh

# Build products live outside the clone so repeated runs reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/proxymapd/target}"
cargo bench --workspace --locked --no-run
cargo test --workspace --lib --bins --tests --locked
