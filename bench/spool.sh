#!/usr/bin/env bash
# bench/spool.sh: the durable spool's cost, measured in one run on this machine (bench/run.sh
# calls it last; it also runs alone).
#
#   no spool wrk POSTing distinct signed callbacks at BENCH_SPOOL_CONCURRENCY connections to a
#            bridge without SPOOL_DIR, the broker up: the baseline, with the bridge's CPU time
#   normal   the same against a bridge with SPOOL_DIR set, the broker up (nothing is spooled):
#            what having a spool costs while Kafka is healthy (CPU per callback)
#   spooled  the same with the broker frozen (SIGSTOP): every callback is committed to the
#            spool's SQLite database (group commit, fdatasync) before its 200
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
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
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
sign_bench_callbacks "$SECRET"
run_wrk() { # name
  BENCH_PREFIX="$1" wrk -t2 -c"$C" -d"${SECONDS_EACH}s" -s bench/wrk_callbacks.lua \
    "http://127.0.0.1:$BRIDGE_PORT/zego/callback" | tee "$OUT/spool-$1.log" | grep '^BENCH' | sed 's/^BENCH //'
}
# start_bridge LOG [SPOOL_DIR]: sets BRIDGE_PID.
start_bridge() {
  SPOOL_DIR=${2:-} ZEGO_CALLBACK_SECRET=$SECRET KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT" \
    BIND_ADDR="127.0.0.1:$BRIDGE_PORT" RUST_LOG=warn "$BRIDGE" >"$1" 2>&1 &
  BRIDGE_PID=$!
  pids+=("$BRIDGE_PID")
  wait_port "$BRIDGE_PORT"
  wait_metric zego_broker_reachable '$1 == 1' 30
}
# measured NAME: wrk's JSON with the bridge's CPU microseconds per request added.
measured() {
  local before after result
  before=$(cpu_ticks "$BRIDGE_PID")
  result=$(run_wrk "$1")
  after=$(cpu_ticks "$BRIDGE_PID")
  python3 -c 'import json, sys; r = json.loads(sys.argv[1]); r["cpu_us"] = 1e6 * (int(sys.argv[2]) / int(sys.argv[3])) / max(r["requests"], 1); print(json.dumps(r))' \
    "$result" "$((after - before))" "$(getconf CLK_TCK)"
}

# CPU figures on this 2-core machine vary by several % between runs: the spool's cost while
# Kafka is healthy is measured in alternating pairs (no spool, then SPOOL_DIR set), and the
# median of the pairs' ratios is reported.
PAIRS=${BENCH_SPOOL_PAIRS:-3}
RATIOS=()
for pair in $(seq 1 "$PAIRS"); do
  echo "== pair $pair: no spool (broker up), $C connections"
  start_bridge "$OUT/spool-nospool-bridge.log"
  NOSPOOL=$(measured "nospool-$pair")
  echo "$NOSPOOL"
  kill "$BRIDGE_PID"; wait "$BRIDGE_PID" 2>/dev/null || true
  echo "== pair $pair: SPOOL_DIR set (broker up), $C connections"
  start_bridge "$OUT/spool-bridge.log" "$SPOOL"
  NORMAL=$(measured "normal-$pair")
  echo "$NORMAL"
  RATIOS+=("$(python3 -c 'import json, sys; print(json.loads(sys.argv[2])["cpu_us"] / json.loads(sys.argv[1])["cpu_us"])' "$NOSPOOL" "$NORMAL")")
  [ "$pair" = "$PAIRS" ] || { kill "$BRIDGE_PID"; wait "$BRIDGE_PID" 2>/dev/null || true; }
done
# The last bridge (SPOOL_DIR set) stays up for the spooled run and the drain.

echo "== spooled (broker frozen), $C connections"
kill -STOP "$TANSU_PID"
wait_metric zego_broker_reachable '$1 == 0' 30
# Known unreachable once no probe succeeded for 3 s: from then on callbacks spool at once.
sleep 4
SPOOLED=$(measured spooled)
echo "$SPOOLED"
RECORDS=$(metric zego_spool_records)
FLUSHES=$(metric zego_spool_group_records_count)
GROUPED=$(metric zego_spool_group_records_sum)
COMMIT_SUM=$(metric zego_spool_write_duration_seconds_sum)
COMMIT_COUNT=$(metric zego_spool_write_duration_seconds_count)
SPOOL_BYTES=$(metric zego_spool_bytes)

echo "== drain ($RECORDS records)"
started=$(now_ms)
kill -CONT "$TANSU_PID"
wait_metric zego_spool_records '$1 == 0' 600
DRAIN_MS=$(( $(now_ms) - started ))

python3 - "$NOSPOOL" "$NORMAL" "$SPOOLED" "$RECORDS" "$FLUSHES" "$GROUPED" "$COMMIT_SUM" "$COMMIT_COUNT" "$SPOOL_BYTES" "$DRAIN_MS" "$C" "$SECONDS_EACH" "${RATIOS[*]}" >>bench/results.md <<'PY'
import json, statistics, sys
nospool, normal, spooled = (json.loads(a) for a in sys.argv[1:4])
records, groups, grouped = float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
commit_sum, commit_count, spool_bytes = float(sys.argv[7]), float(sys.argv[8]), float(sys.argv[9])
drain_ms, c, secs = int(sys.argv[10]), sys.argv[11], sys.argv[12]
pair_ratios = [float(r) for r in sys.argv[13].split()]
ratio = spooled["requests_per_sec"] / normal["requests_per_sec"]
cpu_cost = statistics.median(pair_ratios) - 1
pairs = ", ".join(f"{100 * (r - 1):+.1f} %" for r in pair_ratios)
drain_rate = records / (drain_ms / 1000) if drain_ms else 0
row = lambda name, r: f"| {name} | {r['requests_per_sec']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['p999_ms']:.2f} | {r['non200']} | {r.get('cpu_us', 0):.1f} |"
print(f"""
## Durable spool (`bench/spool.sh`)

Same machine and run; {c} connections, {secs} s each (the first two rows: the last of the
alternating pairs); the spool (SQLite, WAL,
`synchronous=FULL`) on this machine's disk; the broker frozen (SIGSTOP) for the spooled run, so
every callback is committed durably before its 200.

| mode | req/s | p50 ms | p99 ms | p99.9 ms | non-200 | bridge CPU µs a callback |
|---|---|---|---|---|---|---|
{row("no spool (broker up)", nospool)}
{row("SPOOL_DIR set, broker up (nothing spooled)", normal)}
{row("spooled (broker frozen)", spooled)}

| figure | value |
|---|---|
| spooled ÷ normal throughput (target ≥ 0.5) | {ratio:.2f} ({'met' if ratio >= 0.5 else 'NOT met'}) |
| CPU a callback with `SPOOL_DIR` set and Kafka healthy, against no spool (target ≤ +5 %) | median {100 * cpu_cost:+.1f} % of {len(pair_ratios)} alternating pairs ({pairs}): {'met' if cpu_cost <= 0.05 else 'NOT met'} |
| records spooled | {records:.0f} ({spool_bytes / 1e6:.1f} MB on disk, {spool_bytes / max(records, 1):.0f} bytes each) |
| group commit | {groups:.0f} commits for {grouped:.0f} records: {grouped / max(groups, 1):.1f} records a commit, mean {1000 * commit_sum / max(commit_count, 1):.2f} ms a commit |
| drain (target ≥ 20,000 records/s) | {records:.0f} records in {drain_ms / 1000:.1f} s: **{drain_rate:.0f} records/s** (to tansu, acks=all; {'met' if drain_rate >= 20000 else 'NOT met'}) |
""")
PY
echo "appended the spool figures to bench/results.md"
