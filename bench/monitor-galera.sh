#!/usr/bin/env bash
# bench/monitor-galera.sh - what galera checks cost: 1,000 targets probed every second against a
# real three-node MariaDB Galera cluster.
#
# Starts the cluster on 127.0.34.1-3 (Debian's mariadb-server, galera-4, rsync), and gives the
# 1,000 targets addresses 127.21.X.Y whose port 3306 nftables maps, connection by connection, onto
# the three nodes (loopback only; needs root and nft). weiche serves 10 pools of 100 targets with
# one galera check (interval 1s, timeout 500ms) and is measured over a window: probes per second
# and how many passed (from its own metrics), its CPU as a share of one core, and its memory.
#
# --type tcp probes the same 1,000 addresses with a tcp check of port 3306 instead, for comparison
# (each such probe is an aborted connect on the server).
#
# Usage: bench/monitor-galera.sh [--targets 1000] [--seconds 30] [--type galera|tcp]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK=/tmp/weiche-galera-bench
TARGETS=1000 SECONDS_=30 TYPE=galera DNS=127.0.34.53:5302 API=127.0.34.53:8054
NODES=(127.0.34.1 127.0.34.2 127.0.34.3)
while [[ $# -gt 0 ]]; do
  case "$1" in
    --targets) TARGETS="$2"; shift 2 ;;
    --seconds) SECONDS_="$2"; shift 2 ;;
    --type) TYPE="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "monitor-galera.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
for tool in mariadbd mariadb-install-db mariadb nft rsync; do
  command -v "$tool" >/dev/null || test -x "/usr/sbin/$tool" || { echo "monitor-galera.sh: $tool is missing (apt-get install mariadb-server galera-4 rsync nftables)" >&2; exit 1; }
done
PATH="$PATH:/usr/sbin"
pkill -f "$WORK/" 2>/dev/null || true
for _ in $(seq 100); do pgrep -f "$WORK/" >/dev/null || break; sleep 0.2; done   # a previous run's nodes
rm -rf "$WORK" && mkdir -p "$WORK/zones" && chmod 755 "$WORK"
(cd "$ROOT" && cargo build --release --locked -q)

SRV="" PIDS=()
cleanup() {
  [[ -n "$SRV" ]] && kill "$SRV" 2>/dev/null
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  nft delete table ip weiche_galera_bench 2>/dev/null
  true
}
trap cleanup EXIT

members=$(printf '%s:4567,' "${NODES[@]}"); members=${members%,}
for i in 0 1 2; do
  d="$WORK/n$i" a=${NODES[$i]}
  mkdir -p "$d/data"
  cat >"$d/my.cnf" <<CNF
[mariadbd]
user=mysql
datadir=$d/data
socket=$d/sock
pid-file=$d/pid
bind-address=$a
port=3306
log-error=$d/error.log
binlog_format=ROW
innodb_autoinc_lock_mode=2
innodb_buffer_pool_size=16M
max_connections=500
wsrep_on=ON
wsrep_provider=/usr/lib/galera/libgalera_smm.so
wsrep_cluster_name=weiche-bench
wsrep_cluster_address=gcomm://$members
wsrep_node_address=$a
wsrep_sst_method=rsync
wsrep_sst_receive_address=$a:4444
wsrep_provider_options="gmcast.listen_addr=tcp://$a:4567;ist.recv_addr=$a:4568;gcache.size=16M"
CNF
done
chown -R mysql:mysql "$WORK"/n*
mariadb-install-db --defaults-file="$WORK/n0/my.cnf" --auth-root-authentication-method=normal --skip-test-db >/dev/null
status() { mariadb --socket="$WORK/n$1/sock" -uroot -N -e "SHOW GLOBAL STATUS LIKE '$2'" 2>/dev/null | cut -f2; }
wait_synced() {
  for _ in $(seq 240); do [[ "$(status "$1" wsrep_local_state_comment)" == Synced ]] && return; sleep 0.5; done
  echo "node $1 did not sync" >&2; exit 1
}
mariadbd --defaults-file="$WORK/n0/my.cnf" --wsrep-new-cluster & PIDS+=($!)
wait_synced 0
for i in 1 2; do mariadbd --defaults-file="$WORK/n$i/my.cnf" & PIDS+=($!); done
wait_synced 1; wait_synced 2
mariadb --socket="$WORK/n0/sock" -uroot -e "CREATE USER 'weiche'@'%' IDENTIFIED BY 'bench-pw'"
printf '[client]\nuser = weiche\npassword = bench-pw\n' >"$WORK/galera.cnf"
echo "  cluster of $(status 0 wsrep_cluster_size) Synced"

# Every target address's port 3306 goes to one of the three nodes, in turn per connection.
nft -f - <<NFT
table ip weiche_galera_bench {
  chain out {
    type nat hook output priority -100;
    ip daddr 127.21.0.0/16 tcp dport 3306 dnat to numgen inc mod 3 map { 0 : ${NODES[0]}, 1 : ${NODES[1]}, 2 : ${NODES[2]} }
  }
}
NFT

python3 - "$TARGETS" "$WORK/zones/gal.test.toml" "$WORK/galera.cnf" "$TYPE" <<'PY'
import sys
n, out, cnf, kind = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
addrs = [f"127.21.{i // 250}.{i % 250 + 1}" for i in range(n)]
with open(out, "w") as f:
    f.write("records = '''\n$TTL 300\n@ SOA ns1 hm 1 3600 600 86400 300\n@ NS ns1\nns1 A 127.0.34.53\n'''\n")
    how = f'credentials_file = "{cnf}"' if kind == "galera" else 'port = 3306'
    f.write(f'[checks.g]\ntype = "{kind}"\n{how}\ninterval = "1s"\ntimeout = "500ms"\n')
    for p in range(0, n, 100):
        f.write(f"[pools.p{p // 100}]\ncheck = \"g\"\ntargets = [\n")
        for i, a in enumerate(addrs[p:p + 100]):
            f.write(f'  {{ address = "{a}", priority = {i % 3 + 1} }},\n')
        f.write("]\n")
PY

cat >"$WORK/weiche.toml" <<TOML
[server]
listen = ["$DNS"]
zones = "zones"
[api]
listen = "$API"
TOML
"$ROOT/target/release/weiche" serve --config "$WORK/weiche.toml" 2>"$WORK/weiche.log" &
SRV=$!
for _ in $(seq 300); do grep -q "weiche serving" "$WORK/weiche.log" && break; sleep 0.1; done
grep -E "first probe round|weiche serving" "$WORK/weiche.log" | sed 's/^/  /'
sleep 5   # let the start-up burst settle into the spread schedule
probes() { curl -s "http://$API/metrics" | awk -v r="$1" '$1 ~ "^weiche_probes_total" && $1 ~ "result=\""r"\"" {s+=$2} END {print s+0}'; }
hz=$(getconf CLK_TCK)
c0=$(awk '{print $14+$15}' /proc/$SRV/stat); t0=$(date +%s.%N); ok0=$(probes ok); f0=$(probes fail)
ab0=$(for i in 0 1 2; do status "$i" Aborted_connects; done | paste -sd+ | bc)
sleep "$SECONDS_"
c1=$(awk '{print $14+$15}' /proc/$SRV/stat); t1=$(date +%s.%N); ok1=$(probes ok); f1=$(probes fail)
ab1=$(for i in 0 1 2; do status "$i" Aborted_connects; done | paste -sd+ | bc)
rss=$(awk '/VmRSS/{print $2}' /proc/$SRV/status)
python3 - "$c0" "$c1" "$t0" "$t1" "$hz" "$TARGETS" "$rss" "$ok0" "$ok1" "$f0" "$f1" "$ab0" "$ab1" "$TYPE" <<'PY'
import sys
c0, c1, t0, t1, hz, n, rss, ok0, ok1, f0, f1, ab0, ab1 = sys.argv[1:14]
w = float(t1) - float(t0)
cpu = (float(c1) - float(c0)) / float(hz) / w
ok, fail = (int(ok1) - int(ok0)) / w, (int(f1) - int(f0)) / w
print(f"type={sys.argv[14]} targets={n} window_s={w:.1f} probes_per_s={ok + fail:.0f} passed_per_s={ok:.0f} failed_per_s={fail:.1f} "
      f"weiche_cpu_share_of_one_core={cpu:.3f} us_cpu_per_probe={cpu / max(ok + fail, 1) * 1e6:.0f} rss_mib={int(rss) / 1024:.0f} "
      f"aborted_connects_added={int(ab1) - int(ab0)}")
PY
grep -c "target down" "$WORK/weiche.log" | sed 's/^/  target down events (should be 0): /' || true
