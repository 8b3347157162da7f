//! Reading a directory document from a file or over HTTP(S), bounded in size and time.

use std::{io::Read, path::PathBuf, time::Duration};

use weft_workspace::DirectorySource;

use crate::Base;

/// The largest directory document read.
const MAX_BYTES: u64 = 32 << 20;
/// How long fetching one directory may take, connection to last byte.
const FETCH_TIMEOUT: Duration = Duration::from_secs(15);

/// A directory document and where it came from.
pub(crate) struct Document {
    pub(crate) body: Vec<u8>,
    origin: Origin,
}

enum Origin {
    Folder(PathBuf),
    Url(url::Url),
}

impl Document {
    /// What its records' relative URLs are relative to.
    pub(crate) fn base(&self) -> Base<'_> {
        match &self.origin {
            Origin::Folder(folder) => Base::Folder(folder),
            Origin::Url(url) => Base::Url(url),
        }
    }
}

/// Reads the document of `source`; on failure, what went wrong.
pub(crate) fn read(source: &DirectorySource) -> Result<Document, String> {
    match source {
        DirectorySource::File(path) => {
            let canonical =
                std::fs::canonicalize(path).map_err(|e| format!("cannot read the file: {e}"))?;
            let file = std::fs::File::open(&canonical)
                .map_err(|e| format!("cannot read the file: {e}"))?;
            let mut body = Vec::new();
            file.take(MAX_BYTES + 1)
                .read_to_end(&mut body)
                .map_err(|e| format!("cannot read the file: {e}"))?;
            if body.len() as u64 > MAX_BYTES {
                return Err(format!("the file is larger than {} MiB", MAX_BYTES >> 20));
            }
            let folder = canonical
                .parent()
                .ok_or("the file has no folder")?
                .to_owned();
            Ok(Document {
                body,
                origin: Origin::Folder(folder),
            })
        }
        DirectorySource::Url(url) => {
            let url = apps_url(url);
            let body = get(&url)?;
            Ok(Document {
                body,
                origin: Origin::Url(url),
            })
        }
    }
}

/// The URL to fetch for a directory URL: itself when it names a document, its
/// `v2/apps` when it is a server's base URL.
pub(crate) fn apps_url(url: &url::Url) -> url::Url {
    let path = url.path();
    if path.ends_with(".json") || path.trim_end_matches('/').ends_with("/v2/apps") {
        return url.clone();
    }
    let mut base = url.clone();
    if !path.ends_with('/') {
        base.set_path(&format!("{path}/"));
    }
    base.join("v2/apps").unwrap_or_else(|_| url.clone())
}

fn get(url: &url::Url) -> Result<Vec<u8>, String> {
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(FETCH_TIMEOUT))
        .http_status_as_error(false)
        .tls_config(tls)
        .build()
        .into();
    let mut response = agent
        .get(url.as_str())
        .header("Accept", "application/json")
        .call()
        .map_err(|e| format!("cannot fetch {url}: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("fetching {url} answered HTTP {status}"));
    }
    response
        .body_mut()
        .with_config()
        .limit(MAX_BYTES)
        .read_to_vec()
        .map_err(|e| format!("cannot read {url}: {e}"))
}
