//! Operator state shared by the cluster (drains, failback holds): a last-writer-wins map. Each
//! write carries a stamp, (time, member); a merge keeps, per key, the write with the greatest
//! stamp. Merging is commutative, associative and idempotent, so members that have seen the
//! same writes hold the same map, whatever order the writes arrived in and however often. Pure:
//! the caller stamps writes with its clock and its member name.

use std::collections::BTreeMap;

/// When and where a write was made. Ordered by time, then member name: two members' writes in
/// the same millisecond are still ordered, the same way on every member.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    /// Milliseconds since the Unix epoch, by the writer's clock.
    pub millis: u64,
    pub member: String,
}

/// A key's latest write. A removal is a value too (e.g. `Drain::Off`), so that it can win
/// over the write it undoes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write<V> {
    pub stamp: Stamp,
    pub value: V,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorMap<K, V> {
    entries: BTreeMap<K, Write<V>>,
}

impl<K, V> Default for OperatorMap<K, V> {
    fn default() -> Self {
        OperatorMap { entries: BTreeMap::new() }
    }
}

impl<K: Ord + Clone, V: Ord + Clone> OperatorMap<K, V> {
    /// Takes a write if it is newer than what the map holds for its key; says whether it did.
    /// Two different values with the same stamp (one member writing twice in a millisecond)
    /// are ordered by value, so every member still keeps the same one.
    pub fn apply(&mut self, key: K, write: Write<V>) -> bool {
        match self.entries.get(&key) {
            Some(old) if (&old.stamp, &old.value) >= (&write.stamp, &write.value) => false,
            _ => {
                self.entries.insert(key, write);
                true
            }
        }
    }

    /// Takes every newer write of `other` (what a reconnect exchanges).
    pub fn merge(&mut self, other: &OperatorMap<K, V>) {
        for (k, w) in &other.entries {
            self.apply(k.clone(), w.clone());
        }
    }

    pub fn get(&self, key: &K) -> Option<&Write<V>> {
        self.entries.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &Write<V>)> {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    enum Drain {
        Off,
        On,
    }

    fn w(millis: u64, member: &str, value: Drain) -> Write<Drain> {
        Write { stamp: Stamp { millis, member: member.into() }, value }
    }

    /// Writes that contend: the same key from several members, equal times, a member writing
    /// twice in one millisecond, and a late-arriving old write.
    fn messages() -> Vec<(&'static str, Write<Drain>)> {
        vec![
            ("192.0.2.10", w(100, "a", Drain::On)),
            ("192.0.2.10", w(100, "b", Drain::Off)),
            ("192.0.2.10", w(90, "c", Drain::On)),
            ("192.0.2.11", w(200, "c", Drain::On)),
            ("192.0.2.11", w(200, "c", Drain::Off)),
            ("192.0.2.12", w(50, "a", Drain::On)),
        ]
    }

    fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
        if items.len() <= 1 {
            return vec![items.to_vec()];
        }
        let mut out = Vec::new();
        for i in 0..items.len() {
            let mut rest = items.to_vec();
            let first = rest.remove(i);
            for mut p in permutations(&rest) {
                p.insert(0, first.clone());
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn the_newest_stamp_wins() {
        let mut m = OperatorMap::default();
        assert!(m.apply("x", w(100, "a", Drain::On)));
        assert!(!m.apply("x", w(99, "z", Drain::Off)), "older, whoever wrote it");
        assert!(m.apply("x", w(100, "b", Drain::Off)), "same time: the greater member name");
        assert!(!m.apply("x", w(100, "b", Drain::Off)), "a repeat changes nothing");
        assert!(m.apply("x", w(101, "a", Drain::On)));
        assert_eq!(m.get(&"x"), Some(&w(101, "a", Drain::On)));
    }

    /// Every order of the six messages (720) ends in the same map, and the map is the one
    /// worked out by hand.
    #[test]
    fn every_order_converges() {
        let msgs = messages();
        let mut seen = None;
        let orders = permutations(&msgs);
        assert_eq!(orders.len(), 720);
        for order in orders {
            let mut m = OperatorMap::default();
            for (k, wr) in order {
                m.apply(k, wr);
            }
            match &seen {
                None => seen = Some(m),
                Some(s) => assert_eq!(&m, s),
            }
        }
        let m = seen.unwrap();
        assert_eq!(m.get(&"192.0.2.10"), Some(&w(100, "b", Drain::Off)));
        assert_eq!(m.get(&"192.0.2.11"), Some(&w(200, "c", Drain::On)));
        assert_eq!(m.get(&"192.0.2.12"), Some(&w(50, "a", Drain::On)));
    }

    /// Members that each saw some of the messages, merged in every order and some twice, agree
    /// with one that saw them all: a partition heals to the same map on every side.
    #[test]
    fn merges_in_any_order_and_grouping_agree() {
        let msgs = messages();
        let mut everything = OperatorMap::default();
        for (k, wr) in msgs.clone() {
            everything.apply(k, wr);
        }
        // Member i saw the messages whose bit i is set in a fixed pattern.
        let members: Vec<OperatorMap<&str, Drain>> = (0..4)
            .map(|i| {
                let mut m = OperatorMap::default();
                for (j, (k, wr)) in msgs.iter().enumerate() {
                    if (j + i) % 3 != 0 || j % 4 == i {
                        m.apply(*k, wr.clone());
                    }
                }
                m
            })
            .collect();
        let union: std::collections::BTreeSet<usize> =
            (0..msgs.len()).filter(|&j| (0..4).any(|i| (j + i) % 3 != 0 || j % 4 == i)).collect();
        assert_eq!(union.len(), msgs.len(), "together they saw every message");
        for order in permutations(&[0, 1, 2, 3]) {
            let mut m = members[order[0]].clone();
            for &i in &order[1..] {
                m.merge(&members[i]);
                m.merge(&members[i]);
            }
            assert_eq!(m, everything, "{order:?}");
        }
    }
}
