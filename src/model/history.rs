//! What a zone transfers, serial arithmetic, and the history of differences that IXFR serves.
//!
//! A zone's transferable content is its records with every pool's current answer as plain A/AAAA
//! records. When it changes, the publisher gives the zone a new serial and records the
//! difference here; secondaries then fetch only that (RFC 1995).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::model::name::Name;
use crate::model::zone::{RRset, Zone};

/// Most differences kept per zone.
pub const MAX_DIFFS: usize = 100;
/// Most records (removed + added) kept over all differences of a zone.
pub const MAX_RECORDS: usize = 100_000;

/// `a` is newer than `b` in RFC 1982 serial arithmetic.
pub fn serial_gt(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < (1 << 31)
}

/// The serial after `prev` for a zone whose file says `file`: the file's when it is newer,
/// else one more than before.
pub fn next_serial(prev: u32, file: u32) -> u32 {
    if serial_gt(file, prev) { file } else { prev.wrapping_add(1) }
}

/// One record as transferred.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rec {
    /// Lower-case key first, so sorting groups names; the owner as written follows.
    pub key: Box<[u8]>,
    pub rtype: u16,
    pub rdata: Box<[u8]>,
    pub ttl: u32,
    pub owner: Name,
}

impl Rec {
    pub fn new(owner: &Name, rtype: u16, ttl: u32, rdata: &[u8]) -> Rec {
        Rec { key: owner.key(), rtype, rdata: rdata.into(), ttl, owner: owner.clone() }
    }
}

/// Every record of a loaded zone but its SOA, without pool answers, in the zone's order.
pub fn zone_records(zone: &Zone) -> Vec<Rec> {
    let mut out = Vec::with_capacity(zone.record_count);
    for node in &zone.nodes {
        for set in node.rrsets.iter().filter(|s| s.rtype != crate::model::rtype::SOA) {
            push_set(&mut out, &node.name, set);
        }
    }
    out
}

/// Appends an RRset's records.
pub fn push_set(out: &mut Vec<Rec>, owner: &Name, set: &RRset) {
    out.extend(set.rdatas().map(|rd| Rec::new(owner, set.rtype, set.ttl, rd)));
}

/// Records of `old` not in `new`, and of `new` not in `old` (both sorted on the way).
pub fn diff(mut old: Vec<Rec>, mut new: Vec<Rec>) -> (Vec<Rec>, Vec<Rec>) {
    old.sort_unstable();
    new.sort_unstable();
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                removed.push(a.clone());
                i += 1;
            }
            (Some(_), Some(b)) => {
                added.push(b.clone());
                j += 1;
            }
            (Some(a), None) => {
                removed.push(a.clone());
                i += 1;
            }
            (None, Some(b)) => {
                added.push(b.clone());
                j += 1;
            }
            (None, None) => unreachable!(),
        }
    }
    (removed, added)
}

/// The change from one serial to the next.
#[derive(Debug)]
pub struct Diff {
    pub from: u32,
    pub to: u32,
    pub removed: Vec<Rec>,
    pub added: Vec<Rec>,
}

/// The recent differences of one zone, oldest first.
#[derive(Debug, Default, Clone)]
pub struct History {
    pub diffs: VecDeque<Arc<Diff>>,
}

impl History {
    /// This history with `d` added, the oldest dropped beyond the bounds.
    pub fn with(&self, d: Diff) -> History {
        let mut diffs = self.diffs.clone();
        diffs.push_back(Arc::new(d));
        let size = |ds: &VecDeque<Arc<Diff>>| ds.iter().map(|d| d.removed.len() + d.added.len()).sum::<usize>();
        while diffs.len() > MAX_DIFFS || (diffs.len() > 1 && size(&diffs) > MAX_RECORDS) {
            diffs.pop_front();
        }
        History { diffs }
    }

    /// The differences leading from `from` to the newest, or None if `from` is not in the
    /// history (then a full transfer is due).
    pub fn since(&self, from: u32) -> Option<Vec<Arc<Diff>>> {
        let start = self.diffs.iter().position(|d| d.from == from)?;
        Some(self.diffs.iter().skip(start).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_arithmetic() {
        assert!(serial_gt(2, 1));
        assert!(!serial_gt(1, 2));
        assert!(serial_gt(0, u32::MAX), "wraps");
        assert!(serial_gt(5, u32::MAX - 5));
        assert!(!serial_gt(7, 7));
        assert_eq!(next_serial(10, 5), 11);
        assert_eq!(next_serial(10, 2026112001), 2026112001);
        assert_eq!(next_serial(u32::MAX, 3), 3, "3 is newer than u32::MAX");
        assert_eq!(next_serial(u32::MAX, u32::MAX - 9), 0, "an older file serial: one more, wrapping");
    }

    fn r(owner: &str, a: u8) -> Rec {
        Rec::new(&Name::parse(owner, None).unwrap(), crate::model::rtype::A, 60, &[192, 0, 2, a])
    }

    #[test]
    fn diffs_and_history() {
        let (removed, added) = diff(vec![r("a.", 1), r("b.", 2), r("c.", 3)], vec![r("c.", 3), r("a.", 9), r("b.", 2)]);
        assert_eq!((removed, added), (vec![r("a.", 1)], vec![r("a.", 9)]));
        let mut h = History::default();
        for s in 1..=3 {
            h = h.with(Diff { from: s, to: s + 1, removed: vec![], added: vec![r("x.", s as u8)] });
        }
        assert_eq!(h.since(2).unwrap().iter().map(|d| d.to).collect::<Vec<_>>(), vec![3, 4]);
        assert!(h.since(9).is_none());
        for s in 4..=(MAX_DIFFS as u32 + 10) {
            h = h.with(Diff { from: s, to: s + 1, removed: vec![], added: vec![] });
        }
        assert_eq!(h.diffs.len(), MAX_DIFFS);
        assert!(h.since(1).is_none(), "too old: full transfer");
    }
}
