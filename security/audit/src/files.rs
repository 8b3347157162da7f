//! Where a log's lines live: `audit-<first seq, 20 digits>.jsonl` files in one
//! directory, in seq order, and `head`, the last line's seq and hash.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
};

const PREFIX: &str = "audit-";
const SUFFIX: &str = ".jsonl";

/// The log's files, oldest first.
pub(crate) fn list(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<(u64, PathBuf)> = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if let Some(first) = first_seq(&path) {
            files.push((first, path));
        }
    }
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// The seq of a log file's first line, from its name; `None` if it is not a log file.
pub(crate) fn first_seq(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_prefix(PREFIX)?
        .strip_suffix(SUFFIX)?
        .parse()
        .ok()
}

/// The file whose first line has `seq`.
pub(crate) fn file_for(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{seq:020}{SUFFIX}"))
}

/// The file holding the last line's seq and hash (`<seq> <hash>\n`).
pub fn head_file(dir: &Path) -> PathBuf {
    dir.join("head")
}

/// Replaces the head file atomically.
pub(crate) fn write_head(dir: &Path, seq: u64, hash: &str) -> io::Result<()> {
    let tmp = dir.join("head.tmp");
    let mut f = fs::File::create(&tmp)?;
    writeln!(f, "{seq} {hash}")?;
    f.sync_data()?;
    fs::rename(&tmp, head_file(dir))
}

/// The head file's seq and hash, if it exists and reads.
pub(crate) fn read_head(dir: &Path) -> Option<(u64, String)> {
    let text = fs::read_to_string(head_file(dir)).ok()?;
    let (seq, hash) = text.trim().split_once(' ')?;
    Some((seq.parse().ok()?, hash.to_owned()))
}
