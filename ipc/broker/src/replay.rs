//! Replaying stored messages to a new subscription, then handing it to live delivery.
//!
//! A subscription with a replay is registered as *replaying* each durable stream its
//! pattern may overlap: the stream's writer routes it nothing from that stream. A
//! thread reads the stream from the replay's start up to what the writer has routed
//! (`routed_seq`), queues each matching message, and reads again until nothing is
//! left; then, holding the routing lock, it checks that `routed_seq` has not moved and
//! marks the stream live for the subscription. Every message up to that point came
//! from the journal and every later one is routed live: no gap and no duplicate at
//! the seam.
//!
//! The replay keeps the connection's queue below [`REPLAY_QUEUE_BYTES`], waiting for
//! its writer, so that live messages to the same connection always find room.

use std::{collections::VecDeque, sync::Arc};

use bytes::BufMut;
use weft_journal::{StoredRecord, StreamRead};
use weft_proto::{
    Pattern, ServerFrame,
    frame::{IdentityFilter, Replay},
};
use weft_wire::FrameQueue;

use crate::{
    Shared,
    durable::{DurableStream, StoredEncoder, meta_fields},
    lock,
    sublist::Sublist,
};

/// The replay waits while its connection's queue holds more than this.
const REPLAY_QUEUE_BYTES: usize = 4 << 20;
/// Records read at a time.
const READ_BATCH: usize = 512;
/// Replays of at least this many records read ahead on a helper thread.
const READ_AHEAD_FROM: u64 = 4 * READ_BATCH as u64;
/// Batches the read-ahead may hold before the replay takes them.
const READ_AHEAD_BATCHES: usize = 2;

/// One subscription's replay.
pub(crate) struct ReplayJob {
    pub(crate) shared: Arc<Shared>,
    pub(crate) conn: u64,
    pub(crate) sub: u64,
    pub(crate) pattern: Pattern,
    pub(crate) from: Option<IdentityFilter>,
    pub(crate) replay: Replay,
    pub(crate) streams: Vec<Arc<DurableStream>>,
    pub(crate) queue: FrameQueue,
    pub(crate) runtime: tokio::runtime::Handle,
}

/// Whether some topic could match both patterns.
pub(crate) fn may_overlap(a: &Pattern, b: &Pattern) -> bool {
    use weft_proto::topic::Segment;
    fn go(p: &[Segment<'_>], q: &[Segment<'_>]) -> bool {
        match (p.first(), q.first()) {
            (None, None) => true,
            (Some(Segment::Many), _) => go(&p[1..], q) || (!q.is_empty() && go(p, &q[1..])),
            (_, Some(Segment::Many)) => go(p, &q[1..]) || (!p.is_empty() && go(&p[1..], q)),
            (None, _) | (_, None) => false,
            (Some(x), Some(y)) => {
                let fits = match (x, y) {
                    (Segment::Literal(a), Segment::Literal(b)) => a == b,
                    _ => true,
                };
                fits && go(&p[1..], &q[1..])
            }
        }
    }
    let a: Vec<_> = a.segments().collect();
    let b: Vec<_> = b.segments().collect();
    go(&a, &b)
}

impl ReplayJob {
    /// Replays every stream in turn, each then handed to live delivery.
    pub(crate) fn run(self) {
        let mut wanted = self.wanted();
        for stream in &self.streams {
            let outcome = self.replay_stream(stream, &mut wanted);
            if let Err(e) = &outcome {
                tracing::warn!(
                    conn = self.conn,
                    sub = self.sub,
                    stream = %stream.pattern,
                    "replay stopped: {e}; live messages follow"
                );
            }
            if outcome.is_err() {
                lock(&self.shared.routes).replayed(self.conn, self.sub, stream.index);
            }
        }
    }

    /// Whether a stored record is one this subscription wants.
    fn keeps(&self, wanted: &mut Sublist<()>, meta: &[u8]) -> bool {
        let Some((topic, app_id, instance_id)) = meta_fields(meta) else {
            return false;
        };
        !wanted.matches_str(topic).is_empty()
            && self.from.as_ref().is_none_or(|f| {
                f.app_id == app_id && f.instance_id.as_deref().is_none_or(|i| i == instance_id)
            })
    }

    /// Whether the subscription is still there to replay to.
    fn still_wanted(&self) -> bool {
        lock(&self.shared.routes).has_sub(self.conn, self.sub) && !self.queue.is_closed()
    }

    /// The topics this subscription wants, as a matcher.
    fn wanted(&self) -> Sublist<()> {
        let mut wanted = Sublist::new(1024);
        wanted.insert(&self.pattern, ());
        wanted
    }

    fn replay_stream(
        &self,
        stream: &DurableStream,
        wanted: &mut Sublist<()>,
    ) -> Result<(), String> {
        let reader = &stream.reader;
        let through = stream.routed_seq();
        let (mut next, min_ts) = match self.replay {
            Replay::AfterSeq(n) => (n.saturating_add(1), 0),
            Replay::Since(ts) => (reader.seq_for_time(ts), ts),
            Replay::Last(n) => (self.start_of_last(stream, n, through, wanted)?, 0),
        };
        let mut encoder = StoredEncoder::default();
        let mut body = Vec::new();
        let mut queue = |records: Vec<StoredRecord>| -> Result<bool, String> {
            self.queue_records(&records, min_ts, &mut encoder, &mut body)?;
            Ok(self.still_wanted())
        };
        loop {
            if !self.still_wanted() {
                return Ok(());
            }
            let through = stream.routed_seq();
            if next > through {
                let mut routes = lock(&self.shared.routes);
                if stream.routed_seq() == through {
                    routes.replayed(self.conn, self.sub, stream.index);
                    return Ok(());
                }
                continue;
            }
            next = if through - next < READ_AHEAD_FROM {
                let mut failed = None;
                let next = self.read_range(&**reader, next, through, wanted, &mut |records| {
                    queue(records).unwrap_or_else(|e| {
                        failed = Some(e);
                        false
                    })
                })?;
                failed.map_or(Ok(next), Err)?
            } else {
                self.read_ahead(&**reader, next, through, &mut queue)?
            };
        }
    }

    /// Reads the matching records `next..=through` on a helper thread, a batch at a
    /// time, while this thread queues the batch before (opening a record and encoding
    /// it take about as long as each other); returns where reading stopped.
    fn read_ahead(
        &self,
        reader: &dyn StreamRead,
        next: u64,
        through: u64,
        queue: &mut dyn FnMut(Vec<StoredRecord>) -> Result<bool, String>,
    ) -> Result<u64, String> {
        std::thread::scope(|scope| {
            let (batches, read) = std::sync::mpsc::sync_channel(READ_AHEAD_BATCHES);
            let reading = std::thread::Builder::new()
                .name("replay read-ahead".into())
                .spawn_scoped(scope, move || {
                    let mut wanted = self.wanted();
                    self.read_range(reader, next, through, &mut wanted, &mut |records| {
                        batches.send(records).is_ok()
                    })
                })
                .map_err(|e| format!("cannot start the replay's reader: {e}"))?;
            let mut failed = None;
            for records in read.iter() {
                match queue(records) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            // The reader stops at its next batch.
            drop(read);
            let next = reading
                .join()
                .map_err(|_| "the replay's reader panicked".to_owned())??;
            failed.map_or(Ok(next), Err)
        })
    }

    /// Reads the matching records `next..=through` a batch at a time, handing each
    /// batch to `each` until it says to stop; returns the sequence number to read from
    /// next.
    fn read_range(
        &self,
        reader: &dyn StreamRead,
        mut next: u64,
        through: u64,
        wanted: &mut Sublist<()>,
        each: &mut dyn FnMut(Vec<StoredRecord>) -> bool,
    ) -> Result<u64, String> {
        while next <= through {
            let mut records = Vec::with_capacity(READ_BATCH);
            next = reader
                .read(
                    next,
                    through,
                    READ_BATCH,
                    &mut |meta| self.keeps(wanted, meta),
                    &mut records,
                )
                .map_err(|e| e.to_string())?;
            if records.is_empty() {
                if next <= through {
                    // Everything left up to `through` was damaged or past retention.
                    next = through + 1;
                }
            } else if !each(records) {
                break;
            }
        }
        Ok(next)
    }

    /// Where a replay of the last `n` matching messages starts.
    fn start_of_last(
        &self,
        stream: &DurableStream,
        n: u64,
        through: u64,
        wanted: &mut Sublist<()>,
    ) -> Result<u64, String> {
        let first = stream.reader.first_seq();
        if n == 0 {
            return Ok(through + 1);
        }
        if self.from.is_none() && covers(&self.pattern, &stream.pattern) {
            return Ok(through.saturating_sub(n - 1).max(first));
        }
        // Not every message of the stream matches: find the last `n` that do.
        let mut last: VecDeque<u64> = VecDeque::new();
        let mut next = first;
        let mut records = Vec::with_capacity(READ_BATCH);
        while next <= through {
            records.clear();
            let from = next;
            next = stream
                .reader
                .read(
                    next,
                    through,
                    READ_BATCH,
                    &mut |meta| self.keeps(wanted, meta),
                    &mut records,
                )
                .map_err(|e| e.to_string())?;
            for r in &records {
                if last.len() as u64 == n {
                    last.pop_front();
                }
                last.push_back(r.seq);
            }
            if records.is_empty() && next == from {
                break;
            }
        }
        Ok(last.front().copied().unwrap_or(through + 1))
    }

    /// Queues a batch of records, waking the connection's writer once for all of
    /// them; `body` holds each delivery while it is copied.
    fn queue_records(
        &self,
        records: &[StoredRecord],
        min_ts: u64,
        encoder: &mut StoredEncoder,
        body: &mut Vec<u8>,
    ) -> Result<(), String> {
        let mut woken = false;
        for record in records.iter().filter(|r| r.ts_ms >= min_ts) {
            if !encoder.encode(record, body) {
                return Err(format!("stored message {} does not decode", record.seq));
            }
            if self.queue.queued_bytes() > REPLAY_QUEUE_BYTES {
                self.queue.wake();
                self.runtime
                    .block_on(self.queue.wait_below(REPLAY_QUEUE_BYTES / 2));
            }
            let (prefix, len) = ServerFrame::deliver_prefix(self.sub);
            let pushed = self.queue.push_frame_deferred(len + body.len(), |buf| {
                buf.put_slice(&prefix[..len]);
                buf.put_slice(body);
            });
            match pushed {
                Ok(first) => woken |= first,
                Err(_) => return Ok(()),
            }
        }
        if woken {
            self.queue.wake();
        }
        Ok(())
    }
}

/// Whether every topic `stream` matches is one `sub` matches too (conservatively:
/// false when unsure).
fn covers(sub: &Pattern, stream: &Pattern) -> bool {
    sub.as_str() == "#" || sub == stream
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::new(s).unwrap()
    }

    #[test]
    fn overlapping_patterns() {
        for (a, b) in [
            ("orders.#", "orders.new"),
            ("orders.*", "#"),
            ("*.new", "orders.*"),
            ("a.#.z", "a.b.#"),
            ("#", "#"),
            ("a.*.c", "a.#"),
        ] {
            assert!(may_overlap(&p(a), &p(b)), "{a} {b}");
            assert!(may_overlap(&p(b), &p(a)), "{b} {a}");
        }
        for (a, b) in [
            ("orders.#", "prices.#"),
            ("a.*", "a.b.c"),
            ("a.b", "a.c"),
            ("a.*.c", "a.*.d"),
        ] {
            assert!(!may_overlap(&p(a), &p(b)), "{a} {b}");
            assert!(!may_overlap(&p(b), &p(a)), "{b} {a}");
        }
    }
}
