//! The answer engine: one query message in, one response message out, from one snapshot.
//!
//! Implements the authoritative algorithm of RFC 1034 §4.3.2 with the clarifications of
//! RFC 2181 (whole RRsets, TC), RFC 2308 (negative answers), RFC 4592 (wildcards), RFC 6891
//! (EDNS), RFC 8482 (minimal ANY) and RFC 9471 (glue). It never allocates per query beyond the
//! caller's reused buffer, never locks, never waits.

use std::cell::Cell;

use crate::dns::wire::{Owner, Query, Section, Writer, flags, rcode};
use crate::dnssec::sign::canonical_cmp;
use crate::model::rtype;
use crate::model::signed::EntrySigs;
use crate::model::snapshot::{Snapshot, ZoneEntry};
use crate::model::zone::{APEX, NONE, NodeId, RRset, Zone};

/// Longest CNAME chain followed inside a zone.
const MAX_CHAIN: usize = 8;

/// The parts of a response worth counting (metrics, logs at DEBUG, rate limiting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub rcode: u16,
    pub qtype: u16,
    pub truncated: bool,
    /// Where, in the question's lookup key, the name starts that the response speaks for: 0 (the
    /// name itself) for an answer, the wildcard's parent for one a wildcard made, the zone's apex
    /// for NXDOMAIN and NODATA, the delegation point for a referral. Rate limiting (`rrl`)
    /// counts responses per such name, as BIND does, so random names do not escape it.
    pub domain: u8,
}

/// Answers the query `q` into `out`.
pub fn respond(snap: &Snapshot, q: &Query<'_>, tcp: bool, udp_payload: u16, out: &mut Vec<u8>) -> Outcome {
    let max = if tcp {
        u16::MAX as usize
    } else {
        match q.edns {
            Some(e) => e.payload.clamp(512, udp_payload.max(512)) as usize,
            None => 512,
        }
    };
    let opt_room = if q.edns.is_some() { 11 } else { 0 };
    let base = flags::QR | (q.flags & (0x7800 | flags::RD | flags::CD));
    let mut w = Writer::begin(out, q, max - opt_room);
    let mut r = Resolver {
        q,
        w: &mut w,
        rcode: rcode::NOERROR as u16,
        aa: false,
        chain: [NONE; MAX_CHAIN],
        apex_off: 0,
        domain: 0,
        dnssec_ok: q.edns.is_some_and(|e| e.dnssec_ok),
        last_link: None,
    };
    match q.edns {
        _ if q.multiple_opt => r.rcode = rcode::FORMERR as u16,
        Some(e) if e.version > 0 => r.rcode = rcode::BADVERS,
        _ if q.opcode != 0 => r.rcode = rcode::NOTIMP as u16,
        _ => r.resolve(snap),
    }
    let (rc, aa, domain) = (r.rcode, r.aa, r.domain);
    if let Some(e) = q.edns {
        w.opt(udp_payload, (rc >> 4) as u8, e.dnssec_ok);
    }
    let truncated = w.truncated;
    w.finish(base | if aa { flags::AA } else { 0 } | (rc & 0xf));
    Outcome { rcode: rc, qtype: q.qtype, truncated, domain }
}

struct Resolver<'q, 'w, 'b> {
    q: &'q Query<'q>,
    w: &'w mut Writer<'b>,
    rcode: u16,
    aa: bool,
    /// Nodes whose CNAME is already in the answer.
    chain: [NodeId; MAX_CHAIN],
    /// Where the zone's apex is in the message (a suffix of the question name).
    apex_off: u16,
    /// [`Outcome::domain`].
    domain: u8,
    /// The query set DO: signatures and denials go with the answer, in a signed zone.
    dnssec_ok: bool,
    /// The chain place of the NSEC written last.
    last_link: Option<usize>,
}

/// Where a name lands in a zone.
enum Found {
    Exact(NodeId),
    /// The name does not exist; this is its closest existing ancestor.
    Encloser(NodeId),
}

/// Finds `key` (lower-case wire name inside the zone) or its closest encloser: one hash lookup
/// per label between the name and the apex, whatever the zone's size.
fn find(zone: &Zone, key: &[u8]) -> Found {
    let mut cur = key;
    let mut exact = true;
    loop {
        if let Some(id) = zone.node_id(cur) {
            return if exact { Found::Exact(id) } else { Found::Encloser(id) };
        }
        if cur[0] == 0 {
            // Only reachable for a name outside the zone; callers never pass one.
            return Found::Encloser(APEX);
        }
        cur = &cur[1 + cur[0] as usize..];
        exact = false;
    }
}

fn lower_key(wire: &[u8], buf: &mut [u8; crate::model::name::MAX_NAME_LEN]) -> usize {
    let n = crate::model::name::wire_len(wire);
    buf[..n].copy_from_slice(&wire[..n]);
    buf[..n].make_ascii_lowercase();
    n
}

/// `*.` and `ce_key` in `buf`, if it fits in a name.
fn wildcard_key<'b>(ce_key: &[u8], buf: &'b mut [u8; crate::model::name::MAX_NAME_LEN]) -> Option<&'b [u8]> {
    let len = ce_key.len() + 2;
    if len > buf.len() {
        return None;
    }
    buf[..2].copy_from_slice(b"\x01*");
    buf[2..len].copy_from_slice(ce_key);
    Some(&buf[..len])
}

thread_local! {
    static ROTATION: Cell<u32> = const { Cell::new(0) };
}

impl Resolver<'_, '_, '_> {
    fn resolve(&mut self, snap: &Snapshot) {
        let q = self.q;
        if q.qtype == rtype::OPT || q.qtype == rtype::TSIG || q.qtype == rtype::TKEY {
            self.rcode = rcode::FORMERR as u16;
            return;
        }
        if q.qclass != 1 {
            self.rcode = rcode::REFUSED as u16;
            return;
        }
        let Some((mut entry, mut skip)) = snap.find_zone(q.label_count(), |skip| q.suffix_key(skip)) else {
            self.rcode = rcode::REFUSED as u16;
            return;
        };
        // The DS of a zone served here is the parent's (RFC 4035 §3.1.4.1): when the parent is
        // served here too, it answers.
        if q.qtype == rtype::DS
            && skip == 0
            && let Some(parent) = snap.find_zone_from(q.label_count(), 1, |skip| q.suffix_key(skip))
        {
            (entry, skip) = parent;
        }
        if q.qtype == rtype::AXFR || q.qtype == rtype::IXFR {
            self.rcode = rcode::REFUSED as u16;
            return;
        }
        self.aa = true;
        self.apex_off = q.suffix_offset(skip);
        self.name(entry, q.key(), Owner::Question, 0);
    }

    /// Answers for `key` (owner written as `owner`), following CNAMEs `hops` deep so far.
    fn name(&mut self, entry: &ZoneEntry, key: &[u8], owner: Owner<'_>, hops: usize) {
        let zone = &*entry.zone;
        match find(zone, key) {
            Found::Exact(id) => self.node(entry, id, owner, hops),
            Found::Encloser(ce) => {
                let node = zone.node(ce);
                if node.cut != NONE {
                    return self.referral(entry, node.cut, hops);
                }
                let ce_key = &key[key.len() - node.name.wire().len()..];
                let mut star = [0u8; crate::model::name::MAX_NAME_LEN];
                if node.wildcard_child
                    && let Some(star) = wildcard_key(ce_key, &mut star)
                    && let Some(id) = zone.node_id(star)
                {
                    if hops == 0 {
                        self.domain = (key.len() - ce_key.len()) as u8;
                    }
                    self.node(entry, id, owner, hops);
                    // The name itself does not exist: the NSEC that covers it (not after a
                    // referral, whose glue is written already, nor a SERVFAIL).
                    let plain = zone.node(id).cut == NONE && self.rcode != rcode::SERVFAIL as u16;
                    if let Some(sigs) = self.sigs(entry).filter(|_| plain) {
                        let at = sigs.zone.covering(zone, key, canonical_cmp);
                        // NODATA at the wildcard may have written this one already.
                        if self.last_link != Some(at) {
                            self.link(entry, sigs, at);
                        }
                    }
                    return;
                }
                self.rcode = rcode::NXDOMAIN as u16;
                self.negative(entry, zone.neg_ttl);
                if let Some(sigs) = self.sigs(entry) {
                    // An NSEC covering the name, and one covering the wildcard of its closest
                    // encloser (often the same).
                    let at = sigs.zone.covering(zone, key, canonical_cmp);
                    self.link(entry, sigs, at);
                    if let Some(star) = wildcard_key(ce_key, &mut star) {
                        let wild = sigs.zone.covering(zone, star, canonical_cmp);
                        if wild != at {
                            self.link(entry, sigs, wild);
                        }
                    }
                }
            }
        }
    }

    fn node(&mut self, entry: &ZoneEntry, id: NodeId, owner: Owner<'_>, hops: usize) {
        let zone = &*entry.zone;
        let qtype = self.q.qtype;
        let node = zone.node(id);
        if node.cut != NONE && !(node.cut == id && qtype == rtype::DS) {
            return self.referral(entry, node.cut, hops);
        }
        if qtype != rtype::CNAME
            && let Some(cname) = node.rrset(rtype::CNAME)
        {
            // A loop back to a name already in the chain ends it.
            if self.chain[..hops].contains(&id) {
                return;
            }
            self.chain[hops] = id;
            let sig = self.sigs(entry).and_then(|s| s.zone.sig(id, rtype::CNAME));
            if !self.signed(Section::Answer, owner, cname, sig) {
                return;
            }
            let target = cname.rdatas().next().expect("a CNAME has one target");
            if qtype == rtype::ANY
                || hops + 1 >= MAX_CHAIN
                || !crate::model::name::Name::from_wire_unchecked(target).is_subdomain_of(&zone.apex)
            {
                return;
            }
            let mut buf = [0u8; crate::model::name::MAX_NAME_LEN];
            let n = lower_key(target, &mut buf);
            return self.name(entry, &buf[..n], Owner::Name(target), hops + 1);
        }
        let pool = (node.pool != NONE).then(|| &entry.answers[node.pool as usize]);
        if pool.is_some_and(|p| p.withdrawn) {
            // Out of the cluster's majority: another nameserver answers.
            self.rcode = rcode::SERVFAIL as u16;
            self.aa = false;
            return;
        }
        let nodata_ttl = pool.map_or(zone.neg_ttl, |p| p.nodata_ttl);
        if let Some(p) = pool
            && (qtype == rtype::A || qtype == rtype::AAAA || (qtype == rtype::ANY && node.rrsets.is_empty()))
        {
            let fam = p.family(if qtype == rtype::ANY && p.a.rrset.count == 0 { rtype::AAAA } else { qtype });
            let set = &fam.rrset;
            if set.count == 0 {
                self.negative(entry, nodata_ttl);
                return self.nodata_proof(entry, id);
            }
            let sigs = self.sigs(entry).map(|s| s.pools[node.pool as usize].family(set.rtype));
            let fits = match p.max_answers {
                Some(max) if set.count > max => {
                    let start = ROTATION.with(|c| {
                        let v = c.get().wrapping_add(1);
                        c.set(v);
                        v
                    }) as usize
                        % set.count as usize;
                    let rdatas = set.rdatas().cycle().skip(start).take(max as usize);
                    self.w.rdatas(Section::Answer, owner, set.rtype, set.ttl, rdatas, max)
                        && sigs
                            .and_then(|(_, w)| w.get(start))
                            .is_none_or(|sig| self.w.rrset(Section::Answer, owner, sig, set.ttl))
                }
                _ => {
                    self.w.rrset(Section::Answer, owner, set, set.ttl)
                        && sigs.is_none_or(|(sig, _)| self.w.rrset(Section::Answer, owner, sig, set.ttl))
                }
            };
            if !fits {
                self.w.truncated = true;
            }
            return;
        }
        if qtype == rtype::RRSIG && self.rrsigs(entry, id, owner) {
            return;
        }
        let sigs = self.sigs(entry);
        let (set, sig) = match qtype {
            rtype::ANY => (node.rrsets.first(), node.rrsets.first().and_then(|s| sigs?.zone.sig(id, s.rtype))),
            // The SOA is served with the zone's current serial.
            rtype::SOA if id == APEX => (Some(&entry.soa), sigs.map(|s| &s.soa)),
            // A signed zone's keys, made by weiche.
            rtype::DNSKEY | rtype::CDS | rtype::CDNSKEY if id == APEX && entry.dnssec.is_some() => {
                match entry.dnssec.as_ref().and_then(|d| d.zone.apex_set(qtype)) {
                    Some((set, sig)) => (Some(set), sigs.map(|_| sig)),
                    None => (None, None),
                }
            }
            // A signed zone's NSEC at this name, as served now.
            rtype::NSEC if entry.dnssec.is_some() => {
                let d = entry.dnssec.as_ref().expect("signed");
                match d.zone.link_of(id).map(|at| d.link(zone, at)) {
                    Some((nsec, sig)) => (Some(nsec), sigs.map(|_| sig)),
                    None => (None, None),
                }
            }
            _ => (node.rrset(qtype), node.rrset(qtype).and_then(|_| sigs?.zone.sig(id, qtype))),
        };
        match set {
            Some(set) => {
                self.signed(Section::Answer, owner, set, sig);
            }
            None => {
                self.negative(entry, nodata_ttl);
                self.nodata_proof(entry, id);
            }
        }
    }

    /// QTYPE=RRSIG in a signed zone: every RRSIG at the name, as served now (as BIND and Knot
    /// answer it). False if there are none (an unsigned zone, an empty non-terminal): NODATA.
    fn rrsigs(&mut self, entry: &ZoneEntry, id: NodeId, owner: Owner<'_>) -> bool {
        let Some(d) = entry.dnssec.as_ref() else { return false };
        let node = entry.zone.node(id);
        let at_node = d.zone.rrsigs.get(id as usize).into_iter().flatten();
        let at_apex = (id == APEX).then(|| std::iter::once(&d.soa).chain(d.zone.apex.iter().map(|(_, sig)| sig)));
        let of_pool = (node.pool != NONE).then(|| {
            let p = &d.pools[node.pool as usize];
            [&p.a, &p.aaaa]
        });
        let of_nsec = d.zone.link_of(id).map(|at| d.link(&entry.zone, at).1);
        let mut any = false;
        for set in at_node.chain(at_apex.into_iter().flatten()).chain(of_pool.into_iter().flatten()).chain(of_nsec) {
            if set.count == 0 {
                continue;
            }
            any = true;
            if !self.w.rrset(Section::Answer, owner, set, set.ttl) {
                self.w.truncated = true;
                break;
            }
        }
        any
    }

    /// The zone's signatures, when the query wants them.
    fn sigs<'e>(&self, entry: &'e ZoneEntry) -> Option<&'e EntrySigs> {
        entry.dnssec.as_ref().filter(|_| self.dnssec_ok)
    }

    /// Writes `set` and its RRSIG (if any), with the set's TTL; TC if they do not fit.
    fn signed(&mut self, section: Section, owner: Owner<'_>, set: &RRset, sig: Option<&RRset>) -> bool {
        let fits = self.w.rrset(section, owner, set, set.ttl)
            && sig.is_none_or(|sig| sig.count == 0 || self.w.rrset(section, owner, sig, set.ttl));
        if !fits {
            self.w.truncated = true;
        }
        fits
    }

    /// The NSEC at chain place `at`, and its RRSIG, in the authority section.
    fn link(&mut self, entry: &ZoneEntry, sigs: &EntrySigs, at: usize) {
        let zone = &*entry.zone;
        self.last_link = Some(at);
        let (nsec, sig) = sigs.link(zone, at);
        let owner = zone.node(sigs.zone.chain[at].node).name.wire();
        self.signed(Section::Authority, Owner::Name(owner), nsec, Some(sig));
    }

    /// NODATA's proof: the NSEC of the node, or for an empty non-terminal the NSEC that covers
    /// it.
    fn nodata_proof(&mut self, entry: &ZoneEntry, id: NodeId) {
        let Some(sigs) = self.sigs(entry) else { return };
        let at = sigs
            .zone
            .link_of(id)
            .unwrap_or_else(|| sigs.zone.covering(&entry.zone, entry.zone.node(id).name.wire(), canonical_cmp));
        self.link(entry, sigs, at);
    }

    /// NXDOMAIN or NODATA: the zone's SOA in the authority section.
    fn negative(&mut self, entry: &ZoneEntry, ttl: u32) {
        // The question's key is its name from the message's offset 12 on, so the apex's offset
        // in the message is, less the header, its offset in the key.
        self.domain = (self.apex_off as usize - crate::dns::wire::HEADER_LEN) as u8;
        let ttl = ttl.min(entry.soa.ttl);
        if !self.w.apex_rr(Section::Authority, self.apex_off, rtype::SOA, ttl, &entry.negative_soa) {
            self.w.truncated = true;
            return;
        }
        if let Some(sigs) = self.sigs(entry)
            && !self.w.rrset(Section::Authority, Owner::Name(entry.zone.apex.wire()), &sigs.soa, ttl)
        {
            self.w.truncated = true;
        }
    }

    /// A delegation: the child's NS in authority, glue in additional, no AA.
    fn referral(&mut self, entry: &ZoneEntry, cut: NodeId, hops: usize) {
        let zone = &*entry.zone;
        if hops > 0 {
            // Inside a CNAME chain the answer so far stands; the resolver follows the target.
            return;
        }
        self.aa = false;
        let node = zone.node(cut);
        self.domain = (self.q.key().len() - node.name.wire().len()) as u8;
        let ns = node.rrset(rtype::NS).expect("a cut has NS");
        if !self.w.rrset(Section::Authority, Owner::Name(node.name.wire()), ns, ns.ttl) {
            self.w.truncated = true;
            return;
        }
        if let Some(sigs) = self.sigs(entry) {
            // A secure delegation's DS, or the NSEC that proves there is none.
            match (node.rrset(rtype::DS), sigs.zone.link_of(cut)) {
                (Some(ds), _) => {
                    if !self.signed(
                        Section::Authority,
                        Owner::Name(node.name.wire()),
                        ds,
                        sigs.zone.sig(cut, rtype::DS),
                    ) {
                        return;
                    }
                }
                (None, Some(at)) => self.link(entry, sigs, at),
                (None, None) => {}
            }
            if self.w.truncated {
                return;
            }
        }
        for &g in node.glue.iter() {
            let glue = zone.node(g);
            // RFC 9471: glue below the cut is required (TC if it does not fit); other is optional.
            let required = glue.cut == cut;
            for rt in [rtype::A, rtype::AAAA] {
                if let Some(set) = glue.rrset(rt)
                    && !self.w.rrset(Section::Additional, Owner::Name(glue.name.wire()), set, set.ttl)
                {
                    if required {
                        self.w.truncated = true;
                    }
                    return;
                }
            }
        }
    }
}
