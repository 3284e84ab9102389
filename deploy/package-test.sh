#!/usr/bin/env bash
# deploy/package-test.sh - builds the Debian package and tries it as an operator would, on this
# machine: as root, without a running systemd (CI's container). .ci/run runs it after the tests.
#
#  1. cargo deb (the release build, which bench/callgrind.sh then reuses);
#  2. dpkg -i: the weiche system user, /var/lib/weiche, the files and conffiles where they
#     belong, a stripped binary, the unit's user and capability lines, systemd-analyze verify;
#  3. the installed /usr/bin/weiche as the unit runs it: `weiche check` as the weiche user, then
#     `weiche serve` with the packaged configuration as the weiche user with nothing but
#     CAP_NET_BIND_SERVICE (what AmbientCapabilities= gives), on port 53 of a loopback address;
#     dig asks it for the packaged example zone; SIGTERM stops it. Without the capability it
#     must refuse port 53 and say how to grant it;
#  4. dpkg -r, then dpkg --purge: the binary, then the conffiles, the state and the user go;
#  5. the README's `cargo install --locked --path .` in a fresh clone, into a scratch --root,
#     sharing this checkout's target directory (so it reuses the dependencies' release build).
#
# Usage: deploy/package-test.sh        (root; refuses when a weiche package or user exists)
# Env:   WEICHE_PKG_ADDR (default 127.0.53.1): the loopback address it serves on, on port 53.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ADDR="${WEICHE_PKG_ADDR:-127.0.53.1}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
step() { echo "-- $*"; }
fail() { echo "error: package-test: $*" >&2; exit 1; }
since() { echo "$(($(date +%s) - $1)) s"; }

[[ $(id -u) == 0 ]] || fail "needs root (dpkg -i, a system user)"
if dpkg-query -W -f='${Status}' weiche 2>/dev/null | grep -q 'installed'; then
  fail "a weiche package is installed already; this test installs and purges its own (dpkg --purge weiche)"
fi
! getent passwd weiche >/dev/null || fail "a user weiche exists already; the package must make it"

# What it needs, installed when missing.
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
missing=()
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v dig >/dev/null || missing+=(dnsutils)
command -v setpriv >/dev/null || missing+=(util-linux)
command -v readelf >/dev/null || missing+=(binutils)
command -v file >/dev/null || missing+=(file)
command -v dpkg-shlibdeps >/dev/null || missing+=(dpkg-dev)
command -v adduser >/dev/null || missing+=(adduser)
command -v git >/dev/null || missing+=(git)
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "-- installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

WORK=$(mktemp -d /tmp/weiche-package.XXXXXX)
SERVER=""
cleanup() {
  [[ -z "$SERVER" ]] || kill "$SERVER" 2>/dev/null || true
  # Whatever failed, leave no package or user behind.
  if dpkg-query -W weiche >/dev/null 2>&1; then dpkg --purge weiche >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# 1. The package.
t=$(date +%s)
step "cargo deb --locked"
DEB=$(cargo deb --locked | tail -n 1)
[[ -f "$DEB" ]] || fail "cargo deb did not name the package it wrote: $DEB"
echo "$DEB: $(stat -c %s "$DEB") bytes, built in $(since "$t")"

# 2. Installed.
step "dpkg -i $(basename "$DEB")"
dpkg -i "$DEB" >/dev/null
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd weiche) || fail "no user weiche after dpkg -i"
sys_uid_max=$(awk '$1 == "SYS_UID_MAX" { print $2 }' /etc/login.defs 2>/dev/null)
(( uid < ${sys_uid_max:-999} + 1 )) || fail "weiche is uid $uid, not a system user"
[[ "$(getent group weiche | cut -d: -f3)" == "$gid" ]] || fail "weiche's group is not the group weiche"
[[ "$home" == /var/lib/weiche && "$shell" == */nologin ]] || fail "weiche has home $home and shell $shell"
echo "user weiche: uid $uid, gid $gid, home $home, shell $shell"
[[ "$(stat -c '%U:%G %a' /var/lib/weiche)" == "weiche:weiche 750" ]] ||
  fail "/var/lib/weiche is $(stat -c '%U:%G %a' /var/lib/weiche), not weiche:weiche 750"
for f in /usr/bin/weiche /usr/lib/systemd/system/weiche.service /etc/weiche/weiche.toml \
  /etc/weiche/zones/example.com.toml /usr/share/man/man8/weiche.8.gz /usr/share/doc/weiche/README.md \
  /usr/share/doc/weiche/copyright /usr/share/doc/weiche/LICENSE-MIT /usr/share/doc/weiche/LICENSE-APACHE; do
  [[ -f "$f" ]] || fail "$f is not installed"
done
conffiles=$(dpkg-query -W -f='${Conffiles}\n' weiche | awk 'NF { print $1 }' | sort | tr '\n' ' ')
[[ "$conffiles" == "/etc/weiche/weiche.toml /etc/weiche/zones/example.com.toml " ]] ||
  fail "the conffiles are: $conffiles"
echo "conffiles: $conffiles"
sections=$(readelf -S --wide /usr/bin/weiche)
! grep -qE ' \.(symtab|debug_[a-z]+) ' <<<"$sections" || fail "/usr/bin/weiche is not stripped: $(grep -oE '\.(symtab|debug_[a-z]+)' <<<"$sections" | tr '\n' ' ')"
file -b /usr/bin/weiche | grep -q ', stripped' || fail "file(1) says: $(file -b /usr/bin/weiche)"
echo "/usr/bin/weiche: $(stat -c %s /usr/bin/weiche) bytes, stripped (no .symtab, no .debug_*)"
unit=/usr/lib/systemd/system/weiche.service
for line in User=weiche AmbientCapabilities=CAP_NET_BIND_SERVICE CapabilityBoundingSet=CAP_NET_BIND_SERVICE \
  "ExecStartPre=/usr/bin/weiche check --config /etc/weiche/weiche.toml" \
  "ExecStart=/usr/bin/weiche serve --config /etc/weiche/weiche.toml"; do
  grep -qxF "$line" "$unit" || fail "$unit lacks the line $line"
done
step "systemd-analyze verify $unit"
# It exits 0 over an unknown key or a bad value (a warning, the line ignored): any word fails.
verify=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify: $verify"
[[ -z "$verify" ]] || fail "systemd-analyze verify warns: $verify"
man -l /usr/share/man/man8/weiche.8.gz >/dev/null 2>&1 || zcat /usr/share/man/man8/weiche.8.gz | grep -q '^\.TH WEICHE 8' ||
  fail "weiche(8) is not a man page"

# 3. Run as the unit runs it: its user, its one capability.
as_weiche=(setpriv --reuid weiche --regid weiche --init-groups)
step "weiche check, as weiche"
"${as_weiche[@]}" /usr/bin/weiche check --config /etc/weiche/weiche.toml
api_port=$(python3 -c "import socket; s=socket.socket(); s.bind(('$ADDR',0)); print(s.getsockname()[1])")
step "without CAP_NET_BIND_SERVICE, port 53 is refused with a hint"
if "${as_weiche[@]}" /usr/bin/weiche serve --config /etc/weiche/weiche.toml --listen "$ADDR:53" --api off \
  2>"$WORK/refused.log"; then
  fail "serve on port 53 without the capability started"
fi
grep -q "AmbientCapabilities=CAP_NET_BIND_SERVICE" "$WORK/refused.log" || fail "no hint: $(cat "$WORK/refused.log")"
step "weiche serve on $ADDR:53, as weiche with CAP_NET_BIND_SERVICE"
"${as_weiche[@]}" --inh-caps +net_bind_service --ambient-caps +net_bind_service \
  /usr/bin/weiche serve --config /etc/weiche/weiche.toml --listen "$ADDR:53" --api "$ADDR:$api_port" \
  2>"$WORK/serve.log" &
SERVER=$!
answer=""
for _ in $(seq 100); do
  kill -0 "$SERVER" 2>/dev/null || fail "weiche stopped: $(cat "$WORK/serve.log")"
  answer=$(dig @"$ADDR" -p 53 www.example.com A +short +tries=1 +time=1 2>/dev/null || true)
  [[ -z "$answer" ]] || break
  sleep 0.1
done
[[ "$answer" == 192.0.2.10 ]] || fail "dig www.example.com A answered '$answer'; log: $(cat "$WORK/serve.log")"
echo "dig @$ADDR -p 53 www.example.com A: $answer"
soa=$(dig @"$ADDR" -p 53 example.com SOA +tcp +short)
[[ "$soa" == "ns1.example.com. hostmaster.example.com. 1 3600 600 1209600 300" ]] || fail "SOA over TCP: $soa"
[[ "$(ps -o user= -p "$SERVER")" == weiche ]] || fail "weiche runs as $(ps -o user= -p "$SERVER")"
# Effective capabilities: CAP_NET_BIND_SERVICE (bit 10) alone.
caps=$(awk '/^CapEff:/ { print $2 }' "/proc/$SERVER/status")
[[ "$caps" == 0000000000000400 ]] || fail "weiche runs with capabilities $caps"
/usr/bin/weiche status --api "$ADDR:$api_port" | grep -q '^zone example.com\.' || fail "weiche status lists no example.com."
# The state file is written at start, and may come a moment after the first answer.
state=""
for _ in $(seq 50); do
  state=$(find /var/lib/weiche -type f)
  [[ -z "$state" ]] || break
  sleep 0.1
done
[[ -n "$state" && "$(stat -c %U $state | sort -u)" == weiche ]] || fail "no state file of weiche's in /var/lib/weiche"
kill -TERM "$SERVER"
wait "$SERVER" || fail "weiche exited $? on SIGTERM: $(cat "$WORK/serve.log")"
SERVER=""
echo "served as weiche with CapEff $caps, state in $(tr "\n" " " <<<"$state"); stopped cleanly on SIGTERM"

# 4. Removed, then purged.
step "dpkg -r weiche"
dpkg -r weiche >/dev/null
[[ ! -e /usr/bin/weiche && ! -e "$unit" ]] || fail "dpkg -r left the binary or the unit"
[[ -f /etc/weiche/weiche.toml ]] || fail "dpkg -r removed a conffile"
getent passwd weiche >/dev/null || fail "dpkg -r removed the user (only purge does)"
step "dpkg --purge weiche"
dpkg --purge weiche >/dev/null
for p in /etc/weiche /var/lib/weiche /usr/share/doc/weiche; do
  [[ ! -e "$p" ]] || fail "$p is left after the purge: $(find "$p" | head -5)"
done
! getent passwd weiche >/dev/null || fail "the user weiche is left after the purge"
! getent group weiche >/dev/null || fail "the group weiche is left after the purge"
! dpkg-query -W weiche >/dev/null 2>&1 || fail "dpkg still knows weiche"
echo "purged: no files, no user, no group"

# 5. The README's install line, in a fresh clone of what is committed.
t=$(date +%s)
line=$(grep -m1 -oE '^cargo install --locked --path \.' README.md) || fail "README has no cargo install line"
step "$line --root ... (fresh clone, target $TARGET)"
git clone -q "$ROOT" "$WORK/clone"
(cd "$WORK/clone" && CARGO_TARGET_DIR="$TARGET" $line --root "$WORK/root" --quiet)
"$WORK/root/bin/weiche" --version
"$WORK/root/bin/weiche" check --zones "$WORK/clone/zones" >/dev/null
echo "cargo install from a fresh clone: $(since "$t")"
echo "package-test: OK"
