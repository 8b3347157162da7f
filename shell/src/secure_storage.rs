//! Secure storage for apps (`weft.secureStorage`): each app's entries, sealed with
//! AES-256-GCM under a master key kept as [`master_keys`](crate::master_keys) keeps
//! keys (the OS keychain, or an opted-in 0600 file with `[secure_storage] key_file =
//! true`).
//!
//! One file per app, `secure-storage/<hash of the appId>.sealed`, holding all of its
//! entries (names included) as one sealed JSON object whose associated data is the
//! appId: a file copied over another app's does not open, and an app can only ever be
//! handed its own file — the caller's appId comes from the bus connection, not from
//! the page. Writes go through a temporary file and a rename.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
};

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use sha2::{Digest, Sha256};

use crate::{
    locking::lock,
    master_keys::{KeyPlace, KeySource},
    private_file,
};

/// Longest entry name, in bytes.
pub const MAX_KEY_LEN: usize = 256;
/// Largest value, as JSON text.
pub const MAX_VALUE_LEN: usize = 64 * 1024;
/// Most entries per app.
pub const MAX_ENTRIES: usize = 1000;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

/// Why a call failed; `code()` is what the page sees in `error.code`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StorageError {
    /// The page passed a bad name or value.
    #[error("{0}")]
    InvalidArgument(String),
    /// There is no key to seal with (no keychain, and no key file allowed).
    #[error("secure storage is unavailable: {0}")]
    Unavailable(String),
    /// The files cannot be read or written, or do not open with the key.
    #[error("secure storage failed: {0}")]
    Failed(String),
}

impl StorageError {
    /// The stable code pages see.
    pub fn code(&self) -> &'static str {
        match self {
            StorageError::InvalidArgument(_) => "InvalidArgument",
            StorageError::Unavailable(_) => "Unavailable",
            StorageError::Failed(_) => "StorageFailed",
        }
    }
}

type Entries = BTreeMap<String, serde_json::Value>;

/// The apps' sealed entries in one data directory.
pub struct SecureStorage {
    dir: PathBuf,
    place: KeyPlace,
    /// The cipher, made from the master key at first use (so that a desktop without
    /// a keychain is told only when an app asks for secure storage).
    cipher: OnceLock<Result<(Aes256Gcm, KeySource), String>>,
    /// One writer at a time (calls of different apps are rare and short).
    writing: Mutex<()>,
}

impl SecureStorage {
    /// The storage of `data_dir`; `allow_key_file` is `[secure_storage] key_file`.
    pub fn new(data_dir: &Path, allow_key_file: bool) -> SecureStorage {
        let dir = data_dir.join("secure-storage");
        SecureStorage {
            place: KeyPlace {
                what: "the secure storage's key",
                entry: format!("secure-storage {}", data_dir.display()),
                file: dir.join("key"),
                allow_file: allow_key_file,
                opt_in: "`key_file = true` under `[secure_storage]`",
            },
            dir,
            cipher: OnceLock::new(),
            writing: Mutex::new(()),
        }
    }

    fn cipher(&self) -> Result<&Aes256Gcm, StorageError> {
        let made = self.cipher.get_or_init(|| {
            let create = || {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).expect("the OS random source");
                hex::encode(key)
            };
            let parse = |text: &str| -> Result<[u8; 32], String> {
                let bytes = hex::decode(text.trim()).map_err(|e| e.to_string())?;
                bytes
                    .try_into()
                    .map_err(|_| "the key is not 32 bytes".to_owned())
            };
            self.place
                .load_or_create(create, parse)
                .map(|(key, source)| (Aes256Gcm::new((&key).into()), source))
        });
        match made {
            Ok((cipher, _)) => Ok(cipher),
            Err(why) => Err(StorageError::Unavailable(why.clone())),
        }
    }

    fn file(&self, app_id: &str) -> PathBuf {
        let hash = hex::encode(&Sha256::digest(app_id.as_bytes())[..16]);
        self.dir.join(format!("{hash}.sealed"))
    }

    fn read(&self, app_id: &str) -> Result<Entries, StorageError> {
        let file = self.file(app_id);
        let bytes = match fs::read(&file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Entries::new()),
            Err(e) => {
                return Err(StorageError::Failed(format!(
                    "reading {}: {e}",
                    file.display()
                )));
            }
        };
        let damaged = |why: &str| StorageError::Failed(format!("{} {why}", file.display()));
        let (version, rest) = bytes.split_first().ok_or_else(|| damaged("is empty"))?;
        if *version != VERSION || rest.len() < NONCE_LEN {
            return Err(damaged("is not a secure storage file of this version"));
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let plain = self
            .cipher()?
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: app_id.as_bytes(),
                },
            )
            .map_err(|_| {
                damaged("does not open with the key for this app (tampered, or another app's)")
            })?;
        serde_json::from_slice(&plain)
            .map_err(|e| damaged(&format!("holds unreadable entries: {e}")))
    }

    fn write(&self, app_id: &str, entries: &Entries) -> Result<(), StorageError> {
        let fail = |e: std::io::Error| {
            StorageError::Failed(format!("writing in {}: {e}", self.dir.display()))
        };
        let plain = serde_json::to_vec(entries).expect("JSON values serialise");
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the OS random source");
        let sealed = self
            .cipher()?
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: app_id.as_bytes(),
                },
            )
            .map_err(|_| StorageError::Failed("sealing failed".into()))?;
        let mut contents = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        contents.push(VERSION);
        contents.extend_from_slice(&nonce);
        contents.extend_from_slice(&sealed);
        private_file::replace(&self.file(app_id), &contents).map_err(fail)
    }

    /// The value of `key` for `app_id`.
    pub fn get(&self, app_id: &str, key: &str) -> Result<Option<serde_json::Value>, StorageError> {
        check_key(key)?;
        Ok(self.read(app_id)?.remove(key))
    }

    /// Sets `key` of `app_id` to `value`.
    pub fn set(
        &self,
        app_id: &str,
        key: &str,
        value: serde_json::Value,
    ) -> Result<(), StorageError> {
        check_key(key)?;
        let len = value.to_string().len();
        if len > MAX_VALUE_LEN {
            return Err(StorageError::InvalidArgument(format!(
                "the value is {len} bytes as JSON; at most {MAX_VALUE_LEN} are kept"
            )));
        }
        let _writing = lock(&self.writing);
        let mut entries = self.read(app_id)?;
        if !entries.contains_key(key) && entries.len() >= MAX_ENTRIES {
            return Err(StorageError::InvalidArgument(format!(
                "this app already keeps {MAX_ENTRIES} entries, the most there may be"
            )));
        }
        entries.insert(key.to_owned(), value);
        self.write(app_id, &entries)
    }

    /// Deletes `key` of `app_id`; whether it was there.
    pub fn delete(&self, app_id: &str, key: &str) -> Result<bool, StorageError> {
        check_key(key)?;
        let _writing = lock(&self.writing);
        let mut entries = self.read(app_id)?;
        let existed = entries.remove(key).is_some();
        if existed {
            self.write(app_id, &entries)?;
        }
        Ok(existed)
    }

    /// The names of `app_id`'s entries, sorted.
    pub fn keys(&self, app_id: &str) -> Result<Vec<String>, StorageError> {
        Ok(self.read(app_id)?.into_keys().collect())
    }
}

fn check_key(key: &str) -> Result<(), StorageError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(StorageError::InvalidArgument(format!(
            "an entry's name is 1 to {MAX_KEY_LEN} bytes long (this one is {})",
            key.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(dir: &Path) -> SecureStorage {
        let storage = SecureStorage::new(dir, true);
        // A key file written first, so that the test never reaches a real keychain.
        let key = hex::encode([7u8; 32]);
        storage
            .place
            .store(&key, &KeySource::KeyFile(storage.place.file.clone()))
            .unwrap();
        storage
    }

    #[test]
    fn each_app_reads_only_its_own_entries_which_are_sealed_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(dir.path());
        s.set("alpha", "token", serde_json::json!("s3cr3t-value"))
            .unwrap();
        s.set("alpha", "n", serde_json::json!(1)).unwrap();
        assert_eq!(
            s.get("alpha", "token").unwrap(),
            Some(serde_json::json!("s3cr3t-value"))
        );
        assert_eq!(s.get("beta", "token").unwrap(), None);
        assert_eq!(s.keys("alpha").unwrap(), ["n", "token"]);
        assert!(s.keys("beta").unwrap().is_empty());
        for entry in fs::read_dir(&s.dir).unwrap() {
            let bytes = fs::read(entry.unwrap().path()).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains("s3cr3t") && !text.contains("token"),
                "{text}"
            );
        }
        assert!(s.delete("alpha", "token").unwrap());
        assert!(!s.delete("alpha", "token").unwrap());
        assert_eq!(s.keys("alpha").unwrap(), ["n"]);
    }

    #[test]
    fn another_apps_file_copied_in_does_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(dir.path());
        s.set("alpha", "token", serde_json::json!("a")).unwrap();
        s.set("beta", "other", serde_json::json!("b")).unwrap();
        fs::copy(s.file("alpha"), s.file("beta")).unwrap();
        let e = s.get("beta", "token").unwrap_err();
        assert_eq!(e.code(), "StorageFailed");
        assert!(e.to_string().contains("does not open"), "{e}");
    }

    #[test]
    fn bad_names_and_values_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(dir.path());
        assert_eq!(s.get("a", "").unwrap_err().code(), "InvalidArgument");
        let long = "k".repeat(MAX_KEY_LEN + 1);
        assert_eq!(
            s.set("a", &long, serde_json::json!(1)).unwrap_err().code(),
            "InvalidArgument"
        );
        let big = serde_json::json!("x".repeat(MAX_VALUE_LEN));
        let e = s.set("a", "k", big).unwrap_err();
        assert!(e.to_string().contains("at most"), "{e}");
    }
}
