//! Downloading a signed target so that it survives restarts and lies: bytes go to
//! `SHA256.partial` beside a small file holding the server's validator (ETag or
//! Last-Modified); a later attempt asks for the rest (`Range`, with `If-Range` so that
//! a changed file starts over) and starts over when the server ignores the range. No
//! more than the signed length is ever read, and the whole file is checked against the
//! signed hash before it is used; a file that fails is deleted.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    check::TargetRef,
    error::{Untrusted, UpdateError},
};

/// Bytes read per call.
const CHUNK: usize = 64 * 1024;

/// A finished download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// The verified file.
    pub path: PathBuf,
    /// Bytes received over the network in this call (less than the file when resumed).
    pub transferred: u64,
    /// Whether it carried on from an earlier, interrupted download.
    pub resumed: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Validator {
    etag: Option<String>,
    last_modified: Option<String>,
}

impl Validator {
    fn if_range(&self) -> Option<&str> {
        self.etag.as_deref().or(self.last_modified.as_deref())
    }
}

/// Downloads `target` into `dir` (resuming what an earlier call left), reporting
/// `(bytes so far, total)` to `progress`; the verified file.
pub fn download(
    agent: &ureq::Agent,
    target: &TargetRef,
    dir: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Downloaded, UpdateError> {
    std::fs::create_dir_all(dir).map_err(|e| UpdateError::state(dir, e))?;
    let done = dir.join(format!("{}.{}", target.sha256, target.name));
    if done.is_file() && file_sha256(&done).is_ok_and(|h| h == target.sha256) {
        return Ok(Downloaded {
            path: done,
            transferred: 0,
            resumed: false,
        });
    }
    let partial = dir.join(format!("{}.partial", target.sha256));
    let validator_path = dir.join(format!("{}.partial.json", target.sha256));
    let have = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    let validator: Option<Validator> = std::fs::read(&validator_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let resume_from = match &validator {
        Some(v) if have > 0 && have < target.length && v.if_range().is_some() => Some(have),
        _ => None,
    };

    let mut request = agent.get(target.url.as_str());
    if let (Some(from), Some(v)) = (resume_from, &validator) {
        request = request
            .header("Range", format!("bytes={from}-"))
            .header("If-Range", v.if_range().unwrap_or_default());
    }
    let response = request
        .call()
        .map_err(|e| UpdateError::Unreachable(format!("{}: {e}", target.url)))?;
    let status = response.status().as_u16();
    let resumed = status == 206 && resume_from.is_some_and(|from| starts_at(&response, from));
    if status == 206 && !resumed {
        discard(&partial, &validator_path);
        return Err(UpdateError::Unreachable(format!(
            "{}: the server sent a range that does not continue the download; it starts over",
            target.url
        )));
    }
    if !resumed && status != 200 {
        return Err(UpdateError::Unreachable(format!(
            "{}: the server answered {status}",
            target.url
        )));
    }
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let fresh = Validator {
        etag: header("etag"),
        last_modified: header("last-modified"),
    };
    let mut file = if resumed {
        OpenOptions::new()
            .append(true)
            .open(&partial)
            .map_err(|e| UpdateError::state(&partial, e))?
    } else {
        let bytes = serde_json::to_vec(&fresh).expect("a validator serialises");
        std::fs::write(&validator_path, bytes)
            .map_err(|e| UpdateError::state(&validator_path, e))?;
        File::create(&partial).map_err(|e| UpdateError::state(&partial, e))?
    };
    let mut written = if resumed { have } else { 0 };
    let mut transferred = 0;
    let mut body = response.into_body().into_reader();
    let mut chunk = vec![0; CHUNK];
    progress(written, target.length);
    loop {
        let n = match body.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                let _ = file.sync_all();
                return Err(UpdateError::Unreachable(format!(
                    "{}: the download stopped at {written} of {} bytes ({e}); it resumes from there",
                    target.url, target.length
                )));
            }
        };
        if written + n as u64 > target.length {
            drop(file);
            discard(&partial, &validator_path);
            return Err(UpdateError::Untrusted {
                kind: Untrusted::TooLarge,
                detail: format!(
                    "{} sent more than the signed {} bytes; cut off",
                    target.url, target.length
                ),
            });
        }
        file.write_all(&chunk[..n])
            .map_err(|e| UpdateError::state(&partial, e))?;
        written += n as u64;
        transferred += n as u64;
        progress(written, target.length);
    }
    file.sync_all()
        .map_err(|e| UpdateError::state(&partial, e))?;
    drop(file);
    if written < target.length {
        return Err(UpdateError::Unreachable(format!(
            "{}: the download stopped at {written} of {} bytes; it resumes from there",
            target.url, target.length
        )));
    }
    let hash = file_sha256(&partial).map_err(|e| UpdateError::state(&partial, e))?;
    if hash != target.sha256 {
        discard(&partial, &validator_path);
        return Err(UpdateError::Untrusted {
            kind: Untrusted::Tampered,
            detail: format!(
                "{} has SHA-256 {hash}, not the signed {}; deleted",
                target.name, target.sha256
            ),
        });
    }
    std::fs::rename(&partial, &done).map_err(|e| UpdateError::state(&done, e))?;
    let _ = std::fs::remove_file(&validator_path);
    Ok(Downloaded {
        path: done,
        transferred,
        resumed,
    })
}

/// Whether a 206 answer's `Content-Range` starts where the partial file ends.
fn starts_at(response: &ureq::http::Response<ureq::Body>, from: u64) -> bool {
    response
        .headers()
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes "))
        .and_then(|v| v.split('-').next())
        .and_then(|start| start.parse::<u64>().ok())
        == Some(from)
}

fn discard(partial: &Path, validator: &Path) {
    let _ = std::fs::remove_file(partial);
    let _ = std::fs::remove_file(validator);
}

/// SHA-256 of a file, lowercase hex.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut chunk = vec![0; CHUNK];
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        hasher.update(&chunk[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
