#!/usr/bin/env bash
# Build the codec's libFuzzer targets (frame, request) with a nightly
# toolchain and the coverage instrumentation cargo-fuzz uses, then run each
# for FUZZ_SECONDS (default 20) on its corpus, seeded with real proxymap
# frames. Exits non-zero when a target crashes (the input is kept under
# artifacts/). tests/run.sh calls this when `cargo +nightly` works. Longer
# runs: FUZZ_SECONDS=0 FUZZ_RUNS=10000000 bash codec/fuzz/smoke.sh.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-20}
runs=${FUZZ_RUNS:--1}
target_dir=${FUZZ_TARGET_DIR:-$HOME/.cache/proxymapd/fuzz-target}
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')

# The flags cargo-fuzz passes (without a sanitizer: the codec is safe Rust).
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions \
-Coverflow-checks -Cforce-frame-pointers"
cargo +nightly build --release --locked --bins --target "$triple" --target-dir "$target_dir"

# Seeds: requests as Postfix clients send them (the frame target reads 4
# header bytes first: bounds and split pattern).
seed() { # target name bytes...
  local dir="corpus/$1"; mkdir -p "$dir"
  [ -e "$dir/$2" ] || printf "$3" > "$dir/$2"
}
Z='\x00' # NUL for printf
lookup="request${Z}lookup${Z}table${Z}hash:/etc/postfix/virtual${Z}flags${Z}524353${Z}key${Z}foo@example.com${Z}${Z}"
open="request${Z}open${Z}table${Z}hash:/etc/postfix/virtual${Z}flags${Z}0${Z}${Z}"
update="request${Z}update${Z}table${Z}lmdb:/var/db/cache${Z}instance_flags${Z}0${Z}flags${Z}16448${Z}key${Z}k${Z}value${Z}v${Z}${Z}"
sequence="request${Z}sequence${Z}table${Z}texthash:/t${Z}flags${Z}16448${Z}function${Z}1${Z}${Z}"
for t in frame request; do
  head=''; [ "$t" = frame ] && head='\x40\x0a\x9f\x07'
  seed "$t" lookup "$head$lookup"
  seed "$t" open "$head$open$lookup"
  seed "$t" update "$head$update"
  seed "$t" sequence "$head$sequence"
done

status=0
for t in frame request; do
  mkdir -p "artifacts/$t"
  log=$(mktemp)
  if "$target_dir/$triple/release/$t" -max_total_time="$seconds" -runs="$runs" -timeout=10 \
      -artifact_prefix="artifacts/$t/" -print_final_stats=1 "corpus/$t" > "$log" 2>&1; then
    runs_done=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "codec fuzz $t: ${runs_done:-?} runs, no crash"
  else
    echo "codec fuzz $t: FAILED"
    tail -n 40 "$log"
    status=1
  fi
  rm -f "$log"
done
exit "$status"
