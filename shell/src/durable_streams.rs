//! Opening the durable streams a workspace or the settings file declares, with the
//! journal's keys fetched from where they are kept on first need (so a shell without
//! durable topics never touches the keychain).

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
    time::Duration,
};

use weft_broker::{BrokerHandle, DurableConfig, Fsync, JournalSetup, Retention};
use weft_supervisor::PrepareLaunch;
use weft_workspace::{DurableSpec, FsyncPolicy, Workspace};

use crate::{journal_keys, locking::lock};

/// The shell's access to the journal.
pub struct Journal {
    broker: BrokerHandle,
    data_dir: PathBuf,
    allow_key_file: bool,
    /// Whether the broker has been given the journal's folder and keys.
    keys_loaded: Mutex<bool>,
}

impl Journal {
    /// The journal of `data_dir`, served by `broker`.
    pub fn new(broker: BrokerHandle, data_dir: &Path, allow_key_file: bool) -> Journal {
        Journal {
            broker,
            data_dir: data_dir.to_owned(),
            allow_key_file,
            keys_loaded: Mutex::new(false),
        }
    }

    /// Opens every stream in `specs` (those already open stay as they are).
    pub fn open(&self, specs: &[DurableSpec]) -> Result<(), String> {
        if specs.is_empty() {
            return Ok(());
        }
        self.load_keys()?;
        for spec in specs {
            self.broker
                .add_durable(config_of(spec))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn load_keys(&self) -> Result<(), String> {
        let mut loaded = lock(&self.keys_loaded);
        if *loaded {
            return Ok(());
        }
        match journal_keys::load(&self.data_dir, self.allow_key_file) {
            Ok(keys) => {
                tracing::info!("the journal's keys are kept in {}", keys.source);
                self.broker.set_journal(JournalSetup::Ready {
                    dir: journal_keys::journal_dir(&self.data_dir),
                    keys: keys.keys,
                });
                *loaded = true;
                Ok(())
            }
            Err(why) => {
                self.broker
                    .set_journal(JournalSetup::Unavailable(why.clone()));
                Err(why)
            }
        }
    }
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("data_dir", &self.data_dir)
            .field("allow_key_file", &self.allow_key_file)
            .finish_non_exhaustive()
    }
}

impl PrepareLaunch for Journal {
    fn prepare(&self, workspace: &Workspace) -> Result<(), String> {
        self.open(&workspace.durable)
    }
}

/// The broker's form of a declared stream.
pub fn config_of(spec: &DurableSpec) -> DurableConfig {
    let secs_ms = |s: u64| s.saturating_mul(1000);
    DurableConfig {
        pattern: spec.pattern.clone(),
        fsync: match spec.fsync {
            FsyncPolicy::Always => Fsync::Always,
            FsyncPolicy::IntervalMs(ms) => Fsync::Interval(Duration::from_millis(ms)),
            FsyncPolicy::None => Fsync::None,
        },
        retention: Retention {
            max_age_ms: spec.retention.max_age_secs.map(secs_ms),
            max_bytes: spec.retention.max_mb.map(|mb| mb.saturating_mul(1 << 20)),
            max_messages: spec.retention.max_messages,
        },
    }
}
