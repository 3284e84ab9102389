#!/usr/bin/env python3
"""sign_failover.py - how long a failover's new answers take to be signed and published.

A zone with --pools pools, all with the same primary (127.0.1.10) and secondary (127.0.1.11)
behind one TCP check on 8080, served by weiche signed ([dnssec], a CSK made by weiche keygen)
and unsigned, alternating, --reps times each. Per repetition: kill the primary backend, then
poll the last pool (and the first) until it answers the secondary: every pool fails over in
one publish, which in the signed zone signs every pool's new answer. Reports per mode:
  switch  seconds from the kill until the last pool answers the secondary (probe detection,
          the same in both modes, plus publishing);
  signed  the publisher's own time to sign the snapshot's pool answers (its DEBUG line
          "pool answers signed", elapsed_us), for the publish of the failover;
and checks, after the switch, that a DO=1 answer of the last pool carries an RRSIG.

Uses the DNS client of ../shared/bench/failover.py. Loopback only (127.0.1.0/24), high ports.

Usage: bench/sign_failover.py [--pools 1000] [--reps 5] [--json FILE] BIN
"""
import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "bench"))
from failover import query_a  # noqa: E402

ADDR, PORT, SRC = "127.0.1.1", 5321, "127.0.1.2"
PRIMARY, SECONDARY = "127.0.1.10", "127.0.1.11"


def backend(ip):
    return subprocess.Popen(
        [sys.executable, "-c", f"""
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('{ip}', 8080)); s.listen(1024)
while True:
    c, _ = s.accept(); c.close()"""],
        start_new_session=True)


def zone(pools):
    out = ['records = """', "$TTL 3600", "@ SOA ns1 hm 1 1h 10m 14d 600", "@ NS ns1", "ns1 A 127.0.1.1", '"""']
    for i in range(pools):
        out += [f"[pools.p{i:04}]",
                'check = { type = "tcp", port = 8080, interval = "250ms", timeout = "200ms", fall = 2, rise = 2 }',
                f'targets = [{{ address = "{PRIMARY}", priority = 1 }}, {{ address = "{SECONDARY}", priority = 2 }}]']
    return "\n".join(out) + "\n"


def wait_answer(qname, want, limit):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        r = query_a(ADDR, PORT, qname, 0.2, SRC)
        if r and r[1] == (want,):
            return time.monotonic() - t0
        time.sleep(0.002)
    return None


def has_rrsig(qname):
    out = subprocess.run(["dig", "+dnssec", "+norec", "-b", SRC, f"@{ADDR}", "-p", str(PORT), qname, "A"],
                         capture_output=True, text=True).stdout
    return "RRSIG" in out


def run(binary, signed, pools, work):
    d = os.path.join(work, "signed" if signed else "plain")
    os.makedirs(os.path.join(d, "zones"), exist_ok=True)
    with open(os.path.join(d, "zones", "example.test.toml"), "w") as f:
        f.write(zone(pools))
    conf = f'[server]\nlisten = ["{ADDR}:{PORT}"]\nzones = "zones"\n[api]\nlisten = "off"\n'
    if signed:
        os.makedirs(os.path.join(d, "keys"), exist_ok=True)
        if not os.listdir(os.path.join(d, "keys")):
            subprocess.run([binary, "keygen", "example.test", "--dir", os.path.join(d, "keys")], check=True,
                           capture_output=True)
        conf += '[dnssec]\nkeys = "keys"\nzones = ["example.test"]\n'
    with open(os.path.join(d, "weiche.toml"), "w") as f:
        f.write(conf)
    log = open(os.path.join(d, "weiche.log"), "w")
    env = dict(os.environ, WEICHE_LOG="info,weiche::publish=debug")
    srv = subprocess.Popen([binary, "serve", "--config", os.path.join(d, "weiche.toml")], stderr=log,
                           stdout=subprocess.DEVNULL, env=env, start_new_session=True)
    primary, secondary = backend(PRIMARY), backend(SECONDARY)
    last = f"p{pools - 1:04}.example.test"
    try:
        assert wait_answer(last, PRIMARY, 120) is not None, "never answered the primary"
        time.sleep(1)
        mark = os.path.getsize(log.name)
        os.killpg(primary.pid, signal.SIGKILL)
        primary.wait()
        switch = wait_answer(last, SECONDARY, 30)
        first = wait_answer("p0000.example.test", SECONDARY, 5)
        assert switch is not None and first is not None, "no failover"
        rrsig = has_rrsig(last)
        time.sleep(0.5)
        with open(log.name) as f:
            f.seek(mark)
            tail = f.read()
        signing = [int(m) / 1e6 for m in re.findall(r"pool answers signed.*?elapsed_us=(\d+)", tail)]
        return switch, (max(signing) if signing else None), rrsig
    finally:
        for p in (srv, primary, secondary):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary")
    ap.add_argument("--pools", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="weiche-signfo-")
    res = {"plain": [], "signed": []}
    for rep in range(a.reps):
        for signed in (rep % 2 == 0, rep % 2 == 1):
            mode = "signed" if signed else "plain"
            switch, signing, rrsig = run(a.binary, signed, a.pools, work)
            res[mode].append((switch, signing))
            extra = f" signing {signing * 1000:.1f} ms, DO=1 answer has RRSIG: {rrsig}" if signed else ""
            print(f"{mode:6} rep {rep + 1}: switch {switch:.3f} s{extra}", flush=True)
            if signed:
                assert rrsig, "a signed answer without RRSIG"
    for mode, rows in res.items():
        sw = statistics.median(r[0] for r in rows)
        line = f"{mode:6} median switch {sw:.3f} s (min {min(r[0] for r in rows):.3f}, max {max(r[0] for r in rows):.3f})"
        sg = [r[1] for r in rows if r[1] is not None]
        if sg:
            line += f"; signing the {a.pools} new answers: median {statistics.median(sg) * 1000:.1f} ms (max {max(sg) * 1000:.1f})"
        print(line)
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps({"pools": a.pools, "results": res}) + "\n")


if __name__ == "__main__":
    main()
