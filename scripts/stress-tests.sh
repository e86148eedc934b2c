#!/usr/bin/env bash
# Runs the README's test command RUNS times in a row (default 10), then the end-to-end suite
# E2E_RUNS times (default 3), all while stress-ng keeps every core, memory and the disk busy.
# Stops at the first failure. Not part of .ci/run: it proves the suites do not depend on speed.
#
#   scripts/stress-tests.sh            # RUNS=10 E2E_RUNS=3
#   RUNS=3 E2E_RUNS=0 scripts/stress-tests.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-10}
E2E_RUNS=${E2E_RUNS:-3}
LOAD=(--cpu 4 --vm 2 --vm-bytes 512M --hdd 1)
command -v stress-ng >/dev/null || { apt-get update -qq && apt-get install -y -qq stress-ng; }

# Build first, without the load: the runs below measure the tests, not the compiler.
cargo test --locked --no-run
if [ "$E2E_RUNS" -gt 0 ]; then
  cargo build --release --locked --bin zego-kafka-bridge
  cargo test --locked --features e2e --test e2e --no-run
fi

stress-ng "${LOAD[@]}" --timeout 0 --quiet &
load=$!
trap 'kill $load 2>/dev/null; wait $load 2>/dev/null || true' EXIT
echo "stress-ng ${LOAD[*]} running (pid $load)"

for i in $(seq 1 "$RUNS"); do
  start=$(date +%s)
  if cargo test --locked >"target/stress-run-$i.log" 2>&1; then
    echo "cargo test --locked: run $i/$RUNS passed in $(( $(date +%s) - start )) s"
  else
    echo "cargo test --locked: run $i/$RUNS FAILED; see target/stress-run-$i.log"
    grep -E "panicked|FAILED" "target/stress-run-$i.log" | head -20
    exit 1
  fi
done
for i in $(seq 1 "$E2E_RUNS"); do
  start=$(date +%s)
  if BRIDGE_BIN="$PWD/target/release/zego-kafka-bridge" \
      cargo test --locked --features e2e --test e2e >"target/stress-e2e-$i.log" 2>&1; then
    echo "e2e suite: run $i/$E2E_RUNS passed in $(( $(date +%s) - start )) s"
  else
    echo "e2e suite: run $i/$E2E_RUNS FAILED; see target/stress-e2e-$i.log"
    grep -E "panicked|FAILED" "target/stress-e2e-$i.log" | head -20
    exit 1
  fi
done
echo "all $RUNS + $E2E_RUNS runs passed under stress-ng ${LOAD[*]}"
