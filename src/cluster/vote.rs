//! The two rules members decide by, as pure functions over weights: whether a member is in
//! the primary component, and what the cluster holds of a target. No home-made consensus log:
//! both are deterministic functions of the reports a member holds. Which reports are fresh and
//! signed is for the peer protocol to say before it calls these.

use crate::cluster::quorum::{Layout, Set};
use crate::model::chart::Health;

/// Whether `me` is in the primary component: the members it hears from (itself included)
/// weigh more than half the total, less the members in `away` (clean leaves).
pub fn in_primary(layout: &Layout, me: usize, heard: Set, away: Set) -> bool {
    layout.has_quorum(heard.with(me), away)
}

/// The cluster's verdict on one target. `reports` holds each reporting member's weight and
/// what it saw. The target is down when the members reporting it down outweigh those
/// reporting it up, and up the other way round. A tie, or no report at all, keeps `current`.
/// A member without a verdict of its own yet (`Unknown`) reports nothing.
pub fn cluster_verdict(current: Health, reports: impl IntoIterator<Item = (u32, Health)>) -> Health {
    let (mut up, mut down) = (0u64, 0u64);
    for (weight, seen) in reports {
        match seen {
            Health::Up => up += u64::from(weight),
            Health::Down => down += u64::from(weight),
            Health::Unknown => {}
        }
    }
    match down.cmp(&up) {
        std::cmp::Ordering::Greater => Health::Down,
        std::cmp::Ordering::Less => Health::Up,
        std::cmp::Ordering::Equal => current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Health; 3] = [Health::Unknown, Health::Up, Health::Down];

    /// Every combination of reports (none, up, down) from members of the given weights.
    fn every_report(weights: &[u32]) -> Vec<Vec<(u32, Health)>> {
        let mut out = vec![vec![]];
        for &w in weights {
            out = out.into_iter().flat_map(|r| ALL.map(|h| [r.clone(), vec![(w, h)]].concat())).collect();
        }
        out
    }

    fn flip(h: Health) -> Health {
        match h {
            Health::Up => Health::Down,
            Health::Down => Health::Up,
            Health::Unknown => Health::Unknown,
        }
    }

    #[test]
    fn the_heavier_side_decides_and_a_tie_keeps_the_verdict() {
        let (up, down) = (Health::Up, Health::Down);
        assert_eq!(cluster_verdict(up, [(5, down), (6, up), (8, up)]), up, "one member's dissent");
        assert_eq!(cluster_verdict(up, [(5, down), (8, down), (6, up)]), down);
        assert_eq!(cluster_verdict(up, [(5, down), (5, up)]), up, "a tie keeps up");
        assert_eq!(cluster_verdict(down, [(5, down), (5, up)]), down, "a tie keeps down");
        assert_eq!(cluster_verdict(Health::Unknown, [(5, down), (5, up)]), Health::Unknown);
        assert_eq!(cluster_verdict(down, []), down, "no reports keep the verdict");
        assert_eq!(cluster_verdict(up, [(0, down)]), up, "a weight-0 member never decides");
        assert_eq!(cluster_verdict(up, [(5, Health::Unknown), (1, down)]), down, "Unknown is no report");
    }

    /// Every report combination from 1-1-1, 5-6-8, 2-1-1-0 and 6-4-5-4 members, from every
    /// current verdict: the outcome is the heavier side's, or the current one on a tie; the rule
    /// is symmetric in up and down; a missing report counts as nothing; and one more down report
    /// never brings a target up.
    #[test]
    fn every_combination_of_reports() {
        for weights in [&[1, 1, 1][..], &[5, 6, 8], &[2, 1, 1, 0], &[6, 4, 5, 4]] {
            for reports in every_report(weights) {
                let w = |h| reports.iter().filter(|r| r.1 == h).map(|r| r.0).sum::<u32>();
                for current in ALL {
                    let got = cluster_verdict(current, reports.clone());
                    let want = if w(Health::Down) > w(Health::Up) {
                        Health::Down
                    } else if w(Health::Up) > w(Health::Down) {
                        Health::Up
                    } else {
                        current
                    };
                    assert_eq!(got, want, "{reports:?} from {current:?}");
                    let flipped: Vec<_> = reports.iter().map(|&(w, h)| (w, flip(h))).collect();
                    assert_eq!(cluster_verdict(flip(current), flipped), flip(got), "symmetric");
                    let without_missing = reports.iter().copied().filter(|r| r.1 != Health::Unknown);
                    assert_eq!(cluster_verdict(current, without_missing), got, "missing counts nothing");
                    let order: Vec<_> = reports.iter().rev().copied().collect();
                    assert_eq!(cluster_verdict(current, order), got, "order does not matter");
                    if got == Health::Down {
                        let more = reports.iter().copied().chain([(1, Health::Down)]);
                        assert_eq!(cluster_verdict(current, more), Health::Down, "monotone");
                    }
                }
            }
        }
    }

    /// A target that only one member cannot reach stays up, whenever the others report and
    /// outweigh it; in 5-6-8 that is every member.
    #[test]
    fn one_members_dissent_keeps_a_target_up() {
        let weights = [5, 6, 8];
        for dissenter in 0..3 {
            let reports = (0..3).map(|m| (weights[m], if m == dissenter { Health::Down } else { Health::Up }));
            assert_eq!(cluster_verdict(Health::Up, reports), Health::Up, "member {dissenter}");
        }
    }

    #[test]
    fn primary_while_hearing_more_than_half() {
        let l = Layout::of_sites(&[&[5], &[6], &[8]]);
        // a (5) hears nobody: 5 of 19. With b: 11 of 19. b and c without a: 14 of 19.
        assert!(!in_primary(&l, 0, Set::EMPTY, Set::EMPTY));
        assert!(in_primary(&l, 0, Set::one(1), Set::EMPTY));
        assert!(in_primary(&l, 1, Set::one(2), Set::EMPTY) && in_primary(&l, 2, Set::one(1), Set::EMPTY));
        // c alone: 8 of 19, but 8 of 13 while a is in maintenance.
        assert!(!in_primary(&l, 2, Set::EMPTY, Set::EMPTY));
        assert!(in_primary(&l, 2, Set::EMPTY, Set::one(0)));
        // 2-1 without a witness: the weight-1 member alone is not primary.
        let two_one = Layout::of_sites(&[&[2], &[1]]);
        assert!(!in_primary(&two_one, 1, Set::EMPTY, Set::EMPTY) && in_primary(&two_one, 0, Set::EMPTY, Set::EMPTY));
    }

    /// Every way of cutting every 1..=4-member layout with weights 0..=3 into components (each
    /// member hears exactly its own component): at most one component is primary, and the
    /// members of a component agree on whether they are.
    #[test]
    fn at_most_one_component_is_primary() {
        for n in 1..=4u32 {
            for code in 0..4usize.pow(n) {
                let members: Vec<(u8, usize)> =
                    (0..n).map(|i| ((code / 4usize.pow(i) % 4) as u8, i as usize)).collect();
                let l = Layout::new(&members);
                // A component label per member (n^n labellings cover every partition).
                for cut in 0..(n as usize).pow(n) {
                    let label = |m: usize| cut / (n as usize).pow(m as u32) % n as usize;
                    let component = |m: usize| Set::of((0..n as usize).filter(|&o| label(o) == label(m)));
                    let primary: Vec<bool> = (0..n as usize)
                        .map(|m| in_primary(&l, m, component(m).minus(Set::one(m)), Set::EMPTY))
                        .collect();
                    let labels: std::collections::BTreeSet<usize> =
                        (0..n as usize).filter(|&m| primary[m]).map(label).collect();
                    assert!(labels.len() <= 1, "{members:?} cut {cut}: {primary:?}");
                    for m in 0..n as usize {
                        for o in component(m).iter() {
                            assert_eq!(primary[m], primary[o]);
                        }
                    }
                }
            }
        }
    }
}
