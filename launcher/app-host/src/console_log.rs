//! The page's console output and uncaught errors, written to the host's log (and from
//! there, through the shell, to the app's log file), at most [`MAX_PER_SECOND`] lines a
//! second so that a page logging in a loop cannot flood the disk.

use std::time::{Duration, Instant};

use crate::page_gate::ConsoleLevel;

/// Console lines kept per second; the rest are counted and reported as dropped.
pub const MAX_PER_SECOND: u32 = 200;

/// The rate limiter in front of the log.
#[derive(Debug)]
pub struct ConsoleLog {
    window_start: Instant,
    in_window: u32,
    dropped: u64,
}

impl ConsoleLog {
    /// A limiter whose first window starts `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            in_window: 0,
            dropped: 0,
        }
    }

    /// Logs one console line seen at `now`, unless this second's share is used up.
    pub fn record(&mut self, now: Instant, level: ConsoleLevel, text: &str) {
        if self.admit(now) {
            match level {
                ConsoleLevel::Debug => tracing::debug!(target: "page", "console.debug: {text}"),
                ConsoleLevel::Info => tracing::info!(target: "page", "console.log: {text}"),
                ConsoleLevel::Warn => tracing::warn!(target: "page", "console.warn: {text}"),
                ConsoleLevel::Error => tracing::error!(target: "page", "console.error: {text}"),
            }
        }
    }

    /// Whether a line seen at `now` is kept; says how many were dropped when a new
    /// second starts after some were.
    fn admit(&mut self, now: Instant) -> bool {
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            if self.dropped > 0 {
                tracing::warn!(
                    target: "page",
                    "{} console lines dropped: more than {MAX_PER_SECOND} a second",
                    self.dropped
                );
            }
            self.window_start = now;
            self.in_window = 0;
            self.dropped = 0;
        }
        if self.in_window < MAX_PER_SECOND {
            self.in_window += 1;
            true
        } else {
            self.dropped += 1;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_the_limit_per_second_is_kept() {
        let start = Instant::now();
        let mut log = ConsoleLog::new(start);
        let kept = (0..MAX_PER_SECOND + 50)
            .filter(|_| log.admit(start))
            .count();
        assert_eq!(kept, MAX_PER_SECOND as usize);
        assert_eq!(log.dropped, 50);
        assert!(log.admit(start + Duration::from_secs(1)), "a new second");
        assert_eq!(log.dropped, 0);
    }
}
