#!/usr/bin/env bash
# bench/compare.sh - weiche against Knot DNS, NSD and gdnsd on this machine, interleaved in one run.
#
# For each server and round, with the server pinned to SERVER_CPU and dnsperf to CLIENT_CPU:
#   static    UDP, one static name                     (dnsperf -c 8 -q 100, no rate limit)
#   pool      UDP, the failover name (weiche pool, gdnsd simplefo; Knot and NSD: a plain A)
#   nxdomain  UDP, random names that do not exist in the 100,000-name zone
#   tcp       TCP, the static name, queries pipelined on 8 connections
#   latency   UDP, the static name at a fixed rate (--half-qps, half of what saturates dnsperf
#             here): p50/p99/p99.9 of every query's round trip
#   static-do, pool-do, nxdomain-do: the same with DO=1 (dnsperf -D)
# and once per server: load time and memory (PSS of the whole process group) for a zone of
# 1,000,000 records. The figure that ranks servers is queries per server CPU-second: dnsperf
# saturates near 150k q/s on this machine, well below what the fast servers can do.
#
# Installs what it needs from Debian when missing (dnsperf, dnsutils, and the servers asked for).
# Uses only 127.0.1.0/24 and a high port.
#
# weiche-xdp and knot-xdp are the same servers answering UDP through AF_XDP on lo (weiche
# --xdp lo; Knot's xdp.listen). They need root, and net.ipv4.conf.lo.route_localnet=1 for the
# run (set here and put back at the end). Load time and memory are measured for the plain ones.
#
# Usage: bench/compare.sh [--servers "weiche knot nsd gdnsd"] [--cases "static pool nxdomain tcp latency"]
#                         [--rounds 5] [--duration 10] [--half-qps 75000] [--skip-load] [--out FILE.tsv]
# Env:   ADDR=127.0.1.1 PORT=5301 SRC=127.0.1.2 SERVER_CPU=0 CLIENT_CPU=1 PEER_WORKERS=2
#        WEICHE=path/to/binary (default: build target/release/weiche)
#        WEICHE_BASE=path/to/binary for the server "weiche-base": an earlier build measured beside
#        this one (e.g. the commit before a change), over sockets like "weiche"
#        weiche-signed: weiche signing example.test ([dnssec], a CSK made by weiche keygen);
#        knot-signed: Knot signing it online (mod-onlinesign, its own automatic keys)
#        RRL_RATE=1000000 for the server "weiche-rrl": weiche with response rate limiting on at
#        this rate (the default is above what dnsperf sends, so every query is accounted for and
#        none is limited: the cost of the accounting)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK=/tmp/weiche-bench
ADDR="${ADDR:-127.0.1.1}" PORT="${PORT:-5301}" SRC="${SRC:-127.0.1.2}"
SERVER_CPU="${SERVER_CPU:-0}" CLIENT_CPU="${CLIENT_CPU:-1}" PEER_WORKERS="${PEER_WORKERS:-2}"
SERVERS="weiche knot nsd gdnsd" CASES="static pool nxdomain tcp latency"
ROUNDS=5 DURATION=10 WARMUP=2 HALF_QPS=75000 OUT="" SKIP_LOAD=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --servers) SERVERS="$2"; shift 2 ;;
    --cases) CASES="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --half-qps) HALF_QPS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --skip-load) SKIP_LOAD=1; shift ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
OUT="${OUT:-$WORK/results-$(date +%Y%m%d-%H%M%S).tsv}"

# --- tools -----------------------------------------------------------------------------------
need=()
command -v dnsperf >/dev/null || need+=(dnsperf)
command -v dig >/dev/null || need+=(dnsutils)
for s in $SERVERS; do
  case "$s" in
    knot | knot-xdp) command -v knotd >/dev/null || need+=(knot) ;;
    nsd) command -v nsd >/dev/null || need+=(nsd) ;;
    gdnsd) command -v gdnsd >/dev/null || need+=(gdnsd) ;;
    knot-signed) command -v knotd >/dev/null || need+=(knot) ;;
    weiche | weiche-xdp | weiche-rrl | weiche-signed) ;;
    weiche-base) [[ -x "${WEICHE_BASE:-}" ]] || { echo "compare.sh: weiche-base needs WEICHE_BASE=binary" >&2; exit 2; } ;;
    *) echo "compare.sh: unknown server $s (weiche knot nsd gdnsd weiche-xdp knot-xdp weiche-base weiche-rrl)" >&2; exit 2 ;;
  esac
done
if ((${#need[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [[ -z "${WEICHE:-}" ]]; then
  (cd "$ROOT" && cargo build --release --locked -q)
  WEICHE="$ROOT/target/release/weiche"
fi

rm -rf "$WORK/run" && mkdir -p "$WORK/run" "$WORK/q"

# --- zones and configs -----------------------------------------------------------------------
# Two zone sets: "bench" (example.test, 100,000 names) and "big" (big.test, 1,000,000 records).
# The body is shared; each server adds www its own way.
[[ -s "$WORK/body.inc" ]] || "$ROOT/bench/genzone.py" "$WORK/body.inc" 100000 --ns 127.0.1.1 --static 127.0.1.20
if [[ $SKIP_LOAD == 0 && ! -s "$WORK/big.body" ]]; then
  "$ROOT/bench/genzone.py" "$WORK/big.body" 1000000 --ns 127.0.1.1 --label n --net 127.3
fi

prepare() { # server set -> config dir $WORK/cfg/server-set
  local s="${1%-xdp}" set="$2" d="$WORK/cfg/$1-$2"
  s="${s%-base}"
  s="${s%-rrl}"
  s="${s%-signed}"
  rm -rf "$d" && mkdir -p "$d"
  local zone file
  if [[ $set == bench ]]; then zone=example.test; else zone=big.test; fi
  file="$d/$zone.zone"
  if [[ $set == bench ]]; then
    { echo "\$ORIGIN $zone."; cat "$WORK/body.inc"; } >"$file"
    case "$s" in
      weiche)
        rm "$file"
        cat >"$d/$zone.toml" <<EOF
include = "$WORK/body.inc"
[pools.www]
ttl = 30
check = { type = "tcp", port = 8080, interval = "1s", timeout = "500ms" }
targets = [{ address = "127.0.1.10", priority = 1 }, { address = "127.0.1.11", priority = 2 }]
EOF
        ;;
      gdnsd) echo "www 30 DYNA simplefo!www" >>"$file" ;;
      *) echo "www 30 A 127.0.1.10" >>"$file" ;;
    esac
  else
    { echo "\$ORIGIN $zone."; cat "$WORK/big.body"; } >"$file"
  fi
  case "$s" in
    knot)
      mkdir -p "$d/db"
      cat >"$d/knot.conf" <<EOF
server:
    listen: $ADDR@$PORT
    rundir: $d
    udp-workers: $PEER_WORKERS
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: $d/db
template:
  - id: default
    storage: $d
    journal-content: none
    zonefile-sync: -1
    zonefile-load: whole
    semantic-checks: off
zone:
  - domain: $zone
    file: $file
EOF
      if [[ $1 == knot-signed ]]; then
        echo "    module: mod-onlinesign" >>"$d/knot.conf"
      fi
      if [[ $1 == knot-xdp ]]; then
        sed -i "s/^log:/xdp:\n    listen: lo@$PORT\n    udp: on\n    tcp: off\nlog:/" "$d/knot.conf"
      fi
      ;;
    nsd)
      cat >"$d/nsd.conf" <<EOF
server:
    ip-address: $ADDR@$PORT
    port: $PORT
    do-ip6: no
    server-count: $PEER_WORKERS
    reuseport: yes
    username: ""
    chroot: ""
    zonesdir: "$d"
    database: ""
    zonelistfile: "$d/zone.list"
    xfrdfile: "$d/xfrd.state"
    xfrdir: "$d"
    pidfile: "$d/nsd.pid"
    verbosity: 0
    tcp-count: 16
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: $zone
    zonefile: "$file"
EOF
      ;;
    weiche)
      if [[ $1 == weiche-signed ]]; then
        rm -rf "$d.keys" && mkdir -p "$d.keys"
        "$WEICHE" keygen "$zone" --dir "$d.keys" >/dev/null
        printf '[server]\nlisten = ["%s:%s"]\nzones = "%s"\n[api]\nlisten = "off"\n[dnssec]\nkeys = "%s"\nzones = ["%s"]\n' \
          "$ADDR" "$PORT" "$d" "$d.keys" "$zone" >"$d.toml"
      fi
      ;;
    gdnsd)
      mkdir -p "$d/etc/zones" "$d/run" "$d/state"
      mv "$file" "$d/etc/zones/$zone"
      cat >"$d/etc/config" <<EOF
options => {
    listen => [ $ADDR ]
    dns_port => $PORT
    udp_threads => $PEER_WORKERS
    tcp_threads => 1
    run_dir => $d/run
    state_dir => $d/state
}
service_types => {
    tcp8080 => { plugin => tcp_connect, port => 8080, interval => 2, timeout => 1 }
}
plugins => {
    simplefo => { www => { service_types => [ tcp8080 ], primary => 127.0.1.10, secondary => 127.0.1.11 } }
}
EOF
      ;;
  esac
}

echo "static.example.test A" >"$WORK/q/static.txt"
echo "www.example.test A" >"$WORK/q/pool.txt"
python3 -c "
import random
r = random.Random(1)
print('\n'.join(f'nx{r.getrandbits(40):010x}.example.test A' for _ in range(100_000)))" >"$WORK/q/nxdomain.txt"
cp "$WORK/q/static.txt" "$WORK/q/tcp.txt"
cp "$WORK/q/static.txt" "$WORK/q/latency.txt"

# --- processes -------------------------------------------------------------------------------
SRV="" BACKENDS=()
stop_group() { # pid
  if kill -0 "$1" 2>/dev/null; then
    kill -TERM -- "-$1" 2>/dev/null || kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
  fi
}
# Knot leaves its XDP program attached when it stops; weiche's goes with its process.
stop_server() {
  [[ -z "$SRV" ]] || stop_group "$SRV"
  SRV=""
  if ip link show lo | grep -q "prog/xdp.*xdp_redirect"; then ip link set dev lo xdpgeneric off; fi
}
LOCALNET=/proc/sys/net/ipv4/conf/lo/route_localnet LOCALNET_WAS=""
if [[ " $SERVERS " == *-xdp\ * ]]; then
  LOCALNET_WAS=$(cat "$LOCALNET")
  echo 1 >"$LOCALNET"
fi
cleanup() {
  stop_server
  for b in "${BACKENDS[@]}"; do stop_group "$b"; done
  [[ -z "$LOCALNET_WAS" ]] || echo "$LOCALNET_WAS" >"$LOCALNET"
}
trap cleanup EXIT

# Health-checked names need both backends up: a TCP listener on each that accepts and closes.
for ip in 127.0.1.10 127.0.1.11; do
  setsid python3 -c "
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('$ip', 8080)); s.listen(128)
while True:
    c, _ = s.accept(); c.close()" >/dev/null 2>&1 &
  BACKENDS+=($!)
done

start_server() { # server set
  local d="$WORK/cfg/$1-$2" log="$WORK/run/$1-$2.log"
  case "$1" in
    weiche) setsid taskset -c "$SERVER_CPU" "$WEICHE" serve --listen "$ADDR:$PORT" --zones "$d" --api off >"$log" 2>&1 & ;;
    weiche-base) setsid taskset -c "$SERVER_CPU" "$WEICHE_BASE" serve --listen "$ADDR:$PORT" --zones "$d" --api off >"$log" 2>&1 & ;;
    weiche-xdp) setsid taskset -c "$SERVER_CPU" "$WEICHE" serve --listen "$ADDR:$PORT" --zones "$d" --api off --xdp lo \
      >"$log" 2>&1 & ;;
    weiche-rrl)
      printf '[server]\nlisten = ["%s:%s"]\nzones = "%s"\n[api]\nlisten = "off"\n[rrl]\nresponses_per_second = %s\n' \
        "$ADDR" "$PORT" "$d" "${RRL_RATE:-1000000}" >"$WORK/run/weiche-rrl.toml"
      setsid taskset -c "$SERVER_CPU" "$WEICHE" serve --config "$WORK/run/weiche-rrl.toml" >"$log" 2>&1 & ;;
    weiche-signed) setsid taskset -c "$SERVER_CPU" "$WEICHE" serve --config "$d.toml" >"$log" 2>&1 & ;;
    knot | knot-xdp | knot-signed) setsid taskset -c "$SERVER_CPU" knotd -c "$d/knot.conf" >"$log" 2>&1 & ;;
    nsd) setsid taskset -c "$SERVER_CPU" nsd -d -c "$d/nsd.conf" >"$log" 2>&1 & ;;
    gdnsd) setsid taskset -c "$SERVER_CPU" gdnsd -f -c "$d/etc" start >"$log" 2>&1 & ;;
  esac
  SRV=$!
}

# CPU seconds (user+system, all threads and child processes) of process group $1.
# A process that exits between the glob and the read is skipped (awk alone would stop with
# status 2 on it, and set -e with it: on a machine where builds run that happens).
group_cpu() {
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v g="$1" -v hz="$(getconf CLK_TCK)" '
    { sub(/^.*\) /, ""); if ($3 == g) t += $12 + $13 } END { printf "%.2f\n", t / hz }'
}
# Proportional resident memory (KiB) of process group $1: shared pages counted once.
group_pss_kb() {
  local t=0 p
  for p in $(ps -o pid= -g "$1"); do
    t=$((t + $(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)))
  done
  echo "$t"
}

wait_soa() { # zone timeout-s -> seconds waited
  local t0=$EPOCHREALTIME
  while ! dig +short +time=1 +tries=1 -b "$SRC" @"$ADDR" -p "$PORT" "$1" SOA 2>/dev/null | grep -q hostmaster; do
    kill -0 "$SRV" 2>/dev/null || { echo "server died; log:" >&2; tail "$WORK/run/"*.log >&2; exit 1; }
    sleep 0.01
    if (( ${EPOCHREALTIME/./} - ${t0/./} > $2 * 1000000 )); then echo "no SOA for $1 within $2 s" >&2; exit 1; fi
  done
  printf '%d.%02d\n' $(( (${EPOCHREALTIME/./} - ${t0/./}) / 1000000 )) $(( (${EPOCHREALTIME/./} - ${t0/./}) / 10000 % 100 ))
}

[[ -s "$OUT" ]] || printf 'round\tserver\tcase\tqps\tlost\tsrv_cpu_s\tqueries\tus_per_query\tkq_per_cpu_s\tp50_us\tp99_us\tp999_us\trcodes\tanswer\tcli_cpu_pct\n' >"$OUT"

measure() { # round server case
  local qfile="$WORK/q/${3%-do}.txt" mode=udp rate=() ans log="$WORK/run/dnsperf-$2-$3.log"
  [[ $3 == tcp ]] && mode=tcp
  [[ $3 == *-do ]] && rate=(-D)
  [[ $3 == latency ]] && rate=(-Q "$HALF_QPS" -v)
  ans=$(dig +short -b "$SRC" @"$ADDR" -p "$PORT" "$(head -1 "$qfile" | cut -d' ' -f1)" A | paste -sd, || true)
  taskset -c "$CLIENT_CPU" dnsperf -m "$mode" -s "$ADDR" -p "$PORT" -a "$SRC" -c 8 -T 1 -q 100 -l "$WARMUP" \
    -d "$qfile" >/dev/null 2>&1 || true
  local c0 c1 cli
  c0=$(group_cpu "$SRV")
  # dnsperf's own CPU seconds too: at 100 % of its core it is the limit, not the server.
  cli=$(python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[2:], stdout=open(sys.argv[1], "w"), stderr=subprocess.STDOUT)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{u.ru_utime + u.ru_stime:.2f}")' "$log" taskset -c "$CLIENT_CPU" dnsperf -m "$mode" -s "$ADDR" -p "$PORT" \
    -a "$SRC" -c 8 -T 1 -q 100 -l "$DURATION" "${rate[@]}" -d "$qfile")
  c1=$(group_cpu "$SRV")
  python3 - "$log" "$1" "$2" "$3" "$c0" "$c1" "${ans:-none}" "$cli" "$DURATION" >>"$OUT" <<'EOF'
import re, sys
log, rnd, label, case, c0, c1, ans, cli, duration = sys.argv[1:]
t = open(log).read()
completed = int(re.search(r"Queries completed:\s+(\d+)", t).group(1))
lost = int(re.search(r"Queries lost:\s+(\d+)", t).group(1))
qps = float(re.search(r"Queries per second:\s+([\d.]+)", t).group(1))
cpu = float(c1) - float(c0)
rcodes = re.search(r"Response codes:\s+(.*)", t).group(1).replace(" ", "")
lat = sorted(float(m) for m in re.findall(r"^> \S+ \S+ \S+ ([\d.]+)$", t, re.M))
pct = lambda p: f"{lat[min(len(lat) - 1, int(len(lat) * p))] * 1e6:.0f}" if lat else "-"
print(f"{rnd}\t{label}\t{case}\t{qps:.0f}\t{lost}\t{cpu:.2f}\t{completed}\t{cpu / completed * 1e6:.2f}\t"
      f"{completed / cpu / 1000:.1f}\t{pct(0.5)}\t{pct(0.99)}\t{pct(0.999)}\t{rcodes}\t{ans}\t{float(cli) * 100 / float(duration):.0f}")
EOF
  tail -1 "$OUT"
}

# --- throughput and latency, interleaved rounds ----------------------------------------------
read -r -a order <<<"$SERVERS"
for s in "${order[@]}"; do prepare "$s" bench; done
for round in $(seq "$ROUNDS"); do
  for label in "${order[@]}"; do
    start_server "$label" bench
    wait_soa example.test 60 >/dev/null
    # gdnsd's first health check may still be pending: wait until www answers the primary.
    for _ in $(seq 100); do
      [[ $(dig +short -b "$SRC" @"$ADDR" -p "$PORT" www.example.test A) == 127.0.1.10 ]] && break
      sleep 0.1
    done
    for case in $CASES; do measure "$round" "$label" "$case"; done
    stop_server
  done
  order=("${order[@]:1}" "${order[0]}") # rotate who goes first
done

# --- load time and memory for 1,000,000 records ----------------------------------------------
if [[ $SKIP_LOAD == 0 ]]; then
  for label in $SERVERS; do
    [[ $label == *-xdp ]] && continue
    prepare "$label" big
    start_server "$label" big
    secs=$(wait_soa big.test 300)
    sleep 1
    kb=$(group_pss_kb "$SRV")
    printf 'load\t%s\tload-1M\t-\t-\t-\t1000000\t-\t-\t-\t-\t-\t-\tload_s=%s pss_mib=%s bytes_per_record=%s\n' \
      "$label" "$secs" "$((kb / 1024))" "$((kb * 1024 / 1000000))" | tee -a "$OUT"
    stop_server
  done
fi

python3 "$ROOT/bench/summarize.py" "$OUT"
echo "raw results: $OUT"
