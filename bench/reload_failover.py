#!/usr/bin/env python3
"""reload_failover.py - does a big zone reload delay failover?

For each server binary given: serves the shared harness's example.test (pool `www`, primary
127.0.1.10, secondary 127.0.1.11, TCP check on 8080) beside a big plain zone `big.test`, then
measures, --reps times each, alternating:
  plain   kill the primary backend; seconds until `www` answers the secondary;
  reload  rewrite big.test (next serial, one new name), SIGHUP the server, kill the primary
          --lead seconds later; seconds from the kill until `www` answers the secondary. Also
          reports how long the reload itself took (until the new name answers).
Prints one line per measurement and the medians per binary; appends JSON lines to --json.

Uses the backends, DNS client and process handling of ../shared/bench/failover.py. Loopback
only (127.0.1.0/24), high ports. Needs python3 and the release build(s).

Usage:
  bench/reload_failover.py [--records 1000000] [--reps 3] BIN [BIN ...]
  e.g. bench/reload_failover.py /tmp/weiche-before target/release/weiche
"""
import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "bench"))
from failover import Backend, Server, query_a  # noqa: E402

ADDR, PORT, PRIMARY, SECONDARY, BPORT = "127.0.1.1", 5301, "127.0.1.10", "127.0.1.11", 8080


def write_big(path, records, serial):
    subprocess.run([sys.executable, os.path.join(HERE, "genzone.py"), path + ".tmp", str(records),
                    "--ns", ADDR], check=True)
    with open(path + ".tmp", "r+") as f:
        text = f.read().replace("hostmaster 1 ", f"hostmaster {serial} ", 1)
        f.seek(0)
        f.write(text + f"new{serial} A 127.3.0.{serial % 250 + 1}\n")
        f.truncate()
    os.rename(path + ".tmp", path)


def answers(qname, want, limit):
    """Seconds until qname answers exactly `want` (polled every 20 ms), or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        r = query_a(ADDR, PORT, qname, 0.25)
        if r and r[0] == 0 and r[1] == (want,):
            return time.monotonic() - t0
        time.sleep(0.02)
    return None


def measure(binary, a, logdir, out):
    zones = tempfile.mkdtemp(prefix="weiche-reload-bench-")
    with open(os.path.join(HERE, "failover-zone.toml")) as src, \
            open(os.path.join(zones, "example.test.toml"), "w") as dst:
        dst.write(src.read())
    big = os.path.join(zones, "big.test.zone")
    serial = 1
    write_big(big, a.records, serial)
    primary, secondary = Backend(PRIMARY, BPORT, logdir), Backend(SECONDARY, BPORT, logdir)
    primary.start()
    secondary.start()
    label = os.path.basename(binary)
    server = Server(f"{binary} serve --listen {ADDR}:{PORT} --api off --zones {zones}", label, logdir, os.environ)
    server.start()
    results = {"plain": [], "reload": [], "reload_took": []}
    try:
        if answers("www.example.test", PRIMARY, 120) is None:
            raise RuntimeError(f"{label} did not answer the primary (see {server.log})")
        for rep in range(a.reps):
            for kind in ("plain", "reload"):
                time.sleep(random.uniform(0, 1.0))  # a random phase against the probe timer
                hup = None
                if kind == "reload":
                    serial += 1
                    write_big(big, a.records, serial)
                    hup = time.monotonic()
                    os.kill(server.proc.pid, signal.SIGHUP)
                    time.sleep(a.lead)
                primary.kill()
                took = answers("www.example.test", SECONDARY, 30)
                results[kind].append(took)
                line = f"{label} rep {rep + 1} {kind}: failover {took:.3f} s" if took is not None else f"{label} {kind}: no failover"
                if hup is not None:
                    done = answers(f"new{serial}.big.test", f"127.3.0.{serial % 250 + 1}", 120)
                    reload_took = None if done is None else time.monotonic() - hup
                    results["reload_took"].append(reload_took)
                    line += f", reload took {reload_took:.2f} s" if reload_took is not None else ", reload never finished"
                print(line, flush=True)
                primary.start()
                if answers("www.example.test", PRIMARY, 30) is None:
                    raise RuntimeError("no failback")
    finally:
        server.stop()
        primary.kill()
        secondary.kill()
    med = {k: statistics.median([x for x in v if x is not None]) if any(x is not None for x in v) else None
           for k, v in results.items()}
    print(f"{label}: median failover plain {med['plain']:.3f} s, during a reload {med['reload']:.3f} s, "
          f"reload {med['reload_took']:.2f} s", flush=True)
    with open(out, "a") as f:
        f.write(json.dumps({"binary": binary, "records": a.records, "lead": a.lead, **results, "median": med}) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--lead", type=float, default=0.2, help="seconds from SIGHUP to the kill")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "reload-failover.jsonl"))
    a = ap.parse_args()
    logdir = "/tmp/dnsbench-logs"
    os.makedirs(logdir, exist_ok=True)
    for b in a.binaries:
        measure(os.path.abspath(b), a, logdir, a.json)


if __name__ == "__main__":
    main()
