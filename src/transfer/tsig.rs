//! TSIG (RFC 8945): keys, verifying signed requests, signing responses, including every message
//! of a multi-message transfer.
//!
//! hickory-proto parses a request's TSIG and computes the HMACs; the response side is ours
//! because our responses are built as wire bytes, and because messages after the first of a
//! transfer are signed over the prior MAC, the message and the timers only (§5.3.1).

use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::rr::rdata::tsig::signed_bitmessage_to_buf;

use crate::config::keys::Key;
use crate::model::name::Name;
use crate::model::rtype;

/// Allowed clock difference (RFC 8945 recommends 300 s).
pub const FUDGE: u16 = 300;

/// TSIG error codes (RFC 8945 §3.2).
pub const BADSIG: u16 = 16;
pub const BADKEY: u16 = 17;
pub const BADTIME: u16 = 18;

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A request that was signed with a key we know and whose signature holds.
#[derive(Debug, Clone)]
pub struct Signed {
    pub key: Key,
    pub mac: Vec<u8>,
}

/// Why a signed request is not accepted, and what to answer (RCODE NOTAUTH with this error).
#[derive(Debug, Clone)]
pub enum Failure {
    /// Unknown key or algorithm: answered with an unsigned TSIG carrying BADKEY.
    BadKey { key_name: Name, algorithm: Name },
    /// Wrong MAC: unsigned TSIG with BADSIG.
    BadSig { key: Key },
    /// Too far from our clock: signed TSIG with BADTIME and our time.
    BadTime { signed: Box<Signed>, their_time: u64 },
    /// The TSIG record itself could not be read.
    Malformed,
}

impl Failure {
    pub fn describe(&self) -> String {
        match self {
            Failure::BadKey { key_name, .. } => format!("BADKEY: unknown key {key_name}"),
            Failure::BadSig { key } => format!("BADSIG: wrong signature for key {}", key.name),
            Failure::BadTime { their_time, .. } => format!("BADTIME: signed at {their_time}, our time {}", now()),
            Failure::Malformed => "malformed TSIG record".into(),
        }
    }
}

/// Verifies a signed request against `keys`.
pub fn verify(msg: &[u8], keys: &[Key]) -> Result<Signed, Failure> {
    let (mut tbv, record) = signed_bitmessage_to_buf(msg, None, true).map_err(|_| Failure::Malformed)?;
    // hickory writes the header again from what it parsed, which drops bits it has no field for
    // (Z): the MAC covers the flags as sent (found by fuzzing: a request with Z set that its
    // client signed correctly failed with BADSIG).
    tbv[2..4].copy_from_slice(&msg[2..4]);
    let key_name = Name::parse(&record.name.to_ascii(), Some(&Name::root())).map_err(|_| Failure::Malformed)?;
    let tsig = &record.data;
    let key = keys.iter().find(|k| k.name.key() == key_name.key() && k.algorithm == tsig.algorithm);
    let Some(key) = key else {
        let algorithm =
            Name::parse(&tsig.algorithm.to_name().to_ascii(), Some(&Name::root())).unwrap_or_else(|_| Name::root());
        return Err(Failure::BadKey { key_name, algorithm });
    };
    if key.algorithm.verify_mac(&key.secret, &tbv, &tsig.mac).is_err() {
        return Err(Failure::BadSig { key: key.clone() });
    }
    let signed = Signed { key: key.clone(), mac: tsig.mac.clone() };
    if now().abs_diff(tsig.time) > tsig.fudge as u64 {
        return Err(Failure::BadTime { signed: Box::new(signed), their_time: tsig.time });
    }
    Ok(signed)
}

/// The original message ID a request's TSIG carries (the header's, unless rewritten).
fn message_id(msg: &[u8]) -> u16 {
    u16::from_be_bytes([msg[0], msg[1]])
}

fn push_u48(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes()[2..]);
}

/// Signs responses to one request: the first message over the request's MAC and the full TSIG
/// variables, each later one (of a transfer) over the prior MAC and the timers.
pub struct ResponseSigner {
    key: Key,
    prior_mac: Vec<u8>,
    first: bool,
    time: u64,
}

impl ResponseSigner {
    pub fn new(signed: &Signed) -> ResponseSigner {
        ResponseSigner { key: signed.key.clone(), prior_mac: signed.mac.clone(), first: true, time: now() }
    }

    /// Appends a TSIG record to `msg` (a whole DNS message) and counts it in ARCOUNT.
    pub fn sign(&mut self, msg: &mut Vec<u8>) {
        self.sign_with(msg, 0, &[]);
    }

    fn sign_with(&mut self, msg: &mut Vec<u8>, error: u16, other: &[u8]) {
        let mut tbs = Vec::with_capacity(msg.len() + 128);
        tbs.extend_from_slice(&(self.prior_mac.len() as u16).to_be_bytes());
        tbs.extend_from_slice(&self.prior_mac);
        tbs.extend_from_slice(msg);
        if self.first {
            variables(&mut tbs, &self.key, self.time, error, other);
        } else {
            push_u48(&mut tbs, self.time);
            tbs.extend_from_slice(&FUDGE.to_be_bytes());
        }
        let mac = self.key.mac(&tbs);
        append_record(msg, &self.key.name, &alg_name(&self.key), self.time, &mac, message_id(msg), error, other);
        self.prior_mac = mac;
        self.first = false;
    }
}

fn alg_name(key: &Key) -> Name {
    Name::parse(&key.algorithm.to_name().to_ascii(), Some(&Name::root())).expect("algorithm names are valid")
}

/// The TSIG variables covered by a first message's MAC (RFC 8945 §4.3.3), names in canonical form.
fn variables(out: &mut Vec<u8>, key: &Key, time: u64, error: u16, other: &[u8]) {
    out.extend_from_slice(&key.name.key());
    out.extend_from_slice(&255u16.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&alg_name(key).key());
    push_u48(out, time);
    out.extend_from_slice(&FUDGE.to_be_bytes());
    out.extend_from_slice(&error.to_be_bytes());
    out.extend_from_slice(&(other.len() as u16).to_be_bytes());
    out.extend_from_slice(other);
}

#[allow(clippy::too_many_arguments)]
fn append_record(
    msg: &mut Vec<u8>,
    key_name: &Name,
    alg: &Name,
    time: u64,
    mac: &[u8],
    id: u16,
    error: u16,
    other: &[u8],
) {
    msg.extend_from_slice(key_name.wire());
    msg.extend_from_slice(&rtype::TSIG.to_be_bytes());
    msg.extend_from_slice(&255u16.to_be_bytes());
    msg.extend_from_slice(&0u32.to_be_bytes());
    let mut rd = Vec::with_capacity(64 + mac.len());
    rd.extend_from_slice(alg.wire());
    push_u48(&mut rd, time);
    rd.extend_from_slice(&FUDGE.to_be_bytes());
    rd.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    rd.extend_from_slice(mac);
    rd.extend_from_slice(&id.to_be_bytes());
    rd.extend_from_slice(&error.to_be_bytes());
    rd.extend_from_slice(&(other.len() as u16).to_be_bytes());
    rd.extend_from_slice(other);
    msg.extend_from_slice(&(rd.len() as u16).to_be_bytes());
    msg.extend_from_slice(&rd);
    let ar = u16::from_be_bytes([msg[10], msg[11]]) + 1;
    msg[10..12].copy_from_slice(&ar.to_be_bytes());
}

/// Turns `msg` (a response) into the answer to a request that failed verification: RCODE
/// NOTAUTH with a TSIG record carrying the error (signed only for BADTIME, per RFC 8945 §5.2).
pub fn refuse(msg: &mut Vec<u8>, failure: &Failure) {
    const NOTAUTH: u16 = 9;
    let flags = (u16::from_be_bytes([msg[2], msg[3]]) & !0x000f) | NOTAUTH;
    msg[2..4].copy_from_slice(&flags.to_be_bytes());
    let id = message_id(msg);
    match failure {
        Failure::BadKey { key_name, algorithm } => append_record(msg, key_name, algorithm, now(), &[], id, BADKEY, &[]),
        Failure::BadSig { key } => append_record(msg, &key.name, &alg_name(key), now(), &[], id, BADSIG, &[]),
        Failure::BadTime { signed, .. } => {
            let mut other = Vec::new();
            push_u48(&mut other, now());
            ResponseSigner::new(signed).sign_with(msg, BADTIME, &other);
        }
        Failure::Malformed => {}
    }
}

/// Signs a request we send (NOTIFY): returns the MAC, to check the answer with.
pub fn sign_request(msg: &mut Vec<u8>, key: &Key) -> Vec<u8> {
    let time = now();
    let mut tbs = msg.clone();
    variables(&mut tbs, key, time, 0, &[]);
    let mac = key.mac(&tbs);
    append_record(msg, &key.name, &alg_name(key), time, &mac, message_id(msg), 0, &[]);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
    use hickory_proto::rr::{Name as HName, RecordType, TSigner};

    const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=";

    fn key() -> Key {
        Key::new("xfr", "hmac-sha256", SECRET).unwrap()
    }

    fn signed_query(k: &str, secret: &str, time: u64) -> Vec<u8> {
        let signer = TSigner::new(
            data_encoding::BASE64.decode(secret.as_bytes()).unwrap(),
            TsigAlgorithm::HmacSha256,
            HName::from_ascii(k).unwrap(),
            FUDGE,
        )
        .unwrap();
        let mut m = Message::query();
        m.metadata.id = 0x4242;
        m.add_query(Query::query(HName::from_ascii("example.com.").unwrap(), RecordType::AXFR));
        let (tsig, _) = signer.sign_message(&m, time).unwrap();
        m.set_signature(tsig);
        m.to_vec().unwrap()
    }

    #[test]
    fn verifies_requests_signed_by_hickory() {
        let q = signed_query("xfr.", SECRET, now());
        let s = verify(&q, &[key()]).unwrap();
        assert_eq!(s.key.name.to_string(), "xfr.");
        let other = "b3RoZXItb3RoZXItb3RoZXItb3RoZXItb3RoZXItMTI=";
        assert!(matches!(verify(&signed_query("xfr.", other, now()), &[key()]), Err(Failure::BadSig { .. })));
        assert!(matches!(verify(&signed_query("nope.", SECRET, now()), &[key()]), Err(Failure::BadKey { .. })));
        assert!(matches!(verify(&signed_query("xfr.", SECRET, now() - 1000), &[key()]), Err(Failure::BadTime { .. })));
    }

    /// Found by fuzzing: the MAC covers the flags as sent, including bits hickory does not keep.
    #[test]
    fn verifies_requests_with_every_flag_bit() {
        let mut q = signed_query("xfr.", SECRET, now());
        let tsig_at = q.len() - (5 + 10 + 13 + 6 + 2 + 2 + 32 + 6);
        q.truncate(tsig_at);
        q[10..12].copy_from_slice(&[0, 0]);
        for flags in [0x0000u16, 0x0040, 0x01f9, 0x7fff] {
            let mut m = q.clone();
            m[2..4].copy_from_slice(&flags.to_be_bytes());
            sign_request(&mut m, &key());
            assert!(verify(&m, &[key()]).is_ok(), "flags {flags:#06x}");
        }
    }

    #[test]
    fn signed_responses_verify_with_hickory_including_later_messages() {
        let q = signed_query("xfr.", SECRET, now());
        let s = verify(&q, &[key()]).unwrap();
        let signer = TSigner::new(
            data_encoding::BASE64.decode(SECRET.as_bytes()).unwrap(),
            TsigAlgorithm::HmacSha256,
            HName::from_ascii("xfr.").unwrap(),
            FUDGE,
        )
        .unwrap();
        let mut rs = ResponseSigner::new(&s);
        let mut prev = s.mac.clone();
        for first in [true, false, false] {
            // A minimal response: header, question.
            let mut msg = q[..12].to_vec();
            msg[2] |= 0x84;
            msg[10..12].copy_from_slice(&[0, 0]);
            msg.extend_from_slice(b"\x07example\x03com\x00\x00\xfc\x00\x01");
            rs.sign(&mut msg);
            // hickory's verifier checks the first message with full variables and later ones
            // with timers only, as RFC 8945 §5.3.1 says.
            let (mac, _, _) = signer.verify_message_byte(&msg, Some(&prev), first).unwrap();
            prev = mac;
        }
    }

    #[test]
    fn bind_key_files() {
        let k = Key::from_bind_file(&format!(
            "key \"xfr-key\" {{\n\talgorithm hmac-sha512;\n\tsecret \"{SECRET}\";\n}};\n"
        ))
        .unwrap();
        assert_eq!((k.name.to_string().as_str(), k.algorithm.clone()), ("xfr-key.", TsigAlgorithm::HmacSha512));
        assert!(Key::from_bind_file("key \"x\" { algorithm hmac-md5; secret \"AAAA\"; };").is_err());
        assert!(Key::new("k", "hmac-sha256", "not base64!").is_err());
    }
}
