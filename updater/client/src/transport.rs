//! How the client fetches TUF metadata: HTTP(S) through `ureq` (the platform's trust
//! store), or a folder (`file://`, an internal mirror on a share) through `tough`'s own
//! transport.
//!
//! Bodies are streamed to `tough` in chunks through a small bounded channel, so that
//! `tough`'s size limits cut an endless response off with bounded memory: once it stops
//! reading, the reading thread's next send fails and it closes the connection.

use std::{io::Read, time::Duration};

use tough::{FilesystemTransport, Transport, TransportError, TransportErrorKind, TransportStream};
use url::Url;

/// Bytes read per chunk.
const CHUNK: usize = 64 * 1024;
/// Chunks read ahead of `tough`.
const AHEAD: usize = 4;
/// How long a connection may take, and how long it may stall.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// HTTP(S) and folders.
#[derive(Debug, Clone)]
pub struct MirrorTransport {
    agent: ureq::Agent,
}

impl Default for MirrorTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl MirrorTransport {
    /// A transport with the platform's trust store and [`TIMEOUT`]s.
    pub fn new() -> MirrorTransport {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(TIMEOUT))
            .timeout_recv_body(Some(TIMEOUT))
            .http_status_as_error(false)
            .build();
        MirrorTransport {
            agent: config.into(),
        }
    }

    /// An agent for target downloads: the same trust store and connection timeouts,
    /// but no limit on the whole body's time (a large download on a slow link takes
    /// long; an interrupted one resumes).
    pub fn download_agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .timeout_connect(Some(TIMEOUT))
            .timeout_recv_response(Some(TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into()
    }
}

#[tough::async_trait]
impl Transport for MirrorTransport {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        match url.scheme() {
            "file" => FilesystemTransport.fetch(url).await,
            "http" | "https" => {
                let agent = self.agent.clone();
                let (tx, rx) =
                    tokio::sync::mpsc::channel::<Result<tough::Bytes, TransportError>>(AHEAD);
                let (first_tx, first_rx) = tokio::sync::oneshot::channel();
                let shown = url.to_string();
                std::thread::Builder::new()
                    .name("weft-update-fetch".into())
                    .spawn(move || read_into(agent, shown, first_tx, tx))
                    .map_err(|e| {
                        TransportError::new_with_cause(TransportErrorKind::Other, &url, e)
                    })?;
                first_rx.await.map_err(|e| {
                    TransportError::new_with_cause(TransportErrorKind::Other, &url, e)
                })??;
                let stream = tokio_stream(rx);
                Ok(stream)
            }
            _ => Err(TransportError::new(
                TransportErrorKind::UnsupportedUrlScheme,
                url,
            )),
        }
    }
}

fn tokio_stream(
    mut rx: tokio::sync::mpsc::Receiver<Result<tough::Bytes, TransportError>>,
) -> TransportStream {
    Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// Reads `url` on this (blocking) thread: answers `first` with whether the response is
/// a success, then sends the body chunk by chunk until it ends or nobody listens.
fn read_into(
    agent: ureq::Agent,
    url: String,
    first: tokio::sync::oneshot::Sender<Result<(), TransportError>>,
    tx: tokio::sync::mpsc::Sender<Result<tough::Bytes, TransportError>>,
) {
    let response = match agent.get(&url).call() {
        Ok(r) => r,
        Err(e) => {
            let _ = first.send(Err(TransportError::new_with_cause(
                TransportErrorKind::Other,
                &url,
                e,
            )));
            return;
        }
    };
    let status = response.status().as_u16();
    if status == 404 || status == 403 || status == 410 {
        let _ = first.send(Err(TransportError::new(
            TransportErrorKind::FileNotFound,
            &url,
        )));
        return;
    }
    if !(200..300).contains(&status) {
        let _ = first.send(Err(TransportError::new_with_cause(
            TransportErrorKind::Other,
            &url,
            format!("the server answered {status}"),
        )));
        return;
    }
    if first.send(Ok(())).is_err() {
        return;
    }
    let mut body = response.into_body().into_reader();
    loop {
        let mut chunk = vec![0; CHUNK];
        match body.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                chunk.truncate(n);
                if tx.blocking_send(Ok(chunk.into())).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(TransportError::new_with_cause(
                    TransportErrorKind::Other,
                    &url,
                    e,
                )));
                return;
            }
        }
    }
}
