//! DNSSEC: signed answers that follow failover (issue 17).
//!
//! weiche signs a zone with keys made as `weiche keygen` makes them. hickory-proto, a second
//! implementation, verifies every signature in its answers; unbound, with the zone's DS as its
//! only trust anchor, validates each kind of answer (AD=1) before, during and after a failover;
//! and a byte flipped on the way is bogus.
//!
//! Without unbound installed the unbound tests say they skipped (see `common::skip`); with
//! WEICHE_REQUIRE_INTEROP=1 (set by .ci/run) they fail instead.

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::unbound::Unbound;
use common::*;
use hickory_proto::dnssec::Verifier;
use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, RRSIG};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};
use weiche::dnssec::keys::Key;
use weiche::dnssec::records::DigestType;

const ZONE: &str = "signed.test";

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// A KSK and a ZSK for `zone` in `dir`, as `weiche keygen` makes them; the zone's keys as
/// weiche loads them.
fn make_keys(dir: &Path, zone: &str) -> Vec<Key> {
    use weiche::dnssec::{Algorithm, FLAGS_KSK, FLAGS_ZSK, keygen, keys};
    let rng = ring::rand::SystemRandom::new();
    let apex = weiche::model::name::Name::parse(&format!("{zone}."), None).unwrap();
    let now = unix_now() - 60;
    for flags in [FLAGS_KSK, FLAGS_ZSK] {
        keygen::generate_into(dir, &apex, Algorithm::EcdsaP256Sha256, flags, now, &rng).unwrap();
    }
    keys::load_zone_keys(dir, &apex).unwrap()
}

/// The DS records (SHA-256) of a zone's KSKs, as zone-file lines.
fn ds_of(keys: &[Key]) -> Vec<String> {
    keys.iter().filter(|k| k.is_ksk()).map(|k| k.ds_text(DigestType::Sha256)).collect()
}

fn signing(key_dir: &Path, zones: &[&str]) -> impl FnOnce(&mut weiche::Config) {
    let d = weiche::config::Dnssec {
        key_dir: key_dir.to_path_buf(),
        zones: zones.iter().map(|z| weiche::model::name::Name::parse(&format!("{z}."), None).unwrap()).collect(),
        validity: Duration::from_secs(14 * 86400),
    };
    move |c: &mut weiche::Config| c.dnssec = Some(d)
}

/// The parent zone: static names, a wildcard, an empty non-terminal, a CNAME into a pool, and
/// a secure (`sec`, with `ds`) and an insecure (`insec`) delegation to `child`.
fn parent_zone(port: u16, p: &str, sec: &str, child: &str, ds: &[String]) -> String {
    let ds: String = ds.iter().map(|l| format!("sec {}\n", l.split_once(" IN ").unwrap().1)).collect();
    format!(
        "records = \"\"\"\n$TTL 3600\n@ SOA ns1 hm 1 1h 10m 14d 600\n@ NS ns1\nns1 A 127.0.0.53\n\
         static A 192.0.2.10\nstatic TXT \"hello\"\nalias CNAME www\n*.wild TXT \"wild\"\nx.ent A 192.0.2.11\n\
         sec NS ns.sec\nns.sec A {child}\n{ds}insec NS ns.insec\nns.insec A {child}\n\"\"\"\n\
         [pools.www]\nttl = 2\nttl_min = 1\n\
         check = {{ type = \"tcp\", port = {port}, interval = \"250ms\", timeout = \"200ms\", fall = 2, rise = 2 }}\n\
         targets = [{{ address = \"{p}\", priority = 1 }}, {{ address = \"{sec}\", priority = 2 }}]\n"
    )
}

fn child_zone(zone: &str, ip: &str) -> String {
    format!("$ORIGIN {zone}.\n$TTL 3600\n@ SOA ns hm 1 1h 10m 14d 600\n@ NS ns\nns A {ip}\nwww A 192.0.2.77\n")
}

/// weiche serving the parent zone signed on `{net}.53`, its pool's backends on `{net}.1` and
/// `{net}.2`, delegations to `{net}.9`; with keys made (or none yet).
struct Signed {
    s: Server,
    keys: Vec<Key>,
    keydir: tempfile::TempDir,
    _backends: (Backend, Backend),
}

fn signed_server(net: &str, with_keys: bool) -> Signed {
    let keydir = tempfile::tempdir().unwrap();
    let keys = if with_keys { make_keys(keydir.path(), ZONE) } else { Vec::new() };
    let (port, p, sec) = backend_pair(&format!("{net}.1"), &format!("{net}.2"));
    // `sec` is a secure delegation: any DS will do here (the zone's own).
    let zone = parent_zone(port, &format!("{net}.1"), &format!("{net}.2"), &format!("{net}.9"), &ds_of(&keys));
    let s = Server::start_with(&format!("{net}.53"), &[("signed.test.toml", &zone)], signing(keydir.path(), &[ZONE]));
    Signed { s, keys, keydir, _backends: (p, sec) }
}

/// Asks with DO=1 (or not).
fn ask(addr: SocketAddr, name: &str, rt: RecordType, dnssec_ok: bool) -> Message {
    let mut q = query(name, rt, Some(1232));
    q.edns.as_mut().unwrap().set_dnssec_ok(dnssec_ok);
    let r = tcp(addr, &q);
    assert!(!r.metadata.truncation);
    r
}

fn dnskeys(addr: SocketAddr, zone: &str) -> Vec<DNSKEY> {
    let r = ask(addr, &format!("{zone}."), RecordType::DNSKEY, true);
    r.answers
        .iter()
        .filter_map(|a| match &a.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k.clone()),
            _ => None,
        })
        .collect()
}

/// Verifies every RRset in the answer and authority sections with hickory-proto against
/// `keys`; returns the (name, type) of the RRsets verified. An RRset with no RRSIG fails,
/// except a delegation's NS (not signed by the parent, RFC 4035 §2.2).
fn verify_all(m: &Message, keys: &[DNSKEY]) -> Vec<(String, RecordType)> {
    let mut sets: BTreeMap<(String, RecordType), Vec<&Record>> = BTreeMap::new();
    let mut sigs: Vec<(&Record, &RRSIG)> = Vec::new();
    for r in m.answers.iter().chain(&m.authorities) {
        match &r.data {
            RData::DNSSEC(DNSSECRData::RRSIG(s)) => sigs.push((r, s)),
            _ => sets.entry((r.name.to_lowercase().to_string(), r.record_type())).or_default().push(r),
        }
    }
    let referral = !m.metadata.authoritative;
    let mut verified = Vec::new();
    for ((name, rt), records) in &sets {
        if referral && *rt == RecordType::NS {
            continue;
        }
        let mine: Vec<&RRSIG> = sigs
            .iter()
            .filter(|(r, s)| r.name.to_lowercase().to_string() == *name && s.input().type_covered == *rt)
            .map(|(_, s)| *s)
            .collect();
        assert!(!mine.is_empty(), "{name} {rt} has no RRSIG in {m}");
        for sig in mine {
            let key = keys
                .iter()
                .find(|k| k.calculate_key_tag().unwrap() == sig.input().key_tag)
                .unwrap_or_else(|| panic!("no DNSKEY with tag {} for {name} {rt}", sig.input().key_tag));
            key.verify_rrsig(&records[0].name, DNSClass::IN, sig, records.iter().copied())
                .unwrap_or_else(|e| panic!("{name} {rt}: the RRSIG does not verify: {e}\n{m}"));
        }
        verified.push((name.clone(), *rt));
    }
    verified
}

#[test]
fn every_signature_in_every_kind_of_answer_verifies_with_a_second_implementation() {
    let Signed { s, .. } = signed_server("127.0.70", true);
    let dnskey = dnskeys(s.addr, ZONE);
    assert_eq!(dnskey.len(), 2, "the KSK and the ZSK are published");
    // The same zone unsigned, to compare answers without DO byte for byte.
    let zone = std::fs::read_to_string(s.zone_path("signed.test.toml")).unwrap();
    let plain_server = Server::start("127.0.70.54", &[("signed.test.toml", &zone)]);
    let n = |l: &str| format!("{l}.{ZONE}.");
    // (name, type asked, rcode, RRsets that must be there and verify)
    type Case = (&'static str, RecordType, ResponseCode, &'static [(&'static str, RecordType)]);
    let cases: &[Case] = &[
        ("@", RecordType::DNSKEY, ResponseCode::NoError, &[("@", RecordType::DNSKEY)]),
        ("@", RecordType::SOA, ResponseCode::NoError, &[("@", RecordType::SOA)]),
        ("@", RecordType::CDS, ResponseCode::NoError, &[("@", RecordType::CDS)]),
        ("@", RecordType::CDNSKEY, ResponseCode::NoError, &[("@", RecordType::CDNSKEY)]),
        ("static", RecordType::A, ResponseCode::NoError, &[("static", RecordType::A)]),
        ("static", RecordType::TXT, ResponseCode::NoError, &[("static", RecordType::TXT)]),
        // NODATA: the SOA and the name's NSEC.
        ("static", RecordType::AAAA, ResponseCode::NoError, &[("@", RecordType::SOA), ("static", RecordType::NSEC)]),
        // NXDOMAIN: the NSEC covering the name (and the one covering the wildcard, here the same).
        ("nope", RecordType::A, ResponseCode::NXDomain, &[("@", RecordType::SOA)]),
        // A wildcard's answer, and the NSEC that says the name itself does not exist.
        ("a.wild", RecordType::TXT, ResponseCode::NoError, &[("a.wild", RecordType::TXT)]),
        ("a.wild", RecordType::A, ResponseCode::NoError, &[("@", RecordType::SOA), ("*.wild", RecordType::NSEC)]),
        // An empty non-terminal: NODATA, the NSEC that covers it.
        ("ent", RecordType::A, ResponseCode::NoError, &[("@", RecordType::SOA)]),
        // The pool, and a CNAME into it.
        ("www", RecordType::A, ResponseCode::NoError, &[("www", RecordType::A)]),
        ("www", RecordType::AAAA, ResponseCode::NoError, &[("@", RecordType::SOA), ("www", RecordType::NSEC)]),
        ("alias", RecordType::A, ResponseCode::NoError, &[("alias", RecordType::CNAME), ("www", RecordType::A)]),
        // Delegations: a DS, or the NSEC that proves there is none.
        ("www.sec", RecordType::A, ResponseCode::NoError, &[("sec", RecordType::DS)]),
        ("www.insec", RecordType::A, ResponseCode::NoError, &[("insec", RecordType::NSEC)]),
        ("sec", RecordType::DS, ResponseCode::NoError, &[("sec", RecordType::DS)]),
        ("static", RecordType::NSEC, ResponseCode::NoError, &[("static", RecordType::NSEC)]),
        ("www", RecordType::NSEC, ResponseCode::NoError, &[("www", RecordType::NSEC)]),
        ("insec", RecordType::DS, ResponseCode::NoError, &[("@", RecordType::SOA), ("insec", RecordType::NSEC)]),
    ];
    for &(label, rt, rcode, want) in cases {
        let qname = if label == "@" { format!("{ZONE}.") } else { n(label) };
        let r = ask(s.addr, &qname, rt, true);
        assert_eq!(r.metadata.response_code, rcode, "{qname} {rt}: {r}");
        let verified = verify_all(&r, &dnskey);
        for &(l, t) in want {
            let name = if l == "@" { format!("{ZONE}.") } else { n(l) };
            assert!(verified.contains(&(name.clone(), t)), "{qname} {rt}: {name} {t} not verified in {r}");
        }
        let nsecs = r.authorities.iter().filter(|a| a.record_type() == RecordType::NSEC).count();
        if rcode == ResponseCode::NXDomain || (r.answers.is_empty() && r.metadata.authoritative) {
            assert!(nsecs >= 1, "{qname} {rt}: a denial needs an NSEC: {r}");
        }
        // Without DO: what the unsigned zone answers, byte for byte (but for the keys, which
        // only a signed zone has).
        let plain = ask(s.addr, &qname, rt, false);
        if ![RecordType::DNSKEY, RecordType::CDS, RecordType::CDNSKEY, RecordType::NSEC].contains(&rt) {
            let mut q = query(&qname, rt, Some(1232));
            q.metadata.id = 4711;
            // Each server's own serial (moved by its own pool history) is left out.
            let bytes = |addr| without_serial(udp_raw(addr, &q.to_vec().unwrap(), Duration::from_secs(1)).unwrap());
            // (Once both pools' verdicts are steady: a TTL is shorter while one is pending.)
            let same = wait_until(Duration::from_secs(5), || bytes(s.addr) == bytes(plain_server.addr));
            assert!(same.is_some(), "{qname} {rt} without DO: {:?}\n{:?}", bytes(s.addr), bytes(plain_server.addr));
        }
        let dnssec_types = [RecordType::RRSIG, RecordType::NSEC];
        assert!(
            plain
                .answers
                .iter()
                .chain(&plain.authorities)
                .all(|a| a.record_type() == rt || !dnssec_types.contains(&a.record_type())),
            "{qname} {rt} without DO: {plain}"
        );
    }
}

/// A response with the serial of its SOA (if it has one) zeroed, where it stands in the bytes.
fn without_serial(mut raw: Vec<u8>) -> Vec<u8> {
    let m = Message::from_vec(&raw).unwrap();
    let soa = m.answers.iter().chain(&m.authorities).find_map(|r| match &r.data {
        RData::SOA(soa) => Some((soa.serial, soa.refresh)),
        _ => None,
    });
    if let Some((serial, refresh)) = soa {
        let pattern = [serial.to_be_bytes(), (refresh as u32).to_be_bytes()].concat();
        let at = raw.windows(8).position(|w| w == pattern).expect("the SOA's serial and refresh");
        raw[at..at + 4].fill(0);
    }
    raw
}

/// Relays UDP from `listen` to `to`; flips a byte in the signature of every A answer for
/// `tamper` (the last byte before the OPT record). Stops when dropped.
struct Relay {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn start(ip: &str, to: SocketAddr, tamper: &'static str) -> Relay {
        let sock = UdpSocket::bind((ip, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let ip = ip.to_string();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 65535];
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while !stopped.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
                let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
                let Some(mut reply) = udp_raw_from(&ip, to, &buf[..n]) else { continue };
                if let Ok(m) = Message::from_vec(&reply) {
                    let q = &m.queries[0];
                    if q.query_type() == RecordType::A
                        && q.name().to_lowercase().to_string() == tamper
                        && m.answers.iter().any(|a| a.record_type() == RecordType::RRSIG)
                    {
                        let at = reply.len() - 12;
                        reply[at] ^= 0x01;
                    }
                }
                let _ = sock.send_to(&reply, from);
            }
        });
        Relay { addr, stop, thread: Some(thread) }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn udp_raw_from(ip: &str, to: SocketAddr, msg: &[u8]) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind((ip, 0)).ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(1000))).ok()?;
    sock.send_to(msg, to).ok()?;
    let mut buf = vec![0u8; 65535];
    let n = sock.recv(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// Asks unbound until its reply satisfies `ok` (up to `limit`); returns the last reply.
fn until(u: &Unbound, name: &str, rt: RecordType, limit: Duration, ok: impl Fn(&Message) -> bool) -> Message {
    let mut last = None;
    let done = wait_until(limit, || {
        last = u.ask(name, rt);
        last.as_ref().is_some_and(&ok)
    });
    let last = last.unwrap_or_else(|| panic!("no reply from unbound for {name} {rt}\n{}", u.log()));
    assert!(done.is_some(), "{name} {rt}: unbound's last reply: {last}\nunbound's log:\n{}", u.log());
    last
}

fn a_records(m: &Message) -> Vec<String> {
    m.answers.iter().filter_map(|a| if let RData::A(a) = &a.data { Some(a.0.to_string()) } else { None }).collect()
}

#[test]
fn unbound_validates_every_kind_of_answer_and_follows_a_failover() {
    if !have_tool("unbound", "apt-get install unbound") {
        return;
    }
    let keydir = tempfile::tempdir().unwrap();
    let keys = make_keys(keydir.path(), ZONE);
    let child_keys = make_keys(keydir.path(), &format!("sec.{ZONE}"));
    let (port, mut primary, _secondary) = backend_pair("127.0.71.1", "127.0.71.2");
    let zone = parent_zone(port, "127.0.71.1", "127.0.71.2", "127.0.71.9", &ds_of(&child_keys));
    let parent = Server::start_with("127.0.71.53", &[("signed.test.toml", &zone)], signing(keydir.path(), &[ZONE]));
    let sec = format!("sec.{ZONE}");
    let insec = format!("insec.{ZONE}");
    let child = Server::start_with(
        "127.0.71.9",
        &[
            (&format!("{sec}.zone"), &child_zone(&sec, "127.0.71.9")),
            (&format!("{insec}.zone"), &child_zone(&insec, "127.0.71.9")),
        ],
        signing(keydir.path(), &[&sec]),
    );
    let anchors = ds_of(&keys);
    let u = Unbound::start_with(
        "127.0.71.100",
        &[(ZONE, &[parent.addr]), (&sec, &[child.addr]), (&insec, &[child.addr])],
        &anchors,
    );
    let limit = Duration::from_secs(10);
    let secure =
        |rcode: ResponseCode| move |m: &Message| m.metadata.response_code == rcode && m.metadata.authentic_data;
    let n = |l: &str| format!("{l}.{ZONE}.");
    // A static name.
    let r = until(&u, &n("static"), RecordType::A, limit, secure(ResponseCode::NoError));
    assert_eq!(a_records(&r), ["192.0.2.10"]);
    // NXDOMAIN and NODATA.
    let r = until(&u, &n("nope"), RecordType::A, limit, secure(ResponseCode::NXDomain));
    assert!(r.answers.is_empty());
    let r = until(&u, &n("static"), RecordType::AAAA, limit, secure(ResponseCode::NoError));
    assert!(r.answers.is_empty(), "{r}");
    until(&u, &n("ent"), RecordType::A, limit, |m| secure(ResponseCode::NoError)(m) && m.answers.is_empty());
    // A wildcard, and NODATA at a wildcard.
    let r = until(&u, &n("x.wild"), RecordType::TXT, limit, secure(ResponseCode::NoError));
    assert_eq!(r.answers.iter().filter(|a| a.record_type() == RecordType::TXT).count(), 1, "{r}");
    until(&u, &n("y.wild"), RecordType::A, limit, |m| secure(ResponseCode::NoError)(m) && m.answers.is_empty());
    // The pool before a failover, and a CNAME into it.
    let r = until(&u, &n("www"), RecordType::A, limit, secure(ResponseCode::NoError));
    assert_eq!(a_records(&r), ["127.0.71.1"]);
    let r = until(&u, &n("alias"), RecordType::A, limit, secure(ResponseCode::NoError));
    assert_eq!(a_records(&r), ["127.0.71.1"]);
    until(&u, &n("www"), RecordType::AAAA, limit, |m| secure(ResponseCode::NoError)(m) && m.answers.is_empty());
    // A secure delegation: the child's answer validates through the parent's DS.
    let r = until(&u, &format!("www.{sec}."), RecordType::A, limit, secure(ResponseCode::NoError));
    assert_eq!(a_records(&r), ["192.0.2.77"]);
    // An insecure delegation: the parent proves there is no DS (secure), the child's answer is
    // insecure (answered, no AD), never bogus.
    until(&u, &format!("{insec}."), RecordType::DS, limit, |m| {
        secure(ResponseCode::NoError)(m) && m.answers.is_empty()
    });
    let r = until(&u, &format!("www.{insec}."), RecordType::A, limit, |m| {
        m.metadata.response_code == ResponseCode::NoError
    });
    assert_eq!(a_records(&r), ["192.0.2.77"]);
    assert!(!r.metadata.authentic_data, "an insecure delegation's answer is not authenticated: {r}");
    // Failover: the primary's backend stops; unbound validates the secondary.
    primary.down();
    let r = until(&u, &n("www"), RecordType::A, Duration::from_secs(15), |m| {
        secure(ResponseCode::NoError)(m) && a_records(m) == ["127.0.71.2"]
    });
    assert!(r.metadata.authentic_data);
    until(&u, &n("alias"), RecordType::A, Duration::from_secs(15), |m| {
        secure(ResponseCode::NoError)(m) && a_records(m) == ["127.0.71.2"]
    });
    // Failback.
    primary.up();
    until(&u, &n("www"), RecordType::A, Duration::from_secs(15), |m| {
        secure(ResponseCode::NoError)(m) && a_records(m) == ["127.0.71.1"]
    });
    assert!(!u.log().contains("validation failure"), "unbound saw a bogus answer:\n{}", u.log());
}

#[test]
fn a_byte_flipped_on_the_way_is_bogus() {
    if !have_tool("unbound", "apt-get install unbound") {
        return;
    }
    let Signed { s, keys, .. } = signed_server("127.0.72", true);
    let relay = Relay::start("127.0.72.60", s.addr, "static.signed.test.");
    let u = Unbound::start_with("127.0.72.100", &[(ZONE, &[relay.addr])], &ds_of(&keys));
    let n = |l: &str| format!("{l}.{ZONE}.");
    // Untouched answers validate through the relay...
    until(&u, &n("www"), RecordType::A, Duration::from_secs(10), |m| m.metadata.authentic_data);
    // ...the tampered one is bogus: SERVFAIL, and unbound says why.
    let r = until(&u, &n("static"), RecordType::A, Duration::from_secs(10), |m| {
        m.metadata.response_code == ResponseCode::ServFail
    });
    assert!(r.answers.is_empty());
    assert!(u.log().contains("validation failure"), "unbound's log:\n{}", u.log());
}

/// An AXFR of `zone` from `addr` with TSIG key `xfr`, in zone-file form (one SOA).
fn axfr_text(ip: &str, addr: SocketAddr, zone: &str) -> String {
    let out = std::process::Command::new("dig")
        .args(["-b", ip, &format!("@{}", addr.ip()), "-p", &addr.port().to_string(), zone, "AXFR", "+onesoa"])
        .args(["+nocomments", "+nocmd", "+nostats", "-y", &format!("hmac-sha256:xfr:{}", common::knot::SECRET)])
        .output()
        .unwrap();
    // Without the transfer's TSIG record.
    let text: String = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("\tTSIG\t"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(text.contains("RRSIG"), "the AXFR of {zone}: {text}\n{}", String::from_utf8_lossy(&out.stderr));
    text
}

/// `ldns-verify-zone` and `kzonecheck --dnssec on` on a zone's text.
fn verify_zone_file(text: &str, zone: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zone");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new("ldns-verify-zone").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "ldns-verify-zone: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        text.lines().enumerate().map(|(i, l)| format!("{:3} {l}\n", i + 1)).collect::<String>()
    );
    let out =
        std::process::Command::new("kzonecheck").args(["-o", zone, "--dnssec", "on"]).arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "kzonecheck: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_signed_hidden_primary_feeds_knot_and_nsd_and_a_failover_reaches_validating_resolvers() {
    if !have_tool("knotd", "apt-get install knot")
        || !have_tool("nsd", "apt-get install nsd")
        || !have_tool("dig", "apt-get install dnsutils")
        || !have_tool("ldns-verify-zone", "apt-get install ldnsutils")
        || !have_tool("kzonecheck", "apt-get install knot-dnssecutils")
        || !have_tool("unbound", "apt-get install unbound")
    {
        return;
    }
    let keydir = tempfile::tempdir().unwrap();
    let keys = make_keys(keydir.path(), ZONE);
    let (p, sec) = ("127.0.73.1", "127.0.73.2");
    let (port, mut primary, _secondary) = backend_pair(p, sec);
    let zone = parent_zone(port, p, sec, "127.0.73.9", &[]);
    let knot_ip = "127.0.73.54";
    let knot_port = external_port(knot_ip);
    let nsd_ip = "127.0.73.55";
    let nsd_port = external_port(nsd_ip);
    let cfg = tempfile::tempdir().unwrap();
    let text = format!(
        "[keys.xfr]\nalgorithm = \"hmac-sha256\"\nsecret = \"{}\"\n\
         [transfer]\nallow = [{{ from = \"127.0.0.0/8\", key = \"xfr\" }}]\n\
         notify = [{{ to = \"{knot_ip}:{knot_port}\", key = \"xfr\" }}, {{ to = \"{nsd_ip}:{nsd_port}\", key = \"xfr\" }}]\n\
         notify_source = \"127.0.73.53\"\n",
        common::knot::SECRET
    );
    std::fs::write(cfg.path().join("weiche.toml"), text).unwrap();
    let transfer = weiche::Config::load(Some(&cfg.path().join("weiche.toml"))).unwrap().transfer;
    let sign = signing(keydir.path(), &[ZONE]);
    let s = Server::start_with("127.0.73.53", &[("signed.test.toml", &zone)], |c| {
        c.transfer = transfer;
        sign(c)
    });
    // The primary's AXFR is a complete signed zone.
    verify_zone_file(&axfr_text("127.0.73.53", s.addr, &format!("{ZONE}.")), ZONE);
    let knot = common::knot::Knot::start(knot_ip, knot_port, s.addr, &[ZONE]);
    let www = format!("www.{ZONE}.");
    assert!(
        wait_until(Duration::from_secs(15), || knot.a(&www) == vec![ip(p)]).is_some(),
        "Knot never served the zone:\n{}",
        knot.log()
    );
    let nsd = common::nsd::Nsd::start(nsd_ip, nsd_port, s.addr, &[ZONE]);
    // Resolvers that ask only Knot, or only NSD, validate their answers.
    let knot_addr: SocketAddr = knot.addr.parse().unwrap();
    let u = Unbound::start_with("127.0.73.100", &[(ZONE, &[knot_addr])], &ds_of(&keys));
    let un = Unbound::start_with("127.0.73.101", &[(ZONE, &[nsd.addr])], &ds_of(&keys));
    let secure = |want: &'static str| {
        move |m: &Message| {
            m.metadata.response_code == ResponseCode::NoError && m.metadata.authentic_data && a_records(m) == [want]
        }
    };
    for u in [&u, &un] {
        until(u, &www, RecordType::A, Duration::from_secs(15), secure("127.0.73.1"));
        until(u, &format!("nope.{ZONE}."), RecordType::A, Duration::from_secs(10), |m| {
            m.metadata.response_code == ResponseCode::NXDomain && m.metadata.authentic_data
        });
    }
    // Failover: the signed answer reaches Knot and NSD by NOTIFY and transfer, and the
    // resolvers validate it there.
    primary.down();
    for u in [&u, &un] {
        until(u, &www, RecordType::A, Duration::from_secs(20), secure("127.0.73.2"));
    }
    verify_zone_file(&axfr_text(knot_ip, knot_addr, &format!("{ZONE}.")), ZONE);
    verify_zone_file(&axfr_text(nsd_ip, nsd.addr, &format!("{ZONE}.")), ZONE);
    primary.up();
    for u in [&u, &un] {
        until(u, &www, RecordType::A, Duration::from_secs(20), secure("127.0.73.1"));
        assert!(!u.log().contains("validation failure"), "unbound saw a bogus answer:\n{}", u.log());
    }
    drop(nsd);
}

/// Sets a timing field (`Activate`, `Inactive`, `Delete`, …) of the key pair `stem` in `dir`
/// to `when`, in both files as BIND writes them, and puts the pair in place atomically
/// (`.private` first: weiche looks for `.key` files).
fn retime(dir: &Path, stem: &str, fields: &[(&str, u64)]) {
    use weiche::dnssec::keys::{format_ctime, format_timestamp};
    for ext in ["private", "key"] {
        let path = dir.join(format!("{stem}.{ext}"));
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| {
                !fields.iter().any(|(f, _)| l.starts_with(&format!("{f}:")) || l.starts_with(&format!("; {f}:")))
            })
            .map(String::from)
            .collect();
        for (f, when) in fields {
            if ext == "private" {
                lines.push(format!("{f}: {}", format_timestamp(*when)));
            } else {
                let at = lines.iter().position(|l| !l.starts_with(';')).unwrap();
                lines.insert(at, format!("; {f}: {} ({})", format_timestamp(*when), format_ctime(*when)));
            }
        }
        let tmp = dir.join(format!(".{stem}.{ext}.tmp"));
        std::fs::write(&tmp, lines.join("\n") + "\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }
}

/// A new key for `zone` made outside the key directory, retimed, then moved in.
fn add_key(dir: &Path, zone: &str, flags: u16, fields: &[(&str, u64)]) -> u16 {
    let staging = tempfile::tempdir().unwrap();
    let apex = weiche::model::name::Name::parse(&format!("{zone}."), None).unwrap();
    let rng = ring::rand::SystemRandom::new();
    let path = weiche::dnssec::keygen::generate_into(
        staging.path(),
        &apex,
        weiche::dnssec::Algorithm::EcdsaP256Sha256,
        flags,
        unix_now(),
        &rng,
    )
    .unwrap();
    let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
    retime(staging.path(), &stem, fields);
    std::fs::rename(staging.path().join(format!("{stem}.private")), dir.join(format!("{stem}.private"))).unwrap();
    std::fs::rename(staging.path().join(format!("{stem}.key")), dir.join(format!("{stem}.key"))).unwrap();
    weiche::dnssec::keys::load_key(&dir.join(format!("{stem}.key")), &apex).unwrap().tag
}

/// The key tags of the RRSIGs over the answer to `name`/`rt`, asked of weiche directly.
fn signed_by(addr: SocketAddr, name: &str, rt: RecordType) -> Vec<u16> {
    ask(addr, name, rt, true)
        .answers
        .iter()
        .filter_map(|a| match &a.data {
            RData::DNSSEC(DNSSECRData::RRSIG(s)) if s.input().type_covered == rt => Some(s.input().key_tag),
            _ => None,
        })
        .collect()
}

#[test]
fn a_zsk_rollover_by_pre_publication_never_shows_a_resolver_bogus() {
    if !have_tool("unbound", "apt-get install unbound") {
        return;
    }
    let keydir = tempfile::tempdir().unwrap();
    let keys = make_keys(keydir.path(), ZONE);
    let old_zsk = keys.iter().find(|k| !k.is_ksk()).unwrap();
    let old = (old_zsk.tag, old_zsk.path.file_stem().unwrap().to_str().unwrap().to_string());
    let (port, _p, _s) = backend_pair("127.0.74.1", "127.0.74.2");
    // Every TTL 2 s, so that the roll's waits (a DNSKEY TTL each) are seconds.
    let zone = parent_zone(port, "127.0.74.1", "127.0.74.2", "127.0.74.9", &[])
        .replace("$TTL 3600", "$TTL 2")
        .replace("@ SOA ns1 hm 1 1h 10m 14d 600", "@ SOA ns1 hm 1 1h 10m 14d 2");
    let s = Server::start_with("127.0.74.53", &[("signed.test.toml", &zone)], signing(keydir.path(), &[ZONE]));
    let u = Unbound::start_with("127.0.74.100", &[(ZONE, &[s.addr])], &ds_of(&keys));
    let n = |l: &str| format!("{l}.{ZONE}.");
    let secure = |m: &Message| m.metadata.authentic_data && m.metadata.response_code != ResponseCode::ServFail;
    until(&u, &n("static"), RecordType::A, Duration::from_secs(10), secure);
    assert_eq!(signed_by(s.addr, &n("static"), RecordType::A), [old.0]);
    // The roll: the new ZSK is published now and signs from T+5 s; the old one stops signing
    // then and is removed at T+10 s. Only key files change.
    let t = unix_now();
    let new = add_key(keydir.path(), ZONE, weiche::dnssec::FLAGS_ZSK, &[("Publish", t), ("Activate", t + 5)]);
    retime(keydir.path(), &old.1, &[("Inactive", t + 5), ("Delete", t + 10)]);
    // Pre-published: both keys in the DNSKEY set, the old one signing.
    let tags = |addr| dnskeys(addr, ZONE).iter().map(|k| k.calculate_key_tag().unwrap()).collect::<Vec<_>>();
    assert!(
        wait_until(Duration::from_secs(3), || tags(s.addr).contains(&new)).is_some(),
        "the new ZSK is not published"
    );
    assert!(tags(s.addr).contains(&old.0));
    // A resolver asking throughout (its cache kept) validates every answer.
    let deadline = std::time::Instant::now() + Duration::from_secs(14);
    let mut asked = 0;
    let mut phases = (false, false);
    while std::time::Instant::now() < deadline {
        for (name, rt) in [(n("static"), RecordType::A), (n("www"), RecordType::A), (n("nope"), RecordType::A)] {
            let r = u.ask(&name, rt).expect("unbound answers");
            assert!(secure(&r), "{name} {rt} during the roll: {r}\nunbound's log:\n{}", u.log());
            asked += 1;
        }
        let by = signed_by(s.addr, &n("static"), RecordType::A);
        phases.0 |= by == [new];
        phases.1 |= !tags(s.addr).contains(&old.0);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(phases.0, "the new ZSK never signed");
    assert!(phases.1, "the old ZSK was never removed");
    assert_eq!(tags(s.addr).len(), 2, "the KSK and the new ZSK remain");
    assert!(!u.log().contains("validation failure"), "unbound saw a bogus answer:\n{}", u.log());
    eprintln!("{asked} answers validated across the ZSK roll");
    // A KSK roll starts the same way: the new KSK published, CDS and CDNSKEY name both.
    let ksk = add_key(keydir.path(), ZONE, weiche::dnssec::FLAGS_KSK, &[("Publish", t), ("Activate", t + 3600)]);
    let cds_tags = || {
        ask(s.addr, &format!("{ZONE}."), RecordType::CDS, true)
            .answers
            .iter()
            .filter_map(|a| match &a.data {
                RData::DNSSEC(DNSSECRData::CDS(c)) => Some(c.key_tag()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert!(wait_until(Duration::from_secs(3), || cds_tags().contains(&ksk)).is_some(), "CDS: {:?}", cds_tags());
    assert_eq!(cds_tags().len(), 2);
}

/// `weiche check ARGS`: its exit code, and stdout then stderr.
fn check(args: &[&str], config: &Path) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weiche"))
        .arg("check")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), said)
}

#[test]
fn key_problems_are_errors_naming_the_file_and_the_last_signatures_keep_serving() {
    // weiche check, as serve: no keys, then keys, then a broken key file.
    let dir = tempfile::tempdir().unwrap();
    let (zones, keydir) = (dir.path().join("zones"), dir.path().join("keys"));
    std::fs::create_dir_all(&zones).unwrap();
    std::fs::create_dir_all(&keydir).unwrap();
    std::fs::write(zones.join("signed.test.zone"), child_zone(ZONE, "127.0.75.9")).unwrap();
    std::fs::write(zones.join("plain.test.zone"), child_zone("plain.test", "127.0.75.9")).unwrap();
    let cfg = dir.path().join("weiche.toml");
    std::fs::write(&cfg, "[server]\nzones = \"zones\"\n[dnssec]\nkeys = \"keys\"\nzones = [\"signed.test\"]\n")
        .unwrap();
    let (code, said) = check(&[], &cfg);
    assert_eq!(code, 0, "serve starts (with the other zone): {said}");
    assert!(said.contains("cannot sign: no key of signed.test. in"), "{said}");
    assert!(said.contains("serve leaves out signed.test."), "{said}");
    assert_eq!(check(&["--strict"], &cfg).0, 1);
    let keys = make_keys(&keydir, ZONE);
    let (code, said) = check(&["--strict"], &cfg);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("zone signed.test. OK") && said.contains("signed with 2 key(s) until"), "{said}");
    let broken = keydir.join("Ksigned.test.+013+00001.key");
    std::fs::write(&broken, "signed.test. IN DNSKEY 256 3 13 bm90IGEga2V5\n").unwrap();
    let (code, said) = check(&["--strict"], &cfg);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("Ksigned.test.+013+00001"), "the broken file is named: {said}");
    std::fs::remove_file(&broken).unwrap();
    // A running server whose keys break keeps its last signatures, and says so.
    let (port, _p, _s) = backend_pair("127.0.75.1", "127.0.75.2");
    let zone = parent_zone(port, "127.0.75.1", "127.0.75.2", "127.0.75.9", &[]);
    let s = Server::start_with("127.0.75.53", &[("signed.test.toml", &zone)], signing(&keydir, &[ZONE]));
    let dnskey = dnskeys(s.addr, ZONE);
    let since = last_event_seq(s.api);
    std::fs::write(&broken, "signed.test. IN DNSKEY 256 3 13 bm90IGEga2V5\n").unwrap();
    let e = wait_for_event(s.api, since, "zone_error", |e| {
        e["kind"] == "zone_error" && e["reason"].as_str().is_some_and(|r| r.contains("cannot sign"))
    });
    let reason = e["reason"].as_str().unwrap();
    assert!(reason.contains("Ksigned.test.+013+00001") && reason.contains("the last signatures keep serving"), "{e}");
    let r = ask(s.addr, &format!("static.{ZONE}."), RecordType::A, true);
    assert!(verify_all(&r, &dnskey).contains(&(format!("static.{ZONE}."), RecordType::A)));
    drop(keys);
}

#[test]
fn delv_agrees() {
    if !have_tool("delv", "apt-get install bind9-dnsutils") {
        return;
    }
    let Signed { s, keys, keydir, .. } = signed_server("127.0.76", true);
    // BIND's trust-anchors statement, with the zone's DS.
    let anchors: String = ds_of(&keys)
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("  {} static-ds {} {} {} \"{}\";\n", f[0], f[3], f[4], f[5], f[6])
        })
        .collect();
    let file = keydir.path().join("anchors.conf");
    std::fs::write(&file, format!("trust-anchors {{\n{anchors}}};\n")).unwrap();
    let n = |l: &str| format!("{l}.{ZONE}.");
    for (name, rt, want) in [
        (n("static"), "A", "; fully validated"),
        (n("www"), "A", "; fully validated"),
        (n("alias"), "A", "; fully validated"),
        (n("a.wild"), "TXT", "; fully validated"),
        (n("nope"), "A", "; negative response, fully validated"),
        (n("static"), "AAAA", "; negative response, fully validated"),
    ] {
        let out = std::process::Command::new("delv")
            .args(["-b", "127.0.76.54", &format!("@{}", s.addr.ip()), "-p", &s.addr.port().to_string()])
            .arg("-a")
            .arg(&file)
            .args([&format!("+root={ZONE}"), &name, rt])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(want), "delv {name} {rt}: {said}");
    }
}

// ---------------------------------------------------------------------------------------------
// The signing core, without sockets: what signing a loaded zone makes.

fn loaded(text: &str) -> weiche::model::zone::Zone {
    use weiche::load::loader::{Kind, ZoneFile, load_bytes};
    let file = ZoneFile {
        apex: weiche::model::name::Name::parse(&format!("{ZONE}."), None).unwrap(),
        path: std::path::PathBuf::from(format!("/nonexistent/{ZONE}.toml")),
        kind: Kind::Toml,
    };
    load_bytes(file, text.as_bytes().to_vec()).result.unwrap()
}

fn keys_at(dir: &Path) -> Arc<Vec<Key>> {
    Arc::new(make_keys(dir, ZONE))
}

#[test]
fn the_chain_lists_every_authoritative_name_in_canonical_order_with_its_types() {
    use weiche::dnssec::sign::nsec_types;
    let keydir = tempfile::tempdir().unwrap();
    let zone = loaded(&parent_zone(9, "192.0.2.1", "192.0.2.2", "192.0.2.9", &[]));
    let now = unix_now();
    let signed = weiche::dnssec::zone::sign_zone(&zone, keys_at(keydir.path()), now, 14 * 86400).unwrap();
    let chain: Vec<String> =
        signed.sigs.chain.iter().map(|l| zone.node(l.node).name.to_string().to_lowercase()).collect();
    // Not the empty non-terminals (ent, wild) nor the glue below the cuts (ns.sec, ns.insec).
    let want = ["", "alias.", "x.ent.", "insec.", "ns1.", "sec.", "static.", "*.wild.", "www."];
    assert_eq!(chain, want.iter().map(|l| format!("{l}{ZONE}.")).collect::<Vec<_>>());
    let types = |at: usize| {
        let l = &signed.sigs.chain[at];
        l.nsec
            .rdatas()
            .next()
            .map(|rd| nsec_types(rd).into_iter().map(|t| RecordType::from(t).to_string()).collect::<Vec<_>>())
    };
    assert_eq!(types(0).unwrap(), ["NS", "SOA", "RRSIG", "NSEC", "DNSKEY", "CDS", "CDNSKEY"]);
    assert_eq!(types(3).unwrap(), ["NS", "RRSIG", "NSEC"], "an insecure delegation: no DS");
    // The pool's NSEC is made per snapshot, with the families it answers then.
    assert_eq!(signed.sigs.chain[8].nsec.count, 0);
    // Signatures: none below a cut, only DS at a secure cut, none over the SOA (per snapshot).
    let id = |n: &str| {
        zone.node_id(&weiche::model::name::Name::parse(&format!("{n}.{ZONE}."), None).unwrap().key()).unwrap()
    };
    assert!(signed.sigs.rrsigs[id("ns.sec") as usize].is_empty());
    assert!(signed.sigs.rrsigs[id("insec") as usize].is_empty(), "the NS of a delegation is not signed");
    assert_eq!(signed.sigs.rrsigs[id("static") as usize].len(), 2, "A and TXT");
    assert!(signed.sigs.sig(0, weiche::model::rtype::SOA).is_none());
    assert!(signed.sigs.sig(0, weiche::model::rtype::NS).is_some());
}

#[test]
fn the_window_starts_on_the_hour_and_signing_again_is_due_halfway_or_at_a_key_event() {
    let keydir = tempfile::tempdir().unwrap();
    let zone = loaded(&parent_zone(9, "192.0.2.1", "192.0.2.2", "192.0.2.9", &[]));
    let keys = keys_at(keydir.path());
    let now = unix_now();
    let hour = now - now % 3600;
    let a = weiche::dnssec::zone::sign_zone(&zone, keys.clone(), now, 14 * 86400).unwrap();
    assert_eq!((u64::from(a.window.inception), u64::from(a.window.expiration)), (hour - 3600, hour + 14 * 86400));
    assert_eq!(a.refresh_at, hour + 7 * 86400);
    // Signed again within the hour: the same window and generation (cluster members agree).
    let b = weiche::dnssec::zone::sign_zone(&zone, keys.clone(), hour + 3599, 14 * 86400).unwrap();
    assert_eq!((a.window, a.sigs.generation), (b.window, b.sigs.generation));
    let c = weiche::dnssec::zone::sign_zone(&zone, keys, hour + 3600, 14 * 86400).unwrap();
    assert_ne!(a.sigs.generation, c.sigs.generation);
    // A key that activates tomorrow makes signing due then.
    add_key(keydir.path(), ZONE, weiche::dnssec::FLAGS_ZSK, &[("Publish", now), ("Activate", now + 86400)]);
    let keys = Arc::new(weiche::dnssec::keys::load_zone_keys(keydir.path(), &zone.apex).unwrap());
    let d = weiche::dnssec::zone::sign_zone(&zone, keys, now, 14 * 86400).unwrap();
    assert_eq!(d.refresh_at, now + 86400);
    assert_eq!(d.sigs.apex_set(weiche::model::rtype::DNSKEY).unwrap().0.count, 3, "the new key is published");
}

#[test]
fn zones_that_cannot_be_signed_say_why() {
    use weiche::dnssec::zone::sign_zone;
    let keydir = tempfile::tempdir().unwrap();
    let keys = keys_at(keydir.path());
    let now = unix_now();
    let own = loaded(&parent_zone(9, "192.0.2.1", "192.0.2.2", "192.0.2.9", &[]).replace(
        "static A 192.0.2.10",
        "static A 192.0.2.10\n@ DNSKEY 256 3 13 ewPAoO+mpjNIyUgxYwbhjBmCmCSj9cKtC2vjvi34cAMA3lOUIf1t1LFIBwk7crfmMFLsanDjc/RPasy5CHbzgg==",
    ));
    let e = sign_zone(&own, keys.clone(), now, 14 * 86400).unwrap_err().to_string();
    assert!(e.contains("signed.test. has DNSKEY records in the zone file") && e.contains("remove them"), "{e}");
    let zone = loaded(&parent_zone(9, "192.0.2.1", "192.0.2.2", "192.0.2.9", &[]));
    let e = sign_zone(&zone, keys.clone(), now - 86400, 14 * 86400).unwrap_err().to_string();
    assert!(
        e.contains("no key of signed.test. signs at") && e.contains("no key is active") && e.contains("Activate"),
        "{e}"
    );
    assert!(keys.iter().all(|k| e.contains(&k.path.display().to_string())), "each key's file is named: {e}");
    let e = sign_zone(&zone, Arc::new(Vec::new()), now, 14 * 86400).unwrap_err().to_string();
    assert!(e.contains("there are no keys"), "{e}");
}

#[test]
fn keys_that_arrive_later_sign_the_zone_and_it_is_served() {
    let Signed { s, keydir, .. } = signed_server("127.0.77", false);
    // No key: the zone is not served unsigned.
    let r = ask(s.addr, &format!("static.{ZONE}."), RecordType::A, true);
    assert_eq!(r.metadata.response_code, ResponseCode::Refused, "{r}");
    let zone_status = || json(s.api, "GET", "/status").1["zones"][0].clone();
    let z = zone_status();
    assert!(z["last_error"].as_str().is_some_and(|e| e.contains("no key of signed.test.")), "{z}");
    assert!(z.get("dnssec").is_none(), "{z}");
    // Keys made while it runs: signed and served, no SIGHUP.
    let keys = make_keys(keydir.path(), ZONE);
    let served = wait_until(Duration::from_secs(5), || dnskeys(s.addr, ZONE).len() == 2);
    assert!(served.is_some(), "the zone was not signed when its keys appeared");
    let r = ask(s.addr, &format!("static.{ZONE}."), RecordType::A, true);
    assert!(verify_all(&r, &dnskeys(s.addr, ZONE)).contains(&(format!("static.{ZONE}."), RecordType::A)));
    // /status says how the zone is signed, and with which keys.
    let z = zone_status();
    let d = &z["dnssec"];
    assert!(d["valid_until"].as_str().is_some_and(|t| t.starts_with("20")), "{z}");
    let listed: Vec<(u64, &str, bool)> = d["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["tag"].as_u64().unwrap(), k["role"].as_str().unwrap(), k["signing"] == true))
        .collect();
    for k in &keys {
        assert!(listed.contains(&(u64::from(k.tag), if k.is_ksk() { "KSK" } else { "ZSK" }, true)), "{z}");
    }
}

/// Corners found in review: the DS of a child zone served by the same server comes from the
/// parent; QTYPE=RRSIG gets the name's RRSIGs; a wildcard delegation's referral keeps its
/// sections in order.
#[test]
fn a_child_served_beside_its_parent_an_rrsig_query_and_a_wildcard_delegation() {
    let keydir = tempfile::tempdir().unwrap();
    let keys = make_keys(keydir.path(), ZONE);
    let sec = format!("sec.{ZONE}");
    let child_keys = make_keys(keydir.path(), &sec);
    let (port, _p, _s) = backend_pair("127.0.78.1", "127.0.78.2");
    let zone = parent_zone(port, "127.0.78.1", "127.0.78.2", "127.0.78.9", &ds_of(&child_keys))
        .replace("static A 192.0.2.10", "static A 192.0.2.10\n*.wcut NS ns1");
    let s = Server::start_with(
        "127.0.78.53",
        &[("signed.test.toml", &zone), (&format!("{sec}.zone"), &child_zone(&sec, "127.0.78.9"))],
        signing(keydir.path(), &[ZONE, &sec]),
    );
    let parent_keys = dnskeys(s.addr, ZONE);
    // DS at the child's apex: the parent's DS, signed by the parent (RFC 4035 §3.1.4.1).
    let r = ask(s.addr, &format!("{sec}."), RecordType::DS, true);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(verify_all(&r, &parent_keys).contains(&(format!("{sec}."), RecordType::DS)), "{r}");
    // Everything else at the child's apex comes from the child.
    let r = ask(s.addr, &format!("{sec}."), RecordType::SOA, true);
    assert!(r.metadata.authoritative && r.answers.iter().any(|a| a.record_type() == RecordType::SOA), "{r}");
    assert!(verify_all(&r, &dnskeys(s.addr, &sec)).contains(&(format!("{sec}."), RecordType::SOA)));
    // QTYPE=RRSIG: the name's RRSIGs (A, TXT, NSEC), not a NODATA that contradicts its NSEC.
    let r = ask(s.addr, &format!("static.{ZONE}."), RecordType::RRSIG, true);
    let mut covered: Vec<RecordType> = r
        .answers
        .iter()
        .filter_map(|a| match &a.data {
            RData::DNSSEC(DNSSECRData::RRSIG(s)) => Some(s.input().type_covered),
            _ => None,
        })
        .collect();
    covered.sort();
    assert_eq!(covered, [RecordType::A, RecordType::TXT, RecordType::NSEC], "{r}");
    // A name under a wildcard delegation: a referral, its sections in order (authority, then
    // additional), what is in authority signed.
    let r = ask(s.addr, &format!("a.wcut.{ZONE}."), RecordType::A, true);
    assert!(!r.metadata.authoritative, "{r}");
    assert!(
        r.authorities.iter().all(|a| [RecordType::NS, RecordType::NSEC, RecordType::RRSIG].contains(&a.record_type())),
        "{r}"
    );
    assert!(r.additionals.iter().all(|a| a.record_type() == RecordType::A), "{r}");
    verify_all(&r, &parent_keys);
    drop(keys);
}
