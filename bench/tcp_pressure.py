#!/usr/bin/env python3
"""bench/tcp_pressure.py - idle TCP connections against a new client, for each build given.

For each binary, weiche serves a small zone with tcp_idle_timeout = 30s and its default
connection limits. Two cases, each with a fresh server:
  one-client   600 idle connections from 127.0.7.1
  many-clients 600 idle connections from 20 addresses of 127.0.9.0/24 (30 each)
Then a new client (127.0.8.1) connects and asks one query. Reported: whether it was answered
and how long that took, and how many of the idle connections the server still holds.

Usage: bench/tcp_pressure.py [--out FILE.jsonl] BIN...
Uses 127.0.4.2, 127.0.7.1, 127.0.8.1, 127.0.9.1-20 and a free port.
"""
import argparse
import json
import os
import resource
import select
import socket
import struct
import subprocess
import sys
import tempfile
import time

SERVER = "127.0.4.2"
ZONE = "$ORIGIN p.test.\n$TTL 300\n@ SOA ns1 hm 1 3600 600 86400 300\n@ NS ns1\nns1 A 192.0.2.53\nwww A 192.0.2.1\n"


def free_port():
    s = socket.socket()
    s.bind((SERVER, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def query():
    m = struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x03www\x01p\x04test\x00" + struct.pack(">HH", 1, 1)
    return struct.pack(">H", len(m)) + m


def connect(src, port):
    s = socket.socket()
    s.bind((src, 0))
    s.connect((SERVER, port))
    return s


def closed(s):
    r, _, _ = select.select([s], [], [], 0)
    if not r:
        return False
    try:
        return s.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def ask(src, port):
    """(answered, seconds) for one query on a new connection, waiting at most 5 s."""
    t0 = time.perf_counter()
    try:
        s = connect(src, port)
        s.settimeout(5)
        s.sendall(query())
        head = s.recv(2)
        ok = len(head) == 2
        if ok:
            n = struct.unpack(">H", head)[0]
            body = b""
            while len(body) < n:
                chunk = s.recv(n - len(body))
                if not chunk:
                    break
                body += chunk
            ok = len(body) == n and struct.unpack(">H", body[6:8])[0] == 1
        s.close()
    except OSError:
        ok = False
    return ok, time.perf_counter() - t0


def run(binary, case):
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        os.mkdir(f"{d}/zones")
        open(f"{d}/zones/p.test.zone", "w").write(ZONE)
        open(f"{d}/weiche.toml", "w").write(
            f'[server]\nlisten = ["{SERVER}:{port}"]\nzones = "zones"\ntcp_idle_timeout = "30s"\n[api]\nlisten = "off"\n')
        srv = subprocess.Popen([binary, "serve", "--config", f"{d}/weiche.toml"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 30
            while not ask("127.0.8.1", port)[0]:
                if time.time() > deadline:
                    sys.exit(f"{binary} did not answer")
                time.sleep(0.2)
            time.sleep(0.5)
            srcs = ["127.0.7.1"] * 600 if case == "one-client" else [f"127.0.9.{1 + i % 20}" for i in range(600)]
            idle = [connect(src, port) for src in srcs]
            time.sleep(0.5)
            answered, secs = ask("127.0.8.1", port)
            time.sleep(0.5)
            held = sum(not closed(s) for s in idle)
            for s in idle:
                s.close()
            return dict(binary=binary, case=case, answered=answered, seconds=round(secs, 4), idle_held=held)
        finally:
            srv.terminate()
            srv.wait(10)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("binaries", nargs="+")
    p.add_argument("--out")
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for case in ("one-client", "many-clients"):
        for b in a.binaries:
            r = run(b, case)
            print(f"{case:13} {b}: new client {'answered' if r['answered'] else 'NOT answered'} in "
                  f"{r['seconds'] * 1000:.1f} ms; the server holds {r['idle_held']} of the 600 idle connections")
            if a.out:
                with open(a.out, "a") as f:
                    f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
