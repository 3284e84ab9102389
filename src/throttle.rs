//! Log lines of one kind at most once per interval, with how many were held back since: a
//! flood of refusals (cluster datagrams, transfers, failed accepts) must not flood the log.
//! The metrics count every one.

use std::time::{Duration, Instant};

/// When a kind of line was last logged, and how many have been held back since.
#[derive(Debug, Clone, Copy)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
    held: u64,
}

impl Throttle {
    pub const fn new(every: Duration) -> Throttle {
        // No `last` yet rather than `now - every`: an Instant that far back panics while the
        // host has been up less than that (a monotonic clock starts at boot).
        Throttle { every, last: None, held: 0 }
    }

    /// Some(lines held back since the last one) when a line is due at `now`; None: hold this
    /// one back.
    pub fn due(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|t| now.duration_since(t) < self.every) {
            self.held += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_held_back() {
        let mut t = Throttle::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(t.due(start), Some(0));
        assert_eq!(t.due(start + Duration::from_secs(1)), None);
        assert_eq!(t.due(start + Duration::from_secs(9)), None);
        assert_eq!(t.due(start + Duration::from_secs(10)), Some(2));
        assert_eq!(t.due(start + Duration::from_secs(11)), None);
    }
}
