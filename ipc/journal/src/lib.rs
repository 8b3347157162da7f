//! Weft's message journal: durable topics kept on disk.
//!
//! Each durable stream is a segmented append-only log in a directory of its own, in the
//! style of Kafka's log and NATS JetStream's file store: checksummed records in
//! sequence order (`record.rs`), fixed-size segments with a sparse index of sequence
//! numbers and times (`segment.rs`), retention by deleting whole segments, and the
//! secret part of every record sealed with AES-256-GCM under a key per segment
//! (`seal.rs`, from the master keys of `keys.rs`). `check.rs` verifies a stream
//! without changing it.
//!
//! The journal stores opaque records — a sequence number, a time, clear metadata and a
//! secret part — and knows nothing of the bus: the broker decides what goes where.
//! Where master keys are kept is the shell's business.
//!
//! The engine sits behind two small traits, [`StreamLog`] (the single writer) and
//! [`StreamRead`] (any number of readers); `ARCHITECTURE.md` records why it is this
//! log rather than an LSM tree.

mod check;
mod keys;
mod record;
mod seal;
mod segment;
mod stream;

use std::{
    io,
    path::{Path, PathBuf},
    sync::Arc,
};

pub use check::{CheckReport, check_stream};
pub use keys::{KeySet, KeySetError};
pub use seal::MasterKey;
pub use stream::{SegmentLog, SegmentReader, StreamConfig};

/// The single writer of a stream.
pub trait StreamLog: Send {
    /// Seals and queues a record stored at `ts_ms` (raised to the previous record's time
    /// if earlier, so times never go back within a stream); returns its sequence
    /// number. Nothing reaches the disk before [`StreamLog::write`].
    fn append(&mut self, ts_ms: u64, meta: &[u8], secret: &[u8]) -> Result<u64, StoreError>;
    /// Writes every queued record (to the page cache), or none of them: on failure
    /// their sequence numbers are given back.
    fn write(&mut self) -> Result<(), StoreError>;
    /// Makes what was written durable (`fdatasync`).
    fn sync(&mut self) -> Result<(), StoreError>;
    /// What [`StreamLog::sync`] would sync, for another thread to sync while this one
    /// goes on writing (pipelined group commit): everything written before the
    /// [`SyncPoint::sync`] call starts is durable when it returns.
    fn sync_point(&self) -> SyncPoint;
    /// Applies the retention policy as of `now_ms`: records past it are no longer
    /// read, and segments wholly past it are deleted.
    fn retain(&mut self, now_ms: u64) -> Result<(), StoreError>;
    /// A reader of this stream.
    fn reader(&self) -> Arc<dyn StreamRead>;
    /// The sequence number of the last record appended (0 before the first).
    fn last_seq(&self) -> u64;
}

/// A reader of a stream.
pub trait StreamRead: Send + Sync {
    /// Reads the records from `from_seq` through `through_seq` whose clear metadata
    /// `keep` accepts, at most `max_records` of them, into `out`; returns the sequence
    /// number to read from next. Records past retention are skipped; damaged ones are
    /// skipped and reported (see [`StreamRead::damage`]).
    fn read(
        &self,
        from_seq: u64,
        through_seq: u64,
        max_records: usize,
        keep: &mut dyn FnMut(&[u8]) -> bool,
        out: &mut Vec<StoredRecord>,
    ) -> Result<u64, StoreError>;
    /// A sequence number from which reading finds every record stored at or after
    /// `ts_ms` (readers skip earlier ones by their time).
    fn seq_for_time(&self, ts_ms: u64) -> u64;
    /// The first sequence number still kept.
    fn first_seq(&self) -> u64;
    /// Damage found so far, when opening the stream or reading it.
    fn damage(&self) -> Vec<Damage>;
    /// Bytes the stream's segments hold.
    fn disk_bytes(&self) -> u64;
}

/// The segment being written, to be synced from another thread; see
/// [`StreamLog::sync_point`].
#[derive(Clone)]
pub struct SyncPoint {
    file: Option<Arc<std::fs::File>>,
    stream: Arc<str>,
}

impl SyncPoint {
    /// Syncs (`fdatasync`) what was written to the segment. Earlier segments were
    /// synced when the log moved past them.
    pub fn sync(&self) -> Result<(), StoreError> {
        match &self.file {
            Some(file) => file.sync_data().map_err(|e| {
                StoreError::from_io(format!("syncing the journal of {}", self.stream), e)
            }),
            None => Ok(()),
        }
    }
}

/// What a stream keeps; records past any limit go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep records for at most this long.
    pub max_age_ms: Option<u64>,
    /// Keep at most this many bytes of segments (whole segments are deleted).
    pub max_bytes: Option<u64>,
    /// Keep at most this many records.
    pub max_messages: Option<u64>,
}

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Its sequence number in the stream.
    pub seq: u64,
    /// When it was stored, in milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// The clear, authenticated metadata.
    pub meta: Vec<u8>,
    /// The decrypted secret part.
    pub secret: Vec<u8>,
}

/// Bytes of a stream that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The stream's name.
    pub stream: String,
    /// The segment file.
    pub segment: PathBuf,
    /// Where the damage starts in it.
    pub offset: u64,
    /// How many bytes.
    pub len: u64,
    /// What is wrong.
    pub kind: DamageKind,
    /// Where a copy of the damaged bytes (or the whole segment) was put.
    pub quarantined: Option<PathBuf>,
}

/// What is wrong with damaged bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DamageKind {
    /// Bytes that are no valid record (checksum, magic or length), followed by valid
    /// records.
    Checksum,
    /// Bytes after the last valid record of a segment (a write cut short); cut off.
    TornTail,
    /// A record that passed its checksum but failed authentication: changed, moved or
    /// swapped.
    Authentication,
    /// The segment's header is unreadable; the whole segment was set aside.
    Header,
    /// The key set lacks the segment's key (its id).
    MissingKey(u32),
    /// Bytes found damaged and set aside earlier, kept in the stream's `quarantine`
    /// folder.
    Quarantined,
}

impl std::fmt::Display for DamageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DamageKind::Checksum => f.write_str("checksum"),
            DamageKind::TornTail => f.write_str("torn tail"),
            DamageKind::Authentication => f.write_str("authentication"),
            DamageKind::Header => f.write_str("header"),
            DamageKind::MissingKey(id) => write!(f, "missing key {id}"),
            DamageKind::Quarantined => f.write_str("quarantined earlier"),
        }
    }
}

/// A journal operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk (or the user's quota) is full; nothing of the failed write was kept.
    #[error("{context}: the disk is full")]
    DiskFull {
        /// What was being done.
        context: String,
    },
    /// Another I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: io::Error,
    },
}

impl StoreError {
    pub(crate) fn from_io(context: String, source: io::Error) -> StoreError {
        match source.raw_os_error() {
            Some(libc_enospc) if libc_enospc == ENOSPC || libc_enospc == EDQUOT => {
                StoreError::DiskFull { context }
            }
            _ => StoreError::Io { context, source },
        }
    }
}

/// `ENOSPC` and `EDQUOT` on Linux.
const ENOSPC: i32 = 28;
const EDQUOT: i32 = 122;

/// The folder of the stream named `name` under a journal folder: a hash of the name,
/// since a pattern's characters (`#`, `*`) make poor file names.
pub fn stream_dir(journal: &Path, name: &str) -> PathBuf {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(name.as_bytes());
    journal.join(hex::encode(&digest[..8]))
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
