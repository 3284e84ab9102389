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
//!
//! Plain answers to datagrams (UDP sockets and XDP) go through response rate limiting (`rrl`)
//! when it is on; TCP is never limited.

use std::net::IpAddr;
use std::sync::Arc;

use crate::dns::answer::{self, Outcome};
use crate::dns::rrl::{self, Limited};
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

/// How a message came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Tcp,
    /// A datagram (UDP socket or XDP), received at this second of `rrl::now` (0 while rate
    /// limiting is off: then the clock is not read).
    Datagram(u32),
}

/// What one listener (a UDP or XDP thread, or all TCP connections) answers with.
#[derive(Clone)]
pub struct Service {
    udp_payload: u16,
    /// Transfer rights and keys: swapped when weiche.toml is reloaded, read per transfer.
    transfer: crate::config::SharedTransfer,
    counters: Arc<Counters>,
    /// Response rate limiting for datagrams, shared by every UDP and XDP thread (None: off).
    rrl: Option<Arc<rrl::Table>>,
}

impl Service {
    pub fn new(
        udp_payload: u16,
        transfer: crate::config::SharedTransfer,
        counters: Arc<Counters>,
        rrl: Option<Arc<rrl::Table>>,
    ) -> Service {
        Service { udp_payload, transfer, counters, rrl }
    }

    /// How the datagrams received now came: read once per batch, so that rate limiting reads
    /// its clock once per batch, and not at all while it is off.
    #[inline]
    pub fn datagrams(&self) -> Via {
        Via::Datagram(if self.rrl.is_some() { rrl::now() } else { 0 })
    }

    /// Answers `msg` from `snap`. `peer` is asked only when the message is not a plain query
    /// (transfer rights depend on it) or when a datagram's answer is rate limited; None drops a
    /// transfer and lets an answer through. Plain answers are counted; transfers and NOTIFYs are
    /// logged by `xfr` instead.
    #[inline]
    pub fn handle(
        &self,
        snap: &Snapshot,
        msg: &[u8],
        via: Via,
        peer: impl FnOnce() -> Option<IpAddr>,
        out: &mut Vec<u8>,
        messages: &mut Vec<Vec<u8>>,
    ) -> Reply {
        let tcp = via == Via::Tcp;
        let q = match Query::parse(msg) {
            Ok(q) => q,
            Err(Reject::Drop) => {
                self.counters.count(None);
                return Reply::Drop;
            }
            Err(Reject::Header { id, flags, rcode }) => {
                wire::header_only(out, id, flags, rcode);
                let outcome = Outcome { rcode: rcode as u16, qtype: 0, truncated: false, domain: 0 };
                if let (Some(rrl), Via::Datagram(now)) = (&self.rrl, via) {
                    return self.limit(rrl, now, peer, None, outcome, out);
                }
                self.counters.count(Some(outcome));
                return Reply::Answer;
            }
        };
        if q.tsig || q.kind() != Kind::Query {
            let Some(peer) = peer() else { return Reply::Drop };
            xfr::handle(snap, &q, peer, tcp, &self.transfer.load(), self.udp_payload, messages);
            // A datagram's reply (a refusal, NOTIFY's, a short IXFR) is rate limited as any
            // other: a spoofed flood of them must not be answered, or reflected, at full rate.
            if let (Some(rrl), Via::Datagram(now), [_]) = (&self.rrl, via, &messages[..]) {
                let reply = messages.pop().expect("one");
                out.clear();
                out.extend_from_slice(&reply);
                let (rcode, truncated) = (u16::from(reply[3] & 0x0f), reply[2] & 0x02 != 0);
                let outcome = Outcome { rcode, qtype: q.qtype, truncated, domain: 0 };
                return self.limit(rrl, now, || Some(peer), Some(&q), outcome, out);
            }
            return Reply::Messages;
        }
        let outcome = answer::respond(snap, &q, tcp, self.udp_payload, out);
        if let (Some(rrl), Via::Datagram(now)) = (&self.rrl, via) {
            return self.limit(rrl, now, peer, Some(&q), outcome, out);
        }
        self.counters.count(Some(outcome));
        Reply::Answer
    }

    /// Rate limits the response in `out` to `q` (None: a header-only error to a message that
    /// could not be read), counts it, and says what to send. Out of line, peer address and all:
    /// inlined, it made the listeners' loops too large to inline what they need (the XDP round
    /// lost its frame parsing to calls).
    #[inline(never)]
    fn limit(
        &self,
        rrl: &rrl::Table,
        now: u32,
        peer: impl FnOnce() -> Option<IpAddr>,
        q: Option<&Query<'_>>,
        mut outcome: Outcome,
        out: &mut Vec<u8>,
    ) -> Reply {
        let limited = match (peer(), q) {
            (None, _) => Limited::No,
            (Some(peer), Some(q)) => rrl.limit(now, peer, q, &outcome, out),
            (Some(peer), None) => rrl.limit_error(now, peer),
        };
        match limited {
            Limited::No => {}
            Limited::Slipped(kind) => {
                self.counters.count_rrl(kind, false);
                outcome.truncated |= kind != rrl::Kind::Error;
            }
            Limited::Dropped(kind) => {
                self.counters.count_rrl(kind, true);
                self.counters.count_query(outcome.qtype);
                return Reply::Drop;
            }
        }
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
        self.handle(snap, msg, Via::Tcp, || Some(peer), out, messages)
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
    use crate::config::Transfer;
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
            rec("*.wild.example.test.", rtype::A, &[192, 0, 2, 2]),
            rec("sub.example.test.", rtype::NS, name("ns.sub.example.test.").wire()),
            rec("ns.sub.example.test.", rtype::A, &[192, 0, 2, 3]),
        ];
        let zone = Zone::build(name("example.test."), records, Vec::new(), vec!["t.zone".into()]).unwrap();
        let mut entry = ZoneEntry {
            dnssec: None,
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
        Service::new(1232, Transfer::default().shared(), stats::counters(Transport::Udp), None)
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
                let reply = s.handle(
                    &snap,
                    msg,
                    Via::Datagram(0),
                    || panic!("{what}: the peer is not needed"),
                    &mut out,
                    &mut messages,
                );
                assert_eq!(reply, Reply::Answer, "{what}");
            }
            assert_eq!(allocations() - before, 0, "{what}: allocations in 100 answers");
        }
        let r = hickory_proto::op::Message::from_vec(&out).unwrap();
        assert_eq!(r.metadata.response_code, hickory_proto::op::ResponseCode::FormErr);
        s.handle(&snap, &cases[3].1, Via::Datagram(0), || None, &mut out, &mut messages);
        let r = hickory_proto::op::Message::from_vec(&out).unwrap();
        assert_eq!(r.metadata.response_code, hickory_proto::op::ResponseCode::NXDomain);
        assert!(r.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok));
    }

    /// A name's query in wire form.
    fn wire_name(s: &str) -> Vec<u8> {
        Name::parse(s, None).unwrap().wire().to_vec()
    }

    #[test]
    fn datagrams_are_rate_limited_per_kind_and_domain_and_tcp_never() {
        let snap = snapshot();
        let settings = crate::config::Rrl {
            responses_per_second: 2,
            nxdomains_per_second: 2,
            errors_per_second: 3,
            ..Default::default()
        };
        let s = Service::new(
            1232,
            Transfer::default().shared(),
            stats::counters(Transport::Udp),
            Some(Arc::new(rrl::Table::new(settings))),
        );
        let (mut out, mut messages) = (Vec::with_capacity(4096), Vec::new());
        let client = || Some(IpAddr::from([192, 0, 2, 77]));
        // What each of several datagrams gets: a(nswer in full), t(runcated slip), d(ropped).
        let mut ask = |names: &[&str], qtype: u16, edns: bool, from: [u8; 4]| -> String {
            names
                .iter()
                .map(|n| {
                    let msg = if edns {
                        query(0, &wire_name(n), qtype, &opt(false), 1)
                    } else {
                        query(0, &wire_name(n), qtype, &[], 0)
                    };
                    let peer = || Some(IpAddr::from(from));
                    match s.handle(&snap, &msg, Via::Datagram(100), peer, &mut out, &mut messages) {
                        Reply::Drop => 'd',
                        Reply::Answer if out[2] & 0x02 != 0 => {
                            // The slip: the question alone (and the OPT, when asked with EDNS).
                            let r = hickory_proto::op::Message::from_vec(&out).unwrap();
                            assert!(r.answers.is_empty() && r.authorities.is_empty(), "{n}");
                            assert_eq!(r.edns.is_some(), edns, "{n}");
                            // Header, question, OPT: as long as the query, so nothing is amplified.
                            assert_eq!(out.len(), msg.len(), "{n}");
                            let question = msg.len() - if edns { 11 } else { 0 };
                            assert_eq!(&out[12..question], &msg[12..question], "{n}");
                            't'
                        }
                        Reply::Answer => 'a',
                        Reply::Messages => panic!("{n}"),
                    }
                })
                .collect()
        };
        let four = ["www.example.test."; 4];
        assert_eq!(ask(&four, rtype::A, true, [192, 0, 2, 1]), "aatd");
        // The same /24, another name: an account of its own; then another /24.
        assert_eq!(ask(&["ns1.example.test."; 4], rtype::A, false, [192, 0, 2, 9]), "aatd");
        assert_eq!(ask(&four, rtype::A, false, [192, 0, 3, 1]), "aatd");
        // NXDOMAIN for random names, answers of a wildcard, referrals below a cut: each per
        // zone, wildcard, delegation point, however many names.
        let nx = ["a.example.test.", "b.example.test.", "c.example.test.", "d.example.test."];
        assert_eq!(ask(&nx, rtype::A, false, [192, 0, 2, 1]), "aatd");
        let wild = ["a.wild.example.test.", "b.wild.example.test.", "c.wild.example.test."];
        assert_eq!(ask(&wild, rtype::A, false, [192, 0, 2, 1]), "aat");
        let cut = ["a.sub.example.test.", "b.sub.example.test.", "sub.example.test."];
        assert_eq!(ask(&cut, rtype::A, false, [192, 0, 2, 1]), "aat");
        // NODATA: per zone, whatever the name and type.
        let nodata = ["www.example.test.", "ns1.example.test.", "www.example.test."];
        assert_eq!(ask(&nodata[..2], rtype::MX, false, [192, 0, 2, 1]), "aa");
        assert_eq!(ask(&nodata[2..], rtype::TXT, false, [192, 0, 2, 1]), "t");
        // Errors, whatever the name: per client, at their own rate. A slipped error goes out
        // as it is.
        let refused = ["example.org.", "example.net.", "example.com.", "test.", "org."];
        assert_eq!(ask(&refused, rtype::A, false, [192, 0, 2, 1]), "aaaad");
        assert_eq!(ask(&refused[..1], rtype::A, false, [192, 0, 2, 1]), "a");
        assert_eq!(out[3] & 0xf, rcode::REFUSED);
        assert_eq!(out[2] & 0x02, 0, "not truncated");
        // Over TCP nothing is limited.
        let www = query(0, WWW, rtype::A, &[], 0);
        for _ in 0..5 {
            s.handle_tcp(&snap, &www, IpAddr::from([192, 0, 2, 1]), &mut out, &mut messages);
            assert_eq!(out[7], 1, "an answer");
        }
        // Limiting allocates nothing either.
        let before = allocations();
        for _ in 0..100 {
            s.handle(&snap, &www, Via::Datagram(100), client, &mut out, &mut messages);
        }
        assert_eq!(allocations() - before, 0);
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
            assert_eq!(
                s.handle(&snap, &msg, Via::Datagram(0), peer, &mut out, &mut messages),
                Reply::Messages,
                "{what}"
            );
            assert_eq!(messages.len(), 1, "{what}");
            // Without a peer address nothing can be decided, or sent.
            assert_eq!(
                s.handle(&snap, &msg, Via::Datagram(0), || None, &mut out, &mut messages),
                Reply::Drop,
                "{what}"
            );
        }
        // An unknown key: NOTAUTH with BADKEY, whatever the query.
        let tsig = b"\x03key\x00\x00\xfa\x00\xff\x00\x00\x00\x00\x00\x1d\x0bhmac-sha256\x00\x00\x00\x00\x00\x00\x01\x01\x2c\x00\x00\x12\x34\x00\x00\x00\x00";
        let signed = query(0, WWW, rtype::A, &[&opt(false)[..], tsig].concat(), 2);
        let before = allocations();
        assert_eq!(s.handle(&snap, &signed, Via::Datagram(0), peer, &mut out, &mut messages), Reply::Messages);
        // Only here may the query path allocate (and the count above is no accident).
        assert!(allocations() > before);
        let r = hickory_proto::op::Message::from_vec(&messages[0]).unwrap();
        assert_eq!(u16::from(r.metadata.response_code), 9, "NOTAUTH");
        // A TSIG that is not the last record, or two (found by fuzzing: the second made
        // hickory's verifier trip an assertion): FORMERR (RFC 8945 §5.1).
        for misplaced in [[tsig, &opt(false)[..]].concat(), [&tsig[..], tsig].concat()] {
            let m = query(0, WWW, rtype::A, &misplaced, 2);
            assert_eq!(s.handle(&snap, &m, Via::Datagram(0), peer, &mut out, &mut messages), Reply::Answer);
            assert_eq!(out[3] & 0xf, rcode::FORMERR);
        }
        // Any other opcode with a transfer's type: NOTIMP from the query path.
        let status = query(2, apex, rtype::AXFR, &[], 0);
        assert_eq!(s.handle(&snap, &status, Via::Datagram(0), peer, &mut out, &mut messages), Reply::Answer);
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
