#!/usr/bin/env python3
"""bench/rrl_flood.py - a forged-source flood against weiche, with and without rate limiting.

A flood of UDP queries for one name comes from many hosts of one /24 (127.0.4.10 ... on
loopback: binding many addresses of one prefix is what a forged flood looks like to the server),
while a legitimate client on another /24 (127.0.5.1) asks for the same name at a modest rate.
Each second the script counts, per side: queries sent, full answers, slips (empty, TC set) and
bytes received, and at the end weiche's own counters and CPU time.

The same run is made with `[rrl]` off and on (alternating, --reps times), with the server
pinned to one CPU and this script to another. Rate limiting should cut the flood's full answers
to the limit while the other prefix keeps every answer.

Usage: bench/rrl_flood.py [--rate 10] [--flood-qps 20000] [--legit-qps 5] [--duration 10]
                          [--reps 2] [--out FILE.jsonl] BIN
Uses 127.0.4.0/24 and 127.0.5.1 and a free port.
"""
import argparse
import json
import os
import random
import re
import selectors
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

ZONE = """$ORIGIN flood.test.
$TTL 300
@    SOA ns1 hostmaster 1 3600 600 86400 300
@    NS  ns1
ns1  A   192.0.2.53
www  A   192.0.2.1
www  A   192.0.2.2
www  A   192.0.2.3
www  A   192.0.2.4
"""
SERVER = "127.0.4.1"
FLOOD_HOSTS = [f"127.0.4.{h}" for h in range(10, 42)]  # 32 hosts of the flooded /24
LEGIT = "127.0.5.1"


def free_port(ip):
    for _ in range(50):
        t = socket.socket()
        t.bind((ip, 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind((ip, port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    sys.exit("no free port")


def query(qid, name="www.flood.test"):
    wire = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + wire + struct.pack(">HH", 1, 1)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metrics(api):
    text = urllib.request.urlopen(f"http://{api}/metrics", timeout=5).read().decode()
    out = {}
    for name in ("weiche_rrl_dropped_total", "weiche_rrl_slipped_total"):
        out[name] = sum(int(float(m)) for m in re.findall(rf'^{name}{{[^}}]*transport="udp"[^}}]*}} (\S+)$', text, re.M))
    return out


def run(binary, rrl_rate, a):
    port, api_port = free_port(SERVER), free_port(SERVER)
    with tempfile.TemporaryDirectory() as d:
        os.mkdir(f"{d}/zones")
        open(f"{d}/zones/flood.test.zone", "w").write(ZONE)
        rrl = f"[rrl]\nresponses_per_second = {rrl_rate}\n" if rrl_rate else ""
        open(f"{d}/weiche.toml", "w").write(
            f'[server]\nlisten = ["{SERVER}:{port}"]\nzones = "zones"\n[api]\nlisten = "{SERVER}:{api_port}"\n{rrl}')
        srv = subprocess.Popen(["taskset", "-c", a.server_cpu, binary, "serve", "--config", f"{d}/weiche.toml"],
                               stdout=subprocess.DEVNULL, stderr=open(f"{d}/log", "w"))
        try:
            return measure(srv, port, f"{SERVER}:{api_port}", rrl_rate, a)
        finally:
            srv.terminate()
            srv.wait(10)


def measure(srv, port, api, rrl_rate, a):
    to = (SERVER, port)
    # Ready: an answer to the legitimate client.
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind((LEGIT, 0))
    probe.settimeout(0.2)
    deadline = time.time() + 30
    while True:
        probe.sendto(query(1), to)
        try:
            probe.recv(512)
            break
        except socket.timeout:
            if time.time() > deadline:
                sys.exit("weiche did not answer within 30 s")
    probe.close()
    # Let the probe's account (another /24 anyway) and the clock settle on a new second.
    time.sleep(1.0)
    sel = selectors.DefaultSelector()
    flood = []
    for h in FLOOD_HOSTS:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((h, 0))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, "flood")
        flood.append(s)
    legit = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    legit.bind((LEGIT, 0))
    legit.setblocking(False)
    sel.register(legit, selectors.EVENT_READ, "legit")
    secs = a.duration
    per = {side: [dict(sent=0, full=0, slipped=0, bytes=0) for _ in range(secs + 1)] for side in ("flood", "legit")}
    msgs = [query(random.getrandbits(16)) for _ in range(1024)]
    cpu0, m0 = cpu_seconds(srv.pid), metrics(api)
    start = time.perf_counter()
    sent_flood = sent_legit = failed = 0
    end = start + secs
    while True:
        now = time.perf_counter()
        t = now - start
        sec = min(int(t), secs)
        if now < end:
            # Catch up with the schedule, in chunks, so the rate holds however the loop runs.
            due = int(t * a.flood_qps) - sent_flood - failed
            for _ in range(min(due, 500)):
                i = sent_flood + failed
                try:
                    flood[i % len(flood)].sendto(msgs[i % 1024], to)
                    sent_flood += 1
                    per["flood"][sec]["sent"] += 1
                except BlockingIOError:
                    failed += 1
            if int(t * a.legit_qps) >= sent_legit + 1:
                legit.sendto(msgs[sent_legit % 1024], to)
                sent_legit += 1
                per["legit"][sec]["sent"] += 1
        elif now > end + 1.0:
            break  # a second for the last replies
        for key, _ in sel.select(timeout=0.0005):
            side = key.data
            while True:
                try:
                    r = key.fileobj.recv(4096)
                except BlockingIOError:
                    break
                slot = per[side][sec]
                slot["bytes"] += len(r) + 28  # with the IPv4 and UDP headers
                if struct.unpack(">H", r[2:4])[0] & 0x0200:
                    slot["slipped"] += 1
                else:
                    slot["full"] += 1
    cpu = cpu_seconds(srv.pid) - cpu0
    m1 = metrics(api)
    for s in flood + [legit]:
        s.close()
    total = {side: {k: sum(x[k] for x in per[side]) for k in ("sent", "full", "slipped", "bytes")} for side in per}
    return dict(
        rrl=rrl_rate, duration=secs, flood_qps=a.flood_qps, legit_qps=a.legit_qps, hosts=len(FLOOD_HOSTS),
        server_cpu_s=round(cpu, 2), total=total, per_second=per,
        dropped=m1["weiche_rrl_dropped_total"] - m0["weiche_rrl_dropped_total"],
        slipped=m1["weiche_rrl_slipped_total"] - m0["weiche_rrl_slipped_total"],
    )


def report(r):
    f, l, d = r["total"]["flood"], r["total"]["legit"], r["duration"]
    print(f"rrl={r['rrl'] or 'off'}: flood {f['sent'] / d:,.0f} q/s from {r['hosts']} hosts of 127.0.4.0/24 -> "
          f"{f['full'] / d:,.1f} full answers/s, {f['slipped'] / d:,.0f} slips/s, "
          f"{f['bytes'] / d / 1000:,.0f} kB/s back to the /24 (sent {f['sent'] * (len(query(0)) + 28) / d / 1000:,.0f} kB/s); "
          f"other /24: {l['full']} of {l['sent']} answered in full; "
          f"weiche dropped {r['dropped']:,}, slipped {r['slipped']:,}, CPU {r['server_cpu_s']} s")
    fulls = [s["full"] for s in r["per_second"]["flood"][:d]]
    print(f"  flood full answers per second: {fulls}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("binary")
    p.add_argument("--rate", type=int, default=10)
    p.add_argument("--flood-qps", type=int, default=20000)
    p.add_argument("--legit-qps", type=int, default=5)
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--server-cpu", default="0")
    p.add_argument("--out")
    a = p.parse_args()
    results = []
    for rep in range(a.reps):
        for rate in (0, a.rate) if rep % 2 == 0 else (a.rate, 0):
            r = run(a.binary, rate, a)
            r["rep"] = rep
            report(r)
            results.append(r)
    if a.out:
        with open(a.out, "a") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
