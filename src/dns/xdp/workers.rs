//! The loop of one queue's thread: received frames off the RX ring, each query through
//! `dns::service` as on every listener, and the answer, headers turned around, back on the TX
//! ring in the query's own frame; what does not fit there goes through the kernel's socket.

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::debug;

use super::frames::{HEADERS, answer_in_place, parse};
use super::rings::{FRAME, Xsk, frame};
use crate::dns::service::{Reply, Service};

/// Packets taken from the RX ring per round.
const BATCH: u32 = 64;

pub(super) struct XdpWorker {
    pub(super) store: crate::model::snapshot::Store,
    pub(super) service: Service,
    pub(super) mtu: usize,
    pub(super) udp_sum: bool,
    pub(super) fallback: Arc<Vec<(SocketAddrV4, UdpSocket)>>,
}

impl XdpWorker {
    pub(super) fn run(&self, mut x: Xsk, stop: &AtomicBool) {
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
        let via = self.service.datagrams();
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
            match self.service.handle(&snap, msg, via, || Some((*p.src.ip()).into()), out, special) {
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
