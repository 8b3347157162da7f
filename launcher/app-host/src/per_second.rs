//! A per-second budget: at most `max` events a second pass; the rest are counted, and
//! the count is handed to the first event that passes afterwards. Used for the page's
//! console lines and for reports of what the page was refused.

use std::time::{Duration, Instant};

/// The budget.
#[derive(Debug)]
pub struct PerSecond {
    max: u32,
    window_start: Instant,
    in_window: u32,
    refused: u64,
}

impl PerSecond {
    /// A budget of `max` a second whose first second starts `now`.
    pub fn new(max: u32, now: Instant) -> Self {
        Self {
            max,
            window_start: now,
            in_window: 0,
            refused: 0,
        }
    }

    /// Whether an event at `now` passes: `Some(n)` with the number refused since the
    /// last one that passed, or `None`.
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.in_window = 0;
        }
        if self.in_window < self.max {
            self.in_window += 1;
            Some(std::mem::take(&mut self.refused))
        } else {
            self.refused += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_the_budget_passes_and_the_rest_are_counted() {
        let start = Instant::now();
        let mut budget = PerSecond::new(3, start);
        let passed: Vec<_> = (0..5).map(|_| budget.admit(start)).collect();
        assert_eq!(passed, [Some(0), Some(0), Some(0), None, None]);
        assert_eq!(budget.admit(start + Duration::from_secs(1)), Some(2));
        assert_eq!(budget.admit(start + Duration::from_secs(1)), Some(0));
    }
}
