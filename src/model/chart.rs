//! The failover chart: which targets of a pool a query of one address family is answered with.
//!
//! A pure function of the pool's targets (priority, verdict, doubt, operator override), its
//! all-down policy, its level threshold (`min_up`) and the level a manual failback holds. It does no I/O and keeps no state: the
//! publisher calls it whenever an input changes and serves what it returns.

use std::time::Duration;

use serde::Deserialize;

/// What the monitor says of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Health {
    /// No verdict yet (before the first probe round, or no monitor).
    #[default]
    Unknown,
    Up,
    Down,
}

/// What an operator says of a target; it beats the monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Admin {
    #[default]
    Auto,
    /// Drained: never answered, whatever its health.
    ForcedDown,
    /// Answered as healthy, whatever the monitor says.
    ForcedUp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AllDown {
    /// Answer the best priority level as if it were up (a broken monitor must not blackhole).
    #[default]
    KeepPrimary,
    /// Answer every target.
    All,
    /// Answer the last (worst) priority level: the sorry server.
    Last,
    /// Answer nothing (NODATA).
    None,
}

impl std::fmt::Display for AllDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AllDown::KeepPrimary => "keep-primary",
            AllDown::All => "all",
            AllDown::Last => "last",
            AllDown::None => "none",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Failback {
    #[default]
    Auto,
    Manual,
}

/// How many targets of a priority level (of the family asked) must be up for the level to count
/// as healthy. Below it the whole level is skipped, so a site fails over before its last server
/// drowns under the whole load.
///
/// Counting: a target counts as up when it is healthy — forced up always, drained (forced down)
/// never, otherwise when its verdict is up. The size a percentage is taken of is every target of
/// the level in that family, drained included: draining a server for maintenance must not quietly
/// lower the bar the others are held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinUp {
    /// At least this many (≥ 1).
    Count(u16),
    /// At least this percentage (1..=100) of the level's size, rounded up, and at least 1.
    Percent(u8),
}

impl Default for MinUp {
    /// One up target keeps a level: the behaviour without a threshold.
    fn default() -> Self {
        MinUp::Count(1)
    }
}

impl MinUp {
    /// The number of up targets a level of `size` targets needs.
    pub fn needed(self, size: usize) -> usize {
        match self {
            MinUp::Count(n) => usize::from(n),
            MinUp::Percent(p) => (size * usize::from(p)).div_ceil(100).max(1),
        }
    }
}

impl std::fmt::Display for MinUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MinUp::Count(n) => write!(f, "{n}"),
            MinUp::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// One target as the chart sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetView {
    pub priority: u8,
    pub health: Health,
    pub admin: Admin,
    /// Set while the monitor confirms a result that disagrees with the verdict: the latest the
    /// new verdict can come (None: nothing pending).
    pub doubt: Option<Duration>,
}

/// Why the answer is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answering from the best level there is.
    Preferred,
    /// Answering from a worse level because better ones are down (or held by manual failback).
    Fallback,
    /// No target is healthy: the all-down policy chose the answer.
    AllDown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Indices into the targets given, in their order.
    pub selected: Vec<usize>,
    /// The priority level answered from (None when the answer is empty or spans levels).
    pub level: Option<u8>,
    pub mode: Mode,
    /// Serve the short TTL: the answer may change soon.
    pub short_ttl: bool,
    /// A pending verdict would change `selected`: the soonest one can come. A resolver that
    /// caches the answer longer keeps a stale one past it (issue 18).
    pub changes_within: Option<Duration>,
}

fn usable(t: &TargetView) -> bool {
    t.admin != Admin::ForcedDown
}

fn healthy(t: &TargetView) -> bool {
    match t.admin {
        Admin::ForcedUp => true,
        Admin::ForcedDown => false,
        Admin::Auto => t.health == Health::Up,
    }
}

fn steady(t: &TargetView) -> bool {
    t.admin == Admin::ForcedUp || (t.health == Health::Up && t.doubt.is_none())
}

fn at_level(targets: &[TargetView], level: u8, pick: impl Fn(&TargetView) -> bool) -> Vec<usize> {
    (0..targets.len()).filter(|&i| targets[i].priority == level && pick(&targets[i])).collect()
}

/// Whether at least `min_up` of the targets at `level` pass `counts` (see [`MinUp`]).
fn reaches(targets: &[TargetView], level: u8, min_up: MinUp, counts: impl Fn(&TargetView) -> bool) -> bool {
    let size = targets.iter().filter(|t| t.priority == level).count();
    let up = targets.iter().filter(|t| t.priority == level && counts(t)).count();
    size > 0 && up >= min_up.needed(size)
}

/// Chooses the answer for one address family. `held` is the level a manual failback keeps;
/// `min_up` how many up targets a level needs to count as healthy.
pub fn choose(targets: &[TargetView], all_down: AllDown, held: Option<u8>, min_up: MinUp) -> Choice {
    let mut choice = pick(targets, all_down, held, min_up);
    choice.changes_within = pending(targets, all_down, held, min_up, &choice.selected);
    choice
}

/// The soonest verdict in doubt that would change `selected` if it came. Each is tried by running
/// the chart as if it had come: whether it does depends on every rule of the chart (levels,
/// holds, the all-down policy), and a second copy of those rules would drift from the first.
fn pending(
    targets: &[TargetView],
    all_down: AllDown,
    held: Option<u8>,
    min_up: MinUp,
    selected: &[usize],
) -> Option<Duration> {
    let mut after = targets.to_vec();
    let mut soonest: Option<Duration> = None;
    for (i, t) in targets.iter().enumerate() {
        let Some(within) = t.doubt else { continue };
        let health = match (t.admin, t.health) {
            (Admin::Auto, Health::Up) => Health::Down,
            (Admin::Auto, Health::Down) => Health::Up,
            _ => continue,
        };
        after[i] = TargetView { health, doubt: None, ..*t };
        if pick(&after, all_down, held, min_up).selected != selected {
            soonest = Some(soonest.map_or(within, |s| s.min(within)));
        }
        after[i] = *t;
    }
    soonest
}

fn pick(targets: &[TargetView], all_down: AllDown, held: Option<u8>, min_up: MinUp) -> Choice {
    let best_usable = targets.iter().filter(|t| usable(t)).map(|t| t.priority).min();
    let Some(best_usable) = best_usable else {
        return Choice {
            selected: Vec::new(),
            level: None,
            mode: Mode::AllDown,
            short_ttl: true,
            changes_within: None,
        };
    };
    // A level counts as healthy when enough of its targets are (with the default threshold of 1:
    // when any is).
    let level_healthy = |level: u8| reaches(targets, level, min_up, healthy);
    let best_healthy = targets.iter().map(|t| t.priority).filter(|&l| level_healthy(l)).min();
    let level = match (best_healthy, held) {
        // Manual failback: stay on the held level while it counts as healthy.
        (Some(best), Some(h)) if h > best && level_healthy(h) => Some(h),
        (Some(best), _) => Some(best),
        (None, _) => None,
    };
    if let Some(level) = level {
        let selected = at_level(targets, level, healthy);
        let mode = if level == best_usable { Mode::Preferred } else { Mode::Fallback };
        let all_steady = targets.iter().filter(|t| t.priority == level && usable(t)).all(steady);
        let short_ttl = mode == Mode::Fallback || !all_steady;
        return Choice { selected, level: Some(level), mode, short_ttl, changes_within: None };
    }
    // No level is healthy. Targets the monitor has not judged yet are taken as up: until the first
    // probe round is done, nothing is known to be down. They count towards the threshold with the
    // healthy ones of their level, and both are answered (without a threshold there are no
    // healthy ones here, so this answers the unknown ones of the best level that has any).
    let unknown = |t: &TargetView| t.admin == Admin::Auto && t.health == Health::Unknown;
    let hopeful = |t: &TargetView| healthy(t) || unknown(t);
    let best_hopeful = targets
        .iter()
        .filter(|t| unknown(t))
        .map(|t| t.priority)
        .filter(|&l| reaches(targets, l, min_up, hopeful))
        .min();
    if let Some(level) = best_hopeful {
        let selected = at_level(targets, level, hopeful);
        let mode = if level == best_usable { Mode::Preferred } else { Mode::Fallback };
        return Choice { selected, level: Some(level), mode, short_ttl: true, changes_within: None };
    }
    let (selected, level) = match all_down {
        AllDown::KeepPrimary => (at_level(targets, best_usable, usable), Some(best_usable)),
        AllDown::Last => {
            let worst = targets.iter().filter(|t| usable(t)).map(|t| t.priority).max().unwrap_or(best_usable);
            (at_level(targets, worst, usable), Some(worst))
        }
        AllDown::All => ((0..targets.len()).filter(|&i| usable(&targets[i])).collect(), None),
        AllDown::None => (Vec::new(), None),
    };
    Choice { selected, level, mode: Mode::AllDown, short_ttl: true, changes_within: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Health::*;

    /// The chart without a threshold, as most tests here want it.
    fn choose(targets: &[TargetView], all_down: AllDown, held: Option<u8>) -> Choice {
        super::choose(targets, all_down, held, MinUp::default())
    }

    fn t(priority: u8, health: Health) -> TargetView {
        TargetView { priority, health, admin: Admin::Auto, doubt: None }
    }

    /// The `code`-th assignment of up/down/unknown to three levels of two targets.
    fn combination(code: usize) -> Vec<TargetView> {
        let states = [Up, Down, Unknown];
        (0..6).map(|i| t((i / 2 + 1) as u8, states[code / 3usize.pow(i as u32) % 3])).collect()
    }

    const POLICIES: [AllDown; 4] = [AllDown::KeepPrimary, AllDown::All, AllDown::Last, AllDown::None];

    #[test]
    fn primary_up_is_answered_with_full_ttl() {
        let ts = [t(1, Up), t(1, Up), t(2, Up)];
        let c = choose(&ts, AllDown::KeepPrimary, None);
        assert_eq!(
            c,
            Choice {
                selected: vec![0, 1],
                level: Some(1),
                mode: Mode::Preferred,
                short_ttl: false,
                changes_within: None
            }
        );
    }

    #[test]
    fn fails_over_to_the_first_healthy_level() {
        let ts = [t(1, Down), t(2, Down), t(3, Up), t(3, Down)];
        let c = choose(&ts, AllDown::KeepPrimary, None);
        assert_eq!((c.selected, c.level, c.mode, c.short_ttl), (vec![2], Some(3), Mode::Fallback, true));
    }

    #[test]
    fn doubt_on_the_level_in_use_shortens_the_ttl() {
        let mut ts = [t(1, Up), t(1, Up)];
        ts[1].doubt = Some(Duration::from_millis(900));
        assert!(choose(&ts, AllDown::KeepPrimary, None).short_ttl);
        // Doubt on a level not in use does not.
        let mut ts = [t(1, Up), t(2, Up)];
        ts[1].doubt = Some(Duration::from_millis(900));
        assert!(!choose(&ts, AllDown::KeepPrimary, None).short_ttl);
    }

    #[test]
    fn all_unknown_answers_the_best_level_short() {
        let ts = [t(1, Unknown), t(2, Unknown)];
        for p in POLICIES {
            let c = choose(&ts, p, None);
            assert_eq!((c.selected, c.mode, c.short_ttl), (vec![0], Mode::Preferred, true), "{p:?}");
        }
    }

    #[test]
    fn a_known_healthy_target_beats_an_unknown_better_one() {
        // A new primary with no verdict yet does not take traffic from a secondary known up.
        let ts = [t(1, Unknown), t(2, Up)];
        let c = choose(&ts, AllDown::KeepPrimary, None);
        assert_eq!((c.selected, c.mode), (vec![1], Mode::Fallback));
        // But it is answered before the all-down policy applies.
        let ts = [t(1, Down), t(2, Unknown)];
        assert_eq!(choose(&ts, AllDown::None, None).selected, vec![1]);
    }

    #[test]
    fn every_all_down_policy() {
        let ts = [t(1, Down), t(1, Down), t(2, Down), t(3, Down)];
        let sel = |p| choose(&ts, p, None);
        assert_eq!(sel(AllDown::KeepPrimary).selected, vec![0, 1]);
        assert_eq!(sel(AllDown::All).selected, vec![0, 1, 2, 3]);
        assert_eq!(sel(AllDown::Last).selected, vec![3]);
        assert_eq!(sel(AllDown::None).selected, Vec::<usize>::new());
        for p in POLICIES {
            assert_eq!((sel(p).mode, sel(p).short_ttl), (Mode::AllDown, true));
        }
    }

    #[test]
    fn drained_targets_are_out_and_forced_up_are_in() {
        let mut ts = [t(1, Up), t(2, Up)];
        ts[0].admin = Admin::ForcedDown;
        let c = choose(&ts, AllDown::KeepPrimary, None);
        // The drained primary no longer defines "preferred": level 2 is the best there is.
        assert_eq!((c.selected, c.mode, c.short_ttl), (vec![1], Mode::Preferred, false));
        let mut ts = [t(1, Down), t(2, Up)];
        ts[0].admin = Admin::ForcedUp;
        assert_eq!(choose(&ts, AllDown::KeepPrimary, None).selected, vec![0]);
        // Drained targets are not answered even by the all-down policies.
        let mut ts = [t(1, Down), t(2, Down)];
        ts[0].admin = Admin::ForcedDown;
        assert_eq!(choose(&ts, AllDown::KeepPrimary, None).selected, vec![1]);
        assert_eq!(choose(&ts, AllDown::All, None).selected, vec![1]);
        ts[1].admin = Admin::ForcedDown;
        for p in POLICIES {
            assert!(choose(&ts, p, None).selected.is_empty());
        }
    }

    #[test]
    fn manual_failback_holds_while_the_held_level_is_healthy() {
        let ts = [t(1, Up), t(2, Up)];
        let c = choose(&ts, AllDown::KeepPrimary, Some(2));
        assert_eq!((c.selected, c.mode, c.short_ttl), (vec![1], Mode::Fallback, true));
        // The held level fails: move to the best healthy one.
        let ts = [t(1, Up), t(2, Down), t(3, Up)];
        assert_eq!(choose(&ts, AllDown::KeepPrimary, Some(2)).selected, vec![0]);
        // A hold on a level better than the best healthy one changes nothing.
        let ts = [t(1, Down), t(2, Up)];
        assert_eq!(choose(&ts, AllDown::KeepPrimary, Some(1)).selected, vec![1]);
    }

    #[test]
    fn no_targets_is_empty() {
        let c = choose(&[], AllDown::KeepPrimary, None);
        assert!(c.selected.is_empty() && c.short_ttl);
    }

    /// Every combination of up/down/unknown over three levels of two targets, every policy:
    /// invariants that must always hold.
    #[test]
    fn exhaustive_invariants() {
        for code in 0..3usize.pow(6) {
            let ts = combination(code);
            for p in POLICIES {
                let ch = choose(&ts, p, None);
                let any_up = ts.iter().any(|x| x.health == Up);
                let any_unknown = ts.iter().any(|x| x.health == Unknown);
                if any_up {
                    let best = ts.iter().filter(|x| x.health == Up).map(|x| x.priority).min().unwrap();
                    assert!(ch.selected.iter().all(|&i| ts[i].health == Up && ts[i].priority == best));
                    assert_eq!(ch.selected.len(), ts.iter().filter(|x| x.health == Up && x.priority == best).count());
                    assert_eq!(ch.mode == Mode::Preferred, best == 1);
                    assert_eq!(ch.short_ttl, best != 1 || ts.iter().any(|x| x.priority == 1 && x.health != Up));
                } else if any_unknown {
                    assert!(!ch.selected.is_empty());
                    assert!(ch.selected.iter().all(|&i| ts[i].health == Unknown));
                    assert!(ch.short_ttl);
                } else {
                    assert_eq!(ch.mode, Mode::AllDown);
                    assert_eq!(ch.selected.is_empty(), p == AllDown::None);
                }
            }
        }
    }

    /// The `code`-th assignment of up, up in doubt, down, down in doubt and unknown to three
    /// levels of two targets. Target `i` in doubt has its verdict due within `due(i)`, a time of
    /// its own, so the one that sets `changes_within` is known.
    fn doubt_combination(code: usize) -> Vec<TargetView> {
        (0..6)
            .map(|i| {
                let (health, doubt) = match code / 5usize.pow(i as u32) % 5 {
                    0 => (Up, false),
                    1 => (Up, true),
                    2 => (Down, false),
                    3 => (Down, true),
                    _ => (Unknown, false),
                };
                TargetView { doubt: doubt.then(|| due(i)), ..t((i / 2 + 1) as u8, health) }
            })
            .collect()
    }

    fn due(i: usize) -> Duration {
        Duration::from_millis(100 * (6 - i as u64))
    }

    /// Every combination with doubt, every policy, auto failback and every held level: doubt
    /// never changes which targets are answered, and `changes_within` is the soonest due among
    /// exactly the targets in use that are in doubt going down, and those in doubt coming up that
    /// would join the level answered or move the answer (any of them while none is up).
    #[test]
    fn exhaustive_doubt() {
        let mut pending_seen = [0usize; 2];
        for code in 0..5usize.pow(6) {
            let ts = doubt_combination(code);
            let steady: Vec<TargetView> = ts.iter().map(|x| TargetView { doubt: None, ..*x }).collect();
            for p in POLICIES {
                for held in [None, Some(1), Some(2), Some(3)] {
                    let ch = choose(&ts, p, held);
                    let without = choose(&steady, p, held);
                    assert_eq!((&ch.selected, ch.level, ch.mode), (&without.selected, without.level, without.mode));
                    assert_eq!(without.changes_within, None, "nothing pending without doubt: {steady:?}");
                    // The level answered while `best` is the best level up and `rising` comes
                    // up too: a hold keeps a worse level that is up.
                    let answered = |best: u8, rising: Option<u8>| match held {
                        Some(h)
                            if h > best
                                && (rising == Some(h) || ts.iter().any(|x| x.priority == h && x.health == Up)) =>
                        {
                            h
                        }
                        _ => best,
                    };
                    let best_up = ts.iter().filter(|x| x.health == Up).map(|x| x.priority).min();
                    let changes = |i: usize| match ts[i].health {
                        Up => ch.selected.contains(&i),
                        Down => {
                            let q = ts[i].priority;
                            // It joins the level answered, or the answer moves to another level.
                            best_up.is_none_or(|b| {
                                let now = answered(b, None);
                                now == q || answered(b.min(q), Some(q)) != now
                            })
                        }
                        Unknown => false,
                    };
                    let want = (0..6).filter(|&i| ts[i].doubt.is_some() && changes(i)).map(due).min();
                    assert_eq!(ch.changes_within, want, "{p:?} held {held:?}: {ts:?}");
                    // Without a hold, a pending change always comes with the short TTL.
                    assert!(held.is_some() || ch.changes_within.is_none() || ch.short_ttl, "{p:?}: {ts:?}");
                    pending_seen[usize::from(want.is_some())] += 1;
                }
            }
        }
        assert!(pending_seen[0] > 0 && pending_seen[1] > 0, "{pending_seen:?}");
    }

    #[test]
    fn pending_verdicts_that_change_the_answer() {
        let ms = Duration::from_millis;
        let doubt = |mut x: TargetView, d: u64| {
            x.doubt = Some(ms(d));
            x
        };
        // In use, in doubt going down.
        let c = choose(&[doubt(t(1, Up), 700), t(2, Up)], AllDown::KeepPrimary, None);
        assert_eq!((c.selected, c.changes_within), (vec![0], Some(ms(700))));
        // A better level in doubt coming up.
        let c = choose(&[doubt(t(1, Down), 400), t(2, Up)], AllDown::KeepPrimary, None);
        assert_eq!((c.selected, c.changes_within), (vec![1], Some(ms(400))));
        // The soonest of two.
        let c = choose(&[doubt(t(1, Down), 400), doubt(t(2, Up), 300)], AllDown::KeepPrimary, None);
        assert_eq!(c.changes_within, Some(ms(300)));
        // Not in use, or held away by a manual failback: nothing pending.
        let c = choose(&[t(1, Up), doubt(t(2, Up), 300)], AllDown::KeepPrimary, None);
        assert_eq!(c.changes_within, None);
        let c = choose(&[doubt(t(1, Down), 400), t(2, Up)], AllDown::KeepPrimary, Some(2));
        assert_eq!((c.selected, c.changes_within), (vec![1], None));
        // The last target going down under keep-primary: it stays the answer.
        let c = choose(&[doubt(t(1, Up), 700)], AllDown::KeepPrimary, None);
        assert_eq!((c.selected, c.changes_within), (vec![0], None));
        // Drained and forced targets have no pending verdict that matters.
        let mut drained = doubt(t(1, Down), 400);
        drained.admin = Admin::ForcedDown;
        assert_eq!(choose(&[drained, t(2, Up)], AllDown::KeepPrimary, None).changes_within, None);
        let mut forced = doubt(t(1, Up), 400);
        forced.admin = Admin::ForcedUp;
        assert_eq!(choose(&[forced, t(2, Up)], AllDown::KeepPrimary, None).changes_within, None);
    }

    /// Both failback modes over every combination: with a held level (manual failback), the
    /// answer stays on it exactly while it has a healthy target and is worse than the best.
    #[test]
    fn exhaustive_failback_modes() {
        for code in 0..3usize.pow(6) {
            let ts = combination(code);
            for p in POLICIES {
                let auto = choose(&ts, p, None);
                for held in 1..=3u8 {
                    let manual = choose(&ts, p, Some(held));
                    let best_up = ts.iter().filter(|x| x.health == Up).map(|x| x.priority).min();
                    let held_up = ts.iter().any(|x| x.priority == held && x.health == Up);
                    match best_up {
                        Some(best) if held > best && held_up => {
                            assert_eq!(manual.level, Some(held));
                            assert_eq!(manual.mode, Mode::Fallback);
                            assert!(manual.selected.iter().all(|&i| ts[i].priority == held && ts[i].health == Up));
                        }
                        _ => assert_eq!(manual, auto, "hold {held} must not matter: {ts:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn thresholds_count_and_percent() {
        assert_eq!([1, 2, 3, 4].map(|n| MinUp::Percent(50).needed(n)), [1, 1, 2, 2]);
        assert_eq!([1, 3, 10].map(|n| MinUp::Percent(1).needed(n)), [1, 1, 1]);
        assert_eq!([1, 3, 10].map(|n| MinUp::Percent(100).needed(n)), [1, 3, 10]);
        assert_eq!(MinUp::Count(2).needed(5), 2);
        // Two of three up at level 1 with min_up = 100%: the whole level is skipped.
        let ts = [t(1, Up), t(1, Up), t(1, Down), t(2, Up)];
        let c = super::choose(&ts, AllDown::KeepPrimary, None, MinUp::Percent(100));
        assert_eq!((c.selected, c.level, c.mode), (vec![3], Some(2), Mode::Fallback));
        let c = super::choose(&ts, AllDown::KeepPrimary, None, MinUp::Count(2));
        assert_eq!((c.selected, c.mode), (vec![0, 1], Mode::Preferred));
        // A drained target is not up but still counts in the size a percentage is taken of.
        let mut ts = [t(1, Up), t(1, Up), t(1, Up), t(2, Up)];
        ts[0].admin = Admin::ForcedDown;
        assert_eq!(super::choose(&ts, AllDown::KeepPrimary, None, MinUp::Percent(100)).selected, vec![3]);
        assert_eq!(super::choose(&ts, AllDown::KeepPrimary, None, MinUp::Percent(66)).selected, vec![1, 2]);
        // A forced-up target counts as up.
        ts[0].admin = Admin::ForcedUp;
        ts[1].health = Down;
        assert_eq!(super::choose(&ts, AllDown::KeepPrimary, None, MinUp::Count(2)).selected, vec![0, 2]);
        // Every level below its threshold: the all-down policy, as without thresholds.
        let ts = [t(1, Up), t(1, Down), t(2, Down), t(2, Up)];
        let c = super::choose(&ts, AllDown::Last, None, MinUp::Count(2));
        assert_eq!((c.selected, c.mode), (vec![2, 3], Mode::AllDown));
    }

    #[test]
    fn a_pending_verdict_that_crosses_the_threshold_changes_the_answer() {
        let ms = Duration::from_millis;
        let mut ts = [t(1, Up), t(1, Down), t(2, Up)];
        // One more up at level 1 brings it back to its threshold of 100%.
        ts[1].doubt = Some(ms(400));
        let c = super::choose(&ts, AllDown::KeepPrimary, None, MinUp::Percent(100));
        assert_eq!((c.selected, c.changes_within), (vec![2], Some(ms(400))));
        // One fewer up at level 1 drops it below.
        let mut ts = [t(1, Up), t(1, Up), t(2, Up)];
        ts[0].doubt = Some(ms(300));
        let c = super::choose(&ts, AllDown::KeepPrimary, None, MinUp::Percent(100));
        assert_eq!((c.selected, c.changes_within), (vec![0, 1], Some(ms(300))));
        // Coming up at a level that stays below its threshold (two of three) changes nothing.
        let mut ts = [t(1, Down), t(1, Down), t(1, Down), t(2, Up)];
        ts[0].doubt = Some(ms(300));
        let c = super::choose(&ts, AllDown::KeepPrimary, None, MinUp::Percent(67));
        assert_eq!((c.selected, c.changes_within), (vec![3], None));
    }

    /// What a target is in the threshold tests: a verdict with or without doubt, or an override.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum State {
        Up,
        UpDoubt,
        Down,
        DownDoubt,
        Unknown,
        ForcedUp,
        ForcedDown,
    }

    const STATES: [State; 7] =
        [State::Up, State::UpDoubt, State::Down, State::DownDoubt, State::Unknown, State::ForcedUp, State::ForcedDown];

    fn view(priority: u8, s: State, i: usize) -> TargetView {
        let (health, admin, doubt) = match s {
            State::Up => (Up, Admin::Auto, false),
            State::UpDoubt => (Up, Admin::Auto, true),
            State::Down => (Down, Admin::Auto, false),
            State::DownDoubt => (Down, Admin::Auto, true),
            State::Unknown => (Unknown, Admin::Auto, false),
            State::ForcedUp => (Down, Admin::ForcedUp, false),
            State::ForcedDown => (Up, Admin::ForcedDown, false),
        };
        TargetView { priority, health, admin, doubt: doubt.then(|| due(i)) }
    }

    /// The answer (selected, level, mode) as the threshold rules say, written out plainly and
    /// apart from the chart: levels whose up targets reach the threshold; failing that, levels
    /// whose up and unknown ones do; failing that, the all-down policy.
    fn model(ps: &[u8], ss: &[State], p: AllDown, held: Option<u8>, m: MinUp) -> (Vec<usize>, Option<u8>, Mode) {
        let up = |s: State| matches!(s, State::Up | State::UpDoubt | State::ForcedUp);
        let unknown = |s: State| s == State::Unknown;
        let mut levels: Vec<u8> = ps.to_vec();
        levels.sort();
        levels.dedup();
        let need = |l: u8| {
            let size = ps.iter().filter(|&&q| q == l).count();
            let mut k = match m {
                MinUp::Count(n) => usize::from(n),
                // The least k with k / size >= p / 100.
                MinUp::Percent(pc) => (0..=size).find(|k| k * 100 >= usize::from(pc) * size).unwrap(),
            };
            if k == 0 {
                k = 1;
            }
            k
        };
        let count = |l: u8, f: &dyn Fn(State) -> bool| (0..ps.len()).filter(|&i| ps[i] == l && f(ss[i])).count();
        let at = |l: u8, f: &dyn Fn(State) -> bool| (0..ps.len()).filter(|&i| ps[i] == l && f(ss[i])).collect();
        let usable: Vec<u8> = levels.iter().copied().filter(|&l| count(l, &|s| s != State::ForcedDown) > 0).collect();
        let Some(&best_usable) = usable.first() else { return (vec![], None, Mode::AllDown) };
        let mode = |l: u8| if l == best_usable { Mode::Preferred } else { Mode::Fallback };
        let ok: Vec<u8> = levels.iter().copied().filter(|&l| count(l, &up) >= need(l)).collect();
        if let Some(&best) = ok.first() {
            let l = match held {
                Some(h) if h > best && ok.contains(&h) => h,
                _ => best,
            };
            return (at(l, &up), Some(l), mode(l));
        }
        let either = |s: State| up(s) || unknown(s);
        let hopeful: Vec<u8> =
            levels.iter().copied().filter(|&l| count(l, &unknown) > 0 && count(l, &either) >= need(l)).collect();
        if let Some(&l) = hopeful.first() {
            return (at(l, &either), Some(l), mode(l));
        }
        let not_drained = |s: State| s != State::ForcedDown;
        match p {
            AllDown::KeepPrimary => (at(best_usable, &not_drained), Some(best_usable), Mode::AllDown),
            AllDown::Last => {
                let worst = *usable.last().unwrap();
                (at(worst, &not_drained), Some(worst), Mode::AllDown)
            }
            AllDown::All => ((0..ps.len()).filter(|&i| not_drained(ss[i])).collect(), None, Mode::AllDown),
            AllDown::None => (vec![], None, Mode::AllDown),
        }
    }

    /// Every combination of the seven states over small pools (levels of 2+2, 3+1 and 1+2+1
    /// targets), every threshold a level can have (counts 1..=largest level, and percentages
    /// around the steps), every policy and every held level: the chart agrees with the model,
    /// and `changes_within` is the soonest due among exactly the targets in doubt whose verdict,
    /// if it came, would change the model's answer.
    #[test]
    fn exhaustive_thresholds() {
        let layouts: [&[u8]; 3] = [&[1, 1, 2, 2], &[1, 1, 1, 2], &[1, 2, 2, 3]];
        let mut seen = [0usize; 3];
        for ps in layouts {
            let largest = (1..=3).map(|l| ps.iter().filter(|&&q| q == l).count()).max().unwrap();
            let mut thresholds: Vec<MinUp> = (1..=largest as u16).map(MinUp::Count).collect();
            thresholds.extend([1, 33, 34, 50, 51, 66, 67, 100].map(MinUp::Percent));
            for code in 0..7usize.pow(ps.len() as u32) {
                let ss: Vec<State> = (0..ps.len()).map(|i| STATES[code / 7usize.pow(i as u32) % 7]).collect();
                let ts: Vec<TargetView> = (0..ps.len()).map(|i| view(ps[i], ss[i], i)).collect();
                for &m in &thresholds {
                    for p in POLICIES {
                        for held in [None, Some(2), Some(3)] {
                            let ch = super::choose(&ts, p, held, m);
                            let want = model(ps, &ss, p, held, m);
                            assert_eq!(
                                (&ch.selected, ch.level, ch.mode),
                                (&want.0, want.1, want.2),
                                "{m:?} {p:?} held {held:?}: {ss:?}"
                            );
                            let flips = (0..ps.len()).filter(|&i| {
                                let flipped = match ss[i] {
                                    State::UpDoubt => State::Down,
                                    State::DownDoubt => State::Up,
                                    _ => return false,
                                };
                                let mut after = ss.clone();
                                after[i] = flipped;
                                model(ps, &after, p, held, m).0 != want.0
                            });
                            assert_eq!(ch.changes_within, flips.map(due).min(), "{m:?} {p:?} held {held:?}: {ss:?}");
                            seen[match (ch.mode, ch.changes_within) {
                                (Mode::AllDown, _) => 0,
                                (_, None) => 1,
                                (_, Some(_)) => 2,
                            }] += 1;
                        }
                    }
                }
            }
        }
        assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
    }
}
