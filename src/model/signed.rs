//! A signed zone as the query path reads it: the RRSIGs of its loaded RRsets, its NSEC chain and
//! apex keys (made when it loads, `dnssec::zone`), and per snapshot the signatures of what its
//! pools answer now and of its SOA (made by the publisher). Plain data: signing is elsewhere.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::model::zone::{NONE, NodeId, RRset, Zone};

/// One name of the NSEC chain.
#[derive(Debug, Clone)]
pub struct Link {
    pub node: NodeId,
    /// The NSEC (for a pool's name: the types of its loaded records only; what is served is
    /// [`PoolSigs::nsec`], which adds the families the pool answers now).
    pub nsec: RRset,
    pub sig: RRset,
}

/// What signing a loaded zone made.
#[derive(Debug, Default)]
pub struct ZoneSigs {
    /// Per node (by id): RRSIG RRsets over its RRsets, one per type covered. None for names
    /// below a zone cut, and only DS at a cut.
    pub rrsigs: Box<[Box<[RRset]>]>,
    /// DNSKEY, CDS and CDNSKEY at the apex, each with its RRSIG.
    pub apex: Box<[(RRset, RRset)]>,
    /// Every name that has records and is not below a cut, in canonical order; the apex first.
    pub chain: Box<[Link]>,
    /// Per node: its place in `chain`, or NONE (empty non-terminals, names below a cut).
    pub link_of: Box<[u32]>,
    /// What was signed with what, for when: a hash of the validity window and the keys. The
    /// same on every cluster member that signs the same zone with the same keys in the same
    /// hour, and part of the zone's content hash, so that signing again moves the serial.
    pub generation: u64,
}

impl ZoneSigs {
    /// The RRSIG over `node`'s RRset of type `rt`.
    pub fn sig(&self, node: NodeId, rt: u16) -> Option<&RRset> {
        self.rrsigs.get(node as usize)?.iter().find(|s| s.rdatas().next().is_some_and(|rd| rd[..2] == rt.to_be_bytes()))
    }

    /// The apex's DNSKEY, CDS or CDNSKEY with its RRSIG.
    pub fn apex_set(&self, rt: u16) -> Option<&(RRset, RRset)> {
        self.apex.iter().find(|(s, _)| s.rtype == rt)
    }

    /// The place in the chain of the NSEC that covers `key` (a lower-case wire name in the zone
    /// with no records of its own): the last name sorting before it. The apex sorts before
    /// every name in the zone, so there always is one.
    pub fn covering(&self, zone: &Zone, key: &[u8], cmp: impl Fn(&[u8], &[u8]) -> Ordering) -> usize {
        let after = self.chain.partition_point(|l| cmp(zone.node(l.node).name.wire(), key) != Ordering::Greater);
        after.saturating_sub(1)
    }

    pub fn link_of(&self, node: NodeId) -> Option<usize> {
        self.link_of.get(node as usize).filter(|&&l| l != NONE).map(|&l| l as usize)
    }
}

/// The signatures of one pool's answer now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolSigs {
    /// Over the A and AAAA answers (empty when the answer is).
    pub a: RRset,
    pub aaaa: RRset,
    /// With `max_answers` below the count, over each rotation's window, by its first record.
    pub a_windows: Box<[RRset]>,
    pub aaaa_windows: Box<[RRset]>,
    /// The NSEC of the pool's name with the families it answers now, and its RRSIG.
    pub nsec: RRset,
    pub nsec_sig: RRset,
}

impl PoolSigs {
    pub fn family(&self, qtype: u16) -> (&RRset, &[RRset]) {
        if qtype == crate::model::rtype::AAAA { (&self.aaaa, &self.aaaa_windows) } else { (&self.a, &self.a_windows) }
    }
}

/// A served zone's signatures: the loaded zone's and this snapshot's.
#[derive(Debug, Clone)]
pub struct EntrySigs {
    pub zone: Arc<ZoneSigs>,
    /// Over the SOA with the serial served.
    pub soa: RRset,
    /// Per pool, as `Zone::pools`.
    pub pools: Arc<[PoolSigs]>,
}

impl EntrySigs {
    /// The signatures of a loaded zone before a snapshot's are made (they count in its
    /// content hash).
    pub fn of_zone(zone: Arc<ZoneSigs>) -> EntrySigs {
        EntrySigs { zone, soa: RRset::default(), pools: Arc::new([]) }
    }

    /// The NSEC at chain place `at` and its RRSIG, as served now.
    pub fn link(&self, zone: &Zone, at: usize) -> (&RRset, &RRset) {
        let l = &self.zone.chain[at];
        match zone.node(l.node).pool {
            NONE => (&l.nsec, &l.sig),
            p => (&self.pools[p as usize].nsec, &self.pools[p as usize].nsec_sig),
        }
    }
}

impl Default for RRset {
    fn default() -> RRset {
        RRset { rtype: 0, ttl: 0, count: 0, data: Box::new([]) }
    }
}
