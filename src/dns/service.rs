//! The one entry point for a DNS message, whatever carried it. The UDP sockets, TCP and the
//! AF_XDP path hand every message to [`Service::handle`], which parses it once
//! ([`Query::parse`]) and takes it down one of two roads on what that parse found:
//!
//! - a plain query, with or without EDNS: answered by `answer` into the caller's buffer, from
//!   the caller's snapshot, without allocating;
//! - a zone transfer (AXFR, IXFR), a NOTIFY, or anything TSIG-signed: answered by `xfr` as
//!   messages of their own (several for a transfer, each signed when the request was).
//!
//! The listeners keep the transport's work: receiving, the peer's address, and sending what
//! [`Reply`] says, each in its own way (a UDP batch, a TCP stream, a frame on the TX ring).

use std::net::IpAddr;
use std::sync::Arc;

use crate::config::Transfer;
use crate::dns::answer::{self, Outcome};
use crate::dns::stats::Counters;
use crate::dns::wire::{self, Kind, Query, Reject, flags, rcode};
use crate::dns::xfr;
use crate::model::snapshot::Snapshot;

/// What the listener sends back for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Nothing; over TCP, nothing more is read from that connection.
    Drop,
    /// The answer in `out`.
    Answer,
    /// The messages in `messages`, in order (possibly none): what `xfr` wrote.
    Messages,
}

/// What one listener (a UDP or XDP thread, or all TCP connections) answers with.
#[derive(Clone)]
pub struct Service {
    udp_payload: u16,
    transfer: Arc<Transfer>,
    counters: Arc<Counters>,
}

impl Service {
    pub fn new(udp_payload: u16, transfer: Arc<Transfer>, counters: Arc<Counters>) -> Service {
        Service { udp_payload, transfer, counters }
    }

    /// Answers `msg`, received over TCP or not, from `snap`. `peer` is asked only when the
    /// message is not a plain query (transfer rights depend on it); None drops the message.
    /// Plain answers are counted; transfers and NOTIFYs are logged by `xfr` instead.
    #[inline]
    pub fn handle(
        &self,
        snap: &Snapshot,
        msg: &[u8],
        tcp: bool,
        peer: impl FnOnce() -> Option<IpAddr>,
        out: &mut Vec<u8>,
        messages: &mut Vec<Vec<u8>>,
    ) -> Reply {
        let q = match Query::parse(msg) {
            Ok(q) => q,
            Err(Reject::Drop) => {
                self.counters.count(None);
                return Reply::Drop;
            }
            Err(Reject::Header { id, flags, rcode }) => {
                wire::header_only(out, id, flags, rcode);
                self.counters.count(Some(Outcome { rcode: rcode as u16, qtype: 0, truncated: false }));
                return Reply::Answer;
            }
        };
        if q.tsig || q.kind() != Kind::Query {
            let Some(peer) = peer() else { return Reply::Drop };
            xfr::handle(snap, &q, peer, tcp, &self.transfer, self.udp_payload, messages);
            return Reply::Messages;
        }
        let outcome = answer::respond(snap, &q, tcp, self.udp_payload, out);
        self.counters.count(Some(outcome));
        Reply::Answer
    }

    /// [`Self::handle`] for TCP, kept out of line: inlined into a connection's future it made
    /// that future's poll function large for no gain (TCP pays a syscall per batch anyway).
    #[inline(never)]
    pub fn handle_tcp(
        &self,
        snap: &Snapshot,
        msg: &[u8],
        peer: IpAddr,
        out: &mut Vec<u8>,
        messages: &mut Vec<Vec<u8>>,
    ) -> Reply {
        self.handle(snap, msg, true, || Some(peer), out, messages)
    }
}

/// A datagram longer than any query needs, of which `head` was received: FORMERR, unless it
/// claims to be a response.
pub fn oversized(head: &[u8], out: &mut Vec<u8>) -> Reply {
    let flags = u16::from_be_bytes([head[2], head[3]]);
    if flags & flags::QR != 0 {
        return Reply::Drop;
    }
    let id = u16::from_be_bytes([head[0], head[1]]);
    wire::header_only(out, id, flags, rcode::FORMERR);
    Reply::Answer
}

#[cfg(test)]
mod tests {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::path::Path;

    use super::*;
    use crate::dns::stats::{self, Transport};
    use crate::model::name::Name;
    use crate::model::position::Location;
    use crate::model::rtype;
    use crate::model::snapshot::ZoneEntry;
    use crate::model::zone::{Record, Zone};

    thread_local! {
        static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    }

    /// Counts the calling thread's allocations: each test runs on a thread of its own, so
    /// other tests do not disturb the count.
    struct Counting;

    // SAFETY: every call is passed unchanged to the system allocator; counting only touches a
    // const-initialised thread-local Cell, which never allocates.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
            // SAFETY: as promised by our caller.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: as promised by our caller.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
            // SAFETY: as promised by our caller.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;

    fn allocations() -> u64 {
        ALLOCATIONS.with(Cell::get)
    }

    fn snapshot() -> Snapshot {
        let name = |s: &str| Name::parse(s, None).unwrap();
        let at = Location { file: Path::new("t.zone").into(), line: 1, col: 1 };
        let rec = |owner: &str, rtype: u16, rdata: &[u8]| Record {
            owner: name(owner),
            ttl: 300,
            rtype,
            rdata: rdata.into(),
            at: at.clone(),
        };
        let soa = [name("ns1.example.test.").wire(), name("hm.example.test.").wire(), &[0, 0, 0, 1], &[0; 16]].concat();
        let records = vec![
            rec("example.test.", rtype::SOA, &soa),
            rec("example.test.", rtype::NS, name("ns1.example.test.").wire()),
            rec("ns1.example.test.", rtype::A, &[192, 0, 2, 53]),
            rec("www.example.test.", rtype::A, &[192, 0, 2, 1]),
        ];
        let zone = Zone::build(name("example.test."), records, Vec::new(), vec!["t.zone".into()]).unwrap();
        let mut entry = ZoneEntry {
            soa: zone.soa().clone(),
            negative_soa: Default::default(),
            zone: Arc::new(zone),
            answers: Arc::new([]),
            serial: 1,
            history: Default::default(),
        };
        entry.set_soa(entry.soa.clone());
        Snapshot::new(vec![entry])
    }

    /// A query for `name` (wire form) with `additional` records after the question.
    fn query(opcode: u8, name: &[u8], qtype: u16, additional: &[u8], arcount: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, opcode << 3, 0, 0, 1, 0, 0, 0, 0];
        m.extend_from_slice(&arcount.to_be_bytes());
        m.extend_from_slice(name);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m.extend_from_slice(additional);
        m
    }

    /// OPT, payload 1232, DO as given.
    fn opt(dnssec_ok: bool) -> [u8; 11] {
        [0, 0, 41, 0x04, 0xd0, 0, 0, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]
    }

    fn service() -> Service {
        Service::new(1232, Arc::new(Transfer::default()), stats::counters(Transport::Udp))
    }

    const WWW: &[u8] = b"\x03www\x07example\x04test\x00";
    const NOPE: &[u8] = b"\x04nope\x07example\x04test\x00";

    #[test]
    fn plain_and_edns_queries_are_answered_without_allocating() {
        let (snap, s) = (snapshot(), service());
        let cases = [
            ("plain", query(0, WWW, rtype::A, &[], 0)),
            ("EDNS", query(0, WWW, rtype::A, &opt(false), 1)),
            ("EDNS+DO", query(0, WWW, rtype::A, &opt(true), 1)),
            ("NXDOMAIN, EDNS+DO", query(0, NOPE, rtype::A, &opt(true), 1)),
            ("cut short", query(0, WWW, rtype::A, &opt(false), 1)[..20].to_vec()),
        ];
        let (mut out, mut messages) = (Vec::with_capacity(4096), Vec::new());
        for (what, msg) in &cases {
            let before = allocations();
            for _ in 0..100 {
                let reply =
                    s.handle(&snap, msg, false, || panic!("{what}: the peer is not needed"), &mut out, &mut messages);
                assert_eq!(reply, Reply::Answer, "{what}");
            }
            assert_eq!(allocations() - before, 0, "{what}: allocations in 100 answers");
        }
        let r = hickory_proto::op::Message::from_vec(&out).unwrap();
        assert_eq!(r.metadata.response_code, hickory_proto::op::ResponseCode::FormErr);
        s.handle(&snap, &cases[3].1, false, || None, &mut out, &mut messages);
        let r = hickory_proto::op::Message::from_vec(&out).unwrap();
        assert_eq!(r.metadata.response_code, hickory_proto::op::ResponseCode::NXDomain);
        assert!(r.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok));
    }

    #[test]
    fn transfers_notify_and_signed_messages_go_to_xfr() {
        let (snap, s) = (snapshot(), service());
        let apex = b"\x07example\x04test\x00";
        let peer = || Some(IpAddr::from([127, 0, 0, 1]));
        let (mut out, mut messages) = (Vec::new(), Vec::new());
        for (what, msg) in [
            ("AXFR", query(0, apex, rtype::AXFR, &[], 0)),
            ("IXFR", query(0, apex, rtype::IXFR, &opt(false), 1)),
            ("NOTIFY", query(wire::opcode::NOTIFY, apex, rtype::SOA, &[], 0)),
        ] {
            assert_eq!(s.handle(&snap, &msg, false, peer, &mut out, &mut messages), Reply::Messages, "{what}");
            assert_eq!(messages.len(), 1, "{what}");
            // Without a peer address nothing can be decided, or sent.
            assert_eq!(s.handle(&snap, &msg, false, || None, &mut out, &mut messages), Reply::Drop, "{what}");
        }
        // An unknown key: NOTAUTH with BADKEY, whatever the query.
        let tsig = b"\x03key\x00\x00\xfa\x00\xff\x00\x00\x00\x00\x00\x1d\x0bhmac-sha256\x00\x00\x00\x00\x00\x00\x01\x01\x2c\x00\x00\x12\x34\x00\x00\x00\x00";
        let signed = query(0, WWW, rtype::A, &[&opt(false)[..], tsig].concat(), 2);
        let before = allocations();
        assert_eq!(s.handle(&snap, &signed, false, peer, &mut out, &mut messages), Reply::Messages);
        // Only here may the query path allocate (and the count above is no accident).
        assert!(allocations() > before);
        let r = hickory_proto::op::Message::from_vec(&messages[0]).unwrap();
        assert_eq!(u16::from(r.metadata.response_code), 9, "NOTAUTH");
        // A TSIG that is not the last record, or two (found by fuzzing: the second made
        // hickory's verifier trip an assertion): FORMERR (RFC 8945 §5.1).
        for misplaced in [[tsig, &opt(false)[..]].concat(), [&tsig[..], tsig].concat()] {
            let m = query(0, WWW, rtype::A, &misplaced, 2);
            assert_eq!(s.handle(&snap, &m, false, peer, &mut out, &mut messages), Reply::Answer);
            assert_eq!(out[3] & 0xf, rcode::FORMERR);
        }
        // Any other opcode with a transfer's type: NOTIMP from the query path.
        let status = query(2, apex, rtype::AXFR, &[], 0);
        assert_eq!(s.handle(&snap, &status, false, peer, &mut out, &mut messages), Reply::Answer);
        assert_eq!(out[3] & 0xf, rcode::NOTIMP);
    }

    #[test]
    fn oversized_datagrams_get_formerr_unless_responses() {
        let mut out = Vec::new();
        let q = query(0, WWW, rtype::A, &[], 0);
        assert_eq!(oversized(&q, &mut out), Reply::Answer);
        assert_eq!((&out[..2], out[3] & 0xf), (&q[..2], rcode::FORMERR));
        let mut r = q.clone();
        r[2] |= 0x80;
        out.clear();
        assert_eq!(oversized(&r, &mut out), Reply::Drop);
        assert!(out.is_empty());
    }
}
