#!/usr/bin/env bash
# The proxymapd test command: installs what the tests need on a fresh Debian
# machine (tests/install-deps.sh), builds proxymapd, rebuilds the plugins it
# carries to check they match their sources, builds the test plugins, checks
# formatting, lints and documentation, then runs every test of the workspace:
# unit tests and every tests/*.rs (cargo discovers them; host/tests links to
# tests/): wire, CLI, interop with real Postfix clients, plugin sandbox tests
# and the benchmark smoke run (`proxymapd-bench vs-postfix --smoke`, in
# bench/tests/), after a short fuzz run of the wire codec when a nightly
# toolchain is present. Ends with one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/install-deps.sh

# Build products live outside the clone so repeated runs reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/proxymapd/target}"
export PLUGIN_TARGET_DIR="${PLUGIN_TARGET_DIR:-$HOME/.cache/proxymapd/wasm-target}"
cargo build --locked -p proxymapd -p proxymapd-bench
export PROXYMAPD="$CARGO_TARGET_DIR/debug/proxymapd"
# The shipped plugins are carried in the binary; rebuild them from plugins/
# and fail now when the committed host/shipped-plugins/ differs. A plugins/
# directory beside the binary would override them, so none is kept there.
bash sdk/ship-plugins.sh --check
rm -rf "$CARGO_TARGET_DIR/debug/plugins"
for crate in tests/plugins/hostile examples/csv-table; do
  name=$(basename "$crate"); name=${name%-table}
  bash sdk/build-plugin.sh "$crate" "$CARGO_TARGET_DIR/debug/test-plugins/$name.wasm"
  cp "$crate/$name.toml" "$CARGO_TARGET_DIR/debug/test-plugins/$name.toml"
done

cargo bench --workspace --locked --no-run

# Guard rails: formatting, lints (warnings denied) and documentation.
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

# Short fuzz runs of the wire codec; they need a nightly toolchain, which CI
# machines may lack, but a crash fails the run.
if cargo +nightly --version > /dev/null 2>&1; then
  bash codec/fuzz/smoke.sh
else
  echo "codec fuzz smoke run skipped: no nightly toolchain (cargo +nightly)"
fi
# Every test's prerequisites are installed above: a missing one fails.
export PROXYMAPD_TESTS_STRICT=1
log=$(mktemp)
set +e
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit "$status"
