//! The AXFR/IXFR request path: transfer requests (and NOTIFYs and signed queries) built from the
//! input, for served zones and others, from peers that may or may not transfer, over UDP and
//! TCP, unsigned or signed with a known key (at a good or a bad time) or an unknown one, with
//! IXFR serials from the history, the current one, or any. Every message sent back must be
//! readable, fit its transport, and, for a signed request, verify as the client checks it.
#![no_main]

use std::net::IpAddr;

use arbitrary::Arbitrary;
use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;
use weiche::dns::service::Reply;
use weiche::transfer::tsig;
use weiche_fuzz::{via, world};

#[derive(Debug, Arbitrary)]
enum Zone {
    Com,
    Net,
    Child,
    /// Delegated from example.com, not served.
    Sub,
    Elsewhere,
    /// Any name (in wire form, however broken).
    Raw(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Serial {
    /// One of the world's serials (history, current), plus a small step.
    Known(u8, i8),
    Any(u32),
}

#[derive(Debug, Arbitrary)]
enum Sign {
    No,
    /// One of the configured keys, at our time plus this many seconds (BADTIME beyond 300).
    Key(u8, i16),
    /// A key nobody configured.
    Unknown,
}

#[derive(Debug, Arbitrary)]
struct Request {
    id: u16,
    /// Opcode 0 (QUERY) or 4 (NOTIFY) mostly; any other flags come from `flags`.
    notify: bool,
    flags: u8,
    zone: Zone,
    /// AXFR, IXFR, or another type (0: AXFR, 1: IXFR, 2: SOA, else the value itself).
    qtype: u16,
    /// The SOA in the authority section (IXFR: the serial the client has).
    serial: Option<Serial>,
    edns: Option<(u16, bool)>,
    /// Records after the others, before any TSIG: ARCOUNT grows by `extra_count`.
    extra: Vec<u8>,
    extra_count: u8,
    sign: Sign,
    tcp: bool,
    peer: u8,
}

fn name(zone: &Zone) -> Vec<u8> {
    let known: &[u8] = match zone {
        Zone::Com => b"\x07example\x03com\x00",
        Zone::Net => b"\x07example\x03net\x00",
        Zone::Child => b"\x05child\x07example\x03com\x00",
        Zone::Sub => b"\x03sub\x07Example\x03COM\x00",
        Zone::Elsewhere => b"\x07example\x03org\x00",
        Zone::Raw(raw) => raw,
    };
    known.to_vec()
}

fn build(r: &Request, serials: &[u32]) -> Vec<u8> {
    let opcode = if r.notify { 4u16 } else { 0 };
    let flags = (opcode << 11) | u16::from(r.flags & 0x7f);
    let qtype = match r.qtype {
        0 => 252,
        1 => 251,
        2 => 6,
        t => t,
    };
    let mut m = r.id.to_be_bytes().to_vec();
    m.extend_from_slice(&flags.to_be_bytes());
    let ns = u16::from(r.serial.is_some());
    let ar = u16::from(r.edns.is_some()) + u16::from(r.extra_count);
    for count in [1, 0, ns, ar] {
        m.extend_from_slice(&u16::to_be_bytes(count));
    }
    m.extend_from_slice(&name(&r.zone));
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    if let Some(s) = &r.serial {
        let serial = match *s {
            Serial::Known(i, step) => serials[i as usize % serials.len()].wrapping_add_signed(i32::from(step)),
            Serial::Any(s) => s,
        };
        // Owner: the question name; MNAME and RNAME the root; the serial, then four zeros.
        m.extend_from_slice(&[0xc0, 12, 0, 6, 0, 1, 0, 0, 0, 0, 0, 22, 0, 0]);
        m.extend_from_slice(&serial.to_be_bytes());
        m.extend_from_slice(&[0; 16]);
    }
    if let Some((payload, dnssec_ok)) = r.edns {
        m.extend_from_slice(&[0, 0, 41]);
        m.extend_from_slice(&payload.to_be_bytes());
        m.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
    }
    m.extend_from_slice(&r.extra);
    m
}

fuzz_target!(|r: Request| {
    let w = world();
    let mut msg = build(&r, &w.serials);
    let signers = &w.signers;
    let signer = match r.sign {
        Sign::No => None,
        Sign::Key(k, skew) => Some((&signers[k as usize % signers.len()], skew)),
        Sign::Unknown => Some((&signers[0], 0)),
    };
    // The request MAC a signed response is computed over (None: unsigned, or not verifiable).
    let mut request_mac = None;
    if let Some((signer, skew)) = signer {
        // Signed as a client signs: hickory parses the request and appends its TSIG.
        let Ok(mut parsed) = Message::from_vec(&msg) else { return };
        let time = tsig::now().saturating_add_signed(i64::from(skew));
        let Ok((record, _)) = signer.sign_message(&parsed, time) else { return };
        if matches!(r.sign, Sign::Unknown) {
            let mut record = record;
            record.name = hickory_proto::rr::Name::from_ascii("nobody.").unwrap();
            parsed.set_signature(record);
        } else {
            parsed.set_signature(record);
        }
        let Ok(bytes) = parsed.to_vec() else { return };
        msg = bytes;
        request_mac = tsig::verify(&msg, &w.keys).ok().map(|s| s.mac);
    }
    let peer: IpAddr = match r.peer % 3 {
        0 => [127, 0, 0, 1].into(),
        1 => [192, 0, 2, 1].into(),
        _ => "2001:db8::1".parse().unwrap(),
    };
    let (mut out, mut messages) = (Vec::new(), Vec::new());
    let reply = w.service.handle(&w.snapshot, &msg, via(&w.service, r.tcp), || Some(peer), &mut out, &mut messages);
    if reply != Reply::Messages {
        return;
    }
    let udp_limit = match r.edns {
        Some((payload, _)) => payload.clamp(512, 1232) as usize,
        None => 512,
    };
    let mut prior = request_mac.clone();
    for (i, m) in messages.iter().enumerate() {
        let limit = if r.tcp { 65535 } else { udp_limit };
        assert!(m.len() <= limit, "message {i} of {} bytes over {}", m.len(), if r.tcp { "TCP" } else { "UDP" });
        if let Err(e) = Message::from_vec(m) {
            panic!("message {i} cannot be read ({e}): {m:02x?}");
        }
        if let (Some(mac), Some((signer, _))) = (&prior, signer) {
            match signer.verify_message_byte(m, Some(mac), i == 0) {
                Ok((next, _, _)) => prior = Some(next),
                // BADTIME answers are signed over our time; hickory checks that against its
                // clock and the request's fudge, and refuses those far off: fine.
                Err(_) if matches!(r.sign, Sign::Key(_, skew) if skew.unsigned_abs() > 300) => break,
                Err(e) => panic!("message {i} of a signed transfer does not verify: {e}"),
            }
        }
    }
});
