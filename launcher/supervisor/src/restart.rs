//! Whether an app whose process ended on its own is started again, and when: its
//! restart policy and the crash-loop breaker, as pure logic over the times it is given.
//!
//! Invariants:
//! - An exit the policy does not restart leaves the app as it is (stopped or crashed).
//! - An exit that is restarted counts towards the breaker when the app never became
//!   ready in that run, or became ready less than `crash_loop` before; any other clears
//!   the count. Exits that come after a healthy run therefore never trip the breaker.
//! - The first restart of a series is immediate; each further counted one waits twice
//!   as long as the one before, from [`FIRST_BACKOFF`] up to [`MAX_BACKOFF`].
//! - The `max_crashes`-th counted exit in a row is not restarted: the app has failed.

use std::time::{Duration, Instant};

use weft_workspace::{Restart, RestartPolicy};

/// The wait before the second restart of a series.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait before a restart.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What to do about an exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Start it again after this long.
    Restart {
        /// The wait.
        after: Duration,
    },
    /// Too many quick exits in a row: leave it failed.
    GiveUp {
        /// The counted exits.
        crashes: u32,
    },
    /// The policy does not restart this kind of exit.
    Leave,
}

/// One app's restart policy and its count of quick exits.
#[derive(Debug, Clone)]
pub(crate) struct CrashLoop {
    restart: Restart,
    counted: u32,
}

impl CrashLoop {
    pub(crate) fn new(restart: Restart) -> Self {
        CrashLoop {
            restart,
            counted: 0,
        }
    }

    /// The process ended at `now`, with a failure (non-zero status, or a signal) or
    /// not, having become ready at `ready_at` (`None`: it never did in this run).
    pub(crate) fn exited(
        &mut self,
        failure: bool,
        ready_at: Option<Instant>,
        now: Instant,
    ) -> Decision {
        let wanted = match self.restart.policy {
            RestartPolicy::Never => false,
            RestartPolicy::OnFailure => failure,
            RestartPolicy::Always => true,
        };
        if !wanted {
            return Decision::Leave;
        }
        let quick =
            ready_at.is_none_or(|ready| now.duration_since(ready) < self.restart.crash_loop);
        if !quick {
            self.counted = 0;
            return Decision::Restart {
                after: Duration::ZERO,
            };
        }
        self.counted += 1;
        if self.counted >= self.restart.max_crashes {
            return Decision::GiveUp {
                crashes: self.counted,
            };
        }
        let after = match self.counted {
            1 => Duration::ZERO,
            n => FIRST_BACKOFF
                .saturating_mul(1 << (n - 2).min(16))
                .min(MAX_BACKOFF),
        };
        Decision::Restart { after }
    }

    /// How soon after becoming ready an exit still counts.
    pub(crate) fn window(&self) -> Duration {
        self.restart.crash_loop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(policy: RestartPolicy) -> CrashLoop {
        CrashLoop::new(Restart {
            policy,
            ..Restart::default()
        })
    }

    #[test]
    fn each_policy_restarts_what_it_says() {
        let now = Instant::now();
        let ready = Some(now - Duration::from_secs(60));
        let restart = Decision::Restart {
            after: Duration::ZERO,
        };
        assert_eq!(
            policy(RestartPolicy::Never).exited(true, ready, now),
            Decision::Leave
        );
        assert_eq!(
            policy(RestartPolicy::OnFailure).exited(false, ready, now),
            Decision::Leave
        );
        assert_eq!(
            policy(RestartPolicy::OnFailure).exited(true, ready, now),
            restart
        );
        assert_eq!(
            policy(RestartPolicy::Always).exited(false, ready, now),
            restart
        );
    }

    #[test]
    fn quick_crashes_back_off_then_trip_the_breaker() {
        let mut c = policy(RestartPolicy::OnFailure);
        let mut now = Instant::now();
        let mut decisions = Vec::new();
        for _ in 0..5 {
            // Ready, then dead a second later.
            let ready = now;
            now += Duration::from_secs(1);
            decisions.push(c.exited(true, Some(ready), now));
        }
        let ms = |n| Decision::Restart {
            after: Duration::from_millis(n),
        };
        assert_eq!(
            decisions,
            [
                ms(0),
                ms(500),
                ms(1000),
                ms(2000),
                Decision::GiveUp { crashes: 5 }
            ]
        );
    }

    #[test]
    fn crashes_before_ready_count() {
        let mut c = CrashLoop::new(Restart {
            max_crashes: 2,
            ..Restart::default()
        });
        let now = Instant::now();
        assert!(matches!(
            c.exited(true, None, now),
            Decision::Restart { .. }
        ));
        assert_eq!(c.exited(true, None, now), Decision::GiveUp { crashes: 2 });
    }

    #[test]
    fn crashes_spaced_beyond_the_window_never_trip_it() {
        let mut c = policy(RestartPolicy::OnFailure);
        let mut now = Instant::now();
        for _ in 0..50 {
            let ready = now;
            now += Duration::from_secs(11);
            assert_eq!(
                c.exited(true, Some(ready), now),
                Decision::Restart {
                    after: Duration::ZERO
                }
            );
        }
        // And a healthy run clears the count left by quick ones.
        for _ in 0..4 {
            assert!(matches!(
                c.exited(true, Some(now), now),
                Decision::Restart { .. }
            ));
        }
        assert!(matches!(
            c.exited(true, Some(now), now + Duration::from_secs(11)),
            Decision::Restart { .. }
        ));
        assert!(matches!(
            c.exited(true, Some(now), now),
            Decision::Restart { .. }
        ));
    }

    #[test]
    fn the_backoff_is_capped() {
        let mut c = CrashLoop::new(Restart {
            max_crashes: 100,
            ..Restart::default()
        });
        let now = Instant::now();
        let mut last = Duration::ZERO;
        for _ in 0..99 {
            if let Decision::Restart { after } = c.exited(true, None, now) {
                assert!(after >= last && after <= MAX_BACKOFF);
                last = after;
            } else {
                panic!("gave up early");
            }
        }
        assert_eq!(last, MAX_BACKOFF);
    }
}
