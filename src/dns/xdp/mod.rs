//! AF_XDP fast path for UDP queries over IPv4 (opt-in: `server.xdp = "IFACE"` or `--xdp IFACE`).
//!
//! A small XDP program (assembled in `bpf.rs`, a few dozen BPF instructions) on the interface hands
//! every IPv4/UDP packet for one of our IPv4 listen addresses and ports to an AF_XDP socket, one
//! per receive queue. A thread per queue reads the queries straight from the shared memory
//! (UMEM), answers them from the snapshot like the UDP sockets do, and writes each answer with
//! its Ethernet, IPv4 and UDP headers into the query's own frame, which goes out through the
//! socket's TX ring. No `recvmmsg`, no routing lookup and no socket buffer per answer: on this
//! machine that halves the server's CPU per query (see BENCHMARKS.md).
//!
//! Everything the program does not match goes up the normal stack, where the UDP sockets still
//! answer: IPv6, IP options, fragments, VLAN tags, other ports. Zone transfers asked over UDP
//! and answers larger than the interface's MTU are sent through the listen address's UDP socket.
//! The program is attached through a BPF link, so it is gone when weiche exits, even on a crash.
//!
//! What an operator gives up, and must know (README, "XDP"):
//! - netfilter does not see these queries or answers (no firewall rule, no conntrack);
//! - an answer goes back to the MAC address its query came from (routing must be symmetric);
//! - it needs CAP_NET_ADMIN, CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_RAW. A setup step refused
//!   for want of one says which ones this process lacks and how to grant them ([`setup_hint`]).
//!
//! The kernel interface is used directly through `libc` (which defines the AF_XDP structures):
//! the four rings are a few lines each, and the BPF loader needs three `bpf(2)` commands.
//!
//! | file         | owns                                                                       |
//! |--------------|----------------------------------------------------------------------------|
//! | `mod.rs`     | [`start`]: a socket and a thread per receive queue, then the attach        |
//! | `bpf.rs`     | the XDP program, its socket map, the `bpf(2)` calls that load them         |
//! | `rings.rs`   | UMEM and the four rings shared with the kernel, one set per socket         |
//! | `frames.rs`  | Ethernet, IPv4 and UDP headers: checked coming in, turned around going out |
//! | `workers.rs` | the per-queue loop: frames in, `dns::service` answers out                  |

mod bpf;
mod frames;
mod rings;
mod workers;

use std::io;
use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tracing::info;

use crate::dns::service::Service;

pub use bpf::Attached;
use rings::Xsk;
use workers::XdpWorker;

/// `e` from the kernel, saying what was being done, and what to do about it where that is a
/// matter of privilege or of what a hardened unit leaves out ([`setup_hint`]).
fn err(what: &str, e: io::Error) -> io::Error {
    let hint = setup_hint(&e, effective_caps());
    io::Error::new(e.kind(), format!("{what}: {e}{hint}"))
}

fn check(ret: libc::c_int, what: &str) -> io::Result<libc::c_int> {
    if ret < 0 { Err(err(what, io::Error::last_os_error())) } else { Ok(ret) }
}

fn owned(fd: libc::c_int) -> OwnedFd {
    // SAFETY: fd was just returned by the kernel and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// The listen addresses the XDP path serves, and the UDP socket of each (for what it does not
/// send itself).
pub struct Plan {
    pub ifname: String,
    pub listen: Vec<(SocketAddrV4, UdpSocket)>,
}

/// The capabilities the AF_XDP path needs (numbers from linux/capability.h): the XSK map, the
/// program and its attach need CAP_NET_ADMIN and CAP_BPF, the AF_XDP sockets CAP_NET_RAW.
const NEEDED: [(u32, &str); 3] = [(12, "CAP_NET_ADMIN"), (13, "CAP_NET_RAW"), (CAP_BPF, "CAP_BPF")];
const CAP_BPF: u32 = 39;
/// Stands in for CAP_BPF (kernels before 5.8 know only this one).
const CAP_SYS_ADMIN: u32 = 21;

fn has_sys_admin(caps: u64) -> bool {
    caps & (1 << CAP_SYS_ADMIN) != 0
}

/// This process's effective capabilities (`CapEff` of /proc/self/status), if readable.
fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// The capabilities of [`NEEDED`] missing from `caps`.
fn missing(caps: u64) -> Vec<&'static str> {
    let has = |c: u32| caps & (1 << c) != 0 || (c == CAP_BPF && has_sys_admin(caps));
    NEEDED.iter().filter(|&&(c, _)| !has(c)).map(|&(_, name)| name).collect()
}

/// What to do about a setup step the kernel refused (`e` as the kernel gave it), when the
/// refusal is about privilege or about what a hardened unit leaves out; empty otherwise. `caps`:
/// this process's effective capabilities.
fn setup_hint(e: &io::Error, caps: Option<u64>) -> String {
    const DROP_IN: &str = "`systemctl edit weiche` and add the XDP drop-in that deploy/weiche.service shows \
         (CAP_NET_ADMIN CAP_NET_RAW CAP_BPF in AmbientCapabilities= and CapabilityBoundingSet=, AF_XDP in \
         RestrictAddressFamilies=, bpf in SystemCallFilter=, LimitMEMLOCK=infinity)";
    match e.raw_os_error() {
        Some(libc::EPERM) => {
            let all = NEEDED.map(|(_, n)| n).join(", ");
            let lacking = match caps.map(missing) {
                Some(m) if m.is_empty() => {
                    return format!(
                        ". The AF_XDP path needs {all}, and this process has them: something else refused \
                         it, such as a seccomp filter (a systemd unit's SystemCallFilter= must allow bpf) or a \
                         security module. Under systemd: {DROP_IN}"
                    );
                }
                Some(m) => format!("this process lacks {}", m.join(", ")),
                None => "this process's capabilities are unknown (no /proc/self/status)".to_string(),
            };
            format!(
                ". The AF_XDP path needs {all}; {lacking}. Under systemd: {DROP_IN}. Otherwise \
                 `setcap cap_net_bind_service,cap_net_admin,cap_net_raw,cap_bpf=+ep $(command -v weiche)`, or run \
                 it as root"
            )
        }
        Some(libc::EAFNOSUPPORT) => format!(
            ". AF_XDP sockets are not available: the kernel lacks CONFIG_XDP_SOCKETS, or a systemd unit's \
             RestrictAddressFamilies= leaves out AF_XDP. Under systemd: {DROP_IN}"
        ),
        // What registering the packet buffers (8 MiB a queue) answers beyond the locked-memory limit.
        Some(libc::ENOBUFS) => format!(
            ". The AF_XDP packet buffers (8 MiB per receive queue) are locked memory, more than RLIMIT_MEMLOCK \
             allows: raise it (ulimit -l) or grant CAP_IPC_LOCK. Under systemd: {DROP_IN}"
        ),
        _ => String::new(),
    }
}

fn sys(path: String) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// Loads the program, opens a socket per receive queue, starts a thread for each, then attaches
/// the program. The returned guard keeps it attached.
/// Each queue's thread answers with a `service()` of its own (its own counters; the rate
/// limiting table is shared).
pub fn start(
    plan: Plan,
    store: crate::model::snapshot::Store,
    service: impl Fn() -> Service,
    stop: Arc<AtomicBool>,
    threads: &mut Vec<std::thread::JoinHandle<()>>,
) -> io::Result<Attached> {
    let ifname = plan.ifname.clone();
    let ctx = |e: io::Error| io::Error::new(e.kind(), format!("XDP on {ifname}: {e}"));
    if plan.listen.is_empty() {
        return Err(ctx(io::Error::other("no IPv4 listen address to serve")));
    }
    let queues = std::fs::read_dir(format!("/sys/class/net/{ifname}/queues"))
        .map_err(|e| ctx(err("reading its queues", e)))?
        .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().starts_with("rx-")))
        .count()
        .max(1) as u32;
    let mtu: usize = sys(format!("/sys/class/net/{ifname}/mtu")).and_then(|s| s.parse().ok()).unwrap_or(1500);
    // ARPHRD_LOOPBACK
    let loopback = sys(format!("/sys/class/net/{ifname}/type")).as_deref() == Some("772");
    let loopback_addr = plan.listen.iter().any(|(a, _)| a.ip().is_loopback() || a.ip().is_unspecified());
    let localnet = |i: &str| sys(format!("/proc/sys/net/ipv4/conf/{i}/route_localnet")).as_deref() == Some("1");
    if loopback && loopback_addr && !localnet(&ifname) && !localnet("all") {
        return Err(ctx(io::Error::other(format!(
            "answers to 127.0.0.0/8 sent through AF_XDP are routed like packets from outside and dropped as \
             martians; set net.ipv4.conf.{ifname}.route_localnet=1 or listen on another address"
        ))));
    }
    let addrs: Vec<SocketAddrV4> = plan.listen.iter().map(|(a, _)| *a).collect();
    let mut attached = Attached::load(&ifname, &addrs, queues).map_err(ctx)?;
    let fallback: Arc<Vec<(SocketAddrV4, UdpSocket)>> = Arc::new(plan.listen);
    for q in 0..queues {
        let xsk = Xsk::open(attached.ifindex, q).map_err(ctx)?;
        attached.add_socket(q, xsk.fd.as_raw_fd()).map_err(ctx)?;
        let w = XdpWorker {
            store: store.clone(),
            service: service(),
            // An answer larger than the frame or the link goes the kernel's way.
            mtu,
            udp_sum: !loopback,
            fallback: fallback.clone(),
        };
        let stop = stop.clone();
        let name = format!("xdp-{ifname}-{q}");
        threads.push(std::thread::Builder::new().name(name).spawn(move || w.run(xsk, &stop))?);
    }
    attached.attach().map_err(ctx)?;
    info!(interface = %ifname, queues, listen = ?addrs, "XDP fast path attached");
    Ok(attached)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: u64 = 1 << 12;
    const RAW: u64 = 1 << 13;
    const BPF: u64 = 1 << 39;
    const SYS_ADMIN: u64 = 1 << 21;

    #[test]
    fn missing_names_each_capability_absent_and_sys_admin_stands_in_for_bpf() {
        assert_eq!(missing(0), ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_BPF"]);
        assert_eq!(missing(ADMIN | BPF), ["CAP_NET_RAW"]);
        assert_eq!(missing(ADMIN | RAW), ["CAP_BPF"]);
        assert_eq!(missing(ADMIN | RAW | SYS_ADMIN), Vec::<&str>::new());
        assert_eq!(missing(ADMIN | RAW | BPF), Vec::<&str>::new());
        // Root in a container: every bit up to the kernel's last capability.
        assert_eq!(missing(0x0000_01ff_feff_ffff), Vec::<&str>::new());
    }

    #[test]
    fn a_refusal_for_want_of_privilege_says_what_is_missing_and_how_to_grant_it() {
        let eperm = io::Error::from_raw_os_error(libc::EPERM);
        let h = setup_hint(&eperm, Some(ADMIN));
        assert!(h.contains("this process lacks CAP_NET_RAW, CAP_BPF."), "{h}");
        assert!(h.contains("systemctl edit weiche") && h.contains("AmbientCapabilities="), "{h}");
        assert!(h.contains("setcap cap_net_bind_service,cap_net_admin,cap_net_raw,cap_bpf=+ep"), "{h}");
        let h = setup_hint(&eperm, Some(ADMIN | RAW | BPF));
        assert!(h.contains("this process has them") && h.contains("SystemCallFilter="), "{h}");
        assert!(setup_hint(&eperm, None).contains("capabilities are unknown"));
        let h = setup_hint(&io::Error::from_raw_os_error(libc::EAFNOSUPPORT), Some(0));
        assert!(h.contains("RestrictAddressFamilies=") && h.contains("AF_XDP"), "{h}");
        let h = setup_hint(&io::Error::from_raw_os_error(libc::ENOBUFS), Some(0));
        assert!(h.contains("LimitMEMLOCK=infinity") && h.contains("CAP_IPC_LOCK"), "{h}");
        // Not a matter of privilege: the kernel's words alone (EACCES from bpf is the verifier).
        for errno in [libc::EACCES, libc::ENODEV, libc::EBUSY, libc::EINVAL] {
            assert_eq!(setup_hint(&io::Error::from_raw_os_error(errno), Some(0)), "", "{errno}");
        }
    }
}
