//! Time that means the same in every process, and latency summaries.

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Nanoseconds on the machine's monotonic clock, comparable across processes.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid pointer it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A histogram of latencies in nanoseconds (1 ns to 60 s, 3 significant digits).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

/// `{"p50_us", "p99_us", "p999_us", "samples"}` of a histogram.
pub fn summary(h: &Histogram<u64>) -> Value {
    let us = |q: f64| (h.value_at_quantile(q) as f64 / 100.0).round() / 10.0;
    json!({
        "p50_us": us(0.5),
        "p99_us": us(0.99),
        "p999_us": us(0.999),
        "samples": h.len(),
    })
}
