//! Is the page's JavaScript thread alive?
//!
//! The host's bus thread asks the window thread to run a trivial script in the page
//! every [`INTERVAL`] (checking the deadline more often, every [`CHECK_EVERY`]); WebKit runs it on the page's JavaScript thread and reports back.
//! A page stuck in an endless loop never runs it. The probe is started by the host, not
//! by a page timer (browsers throttle those in hidden windows), and it runs on the bus
//! thread, so a window thread that is stuck too cannot hide the hang.
//!
//! Invariants:
//! - At most one probe is outstanding: nothing piles up in a stuck page.
//! - A probe unanswered for longer than [`VISIBLE_LIMIT`] (or [`HIDDEN_LIMIT`] when the
//!   window was hidden or minimised when it was sent) makes the page not responding;
//!   the next answer makes it responding again. Each change is reported once.
//! - A new page load starts from scratch: responding, nothing outstanding.

use std::time::{Duration, Instant};

/// How often the page is probed (each probe costs the page a trivial script).
pub const INTERVAL: Duration = Duration::from_millis(500);
/// How often the probe's deadline is checked: [`PageProbe::tick`] wants calling this
/// often.
pub const CHECK_EVERY: Duration = Duration::from_millis(125);
/// How long a visible page may take to answer. A hang is therefore noticed within
/// 2.25 s: at most an interval and a check until the next probe goes out, this limit,
/// and a check.
pub const VISIBLE_LIMIT: Duration = Duration::from_millis(1500);
/// How long a hidden or minimised page may take: such pages are deprioritised.
pub const HIDDEN_LIMIT: Duration = Duration::from_secs(10);

/// The probe's state for the current page.
#[derive(Debug)]
pub struct PageProbe {
    next_id: u64,
    /// The probe waiting for its answer: its id, when it was sent, and whether the
    /// window was visible then.
    outstanding: Option<(u64, Instant, bool)>,
    /// When the next probe may go out (an interval after the last answer).
    next_send: Option<Instant>,
    responding: bool,
}

/// What [`PageProbe::tick`] asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tick {
    /// Send a probe with this id.
    pub send: Option<u64>,
    /// The page stopped responding.
    pub hung: bool,
}

impl Default for PageProbe {
    fn default() -> Self {
        PageProbe {
            next_id: 1,
            outstanding: None,
            next_send: None,
            responding: true,
        }
    }
}

impl PageProbe {
    /// Whether the page answered its last probe in time.
    pub fn responding(&self) -> bool {
        self.responding
    }

    /// A new page load: forget the old page's probe.
    pub fn reset(&mut self) {
        self.outstanding = None;
        self.next_send = None;
        self.responding = true;
    }

    /// Called every [`CHECK_EVERY`] at `now`; `visible` is whether the window shows.
    pub fn tick(&mut self, now: Instant, visible: bool) -> Tick {
        match self.outstanding {
            Some((_, sent, was_visible)) => {
                let limit = if was_visible {
                    VISIBLE_LIMIT
                } else {
                    HIDDEN_LIMIT
                };
                let hung = self.responding && now.duration_since(sent) > limit;
                if hung {
                    self.responding = false;
                }
                Tick { send: None, hung }
            }
            None if self.next_send.is_some_and(|at| now < at) => Tick::default(),
            None => {
                let id = self.next_id;
                self.next_id += 1;
                self.outstanding = Some((id, now, visible));
                Tick {
                    send: Some(id),
                    hung: false,
                }
            }
        }
    }

    /// Probe `id` was answered; true if the page is responding again after a hang.
    pub fn answered(&mut self, id: u64, now: Instant) -> bool {
        if self.outstanding.is_none_or(|(waiting, _, _)| waiting != id) {
            return false;
        }
        self.outstanding = None;
        self.next_send = Some(now + INTERVAL);
        let recovered = !self.responding;
        self.responding = true;
        recovered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answering_page_is_probed_once_at_a_time_and_stays_responding() {
        let mut p = PageProbe::default();
        let mut now = Instant::now();
        for _ in 0..10 {
            let t = p.tick(now, true);
            let id = t.send.expect("a probe");
            assert!(!t.hung);
            now += CHECK_EVERY;
            let waiting = p.tick(now, true);
            assert_eq!(waiting, Tick::default(), "one outstanding at a time");
            assert!(!p.answered(id, now));
            assert!(p.responding());
            // The next one goes out an interval after the answer, not before.
            assert_eq!(p.tick(now + CHECK_EVERY, true), Tick::default());
            now += INTERVAL;
        }
    }

    #[test]
    fn a_stuck_page_is_reported_once_then_recovers_on_its_answer() {
        let mut p = PageProbe::default();
        let start = Instant::now();
        let id = p.tick(start, true).send.unwrap();
        let mut hung_at = None;
        let mut now = start;
        for _ in 0..40 {
            now += CHECK_EVERY;
            if p.tick(now, true).hung {
                assert!(hung_at.is_none(), "reported twice");
                hung_at = Some(now);
            }
        }
        let noticed = hung_at.expect("noticed").duration_since(start);
        assert!(noticed > VISIBLE_LIMIT && noticed <= VISIBLE_LIMIT + CHECK_EVERY);
        assert!(!p.responding());
        assert!(!p.answered(id + 1, now), "a stale id changes nothing");
        assert!(p.answered(id, now));
        assert!(p.responding());
    }

    #[test]
    fn a_hidden_window_gets_the_longer_grace() {
        let mut p = PageProbe::default();
        let start = Instant::now();
        p.tick(start, false);
        assert!(!p.tick(start + VISIBLE_LIMIT + CHECK_EVERY, true).hung);
        assert!(p.tick(start + HIDDEN_LIMIT + CHECK_EVERY, true).hung);
    }

    #[test]
    fn a_new_page_starts_afresh() {
        let mut p = PageProbe::default();
        let start = Instant::now();
        let old = p.tick(start, true).send.unwrap();
        assert!(p.tick(start + HIDDEN_LIMIT, true).hung);
        p.reset();
        assert!(p.responding());
        assert!(!p.answered(old, start));
        assert!(p.tick(start + HIDDEN_LIMIT, true).send.is_some());
    }
}
