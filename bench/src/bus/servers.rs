//! The servers a bus benchmark runs against, each in its own process: Weft's broker,
//! and the raw Unix-socket relay that marks the physical floor.

use std::{
    path::Path,
    sync::{Arc, Mutex},
};

use anyhow::Context;
use bytes::Bytes;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{UnixListener, UnixStream},
    sync::mpsc,
};
use weft_broker::{Broker, BrokerConfig};
use weft_proto::Token;

/// Runs a Weft broker at `socket` accepting `token` (hex) as a command-line client,
/// until killed.
pub fn serve_weft(socket: &Path, token: &str) -> anyhow::Result<()> {
    let token = Token::from_hex(token).context("bad --token")?;
    // The same runtime shape as the shell's.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (broker, handle, events) = Broker::bind(BrokerConfig::new(socket))?;
        drop(events);
        handle.grant_cli(token);
        broker.run().await;
        Ok(())
    })
}

/// The first byte a floor client sends: what it is.
pub const ROLE_PUBLISHER: u8 = b'P';
/// A subscriber: receives every byte any publisher sends.
pub const ROLE_SUBSCRIBER: u8 = b'S';
/// An echo client: gets back every byte it sends.
pub const ROLE_ECHO: u8 = b'E';

/// Runs the floor server at `socket` until killed: publishers' bytes are copied, in
/// chunks as read, to every subscriber; echo clients get their bytes back. No framing,
/// no routing: the cost of moving bytes through one process in the middle.
pub fn serve_uds(socket: &Path) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket)?;
        let subscribers: Arc<Mutex<Vec<mpsc::UnboundedSender<Bytes>>>> = Arc::default();
        loop {
            let (stream, _) = listener.accept().await?;
            tokio::spawn(serve_floor_client(stream, subscribers.clone()));
        }
    })
}

async fn serve_floor_client(
    mut stream: UnixStream,
    subscribers: Arc<Mutex<Vec<mpsc::UnboundedSender<Bytes>>>>,
) -> std::io::Result<()> {
    let role = stream.read_u8().await?;
    let mut buf = vec![0u8; 64 * 1024];
    match role {
        ROLE_SUBSCRIBER => {
            let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
            subscribers.lock().expect("not poisoned").push(tx);
            stream.write_u8(b'!').await?;
            while let Some(chunk) = rx.recv().await {
                stream.write_all(&chunk).await?;
            }
        }
        ROLE_PUBLISHER => loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            let chunk = Bytes::copy_from_slice(&buf[..n]);
            subscribers
                .lock()
                .expect("not poisoned")
                .retain(|s| s.send(chunk.clone()).is_ok());
        },
        ROLE_ECHO => loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            stream.write_all(&buf[..n]).await?;
        },
        _ => {}
    }
    Ok(())
}
