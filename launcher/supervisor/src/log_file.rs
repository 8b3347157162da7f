//! A log file rotated by size: `NAME.log`, then `NAME.log.1` (newest) … `NAME.log.K`.
//!
//! Written here rather than taken from `file-rotate`, which panics when its directory
//! cannot be created or has vanished: a log writer must never take the shell down.
//! Every failure is returned to the caller, who decides (the capture threads report it
//! once and drop the lines).

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
};

/// An append-only log file that moves aside when it reaches its size limit.
///
/// Invariant: `written` is the current file's length as far as this writer knows; a
/// write that would take it past `max_bytes` first rotates (unless the file is empty,
/// so a single oversized write still lands whole).
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: Option<File>,
    written: u64,
}

impl RotatingFile {
    /// A writer for `path`, rotated past `max_bytes` and keeping `keep` older files.
    /// Nothing is opened until the first write.
    pub fn new(path: PathBuf, max_bytes: u64, keep: usize) -> Self {
        Self {
            path,
            max_bytes: max_bytes.max(1),
            keep,
            file: None,
            written: 0,
        }
    }

    /// The current file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of the `n`th older file (1 is the newest of them).
    pub fn rotated_path(path: &Path, n: usize) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    /// Appends `bytes` whole, rotating first if they would not fit.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            self.open()?;
        }
        if self.written > 0 && self.written + bytes.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => self.open()?,
        };
        file.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn open(&mut self) -> io::Result<&mut File> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.written = file.metadata()?.len();
        Ok(self.file.insert(file))
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            for n in (1..self.keep).rev() {
                let from = Self::rotated_path(&self.path, n);
                if from.exists() {
                    std::fs::rename(&from, Self::rotated_path(&self.path, n + 1))?;
                }
            }
            std::fs::rename(&self.path, Self::rotated_path(&self.path, 1))?;
        }
        self.open().map(drop)
    }
}

/// Each write is appended whole (see [`RotatingFile::append`]), so a log line is never
/// split across two files.
impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.append(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    #[test]
    fn rotates_by_size_and_keeps_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/app.log");
        let mut log = RotatingFile::new(path.clone(), 10, 2);
        for line in [
            "aaaa\n", "bbbb\n", "cccc\n", "dddd\n", "eeee\n", "ffff\n", "gg\n",
        ] {
            log.append(line.as_bytes()).unwrap();
        }
        assert_eq!(read(&path), "gg\n");
        assert_eq!(read(&RotatingFile::rotated_path(&path, 1)), "eeee\nffff\n");
        assert_eq!(read(&RotatingFile::rotated_path(&path, 2)), "cccc\ndddd\n");
        assert!(
            !RotatingFile::rotated_path(&path, 3).exists(),
            "only two kept"
        );
    }

    #[test]
    fn an_existing_file_counts_toward_the_limit_and_big_writes_land_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, "12345678\n").unwrap();
        let mut log = RotatingFile::new(path.clone(), 10, 1);
        log.append(b"next\n").unwrap();
        assert_eq!(read(&RotatingFile::rotated_path(&path, 1)), "12345678\n");
        let big = "x".repeat(50);
        log.append(big.as_bytes()).unwrap();
        assert_eq!(read(&path), big, "rotated, then written whole");
    }

    #[test]
    fn a_directory_that_vanishes_is_recreated_and_failures_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/app.log");
        let mut log = RotatingFile::new(path.clone(), 5, 1);
        log.append(b"one\n").unwrap();
        std::fs::remove_dir_all(dir.path().join("sub")).unwrap();
        // The next rotation finds its file gone: an error, not a panic.
        assert!(log.append(b"two\n").is_err());
        log.append(b"three\n").unwrap();
        assert_eq!(read(&path), "three\n");
        // A blocked path is an error too.
        std::fs::write(dir.path().join("file"), "").unwrap();
        let mut blocked = RotatingFile::new(dir.path().join("file/app.log"), 5, 1);
        assert!(blocked.append(b"x").is_err());
    }
}
