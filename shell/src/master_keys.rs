//! Where Weft keeps a master key (the journal's key set, the secure storage's key):
//! the OS keychain (Secret Service on Linux, through the `keyring` crate), or — only
//! when the user opts in — a file readable by its owner alone.
//!
//! Without either, what needs the key is refused: nothing is ever sealed with a key
//! kept nowhere safe.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use crate::private_file;

/// The keychain service name entries are kept under.
const SERVICE: &str = "weft";

/// Where a key was found or made.
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

/// One master key's places: its keychain entry and its opt-in file.
pub struct KeyPlace {
    /// What the key is, for messages ("the journal's key").
    pub what: &'static str,
    /// The keychain entry's name (one per data directory).
    pub entry: String,
    /// The file used when the user allows it.
    pub file: PathBuf,
    /// Whether the user allows the file.
    pub allow_file: bool,
    /// The setting that allows it, for messages (`key_file = true` under `[journal]`).
    pub opt_in: &'static str,
}

impl KeyPlace {
    /// The key's text, made with `create` and stored on first use; `parse` checks text
    /// read back.
    pub fn load_or_create<T>(
        &self,
        create: impl Fn() -> String,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<(T, KeySource), String> {
        if self.allow_file && self.file.exists() {
            return self
                .load_file(&create, &parse)
                .map(|key| (key, KeySource::KeyFile(self.file.clone())));
        }
        match self.load_keychain(&create, &parse) {
            Ok(key) => Ok((key, KeySource::Keychain)),
            Err(why) if self.allow_file => {
                tracing::warn!(
                    "no keychain ({why}): {} is kept in {}, as config.toml allows; anyone \
                     who can read that file can read what it protects",
                    self.what,
                    self.file.display()
                );
                let key = self.load_file(&create, &parse)?;
                Ok((key, KeySource::KeyFile(self.file.clone())))
            }
            Err(why) => Err(format!(
                "no keychain is available to keep {} ({why}); to keep it in a file \
                 readable only by you instead, set {} in config.toml",
                self.what, self.opt_in
            )),
        }
    }

    /// Replaces the key's text where it was found.
    pub fn store(&self, text: &str, source: &KeySource) -> Result<(), String> {
        match source {
            KeySource::Keychain => self.store_keychain(text),
            KeySource::KeyFile(path) => write_file(path, text),
        }
    }

    fn load_keychain<T>(
        &self,
        create: &impl Fn() -> String,
        parse: &impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, String> {
        // Without a session bus, libdbus would autolaunch one (with a keyring daemon)
        // that outlives the shell: there is no keychain to use then, and nothing starts.
        if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none_or(|a| a.is_empty()) {
            return Err(
                "there is no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set)".into(),
            );
        }
        let entry = keyring::Entry::new(SERVICE, &self.entry).map_err(|e| e.to_string())?;
        match entry.get_password() {
            Ok(text) => parse(&text).map_err(|e| format!("the keychain entry is damaged: {e}")),
            Err(keyring::Error::NoEntry) => {
                let text = create();
                self.store_keychain(&text)?;
                tracing::info!("created {} in the OS keychain", self.what);
                parse(&text)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn store_keychain(&self, text: &str) -> Result<(), String> {
        keyring::Entry::new(SERVICE, &self.entry)
            .and_then(|e| e.set_password(text))
            .map_err(|e| format!("cannot store {} in the keychain: {e}", self.what))
    }

    fn load_file<T>(
        &self,
        create: &impl Fn() -> String,
        parse: &impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, String> {
        let path = &self.file;
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
                parse(&text).map_err(|e| format!("{}: {e}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let text = create();
                write_file(path, &text)?;
                parse(&text)
            }
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }
}

/// Writes a key file (0600), whole or not at all.
fn write_file(path: &Path, text: &str) -> Result<(), String> {
    private_file::replace(path, text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
