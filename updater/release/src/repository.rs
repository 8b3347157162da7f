//! The publisher's side of the TUF repository, a plain folder any HTTPS server (or a
//! file share) can serve: `metadata/` (`N.root.json`, `timestamp.json`, and the other
//! roles as `N.ROLE.json`, consistent snapshots) and `targets/` (`SHA256.NAME`).
//!
//! Each operation loads the repository as a client would (every signature and version
//! checked), changes it, signs what changed with the keys it needs, and writes it:
//! [`init`] (keys, root, empty roles), [`publish`] (a release's full archive and its
//! deltas from the previous three versions), [`set_rollout`] (raise, lower or halt a
//! release) and [`refresh_timestamp`] (the online timestamp key's periodic re-sign).

use std::{
    collections::BTreeMap,
    num::NonZeroU64,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use jiff::{SignedDuration, Timestamp};
use semver::Version;
use tough::{
    RepositoryLoader, TargetName,
    editor::{
        RepositoryEditor,
        signed::{PathExists, SignedRole},
    },
    schema::{KeyHolder, RoleKeys, RoleType, Root, Target},
};
use weft_update_repo::{
    Artifact, FileDigest, Release,
    archive::{self, Files},
    delta_target_name, full_target_name,
};

use crate::keys::{KeyDir, ROLE_KEYS, ROOT_KEYS, ROOT_THRESHOLD};

/// How many earlier versions each release gets a delta from.
pub const DELTAS_FROM: usize = 3;

/// Largest file a publisher reads back from its own archives.
const MAX_FILE: u64 = 1 << 30;

/// How long each role's signatures stay valid.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// The root (re-signed offline, rarely).
    pub root: SignedDuration,
    /// The targets (re-signed with each release).
    pub targets: SignedDuration,
    /// The snapshot.
    pub snapshot: SignedDuration,
    /// The timestamp (re-signed by the online key often: its lifetime bounds how long a
    /// frozen mirror or a halt goes unnoticed).
    pub timestamp: SignedDuration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        let day = SignedDuration::from_hours(24);
        Lifetimes {
            root: day * 365,
            targets: day * 90,
            snapshot: day * 30,
            timestamp: day,
        }
    }
}

/// Where things are in a repository folder.
#[derive(Debug, Clone)]
pub struct RepoDir {
    root: PathBuf,
}

impl RepoDir {
    /// The repository in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> RepoDir {
        RepoDir { root: dir.into() }
    }

    /// `metadata/`.
    pub fn metadata(&self) -> PathBuf {
        self.root.join("metadata")
    }

    /// `targets/`.
    pub fn targets(&self) -> PathBuf {
        self.root.join("targets")
    }

    /// The first root, the one clients ship with (`metadata/1.root.json`).
    pub fn first_root(&self) -> PathBuf {
        self.metadata().join("1.root.json")
    }

    fn staging(&self) -> PathBuf {
        self.root.join(".staging")
    }

    fn url(dir: &Path) -> anyhow::Result<url::Url> {
        let dir =
            std::fs::canonicalize(dir).with_context(|| format!("opening {}", dir.display()))?;
        url::Url::from_directory_path(&dir)
            .map_err(|()| anyhow::anyhow!("{} is not an absolute folder", dir.display()))
    }

    /// Loads the repository as a client would, from its first root: every signature
    /// and version checked, but not expiry, so that the publisher can re-sign a role
    /// that has expired.
    async fn load(&self) -> anyhow::Result<tough::Repository> {
        let root = std::fs::read(self.first_root())
            .with_context(|| format!("reading {}", self.first_root().display()))?;
        RepositoryLoader::new(
            &root,
            Self::url(&self.metadata())?,
            Self::url(&self.targets())?,
        )
        .expiration_enforcement(tough::ExpirationEnforcement::Unsafe)
        .load()
        .await
        .context("loading the repository (every signature and version is checked)")
    }

    /// The newest root's file.
    fn latest_root(&self, repo: &tough::Repository) -> PathBuf {
        self.metadata()
            .join(format!("{}.root.json", repo.root().signed.version))
    }
}

/// Makes the keys that are missing in `keys`, then a new repository in `repo`: a root
/// signed by two of the three root keys, and empty targets, snapshot and timestamp. The
/// root to ship inside the `weft` binary is `metadata/1.root.json`.
pub async fn init(repo: &RepoDir, keys: &KeyDir, lifetimes: &Lifetimes) -> anyhow::Result<()> {
    if repo.first_root().exists() {
        bail!("{} already holds a repository", repo.root.display());
    }
    keys.generate_missing()?;
    std::fs::create_dir_all(repo.metadata())?;
    std::fs::create_dir_all(repo.targets())?;

    let mut root = Root {
        spec_version: "1.0.0".into(),
        consistent_snapshot: true,
        version: NonZeroU64::MIN,
        expires: Timestamp::now() + lifetimes.root,
        keys: Default::default(),
        roles: Default::default(),
        _extra: Default::default(),
    };
    let mut add_role = |role: RoleType, names: &[&str], threshold: u64| -> anyhow::Result<()> {
        let mut keyids = Vec::new();
        for name in names {
            let key = keys.public(name)?;
            let id = key.key_id().context("computing a key id")?;
            root.keys.insert(id.clone(), key);
            keyids.push(id);
        }
        root.roles.insert(
            role,
            RoleKeys {
                keyids,
                threshold: NonZeroU64::new(threshold).expect("thresholds are positive"),
                _extra: Default::default(),
            },
        );
        Ok(())
    };
    add_role(RoleType::Root, &ROOT_KEYS, ROOT_THRESHOLD)?;
    add_role(RoleType::Targets, &[ROLE_KEYS[0]], 1)?;
    add_role(RoleType::Snapshot, &[ROLE_KEYS[1]], 1)?;
    add_role(RoleType::Timestamp, &[ROLE_KEYS[2]], 1)?;

    let signers: Vec<_> = ROOT_KEYS
        .iter()
        .take(ROOT_THRESHOLD as usize)
        .map(|name| keys.source(name))
        .collect::<anyhow::Result<_>>()?;
    let signed = SignedRole::new(
        root.clone(),
        &KeyHolder::Root(root),
        &signers,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .await
    .context("signing the root")?;
    std::fs::write(repo.first_root(), signed.buffer())?;

    let mut editor = RepositoryEditor::new(repo.first_root())
        .await
        .context("opening the new root")?;
    versions(&mut editor, NonZeroU64::MIN, lifetimes)?;
    sign_and_write(repo, editor, keys, &[]).await
}

/// What [`publish`] added.
#[derive(Debug)]
pub struct Published {
    /// The full target's name and length.
    pub full: (String, u64),
    /// The deltas, by the version each starts from.
    pub deltas: BTreeMap<Version, PublishedDelta>,
}

/// One delta [`publish`] added.
#[derive(Debug)]
pub struct PublishedDelta {
    /// Its target name.
    pub name: String,
    /// Its length in bytes.
    pub length: u64,
    /// How each changed file is patched (both formats measured, the smaller kept).
    pub patches: Vec<archive::FilePatch>,
}

/// Publishes `release` with `files`: its full archive, and a delta from each of the
/// previous [`DELTAS_FROM`] versions of its channel and platform, all as targets whose
/// custom fields say what they are. Refuses a version that is not newer than every
/// published one of the channel and platform.
pub async fn publish(
    repo: &RepoDir,
    keys: &KeyDir,
    release: Release,
    files: &Files,
    lifetimes: &Lifetimes,
) -> anyhow::Result<Published> {
    for name in files.keys() {
        if !archive::valid_name(name) {
            bail!("{name:?} cannot be a file of a release (one plain name, no folders)");
        }
    }
    let loaded = repo.load().await?;
    let mut earlier: Vec<(Version, PathBuf)> = Vec::new();
    for (name, target) in loaded.all_targets() {
        let Some(Artifact::Full { release: r, .. }) = Artifact::from_custom(&target.custom)
            .with_context(|| format!("reading target {}", name.raw()))?
        else {
            continue;
        };
        if r.channel != release.channel || r.platform != release.platform {
            continue;
        }
        if r.version >= release.version {
            bail!(
                "{} {} is already published on {}: a release must be newer",
                r.version,
                r.platform,
                r.channel
            );
        }
        let file = repo.targets().join(format!(
            "{}.{}",
            hex::encode(&target.hashes.sha256),
            name.raw()
        ));
        earlier.push((r.version, file));
    }
    earlier.sort_by(|a, b| b.0.cmp(&a.0));
    earlier.truncate(DELTAS_FROM);

    let staging = repo.staging();
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    let mut staged: Vec<(TargetName, PathBuf, Target)> = Vec::new();
    let mut deltas = BTreeMap::new();
    let mut published = Published {
        full: (String::new(), 0),
        deltas: BTreeMap::new(),
    };
    for (from, file) in &earlier {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let old = archive::unpack_full(&bytes, MAX_FILE)
            .with_context(|| format!("reading the published archive of {from}"))?;
        let name = delta_target_name(&release, from);
        let path = staging.join(&name);
        let delta = archive::make_delta(&old, files);
        std::fs::write(&path, &delta.bytes)?;
        let mut target = Target::from_path(&path).await?;
        target.custom = Artifact::Delta {
            release: release.clone(),
            from: from.clone(),
        }
        .to_custom();
        published.deltas.insert(
            from.clone(),
            PublishedDelta {
                name: name.clone(),
                length: target.length,
                patches: delta.patches,
            },
        );
        deltas.insert(from.clone(), name.clone());
        staged.push((TargetName::new(name)?, path, target));
    }
    let name = full_target_name(&release);
    let path = staging.join(&name);
    std::fs::write(&path, archive::pack_full(files))?;
    let mut target = Target::from_path(&path).await?;
    target.custom = Artifact::Full {
        release,
        files: files
            .iter()
            .map(|(n, (bytes, x))| (n.clone(), FileDigest::of(bytes, *x)))
            .collect(),
        deltas,
    }
    .to_custom();
    published.full = (name.clone(), target.length);
    staged.push((TargetName::new(name)?, path, target));

    let next = next_version(&loaded);
    let root = repo.latest_root(&loaded);
    let mut editor = RepositoryEditor::from_repo(&root, loaded).await?;
    for (name, _, target) in &staged {
        editor.add_target(name.clone(), target.clone())?;
    }
    versions(&mut editor, next, lifetimes)?;
    sign_and_write(repo, editor, keys, &staged).await?;
    let _ = std::fs::remove_dir_all(&staging);
    Ok(published)
}

/// Sets the rollout of `version` on `channel` (every platform, full and deltas) to
/// `percent`; 0 halts it. Clients see it within one timestamp lifetime.
pub async fn set_rollout(
    repo: &RepoDir,
    keys: &KeyDir,
    channel: &str,
    version: &Version,
    percent: u8,
    lifetimes: &Lifetimes,
) -> anyhow::Result<usize> {
    if percent > 100 {
        bail!("a rollout is a percentage: {percent} is over 100");
    }
    let loaded = repo.load().await?;
    let mut changed = Vec::new();
    for (name, target) in loaded.all_targets() {
        let Some(mut artifact) = Artifact::from_custom(&target.custom)? else {
            continue;
        };
        let release = match &mut artifact {
            Artifact::Full { release, .. } | Artifact::Delta { release, .. } => release,
        };
        if release.channel == channel && &release.version == version {
            release.rollout_percent = percent;
            let mut target = target.clone();
            target.custom = artifact.to_custom();
            changed.push((name.clone(), target));
        }
    }
    if changed.is_empty() {
        bail!("{version} is not published on {channel}");
    }
    let next = next_version(&loaded);
    let root = repo.latest_root(&loaded);
    let mut editor = RepositoryEditor::from_repo(&root, loaded).await?;
    for (name, target) in &changed {
        editor.add_target(name.clone(), target.clone())?;
    }
    versions(&mut editor, next, lifetimes)?;
    sign_and_write(repo, editor, keys, &[]).await?;
    Ok(changed.len())
}

/// Re-signs the timestamp alone with the online timestamp key: a new version, valid for
/// `lifetime` from now, over the same snapshot.
pub async fn refresh_timestamp(
    repo: &RepoDir,
    keys: &KeyDir,
    lifetime: SignedDuration,
) -> anyhow::Result<u64> {
    let loaded = repo.load().await?;
    let mut timestamp = loaded.timestamp().signed.clone();
    let version = timestamp.version.get() + 1;
    timestamp.version = NonZeroU64::new(version).expect("positive");
    timestamp.expires = Timestamp::now() + lifetime;
    let signed = SignedRole::new(
        timestamp,
        &KeyHolder::Root(loaded.root().signed.clone()),
        &[keys.source(ROLE_KEYS[2])?],
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .await
    .context("signing the timestamp")?;
    write_atomically(&repo.metadata().join("timestamp.json"), signed.buffer())?;
    Ok(version)
}

/// The version the next targets, snapshot and timestamp get.
fn next_version(repo: &tough::Repository) -> NonZeroU64 {
    let highest = repo
        .targets()
        .signed
        .version
        .max(repo.snapshot().signed.version)
        .max(repo.timestamp().signed.version);
    highest.checked_add(1).expect("fewer than 2^64 versions")
}

fn versions(
    editor: &mut RepositoryEditor,
    version: NonZeroU64,
    lifetimes: &Lifetimes,
) -> anyhow::Result<()> {
    let now = Timestamp::now();
    editor
        .targets_version(version)?
        .targets_expires(now + lifetimes.targets)?
        .snapshot_version(version)
        .snapshot_expires(now + lifetimes.snapshot)
        .timestamp_version(version)
        .timestamp_expires(now + lifetimes.timestamp);
    Ok(())
}

/// Signs targets, snapshot and timestamp, copies the `staged` target files in, and
/// writes the metadata, the timestamp last, so that a client never sees a timestamp
/// whose snapshot is not there yet.
async fn sign_and_write(
    repo: &RepoDir,
    editor: RepositoryEditor,
    keys: &KeyDir,
    staged: &[(TargetName, PathBuf, Target)],
) -> anyhow::Result<()> {
    let sources: Vec<_> = ROLE_KEYS
        .iter()
        .map(|name| keys.source(name))
        .collect::<anyhow::Result<_>>()?;
    let signed = editor
        .sign(&sources)
        .await
        .context("signing the repository")?;
    for (name, path, _) in staged {
        signed
            .copy_target(path, &repo.targets(), PathExists::Skip, Some(name))
            .await
            .with_context(|| format!("copying target {}", name.raw()))?;
    }
    let out = repo.staging().join("metadata");
    let _ = std::fs::remove_dir_all(&out);
    signed.write(&out).await.context("writing the metadata")?;
    // Roles named by version first, then the timestamp, each moved into place whole.
    let mut timestamp = None;
    for entry in std::fs::read_dir(&out)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "timestamp.json" {
            timestamp = Some(entry.path());
        } else if name.starts_with(|c: char| c.is_ascii_digit()) {
            std::fs::rename(entry.path(), repo.metadata().join(&name))?;
        }
    }
    let timestamp = timestamp.context("the signed repository has no timestamp")?;
    std::fs::rename(&timestamp, repo.metadata().join("timestamp.json"))?;
    let _ = std::fs::remove_dir_all(&out);
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
