-- wrk script for bench/run.sh: POSTs signed call_accept callbacks, each with a new call_id.
-- The signature covers only secret, timestamp and nonce, so one signature (made by run.sh for
-- this run's timestamp) stays valid while the call_id changes: every request is a distinct
-- callback (no dedupe hits) of the seed's size.
local counter = 0
local thread_id = 0

function setup(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
end

function init(args)
  prefix = os.getenv("BENCH_PREFIX") or "bench"
  timestamp = os.getenv("BENCH_TIMESTAMP")
  nonce = os.getenv("BENCH_NONCE")
  signature = os.getenv("BENCH_SIGNATURE")
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"appid":"1","event":"call_accept","nonce":"%s","signature":"%s","timestamp":%s,"call_id":"%s-%d-%d","user_id":"abc","extend_data":"extendData"}',
    nonce, signature, timestamp, prefix, id, counter)
  return wrk.format(nil, nil, nil, body)
end

dofile("bench/wrk_report.lua")
