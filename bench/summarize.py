#!/usr/bin/env python3
"""Tables (median, min-max) from bench/compare.sh TSV files, and weiche's ratios to each peer."""
import csv
import statistics
import sys

rows = []
for path in sys.argv[1:]:
    rows += list(csv.DictReader(open(path), delimiter="\t"))
runs = [r for r in rows if r["round"] != "load"]
servers = list(dict.fromkeys(r["server"] for r in rows))


def med(xs):
    return f"{statistics.median(xs):,.0f} ({min(xs):,.0f}–{max(xs):,.0f})"


def col(rs, key):
    return [float(r[key]) for r in rs if r[key] not in ("", "-")]


cases = list(dict.fromkeys(r["case"] for r in runs))
thru = [c for c in cases if c != "latency"]
ours = [s for s in servers if s.startswith("weiche")]
if thru:
    heads = "".join(f" {o} ÷ server |" for o in ours)
    print(f"\n| case | server | rounds | QPS | queries per server CPU-s |{heads} lost | dnsperf CPU % |")
    print("|---|---|---|---|---|" + "---|" * len(ours) + "---|---|")
    for case in thru:
        groups = {s: [r for r in runs if r["case"] == case and r["server"] == s] for s in servers}
        kq = {s: col(rs, "kq_per_cpu_s") for s, rs in groups.items()}
        for s, rs in groups.items():
            if not rs:
                continue
            k = kq[s]
            ratios = "".join(
                f" {statistics.median(kq[o]) / statistics.median(k):.2f} |" if kq[o] and o != s else " |" for o in ours
            )
            # dnsperf's CPU time over the run's length (older result files lack it).
            cli = [float(r["cli_cpu_pct"]) for r in rs if r.get("cli_cpu_pct") not in (None, "", "-")]
            print(f"| {case} | {s} | {len(rs)} | {med(col(rs, 'qps'))} | {med([x * 1000 for x in k])} |{ratios} "
                  f"{sum(int(r['lost']) for r in rs)} | {med(cli) if cli else ''} |")
lat = [r for r in runs if r["case"] == "latency"]
if lat:
    print("\n| server | rounds | QPS offered and answered | p50 µs | p99 µs | p99.9 µs | lost |")
    print("|---|---|---|---|---|---|---|")
    for s in servers:
        rs = [r for r in lat if r["server"] == s]
        if rs:
            print(f"| {s} | {len(rs)} | {med(col(rs, 'qps'))} | {med(col(rs, 'p50_us'))} | {med(col(rs, 'p99_us'))} | "
                  f"{med(col(rs, 'p999_us'))} | {sum(int(r['lost']) for r in rs)} |")
loads = [r for r in rows if r["round"] == "load"]
if loads:
    print("\n| server | load 1M records (s) | PSS (MiB) | bytes per record |")
    print("|---|---|---|---|")
    for r in loads:
        f = dict(kv.split("=") for kv in r["answer"].split())
        print(f"| {r['server']} | {f['load_s']} | {f['pss_mib']} | {f['bytes_per_record']} |")
