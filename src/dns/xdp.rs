//! AF_XDP fast path for UDP queries over IPv4 (opt-in: `server.xdp = "IFACE"` or `--xdp IFACE`).
//!
//! A small XDP program (assembled below, a few dozen BPF instructions) on the interface hands
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
//! - it needs CAP_NET_ADMIN, CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_RAW.
//!
//! The kernel interface is used directly through `libc` (which defines the AF_XDP structures):
//! the four rings are a few lines each, and the BPF loader needs three `bpf(2)` commands.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use tracing::{debug, info};

use crate::dns::service::{Reply, Service};
use crate::dns::stats;

/// Bytes per UMEM frame (one packet each).
const FRAME: u64 = 4096;
/// Frames per queue: half can wait in the fill ring, half be on their way out.
const FRAMES: u32 = 2048;
/// Entries per ring.
const RING: u32 = 1024;
/// Packets taken from the RX ring per round.
const BATCH: u32 = 64;
/// Ethernet (14) + IPv4 without options (20) + UDP (8).
const HEADERS: usize = 42;

fn err(what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn check(ret: libc::c_int, what: &str) -> io::Result<libc::c_int> {
    if ret < 0 { Err(err(what, io::Error::last_os_error())) } else { Ok(ret) }
}

// ---- bpf(2) ---------------------------------------------------------------------------------

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
const XDP_PASS: i32 = 2;

#[repr(C)]
struct MapCreate {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
}

#[repr(C)]
struct MapUpdate {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
struct LinkCreate {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

/// `bpf(cmd, attr)`; the kernel zero-fills what `attr` does not cover.
fn bpf<T>(cmd: libc::c_long, attr: &T, what: &str) -> io::Result<libc::c_int> {
    // SAFETY: attr is a live, initialised #[repr(C)] prefix of `union bpf_attr`.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *const T, size_of::<T>()) };
    check(r as libc::c_int, what)
}

fn owned(fd: libc::c_int) -> OwnedFd {
    // SAFETY: fd was just returned by the kernel and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// One BPF instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: dst | (src << 4), off, imm }
}

// Opcodes used below (class | op | source).
const MOV64_X: u8 = 0xbf;
const MOV64_K: u8 = 0xb7;
const ADD64_K: u8 = 0x07;
const AND32_K: u8 = 0x54;
const LDX_W: u8 = 0x61;
const LDX_H: u8 = 0x69;
const LDX_B: u8 = 0x71;
const JGT_X: u8 = 0x2d;
const JNE32_K: u8 = 0x56;
const JA: u8 = 0x05;
const LD_IMM64: u8 = 0x18;
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;
const PSEUDO_MAP_FD: u8 = 1;

/// What a native load of these network-order bytes from the packet yields.
fn ne16(v: u16) -> i32 {
    u16::from_ne_bytes(v.to_be_bytes()) as i32
}

/// The XDP program: IPv4 (no options, not a fragment) UDP to one of `listen` goes to the XSK of
/// its receive queue (`map_fd`); everything else, and a queue without a socket, passes.
fn program(listen: &[SocketAddrV4], map_fd: RawFd) -> Vec<Insn> {
    // Jumps are written with the index of their target and made relative at the end.
    const PASS: i16 = -1;
    const REDIRECT: i16 = -2;
    let mut p = vec![
        insn(MOV64_X, 6, 1, 0, 0), // r6 = ctx
        insn(LDX_W, 2, 6, 0, 0),   // r2 = data
        insn(LDX_W, 3, 6, 4, 0),   // r3 = data_end
        insn(MOV64_X, 4, 2, 0, 0), // r4 = data
        insn(ADD64_K, 4, 0, 0, HEADERS as i32),
        insn(JGT_X, 4, 3, PASS, 0), // too short
        insn(LDX_H, 5, 2, 12, 0),   // ethertype
        insn(JNE32_K, 5, 0, PASS, ne16(0x0800)),
        insn(LDX_B, 5, 2, 14, 0), // version, header length
        insn(JNE32_K, 5, 0, PASS, 0x45),
        insn(LDX_B, 5, 2, 23, 0), // protocol
        insn(JNE32_K, 5, 0, PASS, 17),
        insn(LDX_H, 5, 2, 20, 0), // flags, fragment offset
        insn(AND32_K, 5, 0, 0, ne16(0x3fff)),
        insn(JNE32_K, 5, 0, PASS, 0), // a fragment
        insn(LDX_H, 7, 2, 36, 0),     // UDP destination port
        insn(LDX_W, 8, 2, 30, 0),     // IPv4 destination
    ];
    for a in listen {
        let next = (p.len() + if a.ip().is_unspecified() { 2 } else { 3 }) as i16;
        p.push(insn(JNE32_K, 7, 0, next, ne16(a.port())));
        if !a.ip().is_unspecified() {
            p.push(insn(JNE32_K, 8, 0, next, u32::from_ne_bytes(a.ip().octets()) as i32));
        }
        p.push(insn(JA, 0, 0, REDIRECT, 0));
    }
    p.push(insn(JA, 0, 0, PASS, 0));
    let redirect = p.len() as i16;
    p.extend([
        insn(LDX_W, 2, 6, 16, 0), // rx_queue_index
        insn(LD_IMM64, 1, PSEUDO_MAP_FD, 0, map_fd),
        insn(0, 0, 0, 0, 0),
        insn(MOV64_K, 3, 0, 0, XDP_PASS), // when the queue has no socket
        insn(CALL, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
        insn(EXIT, 0, 0, 0, 0),
    ]);
    let pass = p.len() as i16;
    p.extend([insn(MOV64_K, 0, 0, 0, XDP_PASS), insn(EXIT, 0, 0, 0, 0)]);
    for (i, ins) in p.iter_mut().enumerate() {
        let jump = matches!(ins.code, JGT_X | JNE32_K | JA);
        if jump {
            let target = match ins.off {
                PASS => pass,
                REDIRECT => redirect,
                t => t,
            };
            ins.off = target - i as i16 - 1;
        }
    }
    p
}

/// The XDP program on an interface, with its socket map. Dropping it detaches the program.
pub struct Attached {
    map: OwnedFd,
    prog: OwnedFd,
    link: Option<OwnedFd>,
    ifindex: u32,
    ifname: String,
}

impl Attached {
    fn load(ifname: &str, listen: &[SocketAddrV4], queues: u32) -> io::Result<Attached> {
        let c = std::ffi::CString::new(ifname).map_err(|_| io::Error::other("interface name holds a NUL"))?;
        // SAFETY: c is a valid C string.
        let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
        if ifindex == 0 {
            return Err(err(&format!("no interface {ifname:?}"), io::Error::last_os_error()));
        }
        let map =
            MapCreate { map_type: BPF_MAP_TYPE_XSKMAP, key_size: 4, value_size: 4, max_entries: queues, map_flags: 0 };
        let map = owned(bpf(BPF_MAP_CREATE, &map, "bpf(BPF_MAP_CREATE, XSKMAP)")?);
        let insns = program(listen, map.as_raw_fd());
        let license = c"Dual MIT/GPL";
        let mut name = [0u8; 16];
        name[..11].copy_from_slice(b"weiche_xdp\0");
        let mut load = ProgLoad {
            prog_type: BPF_PROG_TYPE_XDP,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: 0,
            log_size: 0,
            log_buf: 0,
            kern_version: 0,
            prog_flags: 0,
            prog_name: name,
            prog_ifindex: 0,
            expected_attach_type: BPF_XDP,
        };
        let prog = match bpf(BPF_PROG_LOAD, &load, "bpf(BPF_PROG_LOAD)") {
            Ok(fd) => owned(fd),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(io::Error::new(e.kind(), format!("{e} (needs CAP_BPF and CAP_NET_ADMIN, or root)")));
            }
            Err(e) => {
                // Once more with the verifier's log, for the message.
                let mut log = vec![0u8; 1 << 16];
                load.log_level = 1;
                load.log_size = log.len() as u32;
                load.log_buf = log.as_mut_ptr() as u64;
                let _ = bpf(BPF_PROG_LOAD, &load, "");
                let text = String::from_utf8_lossy(&log[..log.iter().position(|&b| b == 0).unwrap_or(0)]);
                let tail: Vec<&str> = text.lines().rev().take(3).collect();
                return Err(io::Error::new(e.kind(), format!("{e}; verifier: {}", tail.join(" / "))));
            }
        };
        Ok(Attached { map, prog, link: None, ifindex, ifname: ifname.to_string() })
    }

    fn add_socket(&self, queue: u32, xsk: RawFd) -> io::Result<()> {
        let value = xsk as u32;
        let update = MapUpdate {
            map_fd: self.map.as_raw_fd() as u32,
            _pad: 0,
            key: &queue as *const u32 as u64,
            value: &value as *const u32 as u64,
            flags: 0,
        };
        bpf(BPF_MAP_UPDATE_ELEM, &update, "bpf(BPF_MAP_UPDATE_ELEM)").map(drop)
    }

    /// Attaches the program: in the driver when it supports XDP, else in the generic path.
    fn attach(&mut self) -> io::Result<()> {
        let link = LinkCreate {
            prog_fd: self.prog.as_raw_fd() as u32,
            target_ifindex: self.ifindex,
            attach_type: BPF_XDP,
            flags: 0,
        };
        let fd = bpf(BPF_LINK_CREATE, &link, "attaching the XDP program (bpf(BPF_LINK_CREATE))").map_err(|e| {
            if e.kind() == io::ErrorKind::ResourceBusy {
                io::Error::new(
                    e.kind(),
                    format!(
                        "{e}: another XDP program is attached to {} (`ip link show {}` names it)",
                        self.ifname, self.ifname
                    ),
                )
            } else {
                e
            }
        })?;
        self.link = Some(owned(fd));
        Ok(())
    }
}

// ---- AF_XDP rings ---------------------------------------------------------------------------

/// A mapping that is unmapped on drop.
struct Mmap {
    ptr: *mut u8,
    len: usize,
}

impl Mmap {
    /// Maps `len` bytes of `fd` at `offset`, or anonymous memory when `fd` is -1.
    fn new(fd: RawFd, offset: libc::off_t, len: usize, what: &str) -> io::Result<Mmap> {
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let flags =
            libc::MAP_POPULATE | if fd < 0 { libc::MAP_PRIVATE | libc::MAP_ANONYMOUS } else { libc::MAP_SHARED };
        // SAFETY: a fresh mapping; nothing else refers to it.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, offset) };
        if ptr == libc::MAP_FAILED {
            return Err(err(what, io::Error::last_os_error()));
        }
        Ok(Mmap { ptr: ptr.cast(), len })
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from mmap and are unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// One ring shared with the kernel: free-running producer and consumer indices, descriptors of
/// type `T`. We are the producer of the fill and TX rings and the consumer of RX and completion.
struct Ring<T> {
    _map: Mmap,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    descs: *mut T,
    /// Our copy of the index we own (producer or consumer).
    local: u32,
}

impl<T: Copy> Ring<T> {
    fn map(fd: RawFd, off: &libc::xdp_ring_offset, pgoff: u64, what: &str) -> io::Result<Ring<T>> {
        let len = off.desc as usize + RING as usize * size_of::<T>();
        let map = Mmap::new(fd, pgoff as libc::off_t, len, what)?;
        // SAFETY: the offsets come from XDP_MMAP_OFFSETS and lie inside the mapping.
        unsafe {
            let at = |o: u64| map.ptr.add(o as usize);
            Ok(Ring {
                producer: at(off.producer).cast(),
                consumer: at(off.consumer).cast(),
                flags: at(off.flags).cast(),
                descs: at(off.desc).cast(),
                local: 0,
                _map: map,
            })
        }
    }

    fn index(&self, which: *const AtomicU32) -> &AtomicU32 {
        // SAFETY: the pointer is into our live mapping, and aligned (the kernel lays it out).
        unsafe { &*which }
    }

    fn needs_wakeup(&self) -> bool {
        self.index(self.flags).load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    // Consumer side.
    fn ready(&self) -> u32 {
        self.index(self.producer).load(Ordering::Acquire).wrapping_sub(self.local)
    }
    fn read(&self, i: u32) -> T {
        // SAFETY: the index is masked into the ring.
        unsafe { self.descs.add((self.local.wrapping_add(i) & (RING - 1)) as usize).read() }
    }
    fn release(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        self.index(self.consumer).store(self.local, Ordering::Release);
    }

    // Producer side.
    fn room(&self) -> u32 {
        RING - self.local.wrapping_sub(self.index(self.consumer).load(Ordering::Acquire))
    }
    fn write(&mut self, i: u32, d: T) {
        // SAFETY: the index is masked into the ring.
        unsafe { self.descs.add((self.local.wrapping_add(i) & (RING - 1)) as usize).write(d) }
    }
    fn submit(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        self.index(self.producer).store(self.local, Ordering::Release);
    }
    /// All we produced has been taken by the kernel.
    fn drained(&self) -> bool {
        self.index(self.consumer).load(Ordering::Acquire) == self.local
    }
}

/// One AF_XDP socket on one queue, with its own UMEM.
struct Xsk {
    fd: OwnedFd,
    umem: Mmap,
    fill: Ring<u64>,
    comp: Ring<u64>,
    rx: Ring<libc::xdp_desc>,
    tx: Ring<libc::xdp_desc>,
    /// Frames (their base addresses) that are ours.
    free: Vec<u64>,
    /// Copy mode: the kernel sends what is on the TX ring only inside `sendto`.
    copy: bool,
}

// SAFETY: the rings and UMEM are used by the one thread that owns the Xsk.
unsafe impl Send for Xsk {}

fn setsockopt<T>(fd: RawFd, opt: libc::c_int, v: &T, what: &str) -> io::Result<()> {
    // SAFETY: v is a live value of the size passed.
    let r = unsafe { libc::setsockopt(fd, libc::SOL_XDP, opt, (v as *const T).cast(), size_of::<T>() as u32) };
    check(r, what).map(drop)
}

fn getsockopt<T>(fd: RawFd, opt: libc::c_int, v: &mut T, what: &str) -> io::Result<()> {
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: v is a live value of the size passed.
    let r = unsafe { libc::getsockopt(fd, libc::SOL_XDP, opt, (v as *mut T).cast(), &mut len) };
    check(r, what).map(drop)
}

impl Xsk {
    fn open(ifindex: u32, queue: u32) -> io::Result<Xsk> {
        // SAFETY: plain socket(2).
        let fd = owned(check(
            unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) },
            "socket(AF_XDP)",
        )?);
        let raw = fd.as_raw_fd();
        let umem = Mmap::new(-1, 0, (FRAMES as u64 * FRAME) as usize, "mmap(UMEM)")?;
        let reg = libc::xdp_umem_reg {
            addr: umem.ptr as u64,
            len: umem.len as u64,
            chunk_size: FRAME as u32,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(raw, libc::XDP_UMEM_REG, &reg, "XDP_UMEM_REG")?;
        for opt in [libc::XDP_UMEM_FILL_RING, libc::XDP_UMEM_COMPLETION_RING, libc::XDP_RX_RING, libc::XDP_TX_RING] {
            setsockopt(raw, opt, &RING, "setting an XDP ring's size")?;
        }
        // SAFETY: an all-zero xdp_mmap_offsets is valid; the kernel fills it.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        getsockopt(raw, libc::XDP_MMAP_OFFSETS, &mut off, "XDP_MMAP_OFFSETS")?;
        let fill = Ring::map(raw, &off.fr, libc::XDP_UMEM_PGOFF_FILL_RING, "mmap(fill ring)")?;
        let comp = Ring::map(raw, &off.cr, libc::XDP_UMEM_PGOFF_COMPLETION_RING, "mmap(completion ring)")?;
        let rx = Ring::map(raw, &off.rx, libc::XDP_PGOFF_RX_RING as u64, "mmap(RX ring)")?;
        let tx = Ring::map(raw, &off.tx, libc::XDP_PGOFF_TX_RING as u64, "mmap(TX ring)")?;
        let mut xsk =
            Xsk { fd, umem, fill, comp, rx, tx, free: (0..FRAMES as u64).map(|i| i * FRAME).collect(), copy: true };
        xsk.refill();
        // SAFETY: an all-zero sockaddr_xdp is valid.
        let mut sa: libc::sockaddr_xdp = unsafe { std::mem::zeroed() };
        sa.sxdp_family = libc::AF_XDP as u16;
        sa.sxdp_flags = libc::XDP_USE_NEED_WAKEUP;
        sa.sxdp_ifindex = ifindex;
        sa.sxdp_queue_id = queue;
        // SAFETY: sa is a live sockaddr_xdp of the size passed.
        let r = unsafe {
            libc::bind(raw, (&sa as *const libc::sockaddr_xdp).cast(), size_of::<libc::sockaddr_xdp>() as u32)
        };
        check(r, &format!("binding the AF_XDP socket to queue {queue}"))?;
        let mut opts = libc::xdp_options { flags: 0 };
        let zerocopy = getsockopt(raw, libc::XDP_OPTIONS, &mut opts, "XDP_OPTIONS").is_ok()
            && opts.flags & libc::XDP_OPTIONS_ZEROCOPY != 0;
        xsk.copy = !zerocopy;
        Ok(xsk)
    }

    /// Frames the kernel has sent are ours again.
    fn reap(&mut self) {
        let n = self.comp.ready();
        for i in 0..n {
            let addr = self.comp.read(i);
            self.free.push(addr & !(FRAME - 1));
        }
        self.comp.release(n);
    }

    /// Free frames go to the fill ring, for the kernel to receive into.
    fn refill(&mut self) {
        let n = self.fill.room().min(self.free.len() as u32);
        for i in 0..n {
            let f = self.free.pop().expect("counted");
            self.fill.write(i, f);
        }
        self.fill.submit(n);
    }

    /// Makes the kernel send what is on the TX ring (in copy mode it sends in the system call).
    fn kick(&mut self) {
        for _ in 0..64 {
            if self.tx.drained() || !(self.copy || self.tx.needs_wakeup()) {
                return;
            }
            // SAFETY: a zero-length sendto on our socket.
            let r = unsafe {
                libc::sendto(self.fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0)
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::EINTR) => self.reap(),
                    _ => {
                        debug!(error = %e, "AF_XDP send failed");
                        return;
                    }
                }
            }
        }
    }

    fn wait(&self, timeout_ms: i32) {
        let mut p = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one live pollfd.
        unsafe { libc::poll(&mut p, 1, timeout_ms) };
    }
}

/// `len` bytes of the UMEM at `addr`.
///
/// # Safety
/// The caller must own the frame (taken from RX, not yet on TX or in the fill ring) while it
/// uses the slice, and the UMEM must outlive it.
unsafe fn frame<'a>(umem: &(*mut u8, usize), addr: u64, len: usize) -> &'a mut [u8] {
    assert!(addr as usize + len <= umem.1);
    // SAFETY: inside the UMEM; ownership as the caller promised.
    unsafe { std::slice::from_raw_parts_mut(umem.0.add(addr as usize), len) }
}

// ---- packets --------------------------------------------------------------------------------

/// Internet checksum: the ones' complement sum of `data` as 16-bit words, added to `sum`.
fn sum16(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        sum += (*last as u32) << 8;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The sum of the UDP pseudo-header.
fn pseudo(src: &[u8], dst: &[u8], udp_len: usize) -> u32 {
    sum16(sum16(17 + udp_len as u32, src), dst)
}

/// Where a query sits in a frame, once its headers have been checked.
#[derive(Debug, PartialEq, Eq)]
struct Parsed {
    /// The DNS message: `HEADERS..HEADERS + len`.
    len: usize,
    src: SocketAddrV4,
    /// Where it was sent: one of our listen addresses.
    dst: SocketAddrV4,
}

/// Checks the Ethernet, IPv4 and UDP headers of a received frame (lengths, checksums); None for
/// anything that must not be answered. `udp_sum`: verify the UDP checksum. Not on loopback,
/// where the kernel leaves it unfinished (the sender's "offload") and nothing can corrupt it.
fn parse(f: &[u8], udp_sum: bool) -> Option<Parsed> {
    if f.len() < HEADERS || f[12..14] != [0x08, 0x00] || f[14] != 0x45 || f[23] != 17 {
        return None;
    }
    let ip = &f[14..];
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    if total < 28 || total > ip.len() || fold(sum16(0, &ip[..20])) != 0xffff {
        return None;
    }
    let udp = &ip[20..total];
    let udp_len = u16::from_be_bytes([udp[4], udp[5]]) as usize;
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    if udp_len < 8 || udp_len > udp.len() || sport == 0 {
        return None;
    }
    if udp_sum
        && udp[6..8] != [0, 0]
        && fold(sum16(pseudo(&ip[12..16], &ip[16..20], udp_len), &udp[..udp_len])) != 0xffff
    {
        return None;
    }
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    Some(Parsed { len: udp_len - 8, src: SocketAddrV4::new(src, sport), dst: SocketAddrV4::new(dst, dport) })
}

/// Turns the frame holding a query (headers as received) into the answer `dns`: addresses and
/// ports swapped, lengths and checksums new, DF set. Returns the frame's new length.
fn answer_in_place(f: &mut [u8], dns: &[u8]) -> usize {
    let mut mac = [0u8; 12];
    mac[..6].copy_from_slice(&f[6..12]);
    mac[6..].copy_from_slice(&f[..6]);
    f[..12].copy_from_slice(&mac);
    let total = 28 + dns.len();
    let (src, dst): ([u8; 4], [u8; 4]) = (f[30..34].try_into().unwrap(), f[26..30].try_into().unwrap());
    let ip = &mut f[14..34];
    ip[1] = 0; // TOS
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[4..8].copy_from_slice(&[0, 0, 0x40, 0]); // id 0, DF
    ip[8] = 64;
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let c = !fold(sum16(0, ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let (sport, dport) = ([f[36], f[37]], [f[34], f[35]]);
    let udp_len = 8 + dns.len();
    f[34..36].copy_from_slice(&sport);
    f[36..38].copy_from_slice(&dport);
    f[38..40].copy_from_slice(&(udp_len as u16).to_be_bytes());
    f[40..42].copy_from_slice(&[0, 0]);
    f[HEADERS..HEADERS + dns.len()].copy_from_slice(dns);
    let c = match !fold(sum16(pseudo(&src, &dst, udp_len), &f[34..HEADERS + dns.len()])) {
        0 => 0xffff,
        c => c,
    };
    f[40..42].copy_from_slice(&c.to_be_bytes());
    HEADERS + dns.len()
}

// ---- the workers ----------------------------------------------------------------------------

/// The listen addresses the XDP path serves, and the UDP socket of each (for what it does not
/// send itself).
pub struct Plan {
    pub ifname: String,
    pub listen: Vec<(SocketAddrV4, UdpSocket)>,
}

fn sys(path: String) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// Loads the program, opens a socket per receive queue, starts a thread for each, then attaches
/// the program. The returned guard keeps it attached.
pub fn start(
    plan: Plan,
    store: crate::model::snapshot::Store,
    payload: u16,
    transfer: Arc<crate::config::Transfer>,
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
            service: Service::new(payload, transfer.clone(), stats::counters(stats::Transport::Xdp)),
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

struct XdpWorker {
    store: crate::model::snapshot::Store,
    service: Service,
    mtu: usize,
    udp_sum: bool,
    fallback: Arc<Vec<(SocketAddrV4, UdpSocket)>>,
}

impl XdpWorker {
    fn run(&self, mut x: Xsk, stop: &AtomicBool) {
        let mut out = Vec::with_capacity(FRAME as usize);
        let mut special = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            x.reap();
            x.refill();
            let n = x.rx.ready().min(BATCH);
            if n == 0 {
                x.wait(200);
                continue;
            }
            self.round(&mut x, n, &mut out, &mut special);
        }
    }

    /// Answers `n` received frames: answers go on the TX ring, the rest of the frames back to
    /// the free list.
    #[inline(never)]
    fn round(&self, x: &mut Xsk, n: u32, out: &mut Vec<u8>, special: &mut Vec<Vec<u8>>) {
        let snap = self.store.load();
        let mut sent = 0;
        let tx_room = x.tx.room();
        let umem = (x.umem.ptr, x.umem.len);
        for i in 0..n {
            let d = x.rx.read(i);
            let base = d.addr & !(FRAME - 1);
            let room = (base + FRAME - d.addr) as usize;
            // SAFETY: this frame came from the RX ring and is ours until it goes to TX or free.
            let f = unsafe { frame(&umem, d.addr, room) };
            let Some(p) = parse(&f[..d.len as usize], self.udp_sum) else {
                x.free.push(base);
                continue;
            };
            let msg = &f[HEADERS..HEADERS + p.len];
            out.clear();
            match self.service.handle(&snap, msg, false, || Some((*p.src.ip()).into()), out, special) {
                Reply::Answer if !out.is_empty() => {}
                Reply::Answer | Reply::Drop => {
                    x.free.push(base);
                    continue;
                }
                Reply::Messages => {
                    // Rare, and possibly several messages: the kernel's socket sends them.
                    for m in special.drain(..) {
                        self.send_slow(p.dst, p.src, &m);
                    }
                    x.free.push(base);
                    continue;
                }
            }
            if HEADERS + out.len() > room.min(self.mtu + 14) || sent == tx_room {
                self.send_slow(p.dst, p.src, out);
                x.free.push(base);
                continue;
            }
            let len = answer_in_place(f, out);
            x.tx.write(sent, libc::xdp_desc { addr: d.addr, len: len as u32, options: 0 });
            sent += 1;
        }
        drop(snap);
        x.rx.release(n);
        x.tx.submit(sent);
        x.kick();
    }

    /// Sends through the listen address's UDP socket (the kernel's path).
    fn send_slow(&self, local: SocketAddrV4, to: SocketAddrV4, msg: &[u8]) {
        let sock = self
            .fallback
            .iter()
            .find(|(a, _)| *a == local)
            .or_else(|| self.fallback.iter().find(|(a, _)| a.port() == local.port()));
        if let Some((_, s)) = sock
            && let Err(e) = s.send_to(msg, SocketAddr::V4(to))
        {
            debug!(error = %e, "UDP send failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query frame as a client on 10.0.0.2:4242 would send it to 10.0.0.1:53.
    fn frame(dns: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; HEADERS + dns.len()];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[12..14].copy_from_slice(&[8, 0]);
        let total = (28 + dns.len()) as u16;
        let ip = [0x45, 0, (total >> 8) as u8, total as u8, 0x12, 0x34, 0, 0, 64, 17, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1];
        f[14..34].copy_from_slice(&ip);
        let c = !fold(sum16(0, &f[14..34]));
        f[24..26].copy_from_slice(&c.to_be_bytes());
        let ulen = (8 + dns.len()) as u16;
        f[34..42].copy_from_slice(&[0x10, 0x92, 0, 53, (ulen >> 8) as u8, ulen as u8, 0, 0]);
        f[42..].copy_from_slice(dns);
        let c = !fold(sum16(pseudo(&[10, 0, 0, 2], &[10, 0, 0, 1], ulen as usize), &f[34..]));
        f[40..42].copy_from_slice(&c.to_be_bytes());
        f
    }

    #[test]
    fn parses_a_query_and_checks_its_checksums() {
        let f = frame(b"hello, dns");
        let want = Parsed { len: 10, src: "10.0.0.2:4242".parse().unwrap(), dst: "10.0.0.1:53".parse().unwrap() };
        assert_eq!(parse(&f, true), Some(want));
        // A flipped payload bit breaks the UDP checksum; a flipped address the IP one.
        for at in [45, 28] {
            let mut g = f.clone();
            g[at] ^= 1;
            assert_eq!(parse(&g, true), None, "byte {at}");
        }
        // No UDP checksum (zero) is allowed over IPv4.
        let mut g = f.clone();
        g[40..42].copy_from_slice(&[0, 0]);
        g[45] ^= 1;
        assert!(parse(&g, true).is_some());
    }

    #[test]
    fn refuses_what_it_must_not_answer() {
        let f = frame(b"hello, dns");
        let short = &f[..41];
        assert_eq!(parse(short, true), None);
        let mut options = f.clone();
        options[14] = 0x46;
        assert_eq!(parse(&options, true), None);
        let mut port0 = f.clone();
        port0[34..36].copy_from_slice(&[0, 0]);
        port0[40..42].copy_from_slice(&[0, 0]);
        assert_eq!(parse(&port0, true), None);
        // An IP length beyond the frame, a UDP length beyond the IP packet.
        let mut long = f.clone();
        long[16..18].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(parse(&long, true), None);
        let mut ulong = f.clone();
        ulong[38..40].copy_from_slice(&100u16.to_be_bytes());
        ulong[40..42].copy_from_slice(&[0, 0]);
        assert_eq!(parse(&ulong, true), None);
    }

    #[test]
    fn answers_in_place_with_swapped_addresses_and_valid_checksums() {
        let mut f = frame(b"query");
        f.resize(200, 0);
        let len = answer_in_place(&mut f, b"a longer answer");
        let a = &f[..len];
        assert_eq!(len, HEADERS + 15);
        assert_eq!(&a[..6], &[2, 0, 0, 0, 0, 2]);
        assert_eq!(&a[6..12], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&a[26..34], &[10, 0, 0, 1, 10, 0, 0, 2]);
        assert_eq!(&a[34..38], &[0, 53, 0x10, 0x92]);
        assert_eq!(&a[20..22], &[0x40, 0], "DF");
        // The answer parses as a valid packet from 10.0.0.1:53.
        let p = parse(a, true).expect("valid headers and checksums");
        assert_eq!(p, Parsed { len: 15, src: "10.0.0.1:53".parse().unwrap(), dst: "10.0.0.2:4242".parse().unwrap() });
        assert_eq!(&a[HEADERS..], b"a longer answer");
    }

    #[test]
    fn program_jumps_land_inside_and_match_each_listener() {
        let listen: Vec<SocketAddrV4> = vec!["127.0.1.1:5301".parse().unwrap(), "0.0.0.0:53".parse().unwrap()];
        let p = program(&listen, 7);
        let exit_at: Vec<usize> = p.iter().enumerate().filter(|(_, i)| i.code == EXIT).map(|(n, _)| n).collect();
        assert_eq!(exit_at.len(), 2);
        assert_eq!(p.last().unwrap().code, EXIT);
        for (n, i) in p.iter().enumerate() {
            if matches!(i.code, JGT_X | JNE32_K | JA) {
                let t = n as i64 + 1 + i.off as i64;
                assert!(t > n as i64 && (t as usize) < p.len(), "insn {n} jumps to {t}");
            }
        }
        // The port and address compares, in network order as loaded on this host.
        let imms: Vec<i32> = p.iter().filter(|i| i.code == JNE32_K).map(|i| i.imm).collect();
        assert!(imms.contains(&ne16(5301)) && imms.contains(&ne16(53)));
        assert!(imms.contains(&(u32::from_ne_bytes([127, 0, 1, 1]) as i32)));
        assert_eq!(p.iter().filter(|i| i.code == LD_IMM64).map(|i| i.imm).collect::<Vec<_>>(), vec![7]);
    }
}
