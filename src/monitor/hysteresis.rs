//! Rise/fall counting: turns a stream of probe results into a verdict that does not flap.
//!
//! Pure and synchronous; the monitor feeds it one result per probe and acts on the transitions
//! it returns.

use std::time::Duration;

use crate::model::chart::Health;
use crate::model::pool::Check;

/// What the monitor knows of one probed (address, port, check).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetState {
    pub verdict: Health,
    /// Consecutive results that disagree with the verdict (failures while up, successes while down).
    pub against: u32,
    /// Consecutive results in a row of the latest kind, for status displays.
    pub streak: u32,
    pub last_ok: Option<bool>,
}

/// A change of verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: Health,
    pub to: Health,
    /// How many consecutive results brought it about.
    pub after: u32,
}

impl TargetState {
    /// The verdict may change soon: a result disagreed with it and is being confirmed.
    pub fn in_doubt(&self) -> bool {
        self.against > 0
    }

    /// While in doubt, the latest the new verdict can come, counted from the last result: the
    /// results still needed come one per `retry_interval` (the monitor probes a target in doubt
    /// that often) and the last takes at most `timeout`. None when nothing is pending.
    pub fn decided_within(&self, check: &Check) -> Option<Duration> {
        let needed = match self.verdict {
            Health::Up => check.fall,
            Health::Down => check.rise,
            Health::Unknown => return None,
        };
        if !self.in_doubt() {
            return None;
        }
        let to_go = needed.saturating_sub(self.against).max(1);
        Some(check.retry_interval * to_go + check.timeout)
    }

    /// Takes one probe result. The first result of a target decides its verdict at once (so the
    /// start-up round gives verdicts); after that `fall` failures in a row take an up target
    /// down, and `rise` successes in a row bring a down one up.
    pub fn observe(&mut self, ok: bool, rise: u32, fall: u32) -> Option<Transition> {
        self.streak = if self.last_ok == Some(ok) { self.streak.saturating_add(1) } else { 1 };
        self.last_ok = Some(ok);
        let from = self.verdict;
        let agrees = matches!((from, ok), (Health::Up, true) | (Health::Down, false));
        if agrees {
            self.against = 0;
            return None;
        }
        let to = if ok { Health::Up } else { Health::Down };
        if from == Health::Unknown {
            self.verdict = to;
            self.against = 0;
            return Some(Transition { from, to, after: 1 });
        }
        self.against += 1;
        let needed = if ok { rise } else { fall };
        if self.against >= needed {
            let after = self.against;
            self.verdict = to;
            self.against = 0;
            return Some(Transition { from, to, after });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Health::*;

    fn run(results: &[bool], rise: u32, fall: u32) -> (TargetState, Vec<Transition>) {
        let mut s = TargetState::default();
        let t = results.iter().filter_map(|&ok| s.observe(ok, rise, fall)).collect();
        (s, t)
    }

    #[test]
    fn first_result_decides() {
        assert_eq!(run(&[true], 2, 3).1, vec![Transition { from: Unknown, to: Up, after: 1 }]);
        assert_eq!(run(&[false], 2, 3).1, vec![Transition { from: Unknown, to: Down, after: 1 }]);
    }

    #[test]
    fn fall_failures_take_it_down() {
        let (s, t) = run(&[true, false, false], 2, 3);
        assert_eq!((s.verdict, s.in_doubt(), t.len()), (Up, true, 1));
        let (s, t) = run(&[true, false, false, false], 2, 3);
        assert_eq!((s.verdict, s.in_doubt()), (Down, false));
        assert_eq!(t[1], Transition { from: Up, to: Down, after: 3 });
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let (s, t) = run(&[true, false, false, true, false, false], 2, 3);
        assert_eq!((s.verdict, t.len()), (Up, 1));
        assert!(s.in_doubt());
    }

    #[test]
    fn rise_successes_bring_it_up() {
        let (s, t) = run(&[false, true], 2, 3);
        assert_eq!((s.verdict, s.in_doubt(), t.len()), (Down, true, 1));
        let (s, t) = run(&[false, true, true], 2, 3);
        assert_eq!((s.verdict, t[1]), (Up, Transition { from: Down, to: Up, after: 2 }));
        let (s, _) = run(&[false, true, false, true], 2, 3);
        assert_eq!(s.verdict, Down, "a failure resets the success count");
    }

    #[test]
    fn the_pending_verdict_is_due_after_the_retries_left_and_one_timeout() {
        // retry_interval 200 ms, timeout 500 ms, fall 3, rise 2.
        let check = crate::model::pool::testing::tcp_check();
        let ms = Duration::from_millis;
        let due = |results: &[bool]| run(results, check.rise, check.fall).0.decided_within(&check);
        assert_eq!(due(&[]), None, "no verdict");
        assert_eq!(due(&[true]), None, "steady");
        assert_eq!(due(&[true, false]), Some(ms(2 * 200 + 500)));
        assert_eq!(due(&[true, false, false]), Some(ms(200 + 500)));
        assert_eq!(due(&[true, false, false, false]), None, "decided: down");
        assert_eq!(due(&[true, false, false, false, true]), Some(ms(200 + 500)));
        assert_eq!(due(&[true, false, false, false, true, false]), None, "the doubt went away");
    }

    #[test]
    fn rise_and_fall_of_one_follow_every_result() {
        let (s, t) = run(&[true, false, true, false], 1, 1);
        assert_eq!((s.verdict, t.len()), (Down, 4));
    }

    #[test]
    fn streak_counts_results_of_one_kind() {
        let (s, _) = run(&[true, true, false, false, false, false], 2, 3);
        assert_eq!((s.streak, s.last_ok), (4, Some(false)));
    }

    /// Every sequence of 8 results with rise, fall in 1..=3: the verdict changes only after
    /// `fall`/`rise` consecutive disagreeing results, and never flaps on alternating results.
    #[test]
    fn exhaustive_sequences() {
        for rise in 1..=3 {
            for fall in 1..=3 {
                for bits in 0u32..256 {
                    let results: Vec<bool> = (0..8).map(|i| bits >> i & 1 == 1).collect();
                    let mut s = TargetState::default();
                    for (i, &ok) in results.iter().enumerate() {
                        let before = s.verdict;
                        let t = s.observe(ok, rise, fall);
                        if let Some(t) = t {
                            assert_eq!(t.from, before);
                            if before != Unknown {
                                let need = if ok { rise } else { fall } as usize;
                                assert!(i + 1 >= need);
                                assert!(results[i + 1 - need..=i].iter().all(|&r| r == ok), "{results:?} at {i}");
                            }
                        }
                        assert_ne!(s.verdict, Unknown);
                    }
                }
            }
        }
    }
}
