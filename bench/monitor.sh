#!/usr/bin/env bash
# bench/monitor.sh - the health monitor's cost: 10,000 TCP targets probed every second.
#
# Starts one Python process listening on 10,000 addresses 127.10.X.Y:PORT (loopback only),
# serves 100 pools x 100 targets (tcp check, interval 1s) with weiche, and reports over a
# 30 s window: weiche's CPU as a share of one core, and the probes per second the targets saw
# (10,000/s means no drift).
#
# Usage: bench/monitor.sh [--targets 10000] [--seconds 30]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK=/tmp/weiche-monitor-bench
TARGETS=10000 SECONDS_=30 PORT=18080 DNS=127.0.1.1:5302
while [[ $# -gt 0 ]]; do
  case "$1" in
    --targets) TARGETS="$2"; shift 2 ;;
    --seconds) SECONDS_="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "monitor.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
ulimit -n "$(ulimit -Hn)"   # 10,000 listening sockets need more than the usual 1024
rm -rf "$WORK" && mkdir -p "$WORK/zones"
(cd "$ROOT" && cargo build --release --locked -q)

python3 - "$TARGETS" "$PORT" "$WORK/zones/mon.test.toml" <<'EOF'
import sys
n, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
addrs = [f"127.10.{i // 250}.{i % 250 + 1}" for i in range(n)]
with open(out, "w") as f:
    f.write("records = '''\n$TTL 300\n@ SOA ns1 hm 1 3600 600 86400 300\n@ NS ns1\nns1 A 127.0.1.1\n'''\n")
    f.write(f'[checks.t]\ntype = "tcp"\nport = {port}\ninterval = "1s"\ntimeout = "500ms"\n')
    for p in range(0, n, 100):
        f.write(f"[pools.p{p // 100}]\ncheck = \"t\"\ntargets = [\n")
        for i, a in enumerate(addrs[p:p + 100]):
            f.write(f'  {{ address = "{a}", priority = {i % 3 + 1} }},\n')
        f.write("]\n")
EOF

python3 - "$TARGETS" "$PORT" "$WORK/accepts.log" <<'EOF' &
import selectors, socket, sys, time
n, port, log = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
sel = selectors.DefaultSelector()
for i in range(n):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((f"127.10.{i // 250}.{i % 250 + 1}", port)); s.listen(64); s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
count, last = 0, time.time()
with open(log, "w") as f:
    while True:
        for key, _ in sel.select(timeout=0.1):
            try:
                c, _ = key.fileobj.accept(); c.close(); count += 1
            except BlockingIOError:
                pass
        now = time.time()
        if now - last >= 1:
            f.write(f"{now:.1f} {count / (now - last):.0f}\n"); f.flush(); count, last = 0, now
EOF
LISTENER=$!
SRV=""
trap 'kill $LISTENER 2>/dev/null; [[ -n "$SRV" ]] && kill $SRV 2>/dev/null; true' EXIT
sleep 2
"$ROOT/target/release/weiche" serve --listen "$DNS" --zones "$WORK/zones" 2>"$WORK/weiche.log" &
SRV=$!
for _ in $(seq 100); do grep -q "weiche serving" "$WORK/weiche.log" && break; sleep 0.1; done
grep -E "first probe round|weiche serving" "$WORK/weiche.log" | sed 's/^/  /'
sleep 5   # let the start-up burst settle into the spread schedule
hz=$(getconf CLK_TCK)
c0=$(awk '{print $14+$15}' /proc/$SRV/stat); t0=$(date +%s.%N); a0=$(wc -l <"$WORK/accepts.log")
sleep "$SECONDS_"
c1=$(awk '{print $14+$15}' /proc/$SRV/stat); t1=$(date +%s.%N)
rss=$(awk '/VmRSS/{print $2}' /proc/$SRV/status)
python3 - "$WORK/accepts.log" "$a0" "$c0" "$c1" "$t0" "$t1" "$hz" "$TARGETS" "$rss" <<'EOF'
import statistics, sys
log, a0, c0, c1, t0, t1, hz, n, rss = sys.argv[1:]
rates = [int(l.split()[1]) for l in open(log).read().split("\n")[int(a0):] if l.strip()]
cpu = (float(c1) - float(c0)) / float(hz) / (float(t1) - float(t0))
print(f"targets={n} window_s={float(t1) - float(t0):.1f} weiche_cpu_share_of_one_core={cpu:.3f} "
      f"probes_per_s_median={statistics.median(rates):.0f} min={min(rates)} max={max(rates)} rss_mib={int(rss) / 1024:.0f}")
EOF
grep -c "target down" "$WORK/weiche.log" | sed 's/^/  target down events (should be 0): /'
