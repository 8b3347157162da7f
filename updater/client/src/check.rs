//! Checking for an update: load the repository's metadata with `tough` from the newest
//! root this install trusts, keep that root for next time, and pick the release to offer
//! from the signed targets alone.
//!
//! What is trusted between runs lives in the state folder: `root.json`, the newest root
//! seen (`tough`'s datastore does not keep it, and without it a rollback to metadata
//! signed by keys an old root still lists would go unnoticed), and `tuf/`, `tough`'s
//! datastore (the last timestamp, snapshot and targets, against rollback and freeze,
//! and the latest time seen, against a clock set backwards).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use semver::Version;
use tough::RepositoryLoader;
use url::Url;
use weft_update_repo::{Artifact, FileDigest, Release, in_rollout};

use crate::{
    error::{UpdateError, classify},
    state_file,
    transport::MirrorTransport,
};

/// Largest metadata file accepted, per role: an endless or huge response is cut here.
pub const METADATA_LIMITS: tough::Limits = tough::Limits {
    max_root_size: 256 * 1024,
    max_targets_size: 8 * 1024 * 1024,
    max_timestamp_size: 64 * 1024,
    max_snapshot_size: 256 * 1024,
    max_root_updates: 64,
};

/// Where a repository is served: `BASE/metadata/` and `BASE/targets/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// The metadata folder's URL.
    pub metadata: Url,
    /// The targets folder's URL.
    pub targets: Url,
}

impl Mirror {
    /// The repository at `base` (http(s) or file).
    pub fn at(base: &Url) -> Result<Mirror, UpdateError> {
        let mut base = base.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let join = |dir: &str| {
            base.join(dir).map_err(|e| {
                UpdateError::Settings(format!("the mirror {base} is not a base URL: {e}"))
            })
        };
        Ok(Mirror {
            metadata: join("metadata/")?,
            targets: join("targets/")?,
        })
    }
}

/// What a check looks for.
#[derive(Debug, Clone)]
pub struct CheckSettings {
    /// Where the repository is.
    pub mirror: Mirror,
    /// The root shipped inside the binary.
    pub shipped_root: Vec<u8>,
    /// Where trusted state is kept between runs.
    pub state_dir: PathBuf,
    /// The channel followed.
    pub channel: String,
    /// This build's platform.
    pub platform: String,
    /// The version running now.
    pub installed: Version,
    /// Stay on (or go to) exactly this version, whatever else is published.
    pub pinned: Option<Version>,
    /// This install's random id, for staged rollouts.
    pub install_id: String,
    /// "Check now": ignore staging (a halted release is still not offered).
    pub skip_staging: bool,
    /// Versions rolled back here, never offered again.
    pub refused: BTreeSet<Version>,
}

/// One target to download: its name, and its signed length and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRef {
    /// The target's name.
    pub name: String,
    /// Its signed length.
    pub length: u64,
    /// Its signed SHA-256, lowercase hex.
    pub sha256: String,
    /// Its URL (consistent snapshot: the hash prefixes the name).
    pub url: Url,
}

/// A release offered to this install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The release.
    pub release: Release,
    /// Its full archive.
    pub full: TargetRef,
    /// A delta from the installed version, when one is published.
    pub delta: Option<TargetRef>,
    /// The release's files and their signed digests.
    pub files: BTreeMap<String, FileDigest>,
}

/// What a check found.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The release to install, if any.
    pub offer: Option<Offer>,
    /// The newest release of the channel and platform, offered or not.
    pub newest: Option<Release>,
    /// The version of the root trusted now.
    pub root_version: u64,
}

/// Loads the repository and picks the release to offer.
pub async fn check(settings: &CheckSettings) -> Result<Checked, UpdateError> {
    let trusted = trusted_root(settings)?;
    let datastore = settings.state_dir.join("tuf");
    std::fs::create_dir_all(&datastore).map_err(|e| UpdateError::state(&datastore, e))?;
    let repo = RepositoryLoader::new(
        &trusted,
        settings.mirror.metadata.clone(),
        settings.mirror.targets.clone(),
    )
    .transport(MirrorTransport::new())
    .limits(METADATA_LIMITS)
    .datastore(&datastore)
    .load()
    .await
    .map_err(classify)?;
    keep_root(&settings.state_dir, repo.root())?;

    let mut candidates = Vec::new();
    let mut newest: Option<Release> = None;
    for (name, target) in repo.all_targets() {
        let artifact =
            Artifact::from_custom(&target.custom).map_err(|e| UpdateError::Artifact {
                name: name.raw().to_owned(),
                reason: e.to_string(),
            })?;
        let Some(Artifact::Full {
            release,
            files,
            deltas,
        }) = artifact
        else {
            continue;
        };
        if release.platform != settings.platform || release.channel != settings.channel {
            continue;
        }
        if newest.as_ref().is_none_or(|n| n.version < release.version) {
            newest = Some(release.clone());
        }
        if offered(settings, &release) {
            candidates.push((release, name.raw().to_owned(), files, deltas));
        }
    }
    candidates.sort_by(|a, b| b.0.version.cmp(&a.0.version));
    let offer = match candidates.into_iter().next() {
        None => None,
        Some((release, name, files, deltas)) => {
            let full = target_ref(&repo, &settings.mirror, &name)?;
            let delta = deltas
                .get(&settings.installed)
                .map(|d| target_ref(&repo, &settings.mirror, d))
                .transpose()?;
            Some(Offer {
                release,
                full,
                delta,
                files,
            })
        }
    };
    Ok(Checked {
        offer,
        newest,
        root_version: repo.root().signed.version.get(),
    })
}

/// Whether `release` may be offered: the pinned version if pinned, else a newer one the
/// installed version may update to, in this install's rollout bucket (unless staging
/// is skipped), never halted and never rolled back here.
fn offered(settings: &CheckSettings, release: &Release) -> bool {
    if release.rollout_percent == 0 || settings.refused.contains(&release.version) {
        return false;
    }
    if let Some(pinned) = &settings.pinned {
        return &release.version == pinned && pinned != &settings.installed;
    }
    release.version > settings.installed
        && release
            .min_version
            .as_ref()
            .is_none_or(|min| &settings.installed >= min)
        && (settings.skip_staging || in_rollout(&settings.install_id, release))
}

fn target_ref(
    repo: &tough::Repository,
    mirror: &Mirror,
    name: &str,
) -> Result<TargetRef, UpdateError> {
    let (_, target) = repo
        .all_targets()
        .find(|(n, _)| n.raw() == name)
        .ok_or_else(|| UpdateError::Artifact {
            name: name.to_owned(),
            reason: "it is named by a release but not signed as a target".into(),
        })?;
    let sha256 = hex::encode(&target.hashes.sha256);
    let url = mirror
        .targets
        .join(&format!("{sha256}.{name}"))
        .map_err(|e| UpdateError::Artifact {
            name: name.to_owned(),
            reason: e.to_string(),
        })?;
    Ok(TargetRef {
        name: name.to_owned(),
        length: target.length,
        sha256,
        url,
    })
}

/// The root to start from: the newest kept here, or the shipped one when it is newer or
/// nothing is kept.
fn trusted_root(settings: &CheckSettings) -> Result<Vec<u8>, UpdateError> {
    let path = settings.state_dir.join("root.json");
    let kept = match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(UpdateError::state(&path, e)),
    };
    let shipped_version = root_version(&settings.shipped_root).ok_or_else(|| {
        UpdateError::Settings("the root shipped inside weft is not TUF root metadata".into())
    })?;
    Ok(match kept {
        Some(bytes) => match root_version(&bytes) {
            Some(v) if v >= shipped_version => bytes,
            Some(_) => settings.shipped_root.clone(),
            None => {
                return Err(UpdateError::State {
                    path,
                    reason: "it is not TUF root metadata".into(),
                });
            }
        },
        None => settings.shipped_root.clone(),
    })
}

fn root_version(bytes: &[u8]) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    (value["signed"]["_type"] == "root")
        .then(|| value["signed"]["version"].as_u64())
        .flatten()
}

/// Keeps `root` as the newest trusted root when it is newer than the one kept.
fn keep_root(
    state_dir: &Path,
    root: &tough::schema::Signed<tough::schema::Root>,
) -> Result<(), UpdateError> {
    let path = state_dir.join("root.json");
    let kept = std::fs::read(&path).ok().and_then(|b| root_version(&b));
    if kept.is_some_and(|v| v >= root.signed.version.get()) {
        return Ok(());
    }
    let bytes = serde_json::to_vec(root).map_err(|e| UpdateError::state(&path, e))?;
    state_file::write_atomically(&path, &bytes).map_err(|e| UpdateError::state(&path, e))
}
