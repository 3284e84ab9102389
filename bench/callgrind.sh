#!/usr/bin/env bash
# bench/callgrind.sh - user-space instructions per query, counted by valgrind's callgrind.
#
# Starts the release binary under callgrind, collecting only inside `server::udp_round`
# (receive, parse, answer, send: everything a query costs in user space), sends N queries of
# one kind, one at a time, and divides. Three names: a static name, a pool name, random NXDOMAIN
# names in a 100,000-name zone; each asked three ways: without EDNS (`static`), with an OPT
# record (`static-edns`, payload 1232, DO clear) and with DO set (`static-do`). Instruction
# counts do not depend on how busy the machine is, so a change that costs instructions shows
# here even on a noisy shared machine.
#
# Usage: bench/callgrind.sh [--check] [--record] [--xdp] [--queries 20000]
#   --check   fail when a kind costs more than its budget in bench/callgrind-budget.txt + 10 %
#   --record  write the measured counts as the new budget
#   --xdp     also count the AF_XDP path (`XdpWorker::round`, kinds xdp-static ...), with the
#             program on lo: needs root, and sets net.ipv4.conf.lo.route_localnet=1 meanwhile
# Env: WEICHE=path/to/binary (default: build target/release/weiche); KEEP=1 keeps the callgrind
#      output (for callgrind_annotate). Uses 127.0.3.1, 127.0.3.2, 127.0.3.10 and free ports.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUDGET="$ROOT/bench/callgrind-budget.txt"
SLACK=10 # percent
CHECK=0 RECORD=0 XDP=0 QUERIES=20000
while [[ $# -gt 0 ]]; do
  case "$1" in
    --check) CHECK=1; shift ;;
    --record) RECORD=1; shift ;;
    --queries) QUERIES="$2"; shift 2 ;;
    --xdp) XDP=1; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "callgrind.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
if [[ -z "${WEICHE:-}" ]]; then
  (cd "$ROOT" && cargo build --release --locked -q)
  WEICHE="$ROOT/target/release/weiche"
fi

WORK=$(mktemp -d /tmp/weiche-callgrind.XXXXXX)
SRV="" BACKEND=""
LOCALNET=/proc/sys/net/ipv4/conf/lo/route_localnet LOCALNET_WAS=""
if [[ $XDP == 1 ]]; then
  LOCALNET_WAS=$(cat "$LOCALNET")
  echo 1 >"$LOCALNET"
fi
cleanup() {
  for p in $SRV $BACKEND; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -z "$LOCALNET_WAS" ]] || echo "$LOCALNET_WAS" >"$LOCALNET"
  if [[ -n "${KEEP:-}" ]]; then echo "callgrind output kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
ADDR=127.0.3.1
PORT=$(python3 -c "import socket; s=socket.socket(); s.bind(('$ADDR',0)); print(s.getsockname()[1])")

# The zone: 100,000 names and a pool whose two targets listen (so the pool answers its best level).
mkdir -p "$WORK/zones"
"$ROOT/bench/genzone.py" "$WORK/zones/body.inc" 100000 --ns 127.0.3.1 --static 127.0.3.20
python3 -c "
import socket, time
s = socket.socket(); s.bind(('127.0.3.10', 0)); s.listen(64); print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept(); c.close()" >"$WORK/backend.port" &
BACKEND=$!
for _ in $(seq 50); do [[ -s "$WORK/backend.port" ]] && break; sleep 0.1; done
cat >"$WORK/zones/example.test.toml" <<EOF
include = "body.inc"
[pools.www]
ttl = 30
check = { type = "tcp", port = $(cat "$WORK/backend.port"), interval = "5s", timeout = "4s" }
targets = [{ address = "127.0.3.10", priority = 1 }]
EOF
config() { # extra [server] line
  printf '[server]\nlisten = ["%s:%s"]\nzones = "%s"\nudp_workers = 1\n%s\n[api]\nlisten = "off"\n' \
    "$ADDR" "$PORT" "$WORK/zones" "$1"
}
config "" >"$WORK/weiche.toml"
config 'xdp = "lo"' >"$WORK/weiche-xdp.toml"

measure() { # kind [-xdp] -> instructions per query (kind: name[-edns|-do])
  local mode="${2:-}"
  local out="$WORK/callgrind.$1$mode" collect='*udp_round*'
  [[ -z "$mode" ]] || collect='*XdpWorker*round*'
  valgrind --tool=callgrind --toggle-collect="$collect" --callgrind-out-file="$out" \
    "$WEICHE" serve --config "$WORK/weiche$mode.toml" >"$WORK/server.$1$mode.log" 2>&1 &
  SRV=$!
  python3 - "$ADDR" "$PORT" "$1" "$QUERIES" <<'EOF'
import random, socket, struct, sys, time
addr, port, kind, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
name_kind, _, edns = kind.partition("-")
def query(qid, name, edns=""):
    wire = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    # OPT: root owner, payload 1232, extended RCODE and version 0, DO as asked, no options.
    opt = b"\0" + struct.pack(">HHBBHH", 41, 1232, 0, 0, 0x8000 if edns == "do" else 0, 0) if edns else b""
    head = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 1 if opt else 0)
    return head + wire + struct.pack(">HH", 1, 1) + opt
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.3.2", 0))
s.settimeout(1.0)
def ask(qid, name, tries=1, edns=""):
    for _ in range(tries):
        s.sendto(query(qid, name, edns), (addr, port))
        try:
            while True:
                r = s.recv(4096)
                if r[:2] == struct.pack(">H", qid):
                    return r[3] & 0xF
        except socket.timeout:
            pass
    return None
# Wait for the server (slow under valgrind): not counted per kind, the same for every kind.
deadline = time.time() + 300
while ask(0, "static.example.test") != 0:
    if time.time() > deadline:
        sys.exit("callgrind.sh: the server did not answer within 300 s")
rnd = random.Random(1)
names = {
    "static": lambda: "static.example.test",
    "pool": lambda: "www.example.test",
    "nxdomain": lambda: f"nx{rnd.getrandbits(40):010x}.example.test",
}[name_kind]
want = 3 if name_kind == "nxdomain" else 0
for i in range(n):
    rc = ask(1 + i % 65000, names(), tries=5, edns=edns)
    if rc != want:
        sys.exit(f"callgrind.sh: {kind} query {i} got rcode {rc}, expected {want}")
EOF
  kill -TERM "$SRV"
  wait "$SRV" || true
  SRV=""
  # The one warm-up query and the N measured ones ran inside the collected function.
  local total
  total=$(awk '/^(summary|totals):/{print $2; exit}' "$out")
  echo $(( total / (QUERIES + 1) ))
}

declare -A got
kinds=()
for name in static pool nxdomain; do
  for edns in "" -edns -do; do kinds+=("$name$edns"); done
done
socket_kinds=("${kinds[@]}")
for kind in "${socket_kinds[@]}"; do
  got[$kind]=$(measure "$kind")
  echo "$kind: ${got[$kind]} instructions per query"
done
if [[ $XDP == 1 ]]; then
  for kind in "${socket_kinds[@]}"; do
    got[xdp-$kind]=$(measure "$kind" -xdp)
    echo "xdp-$kind: ${got[xdp-$kind]} instructions per query"
    kinds+=("xdp-$kind")
  done
fi

if [[ $RECORD == 1 ]]; then
  {
    echo "# User-space instructions per UDP query (bench/callgrind.sh --record), checked in CI with ${SLACK} % slack."
    echo "# -edns: with an OPT record (DO clear); -do: with DO set. xdp-*: the same over the AF_XDP path (--xdp)."
    for kind in "${kinds[@]}"; do echo "$kind ${got[$kind]}"; done
  } >"$BUDGET"
  echo "recorded in $BUDGET"
fi
if [[ $CHECK == 1 ]]; then
  fail=0
  declare -A budgeted
  while read -r kind budget; do
    [[ -z "$kind" || "$kind" == \#* || -z "${got[$kind]:-}" ]] && continue
    budgeted[$kind]=1
    limit=$(( budget * (100 + SLACK) / 100 ))
    if (( got[$kind] > limit )); then
      echo "REGRESSION: $kind costs ${got[$kind]} instructions per query, budget $budget (+${SLACK} % = $limit)"
      fail=1
    elif (( got[$kind] * 100 < budget * 85 )); then
      echo "$kind: ${got[$kind]} is well under the budget $budget; record the gain with --record"
    fi
  done <"$BUDGET"
  # A kind measured but never budgeted would pass unchecked.
  for kind in "${kinds[@]}"; do
    if [[ -z "${budgeted[$kind]:-}" ]]; then
      echo "NO BUDGET: $kind costs ${got[$kind]} instructions per query; record one with --record"
      fail=1
    fi
  done
  exit "$fail"
fi
