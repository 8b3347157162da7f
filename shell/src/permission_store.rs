//! The user's remembered answers — "Always allow" and "Always deny" — per app and API,
//! in `<data dir>/permissions.json` (replaced atomically on every change). Listed in the
//! panel's Permissions view and by `weft permissions list`; revoked there or with `weft
//! permissions revoke`, which takes effect at once in a running shell.

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use weft_permissions::{Answer, Api};

use crate::locking::lock;

/// One remembered answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Remembered {
    /// The app.
    pub app_id: String,
    /// The API.
    pub api: Api,
    /// What the user answered.
    pub answer: Answer,
    /// When, RFC 3339.
    pub at: String,
}

#[derive(Serialize, Deserialize)]
struct File {
    remembered: Vec<Remembered>,
}

/// Where the answers are kept.
pub fn file(data_dir: &Path) -> PathBuf {
    data_dir.join("permissions.json")
}

/// Reads the answers; none when the file does not exist.
pub fn load(file: &Path) -> anyhow::Result<Vec<Remembered>> {
    match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice::<File>(&bytes)
            .map(|f| f.remembered)
            .with_context(|| format!("reading the remembered permissions in {}", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
        Err(e) => Err(e).with_context(|| format!("reading {}", file.display())),
    }
}

/// Writes the answers, whole or not at all.
pub fn save(file: &Path, remembered: &[Remembered]) -> anyhow::Result<()> {
    let body = serde_json::to_vec_pretty(&File {
        remembered: remembered.to_vec(),
    })?;
    crate::private_file::replace(file, &body).with_context(|| format!("writing {}", file.display()))
}

/// The answers in force in a running shell.
pub struct PermissionStore {
    file: PathBuf,
    remembered: Mutex<Vec<Remembered>>,
}

impl PermissionStore {
    /// Reads the answers of `data_dir`.
    pub fn open(data_dir: &Path) -> anyhow::Result<PermissionStore> {
        let file = file(data_dir);
        Ok(PermissionStore {
            remembered: Mutex::new(load(&file)?),
            file,
        })
    }

    /// Every answer, in the order given.
    pub fn list(&self) -> Vec<Remembered> {
        lock(&self.remembered).clone()
    }

    /// The answer remembered for `app_id` and `api`.
    pub fn answer_for(&self, app_id: &str, api: Api) -> Option<Answer> {
        lock(&self.remembered)
            .iter()
            .find(|r| r.app_id == app_id && r.api == api)
            .map(|r| r.answer)
    }

    /// Remembers an answer, replacing any earlier one for the app and API.
    pub fn remember(&self, app_id: &str, api: Api, answer: Answer) -> anyhow::Result<()> {
        let mut remembered = lock(&self.remembered);
        remembered.retain(|r| !(r.app_id == app_id && r.api == api));
        remembered.push(Remembered {
            app_id: app_id.to_owned(),
            api,
            answer,
            at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        });
        save(&self.file, &remembered)
    }

    /// Forgets the answers for `app_id` (for `api` only, when given); returns those
    /// forgotten.
    pub fn revoke(&self, app_id: &str, api: Option<Api>) -> anyhow::Result<Vec<Remembered>> {
        let mut remembered = lock(&self.remembered);
        let (gone, kept): (Vec<_>, Vec<_>) = remembered
            .drain(..)
            .partition(|r| r.app_id == app_id && api.is_none_or(|a| a == r.api));
        *remembered = kept;
        if !gone.is_empty() {
            save(&self.file, &remembered)?;
        }
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_remembered_replaced_revoked_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = PermissionStore::open(dir.path()).unwrap();
        assert_eq!(store.answer_for("a", Api::SecureStorage), None);
        store
            .remember("a", Api::SecureStorage, Answer::AlwaysDeny)
            .unwrap();
        store
            .remember("a", Api::SecureStorage, Answer::AlwaysAllow)
            .unwrap();
        store
            .remember("b", Api::SecureStorage, Answer::AlwaysDeny)
            .unwrap();
        let again = PermissionStore::open(dir.path()).unwrap();
        assert_eq!(
            again.answer_for("a", Api::SecureStorage),
            Some(Answer::AlwaysAllow)
        );
        assert_eq!(again.list().len(), 2);
        let gone = again.revoke("a", None).unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!(again.answer_for("a", Api::SecureStorage), None);
        assert_eq!(load(&file(dir.path())).unwrap().len(), 1);
        std::fs::write(file(dir.path()), "{not json").unwrap();
        let e = PermissionStore::open(dir.path()).err().unwrap();
        assert!(format!("{e:#}").contains("permissions.json"), "{e:#}");
    }
}
