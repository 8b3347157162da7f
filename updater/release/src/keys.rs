//! The publisher's signing keys: one Ed25519 key (PKCS#8, mode 0600) per file in a key
//! folder — three root keys of which any two sign the root, and one key each for the
//! targets, snapshot and timestamp roles. See `docs/releasing.md` for where each lives.

use std::{
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use tough::{
    key_source::{KeySource, LocalKeySource},
    schema::key::Key,
    sign::{Sign, parse_keypair},
};

/// The root role's keys, by file name.
pub const ROOT_KEYS: [&str; 3] = ["root-1", "root-2", "root-3"];
/// How many root keys must sign a root.
pub const ROOT_THRESHOLD: u64 = 2;
/// The other roles' keys, by file name.
pub const ROLE_KEYS: [&str; 3] = ["targets", "snapshot", "timestamp"];

/// A folder of keys.
#[derive(Debug, Clone)]
pub struct KeyDir {
    dir: PathBuf,
}

impl KeyDir {
    /// The keys in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> KeyDir {
        KeyDir { dir: dir.into() }
    }

    /// The file of key `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pk8"))
    }

    /// Makes every key that is missing (never replacing one); the names made.
    pub fn generate_missing(&self) -> anyhow::Result<Vec<String>> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let mut made = Vec::new();
        for name in ROOT_KEYS.iter().chain(ROLE_KEYS.iter()) {
            let path = self.path(name);
            if path.exists() {
                continue;
            }
            let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| anyhow::anyhow!("cannot generate an Ed25519 key"))?;
            write_private(&path, pkcs8.as_ref())?;
            made.push((*name).to_owned());
        }
        Ok(made)
    }

    /// Key `name` for signing with `tough`.
    pub fn source(&self, name: &str) -> anyhow::Result<Box<dyn KeySource>> {
        let path = self.path(name);
        if !path.is_file() {
            bail!("the key {} is missing", path.display());
        }
        Ok(Box::new(LocalKeySource { path }))
    }

    /// The public half of key `name`, as TUF metadata names it.
    pub fn public(&self, name: &str) -> anyhow::Result<Key> {
        Ok(self.signer(name)?.tuf_key())
    }

    fn signer(&self, name: &str) -> anyhow::Result<impl Sign> {
        let path = self.path(name);
        let bytes =
            std::fs::read(&path).with_context(|| format!("reading the key {}", path.display()))?;
        parse_keypair(&bytes)
            .map_err(|e| anyhow::anyhow!("the key {} is not usable: {e}", path.display()))
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}
