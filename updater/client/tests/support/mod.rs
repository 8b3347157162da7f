//! A static file server for a repository folder on 127.0.0.1, as any web server serves
//! one (with `Range` and `If-Range`, or without when told), that can also misbehave per
//! path: other bytes, bytes forever, or a connection cut after some bytes.

#![allow(dead_code)] // each test file uses its part

use std::{
    collections::BTreeSet,
    io::Read,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

/// What the server does instead of serving a path's file.
#[derive(Clone)]
pub enum Override {
    /// These bytes.
    Bytes(Vec<u8>),
    /// Bytes forever.
    Endless,
    /// The file, but the connection ends after this many bytes of it.
    CutAfter(u64),
}

/// The server; it stops when dropped.
pub struct Server {
    pub base: url::Url,
    overrides: Arc<Mutex<Vec<(String, Override)>>>,
    /// Bytes of bodies written, all paths.
    pub sent: Arc<AtomicU64>,
    /// Bytes written of endless bodies.
    pub sent_endless: Arc<AtomicU64>,
    /// Whether `Range` requests are honoured.
    pub ranges: Arc<AtomicBool>,
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Counted<R> {
    inner: R,
    count: Arc<AtomicU64>,
    limit: Option<u64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let sent = self.count.load(Ordering::Relaxed);
        let room = match self.limit {
            Some(limit) if sent >= limit => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "cut",
                ));
            }
            Some(limit) => (limit - sent).min(buf.len() as u64) as usize,
            None => buf.len(),
        };
        let n = self.inner.read(&mut buf[..room])?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

struct Spaces;

impl Read for Spaces {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        buf.fill(b' ');
        Ok(buf.len())
    }
}

impl Server {
    /// Serves `dir`.
    pub fn serve(dir: &Path) -> Server {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let overrides: Arc<Mutex<Vec<(String, Override)>>> = Arc::default();
        let sent = Arc::new(AtomicU64::new(0));
        let sent_endless = Arc::new(AtomicU64::new(0));
        let ranges = Arc::new(AtomicBool::new(true));
        let (s, o, total, endless, honour, root) = (
            server.clone(),
            overrides.clone(),
            sent.clone(),
            sent_endless.clone(),
            ranges.clone(),
            dir.to_owned(),
        );
        let thread = std::thread::spawn(move || {
            for request in s.incoming_requests() {
                let path = request.url().trim_start_matches('/').to_owned();
                let chosen = o
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|(p, _)| *p == path)
                    .map(|(_, v)| v.clone());
                let file = match &chosen {
                    Some(Override::Bytes(b)) => Some(b.clone()),
                    Some(Override::Endless) => None,
                    _ if path.contains("..") => None,
                    _ => std::fs::read(root.join(&path)).ok(),
                };
                if let Some(Override::Endless) = chosen {
                    let body = Counted {
                        inner: Spaces,
                        count: endless.clone(),
                        limit: None,
                    };
                    let _ = request.respond(tiny_http::Response::new(
                        200.into(),
                        vec![],
                        body,
                        None,
                        None,
                    ));
                    continue;
                }
                let Some(file) = file else {
                    let _ = request.respond(tiny_http::Response::empty(404));
                    continue;
                };
                let etag = format!(
                    "\"{}-{}\"",
                    file.len(),
                    file.iter().map(|&b| b as u64).sum::<u64>()
                );
                let header = |name: &'static str| {
                    request
                        .headers()
                        .iter()
                        .find(|h| h.field.equiv(name))
                        .map(|h| h.value.as_str().to_owned())
                };
                let start = match (header("Range"), header("If-Range")) {
                    (Some(range), if_range)
                        if honour.load(Ordering::Relaxed)
                            && if_range.as_ref().is_none_or(|v| *v == etag) =>
                    {
                        range
                            .strip_prefix("bytes=")
                            .and_then(|r| r.strip_suffix('-'))
                            .and_then(|n| n.parse::<usize>().ok())
                            .filter(|&n| n < file.len())
                    }
                    _ => None,
                };
                let limit = match chosen {
                    Some(Override::CutAfter(n)) => Some(n),
                    _ => None,
                };
                let (status, body, mut headers) = match start {
                    Some(from) => (
                        206,
                        file[from..].to_vec(),
                        vec![format!(
                            "Content-Range: bytes {from}-{}/{}",
                            file.len() - 1,
                            file.len()
                        )],
                    ),
                    None => (200, file.clone(), vec![]),
                };
                headers.push(format!("ETag: {etag}"));
                if honour.load(Ordering::Relaxed) {
                    headers.push("Accept-Ranges: bytes".into());
                }
                let length = body.len();
                let counted = Counted {
                    inner: std::io::Cursor::new(body),
                    count: Arc::new(AtomicU64::new(0)),
                    limit,
                };
                let shared = counted.count.clone();
                let response = tiny_http::Response::new(
                    status.into(),
                    headers.iter().map(|h| h.parse().unwrap()).collect(),
                    counted,
                    Some(length),
                    None,
                );
                let _ = request.respond(response);
                total.fetch_add(shared.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        });
        Server {
            base: format!("http://127.0.0.1:{port}/").parse().unwrap(),
            overrides,
            sent,
            sent_endless,
            ranges,
            server,
            thread: Some(thread),
        }
    }

    /// Serves `what` for `path` from now on.
    pub fn set(&self, path: &str, what: Override) {
        self.overrides
            .lock()
            .unwrap()
            .insert(0, (path.to_owned(), what));
    }

    /// Serves the files again.
    pub fn clear(&self) {
        self.overrides.lock().unwrap().clear();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Release `version` of the stable channel for linux-x86_64.
pub fn release(version: &str, percent: u8) -> weft_update_repo::Release {
    weft_update_repo::Release {
        version: semver::Version::parse(version).unwrap(),
        channel: "stable".into(),
        platform: "linux-x86_64".into(),
        rollout_percent: percent,
        min_version: None,
    }
}

/// What an install of `installed` on the stable channel checks, against the repository
/// `repo` served at `base`, keeping its state in `state`.
pub fn settings(
    base: &url::Url,
    repo: &weft_release::repository::RepoDir,
    state: PathBuf,
    installed: &str,
) -> weft_updater::CheckSettings {
    weft_updater::CheckSettings {
        mirror: weft_updater::Mirror::at(base).unwrap(),
        shipped_root: std::fs::read(repo.first_root()).unwrap(),
        state_dir: state,
        channel: "stable".into(),
        platform: "linux-x86_64".into(),
        installed: semver::Version::parse(installed).unwrap(),
        pinned: None,
        install_id: "install-1".into(),
        skip_staging: false,
        refused: BTreeSet::new(),
    }
}

/// `len` bytes that do not compress, the same for the same `seed`.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len.div_ceil(8))
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .take(len)
        .collect()
}

/// A new repository in `dir/repo` with its keys in `dir/keys`.
pub async fn new_repository(
    dir: &Path,
) -> (
    weft_release::repository::RepoDir,
    weft_release::keys::KeyDir,
) {
    let repo = weft_release::repository::RepoDir::new(dir.join("repo"));
    let keys = weft_release::keys::KeyDir::new(dir.join("keys"));
    weft_release::repository::init(&repo, &keys, &Default::default())
        .await
        .unwrap();
    (repo, keys)
}

/// The version a check with `settings` offers (panics when none is).
pub async fn offered(settings: &weft_updater::CheckSettings) -> semver::Version {
    weft_updater::check(settings)
        .await
        .unwrap()
        .offer
        .expect("a release is offered")
        .release
        .version
}
