//! The publisher's repository, loaded back as a client loads it (tough, every signature
//! and version checked).

use std::num::NonZeroU64;

use semver::Version;
use tough::RepositoryLoader;
use weft_release::{
    keys::KeyDir,
    repository::{self, Lifetimes, RepoDir},
};
use weft_update_repo::{Artifact, Release, archive};

fn release(version: &str, percent: u8) -> Release {
    Release {
        version: Version::parse(version).unwrap(),
        channel: "stable".into(),
        platform: "linux-x86_64".into(),
        rollout_percent: percent,
        min_version: None,
    }
}

fn files(shell: &[u8]) -> archive::Files {
    archive::Files::from([
        ("weft".to_owned(), (shell.to_vec(), true)),
        ("weft-app".to_owned(), (b"the app host".to_vec(), true)),
    ])
}

async fn load(repo: &RepoDir) -> tough::Repository {
    let root = std::fs::read(repo.first_root()).unwrap();
    let url = |p: std::path::PathBuf| url::Url::from_directory_path(p).unwrap();
    RepositoryLoader::new(&root, url(repo.metadata()), url(repo.targets()))
        .load()
        .await
        .expect("the repository loads as a client loads it")
}

fn artifacts(repo: &tough::Repository) -> Vec<(String, Artifact)> {
    let mut all: Vec<_> = repo
        .all_targets()
        .filter_map(|(name, t)| {
            Artifact::from_custom(&t.custom)
                .unwrap()
                .map(|a| (name.raw().to_owned(), a))
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

#[tokio::test]
async fn releases_are_published_with_deltas_rolled_out_halted_and_timestamped() {
    let dir = tempfile::tempdir().unwrap();
    let repo = RepoDir::new(dir.path().join("repo"));
    let keys = KeyDir::new(dir.path().join("keys"));
    let lifetimes = Lifetimes::default();
    repository::init(&repo, &keys, &lifetimes).await.unwrap();
    assert!(
        repository::init(&repo, &keys, &lifetimes).await.is_err(),
        "not twice"
    );
    assert!(artifacts(&load(&repo).await).is_empty());

    let shell_1: Vec<u8> = (0..200_000u32)
        .flat_map(|i| i.wrapping_mul(40_503).to_le_bytes())
        .collect();
    let mut shell_2 = shell_1.clone();
    shell_2[777] ^= 1;
    let first = repository::publish(
        &repo,
        &keys,
        release("1.0.0", 100),
        &files(&shell_1),
        &lifetimes,
    )
    .await
    .unwrap();
    assert!(first.deltas.is_empty());
    let second = repository::publish(
        &repo,
        &keys,
        release("1.1.0", 10),
        &files(&shell_2),
        &lifetimes,
    )
    .await
    .unwrap();
    let delta = &second.deltas[&Version::new(1, 0, 0)];
    let (delta_name, delta_len) = (&delta.name, &delta.length);
    let weft_patch = delta.patches.iter().find(|p| p.name == "weft").unwrap();
    assert_eq!(weft_patch.sizes.len(), 2, "both formats measured");
    assert_eq!(weft_patch.sizes[0].0, weft_patch.chosen, "the smaller kept");
    assert!(
        *delta_len * 20 < second.full.1,
        "a small patch: {delta_len} of {}",
        second.full.1
    );

    let loaded = load(&repo).await;
    let all = artifacts(&loaded);
    assert_eq!(all.len(), 3, "{all:?}");
    let Some((
        _,
        Artifact::Full {
            release: r,
            files: digests,
            deltas,
        },
    )) = all.iter().find(|(n, _)| n == &second.full.0)
    else {
        panic!("no full target {}", second.full.0)
    };
    assert_eq!(r.rollout_percent, 10);
    assert!(digests["weft"].matches(&shell_2));
    assert_eq!(&deltas[&Version::new(1, 0, 0)], delta_name);

    // The delta, as published, turns 1.0.0's files into 1.1.0's.
    let target = loaded
        .all_targets()
        .find(|(n, _)| n.raw() == delta_name)
        .unwrap()
        .1;
    let hex: String = target
        .hashes
        .sha256
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let delta = std::fs::read(repo.targets().join(format!("{hex}.{delta_name}"))).unwrap();
    let patched = archive::apply_delta(&files(&shell_1), &delta, 1 << 24).unwrap();
    assert!(digests["weft"].matches(&patched["weft"].0));

    // Not the same version twice, nor an older one.
    for again in ["1.1.0", "1.0.5"] {
        let e = repository::publish(&repo, &keys, release(again, 100), &files(b"x"), &lifetimes)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("must be newer"), "{e}");
    }

    // Rollout raised, then halted: every target of the release changes.
    let v = Version::new(1, 1, 0);
    assert_eq!(
        repository::set_rollout(&repo, &keys, "stable", &v, 50, &lifetimes)
            .await
            .unwrap(),
        2
    );
    repository::set_rollout(&repo, &keys, "stable", &v, 0, &lifetimes)
        .await
        .unwrap();
    let halted = load(&repo).await;
    for (name, artifact) in artifacts(&halted) {
        let expected = if artifact.release().version == v {
            0
        } else {
            100
        };
        assert_eq!(artifact.release().rollout_percent, expected, "{name}");
    }
    assert!(
        repository::set_rollout(&repo, &keys, "beta", &v, 5, &lifetimes)
            .await
            .is_err()
    );

    // The online key re-signs the timestamp alone.
    let before = halted.timestamp().signed.version;
    let after = repository::refresh_timestamp(&repo, &keys, jiff::SignedDuration::from_hours(2))
        .await
        .unwrap();
    assert_eq!(NonZeroU64::new(after), before.checked_add(1));
    assert_eq!(load(&repo).await.timestamp().signed.version.get(), after);
}
