#!/usr/bin/env bash
# bench/spool.sh: the durable spool's cost, measured in one run on this machine (bench/run.sh
# calls it last; it also runs alone).
#
#   normal   wrk POSTing distinct signed callbacks at BENCH_SPOOL_CONCURRENCY connections to a
#            bridge with SPOOL_DIR set, the broker up (nothing is spooled)
#   spooled  the same with the broker frozen (SIGSTOP): every callback is written to the spool
#            and flushed (group commit) before its 200
#   drain    the broker thawed: records forwarded a second until the spool is empty
#
# Appends a "Durable spool" section to bench/results.md (raw logs in bench/out/).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${BENCH_SECONDS:-15}
C=${BENCH_SPOOL_CONCURRENCY:-64}
OUT=bench/out
mkdir -p "$OUT"

if ! command -v wrk >/dev/null; then apt-get update -qq && apt-get install -y -qq wrk; fi
. bench/lib.sh
cargo build --release --locked --bin zego-kafka-bridge
BRIDGE=target/release/zego-kafka-bridge

metric() { curl -fs "http://127.0.0.1:$BRIDGE_PORT/metrics" | awk -v s="$1" '$1 == s {print $2}'; }
wait_metric() { # name, awk condition on $1, timeout s
  local deadline=$(( $(date +%s) + $3 ))
  until [ "$(metric "$1" | awk "{print ($2) ? 1 : 0}")" = 1 ]; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "$1 never met $2"; exit 1; }
    sleep 0.05
  done
}

pids=()
TANSU_PID=
cleanup() {
  [ -n "$TANSU_PID" ] && kill -CONT "$TANSU_PID" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

BRIDGE_PORT=$(free_port)
TOPIC=zego-callbacks
start_tansu "$OUT/spool-tansu.log" "$TOPIC"
pids+=("$TANSU_PID")

SPOOL=$OUT/spool-dir
rm -rf "$SPOOL"
SECRET=bench-secret
SPOOL_DIR=$SPOOL ZEGO_CALLBACK_SECRET=$SECRET KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT" \
  BIND_ADDR="127.0.0.1:$BRIDGE_PORT" RUST_LOG=warn "$BRIDGE" >"$OUT/spool-bridge.log" 2>&1 &
pids+=($!)
wait_port "$BRIDGE_PORT"
wait_metric zego_broker_reachable '$1 == 1' 30

sign_bench_callbacks "$SECRET"
run_wrk() { # name
  BENCH_PREFIX="$1" wrk -t2 -c"$C" -d"${SECONDS_EACH}s" -s bench/wrk_callbacks.lua \
    "http://127.0.0.1:$BRIDGE_PORT/zego/callback" | tee "$OUT/spool-$1.log" | grep '^BENCH' | sed 's/^BENCH //'
}

echo "== normal (broker up), $C connections"
NORMAL=$(run_wrk normal)
echo "$NORMAL"

echo "== spooled (broker frozen), $C connections"
kill -STOP "$TANSU_PID"
wait_metric zego_broker_reachable '$1 == 0' 30
# Known unreachable once no probe succeeded for 3 s: from then on callbacks spool at once.
sleep 4
SPOOLED=$(run_wrk spooled)
echo "$SPOOLED"
RECORDS=$(metric zego_spool_records)
FLUSHES=$(metric zego_spool_group_records_count)
GROUPED=$(metric zego_spool_group_records_sum)
FSYNC_SUM=$(metric zego_spool_fsync_duration_seconds_sum)
FSYNC_COUNT=$(metric zego_spool_fsync_duration_seconds_count)
SPOOL_BYTES=$(metric zego_spool_bytes)

echo "== drain ($RECORDS records)"
started=$(now_ms)
kill -CONT "$TANSU_PID"
wait_metric zego_spool_records '$1 == 0' 600
DRAIN_MS=$(( $(now_ms) - started ))

python3 - "$NORMAL" "$SPOOLED" "$RECORDS" "$FLUSHES" "$GROUPED" "$FSYNC_SUM" "$FSYNC_COUNT" "$SPOOL_BYTES" "$DRAIN_MS" "$C" "$SECONDS_EACH" >>bench/results.md <<'PY'
import json, sys
normal, spooled = json.loads(sys.argv[1]), json.loads(sys.argv[2])
records, groups, grouped = float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
fsync_sum, fsync_count, spool_bytes = float(sys.argv[6]), float(sys.argv[7]), float(sys.argv[8])
drain_ms, c, secs = int(sys.argv[9]), sys.argv[10], sys.argv[11]
ratio = spooled["requests_per_sec"] / normal["requests_per_sec"]
drain_rate = records / (drain_ms / 1000) if drain_ms else 0
print(f"""
## Durable spool (`bench/spool.sh`)

Same machine and run; {c} connections, {secs} s each; a bridge with `SPOOL_DIR` on this
machine's disk; the broker frozen (SIGSTOP) for the spooled run, so every callback is written
and flushed before its 200.

| mode | req/s | p50 ms | p99 ms | p99.9 ms | non-200 |
|---|---|---|---|---|---|
| normal (broker up) | {normal['requests_per_sec']:.0f} | {normal['p50_ms']:.2f} | {normal['p99_ms']:.2f} | {normal['p999_ms']:.2f} | {normal['non200']} |
| spooled (broker frozen) | {spooled['requests_per_sec']:.0f} | {spooled['p50_ms']:.2f} | {spooled['p99_ms']:.2f} | {spooled['p999_ms']:.2f} | {spooled['non200']} |

| figure | value |
|---|---|
| spooled ÷ normal throughput (target ≥ 0.5) | {ratio:.2f} ({'met' if ratio >= 0.5 else 'NOT met'}) |
| records spooled | {records:.0f} ({spool_bytes / 1e6:.1f} MB on disk, {spool_bytes / max(records, 1):.0f} bytes each) |
| group commit | {groups:.0f} flushes for {grouped:.0f} records: {grouped / max(groups, 1):.1f} records a flush |
| mean fdatasync | {1000 * fsync_sum / max(fsync_count, 1):.2f} ms |
| drain | {records:.0f} records in {drain_ms / 1000:.1f} s: **{drain_rate:.0f} records/s** (to tansu, acks=all) |
""")
PY
echo "appended the spool figures to bench/results.md"
