#!/usr/bin/env python3
"""bench/page_feeds.py - what open status pages cost an idle weiche.

weiche serves a zone of 8 pools (16 targets, TCP checks every 2 s against listeners this script
runs), so the monitor and publisher do their usual idle work. Then, alternating, it measures
weiche's CPU (utime + stime from /proc/PID/stat) over a window with no page open, and over one
with N pages open. Each page does what src/ops/page/page.js does: loads /, /page.js, /page.css,
/status, /probes, /history and /events once, then keeps one /events long poll open (wait=25,
re-asked when it answers) and reads /status and /probes every 5 s, on keep-alive connections.
No event happens meanwhile: the pages are idle, as on a quiet day.

Reported per window: CPU seconds, and percent of one core. The pages' own CPU (this script) is
not weiche's and is not counted.

Usage: bench/page_feeds.py [--pages 100] [--seconds 60] [--rounds 2] [--server-cpu N] [--out FILE.jsonl] BIN
Uses 127.0.18.1 (weiche), 127.0.18.11-26 (backends) and free ports.
"""
import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

SERVER = "127.0.18.1"
BACKENDS = [f"127.0.18.{i}" for i in range(11, 27)]
REFRESH_S = 5
POLL_WAIT_S = 25
KINDS = "failover,failback,all_down,recovered,target_down,target_up,drain,undrain,failback_released,started,stopped"


def free_port(ip):
    s = socket.socket()
    s.bind((ip, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def backends(port):
    """A listener on each backend address that accepts and closes: a TCP check passes."""
    socks = []
    for ip in BACKENDS:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, port))
        s.listen(64)
        socks.append(s)

    def serve(s):
        while True:
            try:
                c, _ = s.accept()
                c.close()
            except OSError:
                return

    for s in socks:
        threading.Thread(target=serve, args=(s,), daemon=True).start()
    return socks


def zone(port):
    pools = []
    for i in range(8):
        a, b = BACKENDS[2 * i], BACKENDS[2 * i + 1]
        pools.append(
            f'[pools.p{i}]\ncheck = {{ type = "tcp", port = {port}, interval = "2s", timeout = "1s" }}\n'
            f'targets = [{{ address = "{a}", priority = 1 }}, {{ address = "{b}", priority = 2 }}]\n'
        )
    records = '$TTL 3600\n@ SOA ns1 hm 1 1h 10m 14d 600\n@ NS ns1\nns1 A 192.0.2.53\n'
    return f'records = """\n{records}"""\n' + "".join(pools)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


class Conn:
    """One keep-alive HTTP/1.1 connection to the API."""

    def __init__(self, port):
        self.port = port
        self.r = self.w = None

    async def get(self, path):
        if self.w is None:
            self.r, self.w = await asyncio.open_connection(SERVER, self.port)
        self.w.write(f"GET {path} HTTP/1.1\r\nHost: weiche\r\n\r\n".encode())
        await self.w.drain()
        head = await self.r.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size = int((await self.r.readuntil(b"\r\n")).strip(), 16)
                chunk = await self.r.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
        else:
            body = await self.r.readexactly(int(headers.get("content-length", "0")))
        if status != 200:
            raise RuntimeError(f"{path}: HTTP {status}")
        return body


async def page(port, stop):
    """One open page: its first load, then the long poll and the refresh, until `stop`."""
    load = Conn(port)
    for path in ["/", "/page.js", "/page.css", "/status?events=0", "/probes",
                 f"/history?since=1h&kind={KINDS}&limit=50000"]:
        await load.get(path)
    recent = json.loads(await load.get("/events?since=0&limit=50"))
    last = max([e["seq"] for e in recent], default=0)
    lock = asyncio.Lock()

    async def reread():
        async with lock:
            await load.get("/status?events=0")
            await load.get("/probes")

    async def poll():
        nonlocal last
        feed = Conn(port)
        while not stop.is_set():
            events = json.loads(await feed.get(f"/events?since={last}&wait={POLL_WAIT_S}&limit=1000"))
            for e in events:
                last = max(last, e["seq"])
            if events:
                await reread()

    async def refresh():
        while not stop.is_set():
            await asyncio.sleep(REFRESH_S)
            await reread()

    tasks = [asyncio.create_task(poll()), asyncio.create_task(refresh())]
    await stop.wait()
    for t in tasks:
        t.cancel()


async def with_pages(n, port, pid, seconds):
    stop = asyncio.Event()
    pages = [asyncio.create_task(page(port, stop)) for _ in range(n)]
    # Every page loaded, and a little time for the first long polls to settle.
    await asyncio.sleep(3)
    failed = [p for p in pages if p.done() and p.exception()]
    if failed:
        raise failed[0].exception()
    c0, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    c1, t1 = cpu_seconds(pid), time.monotonic()
    stop.set()
    await asyncio.gather(*pages, return_exceptions=True)
    return c1 - c0, t1 - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out")
    ap.add_argument("--server-cpu", help="pin weiche to this CPU (taskset)")
    ap.add_argument("bin")
    args = ap.parse_args()

    check_port = free_port(BACKENDS[0])
    listeners = backends(check_port)
    dns_port, api_port = free_port(SERVER), free_port(SERVER)
    with tempfile.TemporaryDirectory() as d:
        os.mkdir(f"{d}/zones")
        os.mkdir(f"{d}/state")
        with open(f"{d}/zones/feeds.test.toml", "w") as f:
            f.write(zone(check_port))
        with open(f"{d}/weiche.toml", "w") as f:
            f.write(f'[server]\nlisten = ["{SERVER}:{dns_port}"]\nzones = "zones"\nstate_dir = "state"\n'
                    f'[api]\nlisten = "{SERVER}:{api_port}"\n')
        pin = ["taskset", "-c", args.server_cpu] if args.server_cpu else []
        proc = subprocess.Popen(pin + [args.bin, "--config", f"{d}/weiche.toml"], stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    socket.create_connection((SERVER, api_port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            time.sleep(3)
            results = []
            for r in range(args.rounds):
                for n in (0, args.pages):
                    if n == 0:
                        c0, t0 = cpu_seconds(proc.pid), time.monotonic()
                        time.sleep(args.seconds)
                        cpu, wall = cpu_seconds(proc.pid) - c0, time.monotonic() - t0
                    else:
                        cpu, wall = asyncio.run(with_pages(n, api_port, proc.pid, args.seconds))
                    row = {"round": r + 1, "pages": n, "cpu_s": round(cpu, 3), "wall_s": round(wall, 1),
                           "core_pct": round(100 * cpu / wall, 2)}
                    results.append(row)
                    print(json.dumps(row), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    for row in results:
                        f.write(json.dumps({"bin": args.bin, **row}) + "\n")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            for s in listeners:
                s.close()


if __name__ == "__main__":
    sys.exit(main())
