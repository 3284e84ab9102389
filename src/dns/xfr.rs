//! Zone transfers and the messages around them: AXFR (RFC 5936), IXFR (RFC 1995), NOTIFY
//! received (RFC 1996), and TSIG (RFC 8945) on all of them and on signed queries.
//!
//! Called by `service` for messages that are not plain queries (their kind, or a TSIG, says so
//! in the one parse); it reads the same snapshot as the query path and writes one or more
//! response messages. Nobody may transfer a zone unless the configuration allows it.

use std::net::IpAddr;

use tracing::{debug, info, warn};

use crate::config::Transfer;
use crate::dns::answer;
use crate::dns::wire::{Kind, Owner, Query, Section, Writer, flags, rcode};
use crate::model::history::{self, Rec};
use crate::model::rtype;
use crate::model::snapshot::{Snapshot, ZoneEntry};
use crate::throttle::Throttle;
use crate::transfer::tsig::{self, ResponseSigner, Signed};

/// Largest transfer message we write (DNS allows 64 KiB; 16 KiB keeps them friendly).
const MESSAGE: usize = 16 * 1024;
/// Room left for the TSIG record in each message.
const TSIG_ROOM: usize = 256;
const NOTAUTH: u8 = 9;

/// Refused requests are logged at most once per 10 s of each kind (0: a bad signature, 1: not
/// allowed), with how many were held back; `weiche_xfr_refused_total{reason}` counts every one.
static REFUSALS: std::sync::Mutex<[Throttle; 2]> = std::sync::Mutex::new([Throttle::new(LOG_EVERY); 2]);
const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether a refusal of `kind` is to be logged now: Some(how many were held back since).
fn refusal_due(kind: usize) -> Option<u64> {
    let mut all = REFUSALS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    all[kind].due(std::time::Instant::now())
}

/// Answers `q` (a transfer, a NOTIFY, or any signed message) from `peer` into `out`, one
/// message per entry; none: send nothing.
pub fn handle(
    snap: &Snapshot,
    q: &Query<'_>,
    peer: IpAddr,
    tcp: bool,
    cfg: &Transfer,
    udp_payload: u16,
    out: &mut Vec<Vec<u8>>,
) {
    out.clear();
    let signed = if q.tsig {
        match tsig::verify(q.message, &cfg.keys) {
            Ok(s) => Some(s),
            Err(failure) => {
                if let Some(suppressed) = refusal_due(0) {
                    warn!(%peer, problem = %failure.describe(), suppressed, "signed request refused");
                }
                metrics::counter!("weiche_xfr_refused_total", "reason" => "tsig").increment(1);
                let mut m = Vec::new();
                finish(Writer::begin(&mut m, q, MESSAGE), q, base(q));
                tsig::refuse(&mut m, &failure);
                out.push(m);
                return;
            }
        }
    } else {
        None
    };
    let mut signer = signed.as_ref().map(ResponseSigner::new);
    match q.kind() {
        Kind::Notify => out.push(notify_reply(snap, q, peer)),
        Kind::Transfer => transfer(snap, q, peer, tcp, cfg, signed.as_ref(), udp_payload, out),
        Kind::Query => {
            // A signed plain query: answered as usual, then signed. Over UDP, an answer that
            // leaves no room for the TSIG within the client's size is sent truncated instead
            // (its header and question, TC set), so the client asks again over TCP.
            let mut m = Vec::new();
            answer::respond(snap, q, tcp, udp_payload, &mut m);
            if !tcp && m.len() > udp_limit(q, udp_payload, signed.is_some()) {
                let answered = u16::from_be_bytes([m[2], m[3]]);
                m.clear();
                finish(Writer::begin(&mut m, q, MESSAGE), q, answered | flags::TC);
            }
            out.push(m);
        }
    }
    if let Some(s) = signer.as_mut() {
        for m in out.iter_mut() {
            s.sign(m);
        }
    }
}

/// The most a UDP reply to `q` may hold before its TSIG (if `signed`): the client's size
/// (512 bytes without EDNS; RFC 6891 §6.2.5), no more than ours.
fn udp_limit(q: &Query<'_>, udp_payload: u16, signed: bool) -> usize {
    let size = q.edns.map_or(512, |e| e.payload.clamp(512, udp_payload.max(512))) as usize;
    size - if signed { TSIG_ROOM.min(200) } else { 0 }
}

/// The flags every reply carries: QR, and the request's opcode, RD and CD.
fn base(q: &Query<'_>) -> u16 {
    flags::QR | (q.flags & (0x7800 | flags::RD | flags::CD))
}

/// Ends a reply: OPT when the request had one (RFC 6891), then the header.
fn finish(mut w: Writer<'_>, q: &Query<'_>, flags: u16) {
    if let Some(e) = q.edns {
        w.opt(crate::config::DEFAULT_UDP_PAYLOAD, 0, e.dnssec_ok);
    }
    w.finish(flags);
}

fn header_reply(q: &Query<'_>, rc: u8, aa: bool) -> Vec<u8> {
    let mut m = Vec::new();
    finish(Writer::begin(&mut m, q, MESSAGE), q, base(q) | if aa { flags::AA } else { 0 } | rc as u16);
    m
}

/// RFC 1996 §3.7: a NOTIFY for a zone we serve is acknowledged; we are the primary, so there
/// is nothing to fetch.
fn notify_reply(snap: &Snapshot, q: &Query<'_>, peer: IpAddr) -> Vec<u8> {
    match snap.zone(q.key()) {
        Some(e) => {
            debug!(%peer, zone = %e.zone.apex, "NOTIFY received and acknowledged");
            header_reply(q, rcode::NOERROR, true)
        }
        None => header_reply(q, NOTAUTH, false),
    }
}

#[allow(clippy::too_many_arguments)]
fn transfer(
    snap: &Snapshot,
    q: &Query<'_>,
    peer: IpAddr,
    tcp: bool,
    cfg: &Transfer,
    signed: Option<&Signed>,
    udp_payload: u16,
    out: &mut Vec<Vec<u8>>,
) {
    let kind = if q.qtype == rtype::AXFR { "AXFR" } else { "IXFR" };
    let Some(entry) = snap.zone(q.key()) else {
        out.push(header_reply(q, NOTAUTH, false));
        return;
    };
    let apex = &entry.zone.apex;
    let key = signed.map(|s| &s.key);
    let key_name = key.map(|k| k.name.to_string());
    if !cfg.for_zone(apex).allow.iter().any(|a| a.matches(peer, key)) {
        if let Some(suppressed) = refusal_due(1) {
            warn!(zone = %apex, %peer, key = key_name.as_deref(), suppressed, "{kind} refused: not allowed by transfer.allow");
        }
        metrics::counter!("weiche_xfr_refused_total", "reason" => "not_allowed").increment(1);
        out.push(header_reply(q, rcode::REFUSED, false));
        return;
    }
    if q.qtype == rtype::AXFR && !tcp {
        out.push(header_reply(q, rcode::FORMERR, false));
        return;
    }
    let current = entry.serial;
    if q.qtype == rtype::IXFR {
        let theirs = q.authority_serial;
        // Up to date (or ahead): just the SOA.
        if theirs.is_some_and(|s| s == current || history::serial_gt(s, current)) {
            out.push(soa_only(q, entry));
            debug!(zone = %apex, %peer, key = key_name.as_deref(), serial = current, "IXFR: already up to date");
            return;
        }
        if let Some(diffs) = theirs.and_then(|s| entry.history.since(s)) {
            let soa_at = |serial: u32| {
                Rec::new(
                    apex,
                    rtype::SOA,
                    entry.soa.ttl,
                    ZoneEntry::soa_with_serial(&entry.zone, serial).rdatas().next().unwrap(),
                )
            };
            let mut recs = Vec::new();
            for d in &diffs {
                recs.push(soa_at(d.from));
                recs.extend(d.removed.iter().cloned());
                recs.push(soa_at(d.to));
                recs.extend(d.added.iter().cloned());
            }
            // Over UDP, what the client can take (found by fuzzing: this was our own size, so
            // a client without EDNS could be sent more than 512 bytes), less its OPT.
            let opt = if q.edns.is_some() { 11 } else { 0 };
            let limit = if tcp { MESSAGE - TSIG_ROOM } else { udp_limit(q, udp_payload, signed.is_some()) - opt };
            let msgs = Messages::build(q, entry, recs.into_iter(), limit);
            if !tcp && msgs.len() > 1 {
                // RFC 1995 §2: too big for UDP: the current SOA tells the client to use TCP.
                out.push(soa_only(q, entry));
                return;
            }
            info!(zone = %apex, %peer, key = key_name.as_deref(), from = theirs, to = current, changes = diffs.len(), "IXFR served");
            out.extend(msgs);
            return;
        }
        if !tcp {
            out.push(soa_only(q, entry));
            return;
        }
        // Older than the history: the whole zone, as for AXFR (RFC 1995 §4).
    }
    let records = entry.records();
    let count = records.len();
    let msgs = Messages::build(q, entry, records.into_iter(), MESSAGE - TSIG_ROOM);
    info!(zone = %apex, %peer, key = key_name.as_deref(), serial = current, records = count + 2, messages = msgs.len(), "{kind} served (full zone)");
    out.extend(msgs);
}

/// A reply holding only the current SOA: "up to date", or "ask again over TCP" (RFC 1995 §2).
fn soa_only(q: &Query<'_>, entry: &ZoneEntry) -> Vec<u8> {
    let mut m = Vec::new();
    let mut w = Writer::begin(&mut m, q, MESSAGE);
    w.rrset(Section::Answer, Owner::Name(entry.zone.apex.wire()), &entry.soa, entry.soa.ttl);
    finish(w, q, base(q) | flags::AA);
    m
}

/// Builds the messages of a transfer: the SOA, `records`, the SOA again.
struct Messages;

impl Messages {
    fn build(q: &Query<'_>, entry: &ZoneEntry, records: impl Iterator<Item = Rec>, limit: usize) -> Vec<Vec<u8>> {
        let soa = entry.soa.rdatas().next().expect("one SOA").to_vec();
        let apex = entry.zone.apex.clone();
        let first = Rec::new(&apex, rtype::SOA, entry.soa.ttl, &soa);
        let last = first.clone();
        let mut msgs = Vec::new();
        let mut buf = Vec::new();
        let mut w = Writer::begin(&mut buf, q, limit);
        for r in std::iter::once(first).chain(records).chain(std::iter::once(last)) {
            if !w.rdatas(Section::Answer, Owner::Name(r.owner.wire()), r.rtype, r.ttl, std::iter::once(&*r.rdata), 1) {
                finish(w, q, base(q) | flags::AA);
                msgs.push(std::mem::take(&mut buf));
                w = Writer::begin(&mut buf, q, limit);
                let ok = w.rdatas(
                    Section::Answer,
                    Owner::Name(r.owner.wire()),
                    r.rtype,
                    r.ttl,
                    std::iter::once(&*r.rdata),
                    1,
                );
                debug_assert!(ok, "one record always fits a transfer message");
            }
        }
        finish(w, q, base(q) | flags::AA);
        msgs.push(buf);
        msgs
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Allow;
    use crate::config::keys::Key;
    use crate::load::loader::{Kind as FileKind, ZoneFile, load_bytes};
    use crate::model::history::{Diff, History};
    use crate::model::name::Name;

    const ZONE: &str = "$TTL 300\n@ SOA ns1 hm 1 1h 10m 14d 300\n@ NS ns1\nns1 A 192.0.2.53\n";

    /// example.com at serial 2, whose change from 1 added 40 TXT records (about 1.6 KB), and
    /// ten SPF records at `wide`.
    fn snapshot() -> Snapshot {
        let apex = Name::parse("example.com.", None).unwrap();
        let mut big: String = (0..40).map(|i| format!("t{i} TXT \"{}\"\n", "x".repeat(30))).collect();
        big.extend((0..10).map(|i| format!("wide SPF \"{i}{}\"\n", "y".repeat(29))));
        let file = ZoneFile { apex: apex.clone(), path: "example.com.zone".into(), kind: FileKind::Plain };
        let zone = load_bytes(file, format!("{ZONE}{big}").into_bytes()).result.unwrap();
        let added = history::zone_records(&zone).into_iter().filter(|r| r.rtype == rtype::TXT).collect();
        let history = History::default().with(Diff { from: 1, to: 2, removed: Vec::new(), added });
        let mut entry = ZoneEntry {
            dnssec: None,
            soa: ZoneEntry::soa_with_serial(&zone, 2),
            negative_soa: Default::default(),
            zone: Arc::new(zone),
            answers: Arc::new([]),
            serial: 2,
            history: Arc::new(history),
        };
        entry.set_soa(entry.soa.clone());
        Snapshot::new(vec![entry])
    }

    fn transfer(key: &Key) -> Transfer {
        let mut t = Transfer { keys: vec![key.clone()], ..Default::default() };
        t.default.allow.push(Allow { from: Some("127.0.0.0/8".parse().unwrap()), key: None });
        t
    }

    /// A request for `name` (wire form) of `qtype`, with an SOA of serial 1 in authority for
    /// IXFR, signed with `key` if given.
    fn request(name: &[u8], qtype: u16, key: Option<&Key>) -> Vec<u8> {
        let ixfr = qtype == rtype::IXFR;
        let mut m = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, u8::from(ixfr), 0, 0];
        m.extend_from_slice(name);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        if ixfr {
            m.extend_from_slice(&[0xc0, 12, 0, 6, 0, 1, 0, 0, 0, 0, 0, 22, 0, 0, 0, 0, 0, 1]);
            m.extend_from_slice(&[0; 16]);
        }
        if let Some(k) = key {
            tsig::sign_request(&mut m, k);
        }
        m
    }

    fn send(snap: &Snapshot, cfg: &Transfer, msg: &[u8]) -> Vec<Vec<u8>> {
        let q = Query::parse(msg).unwrap();
        let mut out = Vec::new();
        handle(snap, &q, IpAddr::from([127, 0, 0, 1]), false, cfg, 1232, &mut out);
        out
    }

    /// Found by fuzzing: over UDP, IXFR replies were cut to our EDNS size, not the client's,
    /// and a signed answer got its TSIG on top of a full message: over 512 bytes to a client
    /// without EDNS.
    #[test]
    fn udp_replies_fit_what_the_client_takes() {
        let key = Key::new("k", "hmac-sha512", "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==").unwrap();
        let (snap, cfg) = (snapshot(), transfer(&key));
        let apex = b"\x07example\x03com\x00";
        for signed in [None, Some(&key)] {
            // The change does not fit: the current SOA alone says "ask over TCP".
            let out = send(&snap, &cfg, &request(apex, rtype::IXFR, signed));
            assert_eq!(out.len(), 1);
            assert!(out[0].len() <= 512, "IXFR, signed: {}: {} bytes", signed.is_some(), out[0].len());
            let r = hickory_proto::op::Message::from_vec(&out[0]).unwrap();
            assert_eq!(r.answers.len(), 1, "the SOA only");
        }
        // A signed query whose answer (450 bytes) leaves no room for the TSIG: TC, no answer.
        let wide = b"\x04wide\x07example\x03com\x00";
        let out = send(&snap, &cfg, &request(wide, rtype::SPF, Some(&key)));
        assert!(out[0].len() <= 512, "{} bytes", out[0].len());
        let r = hickory_proto::op::Message::from_vec(&out[0]).unwrap();
        assert!(r.metadata.truncation && r.answers.is_empty(), "{r:?}");
        assert!(r.signature().is_some(), "signed");
        // Unsigned, it fits.
        let out = send(&snap, &cfg, &request(wide, rtype::SPF, None));
        let r = hickory_proto::op::Message::from_vec(&out[0]).unwrap();
        assert!(out[0].len() > 400 && !r.metadata.truncation && r.answers.len() == 10, "{} bytes", out[0].len());
    }
}
