//! Where the journal's master keys are kept: the OS keychain (Secret Service on
//! Linux, through the `keyring` crate), or — only when the user opts in with
//! `[journal] key_file = true` — a file readable by its owner alone.
//!
//! Without either, durable topics are refused: the journal is never written with a
//! key kept nowhere safe.

use std::{
    fs,
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::Arc,
};

use weft_journal::KeySet;

/// The keychain service name entries are kept under.
const SERVICE: &str = "weft";

/// The journal's keys and where they came from.
pub struct JournalKeys {
    /// The master keys.
    pub keys: Arc<KeySet>,
    /// Where they are kept.
    pub source: KeySource,
}

/// Where the master keys are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The OS keychain.
    Keychain,
    /// A file (mode 0600), by the user's choice.
    KeyFile(PathBuf),
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Keychain => f.write_str("the OS keychain"),
            KeySource::KeyFile(path) => write!(f, "the key file {}", path.display()),
        }
    }
}

/// The journal folder of a data directory.
pub fn journal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("journal")
}

/// The key file of a data directory, used only when the user opts in.
pub fn key_file(data_dir: &Path) -> PathBuf {
    journal_dir(data_dir).join("keys")
}

/// The keychain entry of a data directory: one set of keys per data directory.
fn entry(data_dir: &Path) -> Result<keyring::Entry, keyring::Error> {
    keyring::Entry::new(SERVICE, &format!("journal-keys {}", data_dir.display()))
}

/// Loads the keys, creating them on first use.
pub fn load(data_dir: &Path, allow_key_file: bool) -> Result<JournalKeys, String> {
    let file = key_file(data_dir);
    if allow_key_file && file.exists() {
        return load_file(&file).map(|keys| JournalKeys {
            keys: Arc::new(keys),
            source: KeySource::KeyFile(file),
        });
    }
    match load_keychain(data_dir) {
        Ok(keys) => Ok(JournalKeys {
            keys: Arc::new(keys),
            source: KeySource::Keychain,
        }),
        Err(why) if allow_key_file => {
            tracing::warn!(
                "no keychain ({why}): the journal's keys are kept in {}, as config.toml \
                 allows; anyone who can read that file can read the journal",
                file.display()
            );
            let keys = load_file(&file)?;
            Ok(JournalKeys {
                keys: Arc::new(keys),
                source: KeySource::KeyFile(file),
            })
        }
        Err(why) => Err(format!(
            "no keychain is available to keep the journal's key ({why}); to keep it in a \
             file readable only by you instead, set `key_file = true` under `[journal]` in \
             config.toml"
        )),
    }
}

/// Adds a new master key, which new segments use from the next start; old segments
/// stay readable with the old keys. Returns the new key's id and where it is kept.
pub fn rotate(data_dir: &Path, allow_key_file: bool) -> Result<(u32, KeySource), String> {
    let loaded = load(data_dir, allow_key_file)?;
    let mut keys = (*loaded.keys).clone();
    let id = keys.rotate();
    match &loaded.source {
        KeySource::Keychain => store_keychain(data_dir, &keys)?,
        KeySource::KeyFile(path) => write_file(path, &keys)?,
    }
    Ok((id, loaded.source))
}

fn load_keychain(data_dir: &Path) -> Result<KeySet, String> {
    // Without a session bus, libdbus would autolaunch one (with a keyring daemon) that
    // outlives the shell: there is no keychain to use then, and nothing is started.
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none_or(|a| a.is_empty()) {
        return Err("there is no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set)".into());
    }
    let entry = entry(data_dir).map_err(|e| e.to_string())?;
    match entry.get_password() {
        Ok(text) => {
            KeySet::from_text(&text).map_err(|e| format!("the keychain entry is damaged: {e}"))
        }
        Err(keyring::Error::NoEntry) => {
            let keys = KeySet::generate();
            store_keychain(data_dir, &keys)?;
            tracing::info!("created the journal's key in the OS keychain");
            Ok(keys)
        }
        Err(e) => Err(e.to_string()),
    }
}

fn store_keychain(data_dir: &Path, keys: &KeySet) -> Result<(), String> {
    entry(data_dir)
        .and_then(|e| e.set_password(&keys.to_text()))
        .map_err(|e| format!("cannot store the journal's key in the keychain: {e}"))
}

fn load_file(path: &Path) -> Result<KeySet, String> {
    match fs::read_to_string(path) {
        Ok(text) => {
            let mode = fs::metadata(path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            if mode & 0o077 != 0 {
                return Err(format!(
                    "{} may be read by others (mode {mode:o}); make it 0600 (chmod 600)",
                    path.display()
                ));
            }
            KeySet::from_text(&text).map_err(|e| format!("{}: {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keys = KeySet::generate();
            write_file(path, &keys)?;
            Ok(keys)
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Writes the key file (0600) through a temporary file, so that a crash leaves the old
/// or the new set, never half of one.
fn write_file(path: &Path, keys: &KeySet) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(fail)?;
    }
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    file.write_all(keys.to_text().as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    fs::rename(&tmp, path).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_created_0600_rotated_and_refused_when_others_may_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = key_file(dir.path());
        let first = load_file(&file).unwrap();
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            load_file(&file).unwrap(),
            first,
            "read back, not made again"
        );
        let loaded = load(dir.path(), true).unwrap();
        assert_eq!(loaded.source, KeySource::KeyFile(file.clone()));
        let (id, source) = rotate(dir.path(), true).unwrap();
        assert_eq!((id, source), (2, KeySource::KeyFile(file.clone())));
        let rotated = load_file(&file).unwrap();
        assert_eq!(rotated.get(1), first.get(1), "the old key stays");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load_file(&file).unwrap_err().contains("chmod 600"));
    }
}
