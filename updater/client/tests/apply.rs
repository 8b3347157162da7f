//! Applying an offer end to end against a real HTTP server on 127.0.0.1: by delta when
//! the installed files allow it, by the full archive when they do not, and never when
//! the bytes are not the signed ones.

mod support;

use support::{Override, Server, release};
use weft_release::repository::{self, Lifetimes, RepoDir};
use weft_update_repo::archive::Files;
use weft_updater::{
    Untrusted, apply::apply, check, install::Installation, transport::MirrorTransport,
};

fn shell(version: u8) -> Vec<u8> {
    let mut bytes = support::noise(1024 * 1024, 0x2545_f491_4f6c_dd1d);
    bytes[4096] = version;
    bytes
}

fn files(version: u8) -> Files {
    Files::from([
        ("weft".to_owned(), (shell(version), true)),
        ("weft-app".to_owned(), (b"host".to_vec(), true)),
    ])
}

struct Fixture {
    dir: tempfile::TempDir,
    repo: RepoDir,
    server: Server,
    root: std::path::PathBuf,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (repo, keys) = support::new_repository(dir.path()).await;
    for (v, tag) in [("1.0.0", 1), ("1.1.0", 2)] {
        repository::publish(
            &repo,
            &keys,
            release(v, 100),
            &files(tag),
            &Lifetimes::default(),
        )
        .await
        .unwrap();
    }
    let root = dir.path().join("install");
    let (mut install, _) = Installation::open(&root).unwrap();
    let v1 = semver::Version::new(1, 0, 0);
    install.install(&v1, &files(1), &mut |_| {}).unwrap();
    install.mark_healthy(&v1).unwrap();
    let server = Server::serve(&dir.path().join("repo"));
    Fixture {
        dir,
        repo,
        server,
        root,
    }
}

impl Fixture {
    async fn apply(&mut self) -> Result<weft_updater::apply::Applied, weft_updater::UpdateError> {
        let settings = support::settings(
            &self.server.base,
            &self.repo,
            self.dir.path().join("state"),
            "1.0.0",
        );
        let offer = check(&settings)
            .await
            .unwrap()
            .offer
            .expect("1.1.0 is offered");
        apply(
            &self.root,
            &offer,
            &MirrorTransport::download_agent(),
            &self.dir.path().join("downloads"),
            &mut |_, _| {},
        )
    }

    fn current(&self) -> String {
        Installation::peek(&self.root)
            .unwrap()
            .current
            .unwrap()
            .to_string()
    }

    fn files_of(&self, major: u64, minor: u64) -> Files {
        Installation::open(&self.root)
            .unwrap()
            .0
            .files_of(&semver::Version::new(major, minor, 0))
            .unwrap()
    }
}

#[tokio::test]
async fn a_delta_makes_the_new_release_from_the_installed_one_for_a_fraction_of_the_bytes() {
    let mut f = fixture().await;
    let applied = f.apply().await.unwrap();
    assert!(applied.by_delta, "{applied:?}");
    assert!(
        applied.transferred * 20 < 1024 * 1024,
        "{} bytes",
        applied.transferred
    );
    assert_eq!(f.current(), "1.1.0");
    assert_eq!(f.files_of(1, 1), files(2));
}

#[tokio::test]
async fn a_delta_that_does_not_give_the_signed_files_falls_back_to_the_full_archive() {
    let mut f = fixture().await;
    // The installed binary differs from the release it claims to be.
    let installed = f.root.join("versions/1.0.0/weft");
    let mut bytes = std::fs::read(&installed).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&installed, bytes).unwrap();
    let applied = f.apply().await.unwrap();
    assert!(!applied.by_delta);
    let why = applied.delta_failed.unwrap();
    // A bsdiff patch applies to any base and its result misses the signed digest; a
    // zstd patch carries a checksum of its result and stops there.
    assert!(
        why.contains("weft of 1.1.0 differs from its signed digest")
            || why.contains("the patch for weft does not apply"),
        "{why}"
    );
    assert_eq!(f.current(), "1.1.0");
    assert_eq!(f.files_of(1, 1), files(2));
}

#[tokio::test]
async fn a_flipped_byte_in_the_artifacts_is_refused_and_the_installed_version_stays() {
    let mut f = fixture().await;
    let settings = support::settings(&f.server.base, &f.repo, f.dir.path().join("state"), "1.0.0");
    let offer = check(&settings).await.unwrap().offer.unwrap();
    for target in [offer.delta.as_ref().unwrap(), &offer.full] {
        let path = target.url.path().trim_start_matches('/').to_owned();
        let mut bytes = std::fs::read(f.dir.path().join("repo").join(&path)).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x40;
        f.server.set(&path, Override::Bytes(bytes));
    }
    let e = f.apply().await.unwrap_err();
    assert_eq!(e.untrusted(), Some(Untrusted::Tampered), "{e}");
    assert_eq!(f.current(), "1.0.0");
    assert_eq!(f.files_of(1, 0), files(1));
}
