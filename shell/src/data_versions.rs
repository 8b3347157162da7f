//! The format of the data directory this build reads and writes, and what a start does
//! when the data was left by a version that used another (see
//! `weft_updater::data_format`): back it up before a migration, or put the backup from
//! before a newer version's migration back after a rollback.

use std::path::Path;

use anyhow::Context;
use weft_updater::data_format::{self, Prepared};

use crate::audit_trail::AuditTrail;

/// The format of the files in the data directory. Raise it in the release that changes
/// any of them so that the previous release could no longer read them, and migrate
/// right after [`prepare`] returns [`Prepared::BackedUp`].
pub const DATA_FORMAT: u32 = 1;

/// What in the data directory is not the user's data and never moves: the audit log
/// (it only grows, and its anchors would flag a restored copy as a cut tail), app logs,
/// the updater's own state, and WebKit's caches and storage, whose format is WebKit's.
pub const NOT_DATA: &[&str] = &["audit", "logs", "updates", "webdata"];

/// Makes the data directory readable by this build; the caller holds its lock and
/// nothing has read it yet. What was done, for the audit log once it is open.
pub fn prepare(data_dir: &Path) -> anyhow::Result<Prepared> {
    let version = crate::update_command::installed();
    data_format::prepare(data_dir, DATA_FORMAT, &version, NOT_DATA)
        .with_context(|| format!("preparing the data in {}", data_dir.display()))
}

/// Records a backup or a restore in the audit log, and says so in the log.
pub fn record(prepared: &Prepared, audit: &AuditTrail) {
    match prepared {
        Prepared::Marked | Prepared::Current => {}
        Prepared::BackedUp { from, backup } => {
            tracing::info!(
                "the data was in format {from}; backed up to {} before this version uses \
                 format {DATA_FORMAT}",
                backup.display()
            );
            audit.record(
                "update.dataBackedUp",
                serde_json::json!({"from": from, "to": DATA_FORMAT, "backup": backup}),
            );
        }
        Prepared::Restored { backup, set_aside } => {
            tracing::warn!(
                "the data was in a newer format than this version reads: the backup {} is \
                 back, and the newer data is kept in {}",
                backup.display(),
                set_aside.display()
            );
            audit.record(
                "update.dataRestored",
                serde_json::json!({"backup": backup, "setAside": set_aside, "format": DATA_FORMAT}),
            );
        }
    }
}
