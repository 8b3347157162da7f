//! The dead-letter queue: messages that could not be delivered, with why and to whom.
//!
//! Letters come from a durable consumer's handler that kept failing, from a message
//! refused because its subscriber was a slow consumer, and from a message whose
//! time-to-live ran out before its consumer reached it. They are handed to a thread of
//! their own (routing never waits for the disk) and stored, sealed like every durable
//! stream, in the journal's `dead-letters` stream. The queue is bounded (the oldest
//! letters go first) and its size is reported. Redriven and purged letters are
//! remembered in the stream's `removed` file; the records themselves leave with
//! retention.
//!
//! Without a journal (no keychain, say) letters cannot be kept: they are logged and
//! counted as lost.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
};

use serde::{Deserialize, Serialize};
use weft_journal::{
    KeySet, Retention, SegmentLog, StoreError, StreamConfig, StreamLog, StreamRead,
};
use weft_proto::{
    Identity, Topic,
    frame::{DeadLetter, Delivery, MessageId},
    headers::Headers,
};

use crate::lock;

/// Letters kept at most.
pub const DLQ_CAPACITY: u64 = 10_000;
/// Bytes kept at most.
const DLQ_BYTES: u64 = 64 << 20;
/// Letters waiting for the writer at most; more are counted as lost.
const DLQ_QUEUE: usize = 4096;

/// Why a message was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// A durable consumer's handler failed on every attempt.
    HandlerFailed,
    /// Its subscriber could not keep up and was disconnected.
    SlowConsumer,
    /// Its time-to-live ran out before it was delivered.
    Expired,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::HandlerFailed => "HandlerFailed",
            Reason::SlowConsumer => "SlowConsumer",
            Reason::Expired => "Expired",
        }
    }
}

/// A letter on its way to the writer.
struct Letter {
    reason: Reason,
    detail: String,
    target: String,
    message: Delivery,
}

/// The clear part of a stored letter.
#[derive(Serialize, Deserialize)]
struct LetterMeta<'a> {
    reason: &'a str,
    detail: &'a str,
    target: &'a str,
    topic: &'a str,
    app_id: &'a str,
    instance_id: &'a str,
    epoch: u32,
    id_seq: u64,
    sent_ms: u64,
    stream_seq: Option<u64>,
}

/// The queue, once the journal is there.
struct Store {
    reader: Arc<dyn StreamRead>,
    log: Arc<Mutex<SegmentLog>>,
    removed_file: PathBuf,
    removed: Mutex<Removed>,
}

/// Letters no longer in the queue: everything up to `floor`, and `ids`.
#[derive(Default)]
struct Removed {
    floor: u64,
    ids: BTreeSet<u64>,
}

#[derive(Default)]
pub(crate) struct DeadLetters {
    store: Mutex<Option<Arc<Store>>>,
    sender: Mutex<Option<mpsc::SyncSender<Letter>>>,
    lost: AtomicU64,
}

impl DeadLetters {
    /// Opens the queue in `dir`; letters are kept from now on.
    pub(crate) fn open(&self, dir: &Path, keys: Arc<KeySet>) -> Result<(), StoreError> {
        if lock(&self.store).is_some() {
            return Ok(());
        }
        let retention = Retention {
            max_age_ms: None,
            max_bytes: Some(DLQ_BYTES),
            max_messages: Some(DLQ_CAPACITY),
        };
        let mut config = StreamConfig::new("weft.dead-letters", retention);
        config.segment_bytes = 1 << 20;
        let log = SegmentLog::open(dir, config, keys)?;
        let removed_file = dir.join("removed");
        let removed = read_removed(&removed_file);
        let store = Arc::new(Store {
            reader: log.reader(),
            log: Arc::new(Mutex::new(log)),
            removed_file,
            removed: Mutex::new(removed),
        });
        let (tx, rx) = mpsc::sync_channel(DLQ_QUEUE);
        let writer = store.clone();
        std::thread::Builder::new()
            .name("dead letters".into())
            .spawn(move || write_letters(&writer, rx))
            .map_err(|e| StoreError::Io {
                context: "starting the dead-letter writer".into(),
                source: e,
            })?;
        *lock(&self.store) = Some(store);
        *lock(&self.sender) = Some(tx);
        Ok(())
    }

    /// Dead-letters `message` (never blocks).
    pub(crate) fn add(&self, reason: Reason, detail: String, target: String, message: Delivery) {
        // A slow consumer's overflow can refuse many messages at once, and its
        // disconnection is logged already: those letters are logged quietly.
        if reason == Reason::SlowConsumer {
            tracing::debug!(%target, topic = %message.topic, id = %message.id, "dead-lettered: {detail}");
        } else {
            tracing::warn!(
                reason = reason.as_str(),
                %target,
                topic = %message.topic,
                id = %message.id,
                "dead-lettered: {detail}"
            );
        }
        let letter = Letter {
            reason,
            detail,
            target,
            message,
        };
        let sent = lock(&self.sender)
            .as_ref()
            .is_some_and(|tx| tx.try_send(letter).is_ok());
        if !sent {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Letters in the queue (cheap: counted from sequence numbers, not read).
    pub(crate) fn depth(&self) -> u64 {
        let Ok(store) = self.store() else {
            return 0;
        };
        let last = lock(&store.log).last_seq();
        let removed = lock(&store.removed);
        let first = store.reader.first_seq().max(removed.floor + 1);
        let gone = removed.ids.range(first..=last).count() as u64;
        (last + 1).saturating_sub(first).saturating_sub(gone)
    }

    /// Letters that could not be kept (no journal, or the writer was behind).
    pub(crate) fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    fn store(&self) -> Result<Arc<Store>, String> {
        lock(&self.store)
            .clone()
            .ok_or_else(|| "there is no dead-letter queue: the journal is not open".to_owned())
    }

    /// The letters in the queue, oldest first, and the bytes it takes.
    pub(crate) fn list(&self) -> Result<(Vec<DeadLetter>, u64), String> {
        let store = match self.store() {
            Ok(store) => store,
            Err(_) => return Ok((vec![], 0)),
        };
        let letters = store.letters()?;
        Ok((letters, store.reader.disk_bytes()))
    }

    /// Takes the letters `id` selects (all when `None`) out of the queue and returns
    /// them, for the caller to deliver again.
    pub(crate) fn take(&self, id: Option<u64>) -> Result<Vec<DeadLetter>, String> {
        let store = self.store()?;
        let letters: Vec<DeadLetter> = store
            .letters()?
            .into_iter()
            .filter(|l| id.is_none_or(|id| l.id == id))
            .collect();
        if let Some(id) = id
            && letters.is_empty()
        {
            return Err(format!("no dead letter {id}"));
        }
        let mut removed = lock(&store.removed);
        removed.ids.extend(letters.iter().map(|l| l.id));
        write_removed(&store.removed_file, &removed)?;
        Ok(letters)
    }

    /// Empties the queue; returns how many letters it held.
    pub(crate) fn purge(&self) -> Result<u64, String> {
        let store = self.store()?;
        let count = store.letters()?.len() as u64;
        let last = lock(&store.log).last_seq();
        let mut removed = lock(&store.removed);
        removed.floor = last;
        removed.ids.clear();
        write_removed(&store.removed_file, &removed)?;
        Ok(count)
    }
}

impl Store {
    fn letters(&self) -> Result<Vec<DeadLetter>, String> {
        let last = lock(&self.log).last_seq();
        let (floor, ids) = {
            let removed = lock(&self.removed);
            (removed.floor, removed.ids.clone())
        };
        let mut records = vec![];
        let mut seq = self.reader.first_seq().max(floor + 1);
        while seq <= last {
            let before = records.len();
            seq = self
                .reader
                .read(seq, last, 1024, &mut |_| true, &mut records)
                .map_err(|e| e.to_string())?;
            if records.len() == before {
                break;
            }
        }
        Ok(records
            .iter()
            .filter(|r| !ids.contains(&r.seq))
            .filter_map(|r| {
                let meta: LetterMeta<'_> = postcard::from_bytes(&r.meta).ok()?;
                let (headers, payload): (Headers, &[u8]) =
                    postcard::take_from_bytes(&r.secret).ok()?;
                Some(DeadLetter {
                    id: r.seq,
                    reason: meta.reason.to_owned(),
                    detail: meta.detail.to_owned(),
                    target: meta.target.to_owned(),
                    ts_ms: r.ts_ms,
                    message: Delivery {
                        id: MessageId {
                            epoch: meta.epoch,
                            seq: meta.id_seq,
                        },
                        ts_ms: meta.sent_ms,
                        topic: Topic::new(meta.topic).ok()?,
                        sender: Arc::new(Identity {
                            app_id: meta.app_id.to_owned(),
                            instance_id: meta.instance_id.to_owned(),
                        }),
                        payload: bytes::Bytes::copy_from_slice(payload),
                        headers,
                        reply_to: None,
                        direct: false,
                        seq: meta.stream_seq,
                    },
                })
            })
            .collect())
    }
}

/// The writer thread: stores letters as they come, synced, until the queue closes.
fn write_letters(store: &Store, letters: mpsc::Receiver<Letter>) {
    while let Ok(first) = letters.recv() {
        let mut batch = vec![first];
        batch.extend(letters.try_iter().take(255));
        let mut log = lock(&store.log);
        let mut stored = true;
        for letter in &batch {
            let m = &letter.message;
            let meta = postcard::to_stdvec(&LetterMeta {
                reason: letter.reason.as_str(),
                detail: &letter.detail,
                target: &letter.target,
                topic: m.topic.as_str(),
                app_id: &m.sender.app_id,
                instance_id: &m.sender.instance_id,
                epoch: m.id.epoch,
                id_seq: m.id.seq,
                sent_ms: m.ts_ms,
                stream_seq: m.seq,
            })
            .expect("letter metadata serialises");
            let mut secret = postcard::to_stdvec(&m.headers).expect("headers serialise");
            secret.extend_from_slice(&m.payload);
            stored &= log.append(crate::now_ms(), &meta, &secret).is_ok();
        }
        let written = log
            .write()
            .and_then(|()| log.sync())
            .and_then(|()| log.retain(crate::now_ms()));
        if let Err(e) = written {
            tracing::error!("{} dead letters could not be stored: {e}", batch.len());
        } else if !stored {
            tracing::error!("some dead letters could not be stored");
        }
    }
}

fn read_removed(path: &Path) -> Removed {
    let mut removed = Removed::default();
    let Ok(text) = fs::read_to_string(path) else {
        return removed;
    };
    for line in text.lines() {
        if let Some(floor) = line.strip_prefix("floor ").and_then(|n| n.parse().ok()) {
            removed.floor = floor;
        } else if let Ok(id) = line.parse() {
            removed.ids.insert(id);
        }
    }
    removed
}

fn write_removed(path: &Path, removed: &Removed) -> Result<(), String> {
    let mut text = format!("floor {}\n", removed.floor);
    for id in removed.ids.iter().filter(|&&id| id > removed.floor) {
        text.push_str(&format!("{id}\n"));
    }
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
