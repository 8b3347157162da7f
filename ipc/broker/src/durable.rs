//! Durable topics: publishes to them are stored in the journal before anyone sees them.
//!
//! Each configured pattern is one stream. A connection gathers the durable publishes of
//! the burst of frames at hand and, at the burst's end, writes them to the stream's log
//! itself, under the stream's lock (a write to the page cache: no thread hop). Then:
//!
//! - `interval` and `none` — it routes and acknowledges them before letting go of the
//!   lock; the stream's ticker thread syncs at the interval and applies retention.
//! - `always` — it hands the burst to the stream's syncer thread, which syncs
//!   everything written since its last sync. Connections keep writing during a sync, so
//!   each sync covers every burst that arrived during the one before (group commit,
//!   with no added wait, pipelined). When more waits to be synced, an acknowledging
//!   thread routes and acknowledges the synced bursts, so the next sync starts as soon
//!   as one ends; when nothing waits, the syncer does it itself (one thread hop less).
//!
//! Then, holding the routing lock, each stored message is routed (with its sequence
//! number) to the live subscribers, how far the stream has routed is recorded
//! (`routed_seq`), and each publish is acknowledged. So a subscriber never sees a
//! message that is not stored, and a replaying subscription (`replay.rs`) can switch
//! from the journal to live delivery at an exact sequence number.
//!
//! Invariants:
//! - `routed_seq` changes only under the routing lock, together with the routing of
//!   every message up to it.
//! - A publish is acknowledged only after its message is stored under the stream's
//!   policy (`always`: synced; `interval`/`none`: written), or refused with the reason.
//! - A topic belongs to the first stream, in the order they were added, whose pattern
//!   matches it.
//! - Lock order: a stream's `inline` lock before the routing lock, never the other way
//!   round; messages are routed in sequence order because they are routed while the
//!   log that numbered them is still held, or handed to the syncer (and from it to the
//!   one acknowledging thread) while it is held.

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex, RwLock, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use bytes::{BufMut, Bytes};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use weft_journal::{
    KeySet, Retention, SegmentLog, StoreError, StoredRecord, StreamConfig, StreamLog, StreamRead,
    SyncPoint,
};
use weft_proto::{
    ErrorCode, Identity, Pattern, ServerFrame, Topic,
    fast_path::{DeliveryParts, encode_identity},
    frame::{Delivery, MessageId},
    headers::Headers,
};

use crate::{DeferredWakes, Shared, lock, routes::Select, stats::Tally, sublist::Sublist};

/// How a durable stream makes stored messages safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Sync every batch before acknowledging it (group commit).
    Always,
    /// Acknowledge once written; sync at most this often.
    Interval(Duration),
    /// Acknowledge once written; leave syncing to the operating system.
    None,
}

impl std::fmt::Display for Fsync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fsync::Always => f.write_str("always"),
            Fsync::Interval(d) => write!(f, "interval({})", d.as_millis()),
            Fsync::None => f.write_str("none"),
        }
    }
}

/// One durable stream's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurableConfig {
    /// The topics it stores.
    pub pattern: Pattern,
    /// When stored messages are synced.
    pub fsync: Fsync,
    /// What is kept.
    pub retention: Retention,
}

/// Where the journal lives and with which keys, or why there is none.
#[derive(Debug, Clone)]
pub enum JournalSetup {
    /// Streams live in folders under `dir`, sealed with `keys`.
    Ready {
        /// The journal folder.
        dir: PathBuf,
        /// The master keys.
        keys: Arc<KeySet>,
    },
    /// Durable topics are refused, for this reason (no keychain, say).
    Unavailable(String),
}

/// A durable stream as the shell reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurableInfo {
    /// Its pattern.
    pub pattern: String,
    /// Its sync policy.
    pub fsync: String,
    /// The first sequence number kept.
    pub first_seq: u64,
    /// The last sequence number stored and routed.
    pub last_seq: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Damaged places found.
    pub damaged: usize,
}

/// A durable stream could not be added.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    /// There is no journal.
    #[error("durable topics are unavailable: {0}")]
    Unavailable(String),
    /// Opening the stream failed.
    #[error("cannot open the durable stream {pattern}: {source}")]
    Open {
        /// The stream's pattern.
        pattern: String,
        /// Why.
        source: StoreError,
    },
}

/// A publish on its way to its stream.
pub(crate) struct Append {
    pub(crate) conn: u64,
    pub(crate) req: u64,
    pub(crate) ts_ms: u64,
    pub(crate) id: MessageId,
    pub(crate) topic: Topic,
    pub(crate) sender: Arc<Identity>,
    pub(crate) headers: Headers,
    pub(crate) payload: Bytes,
}

/// One stream as the broker sees it.
pub(crate) struct DurableStream {
    pub(crate) index: usize,
    pub(crate) pattern: Pattern,
    fsync: Fsync,
    pub(crate) reader: Arc<dyn StreamRead>,
    /// Every message up to this sequence number has been routed live.
    pub(crate) routed_seq: AtomicU64,
    /// The log, which a connection writes its burst to in place (no thread hop).
    inline: Mutex<Inline>,
    /// Dropped to stop the ticker.
    stop: Mutex<Option<mpsc::Sender<()>>>,
    /// The ticker (interval syncs, retention) and, for `always`, the syncer.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// The log of a stream and what follows a write.
struct Inline {
    log: Box<dyn StreamLog>,
    /// `None` once the stream is closed.
    after: Option<AfterWrite>,
    /// Written and not yet synced since then (for `interval`).
    dirty_since: Option<Instant>,
}

/// What happens to a written burst.
enum AfterWrite {
    /// Routed and acknowledged at once (`interval`, `none`).
    Route(Router),
    /// Handed to the syncer, which acknowledges it once synced (`always`).
    Sync(std::sync::mpsc::Sender<(StoredBatch, SyncPoint)>),
}

/// Every durable stream, and which topics go to which.
pub(crate) struct Durable {
    any: AtomicBool,
    setup: Mutex<Option<JournalSetup>>,
    streams: RwLock<Vec<Arc<DurableStream>>>,
    by_topic: Mutex<Sublist<usize>>,
}

/// How often retention is applied.
const RETENTION_EVERY: Duration = Duration::from_secs(1);

/// Topics whose stream is cached.
const STREAM_CACHE_TOPICS: usize = 4096;

impl Default for Durable {
    fn default() -> Self {
        Durable {
            any: AtomicBool::new(false),
            setup: Mutex::new(None),
            streams: RwLock::new(vec![]),
            by_topic: Mutex::new(Sublist::new(STREAM_CACHE_TOPICS)),
        }
    }
}

impl Durable {
    pub(crate) fn set_up(&self, setup: JournalSetup) {
        *lock(&self.setup) = Some(setup);
    }

    /// The stream `topic` is stored in, if any. Cheap when there is none.
    pub(crate) fn stream_for(&self, topic: &str) -> Option<Arc<DurableStream>> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let matched = lock(&self.by_topic).matches_str(topic);
        let first = *matched.iter().min()?;
        read(&self.streams).get(first).cloned()
    }

    pub(crate) fn streams(&self) -> Vec<Arc<DurableStream>> {
        read(&self.streams).clone()
    }

    pub(crate) fn add(
        &self,
        shared: &Arc<Shared>,
        config: DurableConfig,
    ) -> Result<(), DurableError> {
        let setup = lock(&self.setup).clone();
        let (dir, keys) = match setup {
            Some(JournalSetup::Ready { dir, keys }) => (dir, keys),
            Some(JournalSetup::Unavailable(why)) => return Err(DurableError::Unavailable(why)),
            None => {
                return Err(DurableError::Unavailable(
                    "the broker has no journal".into(),
                ));
            }
        };
        let mut streams = self.streams.write().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = streams.iter().find(|s| s.pattern == config.pattern) {
            if existing.fsync != config.fsync {
                tracing::warn!(
                    pattern = %config.pattern,
                    "the durable stream is already open with fsync {}; {} is ignored",
                    existing.fsync,
                    config.fsync
                );
            }
            return Ok(());
        }
        let name = config.pattern.as_str().to_owned();
        let stream_dir = weft_journal::stream_dir(&dir, &name);
        let log = SegmentLog::open(
            &stream_dir,
            StreamConfig::new(name.clone(), config.retention),
            keys,
        )
        .map_err(|source| DurableError::Open {
            pattern: name.clone(),
            source,
        })?;
        for damage in log.damage() {
            tracing::warn!(
                stream = %name,
                segment = %damage.segment.display(),
                offset = damage.offset,
                len = damage.len,
                "journal damage found at start-up ({}); the rest of the stream is served",
                damage.kind
            );
        }
        let (stop, stopped) = mpsc::channel(1);
        let reader = log.reader();
        let last_seq = log.last_seq();
        let mut threads = vec![];
        let stream = Arc::new_cyclic(|me: &Weak<DurableStream>| {
            let router = Router {
                shared: Arc::downgrade(shared),
                stream: me.clone(),
                tally: Tally::default(),
            };
            let after = match config.fsync {
                Fsync::Always => {
                    let (tx, syncer) = spawn_syncer(router, &config.pattern);
                    threads.extend(syncer);
                    AfterWrite::Sync(tx)
                }
                _ => AfterWrite::Route(router),
            };
            DurableStream {
                index: streams.len(),
                pattern: config.pattern.clone(),
                fsync: config.fsync,
                reader,
                routed_seq: AtomicU64::new(last_seq),
                inline: Mutex::new(Inline {
                    log: Box::new(log),
                    after: Some(after),
                    dirty_since: None,
                }),
                stop: Mutex::new(Some(stop)),
                threads: Mutex::new(vec![]),
            }
        });
        let ticking = stream.clone();
        let ticker = std::thread::Builder::new()
            .name(format!("journal {name}"))
            .spawn(move || tick(&ticking, stopped))
            .map_err(|e| DurableError::Open {
                pattern: name.clone(),
                source: StoreError::Io {
                    context: "starting its ticker thread".into(),
                    source: e,
                },
            })?;
        threads.insert(0, ticker);
        *lock(&stream.threads) = threads;
        lock(&self.by_topic).insert(&config.pattern, stream.index);
        streams.push(stream);
        self.any.store(true, Ordering::Release);
        tracing::info!(pattern = %name, fsync = %config.fsync, "durable stream open");
        Ok(())
    }

    /// Syncs every stream, acknowledges what was stored, and stops their threads;
    /// later publishes are refused.
    pub(crate) fn close(&self) {
        for stream in self.streams() {
            lock(&stream.stop).take();
            // The syncer acknowledges what it was handed, then stops.
            lock(&stream.inline).after.take();
            for thread in std::mem::take(&mut *lock(&stream.threads)) {
                let _ = thread.join();
            }
        }
    }

    pub(crate) fn info(&self) -> Vec<DurableInfo> {
        self.streams()
            .iter()
            .map(|s| DurableInfo {
                pattern: s.pattern.to_string(),
                fsync: s.fsync.to_string(),
                first_seq: s.reader.first_seq(),
                last_seq: s.routed_seq.load(Ordering::Acquire),
                bytes: s.reader.disk_bytes(),
                damaged: s.reader.damage().len(),
            })
            .collect()
    }
}

impl DurableStream {
    /// Every message up to this sequence number has been routed live.
    pub(crate) fn routed_seq(&self) -> u64 {
        self.routed_seq.load(Ordering::Acquire)
    }

    /// Stores one publish (a redriven dead letter) as [`DurableStream::append`] does.
    pub(crate) fn try_append(&self, append: Append) -> Result<(), String> {
        self.append(vec![append])
            .map_err(|_| format!("the durable stream {} is closed", self.pattern))
    }

    /// Stores one connection's burst of publishes: written in place, under the
    /// stream's lock, then routed and acknowledged at once, or (`always`) handed to the
    /// syncer. An error frame for each if the stream is closed.
    pub(crate) fn append(&self, burst: Vec<Append>) -> Result<(), Vec<ServerFrame>> {
        let mut inline = lock(&self.inline);
        let Inline {
            log,
            after,
            dirty_since,
        } = &mut *inline;
        let Some(after) = after else {
            let message = format!("the durable stream {} is closed", self.pattern);
            return Err(burst
                .iter()
                .map(|a| crate::session::error(a.req, ErrorCode::ShuttingDown, &message))
                .collect());
        };
        let stored = store_batch(&mut **log, &self.pattern, burst);
        match after {
            AfterWrite::Route(router) => {
                if stored.iter().any(|(_, r)| r.is_ok()) && matches!(self.fsync, Fsync::Interval(_))
                {
                    dirty_since.get_or_insert_with(Instant::now);
                }
                router.route_and_ack(&stored);
            }
            AfterWrite::Sync(syncer) => {
                if syncer.send((stored, log.sync_point())).is_err() {
                    tracing::error!(stream = %self.pattern, "the journal's syncer has stopped");
                }
            }
        }
        Ok(())
    }
}

/// What a stored record keeps in the clear (authenticated, not encrypted): enough to
/// route and filter it without decrypting.
#[derive(Serialize, Deserialize)]
struct StoredMeta<'a> {
    topic: &'a str,
    app_id: &'a str,
    instance_id: &'a str,
    epoch: u32,
    id_seq: u64,
}

/// The clear part of a stored message.
fn encode_meta(a: &Append) -> Vec<u8> {
    postcard::to_stdvec(&StoredMeta {
        topic: a.topic.as_str(),
        app_id: &a.sender.app_id,
        instance_id: &a.sender.instance_id,
        epoch: a.id.epoch,
        id_seq: a.id.seq,
    })
    .expect("metadata always serialises")
}

/// The secret part: the headers, then the payload.
fn encode_secret(a: &Append, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(a.payload.len() + 16);
    let headers = postcard::to_stdvec(&a.headers).expect("headers always serialise");
    out.extend_from_slice(&headers);
    out.put_slice(&a.payload);
}

/// The topic, app id and instance id a stored record's metadata names, if it is
/// readable.
pub(crate) fn meta_fields(meta: &[u8]) -> Option<(&str, &str, &str)> {
    postcard::from_bytes::<StoredMeta<'_>>(meta)
        .ok()
        .map(|m| (m.topic, m.app_id, m.instance_id))
}

/// A stored record as a delivery; `None` if its contents do not decode (which
/// authentication makes a bug, not damage).
pub(crate) fn stored_delivery(record: &StoredRecord) -> Option<Delivery> {
    let meta: StoredMeta<'_> = postcard::from_bytes(&record.meta).ok()?;
    let (headers, payload): (Headers, &[u8]) = postcard::take_from_bytes(&record.secret).ok()?;
    Some(Delivery {
        id: MessageId {
            epoch: meta.epoch,
            seq: meta.id_seq,
        },
        ts_ms: record.ts_ms,
        topic: Topic::new(meta.topic).ok()?,
        sender: Arc::new(Identity {
            app_id: meta.app_id.to_owned(),
            instance_id: meta.instance_id.to_owned(),
        }),
        payload: Bytes::copy_from_slice(payload),
        headers,
        reply_to: None,
        direct: false,
        seq: Some(record.seq),
    })
}

/// Encodes stored records as deliveries straight from their bytes, without building
/// a message, reusing the sender's encoding while it repeats (as it does in a
/// replay).
#[derive(Default)]
pub(crate) struct StoredEncoder {
    /// The last sender: app id, instance id, and its encoding.
    sender: Option<(String, String, Vec<u8>)>,
}

impl StoredEncoder {
    /// Replaces `out` with the delivery `record` holds, byte for byte what
    /// [`stored_delivery`]'s `encode` gives; `false` if its contents do not decode
    /// (which authentication makes a bug, not damage).
    pub(crate) fn encode(&mut self, record: &StoredRecord, out: &mut Vec<u8>) -> bool {
        let Ok(meta) = postcard::from_bytes::<StoredMeta<'_>>(&record.meta) else {
            return false;
        };
        // The secret part is the encoded headers, then the payload.
        let Ok((_, payload)) = postcard::take_from_bytes::<Headers>(&record.secret) else {
            return false;
        };
        let headers = &record.secret[..record.secret.len() - payload.len()];
        let sender = match &self.sender {
            Some((app_id, instance_id, encoded))
                if app_id == meta.app_id && instance_id == meta.instance_id =>
            {
                encoded
            }
            _ => {
                let identity = Identity {
                    app_id: meta.app_id.to_owned(),
                    instance_id: meta.instance_id.to_owned(),
                };
                let encoded = encode_identity(&identity);
                &self
                    .sender
                    .insert((identity.app_id, identity.instance_id, encoded))
                    .2
            }
        };
        DeliveryParts {
            id: MessageId {
                epoch: meta.epoch,
                seq: meta.id_seq,
            },
            ts_ms: record.ts_ms,
            topic: meta.topic,
            sender,
            payload,
            headers,
            reply_to: None,
            direct: false,
            seq: Some(record.seq),
        }
        .encode_into(out);
        true
    }
}

/// Publishes and how storing each went.
type StoredBatch = Vec<(Append, Result<u64, StoreRefusal>)>;

/// Routes stored messages live and acknowledges their publishers.
struct Router {
    shared: Weak<Shared>,
    stream: Weak<DurableStream>,
    /// What this router routed; only one thread at a time writes it (its own, or the
    /// connection holding the stream's lock).
    tally: Tally,
}

/// A stream's ticker: syncs what was written once the interval has passed
/// (`interval`), and applies retention, until the stream closes; then syncs.
fn tick(stream: &DurableStream, mut closed: mpsc::Receiver<()>) {
    let inline = &stream.inline;
    let every = match stream.fsync {
        Fsync::Interval(every) => every.min(RETENTION_EVERY),
        _ => RETENTION_EVERY,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(stream = %stream.pattern, "the journal's ticker cannot start: {e}");
            return;
        }
    };
    let mut next_retention = Instant::now();
    runtime.block_on(async {
        loop {
            // Nothing is ever sent here: the channel only says when the stream closes.
            tokio::select! {
                _ = closed.recv() => break,
                _ = tokio::time::sleep(every) => {}
            }
            let mut inline = lock(inline);
            if let (Fsync::Interval(interval), Some(since)) = (stream.fsync, inline.dirty_since)
                && since.elapsed() >= interval
            {
                sync_quietly(&mut *inline.log, &stream.pattern);
                inline.dirty_since = None;
            }
            if Instant::now() >= next_retention {
                retain(&mut *inline.log, &stream.pattern);
                next_retention = Instant::now() + RETENTION_EVERY;
            }
        }
    });
    sync_quietly(&mut *lock(inline).log, &stream.pattern);
}

fn sync_quietly(log: &mut dyn StreamLog, stream: &Pattern) {
    if let Err(e) = log.sync() {
        tracing::error!(%stream, "syncing the journal failed: {e}");
    }
}

fn retain(log: &mut dyn StreamLog, stream: &Pattern) {
    if let Err(e) = log.retain(crate::now_ms()) {
        tracing::warn!(%stream, "applying retention failed: {e}");
    }
}

/// Appends and writes a batch; how storing each publish went.
fn store_batch(log: &mut dyn StreamLog, stream: &Pattern, batch: Vec<Append>) -> StoredBatch {
    let mut secret = Vec::new();
    let mut stored: StoredBatch = Vec::with_capacity(batch.len());
    let mut appended = 0;
    for a in batch {
        let meta = encode_meta(&a);
        encode_secret(&a, &mut secret);
        let result = log.append(a.ts_ms, &meta, &secret).map_err(refusal);
        appended += usize::from(result.is_ok());
        stored.push((a, result));
    }
    if appended > 0
        && let Err(e) = log.write()
    {
        tracing::error!(%stream, "storing {appended} messages failed: {e}");
        fail_all(&mut stored, refusal(e));
    }
    stored
}

/// Marks every stored publish of `batch` as failed for `why`.
fn fail_all(batch: &mut StoredBatch, why: StoreRefusal) {
    for (_, result) in batch {
        if result.is_ok() {
            *result = Err(why.clone());
        }
    }
}

/// Starts the syncer of a stream with `fsync: always`: it syncs whatever connections
/// have written since its last sync — they go on writing meanwhile, so each sync covers
/// everything that arrived during the previous one. When more is already waiting to be
/// synced it hands the synced bursts to a thread that routes and acknowledges them, in
/// order, so that the next sync starts at once; when nothing waits (and that thread has
/// nothing left, so order holds) it acknowledges them itself, saving the hop.
fn spawn_syncer(
    router: Router,
    stream: &Pattern,
) -> (
    std::sync::mpsc::Sender<(StoredBatch, SyncPoint)>,
    Option<JoinHandle<()>>,
) {
    let (tx, rx) = std::sync::mpsc::channel::<(StoredBatch, SyncPoint)>();
    let (synced_tx, synced_rx) = std::sync::mpsc::channel::<StoredBatch>();
    let router = Arc::new(Mutex::new(router));
    // Batches handed to the acknowledging thread and not yet acknowledged.
    let handed = Arc::new(AtomicU64::new(0));
    let acks = {
        let (router, handed) = (router.clone(), handed.clone());
        std::thread::Builder::new()
            .name(format!("journal acks {stream}"))
            .spawn(move || {
                while let Ok(first) = synced_rx.recv() {
                    let mut all = first;
                    let mut batches = 1;
                    for more in synced_rx.try_iter() {
                        all.extend(more);
                        batches += 1;
                    }
                    lock(&router).route_and_ack(&all);
                    handed.fetch_sub(batches, Ordering::Release);
                }
            })
    };
    let spawned = std::thread::Builder::new()
        .name(format!("journal sync {stream}"))
        .spawn(move || {
            let mut waiting = None;
            loop {
                let first = match waiting.take() {
                    Some(first) => first,
                    None => match rx.recv() {
                        Ok(first) => first,
                        Err(_) => break,
                    },
                };
                let mut written = vec![first];
                written.extend(rx.try_iter());
                let point = written.last().map(|(_, p)| p.clone());
                let any_stored = written
                    .iter()
                    .any(|(batch, _)| batch.iter().any(|(_, r)| r.is_ok()));
                if any_stored
                    && let Some(point) = point
                    && let Err(e) = point.sync()
                {
                    tracing::error!("syncing the journal failed: {e}");
                    let why = refusal(e);
                    for (batch, _) in &mut written {
                        fail_all(batch, why.clone());
                    }
                }
                let all: StoredBatch = written.into_iter().flat_map(|(batch, _)| batch).collect();
                match rx.try_recv() {
                    Err(std::sync::mpsc::TryRecvError::Empty)
                        if handed.load(Ordering::Acquire) == 0 =>
                    {
                        lock(&router).route_and_ack(&all);
                        continue;
                    }
                    Ok(next) => waiting = Some(next),
                    Err(_) => {}
                }
                handed.fetch_add(1, Ordering::AcqRel);
                if synced_tx.send(all).is_err() {
                    break;
                }
            }
            drop(synced_tx);
            if let Ok(acks) = acks {
                let _ = acks.join();
            }
        });
    match spawned {
        Ok(handle) => (tx, Some(handle)),
        Err(e) => {
            tracing::error!("cannot start a journal syncer: {e}");
            (tx, None)
        }
    }
}

impl Router {
    /// Routes each stored message live (with its sequence number) and acknowledges
    /// each publish, or tells its publisher why it was not stored — all under the
    /// routing lock, which `routed_seq` moves with.
    fn route_and_ack(&mut self, stored: &[(Append, Result<u64, StoreRefusal>)]) {
        let (Some(shared), Some(stream)) = (self.shared.upgrade(), self.stream.upgrade()) else {
            return;
        };
        let wakes = DeferredWakes::default();
        let mut routes = lock(&shared.routes);
        for (a, result) in stored {
            let answer = match result {
                Ok(seq) => {
                    let delivery = Delivery {
                        id: a.id,
                        ts_ms: a.ts_ms,
                        topic: a.topic.clone(),
                        sender: a.sender.clone(),
                        payload: a.payload.clone(),
                        headers: a.headers.clone(),
                        reply_to: None,
                        direct: false,
                        seq: Some(*seq),
                    };
                    let r = shared.route_in(
                        &mut routes,
                        a.topic.as_str(),
                        &a.sender,
                        Select {
                            only: None,
                            stored_in: Some(stream.index),
                        },
                        &delivery.encode(),
                        &wakes,
                    );
                    self.tally.record(&shared.stats, r, None);
                    stream.routed_seq.store(*seq, Ordering::Release);
                    (a.req != 0).then_some(ServerFrame::Ok { req: a.req })
                }
                Err((code, message)) => Some(crate::session::error(a.req, *code, message)),
            };
            if let Some(answer) = answer {
                shared.queue_deferred(&routes, a.conn, &answer.encode(), &wakes);
            }
        }
        drop(routes);
        self.tally.flush(&shared.stats);
        wakes.wake_all();
        shared.consumers.notify_stored();
    }
}

/// Why a publish was not stored: the error code and message its publisher gets.
type StoreRefusal = (ErrorCode, String);

/// The error code and message a failed store gives its publisher.
fn refusal(e: StoreError) -> StoreRefusal {
    let code = match e {
        StoreError::DiskFull { .. } => ErrorCode::StorageFull,
        StoreError::Io { .. } => ErrorCode::StorageFailed,
    };
    (code, e.to_string())
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(seq: u64, sender: (&str, &str), headers: Headers, payload: &[u8]) -> StoredRecord {
        let append = Append {
            conn: 1,
            req: 1,
            ts_ms: 1_700_000_000_000 + seq,
            id: MessageId {
                epoch: 3,
                seq: 40 + seq,
            },
            topic: Topic::new("orders.new").unwrap(),
            sender: Arc::new(Identity {
                app_id: sender.0.into(),
                instance_id: sender.1.into(),
            }),
            headers,
            payload: Bytes::copy_from_slice(payload),
        };
        let mut secret = vec![];
        encode_secret(&append, &mut secret);
        StoredRecord {
            seq,
            ts_ms: append.ts_ms,
            meta: encode_meta(&append),
            secret,
        }
    }

    #[test]
    fn stored_records_encode_as_the_deliveries_they_hold() {
        let records = [
            stored(1, ("blotter", "b-1"), vec![], b"first"),
            // The same sender again: its encoding is reused.
            stored(
                2,
                ("blotter", "b-1"),
                vec![("weft-ttl-ms".into(), "500".into())],
                b"",
            ),
            stored(3, ("pricer", "p-7"), vec![], &[0, 255, 7]),
            stored(
                4,
                ("blotter", "b-2"),
                vec![("a".into(), "1".into()), ("b".into(), "2".into())],
                b"x",
            ),
        ];
        let mut encoder = StoredEncoder::default();
        let mut out = b"left over".to_vec();
        for record in &records {
            let delivery = stored_delivery(record).expect("it decodes");
            assert_eq!(delivery.seq, Some(record.seq));
            assert!(encoder.encode(record, &mut out));
            assert_eq!(out, delivery.encode(), "record {}", record.seq);
        }
        let mut broken = stored(5, ("blotter", "b-1"), vec![], b"y");
        broken.meta.truncate(3);
        assert!(!encoder.encode(&broken, &mut out));
        assert!(stored_delivery(&broken).is_none());
    }
}
