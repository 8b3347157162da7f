//! Counters of what the broker routed, read by the shell for its metrics endpoint.
//!
//! The hot path must not pay for them: each connection tallies in counters only its own
//! task writes (a plain load and store, no locked read-modify-write) and adds them to
//! the broker-wide totals once per burst of frames. Routing latency is timed for one
//! routed message in [`SAMPLE_EVERY`] per connection, so the clock is read rarely.

use std::{
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::Duration,
};

use weft_proto::Identity;

/// One routed message in this many (per connection) has its routing time measured.
pub const SAMPLE_EVERY: u64 = 64;

/// Upper bounds of the routing latency histogram's buckets, in seconds; a last,
/// unbounded bucket follows them.
pub const LATENCY_BUCKETS: [f64; 12] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2,
];

/// The broker-wide totals.
#[derive(Debug, Default)]
pub(crate) struct BrokerStats {
    published: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    unrouted: AtomicU64,
    slow_consumers: AtomicU64,
    latency: LatencyHistogram,
}

/// A fixed-bucket histogram of routing times.
#[derive(Debug, Default)]
struct LatencyHistogram {
    /// One count per bucket of [`LATENCY_BUCKETS`], then the unbounded bucket.
    counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

/// What one connection routed since its last flush into [`BrokerStats`].
///
/// Invariant: only the connection's own task writes these counters, so each update is a
/// plain load and store rather than a locked read-modify-write.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    published: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    unrouted: AtomicU64,
    /// Messages routed over the connection's life, to pick the ones to time.
    routed: AtomicU64,
}

/// How one message fared when routed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Routed {
    /// Copies queued for subscribers.
    pub(crate) delivered: u64,
    /// Copies refused because a subscriber's queue was full or closing.
    pub(crate) dropped: u64,
}

/// The broker's counters at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsSnapshot {
    /// Messages accepted for routing (publishes, direct sends, requests, dispatches and
    /// responses).
    pub published: u64,
    /// Copies of messages queued for their recipients.
    pub delivered: u64,
    /// Copies of messages not queued because the recipient's queue was full or closing.
    pub dropped: u64,
    /// Published messages no subscription matched.
    pub unrouted: u64,
    /// Connections cut off because their outbound queue was full.
    pub slow_consumer_disconnects: u64,
    /// Sampled routing times: per bucket of [`LATENCY_BUCKETS`] (then the unbounded
    /// one), how many fell in it (not cumulative).
    pub latency_counts: Vec<u64>,
    /// The sum of the sampled routing times.
    pub latency_sum: Duration,
    /// Every authenticated connection, in no particular order.
    pub connections: Vec<ConnectionStats>,
}

/// One connection's share of the broker's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Who is connected.
    pub identity: Identity,
    /// Bytes waiting in its outbound queue.
    pub queued_bytes: usize,
}

impl Routed {
    /// A message for one recipient, queued or not.
    pub(crate) fn one(queued: bool) -> Self {
        Self {
            delivered: u64::from(queued),
            dropped: u64::from(!queued),
        }
    }
}

impl BrokerStats {
    pub(crate) fn slow_consumer(&self) {
        self.slow_consumers.fetch_add(1, Relaxed);
    }

    /// The totals so far, without the connections (see `BrokerHandle::stats`).
    pub(crate) fn snapshot(&self, connections: Vec<ConnectionStats>) -> StatsSnapshot {
        StatsSnapshot {
            published: self.published.load(Relaxed),
            delivered: self.delivered.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            unrouted: self.unrouted.load(Relaxed),
            slow_consumer_disconnects: self.slow_consumers.load(Relaxed),
            latency_counts: self
                .latency
                .counts
                .iter()
                .map(|c| c.load(Relaxed))
                .collect(),
            latency_sum: Duration::from_nanos(self.latency.sum_ns.load(Relaxed)),
            connections,
        }
    }
}

impl LatencyHistogram {
    fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&bound| secs <= bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.counts[bucket].fetch_add(1, Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Relaxed);
    }
}

/// Adds `n` to a counter only the calling task writes.
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

impl Tally {
    /// Whether the next message routed should be timed.
    pub(crate) fn time_next(&self) -> bool {
        self.routed.load(Relaxed).is_multiple_of(SAMPLE_EVERY)
    }

    /// Records one message routed; `took` is its routing time if it was timed.
    pub(crate) fn record(&self, stats: &BrokerStats, routed: Routed, took: Option<Duration>) {
        bump(&self.routed, 1);
        bump(&self.published, 1);
        bump(&self.delivered, routed.delivered);
        bump(&self.dropped, routed.dropped);
        if routed == Routed::default() {
            bump(&self.unrouted, 1);
        }
        if let Some(took) = took {
            stats.latency.observe(took);
        }
    }

    /// Adds what was tallied to the broker's totals and starts again from zero.
    pub(crate) fn flush(&self, stats: &BrokerStats) {
        for (mine, total) in [
            (&self.published, &stats.published),
            (&self.delivered, &stats.delivered),
            (&self.dropped, &stats.dropped),
            (&self.unrouted, &stats.unrouted),
        ] {
            let n = mine.load(Relaxed);
            if n != 0 {
                mine.store(0, Relaxed);
                total.fetch_add(n, Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_reach_the_totals_only_when_flushed() {
        let stats = BrokerStats::default();
        let tally = Tally::default();
        let two = Routed {
            delivered: 2,
            dropped: 1,
        };
        tally.record(&stats, two, None);
        tally.record(&stats, Routed::default(), None);
        assert_eq!(stats.snapshot(vec![]).published, 0);
        tally.flush(&stats);
        let s = stats.snapshot(vec![]);
        assert_eq!(
            (s.published, s.delivered, s.dropped, s.unrouted),
            (2, 2, 1, 1)
        );
        tally.flush(&stats);
        assert_eq!(
            stats.snapshot(vec![]).published,
            2,
            "a flush resets the tally"
        );
    }

    #[test]
    fn one_message_in_sample_every_is_timed_starting_with_the_first() {
        let stats = BrokerStats::default();
        let tally = Tally::default();
        let timed = (0..SAMPLE_EVERY * 3)
            .filter(|_| {
                let time = tally.time_next();
                tally.record(&stats, Routed::default(), None);
                time
            })
            .count();
        assert_eq!(timed, 3);
        let tally = Tally::default();
        assert!(tally.time_next(), "the first message is timed");
    }

    #[test]
    fn latencies_fall_in_the_bucket_bounding_them() {
        let stats = BrokerStats::default();
        let tally = Tally::default();
        for micros in [0, 1, 2, 30, 20_000] {
            tally.record(
                &stats,
                Routed::default(),
                Some(Duration::from_micros(micros)),
            );
        }
        let s = stats.snapshot(vec![]);
        // ≤1 µs: 0 and 1; ≤2.5 µs: 2; ≤50 µs: 30; unbounded: 20 ms.
        let mut expected = vec![0; LATENCY_BUCKETS.len() + 1];
        expected[0] = 2;
        expected[1] = 1;
        expected[5] = 1;
        expected[LATENCY_BUCKETS.len()] = 1;
        assert_eq!(s.latency_counts, expected);
        assert_eq!(s.latency_sum, Duration::from_micros(20_033));
    }
}
