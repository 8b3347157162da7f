//! Named durable consumers: `subscribe(pattern, {durable: "name"})`.
//!
//! A consumer belongs to an app (its appId) and has a name; it outlives the app's
//! instances and the shell. It remembers, per durable stream, the last sequence
//! number it is done with (its floor), and delivers the stream's matching messages
//! after it, one at a time, to the subscription attached to it: the next comes only
//! once the page's handler has finished with this one (`Ack`). A handler that fails is
//! retried with exponential backoff — later messages wait, so order holds — and after
//! [`MAX_ATTEMPTS`] the message goes to the dead-letter queue with the last error. A
//! message whose time-to-live (header `weft-ttl-ms`) ran out before it was delivered
//! goes there too. A message whose acknowledgement never came (the app crashed, say)
//! is delivered again when the consumer is attached again: at least once, with the
//! same message id, so pages can drop duplicates.
//!
//! Floors are written to `consumers.json` in the journal folder at most every
//! [`PERSIST_EVERY`] and when a consumer is detached; after a crash a consumer may see
//! again what it had acknowledged just before, never miss anything.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use weft_proto::{
    ErrorCode, Pattern, ServerFrame,
    frame::{Delivery, Replay},
};
use weft_wire::FrameQueue;

use crate::{
    Shared,
    dead_letters::Reason,
    durable::{DurableStream, meta_fields, stored_delivery},
    lock,
    replay::may_overlap,
    sublist::Sublist,
};

/// Deliveries of one message before it is dead-lettered.
pub const MAX_ATTEMPTS: u32 = 5;
/// How long a handler may take before its message counts as failed.
const ACK_WAIT: Duration = Duration::from_secs(30);
/// Floors are written at most this often while messages are acknowledged.
const PERSIST_EVERY: Duration = Duration::from_millis(200);
/// The header that gives a message's time-to-live, in milliseconds.
pub const TTL_HEADER: &str = weft_proto::headers::TTL_MS;

/// The wait before attempt `attempt` (2 and up): 100 ms, doubling, at most 10 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << (attempt.saturating_sub(2)).min(7)))
        .min(Duration::from_secs(10))
}

/// One consumer's lasting state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Saved {
    app_id: String,
    name: String,
    pattern: String,
    /// Per stream (by pattern): every message up to this sequence number is done.
    floors: HashMap<String, u64>,
}

struct Consumer {
    saved: Mutex<Saved>,
    pattern: Pattern,
    /// The subscription it is attached to, if any.
    attached: Mutex<Option<(u64, u64)>>,
}

/// An acknowledgement on its way to the consumer's task.
struct AckMsg {
    seq: u64,
    outcome: Result<(), String>,
}

/// Every consumer, and which are attached where.
pub(crate) struct Consumers {
    file: Mutex<Option<PathBuf>>,
    all: Mutex<HashMap<(String, String), Arc<Consumer>>>,
    acks: Mutex<HashMap<(u64, u64), mpsc::UnboundedSender<AckMsg>>>,
    last_persist: Mutex<Option<Instant>>,
    /// Bumped whenever a durable stream has routed new messages.
    stored: watch::Sender<u64>,
}

impl Default for Consumers {
    fn default() -> Self {
        Consumers {
            file: Mutex::new(None),
            all: Mutex::new(HashMap::new()),
            acks: Mutex::new(HashMap::new()),
            last_persist: Mutex::new(None),
            stored: watch::Sender::new(0),
        }
    }
}

/// What `Consume` asks for.
pub(crate) struct Attach<'a> {
    pub(crate) app_id: &'a str,
    pub(crate) name: &'a str,
    pub(crate) pattern: Pattern,
    pub(crate) start: Option<Replay>,
    pub(crate) conn: u64,
    pub(crate) sub: u64,
    pub(crate) queue: FrameQueue,
}

/// A consumer could not be attached.
pub(crate) struct Refusal {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

impl Consumers {
    /// Loads the consumers kept in `file` (the journal's `consumers.json`).
    pub(crate) fn load(&self, file: PathBuf) {
        if let Ok(text) = std::fs::read_to_string(&file) {
            match serde_json::from_str::<Vec<Saved>>(&text) {
                Ok(saved) => {
                    let mut all = lock(&self.all);
                    for s in saved {
                        let Ok(pattern) = Pattern::new(s.pattern.clone()) else {
                            continue;
                        };
                        let key = (s.app_id.clone(), s.name.clone());
                        all.insert(
                            key,
                            Arc::new(Consumer {
                                saved: Mutex::new(s),
                                pattern,
                                attached: Mutex::new(None),
                            }),
                        );
                    }
                }
                Err(e) => tracing::error!(
                    "{} is damaged ({e}); durable consumers start from new messages",
                    file.display()
                ),
            }
        }
        *lock(&self.file) = Some(file);
    }

    /// Durable streams have routed new messages.
    pub(crate) fn notify_stored(&self) {
        self.stored.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Attaches a consumer (created if new) as `request` asks, and starts delivering.
    pub(crate) fn attach(&self, shared: &Arc<Shared>, request: Attach<'_>) -> Result<(), Refusal> {
        let Attach {
            app_id,
            name,
            pattern,
            start,
            conn,
            sub,
            queue,
        } = request;
        let busy = |message: String| Refusal {
            code: ErrorCode::ConsumerBusy,
            message,
        };
        if lock(&self.file).is_none() {
            return Err(Refusal {
                code: ErrorCode::StorageFailed,
                message: "durable consumers need the journal, and it is not open".into(),
            });
        }
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(busy(format!(
                "{name:?} is not a consumer name: 1 to 64 letters, digits, '.', '_' or '-'"
            )));
        }
        let streams = shared.durable.streams();
        let consumer = {
            let mut all = lock(&self.all);
            let key = (app_id.to_owned(), name.to_owned());
            let consumer = all.entry(key).or_insert_with(|| {
                let floors = streams
                    .iter()
                    .filter(|s| may_overlap(&pattern, &s.pattern))
                    .map(|s| (s.pattern.to_string(), start_floor(s, start)))
                    .collect();
                Arc::new(Consumer {
                    saved: Mutex::new(Saved {
                        app_id: app_id.to_owned(),
                        name: name.to_owned(),
                        pattern: pattern.to_string(),
                        floors,
                    }),
                    pattern: pattern.clone(),
                    attached: Mutex::new(None),
                })
            });
            if consumer.pattern != pattern {
                return Err(busy(format!(
                    "the consumer {name} of {app_id} follows {}, not {pattern}",
                    consumer.pattern
                )));
            }
            let mut attached = lock(&consumer.attached);
            if attached.is_some() {
                return Err(busy(format!(
                    "the consumer {name} of {app_id} is attached to another subscription"
                )));
            }
            *attached = Some((conn, sub));
            drop(attached);
            consumer.clone()
        };
        // Streams opened since the consumer was made start from their current end.
        {
            let mut saved = lock(&consumer.saved);
            for s in streams.iter().filter(|s| may_overlap(&pattern, &s.pattern)) {
                saved
                    .floors
                    .entry(s.pattern.to_string())
                    .or_insert_with(|| s.routed_seq());
            }
        }
        self.persist(true);
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.acks).insert((conn, sub), tx);
        let task = Delivering {
            shared: Arc::downgrade(shared),
            consumer,
            conn,
            sub,
            queue,
        };
        tokio::spawn(task.run(rx));
        Ok(())
    }

    /// Hands an acknowledgement to the consumer attached to `(conn, sub)`; false if
    /// none is.
    pub(crate) fn ack(&self, conn: u64, sub: u64, seq: u64, outcome: Result<(), String>) -> bool {
        lock(&self.acks)
            .get(&(conn, sub))
            .is_some_and(|tx| tx.send(AckMsg { seq, outcome }).is_ok())
    }

    /// Detaches the consumer attached to `(conn, sub)`; false if none is. Its task
    /// ends without taking its message in flight as done.
    pub(crate) fn detach(&self, conn: u64, sub: u64) -> bool {
        self.detach_where(|c, s| (c, s) == (conn, sub))
    }

    /// Detaches every consumer attached through `conn`.
    pub(crate) fn detach_conn(&self, conn: u64) {
        self.detach_where(|c, _| c == conn);
    }

    fn detach_where(&self, which: impl Fn(u64, u64) -> bool) -> bool {
        let mut acks = lock(&self.acks);
        let before = acks.len();
        acks.retain(|&(c, s), _| !which(c, s));
        let detached = acks.len() < before;
        drop(acks);
        for consumer in lock(&self.all).values() {
            let mut attached = lock(&consumer.attached);
            if attached.is_some_and(|(c, s)| which(c, s)) {
                *attached = None;
            }
        }
        detached
    }

    /// Writes every consumer's floors, if `now` or it is time to.
    pub(crate) fn persist(&self, now: bool) {
        let Some(file) = lock(&self.file).clone() else {
            return;
        };
        {
            let mut last = lock(&self.last_persist);
            if !now && last.is_some_and(|t| t.elapsed() < PERSIST_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        let saved: Vec<Saved> = lock(&self.all)
            .values()
            .map(|c| lock(&c.saved).clone())
            .collect();
        let text = serde_json::to_string_pretty(&saved).expect("consumer state serialises");
        let tmp = file.with_extension("json.tmp");
        let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &file));
        if let Err(e) = written {
            tracing::error!("cannot write {}: {e}", file.display());
        }
    }
}

/// Where a new consumer starts in `stream`: the floor below its first message.
fn start_floor(stream: &DurableStream, start: Option<Replay>) -> u64 {
    let end = stream.routed_seq();
    match start {
        None => end,
        Some(Replay::AfterSeq(n)) => n.min(end),
        Some(Replay::Last(n)) => end.saturating_sub(n),
        Some(Replay::Since(ts)) => first_since(stream, ts, end).saturating_sub(1),
    }
}

/// The first sequence number stored at or after `ts_ms` (`end + 1` if none is): the
/// index gives a place at or before it, and reading on finds it exactly.
fn first_since(stream: &DurableStream, ts_ms: u64, end: u64) -> u64 {
    let mut seq = stream.reader.seq_for_time(ts_ms);
    let mut out = Vec::new();
    while seq <= end {
        out.clear();
        let Ok(next) = stream.reader.read(seq, end, 256, &mut |_| true, &mut out) else {
            break;
        };
        if let Some(first) = out.iter().find(|r| r.ts_ms >= ts_ms) {
            return first.seq;
        }
        if next <= seq {
            break;
        }
        seq = next;
    }
    end + 1
}

/// One attached consumer delivering to its subscription.
struct Delivering {
    shared: Weak<Shared>,
    consumer: Arc<Consumer>,
    conn: u64,
    sub: u64,
    queue: FrameQueue,
}

/// What the consumer delivers next: a stored message of a stream, or how far the
/// stream has nothing for it.
enum Next {
    Message { stream: String, message: Delivery },
    Skip { stream: String, floor: u64 },
    Nothing,
}

impl Delivering {
    async fn run(self, mut acks: mpsc::UnboundedReceiver<AckMsg>) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let mut stored = shared.consumers.stored.subscribe();
        drop(shared);
        loop {
            stored.borrow_and_update();
            let next = match self.next().await {
                Some(next) => next,
                None => break,
            };
            match next {
                Next::Nothing => {
                    tokio::select! {
                        changed = stored.changed() => if changed.is_err() { break },
                        ack = acks.recv() => if ack.is_none() { break },
                    }
                }
                Next::Skip { stream, floor } => self.advance(&stream, floor),
                Next::Message { stream, message } => {
                    let seq = message.seq.unwrap_or_default();
                    if !self.deliver(&mut acks, message).await {
                        break;
                    }
                    self.advance(&stream, seq);
                }
            }
        }
        if let Some(shared) = self.shared.upgrade() {
            shared.consumers.detach(self.conn, self.sub);
            shared.consumers.persist(true);
        }
    }

    fn advance(&self, stream: &str, floor: u64) {
        lock(&self.consumer.saved)
            .floors
            .insert(stream.to_owned(), floor);
        if let Some(shared) = self.shared.upgrade() {
            shared.consumers.persist(false);
        }
    }

    /// The earliest stored message after the consumer's floors; `None` if the broker
    /// is gone.
    async fn next(&self) -> Option<Next> {
        let shared = self.shared.upgrade()?;
        let streams: Vec<Arc<DurableStream>> = shared
            .durable
            .streams()
            .into_iter()
            .filter(|s| may_overlap(&self.consumer.pattern, &s.pattern))
            .collect();
        let floors = lock(&self.consumer.saved).floors.clone();
        let pattern = self.consumer.pattern.clone();
        let read = tokio::task::spawn_blocking(move || {
            let mut wanted = Sublist::new(64);
            wanted.insert(&pattern, ());
            let mut best: Option<Next> = None;
            let mut best_ts = u64::MAX;
            for s in &streams {
                let name = s.pattern.to_string();
                let floor = floors.get(&name).copied().unwrap_or_else(|| s.routed_seq());
                let through = s.routed_seq();
                if floor >= through {
                    continue;
                }
                let mut out = vec![];
                let keep = &mut |meta: &[u8]| {
                    meta_fields(meta)
                        .is_some_and(|(topic, _, _)| !wanted.matches_str(topic).is_empty())
                };
                let next = match s.reader.read(floor + 1, through, 1, keep, &mut out) {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::warn!(stream = %name, "a durable consumer cannot read: {e}");
                        continue;
                    }
                };
                match out.pop().and_then(|r| stored_delivery(&r)) {
                    Some(message) if message.ts_ms < best_ts => {
                        best_ts = message.ts_ms;
                        best = Some(Next::Message {
                            stream: name,
                            message,
                        });
                    }
                    Some(_) => {}
                    None if best.is_none() => {
                        best = Some(Next::Skip {
                            stream: name,
                            floor: next.saturating_sub(1).min(through),
                        });
                    }
                    None => {}
                }
            }
            best.unwrap_or(Next::Nothing)
        });
        read.await.ok()
    }

    /// Delivers `message` until its handler succeeds or it is dead-lettered; false if
    /// the consumer was detached meanwhile (the message then comes again later).
    async fn deliver(&self, acks: &mut mpsc::UnboundedReceiver<AckMsg>, message: Delivery) -> bool {
        let target = {
            let saved = lock(&self.consumer.saved);
            format!("{} consumer {}", saved.app_id, saved.name)
        };
        if let Some(expiry) = expiry(&message)
            && crate::now_ms() > expiry
        {
            self.dead_letter(
                Reason::Expired,
                "its time-to-live ran out before delivery".into(),
                target,
                message,
            );
            return true;
        }
        let seq = message.seq.unwrap_or_default();
        let frame = ServerFrame::Deliver {
            sub: self.sub,
            message: message.clone(),
        }
        .encode();
        let mut attempt = 1;
        loop {
            if self.queue.push(&frame).is_err() {
                return false;
            }
            let outcome = tokio::time::timeout(ACK_WAIT, async {
                loop {
                    match acks.recv().await {
                        None => return None,
                        Some(ack) if ack.seq == seq => return Some(ack.outcome),
                        Some(_) => {}
                    }
                }
            })
            .await;
            let error = match outcome {
                Ok(None) => return false,
                Ok(Some(Ok(()))) => return true,
                Ok(Some(Err(e))) => e,
                Err(_) => format!("no acknowledgement within {} s", ACK_WAIT.as_secs()),
            };
            if attempt >= MAX_ATTEMPTS {
                let detail = format!("the handler failed {attempt} times; last: {error}");
                self.dead_letter(Reason::HandlerFailed, detail, target, message);
                return true;
            }
            attempt += 1;
            tracing::info!(seq, attempt, %target, "a durable consumer's handler failed ({error}); retrying");
            tokio::time::sleep(backoff(attempt)).await;
        }
    }

    fn dead_letter(&self, reason: Reason, detail: String, target: String, message: Delivery) {
        if let Some(shared) = self.shared.upgrade() {
            shared.dead_letters.add(reason, detail, target, message);
        }
    }
}

/// When a message expires, if it has a time-to-live.
fn expiry(message: &Delivery) -> Option<u64> {
    let ttl: u64 = message
        .headers
        .iter()
        .find(|(k, _)| k == TTL_HEADER)?
        .1
        .parse()
        .ok()?;
    Some(message.ts_ms.saturating_add(ttl))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_100_ms_to_at_most_10_s() {
        let waits: Vec<u64> = (2..=10).map(|a| backoff(a).as_millis() as u64).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000]);
    }
}
