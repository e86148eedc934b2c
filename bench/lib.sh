# bench/lib.sh: what bench/run.sh and bench/spool.sh share (sourced, not run).
# Needs OUT (the log folder) set by the caller.

# tansu: the one on PATH, TANSU, or ~/.cargo/bin's; built once per machine if none.
TANSU=${TANSU:-$(command -v tansu || echo "$HOME/.cargo/bin/tansu")}
if [ ! -x "$TANSU" ]; then
  echo "installing tansu (about 10 minutes, once per machine)"
  cargo install tansu --version 0.6.0 --locked --features dynostore,libsql
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
now_ms() { date +%s%3N; }

# start_tansu LOG TOPIC: a memory-storage broker on a free port with TOPIC (3 partitions);
# sets KAFKA_PORT and TANSU_PID.
start_tansu() {
  KAFKA_PORT=$(free_port)
  "$TANSU" broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --storage-engine memory://tansu/ >"$1" 2>&1 &
  TANSU_PID=$!
  wait_port "$KAFKA_PORT"
  "$TANSU" topic create --broker "tcp://127.0.0.1:$KAFKA_PORT" --partitions 3 "$2" >>"$1" 2>&1
}

# sign_bench_callbacks SECRET: exports BENCH_TIMESTAMP, BENCH_NONCE and BENCH_SIGNATURE for
# bench/wrk_callbacks.lua (the signature covers only secret, timestamp and nonce).
sign_bench_callbacks() {
  export BENCH_TIMESTAMP=$(date +%s) BENCH_NONCE=424242
  export BENCH_SIGNATURE=$(python3 -c "import hashlib,sys; print(hashlib.sha1(''.join(sorted(sys.argv[1:])).encode()).hexdigest())" \
    "$1" "$BENCH_TIMESTAMP" "$BENCH_NONCE")
}
