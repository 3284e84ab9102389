//! Batched UDP I/O: up to [`BATCH`] datagrams in with one `recvmmsg`, their answers out with
//! one `sendmmsg`. Under load this takes the system calls per query from two to a fraction;
//! with one query waiting it costs the same as `recv_from`/`send_to`.
//!
//! The buffers are allocated once per thread and reused; nothing here allocates per packet.

use std::io;
use std::mem::{self, MaybeUninit};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

/// Datagrams per system call. Knot and gdnsd use batches of the same order.
pub const BATCH: usize = 32;

/// Room for one query. Queries are small (a name, a type, maybe OPT and TSIG); a larger
/// datagram is flagged as truncated and answered FORMERR.
pub const QUERY_ROOM: usize = 4096;

const ADDR_ROOM: libc::socklen_t = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;

/// One received datagram.
pub struct Datagram<'a> {
    pub msg: &'a [u8],
    /// Longer than [`QUERY_ROOM`]: `msg` holds only its start.
    pub truncated: bool,
    addr: &'a libc::sockaddr_storage,
    addr_len: libc::socklen_t,
}

impl Datagram<'_> {
    /// The sender.
    pub fn peer(&self) -> Option<SocketAddr> {
        sockaddr_to_std(self.addr, self.addr_len)
    }
}

/// One thread's reusable batch: receive slots, peer addresses and the answers to send.
pub struct Batch {
    bufs: Box<[[u8; QUERY_ROOM]]>,
    addrs: Box<[libc::sockaddr_storage]>,
    received: usize,
    /// The answer for slot i; empty: nothing to send.
    pub out: Vec<Vec<u8>>,
    /// Receive headers, pointing at `bufs` and `addrs` (set once: boxed slices do not move).
    hdrs: Box<[libc::mmsghdr]>,
    iov: Box<[libc::iovec]>,
    /// Send headers, filled per batch with the answers there are.
    send_hdrs: Box<[libc::mmsghdr]>,
    send_iov: Box<[libc::iovec]>,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    pub fn new() -> Batch {
        // SAFETY: sockaddr_storage, iovec and mmsghdr are plain C structs for which all-zero is valid.
        let zeroed = || unsafe { MaybeUninit::<libc::sockaddr_storage>::zeroed().assume_init() };
        let hdr = || unsafe { MaybeUninit::<libc::mmsghdr>::zeroed().assume_init() };
        let iov = || libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 };
        let mut b = Batch {
            bufs: vec![[0u8; QUERY_ROOM]; BATCH].into_boxed_slice(),
            addrs: (0..BATCH).map(|_| zeroed()).collect(),
            received: 0,
            out: (0..BATCH).map(|_| Vec::with_capacity(1232)).collect(),
            hdrs: (0..BATCH).map(|_| hdr()).collect(),
            iov: (0..BATCH).map(|_| iov()).collect(),
            send_hdrs: (0..BATCH).map(|_| hdr()).collect(),
            send_iov: (0..BATCH).map(|_| iov()).collect(),
        };
        for i in 0..BATCH {
            b.iov[i] = libc::iovec { iov_base: b.bufs[i].as_mut_ptr().cast(), iov_len: QUERY_ROOM };
            let h = &mut b.hdrs[i].msg_hdr;
            h.msg_name = (&raw mut b.addrs[i]).cast();
            h.msg_namelen = ADDR_ROOM;
            h.msg_iov = &raw mut b.iov[i];
            h.msg_iovlen = 1;
        }
        b
    }

    /// Waits for at least one datagram (up to the socket's read timeout), then takes whatever
    /// else is already queued, up to [`BATCH`]. Returns how many were received.
    pub fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        // The kernel wrote the sender's address length into the headers it used last time.
        for h in &mut self.hdrs[..self.received] {
            h.msg_hdr.msg_namelen = ADDR_ROOM;
        }
        self.received = 0;
        // SAFETY: every header points at live buffers owned by self, sized as declared.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for out in &mut self.out[..n] {
            out.clear();
        }
        self.received = n;
        Ok(n)
    }

    /// Calls `f` for each datagram of the last receive, with the buffer for its answer (left
    /// empty: nothing is sent). Datagrams from source port 0 are skipped: no reply can reach
    /// that port (RFC 768), and a send to it would only fail.
    pub fn each(&mut self, mut f: impl FnMut(Datagram<'_>, &mut Vec<u8>)) {
        for i in 0..self.received {
            if source_port(&self.addrs[i]) == 0 {
                continue;
            }
            let h = &self.hdrs[i];
            let d = Datagram {
                msg: &self.bufs[i][..(h.msg_len as usize).min(QUERY_ROOM)],
                truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                addr: &self.addrs[i],
                addr_len: h.msg_hdr.msg_namelen,
            };
            f(d, &mut self.out[i]);
        }
    }

    /// Sends every non-empty answer back to its sender, in as few calls as the kernel allows.
    /// A datagram the kernel refuses is skipped (UDP gives no delivery promise anyway); returns
    /// how many were refused.
    pub fn send(&mut self, sock: &UdpSocket) -> usize {
        let mut n = 0;
        for i in 0..self.received {
            if self.out[i].is_empty() {
                continue;
            }
            self.send_iov[n] = libc::iovec { iov_base: self.out[i].as_mut_ptr().cast(), iov_len: self.out[i].len() };
            let h = &mut self.send_hdrs[n].msg_hdr;
            h.msg_name = (&raw mut self.addrs[i]).cast();
            h.msg_namelen = self.hdrs[i].msg_hdr.msg_namelen;
            h.msg_iov = &raw mut self.send_iov[n];
            h.msg_iovlen = 1;
            n += 1;
        }
        let (mut sent, mut refused) = (0, 0);
        while sent < n {
            // SAFETY: headers [sent, n) point at live answer buffers and addresses owned by self.
            let r = unsafe {
                libc::sendmmsg(sock.as_raw_fd(), self.send_hdrs[sent..].as_mut_ptr(), (n - sent) as libc::c_uint, 0)
            };
            if r > 0 {
                sent += r as usize;
            } else if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            } else {
                // The first of the rest failed on its own (e.g. an unreachable peer): skip it.
                sent += 1;
                refused += 1;
            }
        }
        refused
    }
}

/// The port of an IPv4 or IPv6 socket address (both keep it in bytes 2..4, network order).
fn source_port(sa: &libc::sockaddr_storage) -> u16 {
    // SAFETY: sockaddr_storage is at least 4 bytes and plain data.
    let b = unsafe { std::slice::from_raw_parts((sa as *const libc::sockaddr_storage).cast::<u8>(), 4) };
    u16::from_be_bytes([b[2], b[3]])
}

fn sockaddr_to_std(sa: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    match sa.ss_family as libc::c_int {
        libc::AF_INET if len as usize >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a = unsafe { &*(sa as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 if len as usize >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a = unsafe { &*(sa as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_batch_round_trips_datagrams_from_several_peers() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let clients: Vec<UdpSocket> = (0..5).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
        for (i, c) in clients.iter().enumerate() {
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            c.send_to(&[i as u8; 3], server.local_addr().unwrap()).unwrap();
        }
        let mut b = Batch::new();
        let mut got = 0;
        while got < clients.len() {
            let n = b.recv(&server).unwrap();
            assert!(n >= 1);
            b.each(|d, out| {
                assert!(!d.truncated);
                let peer = d.peer().unwrap();
                assert!(clients.iter().any(|c| c.local_addr().unwrap() == peer));
                // Echo every other datagram only: empty answers are not sent.
                if d.msg[0] % 2 == 0 {
                    out.extend_from_slice(&[d.msg[0], 0xee]);
                }
            });
            assert_eq!(b.send(&server), 0);
            got += n;
        }
        for (i, c) in clients.iter().enumerate() {
            let mut buf = [0u8; 8];
            if i % 2 == 0 {
                let (n, _) = c.recv_from(&mut buf).unwrap();
                assert_eq!(&buf[..n], &[i as u8, 0xee]);
            } else {
                c.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
                assert!(c.recv_from(&mut buf).is_err(), "no answer for client {i}");
            }
        }
    }

    #[test]
    fn the_source_port_is_read_for_both_families() {
        for addr in ["192.0.2.1:5353", "[2001:db8::1]:5353", "192.0.2.1:0"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let sa = socket2::SockAddr::from(addr);
            // SAFETY: SockAddr holds a sockaddr_storage.
            let storage = unsafe { *sa.as_ptr().cast::<libc::sockaddr_storage>() };
            assert_eq!(source_port(&storage), addr.port());
            assert_eq!(sockaddr_to_std(&storage, sa.len()), Some(addr));
        }
    }

    #[test]
    fn an_oversized_datagram_is_flagged_truncated() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.send_to(&vec![7u8; QUERY_ROOM + 100], server.local_addr().unwrap()).unwrap();
        let mut b = Batch::new();
        assert_eq!(b.recv(&server).unwrap(), 1);
        b.each(|d, _| {
            assert!(d.truncated);
            assert_eq!(d.msg.len(), QUERY_ROOM);
        });
    }
}
