-- Shared by bench/wrk_*.lua: one "BENCH {json}" summary line that bench/run.sh collects.
function done(summary, latency, requests)
  io.write(string.format(
    'BENCH {"requests_per_sec":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"p999_ms":%.3f,"requests":%d,"non200":%d,"socket_errors":%d}\n',
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
