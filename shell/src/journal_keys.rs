//! The journal's master keys, kept as [`master_keys`](crate::master_keys) keeps keys:
//! in the OS keychain, or — only with `[journal] key_file = true` — in a 0600 file.
//!
//! Without either, durable topics are refused.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use weft_journal::KeySet;

use crate::master_keys::KeyPlace;
pub use crate::master_keys::KeySource;

/// The journal's keys and where they came from.
pub struct JournalKeys {
    /// The master keys.
    pub keys: Arc<KeySet>,
    /// Where they are kept.
    pub source: KeySource,
}

/// The journal folder of a data directory.
pub fn journal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("journal")
}

/// The key file of a data directory, used only when the user opts in.
pub fn key_file(data_dir: &Path) -> PathBuf {
    journal_dir(data_dir).join("keys")
}

/// Where the keys of a data directory are kept: one set per data directory.
fn place(data_dir: &Path, allow_key_file: bool) -> KeyPlace {
    KeyPlace {
        what: "the journal's key",
        entry: format!("journal-keys {}", data_dir.display()),
        file: key_file(data_dir),
        allow_file: allow_key_file,
        opt_in: "`key_file = true` under `[journal]`",
    }
}

fn parse(text: &str) -> Result<KeySet, String> {
    KeySet::from_text(text).map_err(|e| e.to_string())
}

/// Loads the keys, creating them on first use.
pub fn load(data_dir: &Path, allow_key_file: bool) -> Result<JournalKeys, String> {
    let (keys, source) =
        place(data_dir, allow_key_file).load_or_create(|| KeySet::generate().to_text(), parse)?;
    Ok(JournalKeys {
        keys: Arc::new(keys),
        source,
    })
}

/// Adds a new master key, which new segments use from the next start; old segments
/// stay readable with the old keys. Returns the new key's id and where it is kept.
pub fn rotate(data_dir: &Path, allow_key_file: bool) -> Result<(u32, KeySource), String> {
    let loaded = load(data_dir, allow_key_file)?;
    let mut keys = (*loaded.keys).clone();
    let id = keys.rotate();
    place(data_dir, allow_key_file).store(&keys.to_text(), &loaded.source)?;
    Ok((id, loaded.source))
}

#[cfg(test)]
mod tests {
    use std::{fs, os::unix::fs::PermissionsExt};

    use super::*;

    #[test]
    fn a_key_file_is_created_0600_rotated_and_refused_when_others_may_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = key_file(dir.path());
        // Written first, so that the file is used whether or not a keychain is there.
        let made = KeySet::generate();
        place(dir.path(), true)
            .store(&made.to_text(), &KeySource::KeyFile(file.clone()))
            .unwrap();
        let first = load(dir.path(), true).unwrap();
        assert_eq!(*first.keys, made);
        assert_eq!(first.source, KeySource::KeyFile(file.clone()));
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            *load(dir.path(), true).unwrap().keys,
            *first.keys,
            "read back, not made again"
        );
        let (id, source) = rotate(dir.path(), true).unwrap();
        assert_eq!((id, source), (2, KeySource::KeyFile(file.clone())));
        let rotated = load(dir.path(), true).unwrap().keys;
        assert_eq!(rotated.get(1), first.keys.get(1), "the old key stays");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load(dir.path(), true).err().unwrap().contains("chmod 600"));
    }
}
