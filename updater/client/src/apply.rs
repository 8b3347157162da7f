//! Getting an offered release's files onto disk: from a delta against the installed
//! version when one is published (each patched file checked against the signed digest
//! the release's full target carries), else — and after any failure of the delta — from
//! the full archive; then installed side by side ([`crate::install`]).

use std::path::Path;

use weft_update_repo::archive::{self, Files};

use crate::{
    check::Offer,
    download::download,
    error::{Untrusted, UpdateError},
    install::{Installation, Step},
};

/// Largest file a release may hold.
pub const MAX_FILE: u64 = 1 << 30;

/// How an offer was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Whether the delta made the files.
    pub by_delta: bool,
    /// Why the delta was not used, when one was published.
    pub delta_failed: Option<String>,
    /// Bytes received over the network.
    pub transferred: u64,
}

/// Downloads and installs `offer` into the install at `root` (files land in
/// `downloads`), reporting download progress as `(bytes, total)`. The install is held
/// (see [`Installation::open`]) only once the download is done.
pub fn apply(
    root: &Path,
    offer: &Offer,
    agent: &ureq::Agent,
    downloads: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Applied, UpdateError> {
    let mut transferred = 0;
    let mut delta_failed = None;
    let installed = Installation::peek(root)?.current;
    if let (Some(delta), Some(from)) = (&offer.delta, &installed) {
        match download(agent, delta, downloads, progress) {
            Ok(got) => {
                transferred += got.transferred;
                let (mut install, _) = Installation::open(root)?;
                match files_from_delta(&install, offer, delta, &got.path, from) {
                    Ok(files) => {
                        install.install(&offer.release.version, &files, &mut |_: Step| {})?;
                        return Ok(Applied {
                            by_delta: true,
                            delta_failed: None,
                            transferred,
                        });
                    }
                    Err(e) => delta_failed = Some(e.to_string()),
                }
            }
            Err(e) => delta_failed = Some(e.to_string()),
        }
    }
    let got = download(agent, &offer.full, downloads, progress)?;
    transferred += got.transferred;
    let bytes = std::fs::read(&got.path).map_err(|e| UpdateError::state(&got.path, e))?;
    let files = archive::unpack_full(&bytes, MAX_FILE).map_err(|e| UpdateError::Artifact {
        name: offer.full.name.clone(),
        reason: e.to_string(),
    })?;
    check_files(offer, &files)?;
    let (mut install, _) = Installation::open(root)?;
    install.install(&offer.release.version, &files, &mut |_: Step| {})?;
    Ok(Applied {
        by_delta: false,
        delta_failed,
        transferred,
    })
}

/// The release's files made from the installed version `from` and the downloaded
/// delta at `path`, each checked against the release's signed digests.
fn files_from_delta(
    install: &Installation,
    offer: &Offer,
    delta: &crate::check::TargetRef,
    path: &Path,
    from: &semver::Version,
) -> Result<Files, UpdateError> {
    let bytes = std::fs::read(path).map_err(|e| UpdateError::state(path, e))?;
    let base = install.files_of(from)?;
    let patched =
        archive::apply_delta(&base, &bytes, MAX_FILE).map_err(|e| UpdateError::Artifact {
            name: delta.name.clone(),
            reason: e.to_string(),
        })?;
    let mut files = Files::new();
    for (name, digest) in &offer.files {
        let made = match patched.get(name) {
            Some(file) => file.clone(),
            None => base
                .get(name)
                .cloned()
                .ok_or_else(|| UpdateError::Artifact {
                    name: delta.name.clone(),
                    reason: format!("{name} is neither in the delta nor installed"),
                })?,
        };
        files.insert(name.clone(), (made.0, digest.executable));
    }
    check_files(offer, &files)?;
    Ok(files)
}

/// Every file is the one the release's signed digests name, and no other file is there.
fn check_files(offer: &Offer, files: &Files) -> Result<(), UpdateError> {
    let names_match =
        files.len() == offer.files.len() && files.keys().all(|n| offer.files.contains_key(n));
    if !names_match {
        return Err(UpdateError::Untrusted {
            kind: Untrusted::Tampered,
            detail: format!(
                "{} holds {:?}; the release signs {:?}",
                offer.full.name,
                files.keys().collect::<Vec<_>>(),
                offer.files.keys().collect::<Vec<_>>()
            ),
        });
    }
    for (name, (bytes, _)) in files {
        if !offer.files[name].matches(bytes) {
            return Err(UpdateError::Untrusted {
                kind: Untrusted::Tampered,
                detail: format!(
                    "{name} of {} differs from its signed digest",
                    offer.release.version
                ),
            });
        }
    }
    Ok(())
}
