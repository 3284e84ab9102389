//! The snapshot: everything a query needs, immutable, published behind one `ArcSwap`.
//!
//! It holds the zones (shared between snapshots while unchanged) and the current answer of every
//! pool. The publisher builds a new snapshot on any change; a query loads one and answers from it
//! without locks or I/O.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use crate::model::chart::{self, Admin, Health, TargetView};
use crate::model::history::{self, Rec};
use crate::model::pool::{Pool, Target};
use crate::model::rtype;
use crate::model::zone::{RRset, Zone};

/// What a pool answers for one address family right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyAnswer {
    /// The records (count 0: NODATA).
    pub rrset: RRset,
    /// The chart's view, for logs and status.
    pub level: Option<u8>,
    pub mode: chart::Mode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolAnswer {
    pub a: FamilyAnswer,
    pub aaaa: FamilyAnswer,
    /// TTL of the SOA in a NODATA answer here: never above the pool's TTL, so a resolver does
    /// not cache an outage longer than a positive answer.
    pub nodata_ttl: u32,
    pub max_answers: Option<u16>,
    /// A cluster member out of the primary component withdraws its pool answers: SERVFAIL, so
    /// resolvers ask another nameserver.
    pub withdrawn: bool,
}

impl PoolAnswer {
    pub fn family(&self, qtype: u16) -> &FamilyAnswer {
        if qtype == rtype::AAAA { &self.aaaa } else { &self.a }
    }
}

/// What the chart needs to know of one target: its health, the operator's word, and while a
/// new verdict is pending, the latest it can come.
pub type Verdict = (Health, Admin, Option<Duration>);

/// Runs the chart for both families of a pool. `verdict` gives each target's state (by index in
/// `pool.targets`); `held` the
/// level a manual failback keeps per family (A, AAAA).
pub fn pool_answer(
    pool: &Pool,
    zone_neg_ttl: u32,
    verdict: impl Fn(usize) -> Verdict,
    held: [Option<u8>; 2],
) -> PoolAnswer {
    let family = |v6: bool, held: Option<u8>| {
        let (indices, targets): (Vec<usize>, Vec<&Target>) =
            pool.targets.iter().enumerate().filter(|(_, t)| t.address.is_ipv6() == v6).unzip();
        let views: Vec<TargetView> = targets
            .iter()
            .zip(&indices)
            .map(|(t, &i)| {
                let (health, admin, doubt) = verdict(i);
                TargetView { priority: t.priority, health, admin, doubt }
            })
            .collect();
        let choice = chart::choose(&views, pool.all_down, held, pool.min_up);
        let ttl = answer_ttl(pool, &choice);
        // A server listed at two priorities is still one record (`all_down = "all"` answers both).
        let first =
            |k: usize| !choice.selected[..k].iter().any(|&j| targets[j].address == targets[choice.selected[k]].address);
        let rdatas =
            choice.selected.iter().enumerate().filter(|&(k, _)| first(k)).map(|(_, &i)| match targets[i].address {
                std::net::IpAddr::V4(a) => a.octets().to_vec(),
                std::net::IpAddr::V6(a) => a.octets().to_vec(),
            });
        let rt = if v6 { rtype::AAAA } else { rtype::A };
        FamilyAnswer { rrset: RRset::new(rt, ttl, rdatas), level: choice.level, mode: choice.mode }
    };
    PoolAnswer {
        a: family(false, held[0]),
        aaaa: family(true, held[1]),
        nodata_ttl: zone_neg_ttl.min(pool.ttl),
        max_answers: pool.max_answers,
        withdrawn: false,
    }
}

/// The TTL of an answer. While a verdict that would change it is pending, a resolver must come
/// back once it is decided, not a whole `ttl_min` later: the TTL is the time until then, in
/// whole seconds rounded up, at least 1 s and never above `ttl_min`. Otherwise `ttl` while the
/// preferred level is steadily up, `ttl_min` when the answer may change soon.
pub fn answer_ttl(pool: &Pool, choice: &chart::Choice) -> u32 {
    match choice.changes_within {
        Some(within) => {
            let secs = within.as_secs().saturating_add(u64::from(within.subsec_nanos() > 0));
            u32::try_from(secs).unwrap_or(u32::MAX).max(1).min(pool.ttl_min)
        }
        None if choice.short_ttl => pool.ttl_min,
        None => pool.ttl,
    }
}

/// A zone as served: its content, the current answers of its pools (same order as
/// `zone.pools`), the serial it is served with, and its recent changes (for IXFR).
#[derive(Debug, Clone)]
pub struct ZoneEntry {
    pub zone: Arc<Zone>,
    pub answers: Arc<[PoolAnswer]>,
    pub serial: u32,
    /// The SOA record carrying `serial`.
    pub soa: RRset,
    /// `soa`'s RDATA compressed once for negative answers (see [`ApexRdata`]).
    pub negative_soa: ApexRdata,
    pub history: Arc<crate::model::history::History>,
    /// The signatures served with DO=1, in a zone weiche signs.
    pub dnssec: Option<crate::model::signed::EntrySigs>,
}

/// RDATA whose names under the zone apex end in a pointer to the apex. A response always has
/// the apex in its question, at an offset known only per query: the writer patches it in at
/// `ptrs`. Names elsewhere are written out in full.
#[derive(Debug, Clone, Default)]
pub struct ApexRdata {
    pub bytes: Vec<u8>,
    pub ptrs: Vec<u16>,
}

impl ApexRdata {
    /// Compresses an SOA's RDATA (MNAME, RNAME, five numbers) against `apex`.
    pub fn soa(apex: &crate::model::name::Name, rd: &[u8]) -> ApexRdata {
        let mut out = ApexRdata::default();
        let mut at = 0;
        for _ in 0..2 {
            let end = at + crate::model::name::wire_len(&rd[at..]);
            let name = &rd[at..end];
            if crate::model::name::Name::from_wire_unchecked(name).is_subdomain_of(apex) {
                // The labels above the apex, then the pointer to it.
                out.bytes.extend_from_slice(&name[..name.len() - apex.wire().len()]);
                out.ptrs.push(out.bytes.len() as u16);
                out.bytes.extend_from_slice(&[0xc0, 0]);
            } else {
                out.bytes.extend_from_slice(name);
            }
            at = end;
        }
        out.bytes.extend_from_slice(&rd[at..]);
        out
    }
}

impl ZoneEntry {
    /// Every record of the zone but the SOA, pools as their current answers, in a stable order.
    /// A signed zone's come with their signatures, its keys and its NSEC chain: a complete
    /// signed zone for secondaries.
    pub fn records(&self) -> Vec<Rec> {
        let zone = &self.zone;
        let mut out = Vec::with_capacity(zone.record_count + zone.pools.len() * 2);
        let sigs = self.dnssec.as_ref();
        for (id, node) in zone.nodes.iter().enumerate() {
            for set in node.rrsets.iter().filter(|s| s.rtype != rtype::SOA) {
                history::push_set(&mut out, &node.name, set);
            }
            if node.pool != crate::model::zone::NONE {
                let a = &self.answers[node.pool as usize];
                history::push_set(&mut out, &node.name, &a.a.rrset);
                history::push_set(&mut out, &node.name, &a.aaaa.rrset);
                if let Some(s) = sigs {
                    let p = &s.pools[node.pool as usize];
                    history::push_set(&mut out, &node.name, &p.a);
                    history::push_set(&mut out, &node.name, &p.aaaa);
                }
            }
            let Some(s) = sigs else { continue };
            if id == 0 {
                history::push_set(&mut out, &node.name, &s.soa);
                for (set, sig) in s.zone.apex.iter() {
                    history::push_set(&mut out, &node.name, set);
                    history::push_set(&mut out, &node.name, sig);
                }
            }
            for sig in s.zone.rrsigs[id].iter() {
                history::push_set(&mut out, &node.name, sig);
            }
            if let Some(at) = s.zone.link_of(id as u32) {
                let (nsec, sig) = s.link(zone, at);
                history::push_set(&mut out, &node.name, nsec);
                history::push_set(&mut out, &node.name, sig);
            }
        }
        out
    }

    /// Only the pool answers (what changes between snapshots of one loaded zone).
    pub fn pool_records(&self) -> Vec<Rec> {
        let mut out = Vec::new();
        for (p, a) in self.zone.pools.iter().zip(self.answers.iter()) {
            history::push_set(&mut out, &p.name, &a.a.rrset);
            history::push_set(&mut out, &p.name, &a.aaaa.rrset);
        }
        out
    }

    /// A hash of what the zone transfers (its loaded content and its pool answers).
    pub fn content_hash(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.zone.content_hash.hash(&mut h);
        self.dnssec.as_ref().map(|d| d.zone.generation).hash(&mut h);
        for a in self.answers.iter() {
            (&a.a.rrset.data, a.a.rrset.ttl, &a.aaaa.rrset.data, a.aaaa.rrset.ttl).hash(&mut h);
        }
        h.finish()
    }

    /// Serves `soa` (the zone's SOA with the current serial).
    pub fn set_soa(&mut self, soa: RRset) {
        self.negative_soa = ApexRdata::soa(&self.zone.apex, soa.rdatas().next().expect("one SOA"));
        self.soa = soa;
    }

    /// The zone's SOA with `serial` in place of the file's.
    pub fn soa_with_serial(zone: &Zone, serial: u32) -> RRset {
        let soa = zone.soa();
        let mut rd = soa.rdatas().next().expect("one SOA").to_vec();
        let at = rd.len() - 20;
        rd[at..at + 4].copy_from_slice(&serial.to_be_bytes());
        RRset::new(rtype::SOA, soa.ttl, [rd])
    }
}

/// Where the current snapshot is: the publisher stores, every query loads once.
pub type Store = Arc<arc_swap::ArcSwap<Snapshot>>;

#[derive(Debug, Default)]
pub struct Snapshot {
    pub zones: Vec<ZoneEntry>,
    index: HashMap<Box<[u8]>, u32, foldhash::fast::RandomState>,
}

impl Snapshot {
    pub fn new(zones: Vec<ZoneEntry>) -> Snapshot {
        let index = zones.iter().enumerate().map(|(i, z)| (z.zone.apex.key(), i as u32)).collect();
        Snapshot { zones, index }
    }

    /// The most specific zone containing a name of `labels` labels, and how many labels the
    /// name has above that zone's apex. `suffix_key(skip)` is the lower-case key of the name
    /// without its first `skip` labels.
    pub fn find_zone<'k>(&self, labels: usize, suffix_key: impl Fn(usize) -> &'k [u8]) -> Option<(&ZoneEntry, usize)> {
        self.find_zone_from(labels, 0, suffix_key)
    }

    /// [`Self::find_zone`] without the first `from` labels: the zones above a name's own.
    pub fn find_zone_from<'k>(
        &self,
        labels: usize,
        from: usize,
        suffix_key: impl Fn(usize) -> &'k [u8],
    ) -> Option<(&ZoneEntry, usize)> {
        (from..=labels).find_map(|skip| self.index.get(suffix_key(skip)).map(|&i| (&self.zones[i as usize], skip)))
    }

    pub fn zone(&self, apex_key: &[u8]) -> Option<&ZoneEntry> {
        self.index.get(apex_key).map(|&i| &self.zones[i as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::chart::{AllDown, Mode};

    fn pool(targets: &[(&str, u8)], all_down: AllDown) -> Pool {
        crate::model::pool::testing::pool("www.example.com.", targets, all_down)
    }

    #[test]
    fn soa_names_under_the_apex_end_in_a_pointer_to_it() {
        let name = |s: &str| crate::model::name::Name::parse(s, None).unwrap();
        let apex = name("Example.COM.");
        let numbers = [0u8, 0, 0, 7, 0, 0, 14, 16, 0, 0, 2, 88, 0, 9, 58, 128, 0, 0, 1, 44];
        // MNAME outside the zone stays whole; RNAME under it (another case) ends in a pointer.
        let rd = [name("ns.example.net.").wire(), name("hostmaster.example.com.").wire(), &numbers[..]].concat();
        let a = ApexRdata::soa(&apex, &rd);
        let want = [name("ns.example.net.").wire(), b"\x0ahostmaster\xc0\x00", &numbers[..]].concat();
        assert_eq!(a.bytes, want);
        assert_eq!(a.ptrs, vec![name("ns.example.net.").wire().len() as u16 + 11]);
        // The apex itself is nothing but the pointer.
        let rd = [apex.wire(), name("a.b.example.com.").wire(), &numbers[..]].concat();
        let a = ApexRdata::soa(&apex, &rd);
        assert_eq!(a.bytes, [&b"\xc0\x00\x01a\x01b\xc0\x00"[..], &numbers[..]].concat());
        assert_eq!(a.ptrs, vec![0, 6]);
    }

    #[test]
    fn a_pending_change_sets_the_ttl_to_its_wait_in_whole_seconds() {
        let p = pool(&[("192.0.2.1", 1), ("192.0.2.2", 2)], AllDown::KeepPrimary);
        let ttl = |doubt: Option<Duration>| {
            pool_answer(&p, 300, |i| (Health::Up, Admin::Auto, doubt.filter(|_| i == 0)), [None, None]).a.rrset.ttl
        };
        let ms = Duration::from_millis;
        assert_eq!(ttl(None), 30, "steady: ttl");
        for (wait, want) in
            [(0, 1), (1, 1), (900, 1), (1000, 1), (1001, 2), (2500, 3), (4000, 4), (4001, 5), (60_000, 5)]
        {
            assert_eq!(ttl(Some(ms(wait))), want, "due within {wait} ms: at least 1 s, at most ttl_min");
        }
        // Doubt on the fallback target, not in use: a steady ttl.
        let a = pool_answer(&p, 300, |i| (Health::Up, Admin::Auto, (i == 1).then(|| ms(900))), [None, None]);
        assert_eq!(a.a.rrset.ttl, 30);
        // On the fallback, the primary in doubt coming up: its wait.
        let health = [Health::Down, Health::Up];
        let a = pool_answer(&p, 300, |i| (health[i], Admin::Auto, (i == 0).then(|| ms(1500))), [None, None]);
        assert_eq!((a.a.rrset.rdatas().next(), a.a.rrset.ttl), (Some(&[192, 0, 2, 2][..]), 2));
        // Steadily on the fallback: ttl_min.
        let a = pool_answer(&p, 300, |i| (health[i], Admin::Auto, None), [None, None]);
        assert_eq!(a.a.rrset.ttl, 5);
    }

    #[test]
    fn the_threshold_counts_each_family_on_its_own() {
        let mut p = pool(
            &[("192.0.2.1", 1), ("192.0.2.2", 1), ("2001:db8::1", 1), ("192.0.2.3", 2), ("2001:db8::3", 2)],
            AllDown::KeepPrimary,
        );
        p.min_up = crate::model::chart::MinUp::Percent(100);
        // One of the two IPv4 primaries down: IPv4 fails over; the one IPv6 primary is all of its
        // level and stays.
        let health = [Health::Up, Health::Down, Health::Up, Health::Up, Health::Up];
        let a = pool_answer(&p, 300, |i| (health[i], Admin::Auto, None), [None, None]);
        assert_eq!((a.a.rrset.rdatas().collect::<Vec<_>>(), a.a.mode), (vec![&[192, 0, 2, 3][..]], Mode::Fallback));
        assert_eq!((a.aaaa.level, a.aaaa.mode), (Some(1), Mode::Preferred));
    }

    #[test]
    fn families_are_charted_separately() {
        let p = pool(&[("192.0.2.1", 1), ("2001:db8::1", 1), ("192.0.2.2", 2), ("2001:db8::2", 2)], AllDown::None);
        // IPv4 primary down, IPv6 primary up.
        let health = [Health::Down, Health::Up, Health::Up, Health::Up];
        let a = pool_answer(&p, 300, |i| (health[i], Admin::Auto, None), [None, None]);
        assert_eq!(a.a.rrset.rdatas().collect::<Vec<_>>(), vec![&[192, 0, 2, 2][..]]);
        assert_eq!((a.a.mode, a.a.rrset.ttl), (Mode::Fallback, 5));
        assert_eq!(a.aaaa.rrset.rdatas().count(), 1);
        assert_eq!((a.aaaa.mode, a.aaaa.rrset.ttl, a.aaaa.rrset.rtype), (Mode::Preferred, 30, rtype::AAAA));
        // Every IPv4 target down with policy none: empty A, AAAA unaffected; NODATA TTL capped.
        let health = [Health::Down, Health::Up, Health::Down, Health::Up];
        let a = pool_answer(&p, 300, |i| (health[i], Admin::Auto, None), [None, None]);
        assert_eq!((a.a.rrset.count, a.a.mode), (0, Mode::AllDown));
        assert_eq!(a.aaaa.rrset.count, 1);
        assert_eq!(a.nodata_ttl, 30);
        // A pool with IPv4 targets only answers AAAA with nothing.
        let p4 = pool(&[("192.0.2.1", 1)], AllDown::KeepPrimary);
        let a = pool_answer(&p4, 300, |_| (Health::Up, Admin::Auto, None), [None, None]);
        assert_eq!(a.aaaa.rrset.count, 0);
    }
}
