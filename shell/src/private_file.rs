//! Replacing a file only its owner may read (keys, sealed storage, the user's
//! permission answers) so that a crash leaves the old or the new contents, never half:
//! a fresh 0600 temporary file beside it, synced, then renamed over it.

use std::{fs, io::Write, os::unix::fs::OpenOptionsExt, path::Path};

/// Replaces `path` with `contents`, creating its folder if needed.
pub fn replace(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}
