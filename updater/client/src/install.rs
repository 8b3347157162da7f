//! Versions side by side, and the steps between them, so that at any moment exactly one
//! complete version is the current one.
//!
//! ```text
//! ROOT/versions/1.4.0/{weft, weft-app, …}   each version whole, in its own folder
//! ROOT/current -> versions/1.4.0            the version a start runs (a symlink, switched
//!                                           by renaming a new link over it: atomic)
//! ROOT/state.json                           current, the two kept before it, the version
//!                                           on trial, the versions refused
//! ROOT/journal.json                         the step in progress, if any
//! ```
//!
//! Every step is written to the journal (temporary file, fsync, rename, fsync of the
//! folder) before it is taken; [`Installation::open`] finishes or undoes whatever a
//! crash interrupted: a version still being unpacked is removed, a switch under way is
//! completed. A running shell keeps running from its own version folder (and starts
//! `weft-app` from there); the new version takes over at the next start.
//!
//! A new version runs on trial: each start counts ([`Installation::begin_start`]) until
//! it reports itself healthy ([`Installation::mark_healthy`]); after
//! [`TRIAL_STARTS`] starts without that, the next start switches back to the previous
//! version and refuses the failed one, which is not offered again.

use std::{
    collections::BTreeSet,
    io::Write,
    path::{Path, PathBuf},
};

use semver::Version;
use serde::{Deserialize, Serialize};
use weft_update_repo::archive::{Files, valid_name};

use crate::{error::UpdateError, state_file::write_atomically};

/// Starts a new version gets to report itself healthy.
pub const TRIAL_STARTS: u32 = 3;
/// Earlier versions kept for rollback.
pub const KEEP_PREVIOUS: usize = 2;

/// A step of an install, as the optional hook sees it (before the step is taken).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Step {
    /// Writing the journal.
    Journal,
    /// Writing the version's files.
    Unpack,
    /// Switching `current` to it.
    Switch,
    /// Recording the new state.
    Record,
    /// Removing versions no longer kept.
    Cleanup,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 5] = [
        Step::Journal,
        Step::Unpack,
        Step::Switch,
        Step::Record,
        Step::Cleanup,
    ];
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct State {
    current: Option<Version>,
    /// Newest first.
    previous: Vec<Version>,
    trial: Option<Trial>,
    refused: BTreeSet<Version>,
}

impl State {
    fn status(&self) -> Status {
        Status {
            current: self.current.clone(),
            previous: self.previous.clone(),
            trial: self.trial.clone(),
            refused: self.refused.clone(),
        }
    }
}

/// The install's lock, taken within [`LOCK_WAIT`].
fn lock_install(root: &Path) -> Result<std::fs::File, UpdateError> {
    let path = root.join("install.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| UpdateError::state(&path, e))?;
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(UpdateError::state(
                    &path,
                    "another weft has been changing this install for 30 s; try again once it is done",
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(UpdateError::state(&path, e)),
        }
    }
}

/// A version on trial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trial {
    /// The version.
    pub version: Version,
    /// Starts it has had without reporting healthy.
    pub starts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
enum Journal {
    /// Installing `version`; `unpacked` once its folder is complete.
    Install { version: Version, unpacked: bool },
    /// Switching back to `to` (rollback or a failed trial), refusing `refuse`.
    Revert {
        to: Version,
        refuse: Option<Version>,
    },
}

/// What the install looks like now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The version a start runs.
    pub current: Option<Version>,
    /// The versions kept to roll back to, newest first.
    pub previous: Vec<Version>,
    /// The version on trial, if any.
    pub trial: Option<Trial>,
    /// Versions rolled back, never offered again.
    pub refused: BTreeSet<Version>,
}

/// What a start should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartCheck {
    /// Run: this version is trusted (or not managed by this install).
    Run,
    /// Run on trial: this is start number `start` of [`TRIAL_STARTS`].
    Trial {
        /// Which start this is, from 1.
        start: u32,
    },
    /// The version failed its trial and was switched back: run `to` instead.
    Reverted {
        /// The version now current.
        to: Version,
        /// Its `weft` binary.
        binary: PathBuf,
    },
}

/// What [`Installation::open`] did about an interrupted step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// An install of `version` was finished.
    Finished(Version),
    /// An install of `version` was undone.
    Undone(Version),
    /// A switch back to `to` was finished.
    Reverted(Version),
}

/// How long [`Installation::open`] waits for another process (or thread) changing the
/// same install to finish.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// An install root, open for changes: while it is, no other [`Installation`] of the
/// same root can be opened (an exclusive lock on `ROOT/install.lock`), so a background
/// update, `weft update` and a start never interleave their steps.
#[derive(Debug)]
pub struct Installation {
    root: PathBuf,
    state: State,
    _lock: std::fs::File,
}

impl Installation {
    /// Opens (creating) the install at `root`, finishing or undoing an interrupted step;
    /// waits up to 30 s for another holder of the install to let go.
    pub fn open(root: &Path) -> Result<(Installation, Option<Recovered>), UpdateError> {
        std::fs::create_dir_all(root.join("versions")).map_err(|e| UpdateError::state(root, e))?;
        let lock = lock_install(root)?;
        let mut install = Installation {
            root: root.to_owned(),
            state: read_state(root)?,
            _lock: lock,
        };
        let recovered = install.recover()?;
        Ok((install, recovered))
    }

    /// What the install at `root` looks like, read without changing anything (no
    /// recovery): for views that only show it.
    pub fn peek(root: &Path) -> Result<Status, UpdateError> {
        Ok(read_state(root)?.status())
    }

    /// What the install looks like.
    pub fn status(&self) -> Status {
        self.state.status()
    }

    /// The folder of `version`.
    pub fn version_dir(&self, version: &Version) -> PathBuf {
        self.root.join("versions").join(version.to_string())
    }

    /// The `current` link.
    pub fn current_link(&self) -> PathBuf {
        self.root.join("current")
    }

    /// The files of an installed version (the base a delta applies to).
    pub fn files_of(&self, version: &Version) -> Result<Files, UpdateError> {
        let dir = self.version_dir(version);
        let mut files = Files::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| UpdateError::state(&dir, e))? {
            let entry = entry.map_err(|e| UpdateError::state(&dir, e))?;
            let path = entry.path();
            let meta = entry.metadata().map_err(|e| UpdateError::state(&path, e))?;
            let bytes = std::fs::read(&path).map_err(|e| UpdateError::state(&path, e))?;
            use std::os::unix::fs::PermissionsExt;
            files.insert(
                entry.file_name().to_string_lossy().into_owned(),
                (bytes, meta.permissions().mode() & 0o111 != 0),
            );
        }
        Ok(files)
    }

    /// Installs `version` with `files` and makes it current, on trial. `hook` sees each
    /// step before it is taken.
    pub fn install(
        &mut self,
        version: &Version,
        files: &Files,
        hook: &mut dyn FnMut(Step),
    ) -> Result<(), UpdateError> {
        if self.state.current.as_ref() == Some(version) {
            return Err(UpdateError::Settings(format!(
                "{version} is already the current version"
            )));
        }
        for name in files.keys() {
            if !valid_name(name) {
                return Err(UpdateError::Artifact {
                    name: name.clone(),
                    reason: "a release's files have plain names".into(),
                });
            }
        }
        hook(Step::Journal);
        self.write_journal(&Journal::Install {
            version: version.clone(),
            unpacked: false,
        })?;
        hook(Step::Unpack);
        self.unpack(version, files)?;
        self.write_journal(&Journal::Install {
            version: version.clone(),
            unpacked: true,
        })?;
        hook(Step::Switch);
        self.switch(version)?;
        hook(Step::Record);
        self.record_install(version)?;
        hook(Step::Cleanup);
        self.cleanup()?;
        self.remove_journal()
    }

    /// Counts a start of `running`: whether it runs, runs on trial, or was reverted.
    pub fn begin_start(&mut self, running: &Version) -> Result<StartCheck, UpdateError> {
        let Some(trial) = self.state.trial.clone() else {
            return Ok(StartCheck::Run);
        };
        if &trial.version != running {
            return Ok(StartCheck::Run);
        }
        if trial.starts >= TRIAL_STARTS {
            let to = self.state.previous.first().cloned().ok_or_else(|| {
                UpdateError::Settings(format!(
                    "{running} failed its trial and no earlier version is kept"
                ))
            })?;
            self.revert(&to, Some(running.clone()))?;
            return Ok(StartCheck::Reverted {
                binary: self.version_dir(&to).join("weft"),
                to,
            });
        }
        let start = trial.starts + 1;
        self.state.trial = Some(Trial {
            version: trial.version,
            starts: start,
        });
        self.save_state()?;
        Ok(StartCheck::Trial { start })
    }

    /// `version` reported itself healthy: it is trusted from now on.
    pub fn mark_healthy(&mut self, version: &Version) -> Result<bool, UpdateError> {
        if self
            .state
            .trial
            .as_ref()
            .is_some_and(|t| &t.version == version)
        {
            self.state.trial = None;
            self.save_state()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Switches back to the newest kept earlier version (the user's one-click rollback);
    /// the version left is refused. The version now current.
    pub fn rollback(&mut self) -> Result<Version, UpdateError> {
        let to = self.state.previous.first().cloned().ok_or_else(|| {
            UpdateError::Settings("there is no earlier version to roll back to".into())
        })?;
        let from = self.state.current.clone();
        self.revert(&to, from)?;
        Ok(to)
    }

    fn revert(&mut self, to: &Version, refuse: Option<Version>) -> Result<(), UpdateError> {
        self.write_journal(&Journal::Revert {
            to: to.clone(),
            refuse: refuse.clone(),
        })?;
        self.switch(to)?;
        self.record_revert(to, refuse)?;
        self.remove_journal()
    }

    fn recover(&mut self) -> Result<Option<Recovered>, UpdateError> {
        let path = self.root.join("journal.json");
        let journal: Journal = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| UpdateError::state(&path, e))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.remove_stray_unpacks();
                return Ok(None);
            }
            Err(e) => return Err(UpdateError::state(&path, e)),
        };
        let recovered = match journal {
            Journal::Install {
                version,
                unpacked: true,
            } => {
                self.switch(&version)?;
                if self.state.current.as_ref() != Some(&version) {
                    self.record_install(&version)?;
                }
                self.cleanup()?;
                Recovered::Finished(version)
            }
            Journal::Install {
                version,
                unpacked: false,
            } => {
                let _ = std::fs::remove_dir_all(self.unpack_dir(&version));
                let _ = std::fs::remove_dir_all(self.version_dir(&version));
                Recovered::Undone(version)
            }
            Journal::Revert { to, refuse } => {
                self.switch(&to)?;
                if self.state.current.as_ref() != Some(&to) {
                    self.record_revert(&to, refuse)?;
                }
                Recovered::Reverted(to)
            }
        };
        self.remove_journal()?;
        self.remove_stray_unpacks();
        Ok(Some(recovered))
    }

    fn unpack_dir(&self, version: &Version) -> PathBuf {
        self.root
            .join("versions")
            .join(format!(".{version}.unpacking"))
    }

    fn remove_stray_unpacks(&self) {
        if let Ok(entries) = std::fs::read_dir(self.root.join("versions")) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().ends_with(".unpacking") {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
    }

    /// Writes the version's files into a folder of their own, synced, then renames it
    /// into place whole.
    fn unpack(&self, version: &Version, files: &Files) -> Result<(), UpdateError> {
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = self.unpack_dir(version);
        let dest = self.version_dir(version);
        let _ = std::fs::remove_dir_all(&tmp);
        if dest.exists() {
            // Left by a version installed before and since removed from the state.
            std::fs::remove_dir_all(&dest).map_err(|e| UpdateError::state(&dest, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| UpdateError::state(&tmp, e))?;
        for (name, (bytes, executable)) in files {
            let path = tmp.join(name);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(if *executable { 0o755 } else { 0o644 })
                .open(&path)
                .map_err(|e| UpdateError::state(&path, e))?;
            file.write_all(bytes)
                .and_then(|()| file.sync_all())
                .map_err(|e| UpdateError::state(&path, e))?;
        }
        sync_dir(&tmp)?;
        std::fs::rename(&tmp, &dest).map_err(|e| UpdateError::state(&dest, e))?;
        sync_dir(&self.root.join("versions"))
    }

    /// Points `current` at `version`: a new link renamed over the old one.
    fn switch(&self, version: &Version) -> Result<(), UpdateError> {
        let link = self.current_link();
        let next = self.root.join(".current.next");
        let _ = std::fs::remove_file(&next);
        let target = Path::new("versions").join(version.to_string());
        std::os::unix::fs::symlink(&target, &next).map_err(|e| UpdateError::state(&next, e))?;
        std::fs::rename(&next, &link).map_err(|e| UpdateError::state(&link, e))?;
        sync_dir(&self.root)
    }

    fn record_install(&mut self, version: &Version) -> Result<(), UpdateError> {
        if let Some(old) = self.state.current.take() {
            self.state.previous.retain(|v| v != &old && v != version);
            self.state.previous.insert(0, old);
        }
        self.state.current = Some(version.clone());
        self.state.trial = Some(Trial {
            version: version.clone(),
            starts: 0,
        });
        self.save_state()
    }

    fn record_revert(&mut self, to: &Version, refuse: Option<Version>) -> Result<(), UpdateError> {
        self.state.previous.retain(|v| v != to);
        if let Some(bad) = refuse {
            self.state.previous.retain(|v| v != &bad);
            self.state.refused.insert(bad);
        }
        self.state.current = Some(to.clone());
        self.state.trial = None;
        self.save_state()
    }

    /// Removes the folders of versions neither current nor kept.
    fn cleanup(&mut self) -> Result<(), UpdateError> {
        self.state.previous.truncate(KEEP_PREVIOUS);
        self.save_state()?;
        let keep: BTreeSet<String> = self
            .state
            .current
            .iter()
            .chain(&self.state.previous)
            .map(Version::to_string)
            .collect();
        let dir = self.root.join("versions");
        for entry in std::fs::read_dir(&dir)
            .map_err(|e| UpdateError::state(&dir, e))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && !keep.contains(&name) {
                std::fs::remove_dir_all(entry.path())
                    .map_err(|e| UpdateError::state(&entry.path(), e))?;
            }
        }
        Ok(())
    }

    fn save_state(&self) -> Result<(), UpdateError> {
        let path = self.root.join("state.json");
        let bytes = serde_json::to_vec_pretty(&self.state).expect("the state serialises");
        write_atomically(&path, &bytes).map_err(|e| UpdateError::state(&path, e))
    }

    fn write_journal(&self, journal: &Journal) -> Result<(), UpdateError> {
        let path = self.root.join("journal.json");
        let bytes = serde_json::to_vec(journal).expect("the journal serialises");
        write_atomically(&path, &bytes).map_err(|e| UpdateError::state(&path, e))
    }

    fn remove_journal(&self) -> Result<(), UpdateError> {
        let path = self.root.join("journal.json");
        match std::fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.root),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(UpdateError::state(&path, e)),
        }
    }
}

/// The state kept at `root`; empty when there is none yet.
fn read_state(root: &Path) -> Result<State, UpdateError> {
    let path = root.join("state.json");
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| UpdateError::state(&path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(UpdateError::state(&path, e)),
    }
}

fn sync_dir(dir: &Path) -> Result<(), UpdateError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| UpdateError::state(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn files(version: &str) -> Files {
        Files::from([
            (
                "weft".to_owned(),
                (format!("#!/bin/sh\necho {version}\n").into_bytes(), true),
            ),
            ("README".to_owned(), (b"notes".to_vec(), false)),
        ])
    }

    fn link(install: &Installation) -> String {
        std::fs::read_link(install.current_link())
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    fn installed(root: &Path, versions: &[&str]) -> Installation {
        let (mut install, recovered) = Installation::open(root).unwrap();
        assert_eq!(recovered, None);
        for version in versions {
            install
                .install(&v(version), &files(version), &mut |_| {})
                .unwrap();
            install.mark_healthy(&v(version)).unwrap();
        }
        install
    }

    #[test]
    fn versions_sit_side_by_side_with_two_kept_and_current_switched() {
        let dir = tempfile::tempdir().unwrap();
        let install = installed(dir.path(), &["1.0.0", "1.1.0", "1.2.0", "1.3.0"]);
        let status = install.status();
        assert_eq!(status.current, Some(v("1.3.0")));
        assert_eq!(status.previous, [v("1.2.0"), v("1.1.0")]);
        assert_eq!(link(&install), "versions/1.3.0");
        let mut kept: Vec<String> = std::fs::read_dir(dir.path().join("versions"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        kept.sort();
        assert_eq!(kept, ["1.1.0", "1.2.0", "1.3.0"]);
        let back = install.files_of(&v("1.2.0")).unwrap();
        assert_eq!(back, files("1.2.0"), "files and their modes read back");
        // Reopening finds the same state, and nothing to recover.
        drop(install);
        let (again, recovered) = Installation::open(dir.path()).unwrap();
        assert_eq!((again.status(), recovered), (status, None));
    }

    #[test]
    fn a_version_that_never_reports_healthy_is_reverted_after_its_trial_starts_and_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut install = installed(dir.path(), &["1.0.0"]);
        install
            .install(&v("2.0.0"), &files("2.0.0"), &mut |_| {})
            .unwrap();
        assert_eq!(
            install.begin_start(&v("1.0.0")).unwrap(),
            StartCheck::Run,
            "another version"
        );
        for start in 1..=TRIAL_STARTS {
            assert_eq!(
                install.begin_start(&v("2.0.0")).unwrap(),
                StartCheck::Trial { start }
            );
            // Counted on disk: a crash right after loses nothing.
            drop(install);
            install = Installation::open(dir.path()).unwrap().0;
        }
        let StartCheck::Reverted { to, binary } = install.begin_start(&v("2.0.0")).unwrap() else {
            panic!("not reverted")
        };
        assert_eq!(to, v("1.0.0"));
        assert!(binary.ends_with("versions/1.0.0/weft"));
        let status = install.status();
        assert_eq!(status.current, Some(v("1.0.0")));
        assert!(status.refused.contains(&v("2.0.0")));
        assert_eq!(status.trial, None);
        assert_eq!(link(&install), "versions/1.0.0");
        assert_eq!(install.begin_start(&v("1.0.0")).unwrap(), StartCheck::Run);
    }

    #[test]
    fn a_healthy_version_stays_and_one_click_rolls_back_to_the_previous() {
        let dir = tempfile::tempdir().unwrap();
        let mut install = installed(dir.path(), &["1.0.0"]);
        install
            .install(&v("2.0.0"), &files("2.0.0"), &mut |_| {})
            .unwrap();
        assert_eq!(
            install.begin_start(&v("2.0.0")).unwrap(),
            StartCheck::Trial { start: 1 }
        );
        assert!(install.mark_healthy(&v("2.0.0")).unwrap());
        for _ in 0..=TRIAL_STARTS {
            assert_eq!(install.begin_start(&v("2.0.0")).unwrap(), StartCheck::Run);
        }
        assert_eq!(install.rollback().unwrap(), v("1.0.0"));
        assert_eq!(link(&install), "versions/1.0.0");
        assert!(install.status().refused.contains(&v("2.0.0")));
        let e = install.rollback().unwrap_err().to_string();
        assert!(e.contains("no earlier version"), "{e}");
    }

    #[test]
    fn an_install_interrupted_before_its_files_are_whole_is_undone_and_after_finished() {
        let dir = tempfile::tempdir().unwrap();
        let install = installed(dir.path(), &["1.0.0"]);
        // Interrupted while unpacking: the journal says so, a half folder is left.
        install
            .write_journal(&Journal::Install {
                version: v("2.0.0"),
                unpacked: false,
            })
            .unwrap();
        std::fs::create_dir_all(install.unpack_dir(&v("2.0.0"))).unwrap();
        drop(install);
        let (install, recovered) = Installation::open(dir.path()).unwrap();
        assert_eq!(recovered, Some(Recovered::Undone(v("2.0.0"))));
        assert_eq!(install.status().current, Some(v("1.0.0")));
        assert!(!install.unpack_dir(&v("2.0.0")).exists());
        // Interrupted after unpacking, before the switch: finished.
        install.unpack(&v("2.0.0"), &files("2.0.0")).unwrap();
        install
            .write_journal(&Journal::Install {
                version: v("2.0.0"),
                unpacked: true,
            })
            .unwrap();
        drop(install);
        let (install, recovered) = Installation::open(dir.path()).unwrap();
        assert_eq!(recovered, Some(Recovered::Finished(v("2.0.0"))));
        assert_eq!(link(&install), "versions/2.0.0");
        assert_eq!(install.status().previous, [v("1.0.0")]);
        assert_eq!(install.status().trial.map(|t| t.version), Some(v("2.0.0")));
    }

    #[test]
    fn one_holder_at_a_time_changes_an_install() {
        let dir = tempfile::tempdir().unwrap();
        let install = installed(dir.path(), &["1.0.0"]);
        let root = dir.path().to_owned();
        let (opened_tx, opened_rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let (second, _) = Installation::open(&root).unwrap();
            opened_tx.send(second.status().current).unwrap();
        });
        assert!(
            opened_rx
                .recv_timeout(std::time::Duration::from_millis(300))
                .is_err(),
            "a second holder waits while the first has the install"
        );
        assert_eq!(
            Installation::peek(dir.path()).unwrap().current,
            Some(v("1.0.0")),
            "reading needs no lock"
        );
        drop(install);
        assert_eq!(
            opened_rx
                .recv_timeout(std::time::Duration::from_secs(30))
                .unwrap(),
            Some(v("1.0.0"))
        );
        waiter.join().unwrap();
    }
}
