#!/usr/bin/env bash
# bench/compare.sh - weiche against Knot DNS on this machine, in the same run, interleaved.
#
# Measures, for each server and round:
#   - dnsperf QPS and server CPU seconds for: a static name, a pool name, and random
#     NXDOMAIN names, all in one zone of 100,000 names (example.test);
#   - load time and resident memory for a zone of 1,000,000 records (big.test).
# Installs Debian's dnsperf and knot when missing. Uses only 127.0.1.0/24 and a high port.
#
# Usage: bench/compare.sh [--rounds 3] [--duration 10] [--out FILE.tsv] [--skip-load]
# Env:   ADDR=127.0.1.1 PORT=5301 SRC=127.0.1.2 SERVER_CPU=0 CLIENT_CPU=1
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK=/tmp/weiche-bench
ADDR="${ADDR:-127.0.1.1}" PORT="${PORT:-5301}" SRC="${SRC:-127.0.1.2}"
SERVER_CPU="${SERVER_CPU:-0}" CLIENT_CPU="${CLIENT_CPU:-1}"
ROUNDS=3 DURATION=10 WARMUP=2 OUT="" SKIP_LOAD=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --skip-load) SKIP_LOAD=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
OUT="${OUT:-$WORK/results-$(date +%Y%m%d-%H%M%S).tsv}"

if ! command -v dnsperf >/dev/null || ! command -v knotd >/dev/null || ! command -v dig >/dev/null || ! command -v bc >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsperf knot dnsutils bc >/dev/null
fi
(cd "$ROOT" && cargo build --release --locked -q)
WEICHE="$ROOT/target/release/weiche"

rm -rf "$WORK/run" && mkdir -p "$WORK/run" "$WORK/weiche-zones" "$WORK/knot" "$WORK/big/weiche" "$WORK/q"

# --- zones -----------------------------------------------------------------------------------
# The body both servers share; Knot adds www as a plain A record, weiche as a pool.
if [[ ! -s "$WORK/body.inc" ]]; then
  python3 - "$WORK/body.inc" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    f.write("$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 300\n@ NS ns1\nns1 A 127.0.1.1\nstatic A 127.0.1.20\n")
    for i in range(100_000 - 3):
        f.write(f"h{i:06d} A 127.2.{(i >> 8) & 255}.{i & 255}\n")
EOF
fi
{ echo "\$ORIGIN example.test."; cat "$WORK/body.inc"; echo "www 30 A 127.0.1.10"; } >"$WORK/knot/example.test.zone"
cat >"$WORK/weiche-zones/example.test.toml" <<EOF
include = "../body.inc"
[pools.www]
ttl = 30
check = { type = "tcp", port = 8080, interval = "1s", timeout = "500ms" }
targets = [{ address = "127.0.1.10", priority = 1 }, { address = "127.0.1.11", priority = 2 }]
EOF
cat >"$WORK/knot/knot.conf" <<EOF
server:
    listen: $ADDR@$PORT
    rundir: $WORK/run
    udp-workers: 2
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: $WORK/run/db
template:
  - id: default
    storage: $WORK/knot
    journal-content: none
    zonefile-sync: -1
    zonefile-load: whole
    semantic-checks: off
zone:
  - domain: example.test
    file: $WORK/knot/example.test.zone
  - domain: big.test
    file: $WORK/big/big.test.zone
EOF

echo "static.example.test A" >"$WORK/q/static.txt"
echo "www.example.test A" >"$WORK/q/pool.txt"
python3 -c "
import random
r = random.Random(1)
print('\n'.join(f'nx{r.getrandbits(40):010x}.example.test A' for _ in range(100_000)))" >"$WORK/q/nxdomain.txt"

if [[ $SKIP_LOAD == 0 && ! -s "$WORK/big/big.test.zone" ]]; then
  python3 - "$WORK/big/big.test.zone" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    f.write("$ORIGIN big.test.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 300\n@ NS ns1\nns1 A 127.0.1.1\n")
    for i in range(1_000_000 - 3):
        f.write(f"n{i:07d} A 127.3.{(i >> 8) & 255}.{i & 255}\n")
EOF
  ln -sf "$WORK/big/big.test.zone" "$WORK/big/weiche/big.test.zone"
fi

# --- helpers ---------------------------------------------------------------------------------
SRV=""
stop_server() {
  if [[ -n "$SRV" ]] && kill -0 "$SRV" 2>/dev/null; then
    kill -TERM -- "-$SRV" 2>/dev/null || kill -TERM "$SRV" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SRV" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$SRV" 2>/dev/null || true
    wait "$SRV" 2>/dev/null || true
  fi
  SRV=""
}
trap stop_server EXIT

start_server() { # label zones-dir-for-weiche
  case "$1" in
    weiche) setsid taskset -c "$SERVER_CPU" "$WEICHE" serve --listen "$ADDR:$PORT" --zones "$2" >"$WORK/run/$1.log" 2>&1 & ;;
    knot) rm -rf "$WORK/run/db"; setsid taskset -c "$SERVER_CPU" knotd -c "$WORK/knot/knot.conf" >"$WORK/run/$1.log" 2>&1 & ;;
  esac
  SRV=$!
}

# CPU seconds (user+system, all threads) of process $1
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15)/hz}' "/proc/$1/stat"; }

wait_soa() { # zone timeout-s
  local t0; t0=$(date +%s.%N)
  while ! dig +short +time=1 +tries=1 -b "$SRC" @"$ADDR" -p "$PORT" "$1" SOA 2>/dev/null | grep -q hostmaster; do
    kill -0 "$SRV" 2>/dev/null || { echo "server died; log:" >&2; tail "$WORK/run/"*.log >&2; exit 1; }
    sleep 0.05
    [[ $(echo "$(date +%s.%N) - $t0 > $2" | bc) == 1 ]] && { echo "no SOA for $1 within $2 s" >&2; exit 1; }
  done
  echo "$(date +%s.%N) - $t0" | bc
}

[[ -s "$OUT" ]] || printf 'round\tserver\tcase\tqps\tlost\tsrv_cpu_s\tqueries\tus_per_query\tkq_per_cpu_s\trcodes\tanswer\n' >"$OUT"

measure() { # round label case qfile
  local ans
  ans=$(dig +short -b "$SRC" @"$ADDR" -p "$PORT" "$(head -1 "$4" | cut -d' ' -f1)" A | paste -sd, || true)
  taskset -c "$CLIENT_CPU" dnsperf -s "$ADDR" -p "$PORT" -a "$SRC" -c 8 -T 1 -q 100 -l "$WARMUP" -d "$4" >/dev/null 2>&1 || true
  local c0 c1 log="$WORK/run/dnsperf-$2-$3.log"
  c0=$(cpu_s "$SRV")
  taskset -c "$CLIENT_CPU" dnsperf -s "$ADDR" -p "$PORT" -a "$SRC" -c 8 -T 1 -q 100 -l "$DURATION" -d "$4" >"$log" 2>&1
  c1=$(cpu_s "$SRV")
  python3 - "$log" "$1" "$2" "$3" "$c0" "$c1" "${ans:-none}" >>"$OUT" <<'EOF'
import re, sys
log, rnd, label, case, c0, c1, ans = sys.argv[1:]
t = open(log).read()
completed = int(re.search(r"Queries completed:\s+(\d+)", t).group(1))
lost = int(re.search(r"Queries lost:\s+(\d+)", t).group(1))
qps = float(re.search(r"Queries per second:\s+([\d.]+)", t).group(1))
cpu = float(c1) - float(c0)
rcodes = re.search(r"Response codes:\s+(.*)", t).group(1).replace(" ", "")
print(f"{rnd}\t{label}\t{case}\t{qps:.0f}\t{lost}\t{cpu:.2f}\t{completed}\t{cpu / completed * 1e6:.2f}\t{completed / cpu / 1000:.1f}\t{rcodes}\t{ans}")
EOF
  tail -1 "$OUT"
}

# --- throughput, interleaved rounds ----------------------------------------------------------
for round in $(seq "$ROUNDS"); do
  order="weiche knot"; (( round % 2 == 0 )) && order="knot weiche"
  for label in $order; do
    start_server "$label" "$WORK/weiche-zones"
    wait_soa example.test 60 >/dev/null
    for case in static pool nxdomain; do
      measure "$round" "$label" "$case" "$WORK/q/$case.txt"
    done
    stop_server
  done
done

# --- load time and memory for 1,000,000 records ----------------------------------------------
if [[ $SKIP_LOAD == 0 ]]; then
  for label in weiche knot; do
    start_server "$label" "$WORK/big/weiche"
    secs=$(wait_soa big.test 300)
    sleep 1
    rss_kb=$(awk '/VmRSS/{print $2}' "/proc/$SRV/status")
    printf 'load\t%s\tload-1M\t-\t-\t-\t1000000\t-\t-\t-\tload_s=%.2f rss_mib=%.0f bytes_per_record=%.0f\n' \
      "$label" "$secs" "$(echo "$rss_kb/1024" | bc -l)" "$(echo "$rss_kb*1024/1000000" | bc -l)" | tee -a "$OUT"
    stop_server
  done
fi

python3 - "$OUT" <<'EOF'
import csv, statistics, sys
rows = [r for r in csv.DictReader(open(sys.argv[1]), delimiter="\t") if r["round"] != "load"]
print("\n| case | server | QPS median (min–max) | µs CPU/query | kq per CPU-s median (min–max) | lost |")
print("|---|---|---|---|---|---|")
for case in ["static", "pool", "nxdomain"]:
    for server in ["weiche", "knot"]:
        rs = [r for r in rows if r["case"] == case and r["server"] == server]
        if not rs:
            continue
        q = [float(r["qps"]) for r in rs]; k = [float(r["kq_per_cpu_s"]) for r in rs]; u = [float(r["us_per_query"]) for r in rs]
        print(f"| {case} | {server} | {statistics.median(q):,.0f} ({min(q):,.0f}–{max(q):,.0f}) | {statistics.median(u):.2f} | "
              f"{statistics.median(k):.1f} ({min(k):.1f}–{max(k):.1f}) | {sum(int(r['lost']) for r in rs)} |")
EOF
echo "raw results: $OUT"
