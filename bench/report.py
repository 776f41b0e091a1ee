#!/usr/bin/env python3
"""Turns bench/run.sh's raw outputs (scenarios.tsv and one wrk output per scenario) into a
Markdown report: printed, and written to --out.

Ratios: "to baseline" divides by the mean req/s of the baseline runs (the default run has one at
the start and one at the end; their spread shows how much the shared machine drifted); "vs"
compares with the scenario named in the `ref` column (the native equivalent, or the local policy).
The `*-new` and `*-garbage` scenarios (a different RS256 token on every request) are also compared
with the same filter's one-token scenario, in a note. With the redis policy, the sidecar's and
Redis's CPU per `/v1/limit` op are compared with one Redis round trip measured by redis-benchmark
in the same run (redis-benchmark.tsv).
"""
import argparse
import csv
import datetime
import json
import os
import platform
import re
import subprocess

UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}
BASELINE = re.compile(r"^baseline(-\d+)?$")
# A different token on every request, and the scenario with one token all the time.
PER_REQUEST_TOKEN = re.compile(r"^(.*)-(new|garbage)$")
# Issue #9's start-up goal: with 10,000 key-auth consumers, the first valid request is accepted
# within 2 s of Envoy being ready.
STARTUP_SCENARIO = "wasm-10000"
STARTUP_GOAL_MS = 2000
# Issue #9's goals for limit-count redis without sync_interval (a sidecar call per request).
REDIS_SCENARIO = "wasm-limit-redis"
REDIS_P99_GOAL_MS = 5.0


def parse_wrk(text):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    requests = int(re.search(r"^\s*(\d+) requests in", text, re.M).group(1))
    latency = {}
    for pct, value, unit in re.findall(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M):
        latency[pct] = float(value) * UNITS_MS[unit]
    return rps, requests, latency.get("50"), latency.get("99")


def parse_perf(path):
    """Counts from `perf stat -x,` output: {event: count}."""
    counts = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                fields = line.strip().split(",")
                if len(fields) > 2 and fields[0].isdigit():
                    counts[fields[2].split(":")[0]] = int(fields[0])
    except OSError:
        pass
    return counts


def read_redis_benchmark(path, clk_tck):
    """redis-benchmark.tsv (run.sh's redis_benchmark): one row per test and connection count,
    with Redis's CPU time per op in µs."""
    try:
        with open(path, encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
    except OSError:
        return []
    out = []
    for r in rows:
        try:
            out.append(
                {
                    "test": r["test"],
                    "connections": int(r["connections"]),
                    "rps": float(r["rps"]),
                    "p50": float(r["p50_ms"]),
                    "p99": float(r["p99_ms"]),
                    "redis_us": int(r["redis_ticks"]) / clk_tck * 1e6 / int(r["requests"]),
                }
            )
        except (KeyError, ValueError, ZeroDivisionError):
            continue
    return out


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average():
    try:
        with open("/proc/loadavg", encoding="utf-8") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--wasm", required=True)
    p.add_argument("--envoy", required=True)
    p.add_argument("--sidecar", default="")
    p.add_argument("--params", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()

    with open(os.path.join(args.dir, "scenarios.tsv"), encoding="utf-8") as f:
        scenarios = list(csv.DictReader(f, delimiter="\t"))
    try:
        with open(os.path.join(args.dir, "clk_tck"), encoding="utf-8") as f:
            clk_tck = int(f.read().strip())
    except (OSError, ValueError):
        clk_tck = 100
    rows = []
    for s in scenarios:
        with open(os.path.join(args.dir, s["scenario"] + ".wrk"), encoding="utf-8") as f:
            rps, requests, p50, p99 = parse_wrk(f.read())

        def per_request_us(ticks):
            return int(ticks) / clk_tck * 1e6 / requests if requests else None

        perf = parse_perf(os.path.join(args.dir, s["scenario"] + ".perf"))
        instructions = perf.get("instructions")
        cycles = perf.get("cycles")
        rows.append(
            {
                **s,
                "kinstr": instructions / requests / 1000 if instructions and requests else None,
                "kcycles": cycles / requests / 1000 if cycles and requests else None,
                "rps": rps,
                "p50": p50,
                "p99": p99,
                "envoy_us": per_request_us(s["envoy_ticks"]),
                "sidecar_us": per_request_us(s["sidecar_ticks"]),
                "redis_us": per_request_us(s["redis_ticks"]),
            }
        )
    by_name = {r["scenario"]: r for r in rows}
    baselines = [r["rps"] for r in rows if BASELINE.match(r["scenario"])]
    baseline = sum(baselines) / len(baselines) if baselines else None

    def rps_of(name):
        if name == "baseline":
            return baseline
        r = by_name.get(name)
        return r["rps"] if r else None

    envoy_version = subprocess.run(
        [args.envoy, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip().split("version:")[-1].strip()
    wasm_kb = os.path.getsize(args.wasm) / 1024

    def ms(v):
        return "n/a" if v is None else f"{v:.2f} ms"

    def us(v):
        return "n/a" if v is None else f"{v:.0f} µs"

    def kilo(v):
        return "n/a" if v is None else f"{v:.0f} k"

    sidecar_build = "release" if "/release/" in args.sidecar else "debug" if "/debug/" in args.sidecar else "?"
    # Written by run.sh when the last scenario ended (the report may be rendered again later).
    info = {}
    try:
        with open(os.path.join(args.dir, "run-info.json"), encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError):
        pass
    finished = info.get("finished") or f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}"
    lines = [
        "# Benchmark results (bench/run.sh)",
        "",
        f"* date: {finished}",
        f"* machine: {os.cpu_count()} CPUs, {cpu_model()}; load average at the end: "
        f"{info.get('loadavg') or load_average()}",
        f"* Envoy {envoy_version}" + (f"; filter and sidecar built from {info['commit']}" if info.get("commit") else ""),
        f"* load: {args.params}; route: direct_response 200 \"ok\"",
        f"* filter .wasm (wasm-release): {wasm_kb:.0f} KB; sidecar: {sidecar_build} build",
    ]
    if len(baselines) > 1:
        spread = (max(baselines) - min(baselines)) / baseline * 100
        lines.append(
            f"* baseline runs: {', '.join(f'{b:.0f}' for b in baselines)} req/s "
            f"(spread {spread:.0f}% of their mean {baseline:.0f}, which the ratios use)"
        )
    lines += [
        "",
        "| scenario | description | req/s | p50 | p99 | to baseline | vs | Envoy CPU / req | Envoy cycles / req | Envoy instr. / req | load | Envoy ready | accepted after ready | Envoy RSS |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = f"{r['rps'] / baseline:.2f}" if baseline else "n/a"
        ref = r["ref"]
        vs = ""
        if ref not in ("-", "") and ref != "baseline":
            ref_rps = rps_of(ref)
            vs = f"{r['rps'] / ref_rps:.2f}x {ref}" if ref_rps else f"n/a ({ref} not run)"
        lines.append(
            f"| {r['scenario']} | {r['description']} | {r['rps']:.0f} | {ms(r['p50'])} | {ms(r['p99'])} "
            f"| {ratio} | {vs} | {us(r['envoy_us'])} | {kilo(r['kcycles'])} | {kilo(r['kinstr'])} | {r['load1']} "
            f"| {r['ready_ms']} ms | {r['accepted_ms']} ms | {int(r['rss_kb']) / 1024:.0f} MiB |"
        )

    redis_bench = read_redis_benchmark(os.path.join(args.dir, "redis-benchmark.tsv"), clk_tck)
    # One Redis round trip: the sidecar's script, one connection (no queueing), median.
    round_trip = next((b for b in redis_bench if b["test"] == "EVALSHA" and b["connections"] == 1), None)

    def met(ok):
        return "yes" if ok else "**no**"

    goal_lines = []
    for r in rows:
        if r["goal_ref"] not in ("-", ""):
            ref_rps = rps_of(r["goal_ref"])
            minimum = float(r["goal_min"])
            if ref_rps:
                ratio = r["rps"] / ref_rps
                goal_lines.append(
                    f"| {r['scenario']} >= {minimum:.2f}x {r['goal_ref']} | {ratio:.2f}x | {met(ratio >= minimum)} |"
                )
            else:
                goal_lines.append(
                    f"| {r['scenario']} >= {minimum:.2f}x {r['goal_ref']} | n/a ({r['goal_ref']} not run) | n/a |"
                )
        if r["scenario"] == REDIS_SCENARIO:
            if r["p99"] is not None:
                goal_lines.append(
                    f"| {r['scenario']}: p99 < {REDIS_P99_GOAL_MS:.0f} ms "
                    f"| {r['p99']:.2f} ms | {met(r['p99'] < REDIS_P99_GOAL_MS)} |"
                )
            if round_trip and r["sidecar_us"] is not None:
                rt_us = round_trip["p50"] * 1000
                goal_lines.append(
                    f"| {r['scenario']}: sidecar CPU per /v1/limit op < one Redis round trip "
                    f"(redis-benchmark EVALSHA, 1 connection, p50) | {r['sidecar_us']:.0f} µs vs {rt_us:.0f} µs "
                    f"| {met(r['sidecar_us'] < rt_us)} |"
                )
        if r["scenario"] == STARTUP_SCENARIO:
            accepted = int(r["accepted_ms"])
            goal_lines.append(
                f"| {r['scenario']}: first valid request accepted within {STARTUP_GOAL_MS} ms of Envoy ready "
                f"| {accepted} ms | {met(accepted <= STARTUP_GOAL_MS)} |"
            )
    if goal_lines:
        lines += ["", "| goal | measured | met |", "|---|---:|:---:|"] + goal_lines

    if redis_bench:
        lines += [
            "",
            "Redis alone (redis-benchmark on the same redis-server, right after wasm-limit-redis; "
            "EVALSHA: the sidecar's counter script):",
            "",
            "| redis-benchmark | connections | req/s | p50 | p99 | Redis CPU / op |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for b in redis_bench:
            lines.append(
                f"| {b['test']} | {b['connections']} | {b['rps']:.0f} | {b['p50'] * 1000:.0f} µs "
                f"| {b['p99'] * 1000:.0f} µs | {b['redis_us']:.1f} µs |"
            )

    for r in rows:
        profile = os.path.join(args.dir, r["scenario"] + ".sidecar-profile.txt")
        if os.path.exists(profile):
            with open(profile, encoding="utf-8") as f:
                top = [line.rstrip() for line in f if line.strip()]
            lines += [
                "",
                f"Where the sidecar's CPU time goes in {r['scenario']} (perf record -e cpu-clock, self time: by "
                "module, then by symbol):",
                "",
                "```",
                *top,
                "```",
            ]

    notes = []
    for r in rows:
        if r["scenario"].startswith("wasm-limit-redis") and r["sidecar_us"] is not None:
            notes.append(
                f"{r['scenario']}: CPU per request: sidecar {r['sidecar_us']:.0f} µs, Redis {r['redis_us']:.0f} µs "
                f"(Envoy {us(r['envoy_us'])})"
            )
        if r["errors"] not in ("-", ""):
            notes.append(f"{r['scenario']}: wrk socket errors: {r['errors']}")
        if r.get("answers") not in (None, "-", ""):
            notes.append(f"{r['scenario']}: answers under load (status: count): {r['answers']}")
        same_filter = PER_REQUEST_TOKEN.match(r["scenario"])
        if same_filter and rps_of(same_filter.group(1)):
            one_token = same_filter.group(1)
            notes.append(
                f"{r['scenario']}: {r['rps'] / rps_of(one_token):.2f}x {one_token} (one token all the time)"
            )
    if notes:
        lines += [""] + [f"* {n}" for n in notes]
    lines += [
        "",
        "\"vs\": req/s divided by that of the named scenario (same run). \"Envoy CPU / req\": user +",
        "system CPU time of the Envoy process during the measured run divided by the requests served",
        "(less sensitive to other load than req/s). \"Envoy cycles / req\", \"Envoy instr. / req\": CPU",
        "cycles and instructions of the Envoy process in that time per request (perf stat; cycles",
        "track the CPU time precisely, instructions hardly depend on other load at all).",
        "\"load\": 1-minute load average when the scenario started. \"Envoy ready\": from starting",
        "Envoy until its admin /ready answers; \"accepted after ready\": from then until the first",
        "valid request is accepted (for the Wasm filter this includes resolving every reference",
        "through the sidecar); both polled every 20 ms. RSS: VmRSS of the Envoy process after the",
        "run. Sidecar and Redis CPU per request: their CPU time during the measured run divided by",
        "the requests (with the redis policy and no sync_interval, one /v1/limit op each). The",
        "machine is shared: compare ratios within one run, not across runs.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
