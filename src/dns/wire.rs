//! The query path's wire format: reading a query without allocating, and writing a response
//! with name compression straight into a reused buffer.
//!
//! Everything here is bounded by the packet: no loop follows a pointer forward, no name grows
//! past 255 bytes, no count is trusted beyond the bytes that are there.

use crate::model::name::{MAX_LABEL_LEN, MAX_NAME_LEN, wire_len};
use crate::model::rtype;
use crate::model::snapshot::ApexRdata;
use crate::model::zone::RRset;

pub const HEADER_LEN: usize = 12;

pub mod rcode {
    pub const NOERROR: u8 = 0;
    pub const FORMERR: u8 = 1;
    pub const SERVFAIL: u8 = 2;
    pub const NXDOMAIN: u8 = 3;
    pub const NOTIMP: u8 = 4;
    pub const REFUSED: u8 = 5;
    /// Extended RCODE 16 (RFC 6891): upper 8 bits go in the OPT record.
    pub const BADVERS: u16 = 16;
}

pub mod opcode {
    pub const QUERY: u8 = 0;
    pub const NOTIFY: u8 = 4;
}

pub mod flags {
    pub const QR: u16 = 0x8000;
    pub const AA: u16 = 0x0400;
    pub const TC: u16 = 0x0200;
    pub const RD: u16 = 0x0100;
    pub const CD: u16 = 0x0010;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    pub payload: u16,
    pub version: u8,
    pub dnssec_ok: bool,
}

/// What a message asks of us, beyond its question: the road it takes through `service`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Answered from the snapshot: opcode QUERY, or any opcode we answer NOTIMP.
    Query,
    /// AXFR or IXFR (opcode QUERY).
    Transfer,
    /// NOTIFY (RFC 1996).
    Notify,
}

/// A parsed query. The name is kept twice: as sent (for the echo) and in lower case (for lookups).
pub struct Query<'a> {
    /// The whole message as received (a TSIG is verified over it).
    pub message: &'a [u8],
    pub id: u16,
    pub flags: u16,
    pub opcode: u8,
    /// The question section as sent (name, type, class), copied into the response unchanged.
    pub question: &'a [u8],
    key: [u8; MAX_NAME_LEN],
    key_len: u8,
    /// Offsets of each label in the name; `label_count` of them.
    labels: [u8; 128],
    label_count: u8,
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<Edns>,
    /// More than one OPT record was present (RFC 6891 §6.1.1: FORMERR).
    pub multiple_opt: bool,
    /// The serial of an SOA in the authority section (what an IXFR client has).
    pub authority_serial: Option<u32>,
    /// The additional section ends with a TSIG record: the message is signed (RFC 8945 §5.1
    /// puts TSIG last; a message with one anywhere else is refused with FORMERR).
    pub tsig: bool,
}

/// Why a packet is not a query we can answer normally.
#[derive(Debug, PartialEq, Eq)]
pub enum Reject {
    /// Not worth a response (too short to echo, or itself a response).
    Drop,
    /// Answer with this header-only error: id, flags of the request, rcode.
    Header { id: u16, flags: u16, rcode: u8 },
}

impl<'a> Query<'a> {
    pub fn key(&self) -> &[u8] {
        &self.key[..self.key_len as usize]
    }

    /// Which road the message takes; signed messages also go to `xfr`, whatever their kind.
    pub fn kind(&self) -> Kind {
        match self.opcode {
            opcode::NOTIFY => Kind::Notify,
            opcode::QUERY if self.qtype == rtype::AXFR || self.qtype == rtype::IXFR => Kind::Transfer,
            _ => Kind::Query,
        }
    }

    pub fn label_count(&self) -> usize {
        self.label_count as usize
    }

    /// The lower-case key of the name with its first `skip` labels removed.
    pub fn suffix_key(&self, skip: usize) -> &[u8] {
        if skip >= self.label_count as usize {
            &self.key[self.key_len as usize - 1..self.key_len as usize]
        } else {
            &self.key[self.labels[skip] as usize..self.key_len as usize]
        }
    }

    /// Offset in the message of the name with `skip` labels removed (the question starts at 12).
    pub fn suffix_offset(&self, skip: usize) -> u16 {
        let off =
            if skip >= self.label_count as usize { self.key_len as usize - 1 } else { self.labels[skip] as usize };
        (HEADER_LEN + off) as u16
    }

    #[inline(always)]
    pub fn parse(msg: &'a [u8]) -> Result<Query<'a>, Reject> {
        if msg.len() < HEADER_LEN {
            return Err(Reject::Drop);
        }
        let id = u16::from_be_bytes([msg[0], msg[1]]);
        let flags = u16::from_be_bytes([msg[2], msg[3]]);
        if flags & flags::QR != 0 {
            return Err(Reject::Drop);
        }
        let count = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]);
        let (qd, an, ns, ar) = (count(4), count(6), count(8), count(10));
        let opcode = ((flags >> 11) & 0xf) as u8;
        let formerr = Reject::Header { id, flags, rcode: rcode::FORMERR };
        if qd != 1 {
            let rcode = if opcode != 0 { rcode::NOTIMP } else { rcode::FORMERR };
            return Err(Reject::Header { id, flags, rcode });
        }
        let mut q = Query {
            message: msg,
            id,
            flags,
            opcode,
            question: &[],
            key: [0; MAX_NAME_LEN],
            key_len: 0,
            labels: [0; 128],
            label_count: 0,
            qtype: 0,
            qclass: 0,
            edns: None,
            multiple_opt: false,
            authority_serial: None,
            tsig: false,
        };
        // The question name: uncompressed labels only (nothing precedes it to point at).
        let mut i = HEADER_LEN;
        loop {
            let len = *msg.get(i).ok_or(Reject::Header { id, flags, rcode: rcode::FORMERR })? as usize;
            if len == 0 {
                q.key[q.key_len as usize] = 0;
                q.key_len += 1;
                i += 1;
                break;
            }
            if len > MAX_LABEL_LEN || q.key_len as usize + 1 + len + 1 > MAX_NAME_LEN {
                return Err(formerr);
            }
            let label = msg.get(i + 1..i + 1 + len).ok_or(Reject::Header { id, flags, rcode: rcode::FORMERR })?;
            let at = q.key_len as usize;
            q.labels[q.label_count as usize] = at as u8;
            q.label_count += 1;
            q.key[at] = len as u8;
            for (k, b) in label.iter().enumerate() {
                q.key[at + 1 + k] = b.to_ascii_lowercase();
            }
            q.key_len += 1 + len as u8;
            i += 1 + len;
        }
        let fixed = msg.get(i..i + 4).ok_or(Reject::Header { id, flags, rcode: rcode::FORMERR })?;
        q.qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        q.qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
        i += 4;
        q.question = &msg[HEADER_LEN..i];
        // Answer and authority sections are skipped; the additional section is read for OPT and
        // for a TSIG at its end. This one pass is all the listeners need to route the message.
        let records = an as usize + ns as usize + ar as usize;
        for n in 0..records {
            let name_end = skip_name(msg, i).ok_or(Reject::Header { id, flags, rcode: rcode::FORMERR })?;
            let f = msg.get(name_end..name_end + 10).ok_or(Reject::Header { id, flags, rcode: rcode::FORMERR })?;
            let rt = u16::from_be_bytes([f[0], f[1]]);
            let rdlen = u16::from_be_bytes([f[8], f[9]]) as usize;
            let end = name_end + 10 + rdlen;
            if end > msg.len() {
                return Err(Reject::Header { id, flags, rcode: rcode::FORMERR });
            }
            if rt == rtype::SOA && (an as usize..an as usize + ns as usize).contains(&n) && rdlen >= 22 {
                // The serial is the first of the five numbers that end the RDATA.
                let at = end - 20;
                q.authority_serial = Some(u32::from_be_bytes([msg[at], msg[at + 1], msg[at + 2], msg[at + 3]]));
            }
            if rt == rtype::OPT && n >= an as usize + ns as usize {
                if q.edns.is_some() {
                    q.multiple_opt = true;
                }
                // RFC 6891 §6.1.1: OPT's owner is the root.
                if name_end != i + 1 || msg[i] != 0 {
                    return Err(Reject::Header { id, flags, rcode: rcode::FORMERR });
                }
                if !options_well_formed(&msg[name_end + 10..end]) {
                    return Err(Reject::Header { id, flags, rcode: rcode::FORMERR });
                }
                q.edns = Some(Edns {
                    payload: u16::from_be_bytes([f[2], f[3]]),
                    version: f[5],
                    dnssec_ok: f[6] & 0x80 != 0,
                });
            }
            if rt == rtype::TSIG {
                // RFC 8945 §5.1: a TSIG anywhere but last in the additional section is FORMERR.
                // (hickory's verifier, given a second TSIG before the last, trips an assertion.)
                if ar == 0 || n + 1 != records {
                    return Err(Reject::Header { id, flags, rcode: rcode::FORMERR });
                }
                q.tsig = true;
            }
            i = end;
        }
        Ok(q)
    }
}

/// Whether OPT's RDATA is a well-formed list of options (RFC 6891 §6.1.2), each within it, and a
/// COOKIE among them of a length RFC 7873 §5.2.2 allows: a client cookie of 8 bytes, alone or
/// with a server cookie of 8 to 32.
fn options_well_formed(mut rdata: &[u8]) -> bool {
    const COOKIE: u16 = 10;
    while !rdata.is_empty() {
        let [c0, c1, l0, l1, rest @ ..] = rdata else { return false };
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        if rest.len() < len || (u16::from_be_bytes([*c0, *c1]) == COOKIE && !(len == 8 || (16..=40).contains(&len))) {
            return false;
        }
        rdata = &rest[len..];
    }
    true
}

/// The end of a (possibly compressed) name at `start`, or None when it is malformed.
fn skip_name(msg: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    loop {
        let b = *msg.get(i)?;
        match b & 0xc0 {
            0x00 if b == 0 => return Some(i + 1),
            0x00 => i += 1 + b as usize,
            0xc0 => {
                msg.get(i + 1)?;
                // A pointer ends the name here; it must point backwards (no loops).
                let target = (((b & 0x3f) as usize) << 8) | msg[i + 1] as usize;
                if target >= start {
                    return None;
                }
                return Some(i + 2);
            }
            _ => return None,
        }
    }
}

/// Most names remembered for compression in one response.
const MAX_KNOWN: usize = 64;

/// Writes a response into a buffer. The header and question are written by `begin`; sections
/// follow in order; `finish` fills in the counts.
pub struct Writer<'b> {
    pub buf: &'b mut Vec<u8>,
    limit: usize,
    known: [u16; MAX_KNOWN],
    n_known: usize,
    pub counts: [u16; 3],
    pub truncated: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Answer = 0,
    Authority = 1,
    Additional = 2,
}

/// Who owns a record being written.
#[derive(Clone, Copy)]
pub enum Owner<'n> {
    /// The question's name, as the query wrote it: a pointer to offset 12.
    Question,
    /// A name in wire form, compressed against the message.
    Name(&'n [u8]),
}

impl<'b> Writer<'b> {
    /// Starts a response: header (counts filled in by `finish`) and the question copied as sent.
    /// `limit` is the largest size the sections may reach (room for OPT already taken off).
    pub fn begin(buf: &'b mut Vec<u8>, q: &Query<'_>, limit: usize) -> Writer<'b> {
        buf.clear();
        let [i0, i1] = q.id.to_be_bytes();
        // QDCOUNT 1; flags and the other counts are written by `finish`.
        buf.extend_from_slice(&[i0, i1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        buf.extend_from_slice(q.question);
        let mut w = Writer { buf, limit, known: [0; MAX_KNOWN], n_known: 0, counts: [0; 3], truncated: false };
        for k in 0..q.label_count() {
            w.remember(q.suffix_offset(k));
        }
        w
    }

    fn remember(&mut self, off: u16) {
        if self.n_known < MAX_KNOWN && off < 0x4000 {
            self.known[self.n_known] = off;
            self.n_known += 1;
        }
    }

    /// Does the name at `off` in the message equal `name` (uncompressed), ignoring case?
    fn same_name(&self, mut off: usize, name: &[u8]) -> bool {
        let msg = &self.buf[..];
        let mut i = 0;
        let mut hops = 0;
        loop {
            let b = msg[off];
            if b & 0xc0 == 0xc0 {
                hops += 1;
                if hops > 16 {
                    return false;
                }
                off = (((b & 0x3f) as usize) << 8) | msg[off + 1] as usize;
                continue;
            }
            let len = b as usize;
            if name[i] as usize != len {
                return false;
            }
            if len == 0 {
                return true;
            }
            if !msg[off + 1..off + 1 + len].eq_ignore_ascii_case(&name[i + 1..i + 1 + len]) {
                return false;
            }
            off += 1 + len;
            i += 1 + len;
        }
    }

    /// Writes `name` (uncompressed wire form), pointing at an earlier copy of its longest known suffix.
    pub fn name(&mut self, name: &[u8]) {
        // Only names written before this one are candidates: compared with its own unfinished
        // copy, the suffix "b.example." of "a.b.b.example." matched the "b" just written and
        // the comparison ran off the end of the message (found by fuzzing).
        let before = self.n_known;
        let mut i = 0;
        while name[i] != 0 {
            let suffix = &name[i..];
            if let Some(&off) = self.known[..before].iter().find(|&&off| self.same_name(off as usize, suffix)) {
                self.buf.extend_from_slice(&(0xc000 | off).to_be_bytes());
                return;
            }
            let here = self.buf.len() as u16;
            let len = name[i] as usize;
            self.buf.extend_from_slice(&name[i..i + 1 + len]);
            self.remember(here);
            i += 1 + len;
        }
        self.buf.push(0);
    }

    fn rdata(&mut self, rt: u16, rd: &[u8]) {
        let len_at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        if rtype::has_compressible_names(rt) {
            match rt {
                rtype::MX => {
                    self.buf.extend_from_slice(&rd[..2]);
                    self.name(&rd[2..]);
                }
                rtype::SOA => {
                    let m = wire_len(rd);
                    let r = wire_len(&rd[m..]);
                    self.name(&rd[..m]);
                    self.name(&rd[m..m + r]);
                    self.buf.extend_from_slice(&rd[m + r..]);
                }
                _ => self.name(rd),
            }
        } else {
            self.buf.extend_from_slice(rd);
        }
        let len = (self.buf.len() - len_at - 2) as u16;
        self.buf[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
    }

    /// Writes a whole RRset, or nothing if it does not fit (then returns false).
    pub fn rrset(&mut self, section: Section, owner: Owner<'_>, set: &RRset, ttl: u32) -> bool {
        self.rdatas(section, owner, set.rtype, ttl, set.rdatas(), set.count)
    }

    pub fn rdatas<'r>(
        &mut self,
        section: Section,
        owner: Owner<'_>,
        rt: u16,
        ttl: u32,
        rdatas: impl Iterator<Item = &'r [u8]>,
        count: u16,
    ) -> bool {
        let mark = (self.buf.len(), self.n_known);
        let mut owner_at: Option<u16> = None;
        for rd in rdatas {
            match (owner, owner_at) {
                (_, Some(off)) => self.buf.extend_from_slice(&(0xc000 | off).to_be_bytes()),
                (Owner::Question, None) => {
                    self.buf.extend_from_slice(&[0xc0, HEADER_LEN as u8]);
                    owner_at = Some(HEADER_LEN as u16);
                }
                (Owner::Name(n), None) => {
                    let at = self.buf.len() as u16;
                    self.name(n);
                    // Later records of the set point at this copy (or at what it pointed to).
                    owner_at = Some(if self.buf[at as usize] & 0xc0 == 0xc0 {
                        u16::from_be_bytes([self.buf[at as usize], self.buf[at as usize + 1]]) & 0x3fff
                    } else {
                        at
                    });
                }
            }
            self.buf.extend_from_slice(&rt.to_be_bytes());
            self.buf.extend_from_slice(&1u16.to_be_bytes());
            self.buf.extend_from_slice(&ttl.to_be_bytes());
            self.rdata(rt, rd);
        }
        if self.buf.len() > self.limit {
            self.buf.truncate(mark.0);
            self.n_known = mark.1;
            return false;
        }
        self.counts[section as usize] += count;
        true
    }

    /// Writes one record owned by the zone apex, found at `apex_off` in this message, with RDATA
    /// compressed against it beforehand; or nothing if it does not fit (then returns false).
    pub fn apex_rr(&mut self, section: Section, apex_off: u16, rt: u16, ttl: u32, rd: &ApexRdata) -> bool {
        let ptr = (0xc000 | apex_off).to_be_bytes();
        if self.buf.len() + 12 + rd.bytes.len() > self.limit {
            return false;
        }
        self.buf.extend_from_slice(&ptr);
        self.buf.extend_from_slice(&rt.to_be_bytes());
        self.buf.extend_from_slice(&1u16.to_be_bytes());
        self.buf.extend_from_slice(&ttl.to_be_bytes());
        self.buf.extend_from_slice(&(rd.bytes.len() as u16).to_be_bytes());
        let at = self.buf.len();
        self.buf.extend_from_slice(&rd.bytes);
        for &p in &rd.ptrs {
            self.buf[at + p as usize..at + p as usize + 2].copy_from_slice(&ptr);
        }
        self.counts[section as usize] += 1;
        true
    }

    /// Appends an OPT record (after the sections; the limit already left room for it).
    pub fn opt(&mut self, payload: u16, ext_rcode: u8, dnssec_ok: bool) {
        let [t0, t1] = rtype::OPT.to_be_bytes();
        let [p0, p1] = payload.to_be_bytes();
        // One append, not four: this is on the path of every EDNS query.
        self.buf.extend_from_slice(&[0, t0, t1, p0, p1, ext_rcode, 0, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
        self.counts[Section::Additional as usize] += 1;
    }

    /// Writes flags and counts into the header.
    pub fn finish(self, flags: u16) {
        let flags = if self.truncated { flags | flags::TC } else { flags };
        self.buf[2..4].copy_from_slice(&flags.to_be_bytes());
        self.buf[6..8].copy_from_slice(&self.counts[0].to_be_bytes());
        self.buf[8..10].copy_from_slice(&self.counts[1].to_be_bytes());
        self.buf[10..12].copy_from_slice(&self.counts[2].to_be_bytes());
    }
}

/// Writes a header-only response (FORMERR, NOTIMP, … for a query we could not read).
pub fn header_only(buf: &mut Vec<u8>, id: u16, req_flags: u16, rcode: u8) {
    buf.clear();
    buf.extend_from_slice(&id.to_be_bytes());
    let flags = flags::QR | (req_flags & (0x7800 | flags::RD | flags::CD)) | rcode as u16;
    buf.extend_from_slice(&flags.to_be_bytes());
    buf.extend_from_slice(&[0; 8]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &[u8], qtype: u16, extra: &[u8], ar: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0];
        m.extend_from_slice(&ar.to_be_bytes());
        m.extend_from_slice(name);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m.extend_from_slice(extra);
        m
    }

    const OPT: &[u8] = &[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0];

    #[test]
    fn parses_question_and_edns() {
        let m = query(b"\x03WwW\x07example\x03com\x00", 1, OPT, 1);
        let q = Query::parse(&m).unwrap();
        assert_eq!((q.id, q.qtype, q.qclass), (0x1234, 1, 1));
        assert_eq!(q.key(), b"\x03www\x07example\x03com\x00");
        assert_eq!(q.label_count(), 3);
        assert_eq!(q.suffix_key(1), b"\x07example\x03com\x00");
        assert_eq!(q.suffix_key(3), b"\x00");
        assert_eq!(q.suffix_offset(1), 16);
        assert_eq!(q.edns, Some(Edns { payload: 1232, version: 0, dnssec_ok: true }));
        assert_eq!(&q.question[..4], b"\x03WwW");
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(Query::parse(&[0; 5]).err(), Some(Reject::Drop));
        let mut resp = query(b"\x00", 1, &[], 0);
        resp[2] |= 0x80;
        assert_eq!(Query::parse(&resp).err(), Some(Reject::Drop));
        let formerr = |m: &[u8]| matches!(Query::parse(m), Err(Reject::Header { rcode: rcode::FORMERR, .. }));
        assert!(formerr(&query(b"\xc0\x0c", 1, &[], 0)), "pointer in question");
        assert!(formerr(&query(b"\x05ab", 1, &[], 0)[..15]), "short name");
        assert!(formerr(&query(b"\x40aaaa", 1, &[], 0)), "label type 01");
        let long: Vec<u8> = (0..5).flat_map(|_| std::iter::once(63u8).chain([b'a'; 63])).chain([0]).collect();
        assert!(formerr(&query(&long, 1, &[], 0)), "name over 255");
        let mut two = query(b"\x00", 1, &[], 0);
        two[5] = 2;
        assert!(formerr(&two));
        // EDNS options must lie within OPT, and a COOKIE must have a length RFC 7873 allows.
        let opt_with = |opt: &[u8]| {
            let mut o = vec![0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0];
            o.extend_from_slice(&(opt.len() as u16).to_be_bytes());
            o.extend_from_slice(opt);
            Query::parse(&query(b"\x00", rtype::A, &o, 1)).map(|q| q.edns.is_some())
        };
        let rejected = Err(Reject::Header { id: 0x1234, flags: 0x0100, rcode: rcode::FORMERR });
        assert_eq!(opt_with(&[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]), Ok(true), "a client cookie");
        assert_eq!(opt_with(&[&[0, 10, 0, 16][..], &[7; 16]].concat()), Ok(true), "with a server cookie");
        assert_eq!(opt_with(&[0, 10, 0, 3, 1, 2, 3]), rejected, "a 3-byte cookie");
        assert_eq!(opt_with(&[&[0, 10, 0, 41][..], &[7; 41]].concat()), rejected, "a 33-byte server cookie");
        assert_eq!(opt_with(&[0, 8, 0, 9, 1]), rejected, "an option longer than OPT");
        assert_eq!(opt_with(&[0, 8, 0]), rejected, "half an option header");
        assert_eq!(opt_with(&[0, 12, 0, 2, 0, 0]), Ok(true), "padding, any other option");
        // OPT promised but missing, OPT with a non-root owner, a pointer loop in additional.
        assert!(formerr(&query(b"\x00", 1, &[], 1)));
        assert!(formerr(&query(b"\x00", 1, &[1, b'a', 0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0], 1)));
        let looped = query(b"\x00", 1, &[0xc0, 17, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0], 1);
        assert!(formerr(&looped));
        let two_opt = [OPT, OPT].concat();
        assert!(Query::parse(&query(b"\x00", 1, &two_opt, 2)).unwrap().multiple_opt);
    }

    /// A TSIG record for key "key." with an empty MAC.
    const TSIG: &[u8] = b"\x03key\x00\x00\xfa\x00\xff\x00\x00\x00\x00\x00\x1d\x0bhmac-sha256\x00\x00\x00\x00\x00\x00\x01\x01\x2c\x00\x00\x12\x34\x00\x00\x00\x00";

    #[test]
    fn notes_the_kind_and_a_tsig_at_the_end() {
        let signed = query(b"\x00", rtype::AXFR, &[OPT, TSIG].concat(), 2);
        let q = Query::parse(&signed).unwrap();
        assert!(q.tsig && q.edns.is_some());
        assert_eq!((q.kind(), q.message), (Kind::Transfer, &signed[..]));
        // Anywhere but last, a TSIG makes the message FORMERR (RFC 8945 §5.1), and so does a
        // second one.
        let formerr = |m: &[u8]| matches!(Query::parse(m), Err(Reject::Header { rcode: rcode::FORMERR, .. }));
        assert!(formerr(&query(b"\x00", rtype::IXFR, &[TSIG, OPT].concat(), 2)));
        assert!(formerr(&query(b"\x00", rtype::IXFR, &[OPT, TSIG, TSIG].concat(), 3)));
        let mut in_answer = query(b"\x00", rtype::A, &[TSIG, OPT].concat(), 1);
        in_answer[7] = 1;
        assert!(formerr(&in_answer));
        assert!(!Query::parse(&query(b"\x00", rtype::A, OPT, 1)).unwrap().tsig);
        let mut notify = query(b"\x00", rtype::SOA, &[], 0);
        notify[2] = opcode::NOTIFY << 3;
        assert_eq!(Query::parse(&notify).unwrap().kind(), Kind::Notify);
        // Another opcode asking for a transfer's type is answered (NOTIMP) as a query.
        notify[2] = 2 << 3;
        let qtype_at = notify.len() - 4;
        notify[qtype_at..qtype_at + 2].copy_from_slice(&rtype::AXFR.to_be_bytes());
        assert_eq!(Query::parse(&notify).unwrap().kind(), Kind::Query);
    }

    #[test]
    fn compression() {
        let m = query(b"\x03www\x07example\x03com\x00", 1, &[], 0);
        let q = Query::parse(&m).unwrap();
        let mut buf = Vec::new();
        let mut w = Writer::begin(&mut buf, &q, 512);
        let soa = [&b"\x03ns1\x07EXAMPLE\x03com\x00"[..], b"\x02hm\x07example\x03com\x00", &[0; 20]].concat();
        let set = RRset::new(rtype::SOA, 60, [soa]);
        assert!(w.rrset(Section::Authority, Owner::Name(b"\x07example\x03com\x00"), &set, 60));
        let len = w.buf.len();
        w.finish(flags::QR);
        // owner: pointer to 16; mname: "ns1" + pointer to 16; rname: "hm" + pointer to 16.
        assert_eq!(&buf[33..35], &[0xc0, 16]);
        assert_eq!(&buf[45..51], b"\x03ns1\xc0\x10");
        assert_eq!(&buf[51..56], b"\x02hm\xc0\x10");
        assert_eq!(len, 56 + 20);
        let msg = hickory_proto::op::Message::from_vec(&buf).unwrap();
        assert_eq!(msg.authorities[0].name.to_string(), "example.com.");
    }

    /// Found by fuzzing (an AXFR of a zone holding a.b.b.d.example.com): a name with two equal
    /// labels in a row was compared, suffix by suffix, with its own unfinished copy, and the
    /// comparison ran off the end of the message.
    #[test]
    fn names_with_repeated_labels() {
        let m = query(b"\x07example\x03com\x00", rtype::AXFR, &[], 0);
        let q = Query::parse(&m).unwrap();
        let mut buf = Vec::new();
        let mut w = Writer::begin(&mut buf, &q, 4096);
        let owners: [&[u8]; 3] = [
            b"\x01a\x01b\x01b\x01d\x07example\x03com\x00",
            b"\x01b\x01b\x01d\x07example\x03com\x00",
            b"\x01x\x01x\x01x\x00",
        ];
        for owner in owners {
            let set = RRset::new(rtype::CNAME, 60, [owner]);
            assert!(w.rrset(Section::Answer, Owner::Name(owner), &set, 60));
        }
        w.finish(flags::QR);
        let msg = hickory_proto::op::Message::from_vec(&buf).unwrap();
        let names: Vec<String> = msg.answers.iter().map(|r| r.name.to_string()).collect();
        assert_eq!(names, ["a.b.b.d.example.com.", "b.b.d.example.com.", "x.x.x."]);
        // The second owner is the first's suffix: a pointer to it.
        assert_eq!(&buf[29 + 8 + 2 + 10 + 2..][..2], &[0xc0, 31]);
    }

    #[test]
    fn whole_rrsets_or_nothing() {
        let m = query(b"\x01a\x00", 1, &[], 0);
        let q = Query::parse(&m).unwrap();
        let mut buf = Vec::new();
        let mut w = Writer::begin(&mut buf, &q, 12 + 7 + 16 + 15);
        let set = RRset::new(rtype::A, 1, [[1, 1, 1, 1], [2, 2, 2, 2]]);
        assert!(!w.rrset(Section::Answer, Owner::Question, &set, 1));
        assert_eq!(w.buf.len(), 19);
        let one = RRset::new(rtype::A, 1, [[1, 1, 1, 1]]);
        assert!(w.rrset(Section::Answer, Owner::Question, &one, 1));
        assert_eq!(w.counts, [1, 0, 0]);
    }
}
