//! One durable stream: a directory of segments, written by one [`SegmentLog`] and read
//! by any number of [`SegmentReader`]s.
//!
//! Invariants:
//! - Sequence numbers rise by one from record to record, across segments; a stream
//!   never reuses one that reached the disk, except after it was cut off as a torn
//!   tail — and then in a new segment, under a new key.
//! - Only the newest segment is appended to, and only by the process that created it.
//!   Opening a stream seals what it finds and starts a new segment.
//! - Readers see a record only once its write has completed (`Segments` is updated
//!   after the write), and never past the `through` bound their caller gives.
//! - Damaged bytes are never deleted: they are copied to `quarantine/` before a torn
//!   tail is cut off, and skipped (and reported) where they lie otherwise.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    ops::ControlFlow,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
};

use crate::{
    Damage, DamageKind, Retention, StoreError, StoredRecord, StreamLog, StreamRead, SyncPoint,
    keys::KeySet,
    record,
    seal::{SegmentCipher, TAG_LEN, new_salt},
    segment::{self, Contents, HEADER_LEN, Header},
};

/// How a stream is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// The stream's name (its topic pattern); bound into every record's authentication.
    pub name: String,
    /// What is kept.
    pub retention: Retention,
    /// A segment is sealed and a new one started once it holds this many bytes.
    pub segment_bytes: u64,
}

impl StreamConfig {
    /// A stream named `name` keeping what `retention` says, with segments sized to it:
    /// 64 MiB, or an eighth of the byte limit (at least 1 MiB) when that is smaller,
    /// so that deleting whole segments keeps the limit closely.
    pub fn new(name: impl Into<String>, retention: Retention) -> StreamConfig {
        let segment_bytes = retention
            .max_bytes
            .map_or(64 << 20, |max| (max / 8).clamp(1 << 20, 64 << 20));
        StreamConfig {
            name: name.into(),
            retention,
            segment_bytes,
        }
    }
}

/// One segment as readers see it.
#[derive(Clone)]
struct SegmentState {
    path: PathBuf,
    base_seq: u64,
    key_id: u32,
    /// `None` when the key set lacks the segment's key.
    cipher: Option<Arc<SegmentCipher>>,
    contents: Contents,
}

struct Segments {
    list: Vec<SegmentState>,
    /// Records before this sequence number are past retention.
    floor_seq: u64,
    /// Records stored before this time are past retention.
    floor_ts: u64,
}

struct Shared {
    name: String,
    dir: PathBuf,
    segments: RwLock<Segments>,
    damage: Mutex<Vec<Damage>>,
}

/// The segmented append-only log of one stream.
pub struct SegmentLog {
    shared: Arc<Shared>,
    config: StreamConfig,
    keys: Arc<KeySet>,
    /// The segment being appended to; `None` until one could be created (the disk
    /// may be full) and after a failed write, until the next append.
    active: Option<Active>,
    /// Records appended and not yet written: their bytes, and each one's sequence
    /// number, time and length.
    pending: Vec<u8>,
    pending_records: Vec<(u64, u64, u64)>,
    next_seq: u64,
    last_ts: u64,
    sealed_scratch: Vec<u8>,
}

/// The segment being appended to.
struct Active {
    file: Arc<File>,
    /// Bytes of it on disk.
    len: u64,
    cipher: Arc<SegmentCipher>,
}

/// A reader of one stream; cheap to clone.
#[derive(Clone)]
pub struct SegmentReader {
    shared: Arc<Shared>,
}

fn io_error(context: String) -> impl FnOnce(io::Error) -> StoreError {
    move |source| StoreError::from_io(context, source)
}

impl SegmentLog {
    /// Opens the stream in `dir` (creating it), recovering what a crash may have left:
    /// the last segment is checked record by record, a torn tail is quarantined and cut
    /// off, damage elsewhere is reported; then a new segment is started.
    pub fn open(
        dir: &Path,
        config: StreamConfig,
        keys: Arc<KeySet>,
    ) -> Result<SegmentLog, StoreError> {
        fs::create_dir_all(dir).map_err(io_error(format!("creating {}", dir.display())))?;
        claim_dir(dir, &config.name)?;
        let shared = Arc::new(Shared {
            name: config.name.clone(),
            dir: dir.to_owned(),
            segments: RwLock::new(Segments {
                list: vec![],
                floor_seq: 0,
                floor_ts: 0,
            }),
            damage: Mutex::new(vec![]),
        });
        let found = segment_files(dir)?;
        let mut list = Vec::with_capacity(found.len());
        let mut next_seq = 1;
        let mut last_ts = 0;
        let last = found.len().checked_sub(1);
        for (i, (base, path)) in found.into_iter().enumerate() {
            let Some(state) =
                open_segment(&shared, &config.name, &keys, base, &path, Some(i) == last)?
            else {
                continue;
            };
            next_seq = next_seq.max(state.contents.last_seq.map_or(state.base_seq, |s| s + 1));
            last_ts = last_ts.max(state.contents.last_ts);
            list.push(state);
        }
        lock_write(&shared.segments).list = list;
        let mut log = SegmentLog {
            shared,
            config,
            keys,
            active: None,
            pending: Vec::new(),
            pending_records: Vec::new(),
            next_seq,
            last_ts,
            sealed_scratch: Vec::new(),
        };
        match log.roll() {
            Ok(()) => log.drop_empty_sealed()?,
            // What is stored stays readable; appends fail until there is room.
            Err(e @ StoreError::DiskFull { .. }) => tracing::error!("{e}"),
            Err(e) => return Err(e),
        }
        Ok(log)
    }

    /// Damage found so far.
    pub fn damage(&self) -> Vec<Damage> {
        lock(&self.shared.damage).clone()
    }

    /// Starts a new segment, sealing the active one if there is one.
    fn roll(&mut self) -> Result<(), StoreError> {
        if let Some(active) = self.active.take() {
            active.file.sync_data().map_err(io_error(format!(
                "syncing a segment of {}",
                self.config.name
            )))?;
        }
        let last = lock_read(&self.shared.segments).list.last().cloned();
        if let Some(last) = last {
            write_index(&last.path, &last.contents);
        }
        let (file, cipher) =
            create_segment(&self.shared, &self.config.name, &self.keys, self.next_seq)?;
        self.active = Some(Active {
            file: Arc::new(file),
            len: HEADER_LEN,
            cipher,
        });
        Ok(())
    }

    /// Removes sealed segments without records (left by earlier runs).
    fn drop_empty_sealed(&mut self) -> Result<(), StoreError> {
        let mut segments = lock_write(&self.shared.segments);
        let active = segments.list.len().saturating_sub(1);
        let mut gone = vec![];
        let mut i = 0;
        segments.list.retain(|s| {
            let keep = i == active || s.contents.records > 0;
            i += 1;
            if !keep {
                gone.push(s.path.clone());
            }
            keep
        });
        drop(segments);
        for path in gone {
            remove_segment_files(&path)?;
        }
        Ok(())
    }
}

impl StreamLog for SegmentLog {
    fn append(&mut self, ts_ms: u64, meta: &[u8], secret: &[u8]) -> Result<u64, StoreError> {
        if self.active.is_none() {
            self.roll()?;
        }
        let cipher = &self.active.as_ref().expect("rolled above").cipher;
        let seq = self.next_seq;
        let ts_ms = ts_ms.max(self.last_ts);
        self.sealed_scratch.clear();
        self.sealed_scratch.reserve(secret.len() + TAG_LEN);
        cipher.seal(seq, ts_ms, meta, secret, &mut self.sealed_scratch);
        let before = self.pending.len();
        record::encode(&mut self.pending, seq, ts_ms, meta, &self.sealed_scratch);
        let len = (self.pending.len() - before) as u64;
        self.pending_records.push((seq, ts_ms, len));
        self.next_seq += 1;
        self.last_ts = ts_ms;
        Ok(seq)
    }

    fn write(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let active = self
            .active
            .as_mut()
            .expect("records are appended to a segment");
        let written = active.file.write_all_at(&self.pending, active.len);
        if let Err(e) = written {
            // Nothing of this batch counts: cut off whatever reached the file, give the
            // sequence numbers back, and write the next records to a new segment so
            // that no nonce is used twice under this segment's key.
            let _ = active.file.set_len(active.len);
            self.active = None;
            self.next_seq = self.pending_records[0].0;
            self.pending.clear();
            self.pending_records.clear();
            return Err(StoreError::from_io(
                format!("writing to the journal of {}", self.config.name),
                e,
            ));
        }
        {
            let mut segments = lock_write(&self.shared.segments);
            let last = segments
                .list
                .last_mut()
                .expect("the active segment is listed");
            let mut offset = active.len;
            for &(seq, ts, len) in &self.pending_records {
                last.contents.add(seq, ts, offset, len);
                offset += len;
            }
        }
        active.len += self.pending.len() as u64;
        self.pending.clear();
        self.pending_records.clear();
        if active.len >= self.config.segment_bytes {
            self.roll()?;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        match &self.active {
            Some(active) => active.file.sync_data().map_err(io_error(format!(
                "syncing the journal of {}",
                self.config.name
            ))),
            None => Ok(()),
        }
    }

    fn sync_point(&self) -> SyncPoint {
        SyncPoint {
            file: self.active.as_ref().map(|a| a.file.clone()),
            stream: self.config.name.as_str().into(),
        }
    }

    fn retain(&mut self, now_ms: u64) -> Result<(), StoreError> {
        let retention = &self.config.retention;
        let mut segments = lock_write(&self.shared.segments);
        let last_seq = self.next_seq.saturating_sub(1);
        let mut floor_seq = segments.floor_seq;
        if let Some(max) = retention.max_messages {
            floor_seq = floor_seq.max(last_seq.saturating_sub(max) + 1);
        }
        let floor_ts = retention
            .max_age_ms
            .map_or(0, |age| now_ms.saturating_sub(age));
        let mut bytes: u64 = segments.list.iter().map(|s| s.contents.end).sum();
        let mut gone = vec![];
        while segments.list.len() > 1 {
            let oldest = &segments.list[0];
            let c = &oldest.contents;
            let past_count = c.last_seq.is_none_or(|s| s < floor_seq);
            let past_age = retention.max_age_ms.is_some() && c.last_ts < floor_ts;
            let past_bytes = retention.max_bytes.is_some_and(|max| bytes > max);
            if !(past_count || past_age || past_bytes) {
                break;
            }
            bytes -= c.end;
            let removed = segments.list.remove(0);
            floor_seq = floor_seq.max(removed.contents.last_seq.map_or(0, |s| s + 1));
            gone.push(removed.path);
        }
        segments.floor_seq = floor_seq;
        segments.floor_ts = floor_ts;
        drop(segments);
        for path in gone {
            remove_segment_files(&path)?;
        }
        Ok(())
    }

    fn reader(&self) -> Arc<dyn StreamRead> {
        Arc::new(SegmentReader {
            shared: self.shared.clone(),
        })
    }

    fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }
}

impl StreamRead for SegmentReader {
    fn read(
        &self,
        from_seq: u64,
        through_seq: u64,
        max_records: usize,
        keep: &mut dyn FnMut(&[u8]) -> bool,
        out: &mut Vec<StoredRecord>,
    ) -> Result<u64, StoreError> {
        let mut seq = from_seq;
        let mut taken = 0;
        while seq <= through_seq && taken < max_records {
            let (segment, next_base, floor_seq, floor_ts) = {
                let segments = lock_read(&self.shared.segments);
                seq = seq.max(segments.floor_seq);
                let i = segments
                    .list
                    .partition_point(|s| s.base_seq <= seq)
                    .saturating_sub(1);
                let Some(s) = segments.list.get(i) else {
                    return Ok(seq);
                };
                seq = seq.max(s.base_seq);
                let found = Found {
                    path: s.path.clone(),
                    key_id: s.key_id,
                    cipher: s.cipher.clone(),
                    start: s.contents.offset_for_seq(seq),
                    end: s.contents.end,
                    last_seq: s.contents.last_seq,
                };
                let next_base = segments.list.get(i + 1).map(|s| s.base_seq);
                (found, next_base, segments.floor_seq, segments.floor_ts)
            };
            let end_seq = segment.last_seq;
            if end_seq.is_none_or(|last| seq > last) {
                // Past this segment: on to the next one, if there is one.
                match next_base {
                    Some(base) => {
                        seq = base;
                        continue;
                    }
                    None => return Ok(seq),
                }
            }
            let file = match File::open(&segment.path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let listed = lock_read(&self.shared.segments)
                        .list
                        .iter()
                        .any(|s| s.path == segment.path);
                    if !listed {
                        // Removed by retention since the lookup: look again.
                        continue;
                    }
                    // Removed by someone else: what it held is gone; read on.
                    tracing::error!(segment = %segment.path.display(), "a journal segment is missing");
                    match next_base {
                        Some(base) => {
                            seq = base;
                            continue;
                        }
                        None => return Ok(seq),
                    }
                }
                Err(e) => {
                    return Err(StoreError::from_io(
                        format!("opening {}", segment.path.display()),
                        e,
                    ));
                }
            };
            let mut next = seq;
            let scan = segment::scan(&file, segment.start, segment.end, |view, offset| {
                if view.seq < next {
                    return ControlFlow::Continue(());
                }
                if view.seq > through_seq || taken >= max_records {
                    return ControlFlow::Break(());
                }
                next = view.seq + 1;
                if view.seq < floor_seq || view.ts_ms < floor_ts || !keep(view.meta) {
                    return ControlFlow::Continue(());
                }
                let opened = segment
                    .cipher
                    .as_ref()
                    .and_then(|c| c.open(view.seq, view.ts_ms, view.meta, view.sealed));
                match opened {
                    Some(secret) => {
                        out.push(StoredRecord {
                            seq: view.seq,
                            ts_ms: view.ts_ms,
                            meta: view.meta.to_vec(),
                            secret,
                        });
                        taken += 1;
                    }
                    None => {
                        let kind = if segment.cipher.is_none() {
                            DamageKind::MissingKey(segment.key_id)
                        } else {
                            DamageKind::Authentication
                        };
                        let len = record::encoded_len(view.meta, view.sealed.len()) as u64;
                        report(&self.shared, &segment.path, offset, len, kind, &file);
                    }
                }
                ControlFlow::Continue(())
            })
            .map_err(io_error(format!("reading {}", segment.path.display())))?;
            for bad in scan.damaged.iter().chain(&scan.torn_tail) {
                report(
                    &self.shared,
                    &segment.path,
                    bad.offset,
                    bad.len,
                    DamageKind::Checksum,
                    &file,
                );
            }
            if next == seq {
                // Nothing at or after `seq` in this segment: the rest was damaged.
                seq = end_seq.map_or(seq, |l| l + 1);
            } else {
                seq = next;
            }
        }
        Ok(seq)
    }

    fn seq_for_time(&self, ts_ms: u64) -> u64 {
        let segments = lock_read(&self.shared.segments);
        let holding = segments
            .list
            .iter()
            .find(|s| s.contents.records > 0 && s.contents.last_ts >= ts_ms);
        match holding {
            Some(s) => s.contents.seq_for_time(ts_ms).unwrap_or(s.base_seq),
            None => segments.list.last().map_or(1, |s| {
                s.contents.last_seq.map_or(s.base_seq, |last| last + 1)
            }),
        }
    }

    fn first_seq(&self) -> u64 {
        let segments = lock_read(&self.shared.segments);
        let first = segments
            .list
            .iter()
            .find_map(|s| s.contents.first_seq)
            .unwrap_or_else(|| segments.list.last().map_or(1, |s| s.base_seq));
        first.max(segments.floor_seq)
    }

    fn damage(&self) -> Vec<Damage> {
        lock(&self.shared.damage).clone()
    }

    fn disk_bytes(&self) -> u64 {
        lock_read(&self.shared.segments)
            .list
            .iter()
            .map(|s| s.contents.end)
            .sum()
    }
}

/// What a read needs of the segment it reads.
struct Found {
    path: PathBuf,
    key_id: u32,
    cipher: Option<Arc<SegmentCipher>>,
    /// Where to start reading for the sequence number asked for.
    start: u64,
    end: u64,
    last_seq: Option<u64>,
}

/// The file in a stream's folder that holds its name.
const NAME_FILE: &str = "stream.name";

/// The name recorded in a stream's folder.
pub(crate) fn read_name(dir: &Path) -> Result<String, StoreError> {
    let path = dir.join(NAME_FILE);
    fs::read_to_string(&path).map_err(io_error(format!("reading {}", path.display())))
}

/// Records the stream's name in its folder, or checks the one recorded: a folder is
/// found by a hash of the name, and a record authenticates only under its own name.
fn claim_dir(dir: &Path, name: &str) -> Result<(), StoreError> {
    let path = dir.join(NAME_FILE);
    match fs::read_to_string(&path) {
        Ok(found) if found == name => Ok(()),
        Ok(found) => Err(StoreError::Io {
            context: format!("opening the stream {name} in {}", dir.display()),
            source: io::Error::other(format!("the folder belongs to the stream {found}")),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::write(&path, name).map_err(io_error(format!("writing {}", path.display())))
        }
        Err(e) => Err(StoreError::from_io(
            format!("reading {}", path.display()),
            e,
        )),
    }
}

/// The stream's segment files, by base sequence number.
pub(crate) fn segment_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let entries = fs::read_dir(dir).map_err(io_error(format!("listing {}", dir.display())))?;
    let mut found = vec![];
    for entry in entries {
        let entry = entry.map_err(io_error(format!("listing {}", dir.display())))?;
        let name = entry.file_name();
        if let Some(base) = name.to_str().and_then(segment::base_of) {
            found.push((base, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Opens a segment found on disk. The last one (`tail`) is scanned record by record and
/// its torn tail cut off; the others are described by their index, or scanned when it
/// is missing or damaged. `None` if the segment is unusable (quarantined).
fn open_segment(
    shared: &Shared,
    stream: &str,
    keys: &KeySet,
    base: u64,
    path: &Path,
    tail: bool,
) -> Result<Option<SegmentState>, StoreError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_error(format!("opening {}", path.display())))?;
    let file_len = file
        .metadata()
        .map_err(io_error(format!("reading {}", path.display())))?
        .len();
    let header = match segment::read_header(&mut file)
        .map_err(io_error(format!("reading {}", path.display())))?
    {
        Ok(h) if h.base_seq == base => h,
        Ok(_) | Err(_) => {
            // A segment created by a crash before its header reached the disk, or
            // damaged: set aside whole.
            quarantine_file(shared, path, file_len)?;
            return Ok(None);
        }
    };
    let indexed = (!tail)
        .then(|| fs::read(segment::index_path(path)).ok())
        .flatten()
        .and_then(|bytes| Contents::decode_index(&bytes))
        .filter(|c| c.end <= file_len);
    let contents = match indexed {
        Some(contents) => contents,
        None => {
            let scan = segment::scan(
                &file,
                HEADER_LEN,
                file_len,
                |_, _| ControlFlow::Continue(()),
            )
            .map_err(io_error(format!("reading {}", path.display())))?;
            for bad in &scan.damaged {
                report(
                    shared,
                    path,
                    bad.offset,
                    bad.len,
                    DamageKind::Checksum,
                    &file,
                );
            }
            if let Some(torn) = &scan.torn_tail {
                report(
                    shared,
                    path,
                    torn.offset,
                    torn.len,
                    DamageKind::TornTail,
                    &file,
                );
                if tail {
                    file.set_len(torn.offset).map_err(io_error(format!(
                        "cutting the torn tail of {}",
                        path.display()
                    )))?;
                    file.sync_all()
                        .map_err(io_error(format!("syncing {}", path.display())))?;
                }
            }
            write_index(path, &scan.contents);
            scan.contents
        }
    };
    let cipher = keys
        .get(header.key_id)
        .map(|key| Arc::new(SegmentCipher::new(key, &header.salt, stream)));
    if cipher.is_none() {
        tracing::error!(
            segment = %path.display(),
            key = header.key_id,
            "the journal key set lacks this segment's key: its records cannot be read"
        );
    }
    Ok(Some(SegmentState {
        path: path.to_owned(),
        base_seq: header.base_seq,
        key_id: header.key_id,
        cipher,
        contents,
    }))
}

/// Creates the segment starting at `base_seq`, makes it the active one, and returns its
/// file and cipher.
fn create_segment(
    shared: &Shared,
    stream: &str,
    keys: &KeySet,
    base_seq: u64,
) -> Result<(File, Arc<SegmentCipher>), StoreError> {
    let (key_id, key) = keys.current();
    let header = Header {
        key_id,
        base_seq,
        created_ms: crate::now_ms(),
        salt: new_salt(),
    };
    let path = shared.dir.join(segment::file_name(base_seq));
    let context = || format!("creating {}", path.display());
    // A segment of this base may exist without records (a run that stored nothing):
    // it is replaced.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(io_error(context()))?;
    file.write_all(&header.encode())
        .map_err(io_error(context()))?;
    file.sync_all().map_err(io_error(context()))?;
    sync_dir(&shared.dir)?;
    let _ = fs::remove_file(segment::index_path(&path));
    let cipher = Arc::new(SegmentCipher::new(key, &header.salt, stream));
    let mut segments = lock_write(&shared.segments);
    segments.list.retain(|s| s.base_seq != base_seq);
    segments.list.push(SegmentState {
        path,
        base_seq,
        key_id,
        cipher: Some(cipher.clone()),
        contents: Contents::empty(),
    });
    Ok((file, cipher))
}

/// Writes a sealed segment's index. Failing is not an error, only slower: without an
/// index the segment is scanned when the stream is next opened.
fn write_index(segment: &Path, contents: &Contents) {
    let path = segment::index_path(segment);
    let tmp = path.with_extension("idx.tmp");
    let written = fs::write(&tmp, contents.encode_index()).and_then(|()| fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        tracing::warn!(
            "cannot write {}: {e}; it is rebuilt when next opened",
            path.display()
        );
    }
}

fn remove_segment_files(path: &Path) -> Result<(), StoreError> {
    for p in [path.to_owned(), segment::index_path(path)] {
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::from_io(format!("removing {}", p.display()), e)),
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(format!("syncing {}", dir.display())))
}

/// Records damage once, logs it, and copies the damaged bytes to `quarantine/`.
fn report(shared: &Shared, segment: &Path, offset: u64, len: u64, kind: DamageKind, file: &File) {
    let mut damage = lock(&shared.damage);
    if damage
        .iter()
        .any(|d| d.segment == segment && d.offset == offset)
    {
        return;
    }
    let copy = quarantine_bytes(shared, segment, offset, len, file);
    tracing::warn!(
        stream = %shared.name,
        segment = %segment.display(),
        offset,
        len,
        kind = %kind,
        quarantined = ?copy,
        "damaged journal bytes skipped"
    );
    damage.push(Damage {
        stream: shared.name.clone(),
        segment: segment.to_owned(),
        offset,
        len,
        kind,
        quarantined: copy,
    });
}

fn quarantine_dir(shared: &Shared) -> Option<PathBuf> {
    let dir = shared.dir.join("quarantine");
    fs::create_dir_all(&dir).ok().map(|()| dir)
}

fn quarantine_bytes(
    shared: &Shared,
    segment: &Path,
    offset: u64,
    len: u64,
    file: &File,
) -> Option<PathBuf> {
    let name = segment.file_name()?.to_string_lossy().into_owned();
    let to = quarantine_dir(shared)?.join(format!("{name}.{offset}.bad"));
    if to.exists() {
        return Some(to);
    }
    let mut bytes = vec![0; usize::try_from(len.min(64 << 20)).ok()?];
    file.read_exact_at(&mut bytes, offset).ok()?;
    fs::write(&to, bytes).ok().map(|()| to)
}

fn quarantine_file(shared: &Shared, path: &Path, len: u64) -> Result<(), StoreError> {
    let Some(dir) = quarantine_dir(shared) else {
        return Err(StoreError::Io {
            context: format!("creating {}", shared.dir.join("quarantine").display()),
            source: io::Error::other("cannot create the quarantine folder"),
        });
    };
    let to = dir.join(path.file_name().unwrap_or_default());
    fs::rename(path, &to).map_err(io_error(format!("moving {} aside", path.display())))?;
    let _ = fs::remove_file(segment::index_path(path));
    let mut damage = lock(&shared.damage);
    tracing::warn!(stream = %shared.name, segment = %path.display(), "a journal segment with an unreadable header was set aside");
    damage.push(Damage {
        stream: shared.name.clone(),
        segment: path.to_owned(),
        offset: 0,
        len,
        kind: DamageKind::Header,
        quarantined: Some(to),
    });
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn lock_read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

fn lock_write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}
