//! What the fuzz targets share: a realistic world to answer from, built once per process, and
//! helpers that turn a loaded zone into something queries can be asked of.
//!
//! The world is what a running server holds after a while: zones loaded from a zones
//! directory by the watcher, pools answered by the publisher after a probe round, one failover
//! and one reload behind it (so IXFR has history), and the transfer settings of a weiche.toml
//! with TSIG keys. The zones carry pools, wildcards, delegations with glue (to another server
//! and to a zone served here), CNAME chains and a loop, and DNSSEC types as static records.

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{Name as HName, TSigner};
use weiche::config::keys::Key;
use weiche::config::{Config, Transfer};
use weiche::dns::service::{Reply, Service, Via};
use weiche::dns::stats::{self, Transport};
use weiche::load::watch::Watcher;
use weiche::model::chart::{Admin, Health};
use weiche::model::snapshot::{Snapshot, ZoneEntry, pool_answer};
use weiche::model::zone::Zone;
use weiche::monitor::{TargetState, Update};
use weiche::publish::admin::AdminState;
use weiche::publish::{Now, Publisher};

/// The configuration: two keys, transfers from loopback or with `xfr-key`, and example.net
/// only to 192.0.2.0/24 with `net-key`.
pub const CONFIG: &str = r#"
[server]
udp_payload = 1232

[keys.xfr-key]
algorithm = "hmac-sha256"
secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ=="

[keys.net-key]
algorithm = "hmac-sha512"
secret = "YW5vdGhlci1zZWNyZXQtZm9yLWV4YW1wbGUtbmV0"

[[transfer.allow]]
from = "127.0.0.0/8"

[[transfer.allow]]
key = "xfr-key"

[transfer.zone."example.net"]
allow = [{ from = "192.0.2.0/24", key = "net-key" }]
"#;

/// example.com: pools at www, the apex and api; everything else static.
pub const EXAMPLE_COM: &str = r#"records = '''
$TTL 3600
@           SOA    ns1 hostmaster 2026120101 1h 10m 14d 5m
@           NS     ns1
@           NS     ns2.example.net.
@           MX     10 mail
@           MX     20 mail.example.net.
@           TXT    "v=spf1 mx -all"
@           TXT    "google-site-verification=abc" "second string"
@           CAA    0 issue "letsencrypt.org"
@           CAA    128 iodef "mailto:security@example.com"
@           DNSKEY 257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==
@           DNSKEY 256 3 13 oJMRESz5E4gYzS/q6XDrvU1qMPYIjCWzJaOau8XNEZeqCYKD5ar0IRd8KqXXFJkqmVfRvMGPmM1x8fGAa2XhSA==
@           RRSIG  \# 39 0006 0d 02 00000e10 68a1b2c3 68900000 3039 076578616d706c6503636f6d00 0102030405060708
@           NSEC   \# 25 036e7331076578616d706c6503636f6d00 0006220000000003
@           NSEC3PARAM \# 5 01000000 00
ns1         A      192.0.2.53
ns1         AAAA   2001:db8::53
mail        A      192.0.2.25
mail        AAAA   2001:db8::25
_sip._udp   SRV    10 60 5060 sip
_imaps._tcp SRV    0 1 993 mail
_443._tcp.www TLSA 3 1 1 0c72ac70b745ac19998811b131d662c9ac69dbdbe7cb23e5b514b56664c5d3d6
host        SSHFP  4 2 123456789abcdef67890123456789abcdef67890123456789abcdef123456789
svc         SVCB   1 www alpn=h2,h3 port=8443
@           HTTPS  1 . alpn=h2 ipv4hint=192.0.2.10
naptr       NAPTR  100 10 "U" "E2U+sip" "!^.*$!sip:info@example.com!" .
ptr         PTR    www
hw          HINFO  "x86_64" "Linux"
sip         CNAME  www
c1          CNAME  c2
c2          CNAME  c3
c3          CNAME  www
c4          CNAME  c1
out         CNAME  www.example.org.
loop1       CNAME  loop2
loop2       CNAME  loop1
toold       CNAME  old.example.net.
*.wild      A      192.0.2.80
*.wild      AAAA   2001:db8::80
*.wild      MX     10 mail
*.wild      TXT    "wildcard"
*.cname     CNAME  c1
*.wild.deep.ent A  192.0.2.81
sub         NS     ns1.sub
sub         NS     ns.example.net.
sub         DS     12345 13 2 3490a6806d47f17a34c29e2ce80e8a999ffbe4be4a2c2ff9d5d8ffbdbe94f7c2
ns1.sub     A      192.0.2.99
ns1.sub     AAAA   2001:db8::99
child       NS     ns1
child       NS     ns1.child
ns1.child   A      192.0.2.98
big         TXT    "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
big         TXT    "1123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
big         TXT    "2123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
big         TXT    "3123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
big         TXT    "4123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
big         TXT    "5123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
a.b.c.d     A      192.0.2.4
x           TYPE65280 \# 3 abcdef
'''

[checks.web]
type = "tcp"
port = 80
fall = 1
rise = 1

[pools.www]
ttl = 30
ttl_min = 5
check = "web"
targets = [
  { address = "192.0.2.10", priority = 1 },
  { address = "192.0.2.11", priority = 1 },
  { address = "2001:db8::10", priority = 1 },
  { address = "198.51.100.10", priority = 2 },
  { address = "2001:db8:1::10", priority = 2 },
]

[pools."@"]
check = "web"
all_down = "all"
targets = [
  { address = "192.0.2.10", priority = 1 },
  { address = "198.51.100.10", priority = 2 },
]

[pools.api]
check = { type = "tcp", port = 443, fall = 1, rise = 1 }
max_answers = 2
all_down = "none"
targets = [
  { address = "192.0.2.20", priority = 1 },
  { address = "192.0.2.21", priority = 1 },
  { address = "192.0.2.22", priority = 1 },
  { address = "192.0.2.23", priority = 1 },
]
"#;

/// child.example.com: a zone served here below a delegation in example.com.
pub const CHILD: &str = "$ORIGIN child.example.com.
$TTL 300
@       SOA  ns1.example.com. hostmaster.example.com. 7 1h 10m 14d 60
@       NS   ns1.example.com.
@       NS   ns1
ns1     A    192.0.2.98
www     A    192.0.2.97
*       TXT  \"child wildcard\"
";

/// example.net: a plain master file, in the form BIND writes.
pub fn example_net(serial: u32, extra: &str) -> String {
    format!(
        "$ORIGIN example.net.
$TTL 1h
@       IN SOA  ns1.example.com. hostmaster.example.com. (
                {serial} ; serial
                1h ; refresh
                10m ; retry
                14d ; expire
                5m ) ; minimum
        IN NS   ns1.example.com.
        IN NS   ns2
ns2     IN A    192.0.2.2
mail    IN A    192.0.2.26
@       IN A    192.0.2.30
@       IN AAAA 2001:db8::30
www     IN CNAME @
old  60 IN A    192.0.2.31
_sip._udp IN SRV 10 60 5060 sip
sip     IN A    192.0.2.31
@       IN CAA  0 issue \"letsencrypt.org\"
*       IN TXT  \"net wildcard\"
{extra}"
    )
}

/// Signers for the keys of [`CONFIG`] (same names, algorithms and secrets, in the order of
/// [`World::keys`]), to sign requests
/// and check signed responses as a client would.
pub fn signers() -> Vec<TSigner> {
    let signer = |name: &str, algorithm, secret: &str| {
        let secret = data_encoding::BASE64.decode(secret.as_bytes()).unwrap();
        TSigner::new(secret, algorithm, HName::from_ascii(name).unwrap(), 300).unwrap()
    };
    vec![
        signer("net-key.", TsigAlgorithm::HmacSha512, "YW5vdGhlci1zZWNyZXQtZm9yLWV4YW1wbGUtbmV0"),
        signer("xfr-key.", TsigAlgorithm::HmacSha256, "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ=="),
    ]
}

pub struct World {
    pub snapshot: Arc<Snapshot>,
    pub transfer: Arc<Transfer>,
    pub service: Service,
    /// The keys of `CONFIG`, by name: net-key, xfr-key.
    pub keys: Vec<Key>,
    /// Serials an IXFR can start from: the ones in the zones' histories, and the current ones.
    pub serials: Vec<u32>,
    /// Client-side signers for `keys` (see [`signers`]).
    pub signers: Vec<TSigner>,
}

/// The world, built on first use.
pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(build)
}

fn build() -> World {
    let config = Config::from_text(Some(Path::new("/nonexistent/weiche.toml")), CONFIG).expect("CONFIG is valid");
    let transfer = Arc::new(config.transfer.clone());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write a zone file");
    write("example.com.toml", EXAMPLE_COM);
    write("child.example.com.zone", CHILD);
    write("example.net.zone", &example_net(2026120101, ""));
    // example.org: example.com's names, pools and delegations, signed (DO=1 answers carry
    // RRSIGs and NSEC denials). weiche makes the DNSSEC records itself.
    let own = ["DNSKEY", "RRSIG", "NSEC ", "NSEC3PARAM"];
    let signed: String =
        EXAMPLE_COM.lines().filter(|l| !own.iter().any(|t| l.contains(t))).map(|l| format!("{l}\n")).collect();
    write("example.org.toml", &signed);
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).expect("a key directory");
    let org = weiche::model::name::Name::parse("example.org.", None).expect("a name");
    weiche::dnssec::keygen::generate_into(
        &keys,
        &org,
        weiche::dnssec::Algorithm::EcdsaP256Sha256,
        weiche::dnssec::FLAGS_KSK,
        1_700_000_000,
        &ring::rand::SystemRandom::new(),
    )
    .expect("a key");
    let dnssec = weiche::config::Dnssec { key_dir: keys, zones: vec![org], validity: Duration::from_secs(14 * 86400) };

    let mut watcher = Watcher::new(dir.path()).signing(Some(dnssec));
    let mut publisher = Publisher::new(AdminState::default());
    let reload = |watcher: &mut Watcher, p: &mut Publisher| {
        let r = watcher.reconcile(true).expect("read the zones directory").expect("zones changed");
        for z in &r.zones {
            if let Some(e) = &z.last_error {
                panic!("{}: {e}", z.file.path.display());
            }
        }
        p.set_zones(r, Now::read());
        p.take_effects();
    };
    reload(&mut watcher, &mut publisher);
    // The start-up round: every target up, except a www primary (a failover at once).
    let probe = |p: &mut Publisher, addr: &str, ok: bool| {
        for key in p.probe_keys().into_iter().filter(|k| k.addr.ip() == addr.parse::<IpAddr>().unwrap()) {
            let mut state = TargetState::default();
            let mut transition = None;
            for _ in 0..key.check.0.rise.max(key.check.0.fall) {
                transition = state.observe(ok, key.check.0.rise, key.check.0.fall).or(transition);
            }
            let u = Update {
                key,
                state,
                transition,
                cause: None,
                latency: Duration::from_millis(1),
                probed: true,
                decided_by: None,
            };
            p.apply_all(vec![u], Now::read());
        }
    };
    for key in publisher.probe_keys() {
        probe(&mut publisher, &key.addr.ip().to_string(), true);
    }
    publisher.settle();
    publisher.take_effects();
    // History: the www primary fails (a new serial of example.com), example.net is edited.
    probe(&mut publisher, "192.0.2.10", false);
    probe(&mut publisher, "192.0.2.22", false);
    publisher.take_effects();
    write("example.net.zone", &example_net(2026120102, "new     IN A    192.0.2.40\n"));
    reload(&mut watcher, &mut publisher);
    let snapshot = publisher.snapshot().clone();
    assert!(snapshot.zones.iter().filter(|z| !z.history.diffs.is_empty()).count() >= 2, "IXFR history is there");
    let mut serials: Vec<u32> = snapshot.zones.iter().map(|z| z.serial).collect();
    serials.extend(snapshot.zones.iter().flat_map(|z| z.history.diffs.iter().map(|d| d.from)));
    let keys = transfer.keys.clone();
    let service =
        Service::new(config.udp_payload, config.transfer.clone().shared(), stats::counters(Transport::Udp), None);
    let signers = signers();
    assert!(signers.iter().zip(&keys).all(|(s, k)| s.signer_name().to_ascii() == k.name.to_string()));
    World { snapshot, transfer, service, keys, serials, signers }
}

/// A zone as served, with every pool target up (so pools answer as they would).
pub fn entry_of(zone: Zone) -> ZoneEntry {
    let answers = zone
        .pools
        .iter()
        .map(|p| pool_answer(p, zone.neg_ttl, |_| (Health::Up, Admin::Auto, None), [None, None]))
        .collect();
    let soa = zone.soa().clone();
    let rd = soa.rdatas().next().expect("one SOA");
    let serial = u32::from_be_bytes(rd[rd.len() - 20..rd.len() - 16].try_into().expect("4 bytes"));
    let mut entry = ZoneEntry {
        dnssec: None,
        soa: soa.clone(),
        negative_soa: Default::default(),
        zone: Arc::new(zone),
        answers,
        serial,
        history: Default::default(),
    };
    entry.set_soa(soa);
    entry
}

/// Asks `snap` a few questions about each of the first names of its first zone, over UDP and
/// TCP, and transfers it: whatever loaded must be answerable.
pub fn ask_about(snap: &Snapshot, service: &Service) {
    let entry = &snap.zones[0];
    let (mut out, mut messages) = (Vec::with_capacity(4096), Vec::new());
    let peer = || Some(IpAddr::from([127, 0, 0, 1]));
    for node in entry.zone.nodes.iter().take(16) {
        let types = node.rrsets.iter().map(|s| s.rtype).take(4);
        for qtype in types.chain([1, 28, 255]) {
            let q = query(node.name.wire(), qtype, true);
            for tcp in [false, true] {
                let reply = service.handle(snap, &q, via(service, tcp), peer, &mut out, &mut messages);
                assert_eq!(reply, Reply::Answer);
                check_reply(&q, &out, tcp, false);
            }
        }
    }
    let axfr = query(entry.zone.apex.wire(), 252, false);
    assert_eq!(service.handle(snap, &axfr, Via::Tcp, peer, &mut out, &mut messages), Reply::Messages);
    assert!(!messages.is_empty());
    for m in &messages {
        assert!(m.len() <= 65535, "a transfer message of {} bytes", m.len());
    }
}

/// How a message came: over TCP, or as a datagram received now.
pub fn via(service: &Service, tcp: bool) -> Via {
    if tcp { Via::Tcp } else { service.datagrams() }
}

/// A query for `name` (wire form), with EDNS (DO) or without.
pub fn query(name: &[u8], qtype: u16, edns: bool) -> Vec<u8> {
    let mut m = vec![0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)];
    m.extend_from_slice(name);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    if edns {
        m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0]);
    }
    m
}

/// What every answer must be: a response to the query's ID that fits its transport, and, if
/// `readable` and hickory can read the query, readable by hickory too. (Zones made by the
/// fuzzer hold what hickory refuses to read, such as NAPTR flags other than letters and
/// digits; those are served as written, so only the world's answers are held to this.)
pub fn check_reply(q: &[u8], out: &[u8], tcp: bool, readable: bool) {
    assert!(out.len() >= 12, "a reply of {} bytes", out.len());
    assert_eq!(out[..2], q[..2], "the reply carries the query's ID");
    assert!(out[2] & 0x80 != 0, "QR is set");
    let limit = if tcp { 65535 } else { 1232 };
    assert!(out.len() <= limit, "a reply of {} bytes over {}", out.len(), if tcp { "TCP" } else { "UDP" });
    if readable
        && hickory_proto::op::Message::from_vec(q).is_ok()
        && let Err(e) = hickory_proto::op::Message::from_vec(out)
    {
        panic!("hickory reads the query but not our reply ({e}): {out:02x?}");
    }
}
