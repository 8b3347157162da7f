//! Keeping the user's data usable when versions change in either direction.
//!
//! A data directory carries a marker, `data-format.json`: the format its files are in
//! and the version that wrote them. Each build knows the one format it reads and
//! writes. At a start (with the data directory locked, before anything reads it):
//!
//! - the same format: nothing to do — a version that keeps the format keeps the data
//!   readable by the versions before it, which is the rule for every release;
//! - an older format (a newer version's first start): the data is copied whole to
//!   `backups/format-N-from-VERSION/` before the caller migrates it;
//! - a newer format (a version rolled back to): the backup taken before that newer
//!   version migrated the data is put back, and the data as the newer version left it
//!   is set aside in `backups/format-N-set-aside-SECONDS/`, never deleted; with no such
//!   backup the start is refused, naming both folders, rather than read data it does
//!   not understand.
//!
//! Some folders are not data and never move: the caller names them (the audit log,
//! which only grows and whose anchors would flag a restored copy as a cut tail; logs;
//! the updater's own state; caches).

use std::path::{Path, PathBuf};

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::{error::UpdateError, state_file::write_atomically};

/// The marker's file name.
pub const MARKER: &str = "data-format.json";
/// Where backups are kept, inside the data directory.
pub const BACKUPS: &str = "backups";

/// What `data-format.json` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Marker {
    /// The format of the data.
    pub format: u32,
    /// The version that last wrote the marker.
    pub written_by: Version,
}

/// What [`prepare`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// The data directory had no marker (new, or from before markers): it has one now.
    Marked,
    /// The data is in this build's format.
    Current,
    /// The data was in an older format and is backed up: the caller migrates it now.
    BackedUp {
        /// The format it was in.
        from: u32,
        /// The backup.
        backup: PathBuf,
    },
    /// The data was in a newer format: the backup from before its migration is back.
    Restored {
        /// The backup put back.
        backup: PathBuf,
        /// Where the newer data was moved.
        set_aside: PathBuf,
    },
}

/// Makes the data directory readable by a build of `format` and `version`, leaving the
/// names in `not_data` where they are (see the module's documentation).
pub fn prepare(
    data_dir: &Path,
    format: u32,
    version: &Version,
    not_data: &[&str],
) -> Result<Prepared, UpdateError> {
    let marker_path = data_dir.join(MARKER);
    let ours = Marker {
        format,
        written_by: version.clone(),
    };
    let found = match std::fs::read(&marker_path) {
        Ok(bytes) => Some(
            serde_json::from_slice::<Marker>(&bytes)
                .map_err(|e| UpdateError::state(&marker_path, e))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(UpdateError::state(&marker_path, e)),
    };
    let excluded = |name: &str| name == BACKUPS || name == MARKER || not_data.contains(&name);
    let prepared = match found {
        None => Prepared::Marked,
        Some(found) if found.format == format => return Ok(Prepared::Current),
        Some(found) if found.format < format => {
            let backup = data_dir
                .join(BACKUPS)
                .join(format!("format-{}-from-{}", found.format, found.written_by));
            copy_data(data_dir, &backup, data_dir, &excluded)?;
            write_marker(&backup.join(MARKER), &found)?;
            Prepared::BackedUp {
                from: found.format,
                backup,
            }
        }
        Some(found) => {
            let Some(backup) = newest_backup(data_dir, format)? else {
                return Err(UpdateError::Settings(format!(
                    "the data in {} is in format {} (written by weft {}), newer than this weft \
                     {version} reads (format {format}), and no backup from before that version \
                     changed it is kept in {}; run weft {} again, or move the data folder aside",
                    data_dir.display(),
                    found.format,
                    found.written_by,
                    data_dir.join(BACKUPS).display(),
                    found.written_by
                )));
            };
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let set_aside = data_dir
                .join(BACKUPS)
                .join(format!("format-{}-set-aside-{secs}", found.format));
            move_data(data_dir, &set_aside, &excluded)?;
            write_marker(&set_aside.join(MARKER), &found)?;
            copy_data(&backup, data_dir, data_dir, &excluded)?;
            Prepared::Restored { backup, set_aside }
        }
    };
    write_marker(&marker_path, &ours)?;
    Ok(prepared)
}

fn write_marker(path: &Path, marker: &Marker) -> Result<(), UpdateError> {
    let bytes = serde_json::to_vec_pretty(marker).expect("serialising a plain struct");
    write_atomically(path, &bytes).map_err(|e| UpdateError::state(path, e))
}

/// The newest backup whose data is in `format`.
fn newest_backup(data_dir: &Path, format: u32) -> Result<Option<PathBuf>, UpdateError> {
    let dir = data_dir.join(BACKUPS);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(UpdateError::state(&dir, e)),
    };
    let mut best: Option<(Version, PathBuf)> = None;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(bytes) = std::fs::read(path.join(MARKER)) else {
            continue;
        };
        let Ok(marker) = serde_json::from_slice::<Marker>(&bytes) else {
            continue;
        };
        if marker.format == format
            && entry.file_name().to_string_lossy().contains("-from-")
            && best.as_ref().is_none_or(|(v, _)| marker.written_by > *v)
        {
            best = Some((marker.written_by, path));
        }
    }
    Ok(best.map(|(_, path)| path))
}

/// Copies every entry of `from` not excluded into `to` (files and folders; links as
/// links), each file synced; the copy is made whole in `backups/.staging` of `data_dir`
/// first, then moved into place.
fn copy_data(
    from: &Path,
    to: &Path,
    data_dir: &Path,
    excluded: &dyn Fn(&str) -> bool,
) -> Result<(), UpdateError> {
    let staging = data_dir.join(BACKUPS).join(".staging");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| UpdateError::state(&staging, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| UpdateError::state(from, e))? {
        let entry = entry.map_err(|e| UpdateError::state(from, e))?;
        let name = entry.file_name();
        if excluded(&name.to_string_lossy()) {
            continue;
        }
        copy_tree(&entry.path(), &staging.join(&name))?;
    }
    merge_into(&staging, to)
}

/// Moves the entries of `staging` into `to` (made if missing), then removes `staging`.
fn merge_into(staging: &Path, to: &Path) -> Result<(), UpdateError> {
    std::fs::create_dir_all(to).map_err(|e| UpdateError::state(to, e))?;
    for entry in std::fs::read_dir(staging).map_err(|e| UpdateError::state(staging, e))? {
        let entry = entry.map_err(|e| UpdateError::state(staging, e))?;
        let dest = to.join(entry.file_name());
        std::fs::rename(entry.path(), &dest).map_err(|e| UpdateError::state(&dest, e))?;
    }
    std::fs::remove_dir(staging).map_err(|e| UpdateError::state(staging, e))?;
    std::fs::File::open(to)
        .and_then(|d| d.sync_all())
        .map_err(|e| UpdateError::state(to, e))
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), UpdateError> {
    let meta = std::fs::symlink_metadata(from).map_err(|e| UpdateError::state(from, e))?;
    if meta.is_dir() {
        std::fs::create_dir_all(to).map_err(|e| UpdateError::state(to, e))?;
        for entry in std::fs::read_dir(from).map_err(|e| UpdateError::state(from, e))? {
            let entry = entry.map_err(|e| UpdateError::state(from, e))?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else if meta.is_symlink() {
        let target = std::fs::read_link(from).map_err(|e| UpdateError::state(from, e))?;
        std::os::unix::fs::symlink(target, to).map_err(|e| UpdateError::state(to, e))?;
    } else if meta.is_file() {
        std::fs::copy(from, to)
            .and_then(|_| std::fs::File::open(to)?.sync_all())
            .map_err(|e| UpdateError::state(to, e))?;
    }
    // Sockets and other special files are not data.
    Ok(())
}

/// Moves every entry of `from` not excluded into `to`.
fn move_data(from: &Path, to: &Path, excluded: &dyn Fn(&str) -> bool) -> Result<(), UpdateError> {
    std::fs::create_dir_all(to).map_err(|e| UpdateError::state(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| UpdateError::state(from, e))? {
        let entry = entry.map_err(|e| UpdateError::state(from, e))?;
        let name = entry.file_name();
        if excluded(&name.to_string_lossy()) {
            continue;
        }
        let dest = to.join(&name);
        std::fs::rename(entry.path(), &dest).map_err(|e| UpdateError::state(&dest, e))?;
    }
    std::fs::File::open(to)
        .and_then(|d| d.sync_all())
        .map_err(|e| UpdateError::state(to, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOT_DATA: &[&str] = &["audit", "updates"];

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn read(dir: &Path, name: &str) -> String {
        std::fs::read_to_string(dir.join(name)).unwrap()
    }

    #[test]
    fn a_new_format_backs_up_first_and_a_rollback_gets_the_backup_back() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        // 1.0.0 writes format 1.
        assert_eq!(
            prepare(data, 1, &v("1.0.0"), NOT_DATA).unwrap(),
            Prepared::Marked
        );
        std::fs::write(data.join("permissions.json"), "v1 answers").unwrap();
        std::fs::create_dir_all(data.join("layouts")).unwrap();
        std::fs::write(data.join("layouts/desk.json"), "v1 layout").unwrap();
        std::fs::create_dir_all(data.join("audit")).unwrap();
        std::fs::write(data.join("audit/0001.log"), "line 1\n").unwrap();
        assert_eq!(
            prepare(data, 1, &v("1.0.0"), NOT_DATA).unwrap(),
            Prepared::Current
        );

        // 2.0.0 reads format 2: the data is backed up before it migrates.
        let Prepared::BackedUp { from: 1, backup } =
            prepare(data, 2, &v("2.0.0"), NOT_DATA).unwrap()
        else {
            panic!("not backed up")
        };
        assert!(backup.ends_with("backups/format-1-from-1.0.0"));
        assert_eq!(read(&backup, "layouts/desk.json"), "v1 layout");
        assert!(!backup.join("audit").exists(), "the audit log is not data");
        // 2.0.0 migrates and writes.
        std::fs::write(data.join("permissions.json"), "v2 answers").unwrap();
        std::fs::write(data.join("only-in-v2.json"), "new").unwrap();
        std::fs::write(data.join("audit/0001.log"), "line 1\nline 2\n").unwrap();

        // Rolled back to 1.0.0: its data is back, 2.0.0's is kept aside, the audit
        // log went on untouched.
        let Prepared::Restored { set_aside, .. } = prepare(data, 1, &v("1.0.0"), NOT_DATA).unwrap()
        else {
            panic!("not restored")
        };
        assert_eq!(read(data, "permissions.json"), "v1 answers");
        assert_eq!(read(data, "layouts/desk.json"), "v1 layout");
        assert!(!data.join("only-in-v2.json").exists());
        assert_eq!(read(&set_aside, "permissions.json"), "v2 answers");
        assert_eq!(read(&set_aside, "only-in-v2.json"), "new");
        assert_eq!(read(data, "audit/0001.log"), "line 1\nline 2\n");
        assert_eq!(
            prepare(data, 1, &v("1.0.0"), NOT_DATA).unwrap(),
            Prepared::Current
        );
        let marker: Marker = serde_json::from_str(&read(data, MARKER)).unwrap();
        assert_eq!(marker.format, 1);
    }

    #[test]
    fn newer_data_without_a_backup_refuses_the_start_and_names_why() {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path(), 3, &v("3.0.0"), NOT_DATA).unwrap();
        std::fs::write(dir.path().join("permissions.json"), "v3").unwrap();
        let e = prepare(dir.path(), 1, &v("1.0.0"), NOT_DATA)
            .unwrap_err()
            .to_string();
        assert!(e.contains("format 3 (written by weft 3.0.0)"), "{e}");
        assert!(e.contains("no backup"), "{e}");
        assert_eq!(read(dir.path(), "permissions.json"), "v3", "nothing moved");
    }

    #[test]
    fn a_broken_marker_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MARKER), "{").unwrap();
        let e = prepare(dir.path(), 1, &v("1.0.0"), NOT_DATA)
            .unwrap_err()
            .to_string();
        assert!(e.contains(MARKER), "{e}");
    }
}
