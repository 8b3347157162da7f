//! The running shell's updater: checks the repository on a schedule with jitter and,
//! unless `updates.auto_install` is off, installs what it finds silently beside the
//! running version (it runs from the next start, on trial); carries out the panel's
//! Check now, Install update and Roll back; keeps what it is doing where the panel can
//! draw it; records every change of the installed versions — and every refused,
//! untrusted repository — in the audit log.
//!
//! It is not the updater itself (`weft-updater` and [`crate::update_command`] are):
//! only the schedule, the progress and who asked.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Condvar, Mutex},
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};
use weft_proto::frame::UpdateChange;

use crate::{
    audit_trail::AuditTrail,
    config::Config,
    locking::lock,
    update_command::{self, Done},
};

/// The longest random lengthening of a wait between checks.
const MAX_JITTER: Duration = Duration::from_secs(30 * 60);

/// What the updater is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Asking the repository what it offers.
    Checking,
    /// Downloading (`done` of `total` bytes), verifying and installing.
    Installing {
        /// Bytes downloaded.
        done: u64,
        /// Bytes to download.
        total: u64,
    },
    /// Switching back to the previous version.
    RollingBack,
}

/// The updater's state, as the panel draws it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// What runs now.
    pub activity: Option<Activity>,
    /// When the last check or change ended, what it said, and whether it failed.
    pub last: Option<(SystemTime, String, bool)>,
    /// When the next scheduled check is due (none: checks only on request).
    pub next_check: Option<SystemTime>,
}

/// The last scheduled check, kept across restarts (`DATA_DIR/updates/last-check.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LastCheck {
    /// Seconds since the epoch.
    at: u64,
    /// What it said.
    outcome: String,
}

struct Inner {
    data_dir: PathBuf,
    config: Config,
    audit: AuditTrail,
    progress: Mutex<Progress>,
    /// One update operation at a time in this shell.
    running: Mutex<()>,
    stopping: Mutex<bool>,
    wake: Condvar,
}

/// The running shell's updater (cheap to clone).
#[derive(Clone)]
pub struct UpdateService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for UpdateService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateService")
            .field("progress", &self.progress())
            .finish()
    }
}

impl UpdateService {
    /// The updater of the shell on `data_dir`; checks on a schedule when the settings
    /// call for one (updates on, a repository and a root configured, an interval).
    pub fn start(data_dir: &Path, config: &Config, audit: AuditTrail) -> UpdateService {
        let service = UpdateService {
            inner: Arc::new(Inner {
                data_dir: data_dir.to_owned(),
                config: config.clone(),
                audit,
                progress: Mutex::default(),
                running: Mutex::new(()),
                stopping: Mutex::new(false),
                wake: Condvar::new(),
            }),
        };
        let updates = &config.updates;
        let scheduled = updates.enabled
            && updates.mirror.is_some()
            && update_command::has_root(config)
            && updates.check_every_minutes > 0;
        if scheduled {
            let every = Duration::from_secs(u64::from(updates.check_every_minutes) * 60);
            let background = service.clone();
            let spawned = std::thread::Builder::new()
                .name("weft-updates".into())
                .spawn(move || background.schedule(every));
            if let Err(e) = spawned {
                tracing::warn!("scheduled update checks cannot run: {e}");
            }
        }
        service
    }

    /// What the updater is doing and did last.
    pub fn progress(&self) -> Progress {
        lock(&self.inner.progress).clone()
    }

    /// Ends the schedule (at shutdown); an install under way is left to the journal.
    pub fn stop(&self) {
        *lock(&self.inner.stopping) = true;
        self.inner.wake.notify_all();
    }

    /// The panel's Check now: what the repository offers, staging skipped.
    pub fn check_now(&self) -> anyhow::Result<String> {
        self.run(Activity::Checking, || {
            update_command::offer_text(&self.inner.data_dir, &self.inner.config, true)
                .map(|text| Done { text, change: None })
        })
    }

    /// The panel's Install update: what the repository offers, staging skipped.
    pub fn install_now(&self) -> anyhow::Result<String> {
        self.install(true, "the control panel")
    }

    /// The panel's Roll back.
    pub fn roll_back(&self) -> anyhow::Result<String> {
        self.run(Activity::RollingBack, || {
            update_command::roll_back("the control panel")
        })
    }

    fn install(&self, now: bool, by: &str) -> anyhow::Result<String> {
        self.run(Activity::Installing { done: 0, total: 0 }, || {
            update_command::apply_offer(
                &self.inner.data_dir,
                &self.inner.config,
                now,
                by,
                &mut |done, total| {
                    lock(&self.inner.progress).activity =
                        Some(Activity::Installing { done, total });
                },
            )
        })
    }

    /// Runs one operation (one at a time), keeping the panel's progress and the audit
    /// log up to date.
    fn run(
        &self,
        activity: Activity,
        operation: impl FnOnce() -> anyhow::Result<Done>,
    ) -> anyhow::Result<String> {
        let _one = match self.inner.running.try_lock() {
            Ok(guard) => guard,
            // A panicked operation left nothing half done that the next one relies on.
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                anyhow::bail!("the updater is busy; try again once it is done")
            }
        };
        lock(&self.inner.progress).activity = Some(activity);
        let result = operation();
        let said = match &result {
            Ok(done) => {
                if let Some(change) = &done.change {
                    self.record(change);
                }
                (done.text.clone(), false)
            }
            Err(e) => {
                if let Some(kind) = e
                    .downcast_ref::<weft_updater::UpdateError>()
                    .and_then(|e| e.untrusted())
                {
                    self.inner.audit.record(
                        "update.refused",
                        serde_json::json!({"kind": format!("{kind:?}"), "error": format!("{e:#}")}),
                    );
                }
                (format!("{e:#}"), true)
            }
        };
        let mut progress = lock(&self.inner.progress);
        progress.activity = None;
        progress.last = Some((SystemTime::now(), said.0, said.1));
        drop(progress);
        result.map(|done| done.text)
    }

    fn record(&self, change: &UpdateChange) {
        self.inner.audit.update_changed(change);
    }

    /// The schedule: a check when one is due (the last one, kept across restarts, plus
    /// `every`, plus jitter), installing what it finds unless told not to.
    fn schedule(&self, every: Duration) {
        let record = self.inner.data_dir.join("updates").join("last-check.json");
        let mut last = read_last_check(&record);
        loop {
            let due = last.map_or(SystemTime::now(), |at| at + every) + jitter(every);
            lock(&self.inner.progress).next_check = Some(due);
            if !self.wait_until(due) {
                return;
            }
            // A build not installed side by side (a distribution's package, a build
            // tree) can only say what is available.
            let install =
                self.inner.config.updates.auto_install && update_command::install_root().is_some();
            let outcome = if install {
                self.install(false, "the scheduled check")
            } else {
                self.run(Activity::Checking, || {
                    update_command::offer_text(&self.inner.data_dir, &self.inner.config, false)
                        .map(|text| Done { text, change: None })
                })
            };
            let text = match outcome {
                Ok(text) => {
                    tracing::info!("scheduled update check: {text}");
                    text
                }
                Err(e) => {
                    tracing::warn!("scheduled update check: {e:#}");
                    format!("{e:#}")
                }
            };
            let now = SystemTime::now();
            last = Some(now);
            write_last_check(&record, now, &text);
        }
    }

    /// Waits until `due`; false when the shell stops first.
    fn wait_until(&self, due: SystemTime) -> bool {
        let mut stopping = lock(&self.inner.stopping);
        loop {
            if *stopping {
                return false;
            }
            let Ok(left) = due.duration_since(SystemTime::now()) else {
                return true;
            };
            stopping = self
                .inner
                .wake
                .wait_timeout(stopping, left)
                .map_or_else(|p| p.into_inner().0, |(guard, _)| guard);
        }
    }
}

/// A random lengthening of a wait of `every`: up to a tenth of it, at most
/// [`MAX_JITTER`].
fn jitter(every: Duration) -> Duration {
    let span = (every / 10).min(MAX_JITTER);
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return span / 2;
    }
    let nanos = span.as_nanos() as u64;
    Duration::from_nanos(u64::from_le_bytes(bytes) % nanos.max(1))
}

fn read_last_check(path: &Path) -> Option<SystemTime> {
    let bytes = std::fs::read(path).ok()?;
    let last: LastCheck = serde_json::from_slice(&bytes)
        .inspect_err(|e| tracing::warn!("{} is not readable ({e}); checking now", path.display()))
        .ok()?;
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(last.at);
    // A time in the future (a clock set back since) would stop checks until then.
    (at <= SystemTime::now()).then_some(at)
}

fn write_last_check(path: &Path, at: SystemTime, outcome: &str) {
    let last = LastCheck {
        at: at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        outcome: outcome.to_owned(),
    };
    let bytes = serde_json::to_vec_pretty(&last).expect("serialising a plain struct");
    if let Err(e) = weft_updater::state_file::write_atomically(path, &bytes) {
        tracing::warn!(
            "cannot keep the time of the last update check in {}: {e}",
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_tenth_and_the_cap_and_varies() {
        let hour = Duration::from_secs(3600);
        let draws: Vec<Duration> = (0..200).map(|_| jitter(hour)).collect();
        assert!(draws.iter().all(|d| *d < hour / 10));
        assert!(draws.iter().any(|d| *d != draws[0]), "random");
        let week = Duration::from_secs(7 * 24 * 3600);
        assert!((0..200).all(|_| jitter(week) < MAX_JITTER));
    }

    #[test]
    fn the_last_check_survives_a_restart_and_a_future_time_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("updates/last-check.json");
        assert_eq!(read_last_check(&path), None);
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        write_last_check(&path, at, "up to date");
        assert_eq!(read_last_check(&path), Some(at));
        let later = SystemTime::now() + Duration::from_secs(86_400);
        write_last_check(&path, later, "from a clock set back since");
        assert_eq!(read_last_check(&path), None);
        std::fs::write(&path, "not json").unwrap();
        assert_eq!(read_last_check(&path), None);
    }
}
