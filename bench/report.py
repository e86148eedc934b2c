"""Turns bench/out/results.jsonl into bench/results.md (called by bench/run.sh)."""
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone

results_path, ready_ms, idle_rss_kb, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rows, rates = {}, {}
for line in open(results_path):
    line = line.strip()
    if line:
        item = json.loads(line)
        if item["kind"] == "rate":
            rates[item["c"]] = item
        else:
            rows.setdefault(item["c"], {})[item["kind"]] = item


def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def mem_total_gib():
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal"):
            return int(line.split()[1]) / 1024 / 1024
    return 0


def rdkafka_version():
    try:
        lock = open("Cargo.lock").read()
        i = lock.index('name = "rdkafka-sys"')
        return lock[i:].split("\n")[1].split('"')[1]
    except (OSError, ValueError, IndexError):
        return "?"


machine = (f"{cpu_model()}, {os.cpu_count()} cores, {mem_total_gib():.0f} GiB, {platform.system()} {platform.release()}; "
           f"tansu 0.6.0 (memory storage) on loopback; rdkafka-sys {rdkafka_version()}; "
           f"{seconds} s per measurement; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")

out = ["# Benchmark results", "", f"Machine: {machine}", "",
       "Produced by `bench/run.sh` in one run: every ratio compares numbers measured minutes apart on "
       "the same machine. Latencies in ms; throughput in requests (or records) per second.", "",
       "Closed loop (wrk: each connection sends its next request when the last is answered):", "",
       "| conc. | bridge req/s | p50 | p99 | p99.9 | non-200 | bridge CPU % | CPU µs / request | peak RSS MB | HTTP ceiling req/s | producer ceiling rec/s | producer p99 | bridge ÷ min(ceilings) | bridge p99 − producer p99 |",
       "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
targets = []
for c in sorted(rows):
    r = rows[c]
    b, h, p = r.get("bridge"), r.get("http"), r.get("producer")
    if not (b and h and p):
        out.append(f"| {c} | (missing measurement: {sorted(r)}) |")
        continue
    br, hr, pr = b["r"], h["r"], p["r"]
    ceiling = min(hr["requests_per_sec"], pr["requests_per_sec"])
    ratio = br["requests_per_sec"] / ceiling if ceiling else 0
    p99_gap = br["p99_ms"] - pr["p99_ms"]
    out.append(f"| {c} | {br['requests_per_sec']:.0f} | {br['p50_ms']:.2f} | {br['p99_ms']:.2f} | {br['p999_ms']:.2f} | "
               f"{br['non200'] + br['socket_errors']} | {b['cpu_pct']} | {b.get('cpu_us_per_request', 0):.1f} | {b['peak_rss_kb'] / 1024:.1f} | {hr['requests_per_sec']:.0f} | "
               f"{pr['requests_per_sec']:.0f} | {pr['p99_ms']:.2f} | {ratio:.2f} | {p99_gap:+.2f} |")
    if c == 64:
        targets += [("throughput at 64 ≥ 0.8 × min(HTTP, producer ceiling)", f"{ratio:.2f}", ratio >= 0.8),
                    ("p99 at 64 ≤ producer p99 + 2 ms", f"{p99_gap:+.2f} ms", p99_gap <= 2.0)]
    if c == 256:
        cpu = b.get("cpu_us_per_request", 0)
        targets += [("CPU per answered callback at 256 ≤ 20 µs", f"{cpu:.1f} µs", 0 < cpu <= 20),
                    ("throughput at 256 ≥ 0.8 × min(HTTP, producer ceiling)", f"{ratio:.2f}", ratio >= 0.8),
                    ("p99 at 256 ≤ producer p99 + 5 ms", f"{p99_gap:+.2f} ms", p99_gap <= 5.0)]
if rates:
    out += ["", "Open loop (oha `--rate` with latency correction: requests leave on schedule whatever the "
            "answers' pace, and each latency counts from when its request was due):", "",
            "| offered req/s | answered req/s | p50 | p99 | p99.9 | non-200 | CPU µs / request |",
            "|---|---|---|---|---|---|---|"]
    for rate in sorted(rates):
        r = rates[rate]["r"]
        lat, summary = r["latencyPercentiles"], r["summary"]
        codes = r["statusCodeDistribution"]
        answered = sum(codes.values())
        ok = codes.get("200", 0)
        cpu_us = 1e6 * rates[rate]["ticks"] / max(answered, 1)
        out.append(f"| {rate} | {summary['requestsPerSec']:.0f} | {1000 * lat['p50']:.2f} | {1000 * lat['p99']:.2f} | "
                   f"{1000 * lat['p99.9']:.2f} | {answered - ok} | {cpu_us:.1f} |")
peak = max((r["bridge"]["peak_rss_kb"] for r in rows.values() if "bridge" in r), default=0) / 1024
targets += [("idle RSS ≤ 20 MB", f"{idle_rss_kb / 1024:.1f} MB", idle_rss_kb / 1024 <= 20),
            ("peak RSS under the heaviest load ≤ 64 MB", f"{peak:.1f} MB", peak <= 64),
            ("start to /readyz 200 < 1 s (broker up)", f"{ready_ms} ms", ready_ms < 1000)]
out += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
out += [f"| {name} | {value} | {'yes' if ok else 'NO'} |" for name, value, ok in targets]
findings = os.path.join(os.path.dirname(__file__), "findings.md")
if os.path.exists(findings):
    out += ["", open(findings).read().strip()]
print("\n".join(out))
