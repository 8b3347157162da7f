//! The client against a real repository made by `weft-release`, served over HTTP on
//! 127.0.0.1: what it offers, and every way it refuses metadata it must not trust.

mod support;

use std::{path::PathBuf, sync::atomic::Ordering};

use support::{Override, Server, release};

use jiff::SignedDuration;
use semver::Version;
use weft_release::{
    keys::KeyDir,
    repository::{self, Lifetimes, RepoDir},
};
use weft_update_repo::archive::Files;
use weft_updater::{CheckSettings, Untrusted, check};

struct Fixture {
    _dir: tempfile::TempDir,
    repo: RepoDir,
    keys: KeyDir,
    state: PathBuf,
    server: Server,
}

fn files(tag: &str) -> Files {
    Files::from([
        (
            "weft".to_owned(),
            (format!("shell {tag}").into_bytes(), true),
        ),
        ("weft-app".to_owned(), (b"host".to_vec(), true)),
    ])
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (repo, keys) = support::new_repository(dir.path()).await;
    for v in ["1.0.0", "1.1.0"] {
        repository::publish(
            &repo,
            &keys,
            release(v, 100),
            &files(v),
            &Lifetimes::default(),
        )
        .await
        .unwrap();
    }
    let server = Server::serve(&dir.path().join("repo"));
    Fixture {
        state: dir.path().join("state"),
        _dir: dir,
        repo,
        keys,
        server,
    }
}

impl Fixture {
    fn settings(&self, installed: &str) -> CheckSettings {
        support::settings(&self.server.base, &self.repo, self.state.clone(), installed)
    }

    fn metadata(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.repo.metadata().join(name)).unwrap()
    }

    /// The newest `N.ROLE.json`'s name.
    fn latest(&self, role: &str) -> String {
        let mut best = (0, String::new());
        for e in std::fs::read_dir(self.repo.metadata()).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            if let Some(v) = name
                .strip_suffix(&format!(".{role}.json"))
                .and_then(|v| v.parse().ok())
                && v > best.0
            {
                best = (v, name);
            }
        }
        best.1
    }
}

#[tokio::test]
async fn the_newest_release_for_this_install_is_offered_from_signed_fields_alone() {
    let f = fixture().await;
    let checked = check(&f.settings("1.0.0")).await.unwrap();
    let offer = checked.offer.expect("1.1.0 is offered");
    assert_eq!(offer.release.version, Version::new(1, 1, 0));
    let delta = offer.delta.expect("a delta from 1.0.0");
    assert!(
        delta
            .url
            .as_str()
            .ends_with(&format!("{}.{}", delta.sha256, delta.name))
    );
    assert!(offer.files["weft"].matches(b"shell 1.1.0"));
    assert!(
        f.state.join("root.json").is_file(),
        "the newest root is kept"
    );

    // Up to date, pinned, refused after a rollback, below the minimum, halted.
    assert!(check(&f.settings("1.1.0")).await.unwrap().offer.is_none());
    let mut pinned = f.settings("1.1.0");
    pinned.pinned = Some(Version::new(1, 0, 0));
    assert_eq!(
        check(&pinned).await.unwrap().offer.unwrap().release.version,
        Version::new(1, 0, 0)
    );
    let mut refused = f.settings("1.0.0");
    refused.refused.insert(Version::new(1, 1, 0));
    assert!(check(&refused).await.unwrap().offer.is_none());
    let mut old = release("2.0.0", 100);
    old.min_version = Some(Version::new(1, 1, 0));
    repository::publish(&f.repo, &f.keys, old, &files("2"), &Lifetimes::default())
        .await
        .unwrap();
    assert_eq!(
        support::offered(&f.settings("1.0.0")).await,
        Version::new(1, 1, 0)
    );
    assert_eq!(
        support::offered(&f.settings("1.1.0")).await,
        Version::new(2, 0, 0)
    );
    repository::set_rollout(
        &f.repo,
        &f.keys,
        "stable",
        &Version::new(2, 0, 0),
        0,
        &Lifetimes::default(),
    )
    .await
    .unwrap();
    let mut now = f.settings("1.1.0");
    now.skip_staging = true;
    let checked = check(&now).await.unwrap();
    assert!(
        checked.offer.is_none(),
        "a halted release is not offered, even by check now"
    );
    assert_eq!(checked.newest.unwrap().version, Version::new(2, 0, 0));
}

/// `metadata` with its version raised and signed by key `name` of `keys` alone.
fn forge(metadata: &[u8], keys: &KeyDir, name: &str) -> Vec<u8> {
    use serde::Serialize;
    let mut doc: serde_json::Value = serde_json::from_slice(metadata).unwrap();
    let version = doc["signed"]["version"].as_u64().unwrap();
    doc["signed"]["version"] = (version + 1).into();
    let mut canonical = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut canonical,
        olpc_cjson::CanonicalFormatter::new(),
    );
    doc["signed"].serialize(&mut ser).unwrap();
    let pair =
        aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(&std::fs::read(keys.path(name)).unwrap())
            .unwrap();
    let keyid: String = keys
        .public(name)
        .unwrap()
        .key_id()
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let sig: String = pair
        .sign(&canonical)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    doc["signatures"] = serde_json::json!([{"keyid": keyid, "sig": sig}]);
    serde_json::to_vec(&doc).unwrap()
}

#[tokio::test]
async fn metadata_tampered_signed_by_a_wrong_key_or_role_or_below_threshold_is_refused() {
    let f = fixture().await;
    let targets = f.latest("targets");
    // A flipped byte in the targets metadata (a digit of a signed hash).
    let mut flipped = f.metadata(&targets);
    let key = flipped.windows(8).position(|w| w == b"\"sha256\"").unwrap() + 8;
    let at = key + flipped[key..].iter().position(|&b| b == b'"').unwrap() + 1;
    flipped[at] = if flipped[at] == b'0' { b'1' } else { b'0' };
    f.server
        .set(&format!("metadata/{targets}"), Override::Bytes(flipped));
    let e = check(&f.settings("1.0.0")).await.unwrap_err();
    assert!(
        matches!(
            e.untrusted(),
            Some(Untrusted::Tampered | Untrusted::Signatures)
        ),
        "{e}"
    );
    f.server.clear();

    // A newer timestamp signed by the targets key (the wrong role), then by a key of no
    // role at all.
    let stranger = KeyDir::new(f.state.parent().unwrap().join("stranger"));
    stranger.generate_missing().unwrap();
    for (keys, name) in [(&f.keys, "targets"), (&stranger, "timestamp")] {
        let forged = forge(&f.metadata("timestamp.json"), keys, name);
        f.server
            .set("metadata/timestamp.json", Override::Bytes(forged));
        let e = check(&f.settings("1.0.0")).await.unwrap_err();
        assert_eq!(e.untrusted(), Some(Untrusted::Signatures), "{name}: {e}");
        f.server.clear();
    }
    // The same forging with the timestamp key itself is trusted: the refusals above
    // are the keys', not the forging's.
    let genuine = forge(&f.metadata("timestamp.json"), &f.keys, "timestamp");
    f.server
        .set("metadata/timestamp.json", Override::Bytes(genuine));
    check(&f.settings("1.0.0"))
        .await
        .expect("signed by the timestamp key");
    f.server.clear();

    // A new root signed by one root key of the two it needs.
    let root: serde_json::Value = serde_json::from_slice(&f.metadata("1.root.json")).unwrap();
    let mut next = root.clone();
    next["signed"]["version"] = 2.into();
    next["signatures"] = serde_json::Value::Array(vec![root["signatures"][0].clone()]);
    f.server.set(
        "metadata/2.root.json",
        Override::Bytes(serde_json::to_vec(&next).unwrap()),
    );
    let e = check(&f.settings("1.0.0")).await.unwrap_err();
    assert_eq!(e.untrusted(), Some(Untrusted::Signatures), "{e}");
}

#[tokio::test]
async fn older_expired_or_endless_metadata_and_a_clock_set_back_are_refused() {
    let f = fixture().await;
    let old_timestamp = f.metadata("timestamp.json");
    let old_snapshot = f.latest("snapshot");
    repository::publish(
        &f.repo,
        &f.keys,
        release("1.2.0", 100),
        &files("1.2"),
        &Lifetimes::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        support::offered(&f.settings("1.0.0")).await,
        Version::new(1, 2, 0)
    );

    // Rollback: the mirror serves the previous timestamp (and its snapshot) again.
    f.server
        .set("metadata/timestamp.json", Override::Bytes(old_timestamp));
    let e = check(&f.settings("1.0.0")).await.unwrap_err();
    assert_eq!(
        e.untrusted(),
        Some(Untrusted::Rollback),
        "{e} (older than {old_snapshot})"
    );
    f.server.clear();

    // Freeze: the newest timestamp has expired.
    repository::refresh_timestamp(&f.repo, &f.keys, SignedDuration::from_hours(-1))
        .await
        .unwrap();
    let e = check(&f.settings("1.0.0")).await.unwrap_err();
    assert_eq!(e.untrusted(), Some(Untrusted::Expired), "{e}");
    repository::refresh_timestamp(&f.repo, &f.keys, SignedDuration::from_hours(1))
        .await
        .unwrap();
    check(&f.settings("1.0.0")).await.unwrap();

    // Endless metadata: cut off at the limit; the server sent little more.
    f.server.set("metadata/timestamp.json", Override::Endless);
    let e = check(&f.settings("1.0.0")).await.unwrap_err();
    assert_eq!(e.untrusted(), Some(Untrusted::TooLarge), "{e}");
    let sent = f.server.sent_endless.load(Ordering::Relaxed);
    // What the server got written before the connection closed: the 64 KiB limit, the
    // client's few chunks read ahead, and the sockets' buffers. Not endless.
    assert!(sent < 32 * 1024 * 1024, "{sent} bytes sent before the cut");
    f.server.clear();

    // A clock set backwards, below the latest time this install has seen.
    let seen = f.state.join("tuf/latest_known_time.json");
    let future = jiff::Timestamp::now() + SignedDuration::from_hours(24 * 365);
    std::fs::write(&seen, serde_json::to_vec(&future.to_string()).unwrap()).unwrap();
    let e = check(&f.settings("1.0.0")).await.unwrap_err();
    assert_eq!(e.untrusted(), Some(Untrusted::ClockBackwards), "{e}");
}
