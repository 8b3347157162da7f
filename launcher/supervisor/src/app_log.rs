//! Per-app log files: everything an app's processes write to stdout and stderr (the
//! host's own log, the page's console output and errors it forwards, and whatever the
//! WebKit processes print), one timestamped line at a time, into
//! `<logs dir>/<appId>.log`, rotated by size.
//!
//! Each running process gets one capture thread reading its pipe; every process of an
//! app (all its instances and restarts) appends to the same file under one lock, so
//! lines never interleave mid-line.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, PipeReader},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::SystemTime,
};

use crate::log_file::RotatingFile;

/// The longest line kept; the rest of a longer line is cut and marked.
pub const MAX_LINE: usize = 16 * 1024;

/// Where app logs go and how they rotate.
#[derive(Debug, Clone)]
pub struct AppLogSettings {
    /// The directory of the log files.
    pub dir: PathBuf,
    /// Size at which a file is rotated.
    pub max_file_bytes: u64,
    /// Rotated files kept per app.
    pub keep_files: usize,
}

/// The app log files, shared by the capture threads.
#[derive(Debug)]
pub(crate) struct AppLogs {
    settings: AppLogSettings,
    files: Mutex<HashMap<String, Arc<Mutex<RotatingFile>>>>,
}

/// The log file of `app_id` in `dir` (app ids are valid file names).
pub fn log_path(dir: &Path, app_id: &str) -> PathBuf {
    dir.join(format!("{app_id}.log"))
}

impl AppLogs {
    pub(crate) fn new(settings: AppLogSettings) -> Self {
        Self {
            settings,
            files: Mutex::default(),
        }
    }

    fn file(&self, app_id: &str) -> Arc<Mutex<RotatingFile>> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        files
            .entry(app_id.to_owned())
            .or_insert_with(|| {
                Arc::new(Mutex::new(RotatingFile::new(
                    log_path(&self.settings.dir, app_id),
                    self.settings.max_file_bytes,
                    self.settings.keep_files,
                )))
            })
            .clone()
    }

    /// Copies what the process `pid` of `instance_id` writes to `pipe` into its app's
    /// log, on a thread of its own, until every writer of the pipe has closed it.
    pub(crate) fn capture(&self, app_id: &str, instance_id: &str, pid: u32, pipe: PipeReader) {
        let file = self.file(app_id);
        let prefix = format!("{instance_id} pid={pid}");
        let spawned = std::thread::Builder::new()
            .name(format!("weft-log-{pid}"))
            .spawn(move || copy_lines(BufReader::new(pipe), &file, &prefix));
        if let Err(e) = spawned {
            tracing::warn!(%app_id, "cannot start the thread capturing its output: {e}");
        }
    }
}

fn copy_lines(mut pipe: impl BufRead, file: &Mutex<RotatingFile>, prefix: &str) {
    let mut line = Vec::new();
    let mut failed = false;
    loop {
        line.clear();
        match read_line_capped(&mut pipe, &mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("reading an app's output failed: {e}");
                return;
            }
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        let stamp = humantime::format_rfc3339_millis(SystemTime::now());
        let entry = format!("{stamp} {prefix} {text}\n");
        let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
        match file.append(entry.as_bytes()) {
            Ok(()) => failed = false,
            Err(e) if !failed => {
                // Reported once per run of failures; the lines are dropped meanwhile so
                // the app never blocks on a full pipe.
                tracing::warn!("cannot write {}: {e}", file.path().display());
                failed = true;
            }
            Err(_) => {}
        }
    }
}

/// Reads one line into `line`, keeping at most [`MAX_LINE`] bytes of it (the rest is
/// read and dropped, and the cut is marked). Returns the bytes consumed; 0 at the end.
fn read_line_capped(pipe: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut consumed = 0;
    let mut cut = false;
    loop {
        let buf = pipe.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let room = MAX_LINE.saturating_sub(line.len());
        if chunk.len() > room {
            cut = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let n = chunk.len();
        pipe.consume(n);
        consumed += n;
        if done {
            break;
        }
    }
    if cut {
        line.extend_from_slice(" […cut]".as_bytes());
    }
    Ok(consumed)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn lines_are_stamped_attributed_and_long_ones_cut() {
        let dir = tempfile::tempdir().unwrap();
        let logs = AppLogs::new(AppLogSettings {
            dir: dir.path().to_owned(),
            max_file_bytes: 1 << 20,
            keep_files: 1,
        });
        let (reader, mut writer) = std::io::pipe().unwrap();
        logs.capture("chart", "chart-7", 42, reader);
        let long = "y".repeat(MAX_LINE + 100);
        write!(writer, "hello\npartial").unwrap();
        writeln!(writer, " line\n{long}").unwrap();
        drop(writer);
        let path = log_path(dir.path(), "chart");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let text = loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            // Three whole lines: a reader may see a line's write half done.
            let whole = text.ends_with('\n') && text.lines().count() == 3;
            if whole || std::time::Instant::now() > deadline {
                break text;
            }
            std::thread::yield_now();
        };
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].ends_with(" chart-7 pid=42 hello"), "{}", lines[0]);
        assert!(
            lines[0].starts_with("20"),
            "an RFC 3339 time first: {}",
            lines[0]
        );
        assert!(lines[1].ends_with("pid=42 partial line"), "{}", lines[1]);
        assert!(lines[2].ends_with(" […cut]"));
        assert!(lines[2].len() < MAX_LINE + 100);
    }
}
