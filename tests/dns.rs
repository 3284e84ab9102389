//! The authoritative core over real sockets: answers per RFC 1034/1035/2181/2308/4592/6891/8482/9471,
//! UDP and TCP behaviour, malformed input, and zone reloading.

mod common;

use std::time::Duration;

use common::*;
use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::RecordType;

const ZONE: &str = r#"$ORIGIN example.test.
$TTL 3600
@        SOA   ns1 hostmaster 42 1h 10m 14d 300
@        NS    ns1
@        NS    ns2.other.test.
ns1      A     192.0.2.53
www      A     192.0.2.1
www      A     192.0.2.2
www      AAAA  2001:db8::1
mail     MX    10 mx1
mx1      A     192.0.2.25
alias    CNAME www
chain1   CNAME chain2
chain2   CNAME alias
loop1    CNAME loop2
loop2    CNAME loop1
out      CNAME www.elsewhere.test.
dangling CNAME nothere
a.b.c    TXT   "deep"
*.wild   A     192.0.2.99
*.wild   TXT   "wild"
x.wild   A     192.0.2.98
sub      NS    ns.sub
sub      NS    ns.other.test.
ns.sub   A     192.0.2.54
sub      DS    12345 8 2 49FD46E6C4B45C55D4AC69CBD3CD34AC1AFE51DE
caa      CAA   0 issue "ca.test"
_https._tcp SRV 0 5 443 www
unknown  TYPE65280 \# 4 0A000001
"#;

const POOL_ZONE: &str = r#"records = """
$TTL 3600
@ SOA ns1 hostmaster 7 1h 10m 14d 600
@ NS ns1
ns1 A 127.0.0.53
"""

[pools.app]
ttl = 30
ttl_min = 5
check = { type = "tcp", port = 9 }
targets = [
  { address = "127.0.0.10", priority = 1 },
  { address = "127.0.0.12", priority = 1 },
  { address = "127.0.0.11", priority = 2 },
  { address = "::1", priority = 1 },
]
"#;

fn server(ip: &str) -> Server {
    Server::start(ip, &[("example.test.zone", ZONE), ("pool.test.toml", POOL_ZONE)])
}

struct Case {
    qname: &'static str,
    qtype: RecordType,
    rcode: ResponseCode,
    aa: bool,
    answer: &'static [&'static str],
    authority: &'static [&'static str],
    additional: &'static [&'static str],
}

const NEG_SOA: &str = "example.test. 300 IN SOA ns1.example.test. hostmaster.example.test. 42 3600 600 1209600 300";

fn c(
    qname: &'static str,
    qtype: RecordType,
    rcode: ResponseCode,
    aa: bool,
    answer: &'static [&'static str],
    authority: &'static [&'static str],
) -> Case {
    Case { qname, qtype, rcode, aa, answer, authority, additional: &[] }
}

#[test]
fn answer_table() {
    use RecordType::*;
    use ResponseCode::*;
    let s = server("127.0.0.2");
    let cases = [
        c(
            "www.example.test.",
            A,
            NoError,
            true,
            &["www.example.test. 3600 IN A 192.0.2.1", "www.example.test. 3600 IN A 192.0.2.2"],
            &[],
        ),
        c("WwW.ExAmPle.TEST.", AAAA, NoError, true, &["WwW.ExAmPle.TEST. 3600 IN AAAA 2001:db8::1"], &[]),
        // NODATA: the name exists, the type does not.
        c("www.example.test.", MX, NoError, true, &[], &[NEG_SOA]),
        c("www.example.test.", TLSA, NoError, true, &[], &[NEG_SOA]),
        // NXDOMAIN, SOA TTL = min(SOA TTL, MINIMUM).
        c("nope.example.test.", A, NXDomain, true, &[], &[NEG_SOA]),
        c("deeper.nope.example.test.", A, NXDomain, true, &[], &[NEG_SOA]),
        // Empty non-terminals exist: NODATA.
        c("b.c.example.test.", A, NoError, true, &[], &[NEG_SOA]),
        c("c.example.test.", TXT, NoError, true, &[], &[NEG_SOA]),
        c("a.b.c.example.test.", TXT, NoError, true, &["a.b.c.example.test. 3600 IN TXT deep"], &[]),
        // CNAME chains inside the zone are followed; out-of-zone ones are left to the resolver.
        c(
            "alias.example.test.",
            A,
            NoError,
            true,
            &[
                "alias.example.test. 3600 IN CNAME www.example.test.",
                "www.example.test. 3600 IN A 192.0.2.1",
                "www.example.test. 3600 IN A 192.0.2.2",
            ],
            &[],
        ),
        c(
            "chain1.example.test.",
            AAAA,
            NoError,
            true,
            &[
                "chain1.example.test. 3600 IN CNAME chain2.example.test.",
                "chain2.example.test. 3600 IN CNAME alias.example.test.",
                "alias.example.test. 3600 IN CNAME www.example.test.",
                "www.example.test. 3600 IN AAAA 2001:db8::1",
            ],
            &[],
        ),
        c("alias.example.test.", CNAME, NoError, true, &["alias.example.test. 3600 IN CNAME www.example.test."], &[]),
        c(
            "alias.example.test.",
            MX,
            NoError,
            true,
            &["alias.example.test. 3600 IN CNAME www.example.test."],
            &[NEG_SOA],
        ),
        c("out.example.test.", A, NoError, true, &["out.example.test. 3600 IN CNAME www.elsewhere.test."], &[]),
        c(
            "dangling.example.test.",
            A,
            NXDomain,
            true,
            &["dangling.example.test. 3600 IN CNAME nothere.example.test."],
            &[NEG_SOA],
        ),
        c(
            "loop1.example.test.",
            A,
            NoError,
            true,
            &[
                "loop1.example.test. 3600 IN CNAME loop2.example.test.",
                "loop2.example.test. 3600 IN CNAME loop1.example.test.",
            ],
            &[],
        ),
        // Wildcards (RFC 4592): the owner is the query name; no match where the name exists.
        c("foo.wild.example.test.", A, NoError, true, &["foo.wild.example.test. 3600 IN A 192.0.2.99"], &[]),
        c("a.b.wild.example.test.", TXT, NoError, true, &["a.b.wild.example.test. 3600 IN TXT wild"], &[]),
        c("foo.wild.example.test.", MX, NoError, true, &[], &[NEG_SOA]),
        c("x.wild.example.test.", A, NoError, true, &["x.wild.example.test. 3600 IN A 192.0.2.98"], &[]),
        c("x.wild.example.test.", TXT, NoError, true, &[], &[NEG_SOA]),
        c("wild.example.test.", A, NoError, true, &[], &[NEG_SOA]),
        // Delegation: referral without AA, NS in authority, in-bailiwick glue in additional.
        Case {
            qname: "host.sub.example.test.",
            qtype: A,
            rcode: NoError,
            aa: false,
            answer: &[],
            authority: &[
                "sub.example.test. 3600 IN NS ns.other.test.",
                "sub.example.test. 3600 IN NS ns.sub.example.test.",
            ],
            additional: &["ns.sub.example.test. 3600 IN A 192.0.2.54"],
        },
        Case {
            qname: "sub.example.test.",
            qtype: NS,
            rcode: NoError,
            aa: false,
            answer: &[],
            authority: &[
                "sub.example.test. 3600 IN NS ns.other.test.",
                "sub.example.test. 3600 IN NS ns.sub.example.test.",
            ],
            additional: &["ns.sub.example.test. 3600 IN A 192.0.2.54"],
        },
        // Glue itself is below the cut: a referral too.
        Case {
            qname: "ns.sub.example.test.",
            qtype: A,
            rcode: NoError,
            aa: false,
            answer: &[],
            authority: &[
                "sub.example.test. 3600 IN NS ns.other.test.",
                "sub.example.test. 3600 IN NS ns.sub.example.test.",
            ],
            additional: &["ns.sub.example.test. 3600 IN A 192.0.2.54"],
        },
        // DS at the cut is the parent's: an authoritative answer.
        c(
            "sub.example.test.",
            DS,
            NoError,
            true,
            &["sub.example.test. 3600 IN DS 12345 8 2 49FD46E6C4B45C55D4AC69CBD3CD34AC1AFE51DE"],
            &[],
        ),
        // Other types, including RFC 3597 unknown ones.
        c("mail.example.test.", MX, NoError, true, &["mail.example.test. 3600 IN MX 10 mx1.example.test."], &[]),
        c("caa.example.test.", CAA, NoError, true, &["caa.example.test. 3600 IN CAA 0 issue \"ca.test\""], &[]),
        c(
            "_https._tcp.example.test.",
            SRV,
            NoError,
            true,
            &["_https._tcp.example.test. 3600 IN SRV 0 5 443 www.example.test."],
            &[],
        ),
        // (shown as base64 of 0A000001)
        c(
            "unknown.example.test.",
            RecordType::Unknown(65280),
            NoError,
            true,
            &["unknown.example.test. 3600 IN Unknown CgAAAQ=="],
            &[],
        ),
        c(
            "example.test.",
            SOA,
            NoError,
            true,
            &["example.test. 3600 IN SOA ns1.example.test. hostmaster.example.test. 42 3600 600 1209600 300"],
            &[],
        ),
        // Outside every zone: REFUSED, no AA.
        c("www.example.org.", A, Refused, false, &[], &[]),
        c("test.", A, Refused, false, &[], &[]),
        // AXFR/IXFR are not offered yet.
        c("example.test.", AXFR, Refused, false, &[], &[]),
        c("example.test.", IXFR, Refused, false, &[], &[]),
        // Pools: no monitor yet, so every target is unknown: the best level, short TTL.
        c(
            "app.pool.test.",
            A,
            NoError,
            true,
            &["app.pool.test. 5 IN A 127.0.0.10", "app.pool.test. 5 IN A 127.0.0.12"],
            &[],
        ),
        c("app.pool.test.", AAAA, NoError, true, &["app.pool.test. 5 IN AAAA ::1"], &[]),
        // NODATA at a pool: the SOA's TTL never exceeds the pool's TTL.
        c(
            "app.pool.test.",
            MX,
            NoError,
            true,
            &[],
            &["pool.test. 30 IN SOA ns1.pool.test. hostmaster.pool.test. 7 3600 600 1209600 600"],
        ),
    ];
    let mut failures = Vec::new();
    for case in &cases {
        for transport in ["udp", "tcp"] {
            let q = query(case.qname, case.qtype, Some(1232));
            let r = if transport == "udp" { udp(s.addr, &q) } else { tcp(s.addr, &q) };
            let got = (
                r.metadata.response_code,
                r.metadata.authoritative,
                records(&r.answers),
                records(&r.authorities),
                records(&r.additionals),
            );
            let mut want_answer: Vec<String> = case.answer.iter().map(|s| s.to_string()).collect();
            want_answer.sort();
            let mut want_auth: Vec<String> = case.authority.iter().map(|s| s.to_string()).collect();
            want_auth.sort();
            let want = (
                case.rcode,
                case.aa,
                want_answer,
                want_auth,
                case.additional.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            );
            if got != want {
                failures.push(format!(
                    "{} {:?} over {transport}:\n  got  {got:?}\n  want {want:?}",
                    case.qname, case.qtype
                ));
            }
            // Header rules hold for every answer.
            assert!(r.metadata.recursion_desired, "RD copied");
            assert!(!r.metadata.recursion_available, "RA clear");
            assert_eq!(r.queries[0].name.to_string(), case.qname, "question echoed in the query's case");
            assert!(r.edns.is_some(), "OPT answered to OPT");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn answers_keep_the_query_case_in_owner_names() {
    let s = server("127.0.0.3");
    let raw =
        udp_raw(s.addr, &query("wWw.EXAMPLE.test.", RecordType::A, None).to_vec().unwrap(), Duration::from_secs(2))
            .unwrap();
    // Owner names point at the question, whose bytes are the query's own.
    assert!(raw.windows(18).any(|w| w == b"\x03wWw\x07EXAMPLE\x04test\x00"));
    let r = Message::from_vec(&raw).unwrap();
    assert!(r.answers.iter().all(|a| a.name.to_string() == "wWw.EXAMPLE.test."));
}

#[test]
fn any_gets_a_minimal_answer() {
    let s = server("127.0.0.4");
    let r = udp(s.addr, &query("www.example.test.", RecordType::ANY, None));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    let types: std::collections::BTreeSet<_> = r.answers.iter().map(|a| a.record_type()).collect();
    assert_eq!(types.len(), 1, "one RRset (RFC 8482): {:?}", r.answers);
    let r = udp(s.addr, &query("nope.example.test.", RecordType::ANY, None));
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn class_and_opcode() {
    let s = server("127.0.0.5");
    let mut q = query("www.example.test.", RecordType::A, None);
    q.queries[0].query_class = hickory_proto::rr::DNSClass::CH;
    assert_eq!(udp(s.addr, &q).metadata.response_code, ResponseCode::Refused);
    let mut q = query("www.example.test.", RecordType::A, None);
    q.metadata.op_code = OpCode::Status;
    let r = udp(s.addr, &q);
    assert_eq!(r.metadata.response_code, ResponseCode::NotImp);
    assert_eq!(r.metadata.op_code, OpCode::Status);
    // NOTIFY (RFC 1996): acknowledged for a zone we serve, NOTAUTH for others.
    let mut q = query("example.test.", RecordType::SOA, None);
    q.metadata.op_code = OpCode::Notify;
    let r = udp(s.addr, &q);
    assert_eq!(
        (r.metadata.response_code, r.metadata.authoritative, r.metadata.op_code),
        (ResponseCode::NoError, true, OpCode::Notify)
    );
    let mut q = query("example.org.", RecordType::SOA, None);
    q.metadata.op_code = OpCode::Notify;
    assert_eq!(udp(s.addr, &q).metadata.response_code, ResponseCode::NotAuth);
}

fn raw_query(qname: &[u8], qtype: u16, additional: &[u8], arcount: u16) -> Vec<u8> {
    let mut m = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0];
    m.extend_from_slice(&arcount.to_be_bytes());
    m.extend_from_slice(qname);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    m.extend_from_slice(additional);
    m
}

const WWW: &[u8] = b"\x03www\x07example\x04test\x00";

fn opt(payload: u16, version: u8, do_bit: bool, options: &[u8]) -> Vec<u8> {
    let mut o = vec![0, 0, 41];
    o.extend_from_slice(&payload.to_be_bytes());
    o.extend_from_slice(&[0, version, if do_bit { 0x80 } else { 0 }, 0]);
    o.extend_from_slice(&(options.len() as u16).to_be_bytes());
    o.extend_from_slice(options);
    o
}

#[test]
fn edns() {
    let s = server("127.0.0.6");
    let get = |m: Vec<u8>| udp_raw(s.addr, &m, Duration::from_secs(2)).expect("reply");
    // No OPT in, no OPT out.
    let r = Message::from_vec(&get(raw_query(WWW, 1, &[], 0))).unwrap();
    assert!(r.edns.is_none());
    // OPT in: OPT out, our payload 1232, DO copied, unknown options and flags ignored.
    let r = Message::from_vec(&get(raw_query(WWW, 1, &opt(4096, 0, true, &[0xfe, 0xdc, 0, 2, 1, 2]), 1))).unwrap();
    let e = r.edns.as_ref().expect("OPT");
    assert_eq!((e.max_payload(), e.version(), e.flags().dnssec_ok), (1232, 0, true));
    assert_eq!(r.answers.len(), 2);
    // Version 1: BADVERS (extended RCODE 16: 1 in the OPT, 0 in the header), no answer.
    let raw = get(raw_query(WWW, 1, &opt(1232, 1, false, &[]), 1));
    assert_eq!(raw[3] & 0x0f, 0);
    assert_eq!(u16::from_be_bytes([raw[6], raw[7]]), 0, "no answer");
    let opt_at = raw.len() - 11;
    assert_eq!(&raw[opt_at..opt_at + 3], &[0, 0, 41]);
    assert_eq!(raw[opt_at + 5], 1, "extended RCODE BADVERS");
    assert_eq!(raw[opt_at + 6], 0, "we speak version 0");
    // Two OPT records: FORMERR.
    let two = [opt(1232, 0, false, &[]), opt(1232, 0, false, &[])].concat();
    assert_eq!(get(raw_query(WWW, 1, &two, 2))[3] & 0x0f, 1);
}

fn big_zone() -> String {
    let mut z = String::from("$TTL 60\n@ SOA ns1 hm 1 1h 10m 14d 300\n@ NS ns1\nns1 A 192.0.2.53\n");
    for i in 0..40 {
        z.push_str(&format!("big TXT \"{}-{i:02}\"\n", "x".repeat(60)));
    }
    for i in 0..20 {
        z.push_str(&format!("many A 192.0.2.{}\n", i + 1));
    }
    z
}

#[test]
fn truncation_and_tcp_fallback() {
    let s = Server::start("127.0.0.7", &[("big.test.zone", &big_zone())]);
    // Without EDNS the limit is 512: TC set, whole RRsets only (here: none of the 40).
    let raw = udp_raw(s.addr, &query("big.big.test.", RecordType::TXT, None).to_vec().unwrap(), Duration::from_secs(2))
        .unwrap();
    assert!(raw.len() <= 512);
    let r = Message::from_vec(&raw).unwrap();
    assert!(r.metadata.truncation);
    assert!(r.answers.is_empty(), "no partial RRset");
    // With EDNS 1232 too (40 × ~80 bytes does not fit).
    let raw =
        udp_raw(s.addr, &query("big.big.test.", RecordType::TXT, Some(4096)).to_vec().unwrap(), Duration::from_secs(2))
            .unwrap();
    assert!(raw.len() <= 1232, "capped at our payload: {}", raw.len());
    assert!(Message::from_vec(&raw).unwrap().metadata.truncation);
    // A client payload below 512 counts as 512.
    let r = udp(s.addr, &query("many.big.test.", RecordType::A, Some(100)));
    assert!(!r.metadata.truncation);
    assert_eq!(r.answers.len(), 20);
    // The same query over TCP gets everything.
    let r = tcp(s.addr, &query("big.big.test.", RecordType::TXT, None));
    assert!(!r.metadata.truncation);
    assert_eq!(r.answers.len(), 40);
}

#[test]
fn tcp_pipelining_idle_timeout_and_connection_limit() {
    let s = Server::start_with("127.0.0.8", &[("example.test.zone", ZONE)], |c| {
        c.tcp_idle_timeout = Duration::from_millis(500);
        c.tcp_max_connections = 2;
    });
    let msgs: Vec<Vec<u8>> = (0..50)
        .map(|i| {
            let qt = if i % 2 == 0 { RecordType::A } else { RecordType::AAAA };
            query("www.example.test.", qt, None).to_vec().unwrap()
        })
        .collect();
    let replies = tcp_pipelined(s.addr, &msgs);
    assert_eq!(replies.len(), 50);
    for (q, r) in msgs.iter().zip(&replies) {
        assert_eq!(&q[..2], &r[..2], "replies in order, IDs match");
        assert!(!Message::from_vec(r).unwrap().answers.is_empty());
    }
    // Idle connections are closed after the timeout.
    let mut a = std::net::TcpStream::connect(s.addr).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let t = std::time::Instant::now();
    assert!(read_tcp_msg(&mut a).is_none());
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(400) && waited < Duration::from_millis(2500), "closed after {waited:?}");
    // Bounded: with two connections held open (by one client, at its cap too), a third takes
    // the place of the one that has waited longest, which the server closes. An answer on each
    // of the two shows the server has taken it (and counts it) before the third comes.
    use std::io::{Read, Write};
    let m = query("www.example.test.", RecordType::A, None).to_vec().unwrap();
    let ask = |h: &mut std::net::TcpStream| {
        h.write_all(&[&(m.len() as u16).to_be_bytes()[..], &m].concat()).unwrap();
        read_tcp_msg(h).is_some()
    };
    let mut held: Vec<std::net::TcpStream> = (0..2)
        .map(|_| {
            let mut h = std::net::TcpStream::connect(s.addr).unwrap();
            h.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            assert!(ask(&mut h), "an answer on a held connection");
            h
        })
        .collect();
    let mut c = std::net::TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    assert!(ask(&mut c), "the third connection is answered");
    assert!(matches!(held[0].read(&mut [0u8; 2]), Ok(0) | Err(_)), "the first held one was closed");
    assert!(ask(&mut held[1]), "the second held one still answers");
    drop(held);
    // UDP is unaffected.
    assert_eq!(udp(s.addr, &query("www.example.test.", RecordType::A, None)).answers.len(), 2);
}

#[test]
fn malformed_packets_never_stop_the_server() {
    let s = server("127.0.0.9");
    let t = Duration::from_millis(300);
    let rcode = |r: &[u8]| r[3] & 0x0f;
    // Short header: silence.
    assert!(udp_raw(s.addr, &[1, 2, 3], t).is_none());
    // A response (QR set): silence.
    let mut resp = raw_query(WWW, 1, &[], 0);
    resp[2] |= 0x80;
    assert!(udp_raw(s.addr, &resp, t).is_none());
    // qdcount 0 and 2: FORMERR.
    let mut none = raw_query(WWW, 1, &[], 0);
    none[5] = 0;
    assert_eq!(rcode(&udp_raw(s.addr, &none[..12], t).unwrap()), 1);
    let mut two = raw_query(WWW, 1, &[], 0);
    two[5] = 2;
    assert_eq!(rcode(&udp_raw(s.addr, &two, t).unwrap()), 1);
    // A compression loop, a pointer in the question, a label over 63, a name over 255.
    let looped = raw_query(b"\x00", 1, &[0xc0, 17, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0], 1);
    assert_eq!(rcode(&udp_raw(s.addr, &looped, t).unwrap()), 1);
    assert_eq!(rcode(&udp_raw(s.addr, &raw_query(b"\xc0\x0c", 1, &[], 0), t).unwrap()), 1);
    assert_eq!(
        rcode(&udp_raw(s.addr, &raw_query(&[&[64u8][..], &[b'a'; 64], &[0]].concat(), 1, &[], 0), t).unwrap()),
        1
    );
    let long: Vec<u8> = (0..5).flat_map(|_| std::iter::once(63u8).chain([b'a'; 63])).chain([0]).collect();
    assert_eq!(rcode(&udp_raw(s.addr, &raw_query(&long, 1, &[], 0), t).unwrap()), 1);
    // Truncated question: FORMERR; records promised but missing: FORMERR.
    assert_eq!(rcode(&udp_raw(s.addr, &raw_query(WWW, 1, &[], 0)[..20], t).unwrap()), 1);
    assert_eq!(rcode(&udp_raw(s.addr, &raw_query(WWW, 1, &[], 3), t).unwrap()), 1);
    // Longer than any query (a 5,000-byte datagram): FORMERR with the same ID.
    let mut huge = raw_query(WWW, 1, &[0u8; 5000], 0);
    huge[..2].copy_from_slice(&[0xbe, 0xef]);
    let r = udp_raw(s.addr, &huge, t).unwrap();
    assert_eq!((&r[..2], rcode(&r)), (&[0xbe, 0xef][..], 1));
    // Random garbage: whatever comes back, the server stays up.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..2000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = 12 + (seed % 60) as usize;
        let mut pkt: Vec<u8> = (0..len).map(|i| (seed.rotate_left(i as u32 * 7) & 0xff) as u8).collect();
        pkt[2] &= 0x7f;
        let sock = std::net::UdpSocket::bind("127.0.0.9:0").unwrap();
        sock.send_to(&pkt, s.addr).unwrap();
    }
    // Garbage on TCP: a length that promises more than is sent, then close.
    {
        use std::io::Write;
        let mut c = std::net::TcpStream::connect(s.addr).unwrap();
        c.write_all(&[0x10, 0x00, 1, 2, 3]).unwrap();
    }
    // The next query is answered.
    assert_eq!(udp(s.addr, &query("www.example.test.", RecordType::A, None)).answers.len(), 2);
    assert_eq!(tcp(s.addr, &query("www.example.test.", RecordType::A, None)).answers.len(), 2);
}

#[test]
fn reload_on_edit_keeps_previous_on_error_and_removes_deleted() {
    let s = server("127.0.0.11");
    let path = s.zone_path("example.test.zone");
    let serial = || {
        let r = udp(s.addr, &query("example.test.", RecordType::SOA, None));
        match r.answers.first().map(|a| &a.data) {
            Some(hickory_proto::rr::RData::SOA(soa)) => Some(soa.serial),
            _ => None,
        }
    };
    assert_eq!(serial(), Some(42));
    // An edit is served within 2 s.
    write_atomically(&path, &ZONE.replace(" 42 ", " 43 "));
    let took = wait_until(Duration::from_secs(3), || serial() == Some(43));
    assert!(took.is_some_and(|t| t < Duration::from_secs(2)), "took {took:?}");
    // A broken edit: once weiche has read it and refused it, the previous version keeps serving.
    let seen = last_event_seq(s.api);
    write_atomically(&path, &ZONE.replace(" 42 ", " 44 ").replace("192.0.2.1\n", "192.0.2.300\n"));
    let refused = wait_for_event(s.api, seen, "zone_error for example.test.", |e| {
        e["kind"] == "zone_error" && e["zone"] == "example.test."
    });
    assert!(refused["reason"].as_str().unwrap().contains("192.0.2.300"), "{refused}");
    assert_eq!(serial(), Some(43));
    // Written in place, in pieces: never served half-written. The first half stays long
    // enough for weiche to read it (it ends in an owner name without a record, so it is
    // refused); until then and after, the last good version answers.
    {
        use std::io::Write;
        let full = ZONE.replace(" 42 ", " 45 ");
        let mut f = std::fs::File::create(&path).unwrap();
        let (a, b) = full.split_at(full.len() / 2);
        f.write_all(a.as_bytes()).unwrap();
        f.flush().unwrap();
        let seen = last_event_seq(s.api);
        wait_for_event(s.api, seen, "zone_error for the half-written file", |e| {
            assert_eq!(serial(), Some(43), "served while half-written");
            e["kind"] == "zone_error" && e["zone"] == "example.test."
        });
        assert_eq!(serial(), Some(43));
        assert_eq!(udp(s.addr, &query("caa.example.test.", RecordType::CAA, None)).answers.len(), 1);
        f.write_all(b.as_bytes()).unwrap();
    }
    wait_for("serial 45", Duration::from_secs(3), serial, |s| *s == Some(45));
    assert_eq!(udp(s.addr, &query("caa.example.test.", RecordType::CAA, None)).answers.len(), 1);
    // A deleted file removes its zone.
    std::fs::remove_file(&path).unwrap();
    wait_for(
        "REFUSED for the deleted zone",
        Duration::from_secs(3),
        || udp(s.addr, &query("example.test.", RecordType::SOA, None)).metadata.response_code,
        |rc| *rc == ResponseCode::Refused,
    );
    // The other zone is untouched.
    assert_eq!(udp(s.addr, &query("app.pool.test.", RecordType::A, None)).answers.len(), 2);
}
