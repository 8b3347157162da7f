//! One side of a bus scenario, in its own process: a subscriber, a publisher, a
//! responder or a requester, against one backend. Subscribers and responders print
//! `ready` once they are listening; every worker prints one JSON line of results last.

use std::{
    io::Write,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use bytes::{BufMut, Bytes, BytesMut};
use clap::{Args, ValueEnum};
use futures_util::{FutureExt, StreamExt};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, BufWriter},
    net::UnixStream,
};
use weft_client::Client;
use weft_proto::{Token, Topic};

use super::{
    clock::{histogram, now_ns, summary},
    servers::{ROLE_ECHO, ROLE_PUBLISHER, ROLE_SUBSCRIBER},
};

/// Which broker a worker talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// Weft's broker over its Unix socket.
    Weft,
    /// nats-server over TCP loopback, with async-nats.
    Nats,
    /// The raw Unix-socket relay/echo floor.
    Uds,
}

impl Backend {
    /// The name printed in results.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Weft => "weft",
            Backend::Nats => "nats",
            Backend::Uds => "uds-floor",
        }
    }
}

/// What a worker does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Count and time messages on the topic.
    Sub,
    /// Publish `count` messages.
    Pub,
    /// Answer requests on the topic with their own payload.
    Responder,
    /// Send `count` requests one after another and time each round trip.
    Requester,
}

/// The worker's command line.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// What to do.
    #[arg(long, value_enum)]
    role: Role,
    /// Against which backend.
    #[arg(long, value_enum)]
    backend: Backend,
    /// The socket path (weft, uds) or URL (nats).
    #[arg(long)]
    addr: String,
    /// Weft's client token, in hexadecimal.
    #[arg(long, default_value = "")]
    token: String,
    /// The topic or subject.
    #[arg(long, default_value = "bench.t")]
    topic: String,
    /// Messages to publish, expect, or requests to send.
    #[arg(long)]
    count: u64,
    /// Payload size in bytes (at least 8: the send time travels in it).
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Messages per second for a publisher; 0 for as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Requests not recorded at the start.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// A subscriber stops after this many seconds without a message.
    #[arg(long, default_value_t = 3.0)]
    idle: f64,
}

/// Runs the worker described by `args`.
pub fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        match args.role {
            Role::Sub => subscriber(&args).await,
            Role::Pub => publisher(&args).await,
            Role::Responder => responder(&args).await,
            Role::Requester => requester(&args).await,
        }
    })?;
    println!("{result}");
    Ok(())
}

fn ready() {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
}

fn payload(size: usize) -> BytesMut {
    let mut p = BytesMut::with_capacity(size.max(8));
    p.put_u64_le(now_ns());
    p.resize(size.max(8), 0);
    p
}

fn sent_at(payload: &[u8]) -> u64 {
    payload
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .unwrap_or(0)
}

async fn weft_client(args: &WorkerArgs) -> anyhow::Result<Client> {
    let token = Token::from_hex(&args.token).context("bad --token")?;
    Ok(Client::connect(&PathBuf::from(&args.addr), &token).await?)
}

/// The next message from `$next` (a cancel-safe future), or `None` after `$idle`
/// without one. The timer is set only when nothing is waiting, so it costs nothing
/// while messages stream in; the same for every backend.
macro_rules! next_within {
    ($idle:expr, $next:expr) => {
        match $next.now_or_never() {
            Some(item) => item,
            None => tokio::time::timeout($idle, $next).await.ok().flatten(),
        }
    };
}

/// Counts messages and records publish→deliver latency until `count` arrived or the
/// topic went quiet for `idle` seconds.
async fn subscriber(args: &WorkerArgs) -> anyhow::Result<serde_json::Value> {
    let idle = Duration::from_secs_f64(args.idle);
    let mut stats = SubStats::default();
    match args.backend {
        Backend::Weft => {
            let client = weft_client(args).await?;
            let mut sub = client.subscribe(&Topic::new(args.topic.clone())?).await?;
            ready();
            while stats.received < args.count {
                match next_within!(idle, sub.next()) {
                    Some(d) => stats.record(&d.payload),
                    None => break,
                }
            }
        }
        Backend::Nats => {
            let client = async_nats::connect(&args.addr).await?;
            let mut sub = client.subscribe(args.topic.clone()).await?;
            client.flush().await?;
            ready();
            while stats.received < args.count {
                match next_within!(idle, sub.next()) {
                    Some(m) => stats.record(&m.payload),
                    None => break,
                }
            }
        }
        Backend::Uds => {
            let mut stream = UnixStream::connect(&args.addr).await?;
            stream.write_u8(ROLE_SUBSCRIBER).await?;
            stream.read_u8().await?;
            ready();
            let mut reader = tokio::io::BufReader::with_capacity(64 * 1024, stream);
            let mut buf = vec![0u8; args.size.max(8)];
            while stats.received < args.count {
                let len = match tokio::time::timeout(idle, reader.read_u32()).await {
                    Ok(Ok(len)) => len as usize,
                    _ => break,
                };
                buf.resize(len, 0);
                reader.read_exact(&mut buf).await?;
                stats.record(&buf);
            }
        }
    }
    Ok(stats.json())
}

#[derive(Default)]
struct SubStats {
    received: u64,
    first_ns: u64,
    last_ns: u64,
    latency: Option<hdrhistogram::Histogram<u64>>,
}

impl SubStats {
    fn record(&mut self, payload: &[u8]) {
        let now = now_ns();
        if self.received == 0 {
            self.first_ns = now;
        }
        self.last_ns = now;
        self.received += 1;
        let h = self.latency.get_or_insert_with(histogram);
        let _ = h.record(now.saturating_sub(sent_at(payload)).max(1));
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "received": self.received,
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
            "latency": self.latency.as_ref().map(summary),
        })
    }
}

/// Publishes `count` messages, as fast as possible or at `rate` per second (open loop:
/// a late message is sent at once, never skipped).
async fn publisher(args: &WorkerArgs) -> anyhow::Result<serde_json::Value> {
    let start = Instant::now();
    let period = (args.rate > 0).then(|| Duration::from_secs_f64(1.0 / args.rate as f64));
    let pace = |i: u64| async move {
        if let Some(p) = period {
            tokio::time::sleep_until((start + p * i as u32).into()).await;
        }
    };
    match args.backend {
        Backend::Weft => {
            let client = weft_client(args).await?;
            let topic = Topic::new(args.topic.clone())?;
            for i in 0..args.count {
                pace(i).await;
                client
                    .publish_nowait(&topic, payload(args.size).freeze())
                    .await?;
            }
            // An acknowledged publish after the others: they have all been routed.
            client
                .publish(&Topic::new("bench.flush")?, Bytes::new())
                .await?;
        }
        Backend::Nats => {
            let client = async_nats::connect(&args.addr).await?;
            for i in 0..args.count {
                pace(i).await;
                client
                    .publish(args.topic.clone(), payload(args.size).freeze())
                    .await?;
            }
            client.flush().await?;
        }
        Backend::Uds => {
            let mut stream = UnixStream::connect(&args.addr).await?;
            stream.write_u8(ROLE_PUBLISHER).await?;
            let mut out = BufWriter::with_capacity(64 * 1024, stream);
            for i in 0..args.count {
                pace(i).await;
                let p = payload(args.size);
                out.write_u32(p.len() as u32).await?;
                out.write_all(&p).await?;
                if period.is_some() {
                    out.flush().await?;
                }
            }
            out.flush().await?;
            out.into_inner().shutdown().await?;
        }
    }
    Ok(json!({"sent": args.count, "elapsed_s": start.elapsed().as_secs_f64()}))
}

/// Answers every request with its own payload.
async fn responder(args: &WorkerArgs) -> anyhow::Result<serde_json::Value> {
    let mut answered = 0u64;
    match args.backend {
        Backend::Weft => {
            let client = weft_client(args).await?;
            let mut sub = client.subscribe(&Topic::new(args.topic.clone())?).await?;
            ready();
            while answered < args.count {
                let Some(d) = sub.next().await else { break };
                let Some(call) = d.reply_to else { continue };
                client.respond_nowait(call, Ok(d.payload)).await?;
                answered += 1;
            }
            // An acknowledged request after the answers: they have all been handled.
            client
                .publish(&Topic::new("bench.flush")?, Bytes::new())
                .await?;
        }
        Backend::Nats => {
            let client = async_nats::connect(&args.addr).await?;
            let mut sub = client.subscribe(args.topic.clone()).await?;
            client.flush().await?;
            ready();
            while answered < args.count {
                let Some(m) = sub.next().await else { break };
                let Some(reply) = m.reply else { continue };
                client.publish(reply, m.payload).await?;
                answered += 1;
            }
            client.flush().await?;
        }
        Backend::Uds => bail!("the floor answers requests itself (echo)"),
    }
    Ok(json!({"answered": answered}))
}

/// Sends requests one after another and records each round trip.
async fn requester(args: &WorkerArgs) -> anyhow::Result<serde_json::Value> {
    let mut h = histogram();
    let total = args.count + args.warmup;
    let timeout = Duration::from_secs(10);
    match args.backend {
        Backend::Weft => {
            let client = weft_client(args).await?;
            let topic = Topic::new(args.topic.clone())?;
            for i in 0..total {
                let start = now_ns();
                client
                    .request(&topic, payload(args.size).freeze(), timeout)
                    .await?;
                if i >= args.warmup {
                    h.record((now_ns() - start).max(1))?;
                }
            }
        }
        Backend::Nats => {
            let client = async_nats::connect(&args.addr).await?;
            for i in 0..total {
                let start = now_ns();
                client
                    .request(args.topic.clone(), payload(args.size).freeze())
                    .await?;
                if i >= args.warmup {
                    h.record((now_ns() - start).max(1))?;
                }
            }
        }
        Backend::Uds => {
            let mut stream = UnixStream::connect(&args.addr).await?;
            stream.write_u8(ROLE_ECHO).await?;
            let mut back = vec![0u8; args.size.max(8) + 4];
            for i in 0..total {
                let start = now_ns();
                let p = payload(args.size);
                let mut frame = BytesMut::with_capacity(p.len() + 4);
                frame.put_u32(p.len() as u32);
                frame.put_slice(&p);
                stream.write_all(&frame).await?;
                stream.read_exact(&mut back[..frame.len()]).await?;
                if i >= args.warmup {
                    h.record((now_ns() - start).max(1))?;
                }
            }
        }
    }
    Ok(summary(&h))
}
