#!/usr/bin/env python3
"""Turns bench/run.sh's raw outputs (scenarios.tsv and one wrk output per scenario) into a
Markdown table: printed, and written to --out."""
import argparse
import csv
import datetime
import os
import platform
import re
import subprocess

UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_wrk(text):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    latency = {}
    for pct, value, unit in re.findall(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M):
        latency[pct] = float(value) * UNITS_MS[unit]
    return rps, latency.get("50"), latency.get("99")


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
    p.add_argument("--params", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()

    with open(os.path.join(args.dir, "scenarios.tsv"), encoding="utf-8") as f:
        scenarios = list(csv.DictReader(f, delimiter="\t"))
    rows = []
    for s in scenarios:
        with open(os.path.join(args.dir, s["scenario"] + ".wrk"), encoding="utf-8") as f:
            rps, p50, p99 = parse_wrk(f.read())
        rows.append({**s, "rps": rps, "p50": p50, "p99": p99})
    baseline = next((r["rps"] for r in rows if r["scenario"] == "baseline"), None)

    envoy_version = subprocess.run(
        [args.envoy, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip().split("version:")[-1].strip()
    wasm_kb = os.path.getsize(args.wasm) / 1024

    def ms(v):
        return "n/a" if v is None else f"{v:.2f} ms"

    lines = [
        "# Benchmark results (bench/run.sh)",
        "",
        f"* date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"* machine: {os.cpu_count()} CPUs, {cpu_model()}; load average at the end: {load_average()}",
        f"* Envoy {envoy_version}",
        f"* load: {args.params}; route: direct_response 200 \"ok\"; header `apikey` with a key of the middle consumer",
        f"* filter .wasm (wasm-release): {wasm_kb:.0f} KB",
        "",
        "| scenario | description | req/s | p50 | p99 | ratio to baseline | ready after | Envoy RSS |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = f"{r['rps'] / baseline:.2f}" if baseline else "n/a"
        lines.append(
            f"| {r['scenario']} | {r['description']} | {r['rps']:.0f} | {ms(r['p50'])} | {ms(r['p99'])} "
            f"| {ratio} | {r['ready_s']} s | {int(r['rss_kb']) / 1024:.0f} MiB |"
        )
    lines += [
        "",
        "\"ready after\": from starting Envoy until the key is accepted (for the Wasm filter this",
        "includes resolving every reference through the sidecar). RSS: VmRSS of the Envoy process",
        "after the run. The machine is shared: compare ratios within one run, not across runs.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
