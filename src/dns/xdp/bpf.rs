//! The XDP program and the `bpf(2)` calls around it: the program assembled for our listen
//! addresses (which IPv4/UDP packets go to our sockets), its socket map, loading, and the
//! attach through a BPF link (gone with the process).

use std::io;
use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::frames::HEADERS;
use super::{err, owned};

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
    bpf_raw(cmd, attr).map_err(|e| err(what, e))
}

/// [`bpf`] with the kernel's error as it came.
fn bpf_raw<T>(cmd: libc::c_long, attr: &T) -> io::Result<libc::c_int> {
    // SAFETY: attr is a live, initialised #[repr(C)] prefix of `union bpf_attr`.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *const T, size_of::<T>()) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r as libc::c_int) }
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
    pub(super) ifindex: u32,
    ifname: String,
}

impl Attached {
    pub(super) fn load(ifname: &str, listen: &[SocketAddrV4], queues: u32) -> io::Result<Attached> {
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
        let prog = match bpf_raw(BPF_PROG_LOAD, &load) {
            Ok(fd) => owned(fd),
            // Refused for want of privilege (the error says which and how to grant it). EACCES,
            // by contrast, is the verifier rejecting the program.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => return Err(err("bpf(BPF_PROG_LOAD)", e)),
            Err(e) => {
                let e = err("bpf(BPF_PROG_LOAD)", e);
                // Once more with the verifier's log, for the message.
                let mut log = vec![0u8; 1 << 16];
                load.log_level = 1;
                load.log_size = log.len() as u32;
                load.log_buf = log.as_mut_ptr() as u64;
                let _ = bpf_raw(BPF_PROG_LOAD, &load);
                let text = String::from_utf8_lossy(&log[..log.iter().position(|&b| b == 0).unwrap_or(0)]);
                let tail: Vec<&str> = text.lines().rev().take(3).collect();
                return Err(io::Error::new(e.kind(), format!("{e}; verifier: {}", tail.join(" / "))));
            }
        };
        Ok(Attached { map, prog, link: None, ifindex, ifname: ifname.to_string() })
    }

    pub(super) fn add_socket(&self, queue: u32, xsk: RawFd) -> io::Result<()> {
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
    pub(super) fn attach(&mut self) -> io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
