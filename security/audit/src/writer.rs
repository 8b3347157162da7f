//! The writer: one thread owns the files, so lines are appended in one order with no
//! lock held by the callers, who only queue events.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read, Seek, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::{Mutex, mpsc},
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime},
};

use crate::{
    anchor::{Anchor, Head, log_id},
    files,
    record::{self, GENESIS, Record},
};

/// How the log is kept.
pub struct AuditSettings {
    /// A file is closed and a new one begun once it reaches this size.
    pub max_file_bytes: u64,
    /// How often the head is anchored (when it moved).
    pub anchor_every: Duration,
    /// Where heads are anchored, besides the `head` file.
    pub anchors: Vec<Box<dyn Anchor>>,
}

enum Message {
    Event {
        ts: SystemTime,
        event: String,
        data: serde_json::Value,
    },
    Flush(mpsc::SyncSender<()>),
    Anchor(mpsc::SyncSender<()>),
}

/// An open audit log; events are queued by [`AuditLog::record`] and written, synced
/// and chained by its thread. Dropping it writes what is queued and anchors the head.
pub struct AuditLog {
    queue: Mutex<Option<mpsc::Sender<Message>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    dir: PathBuf,
}

impl AuditLog {
    /// Opens (creating it, mode 0700) the log in `dir` and starts its thread. A line
    /// torn by a crash is cut off and the cut recorded as the first new event.
    pub fn open(dir: &Path, settings: AuditSettings) -> io::Result<AuditLog> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let (mut state, torn) = State::open(dir, settings)?;
        let (tx, rx) = mpsc::channel();
        if let Some(torn) = torn {
            let _ = tx.send(Message::Event {
                ts: SystemTime::now(),
                event: "audit.torn_tail".into(),
                data: torn,
            });
        }
        let thread = std::thread::Builder::new()
            .name("weft-audit".into())
            .spawn(move || state.run(rx))?;
        Ok(AuditLog {
            queue: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            dir: dir.to_owned(),
        })
    }

    /// The directory the log is kept in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Queues an event (`event` such as `permission.denied`, `data` its details).
    pub fn record(&self, event: &str, data: serde_json::Value) {
        if let Some(queue) = &*lock(&self.queue) {
            let _ = queue.send(Message::Event {
                ts: SystemTime::now(),
                event: event.to_owned(),
                data,
            });
        }
    }

    /// Waits until every event queued so far is written and synced.
    pub fn flush(&self) {
        self.wait_for(Message::Flush);
    }

    /// Writes everything queued, then anchors the head everywhere now (as at the end of
    /// each period), and waits for both.
    pub fn anchor_now(&self) {
        self.wait_for(Message::Anchor);
    }

    fn wait_for(&self, message: impl FnOnce(mpsc::SyncSender<()>) -> Message) {
        let (tx, rx) = mpsc::sync_channel(1);
        if let Some(queue) = &*lock(&self.queue)
            && queue.send(message(tx)).is_ok()
        {
            let _ = rx.recv();
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        lock(&self.queue).take();
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The writing thread's state.
struct State {
    dir: PathBuf,
    settings: AuditSettings,
    log: String,
    /// The file being appended to and its length; `None` before the first line.
    file: Option<(File, u64)>,
    seq: u64,
    hash: String,
    anchored_seq: u64,
    /// Anchors that failed last time (each failure is logged once until it recovers).
    failing: Vec<bool>,
}

impl State {
    /// Finds where the chain ends; returns the torn tail's description if one was cut.
    fn open(dir: &Path, settings: AuditSettings) -> io::Result<(State, Option<serde_json::Value>)> {
        let mut state = State {
            dir: dir.to_owned(),
            log: log_id(dir),
            failing: vec![false; settings.anchors.len()],
            settings,
            file: None,
            seq: 0,
            hash: GENESIS.to_owned(),
            anchored_seq: 0,
        };
        let mut torn = None;
        let mut paths = files::list(dir)?;
        while let Some(path) = paths.pop() {
            let mut file = OpenOptions::new().read(true).append(true).open(&path)?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            if complete < bytes.len() {
                let cut = &bytes[complete..];
                torn = Some(serde_json::json!({
                    "file": path.display().to_string(),
                    "bytes": cut.len(),
                    "sha256": record::line_hash(cut),
                }));
                file.set_len(complete as u64)?;
                file.sync_data()?;
            }
            let lines: Vec<&[u8]> = bytes[..complete]
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .collect();
            let Some(last) = lines.last() else {
                // Only a torn first line: the file holds nothing.
                drop(file);
                fs::remove_file(&path)?;
                continue;
            };
            state.hash = record::line_hash(last);
            state.seq = match Record::parse(last) {
                Ok(r) => r.seq,
                Err(_) => files::first_seq(&path).unwrap_or(1) + lines.len() as u64 - 1,
            };
            file.seek(io::SeekFrom::End(0))?;
            state.file = Some((file, complete as u64));
            break;
        }
        state.anchored_seq = files::read_head(dir)
            .filter(|(seq, hash)| *seq == state.seq && *hash == state.hash)
            .map_or(0, |(seq, _)| seq);
        Ok((state, torn))
    }

    fn run(&mut self, rx: mpsc::Receiver<Message>) {
        let mut next_anchor = Instant::now() + self.settings.anchor_every;
        loop {
            let wait = next_anchor.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(first) => {
                    let mut flushes = Vec::new();
                    let mut anchors = Vec::new();
                    let mut wrote = false;
                    for message in std::iter::once(first).chain(rx.try_iter()) {
                        match message {
                            Message::Event { ts, event, data } => {
                                wrote |= self.append(ts, &event, &data);
                            }
                            Message::Flush(done) => flushes.push(done),
                            Message::Anchor(done) => anchors.push(done),
                        }
                    }
                    if wrote {
                        self.sync();
                    }
                    if !anchors.is_empty() {
                        self.anchor();
                    }
                    for done in flushes.into_iter().chain(anchors) {
                        let _ = done.send(());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.anchor();
                    next_anchor = Instant::now() + self.settings.anchor_every;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.anchor();
                    return;
                }
            }
        }
    }

    /// Appends one line; `false` if it could not be written (the chain stays where it
    /// was).
    fn append(&mut self, ts: SystemTime, event: &str, data: &serde_json::Value) -> bool {
        let seq = self.seq + 1;
        let ts = humantime::format_rfc3339_millis(ts).to_string();
        let line = record::build(seq, &ts, event, data, &self.hash);
        match self.write_line(seq, &line) {
            Ok(()) => {
                self.seq = seq;
                self.hash = record::line_hash(line.as_bytes());
                true
            }
            Err(e) => {
                tracing::error!(
                    "cannot write to the audit log in {}: {e}; event {event} is lost",
                    self.dir.display()
                );
                false
            }
        }
    }

    fn write_line(&mut self, seq: u64, line: &str) -> io::Result<()> {
        let len = line.len() as u64 + 1;
        let full = self
            .file
            .as_ref()
            .is_some_and(|(_, size)| *size > 0 && size + len > self.settings.max_file_bytes);
        if full {
            if let Some((file, _)) = &self.file {
                file.sync_data()?;
            }
            self.file = None;
        }
        if self.file.is_none() {
            let file = OpenOptions::new()
                .append(true)
                .create_new(true)
                .mode(0o600)
                .open(files::file_for(&self.dir, seq))?;
            File::open(&self.dir)?.sync_all()?;
            self.file = Some((file, 0));
        }
        let (file, size) = self.file.as_mut().expect("opened above");
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        file.write_all(&bytes)?;
        *size += len;
        Ok(())
    }

    fn sync(&mut self) {
        if let Some((file, _)) = &self.file
            && let Err(e) = file.sync_data()
        {
            tracing::error!("cannot sync the audit log: {e}");
        }
        if let Err(e) = files::write_head(&self.dir, self.seq, &self.hash) {
            tracing::error!("cannot write the audit log's head file: {e}");
        }
    }

    /// Writes the head to every anchor, if it moved since the last time.
    fn anchor(&mut self) {
        if self.seq == 0 || self.seq == self.anchored_seq {
            return;
        }
        let head = Head {
            log: self.log.clone(),
            seq: self.seq,
            hash: self.hash.clone(),
        };
        let mut all = true;
        for (anchor, failing) in self.settings.anchors.iter_mut().zip(&mut self.failing) {
            match anchor.anchor(&head) {
                Ok(()) => *failing = false,
                Err(e) => {
                    all = false;
                    if !*failing {
                        tracing::warn!(
                            "cannot anchor the audit log's head in {}: {e}",
                            anchor.describe()
                        );
                    }
                    *failing = true;
                }
            }
        }
        if all {
            self.anchored_seq = self.seq;
        }
    }
}
