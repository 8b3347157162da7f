//! What a Weft update repository publishes, as both the publisher (`weft-release`) and
//! the client (`weft-updater`) read it: the release fields each TUF target carries in
//! its signed `custom` object, the names targets have, and which installs a staged
//! rollout reaches.
//!
//! Everything that decides an update is here and nothing else: channel, version,
//! rollout percentage, minimum version, the files of a release with their hashes, and
//! which deltas exist. These fields sit inside `targets.json`, so they are covered by
//! the targets role's signatures like the artifacts' hashes and lengths. This crate does
//! no I/O and no signature checking (that is `tough`'s, in the client).

use std::collections::BTreeMap;

pub mod archive;
pub mod patch;

use semver::Version;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The key under a target's `custom` object that holds Weft's fields.
pub const CUSTOM_KEY: &str = "weft";

/// The platform this build runs on, as releases name it (`linux-x86_64`).
pub fn current_platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

/// A release of Weft for one platform on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Release {
    /// Its version.
    pub version: Version,
    /// The channel it is published on (`stable`, `beta`, …).
    pub channel: String,
    /// The platform its binaries are for.
    pub platform: String,
    /// The share of installs it is offered to, 0–100 (0: halted).
    pub rollout_percent: u8,
    /// Installs older than this are not offered it (they update through an earlier
    /// release first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<Version>,
}

/// One file of a release, as installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileDigest {
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// Its length in bytes.
    pub length: u64,
    /// Whether it is executable.
    pub executable: bool,
}

impl FileDigest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8], executable: bool) -> FileDigest {
        FileDigest {
            sha256: hex_sha256(bytes),
            length: bytes.len() as u64,
            executable,
        }
    }

    /// Whether `bytes` are this file.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        bytes.len() as u64 == self.length && hex_sha256(bytes) == self.sha256
    }
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What a target is, in its signed custom fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum Artifact {
    /// The whole release: a gzip-compressed tar of its files.
    #[serde(rename_all = "camelCase")]
    Full {
        /// The release.
        release: Release,
        /// Every file in the archive, by name.
        files: BTreeMap<String, FileDigest>,
        /// The delta targets published for it, by the version they start from.
        deltas: BTreeMap<Version, String>,
    },
    /// Patches from an earlier release to this one: a tar holding, for each file that
    /// changed, `NAME.bsdiff` (a bsdiff patch of the earlier file), and for each new
    /// file, `NAME` whole. Files the archive does not hold are unchanged.
    #[serde(rename_all = "camelCase")]
    Delta {
        /// The release it leads to (its full target names the files' results).
        release: Release,
        /// The version it applies to.
        from: Version,
    },
}

impl Artifact {
    /// The release this artifact belongs to.
    pub fn release(&self) -> &Release {
        match self {
            Artifact::Full { release, .. } | Artifact::Delta { release, .. } => release,
        }
    }

    /// Reads Weft's fields from a target's `custom` object; `None` when it has none (a
    /// target that is not Weft's), an error when they are there but wrong.
    pub fn from_custom(
        custom: &std::collections::HashMap<String, serde_json::Value>,
    ) -> Result<Option<Artifact>, ArtifactError> {
        match custom.get(CUSTOM_KEY) {
            None => Ok(None),
            Some(value) => serde_json::from_value(value.clone())
                .map(Some)
                .map_err(|e| ArtifactError(e.to_string())),
        }
    }

    /// Weft's fields as a target's `custom` object.
    pub fn to_custom(&self) -> std::collections::HashMap<String, serde_json::Value> {
        let value = serde_json::to_value(self).expect("an artifact always serialises");
        std::collections::HashMap::from([(CUSTOM_KEY.to_owned(), value)])
    }
}

/// A target's Weft fields that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("the target's release fields are invalid: {0}")]
pub struct ArtifactError(String);

/// The name of the full target of `release`.
pub fn full_target_name(release: &Release) -> String {
    format!(
        "weft-{}-{}-{}.tar.gz",
        release.channel, release.version, release.platform
    )
}

/// The name of the delta target from `from` to `release`.
pub fn delta_target_name(release: &Release, from: &Version) -> String {
    format!(
        "weft-{}-{}-to-{}-{}.delta.tar",
        release.channel, from, release.version, release.platform
    )
}

/// The install's bucket for `version`: a number in 0..10 000 drawn from the install's
/// random id and the version, the same at every start. A release at p % reaches the
/// installs whose bucket is below p × 100; raising p keeps every bucket already in.
/// Each version draws anew, so the same installs are not always first.
pub fn rollout_bucket(install_id: &str, version: &Version) -> u16 {
    let digest = Sha256::digest(format!("{install_id}\n{version}").as_bytes());
    let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (n % 10_000) as u16
}

/// Whether an install with `install_id` is offered `release` under staging.
pub fn in_rollout(install_id: &str, release: &Release) -> bool {
    u32::from(rollout_bucket(install_id, &release.version))
        < u32::from(release.rollout_percent) * 100
}

/// Checks that `bytes` look like a TUF root a client can start from — signed root
/// metadata of version 1 or more, with keys, roles and at least one signature — and
/// returns its version. The signatures themselves are checked by the client (`tough`)
/// when it loads the repository; this catches the wrong file at build time.
pub fn check_root_metadata(bytes: &[u8]) -> Result<u64, String> {
    let root: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let signed = &root["signed"];
    if signed["_type"] != "root" {
        return Err(format!(
            "not root metadata (its signed._type is {})",
            signed["_type"]
        ));
    }
    let version = signed["version"]
        .as_u64()
        .filter(|v| *v >= 1)
        .ok_or("signed.version is not a version number of 1 or more")?;
    let has = |key: &str| signed[key].as_object().is_some_and(|o| !o.is_empty());
    if !has("keys") || !has("roles") {
        return Err("signed.keys or signed.roles is missing or empty".into());
    }
    if root["signatures"].as_array().is_none_or(Vec::is_empty) {
        return Err("it carries no signatures".into());
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_root_file_is_told_from_other_files() {
        let root = br#"{"signed": {"_type": "root", "version": 1, "keys": {"k": {}},
            "roles": {"root": {}}}, "signatures": [{"keyid": "k", "sig": "00"}]}"#;
        assert_eq!(check_root_metadata(root), Ok(1));
        let timestamp = br#"{"signed": {"_type": "timestamp", "version": 1}, "signatures": []}"#;
        let e = check_root_metadata(timestamp).unwrap_err();
        assert!(e.contains("not root metadata"), "{e}");
        let unsigned = br#"{"signed": {"_type": "root", "version": 1, "keys": {"k": {}},
            "roles": {"root": {}}}, "signatures": []}"#;
        assert!(
            check_root_metadata(unsigned)
                .unwrap_err()
                .contains("no signatures")
        );
        assert!(
            check_root_metadata(b"<html>")
                .unwrap_err()
                .contains("not JSON")
        );
    }

    fn release(percent: u8) -> Release {
        Release {
            version: Version::new(1, 4, 0),
            channel: "stable".into(),
            platform: "linux-x86_64".into(),
            rollout_percent: percent,
            min_version: None,
        }
    }

    #[test]
    fn ten_percent_reaches_ten_percent_of_ten_thousand_installs_the_same_ones_each_time() {
        let ids: Vec<String> = (0..10_000)
            .map(|i| format!("install-{i:05}-{}", i * 7919))
            .collect();
        let reached = |p: u8| -> Vec<&String> {
            ids.iter()
                .filter(|id| in_rollout(id, &release(p)))
                .collect()
        };
        let ten = reached(10);
        assert!((900..=1100).contains(&ten.len()), "{} of 10 000", ten.len());
        // The same installs at every start: nothing but the id and version decide.
        assert_eq!(ten, reached(10));
        // Raising the percentage keeps every install already in.
        let twenty = reached(20);
        assert!((1900..=2100).contains(&twenty.len()), "{}", twenty.len());
        assert!(ten.iter().all(|id| twenty.contains(id)));
        assert!(reached(0).is_empty());
        assert_eq!(reached(100).len(), 10_000);
    }

    #[test]
    fn artifacts_round_trip_through_custom_fields_and_bad_ones_are_named() {
        let full = Artifact::Full {
            release: release(25),
            files: BTreeMap::from([("weft".to_owned(), FileDigest::of(b"binary", true))]),
            deltas: BTreeMap::from([(
                Version::new(1, 3, 0),
                delta_target_name(&release(25), &Version::new(1, 3, 0)),
            )]),
        };
        let custom = full.to_custom();
        assert_eq!(Artifact::from_custom(&custom).unwrap(), Some(full));
        assert_eq!(Artifact::from_custom(&Default::default()).unwrap(), None);
        let bad = std::collections::HashMap::from([(
            CUSTOM_KEY.to_owned(),
            serde_json::json!({"kind": "full", "release": {"version": "x"}}),
        )]);
        let e = Artifact::from_custom(&bad).unwrap_err().to_string();
        assert!(e.contains("release fields are invalid"), "{e}");
        assert_eq!(
            full_target_name(&release(1)),
            "weft-stable-1.4.0-linux-x86_64.tar.gz"
        );
    }

    proptest! {
        #[test]
        fn buckets_are_in_range_and_files_match_only_themselves(
            id in ".{0,40}", major in 0u64..50, bytes in proptest::collection::vec(any::<u8>(), 0..64)
        ) {
            prop_assert!(rollout_bucket(&id, &Version::new(major, 0, 0)) < 10_000);
            let digest = FileDigest::of(&bytes, false);
            prop_assert!(digest.matches(&bytes));
            let mut other = bytes.clone();
            other.push(0);
            prop_assert!(!digest.matches(&other));
        }
    }
}
