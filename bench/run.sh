#!/usr/bin/env bash
# bench/run.sh: the bridge against its two ceilings, measured in one run on this machine.
#
#   HTTP ceiling      wrk GET /healthz on the same bridge process (actix + the network stack,
#                     no body, no checks, no Kafka)
#   producer ceiling  bench/producer_ceiling.rs: the same records straight through rdkafka with
#                     the bridge's producer settings and as many sends outstanding as wrk has
#                     connections
#   bridge            wrk POSTing distinct signed call_accept callbacks (bench/wrk_callbacks.lua)
#
# at each concurrency in BENCH_CONCURRENCY, for BENCH_SECONDS each, against tansu (memory
# storage) on loopback. Also: start-up to /readyz 200, idle and peak RSS, bridge CPU seconds per
# answered request (from /proc around each run), and latency at fixed offered rates
# (BENCH_RATES, open loop: oha --rate with latency correction, so a slow answer does not delay
# the next request and hide its own wait). Then bench/spool.sh. Writes bench/results.md (raw logs
# in bench/out/). Needs: wrk, oha, tansu, python3 (installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${BENCH_SECONDS:-15}
# The bridge's linger.ms default (config.rs), given to both bridge and producer ceiling.
export LINGER_MS=${BENCH_LINGER_MS:-5}
CONCURRENCY=${BENCH_CONCURRENCY:-"1 16 64 256"}
RATES=${BENCH_RATES:-"2000 10000 20000"}
OUT=bench/out
mkdir -p "$OUT"
rm -f "$OUT"/*.log "$OUT"/*.jsonl

if ! command -v wrk >/dev/null; then apt-get update -qq && apt-get install -y -qq wrk; fi
if ! command -v oha >/dev/null; then cargo install oha --version 1.16.0 --locked; fi
. bench/lib.sh
cargo build --release --locked --bin zego-kafka-bridge --example producer_ceiling
BRIDGE=target/release/zego-kafka-bridge
CEILING=target/release/examples/producer_ceiling

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

BRIDGE_PORT=$(free_port)
TOPIC=zego-callbacks
start_tansu "$OUT/tansu.log" "$TOPIC"
pids+=("$TANSU_PID")

SECRET=bench-secret
started=$(now_ms)
KAFKA_OPT_LINGER_MS=$LINGER_MS ZEGO_CALLBACK_SECRET=$SECRET KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT" BIND_ADDR="127.0.0.1:$BRIDGE_PORT" RUST_LOG=warn \
  "$BRIDGE" >"$OUT/bridge.log" 2>&1 &
BRIDGE_PID=$!
pids+=("$BRIDGE_PID")
until curl -fs "http://127.0.0.1:$BRIDGE_PORT/readyz" >/dev/null 2>&1; do
  [ $(($(now_ms) - started)) -lt 30000 ] || { echo "bridge never became ready"; cat "$OUT/bridge.log"; exit 1; }
  sleep 0.01
done
READY_MS=$(($(now_ms) - started))
sleep 2
IDLE_RSS_KB=$(rss_kb "$BRIDGE_PID")

# One signature for this run: it covers only secret, timestamp and nonce (see the Lua script).
sign_bench_callbacks "$SECRET"
TICKS=$(getconf CLK_TCK)

for c in $CONCURRENCY; do
  threads=$(( c < 2 ? c : 2 ))
  echo "== concurrency $c"
  wrk -t"$threads" -c"$c" -d"${SECONDS_EACH}s" -s bench/wrk_get.lua "http://127.0.0.1:$BRIDGE_PORT/healthz" \
    | tee "$OUT/http_$c.log" | grep '^BENCH' | sed "s/^BENCH /{\"kind\":\"http\",\"c\":$c,\"r\":/; s/$/}/" >>"$OUT/results.jsonl"
  "$CEILING" "127.0.0.1:$KAFKA_PORT" "$TOPIC" "$c" "$SECONDS_EACH" 2>"$OUT/producer_$c.log" \
    | sed "s/^/{\"kind\":\"producer\",\"c\":$c,\"r\":/; s/$/}/" >>"$OUT/results.jsonl"
  before=$(cpu_ticks "$BRIDGE_PID")
  BENCH_PREFIX="c$c" wrk -t"$threads" -c"$c" -d"${SECONDS_EACH}s" -s bench/wrk_callbacks.lua \
    "http://127.0.0.1:$BRIDGE_PORT/zego/callback" | tee "$OUT/bridge_$c.log" | grep '^BENCH' | sed 's/^BENCH //' >"$OUT/bridge_$c.json"
  after=$(cpu_ticks "$BRIDGE_PID")
  python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); ticks = int(sys.argv[3]) / int(sys.argv[4]); print(json.dumps({"kind": "bridge", "c": int(sys.argv[2]), "cpu_pct": round(100 * ticks / float(sys.argv[5])), "cpu_us_per_request": 1e6 * ticks / max(r["requests"], 1), "peak_rss_kb": int(sys.argv[6]), "r": r}))' \
    "$OUT/bridge_$c.json" "$c" $((after - before)) "$TICKS" "$SECONDS_EACH" "$(hwm_kb "$BRIDGE_PID")" >>"$OUT/results.jsonl"
  tail -n 3 "$OUT/results.jsonl"
done

# Open loop: oha sends at a fixed rate whatever the answers' pace, from a file of distinct
# signed callbacks (one per request, so none is a dedupe hit).
for rate in $RATES; do
  echo "== offered $rate req/s"
  python3 - "$rate" "$SECONDS_EACH" >"$OUT/bodies_$rate.txt" <<'PY'
import os, sys
rate, seconds = int(sys.argv[1]), int(sys.argv[2])
t, n, s = os.environ["BENCH_TIMESTAMP"], os.environ["BENCH_NONCE"], os.environ["BENCH_SIGNATURE"]
for i in range(rate * seconds * 11 // 10 + 100):
    print(f'{{"appid":"1","event":"call_accept","nonce":"{n}","signature":"{s}","timestamp":{t},"call_id":"rate{rate}-{i}","user_id":"abc","extend_data":"extendData"}}')
PY
  before=$(cpu_ticks "$BRIDGE_PID")
  oha -z "${SECONDS_EACH}s" -q "$rate" -c 256 --latency-correction --no-tui --output-format json \
    -m POST -H "Content-Type: application/json" -Z "$OUT/bodies_$rate.txt" \
    "http://127.0.0.1:$BRIDGE_PORT/zego/callback" >"$OUT/rate_$rate.json" 2>"$OUT/rate_$rate.log"
  after=$(cpu_ticks "$BRIDGE_PID")
  python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print(json.dumps({"kind": "rate", "c": int(sys.argv[2]), "ticks": int(sys.argv[3]) / int(sys.argv[4]), "r": {"summary": r["summary"], "latencyPercentiles": r["latencyPercentiles"], "statusCodeDistribution": r["statusCodeDistribution"]}}))' \
    "$OUT/rate_$rate.json" "$rate" $((after - before)) "$TICKS" >>"$OUT/results.jsonl"
  rm -f "$OUT/bodies_$rate.txt"
  tail -n 1 "$OUT/results.jsonl"
done

python3 bench/report.py "$OUT/results.jsonl" "$READY_MS" "$IDLE_RSS_KB" "$SECONDS_EACH" >bench/results.md
echo "wrote bench/results.md"
cleanup
trap - EXIT
bench/spool.sh
cat bench/results.md
