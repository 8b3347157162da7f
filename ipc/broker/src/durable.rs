//! Durable topics: publishes to them are stored in the journal before anyone sees them.
//!
//! Each configured pattern is one stream. A connection gathers the durable publishes of
//! the burst of frames at hand and stores them at the burst's end:
//!
//! - `fsync: always` — it hands the burst to the stream's writer thread and goes on
//!   reading. The writer takes every burst waiting (group commit: the batch is whatever
//!   arrived meanwhile, with no added wait), appends and writes it, and hands it to a
//!   syncer thread, which syncs everything written since its last sync; the writer keeps
//!   writing during a sync, so each sync covers what arrived during the one before
//!   (pipelined group commit). A third thread acknowledges synced batches, so the next
//!   sync starts as soon as one ends.
//! - `interval` and `none` — it writes the burst to the log itself, under the stream's
//!   lock (a write to the page cache: no thread hop in the acknowledgement's path); a
//!   ticker thread syncs at the interval and applies retention.
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
//!   log that numbered them is still held (inline) or by the one acknowledging thread.

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

/// A publish on its way to a stream's writer.
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
    appends: Mutex<Option<mpsc::Sender<Vec<Append>>>>,
    pub(crate) reader: Arc<dyn StreamRead>,
    /// Every message up to this sequence number has been routed live.
    pub(crate) routed_seq: AtomicU64,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// For streams that do not sync every batch: the log itself, which a connection
    /// writes its burst to in place (no thread hop), routing it before letting go.
    inline: Option<Mutex<Inline>>,
}

/// A stream written in place by the connections publishing to it.
struct Inline {
    log: Box<dyn StreamLog>,
    router: Router,
    /// Written and not yet synced since then (for `interval`).
    dirty_since: Option<Instant>,
}

/// Every durable stream, and which topics go to which.
pub(crate) struct Durable {
    any: AtomicBool,
    setup: Mutex<Option<JournalSetup>>,
    streams: RwLock<Vec<Arc<DurableStream>>>,
    by_topic: Mutex<Sublist<usize>>,
}

/// Bursts of publishes waiting for a stream's writer, at most.
const APPEND_QUEUE: usize = 1024;
/// Bursts stored in one batch, at most.
const MAX_BURSTS: usize = 256;
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
        let (tx, rx) = mpsc::channel(APPEND_QUEUE);
        let reader = log.reader();
        let last_seq = log.last_seq();
        let log: Box<dyn StreamLog> = Box::new(log);
        let (inline, writer_log) = match config.fsync {
            Fsync::Always => (None, Some(log)),
            _ => (Some(log), None),
        };
        let stream = Arc::new_cyclic(|me: &Weak<DurableStream>| DurableStream {
            index: streams.len(),
            pattern: config.pattern.clone(),
            fsync: config.fsync,
            appends: Mutex::new(Some(tx)),
            reader,
            routed_seq: AtomicU64::new(last_seq),
            writer: Mutex::new(None),
            inline: inline.map(|log| {
                Mutex::new(Inline {
                    log,
                    router: Router {
                        shared: Arc::downgrade(shared),
                        stream: me.clone(),
                        tally: Tally::default(),
                    },
                    dirty_since: None,
                })
            }),
        });
        let thread = match writer_log {
            Some(log) => {
                let writer = Writer::new(shared, stream.clone(), log);
                std::thread::Builder::new()
                    .name(format!("journal {name}"))
                    .spawn(move || writer.run(rx))
            }
            None => {
                let ticking = stream.clone();
                std::thread::Builder::new()
                    .name(format!("journal {name}"))
                    .spawn(move || tick(&ticking, rx))
            }
        };
        let handle = thread.map_err(|e| DurableError::Open {
            pattern: name.clone(),
            source: StoreError::Io {
                context: "starting its writer thread".into(),
                source: e,
            },
        })?;
        *lock(&stream.writer) = Some(handle);
        lock(&self.by_topic).insert(&config.pattern, stream.index);
        streams.push(stream);
        self.any.store(true, Ordering::Release);
        tracing::info!(pattern = %name, fsync = %config.fsync, "durable stream open");
        Ok(())
    }

    /// Stores what is queued, syncs, and stops every writer.
    pub(crate) fn close(&self) {
        for stream in self.streams() {
            lock(&stream.appends).take();
            if let Some(writer) = lock(&stream.writer).take() {
                let _ = writer.join();
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

    /// Hands one publish to the writer without waiting; an error if its queue is full
    /// or the stream has stopped.
    pub(crate) fn try_append(&self, append: Append) -> Result<(), String> {
        if let Some(inline) = &self.inline {
            let mut inline = lock(inline);
            let Inline { log, router, .. } = &mut *inline;
            let stored = store_batch(&mut **log, &self.pattern, vec![append]);
            router.route_and_ack(&stored);
            return Ok(());
        }
        let tx = lock(&self.appends).clone();
        match tx.map(|tx| tx.try_send(vec![append])) {
            Some(Ok(())) => Ok(()),
            Some(Err(mpsc::error::TrySendError::Full(_))) => Err(format!(
                "the durable stream {} is busy; try again",
                self.pattern
            )),
            _ => Err(format!("the durable stream {} is closing", self.pattern)),
        }
    }

    /// Hands one connection's burst of publishes to the writer (one wake-up for all
    /// of them); waits while its queue is full. An error frame for each if the stream
    /// has stopped.
    pub(crate) async fn append(&self, burst: Vec<Append>) -> Result<(), Vec<ServerFrame>> {
        if let Some(inline) = &self.inline {
            let mut inline = lock(inline);
            let Inline {
                log,
                router,
                dirty_since,
            } = &mut *inline;
            let stored = store_batch(&mut **log, &self.pattern, burst);
            if stored.iter().any(|(_, r)| r.is_ok()) && matches!(self.fsync, Fsync::Interval(_)) {
                dirty_since.get_or_insert_with(Instant::now);
            }
            router.route_and_ack(&stored);
            return Ok(());
        }
        let reqs: Vec<u64> = burst.iter().map(|a| a.req).collect();
        let tx = lock(&self.appends).clone();
        let sent = match tx {
            Some(tx) => tx.send(burst).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        let message = format!("the durable stream {} is closing", self.pattern);
        Err(reqs
            .into_iter()
            .map(|req| crate::session::error(req, ErrorCode::ShuttingDown, &message))
            .collect())
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
    StoredDecoder::default().delivery(record)
}

/// Turns stored records into deliveries, sharing the topic and sender of the previous
/// record when they repeat (as they do in a replay), instead of checking and copying
/// them again.
#[derive(Default)]
pub(crate) struct StoredDecoder {
    topic: Option<Topic>,
    sender: Option<Arc<Identity>>,
}

impl StoredDecoder {
    /// As [`stored_delivery`].
    pub(crate) fn delivery(&mut self, record: &StoredRecord) -> Option<Delivery> {
        let meta: StoredMeta<'_> = postcard::from_bytes(&record.meta).ok()?;
        let (headers, payload): (Headers, &[u8]) =
            postcard::take_from_bytes(&record.secret).ok()?;
        let topic = match &self.topic {
            Some(last) if last.as_str() == meta.topic => last.clone(),
            _ => self.topic.insert(Topic::new(meta.topic).ok()?).clone(),
        };
        let sender = match &self.sender {
            Some(last) if last.app_id == meta.app_id && last.instance_id == meta.instance_id => {
                last.clone()
            }
            _ => self
                .sender
                .insert(Arc::new(Identity {
                    app_id: meta.app_id.to_owned(),
                    instance_id: meta.instance_id.to_owned(),
                }))
                .clone(),
        };
        Some(Delivery {
            id: MessageId {
                epoch: meta.epoch,
                seq: meta.id_seq,
            },
            ts_ms: record.ts_ms,
            topic,
            sender,
            payload: Bytes::copy_from_slice(payload),
            headers,
            reply_to: None,
            direct: false,
            seq: Some(record.seq),
        })
    }
}

/// The writer thread of a stream with `fsync: always`: batches the bursts of every
/// connection, writes them, and hands them to the syncer.
struct Writer {
    stream: Arc<DurableStream>,
    log: Box<dyn StreamLog>,
    syncer: std::sync::mpsc::Sender<(StoredBatch, SyncPoint)>,
    syncer_thread: Option<JoinHandle<()>>,
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

impl Writer {
    fn new(shared: &Arc<Shared>, stream: Arc<DurableStream>, log: Box<dyn StreamLog>) -> Writer {
        let router = Router {
            shared: Arc::downgrade(shared),
            stream: Arc::downgrade(&stream),
            tally: Tally::default(),
        };
        let (syncer, syncer_thread) = spawn_syncer(router, &stream.pattern);
        Writer {
            stream,
            log,
            syncer,
            syncer_thread,
        }
    }

    fn run(mut self, mut appends: mpsc::Receiver<Vec<Append>>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(stream = %self.stream.pattern, "the journal writer cannot start: {e}");
                return;
            }
        };
        runtime.block_on(async {
            let mut bursts = Vec::new();
            let mut next_retention = Instant::now();
            loop {
                tokio::select! {
                    n = appends.recv_many(&mut bursts, MAX_BURSTS) => {
                        if n == 0 {
                            break;
                        }
                        let batch: Vec<Append> = bursts.drain(..).flatten().collect();
                        let stored = store_batch(&mut *self.log, &self.stream.pattern, batch);
                        if self.syncer.send((stored, self.log.sync_point())).is_err() {
                            tracing::error!(stream = %self.stream.pattern, "the journal's syncer has stopped");
                        }
                    }
                    _ = tokio::time::sleep_until(next_retention.into()) => {}
                }
                if Instant::now() >= next_retention {
                    retain(&mut *self.log, &self.stream.pattern);
                    next_retention = Instant::now() + RETENTION_EVERY;
                }
            }
        });
        sync_quietly(&mut *self.log, &self.stream.pattern);
        // The syncer acknowledges what it was handed, then stops.
        drop(self.syncer);
        if let Some(syncer) = self.syncer_thread {
            let _ = syncer.join();
        }
    }
}

/// The thread of a stream written in place (`interval`, `none`): syncs what was
/// written once the interval has passed, and applies retention, until the stream
/// closes.
fn tick(stream: &DurableStream, mut closed: mpsc::Receiver<Vec<Append>>) {
    let Some(inline) = &stream.inline else {
        return;
    };
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

/// Starts the syncer of a stream with `fsync: always`: it syncs whatever the writer
/// has written since its last sync — the writer goes on writing meanwhile, so each
/// sync covers everything that arrived during the previous one — and hands the synced
/// batches to a thread that routes and acknowledges them, in order, so that the next
/// sync starts as soon as one ends.
fn spawn_syncer(
    mut router: Router,
    stream: &Pattern,
) -> (
    std::sync::mpsc::Sender<(StoredBatch, SyncPoint)>,
    Option<JoinHandle<()>>,
) {
    let (tx, rx) = std::sync::mpsc::channel::<(StoredBatch, SyncPoint)>();
    let (synced_tx, synced_rx) = std::sync::mpsc::channel::<StoredBatch>();
    let acks = std::thread::Builder::new()
        .name(format!("journal acks {stream}"))
        .spawn(move || {
            while let Ok(first) = synced_rx.recv() {
                let mut all = first;
                for more in synced_rx.try_iter() {
                    all.extend(more);
                }
                router.route_and_ack(&all);
            }
        });
    let spawned = std::thread::Builder::new()
        .name(format!("journal sync {stream}"))
        .spawn(move || {
            while let Ok(first) = rx.recv() {
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
