#!/usr/bin/env bash
# Fuzzes the parsers that face the outside with cargo fuzz (libFuzzer): every target in
# fuzz/fuzz_targets for SECS seconds each (default 60). Non-zero exit on the first crash; its
# input is left in fuzz/artifacts/<target>/ — turn it into a unit test of the crate it broke,
# fix the code, and add the input to fuzz/seeds/<target>/ so every later run replays it.
#
#   scripts/fuzz.sh          # 60 s per target
#   scripts/fuzz.sh 600 jwt  # one target, ten minutes
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
shift || true
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
# libFuzzer's instrumentation flags (-Z…) are unstable; the machine's stable toolchain takes
# them when told it may (there is no nightly toolchain to fetch here).
export RUSTC_BOOTSTRAP=1
# Sanitizer-instrumented builds share nothing with the ordinary ones: a directory of their own.
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-/var/tmp/depot-fuzz-target}

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target" "fuzz/seeds/$target"
  echo "=== $target: ${secs}s ==="
  status=0
  (cd fuzz && cargo fuzz run --release "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1) \
    >"$log" 2>&1 || status=$?
  # The run's summary; the whole output when it failed (a build error or a crash).
  if [ "$status" -eq 0 ]; then
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
  else
    tail -n 60 "$log"
    echo "$target: failed — a crash leaves its input in fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
