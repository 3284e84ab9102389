//! Galera's weighted quorum (`pc.weight`), as arithmetic over member indices: which groups of
//! members form a primary component, and which losses a layout survives. Pure: no names, no
//! clock, no I/O. The configuration gives each member its index, weight and site.
//!
//! The rule: a group is primary when its weight is *more* than half of the total. An exact
//! half is no quorum, so two disjoint groups are never both primary. A clean leave (a member
//! stopped for maintenance) takes that member's weight out of the total, as in Galera; a
//! member that simply vanishes does not, because nobody can tell it from a partition.

/// The most members a layout may have: a member set is one `u64`.
pub const MAX_MEMBERS: usize = 64;

/// A set of members, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Set(pub u64);

impl Set {
    pub const EMPTY: Set = Set(0);

    pub fn of(members: impl IntoIterator<Item = usize>) -> Set {
        members.into_iter().fold(Set::EMPTY, |s, m| s.with(m))
    }

    pub fn one(member: usize) -> Set {
        Set(1 << member)
    }

    pub fn with(self, member: usize) -> Set {
        Set(self.0 | 1 << member)
    }

    pub fn contains(self, member: usize) -> bool {
        self.0 & 1 << member != 0
    }

    pub fn union(self, o: Set) -> Set {
        Set(self.0 | o.0)
    }

    pub fn minus(self, o: Set) -> Set {
        Set(self.0 & !o.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Member indices, ascending.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            let m = rest.trailing_zeros() as usize;
            rest &= rest.wrapping_sub(1);
            (m < MAX_MEMBERS).then_some(m)
        })
    }
}

/// Members' weights and sites (failure domains).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    weights: Vec<u32>,
    /// Each site's members, in the order sites were first named.
    sites: Vec<Set>,
}

/// Whether `present` weighs more than half of `total`. Zero of zero is no quorum.
pub fn has_quorum(present: u32, total: u32) -> bool {
    // Doubled to stay in integers: 2 × present > total.
    2 * u64::from(present) > u64::from(total)
}

/// The least weight that is more than half of `total`.
pub fn quorum(total: u32) -> u32 {
    total / 2 + 1
}

impl Layout {
    /// `members`: (weight, site index) per member, sites numbered from 0 without gaps.
    ///
    /// # Panics
    /// With more than [`MAX_MEMBERS`] members or a gap in site numbers: the configuration
    /// refuses those before a layout is made.
    pub fn new(members: &[(u8, usize)]) -> Layout {
        assert!(members.len() <= MAX_MEMBERS, "at most {MAX_MEMBERS} members");
        let mut sites: Vec<Set> = Vec::new();
        for (m, &(_, site)) in members.iter().enumerate() {
            assert!(site <= sites.len(), "site numbers without gaps");
            if site == sites.len() {
                sites.push(Set::EMPTY);
            }
            sites[site] = sites[site].with(m);
        }
        Layout { weights: members.iter().map(|&(w, _)| u32::from(w)).collect(), sites }
    }

    /// Sites given as lists of weights: `&[&[5, 4], &[6], &[8]]` is A(5,4)-B(6)-C(8).
    pub fn of_sites(sites: &[&[u8]]) -> Layout {
        let members: Vec<(u8, usize)> =
            sites.iter().enumerate().flat_map(|(s, ws)| ws.iter().map(move |&w| (w, s))).collect();
        Layout::new(&members)
    }

    pub fn len(&self) -> usize {
        self.weights.len()
    }

    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    pub fn all(&self) -> Set {
        Set::of(0..self.len())
    }

    pub fn weight_of(&self, member: usize) -> u32 {
        self.weights[member]
    }

    /// The weight of the members in `set`.
    pub fn weight(&self, set: Set) -> u32 {
        set.iter().filter(|&m| m < self.len()).map(|m| self.weights[m]).sum()
    }

    /// Every member's weight together.
    pub fn total(&self) -> u32 {
        self.weight(self.all())
    }

    /// The members of each site.
    pub fn sites(&self) -> &[Set] {
        &self.sites
    }

    /// The total while the members in `away` have left cleanly.
    pub fn total_without(&self, away: Set) -> u32 {
        self.weight(self.all().minus(away))
    }

    /// Whether the members in `present` form a primary component while those in `away` have
    /// left cleanly (`away` members in `present` do not count).
    pub fn has_quorum(&self, present: Set, away: Set) -> bool {
        has_quorum(self.weight(present.minus(away)), self.total_without(away))
    }

    /// What losing `lost` does while `away` is in maintenance.
    pub fn loss(&self, lost: Set, away: Set) -> Loss {
        let total = self.total_without(away);
        let remaining = self.weight(self.all().minus(away).minus(lost));
        Loss { lost: lost.minus(away), remaining, total, keeps_quorum: has_quorum(remaining, total) }
    }

    /// Every loss worth printing while `away` is in maintenance: each member, each site and
    /// each pair of members (of those not away).
    pub fn losses(&self, away: Set) -> Losses {
        let here: Vec<usize> = self.all().minus(away).iter().collect();
        let members = here.iter().map(|&m| self.loss(Set::one(m), away)).collect();
        let sites = self.sites.iter().filter(|s| !s.minus(away).is_empty()).map(|&s| self.loss(s, away)).collect();
        let mut pairs = Vec::new();
        for (i, &a) in here.iter().enumerate() {
            for &b in &here[i + 1..] {
                pairs.push(self.loss(Set::of([a, b]), away));
            }
        }
        Losses { members, sites, pairs }
    }
}

/// The outcome of losing some members (they vanish: their weight stays in the total).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loss {
    pub lost: Set,
    /// The weight of the members left.
    pub remaining: u32,
    /// The total it is measured against.
    pub total: u32,
    pub keeps_quorum: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Losses {
    /// One member at a time.
    pub members: Vec<Loss>,
    /// One whole site at a time.
    pub sites: Vec<Loss>,
    /// Two members at a time.
    pub pairs: Vec<Loss>,
}

impl Losses {
    /// Whether every loss of the kind keeps quorum.
    pub fn all_keep(list: &[Loss]) -> bool {
        list.iter().all(|l| l.keeps_quorum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keeps(l: &[Loss]) -> Vec<bool> {
        l.iter().map(|l| l.keeps_quorum).collect()
    }

    /// Sets of the given kind whose loss keeps quorum, as member indices.
    fn stoppers(l: &[Loss]) -> Vec<Vec<usize>> {
        l.iter().filter(|l| !l.keeps_quorum).map(|l| l.lost.iter().collect()).collect()
    }

    #[test]
    fn threshold_is_strictly_more_than_half() {
        assert_eq!((quorum(3), quorum(4), quorum(23), quorum(27)), (2, 3, 12, 14));
        assert!(has_quorum(2, 3) && !has_quorum(2, 4) && has_quorum(3, 4));
        assert!(!has_quorum(0, 0), "nothing is no quorum");
        assert!(has_quorum(u32::MAX, u32::MAX), "no overflow");
        for total in 0..200 {
            for present in 0..=total {
                assert_eq!(has_quorum(present, total), present >= quorum(total), "{present}/{total}");
            }
        }
    }

    #[test]
    fn one_one_one_survives_any_one_member_or_site() {
        let l = Layout::of_sites(&[&[1], &[1], &[1]]);
        assert_eq!((l.total(), quorum(l.total())), (3, 2));
        let x = l.losses(Set::EMPTY);
        assert_eq!(keeps(&x.members), [true; 3]);
        assert_eq!(keeps(&x.sites), [true; 3]);
        assert_eq!(keeps(&x.pairs), [false; 3]);
    }

    #[test]
    fn one_one_tolerates_nothing() {
        let l = Layout::of_sites(&[&[1], &[1]]);
        let x = l.losses(Set::EMPTY);
        assert_eq!(keeps(&x.members), [false; 2]);
        assert_eq!(keeps(&x.sites), [false; 2]);
        // Each half alone is exactly half: neither is primary.
        assert!(!l.has_quorum(Set::one(0), Set::EMPTY) && !l.has_quorum(Set::one(1), Set::EMPTY));
    }

    #[test]
    fn two_one_survives_only_the_light_member() {
        let l = Layout::of_sites(&[&[2], &[1]]);
        assert!(l.has_quorum(Set::one(0), Set::EMPTY), "B fails: A keeps quorum");
        assert!(!l.has_quorum(Set::one(1), Set::EMPTY), "A fails: B has none");
        assert_eq!(keeps(&l.losses(Set::EMPTY).members), [false, true], "losing A, losing B");
    }

    #[test]
    fn four_three_two() {
        let l = Layout::of_sites(&[&[4], &[3], &[2]]);
        assert_eq!((l.total(), quorum(9)), (9, 5));
        assert_eq!(keeps(&l.losses(Set::EMPTY).members), [true; 3]);
        // During maintenance, only losing the heaviest member still there stops it.
        for away in 0..3 {
            let x = l.losses(Set::one(away));
            let heaviest = (0..3).filter(|&m| m != away).max_by_key(|&m| l.weight_of(m)).unwrap();
            assert_eq!(stoppers(&x.members), vec![vec![heaviest]], "{away} away");
        }
        // The numbers: with 4 away, the total is 5 and losing 3 leaves 2 of 5.
        assert_eq!(
            l.loss(Set::one(1), Set::one(0)),
            Loss { lost: Set::one(1), remaining: 2, total: 5, keeps_quorum: false }
        );
        // With 2 away, 4 and 3 remain (total 7); losing 3 leaves 4 of 7, losing 4 leaves 3.
        assert_eq!(stoppers(&l.losses(Set::one(2)).members), vec![vec![0]]);
    }

    #[test]
    fn losing_a_two_member_site_of_four_splits_two_two() {
        let l = Layout::of_sites(&[&[1, 1], &[1], &[1]]);
        let x = l.losses(Set::EMPTY);
        assert_eq!(keeps(&x.members), [true; 4]);
        assert_eq!(keeps(&x.sites), [false, true, true], "site A: 2 of 4 left");
        assert_eq!(x.sites[0].remaining, 2);
    }

    #[test]
    fn five_four_six_eight() {
        // A(5,4)-B(6)-C(8): members 0, 1 (A), 2 (B), 3 (C).
        let l = Layout::of_sites(&[&[5, 4], &[6], &[8]]);
        assert_eq!((l.total(), quorum(23)), (23, 12));
        let x = l.losses(Set::EMPTY);
        assert!(Losses::all_keep(&x.members) && Losses::all_keep(&x.sites));
        // Any two members without the 8 (member 3).
        for p in &x.pairs {
            assert_eq!(p.keeps_quorum, !p.lost.contains(3), "{p:?}");
        }
    }

    #[test]
    fn six_five_five_five_seven() {
        let l = Layout::of_sites(&[&[6, 5], &[5, 5], &[7]]);
        let x = l.losses(Set::EMPTY);
        assert!(Losses::all_keep(&x.members) && Losses::all_keep(&x.sites) && Losses::all_keep(&x.pairs));
    }

    #[test]
    fn six_four_five_four_four_four() {
        let l = Layout::of_sites(&[&[6, 4], &[5, 4], &[4, 4]]);
        assert_eq!((l.total(), quorum(l.total())), (27, 14));
        let x = l.losses(Set::EMPTY);
        assert!(Losses::all_keep(&x.members) && Losses::all_keep(&x.sites) && Losses::all_keep(&x.pairs));
        assert_eq!(x.pairs.iter().map(|p| p.remaining).min(), Some(16), "the worst case leaves 16");
        for away in 0..l.len() {
            let x = l.losses(Set::one(away));
            assert!(Losses::all_keep(&x.members), "{away} away");
            assert!(Losses::all_keep(&x.sites), "{away} away");
        }
    }

    #[test]
    fn a_clean_leave_takes_its_weight_out_of_the_total() {
        let l = Layout::of_sites(&[&[1], &[1], &[1]]);
        assert_eq!(l.total_without(Set::one(0)), 2);
        // 1-1-1 with one member away is 1-1: nothing more may fail.
        assert_eq!(keeps(&l.losses(Set::one(0)).members), [false, false]);
        // Without the leave, the two left are a quorum of 3, with it, a quorum of 2.
        assert!(l.has_quorum(Set::of([1, 2]), Set::EMPTY) && l.has_quorum(Set::of([1, 2]), Set::one(0)));
        // An away member counts for nobody, even when listed as present.
        assert!(!l.has_quorum(Set::of([0, 1]), Set::one(0)));
    }

    #[test]
    fn zero_weights_never_decide() {
        let l = Layout::of_sites(&[&[1], &[1], &[0]]);
        assert!(!l.has_quorum(Set::of([0, 2]), Set::EMPTY), "1 + 0 of 2 is a half");
        assert!(l.has_quorum(Set::of([0, 1]), Set::EMPTY));
        assert!(!Layout::of_sites(&[&[0], &[0]]).has_quorum(Set::of([0, 1]), Set::EMPTY));
    }

    /// Every layout of up to five members with weights 0..=4, sites aside: no two disjoint
    /// groups are both primary, with or without one member in maintenance.
    #[test]
    fn no_two_disjoint_groups_both_have_quorum() {
        let mut layouts = 0;
        for n in 1..=5u32 {
            for code in 0..5usize.pow(n) {
                let weights: Vec<(u8, usize)> =
                    (0..n).map(|i| ((code / 5usize.pow(i) % 5) as u8, i as usize)).collect();
                let l = Layout::new(&weights);
                layouts += 1;
                let away_options = std::iter::once(Set::EMPTY).chain((0..n as usize).map(Set::one));
                for away in away_options {
                    // Each member: in group 1, group 2, or neither (3^n assignments).
                    for assign in 0..3usize.pow(n) {
                        let (mut g1, mut g2) = (Set::EMPTY, Set::EMPTY);
                        for m in 0..n as usize {
                            match assign / 3usize.pow(m as u32) % 3 {
                                1 => g1 = g1.with(m),
                                2 => g2 = g2.with(m),
                                _ => {}
                            }
                        }
                        assert!(
                            !(l.has_quorum(g1, away) && l.has_quorum(g2, away)),
                            "{weights:?} away {away:?}: {g1:?} and {g2:?}"
                        );
                        // And a group and the rest of the cluster are never both primary.
                        let rest = l.all().minus(g1);
                        assert!(!(l.has_quorum(g1, away) && l.has_quorum(rest, away)));
                    }
                }
            }
        }
        assert_eq!(layouts, 5 + 25 + 125 + 625 + 3125);
    }

    #[test]
    fn sets() {
        let s = Set::of([0, 3, 63]);
        assert_eq!(s.iter().collect::<Vec<_>>(), [0, 3, 63]);
        assert_eq!((s.len(), s.minus(Set::one(3)).len()), (3, 2));
        assert!(Set::EMPTY.is_empty() && !s.is_empty());
        assert_eq!(Layout::of_sites(&[&[5, 4], &[6]]).sites(), &[Set::of([0, 1]), Set::one(2)]);
    }
}
