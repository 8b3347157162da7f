//! Downloads of signed targets from a real HTTP server on 127.0.0.1: resumed after a
//! cut, started over where the server ignores ranges, and refused when the bytes are
//! not the signed ones.

mod support;

use std::sync::atomic::Ordering;

use support::{Override, Server, release};
use weft_release::repository::{self, Lifetimes};
use weft_update_repo::archive::Files;
use weft_updater::{TargetRef, Untrusted, check, download, transport::MirrorTransport};

struct Fixture {
    dir: tempfile::TempDir,
    server: Server,
    full: TargetRef,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (repo, keys) = support::new_repository(dir.path()).await;
    let files = Files::from([(
        "weft".to_owned(),
        (support::noise(2 * 1024 * 1024, 0x9e37_79b9_7f4a_7c15), true),
    )]);
    repository::publish(
        &repo,
        &keys,
        release("2.0.0", 100),
        &files,
        &Lifetimes::default(),
    )
    .await
    .unwrap();
    let server = Server::serve(&dir.path().join("repo"));
    let settings = support::settings(&server.base, &repo, dir.path().join("state"), "1.0.0");
    let full = check(&settings).await.unwrap().offer.unwrap().full;
    Fixture { dir, server, full }
}

impl Fixture {
    fn path(&self) -> String {
        self.full.url.path().trim_start_matches('/').to_owned()
    }

    fn fetch(&self) -> Result<weft_updater::Downloaded, weft_updater::UpdateError> {
        let mut seen = Vec::new();
        let result = download(
            &MirrorTransport::download_agent(),
            &self.full,
            &self.dir.path().join("downloads"),
            &mut |done, total| seen.push((done, total)),
        );
        assert!(
            seen.windows(2).all(|w| w[0].0 <= w[1].0),
            "progress only grows"
        );
        result
    }

    fn leftovers(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("downloads")).map_or(0, |d| d.count())
    }
}

#[tokio::test]
async fn a_download_cut_at_half_resumes_and_transfers_little_more_than_the_artifact() {
    let f = fixture().await;
    let length = f.full.length;
    assert!(length > 2_000_000, "{length}");
    f.server.set(&f.path(), Override::CutAfter(length / 2));
    let e = f.fetch().unwrap_err();
    assert!(e.to_string().contains("resumes from there"), "{e}");
    f.server.clear();
    let done = f.fetch().unwrap();
    assert!(done.resumed);
    assert!(
        done.transferred <= length / 2 + 1,
        "{} of {length}",
        done.transferred
    );
    let sent = f.server.sent.load(Ordering::Relaxed);
    assert!(
        sent as f64 <= 1.05 * length as f64,
        "{sent} bytes for a {length}-byte artifact"
    );
    assert_eq!(
        weft_updater::download::file_sha256(&done.path).unwrap(),
        f.full.sha256
    );
    // Done is done: asking again transfers nothing.
    assert_eq!(f.fetch().unwrap().transferred, 0);
}

#[tokio::test]
async fn a_server_without_ranges_starts_over_and_still_ends_verified() {
    let f = fixture().await;
    f.server.ranges.store(false, Ordering::Relaxed);
    f.server
        .set(&f.path(), Override::CutAfter(f.full.length / 2));
    f.fetch().unwrap_err();
    f.server.clear();
    let done = f.fetch().unwrap();
    assert!(!done.resumed);
    assert_eq!(done.transferred, f.full.length);
    assert_eq!(
        weft_updater::download::file_sha256(&done.path).unwrap(),
        f.full.sha256
    );
}

#[tokio::test]
async fn bytes_other_than_the_signed_ones_are_refused_and_deleted() {
    let f = fixture().await;
    let genuine = std::fs::read(f.dir.path().join("repo").join(f.path())).unwrap();
    let mut flipped = genuine.clone();
    flipped[genuine.len() / 3] ^= 0x20;
    f.server.set(&f.path(), Override::Bytes(flipped));
    let e = f.fetch().unwrap_err();
    assert_eq!(e.untrusted(), Some(Untrusted::Tampered), "{e}");
    assert_eq!(f.leftovers(), 0, "nothing of it is kept");

    let mut longer = genuine.clone();
    longer.extend_from_slice(&[0; 100_000]);
    f.server.set(&f.path(), Override::Bytes(longer));
    let e = f.fetch().unwrap_err();
    assert_eq!(e.untrusted(), Some(Untrusted::TooLarge), "{e}");
    assert_eq!(f.leftovers(), 0);

    f.server.clear();
    f.fetch().expect("the genuine artifact downloads");
}
