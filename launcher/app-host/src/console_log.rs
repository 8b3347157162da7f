//! The page's console output and uncaught errors, written to the host's log (and from
//! there, through the shell, to the app's log file), at most [`MAX_PER_SECOND`] lines a
//! second so that a page logging in a loop cannot flood the disk.

use std::time::Instant;

use crate::{page_gate::ConsoleLevel, per_second::PerSecond};

/// Console lines kept per second; the rest are counted and reported as dropped.
pub const MAX_PER_SECOND: u32 = 200;

/// The rate limiter in front of the log.
#[derive(Debug)]
pub struct ConsoleLog {
    budget: PerSecond,
}

impl ConsoleLog {
    /// A limiter whose first window starts `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            budget: PerSecond::new(MAX_PER_SECOND, now),
        }
    }

    /// Logs one console line seen at `now`, unless this second's share is used up.
    pub fn record(&mut self, now: Instant, level: ConsoleLevel, text: &str) {
        let Some(dropped) = self.budget.admit(now) else {
            return;
        };
        if dropped > 0 {
            tracing::warn!(
                target: "page",
                "{dropped} console lines dropped: more than {MAX_PER_SECOND} a second"
            );
        }
        match level {
            ConsoleLevel::Debug => tracing::debug!(target: "page", "console.debug: {text}"),
            ConsoleLevel::Info => tracing::info!(target: "page", "console.log: {text}"),
            ConsoleLevel::Warn => tracing::warn!(target: "page", "console.warn: {text}"),
            ConsoleLevel::Error => tracing::error!(target: "page", "console.error: {text}"),
        }
    }
}
