//! What members say to each other, and how a message is sealed and opened.
//!
//! A message is one UDP datagram: an HMAC of the body (the `[cluster]` key, ring's constant-time
//! verify), then the body as JSON. A member sends every heartbeat, to every other member, its
//! votes (its own verdict and the cluster's on each target), the operator writes it holds and
//! the serials it serves; a long report is split into parts that each stand alone, so nothing
//! waits for reassembly and a lost part costs only its own votes until the next heartbeat.
//!
//! [`Opener`] refuses, changing nothing, a message that comes from an address no member has,
//! is unsigned or wrongly signed, names another member than its source, is meant for another
//! member, is older than what the sender sent already (a replay), or was sent too far from our
//! clock. Pure: the caller gives the bytes, the source and the time.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::cluster::operator::{Stamp, Write};
use crate::config::cluster::Cluster;
use crate::model::chart::Health;
use crate::monitor::ProbeKey;

/// The format's version: a member refuses messages of another.
pub const VERSION: u8 = 1;
/// A part's body stays under this many bytes, so a datagram fits a common path MTU.
pub const PART_BYTES: usize = 1200;
/// How far a message's send time may be from the receiver's clock. Members keep their clocks
/// in step (NTP), as operator writes are ordered by them too.
pub const MAX_SKEW_MS: u64 = 30_000;

/// One datagram's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub v: u8,
    /// The sender's member name.
    pub from: String,
    /// The member it is meant for.
    pub to: String,
    /// When the sender started (ms since the Unix epoch): with `seq`, orders its messages
    /// across restarts.
    pub boot: u64,
    pub seq: u64,
    /// The sender's wall clock at sending, ms since the Unix epoch.
    pub sent: u64,
    /// The sender stops cleanly: count it out of the total until it is heard again.
    #[serde(default)]
    pub leaving: bool,
    /// The sender is in the primary component.
    pub primary: bool,
    /// This is part `part` of `parts` of one report.
    pub part: u16,
    pub parts: u16,
    #[serde(default)]
    pub votes: Vec<Vote>,
    #[serde(default)]
    pub ops: Vec<OpWrite>,
    #[serde(default)]
    pub serials: Vec<ZoneSerial>,
}

/// What the sender holds of one target: (wire key, its own verdict, the cluster's verdict as
/// it holds it), verdicts as 0 unknown, 1 up, 2 down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote(pub String, pub u8, pub u8);

impl Vote {
    pub fn new(key: String, local: Health, cluster: Health) -> Vote {
        Vote(key, health_code(local), health_code(cluster))
    }

    pub fn local(&self) -> Health {
        health_of(self.1)
    }

    pub fn cluster(&self) -> Health {
        health_of(self.2)
    }
}

fn health_code(h: Health) -> u8 {
    match h {
        Health::Unknown => 0,
        Health::Up => 1,
        Health::Down => 2,
    }
}

fn health_of(code: u8) -> Health {
    match code {
        1 => Health::Up,
        2 => Health::Down,
        _ => Health::Unknown,
    }
}

/// What an operator write is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKey {
    /// An answered address, drained in one pool (by the pool's name, lowercase, with the final
    /// dot) or in every pool.
    Drain { address: IpAddr, pool: Option<String> },
    /// A manual failback's hold on a pool, released.
    Release { pool: String },
}

/// The value of an operator write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpValue {
    /// Undrained (a drain's removal wins over the drain it undoes by being newer).
    Off,
    /// Drained.
    On,
    /// A release: its stamp says when.
    Released,
}

/// One operator write as sent: key, value and stamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpWrite {
    pub key: OpKey,
    pub value: OpValue,
    pub millis: u64,
    pub member: String,
}

impl OpWrite {
    pub fn of(key: &OpKey, w: &Write<OpValue>) -> OpWrite {
        OpWrite { key: key.clone(), value: w.value, millis: w.stamp.millis, member: w.stamp.member.clone() }
    }

    pub fn write(&self) -> Write<OpValue> {
        Write { stamp: Stamp { millis: self.millis, member: self.member.clone() }, value: self.value }
    }
}

/// A zone as the sender serves it: (apex, serial, hash of the content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneSerial(pub String, pub u32, pub u64);

/// A target's name on the wire: members with the same zone files give the same name to the
/// same (probe address, check). From the address, the check's name, type, port and timing;
/// not from paths (credentials files differ between members).
pub fn wire_key(key: &ProbeKey) -> String {
    let c = &key.check.0;
    let text = format!(
        "{}|{}|{}|{}|{:?}|{:?}|{:?}|{}|{}",
        key.addr,
        c.name,
        c.kind.name(),
        c.port,
        c.interval,
        c.timeout,
        c.retry_interval,
        c.fall,
        c.rise
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    data_encoding::HEXLOWER.encode(&digest.as_ref()[..8])
}

/// The header of a report: everything but its parts' items.
#[derive(Debug, Clone)]
pub struct Header {
    pub from: String,
    pub boot: u64,
    pub leaving: bool,
    pub primary: bool,
}

/// Splits one report into parts of at most about [`PART_BYTES`]: the operator writes and serials
/// first, then the votes. Always at least one part (a heartbeat with nothing else to say).
/// `seq` is advanced once per part.
pub fn split(
    head: &Header,
    to: &str,
    seq: &mut u64,
    sent: u64,
    votes: Vec<Vote>,
    ops: Vec<OpWrite>,
    serials: Vec<ZoneSerial>,
) -> Vec<Message> {
    let empty = |seq: u64| Message {
        v: VERSION,
        from: head.from.clone(),
        to: to.to_string(),
        boot: head.boot,
        seq,
        sent,
        leaving: head.leaving,
        primary: head.primary,
        part: 0,
        parts: 0,
        votes: Vec::new(),
        ops: Vec::new(),
        serials: Vec::new(),
    };
    let base = serde_json::to_vec(&empty(u64::MAX)).map_or(200, |b| b.len());
    let mut parts: Vec<Message> = Vec::new();
    let mut size = usize::MAX;
    // The part an item of `len` bytes goes in: the last, or a new one when it is full.
    fn room<'p>(
        size: &mut usize,
        parts: &'p mut Vec<Message>,
        len: usize,
        base: usize,
        empty: &dyn Fn(u64) -> Message,
    ) -> &'p mut Message {
        if size.saturating_add(len) > PART_BYTES {
            parts.push(empty(0));
            *size = base;
        }
        *size += len;
        parts.last_mut().expect("a part")
    }
    let len = |item: Result<Vec<u8>, serde_json::Error>| item.map_or(100, |b| b.len()) + 1;
    for o in ops {
        room(&mut size, &mut parts, len(serde_json::to_vec(&o)), base, &empty).ops.push(o);
    }
    for s in serials {
        room(&mut size, &mut parts, len(serde_json::to_vec(&s)), base, &empty).serials.push(s);
    }
    for v in votes {
        room(&mut size, &mut parts, len(serde_json::to_vec(&v)), base, &empty).votes.push(v);
    }
    if parts.is_empty() {
        parts.push(empty(0));
    }
    let n = parts.len() as u16;
    for (i, p) in parts.iter_mut().enumerate() {
        *seq += 1;
        p.seq = *seq;
        p.part = i as u16;
        p.parts = n;
    }
    parts
}

/// The ring HMAC key of a `[keys]` entry.
pub fn hmac_key(key: &crate::config::keys::Key) -> hmac::Key {
    use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
    let algorithm = match key.algorithm {
        TsigAlgorithm::HmacSha384 => hmac::HMAC_SHA384,
        TsigAlgorithm::HmacSha512 => hmac::HMAC_SHA512,
        _ => hmac::HMAC_SHA256,
    };
    hmac::Key::new(algorithm, &key.secret)
}

fn tag_len(key: &hmac::Key) -> usize {
    key.algorithm().digest_algorithm().output_len()
}

/// A message as a datagram: the HMAC of the body, then the body.
pub fn seal(key: &hmac::Key, m: &Message) -> Vec<u8> {
    let body = serde_json::to_vec(m).expect("a message serializes");
    let tag = hmac::sign(key, &body);
    let mut out = Vec::with_capacity(tag.as_ref().len() + body.len());
    out.extend_from_slice(tag.as_ref());
    out.extend_from_slice(&body);
    out
}

/// Why a datagram changed nothing. Each is logged (rate-limited) and counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("from {0}, which is no member's address: cluster messages are taken from members only")]
    Stranger(SocketAddr),
    #[error("from {0}: unsigned or wrongly signed (another key, or altered on the way)")]
    BadSignature(SocketAddr),
    #[error("from {0}: signed, but not a message of this version of weiche: {1}")]
    Garbled(SocketAddr, String),
    #[error("from {from}: names member {name:?}, whose address is {expected}")]
    WrongSource { from: SocketAddr, name: String, expected: IpAddr },
    #[error("from member {from}: meant for member {to:?}")]
    NotForUs { from: String, to: String },
    #[error(
        "from member {from}: replayed or reordered (boot {boot}, sequence {seq}; already had {had_boot}/{had_seq})"
    )]
    Replayed { from: String, boot: u64, seq: u64, had_boot: u64, had_seq: u64 },
    #[error(
        "from member {from}: sent {skew_ms} ms away from our clock (at most {MAX_SKEW_MS} ms): clocks out of step, or a replay"
    )]
    Skewed { from: String, skew_ms: u64 },
}

impl Rejected {
    /// A short name for the metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejected::Stranger(_) => "stranger",
            Rejected::BadSignature(_) => "signature",
            Rejected::Garbled(..) => "garbled",
            Rejected::WrongSource { .. } => "source",
            Rejected::NotForUs { .. } => "recipient",
            Rejected::Replayed { .. } => "replay",
            Rejected::Skewed { .. } => "clock",
        }
    }
}

/// Opens datagrams for one member: checks source, signature, names and freshness, and keeps
/// what each member sent last.
pub struct Opener {
    cluster: Arc<Cluster>,
    key: hmac::Key,
    /// Per member: the (boot, seq) of the newest message taken.
    last: Vec<(u64, u64)>,
}

impl Opener {
    pub fn new(cluster: Arc<Cluster>) -> Opener {
        let key = hmac_key(&cluster.key);
        let last = vec![(0, 0); cluster.members.len()];
        Opener { cluster, key, last }
    }

    /// The member a datagram from `from` is, and what it says; `now_ms` is our wall clock.
    pub fn open(&mut self, bytes: &[u8], from: SocketAddr, now_ms: u64) -> Result<(usize, Message), Rejected> {
        let me = self.cluster.me;
        let known = self.cluster.members.iter().enumerate().any(|(i, m)| i != me && m.address.ip() == from.ip());
        if !known {
            return Err(Rejected::Stranger(from));
        }
        let n = tag_len(&self.key);
        if bytes.len() <= n || hmac::verify(&self.key, &bytes[n..], &bytes[..n]).is_err() {
            return Err(Rejected::BadSignature(from));
        }
        let m: Message = serde_json::from_slice(&bytes[n..]).map_err(|e| Rejected::Garbled(from, e.to_string()))?;
        if m.v != VERSION {
            return Err(Rejected::Garbled(from, format!("format version {}, this weiche speaks {VERSION}", m.v)));
        }
        let Some(i) = self.cluster.members.iter().position(|x| x.name == m.from).filter(|&i| i != me) else {
            return Err(Rejected::Garbled(from, format!("no member named {:?}", m.from)));
        };
        let expected = self.cluster.members[i].address.ip();
        if expected != from.ip() {
            return Err(Rejected::WrongSource { from, name: m.from, expected });
        }
        if m.to != self.cluster.members[me].name {
            return Err(Rejected::NotForUs { from: m.from, to: m.to });
        }
        let (had_boot, had_seq) = self.last[i];
        if (m.boot, m.seq) <= (had_boot, had_seq) {
            return Err(Rejected::Replayed { from: m.from, boot: m.boot, seq: m.seq, had_boot, had_seq });
        }
        let skew_ms = m.sent.abs_diff(now_ms);
        if skew_ms > MAX_SKEW_MS {
            return Err(Rejected::Skewed { from: m.from, skew_ms });
        }
        self.last[i] = (m.boot, m.seq);
        Ok((i, m))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::cluster::{Member, Minority};

    pub(crate) fn cluster(me: usize, secret: &str) -> Arc<Cluster> {
        let member = |name: &str, addr: &str, weight| Member {
            name: name.into(),
            site: name.into(),
            address: addr.parse().unwrap(),
            weight,
            witness: false,
        };
        Arc::new(Cluster {
            me,
            members: vec![
                member("a", "127.0.40.1:8553", 5),
                member("b", "127.0.40.2:8553", 6),
                member("c", "127.0.40.3:8553", 8),
            ],
            listen: "127.0.40.1:8553".parse().unwrap(),
            key: crate::config::keys::Key::new("cluster", "hmac-sha256", secret).unwrap(),
            minority: Minority::Withdraw,
            heartbeat: std::time::Duration::from_millis(500),
            at: crate::model::position::Location { file: std::path::Path::new("weiche.toml").into(), line: 1, col: 1 },
        })
    }

    const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=";

    fn head(from: &str) -> Header {
        Header { from: from.into(), boot: 1_000, leaving: false, primary: true }
    }

    fn one(from: &str, to: &str, seq: &mut u64, sent: u64) -> Message {
        split(&head(from), to, seq, sent, vec![Vote::new("k".into(), Health::Up, Health::Up)], vec![], vec![]).remove(0)
    }

    #[test]
    fn a_sealed_message_opens_once_and_only_from_its_member() {
        let b = cluster(1, SECRET);
        let key = hmac_key(&b.key);
        let mut opener = Opener::new(b.clone());
        let a_addr: SocketAddr = "127.0.40.1:8553".parse().unwrap();
        let mut seq = 0;
        let m = one("a", "b", &mut seq, 50_000);
        let bytes = seal(&key, &m);
        assert_eq!(opener.open(&bytes, a_addr, 50_100), Ok((0, m.clone())));
        // The same datagram again is a replay.
        assert!(matches!(opener.open(&bytes, a_addr, 50_100), Err(Rejected::Replayed { .. })));
        // From an address no member has, even when well signed.
        let m2 = one("a", "b", &mut seq, 50_000);
        let stranger: SocketAddr = "127.0.40.9:8553".parse().unwrap();
        assert_eq!(opener.open(&seal(&key, &m2), stranger, 50_100), Err(Rejected::Stranger(stranger)));
        // From c's address, naming a.
        let c_addr: SocketAddr = "127.0.40.3:9999".parse().unwrap();
        assert!(matches!(opener.open(&seal(&key, &m2), c_addr, 50_100), Err(Rejected::WrongSource { .. })));
        // Altered on the way: one byte of the body.
        let mut bad = seal(&key, &m2);
        let last = bad.len() - 2;
        bad[last] ^= 1;
        assert_eq!(opener.open(&bad, a_addr, 50_100), Err(Rejected::BadSignature(a_addr)));
        // Unsigned: the body alone.
        let body = serde_json::to_vec(&m2).unwrap();
        assert_eq!(opener.open(&body, a_addr, 50_100), Err(Rejected::BadSignature(a_addr)));
        assert_eq!(opener.open(&[], a_addr, 50_100), Err(Rejected::BadSignature(a_addr)));
        // Another key.
        let other = hmac_key(&cluster(0, "b3RoZXIta2V5").key);
        assert_eq!(opener.open(&seal(&other, &m2), a_addr, 50_100), Err(Rejected::BadSignature(a_addr)));
        // Meant for c.
        let to_c = one("a", "c", &mut seq, 50_000);
        assert!(matches!(opener.open(&seal(&key, &to_c), a_addr, 50_100), Err(Rejected::NotForUs { .. })));
        // Our own name (a message reflected back to us) is no member to take from.
        let mine = one("b", "b", &mut seq, 50_000);
        assert!(matches!(
            opener.open(&seal(&key, &mine), "127.0.40.2:1".parse().unwrap(), 50_100),
            Err(Rejected::Stranger(_))
        ));
        // Sent too far from our clock.
        let old = one("a", "b", &mut seq, 1_000);
        assert!(matches!(opener.open(&seal(&key, &old), a_addr, 50_000), Err(Rejected::Skewed { .. })));
        // None of the refused ones moved the replay window: the next in sequence still opens,
        // an older one does not.
        let next = one("a", "b", &mut seq, 50_000);
        assert!(opener.open(&seal(&key, &next), a_addr, 50_200).is_ok());
        assert!(matches!(opener.open(&seal(&key, &m2), a_addr, 50_200), Err(Rejected::Replayed { .. })));
    }

    /// A restart of the sender (a later boot) starts its sequence over and is taken; a message
    /// of the earlier boot after that is a replay.
    #[test]
    fn a_restarted_sender_is_taken_and_its_old_messages_are_not() {
        let b = cluster(1, SECRET);
        let key = hmac_key(&b.key);
        let mut opener = Opener::new(b);
        let a_addr: SocketAddr = "127.0.40.1:8553".parse().unwrap();
        let mut seq = 0;
        let before = one("a", "b", &mut seq, 10_000);
        let late = one("a", "b", &mut seq, 10_000);
        assert!(opener.open(&seal(&key, &before), a_addr, 10_000).is_ok());
        let mut seq2 = 0;
        let mut after =
            split(&Header { boot: 2_000, ..head("a") }, "b", &mut seq2, 10_500, vec![], vec![], vec![]).remove(0);
        assert!(opener.open(&seal(&key, &after), a_addr, 10_500).is_ok());
        assert!(matches!(opener.open(&seal(&key, &late), a_addr, 10_500), Err(Rejected::Replayed { .. })));
        after.seq = 5;
        assert!(opener.open(&seal(&key, &after), a_addr, 10_500).is_ok());
    }

    /// 1,000 votes, 20 operator writes and 50 zones split into parts that each fit a datagram
    /// and together carry everything once, in order.
    #[test]
    fn a_long_report_splits_into_parts_that_fit() {
        let votes: Vec<Vote> = (0..1000)
            .map(|i| {
                Vote::new(format!("{:016x}", i * 7919), Health::Up, if i % 3 == 0 { Health::Down } else { Health::Up })
            })
            .collect();
        let ops: Vec<OpWrite> = (0..20)
            .map(|i| OpWrite {
                key: OpKey::Drain {
                    address: format!("192.0.2.{i}").parse().unwrap(),
                    pool: Some("www.example.com.".into()),
                },
                value: OpValue::On,
                millis: 1_700_000_000_000 + i,
                member: "a".into(),
            })
            .collect();
        let serials: Vec<ZoneSerial> =
            (0..50).map(|i| ZoneSerial(format!("zone{i}.example."), 2026120100 + i, u64::MAX - i as u64)).collect();
        let mut seq = 10;
        let parts = split(&head("a"), "b", &mut seq, 1, votes.clone(), ops.clone(), serials.clone());
        let key = hmac_key(&cluster(0, SECRET).key);
        for (i, p) in parts.iter().enumerate() {
            assert_eq!((p.part as usize, p.parts as usize, p.seq), (i, parts.len(), 11 + i as u64));
            let len = seal(&key, p).len();
            assert!(len <= PART_BYTES + 100, "part {i}: {len} bytes");
        }
        assert_eq!(seq, 10 + parts.len() as u64);
        let all = |f: fn(&Message) -> usize| parts.iter().map(f).sum::<usize>();
        assert_eq!((all(|p| p.votes.len()), all(|p| p.ops.len()), all(|p| p.serials.len())), (1000, 20, 50));
        let got: Vec<Vote> = parts.iter().flat_map(|p| p.votes.clone()).collect();
        assert_eq!(got, votes);
        assert!(parts.len() < 40, "{} parts", parts.len());
        // Nothing to say is still one part: the heartbeat.
        let beat = split(&head("a"), "b", &mut seq, 1, vec![], vec![], vec![]);
        assert_eq!((beat.len(), beat[0].parts), (1, 1));
    }

    #[test]
    fn wire_keys_are_stable_and_ignore_paths() {
        let check = crate::model::pool::testing::tcp_check();
        let k = ProbeKey::new("192.0.2.1:80".parse().unwrap(), &check);
        assert_eq!(wire_key(&k), wire_key(&k.clone()));
        assert_eq!(wire_key(&k).len(), 16);
        let other = ProbeKey::new("192.0.2.2:80".parse().unwrap(), &check);
        assert_ne!(wire_key(&k), wire_key(&other));
        let mut slower = check.clone();
        slower.interval *= 2;
        assert_ne!(wire_key(&k), wire_key(&ProbeKey::new("192.0.2.1:80".parse().unwrap(), &slower)));
    }
}
