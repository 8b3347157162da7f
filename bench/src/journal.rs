//! `weft-bench journal`: durable topics through the real broker and client, each
//! beside the storage engine alone (`SegmentLog`, driven the way the broker's writer
//! drives it, same sync policy, same run).
//!
//! Scenarios, one JSON line each:
//! - `journal_always`: 256-byte publishes with `fsync: always` (group commit), 64 in
//!   flight from one client (`--in-flight`); throughput and publish→acknowledge
//!   latency.
//! - `journal_interval100`: the same with `interval(100)`.
//! - `journal_replay`: replaying the stored stream to a new subscription.
//! - `journal_nondurable_ceiling`: the same publishes, acknowledged, to a topic that is
//!   not durable: what the bus's round trip allows at that concurrency, whatever the
//!   storage.
//! - `journal_startup_1gb`: opening a 1 GB stream (what the shell does at start-up),
//!   with the page cache warm and, when the machine lets us drop it, cold.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use futures_util::{StreamExt, stream::FuturesUnordered};
use hdrhistogram::Histogram;
use serde_json::json;
use weft_broker::{Broker, BrokerConfig, DurableConfig, Fsync, JournalSetup, KeySet, Retention};
use weft_client::Client;
use weft_journal::{SegmentLog, StreamConfig, StreamLog};
use weft_proto::{Pattern, Token, Topic, frame::Replay};

/// Options of `weft-bench journal`.
#[derive(clap::Args)]
pub struct JournalArgs {
    /// Messages per publish scenario.
    #[arg(long, default_value_t = 200_000)]
    messages: u64,
    /// Publishes awaiting their acknowledgement at any time (and the engine's batch).
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Where to put the journals (a real disk: fsync is what is measured).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Skip the 1 GB start-up scenario.
    #[arg(long)]
    no_startup: bool,
    /// Run only the scenarios whose name contains one of these (all when none).
    #[arg(long)]
    only: Vec<String>,
}

impl JournalArgs {
    fn load(&self) -> Load {
        Load {
            messages: self.messages,
            in_flight: self.in_flight.max(1),
        }
    }

    fn wants(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| scenario.contains(o.as_str()))
    }
}

const PAYLOAD: usize = 256;

pub fn run(args: JournalArgs) -> anyhow::Result<()> {
    let base = match &args.dir {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .context("making a scratch folder for the journals")?;
    let keys = Arc::new(KeySet::generate());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let publishing = |name: &str, fsync: Fsync| -> anyhow::Result<PathBuf> {
        let dir = base.path().join(name);
        let weft = runtime.block_on(through_broker(
            &dir,
            &keys,
            fsync,
            "orders.new",
            args.load(),
        ))?;
        let raw = raw_engine(
            &base.path().join(format!("{name}-raw")),
            &keys,
            fsync,
            args.load(),
        )?;
        println!(
            "{}",
            json!({
                "scenario": name,
                "payload_bytes": PAYLOAD,
                "in_flight": args.in_flight,
                "messages": args.messages,
                "weft_msgs_per_sec": weft.rate,
                "weft_ack_p50_ms": weft.p50_ms,
                "weft_ack_p99_ms": weft.p99_ms,
                "engine_msgs_per_sec": raw.rate,
                "engine_batch_p50_ms": raw.p50_ms,
                "engine_batch_p99_ms": raw.p99_ms,
                "weft_vs_engine": weft.rate / raw.rate,
            })
        );
        Ok(dir)
    };
    // The replay reads what `journal_always` stored.
    if args.wants("journal_always") || args.wants("journal_replay") {
        let dir = publishing("journal_always", Fsync::Always)?;
        let (weft_rate, engine_rate) = runtime.block_on(replay(&dir, &keys, args.messages))?;
        println!(
            "{}",
            json!({
                "scenario": "journal_replay",
                "messages": args.messages,
                "weft_msgs_per_sec": weft_rate,
                "engine_msgs_per_sec": engine_rate,
            })
        );
    }
    if args.wants("journal_interval100") {
        publishing(
            "journal_interval100",
            Fsync::Interval(Duration::from_millis(100)),
        )?;
    }
    if args.wants("journal_nondurable_ceiling") {
        let ceiling = runtime.block_on(through_broker(
            &base.path().join("ceiling"),
            &keys,
            Fsync::None,
            "prices.new",
            args.load(),
        ))?;
        println!(
            "{}",
            json!({
                "scenario": "journal_nondurable_ceiling",
                "payload_bytes": PAYLOAD,
                "in_flight": args.in_flight,
                "messages": args.messages,
                "weft_msgs_per_sec": ceiling.rate,
                "weft_ack_p50_ms": ceiling.p50_ms,
                "weft_ack_p99_ms": ceiling.p99_ms,
            })
        );
    }
    if !args.no_startup && args.wants("journal_startup_1gb") {
        startup(&base.path().join("startup"), &keys)?;
    }
    Ok(())
}

struct Figures {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn figures(count: u64, took: Duration, hist: &Histogram<u64>) -> Figures {
    Figures {
        rate: count as f64 / took.as_secs_f64(),
        p50_ms: hist.value_at_quantile(0.50) as f64 / 1000.0,
        p99_ms: hist.value_at_quantile(0.99) as f64 / 1000.0,
    }
}

fn durable(fsync: Fsync) -> DurableConfig {
    DurableConfig {
        pattern: Pattern::new("orders.#").unwrap(),
        fsync,
        retention: Retention::default(),
    }
}

/// A broker storing `orders.#` in `dir`, and a client of it.
async fn broker_and_client(
    dir: &Path,
    keys: &Arc<KeySet>,
    fsync: Fsync,
) -> anyhow::Result<(weft_broker::BrokerHandle, Client)> {
    std::fs::create_dir_all(dir)?;
    let (broker, handle, events) = Broker::bind(BrokerConfig::new(dir.join("bus.sock")))?;
    tokio::spawn(broker.run());
    tokio::spawn(async move {
        let mut events = events;
        while events.recv().await.is_some() {}
    });
    handle.set_journal(JournalSetup::Ready {
        dir: dir.join("journal"),
        keys: keys.clone(),
    });
    handle.add_durable(durable(fsync))?;
    let token = Token::random();
    handle.grant_cli(token.clone());
    let client = Client::connect(&dir.join("bus.sock"), &token).await?;
    Ok((handle, client))
}

/// How much a publish scenario publishes, and how many at a time.
#[derive(Clone, Copy)]
struct Load {
    messages: u64,
    in_flight: usize,
}

/// Publishes the load's messages on `topic`, `in_flight` of them awaiting their
/// acknowledgement at any time.
async fn through_broker(
    dir: &Path,
    keys: &Arc<KeySet>,
    fsync: Fsync,
    topic: &str,
    load: Load,
) -> anyhow::Result<Figures> {
    let (handle, client) = broker_and_client(dir, keys, fsync).await?;
    let topic = Topic::new(topic)?;
    // A task of the runtime, as an app's publisher is, rather than the thread blocking
    // on the runtime, which every acknowledgement would have to wake.
    let figures = tokio::spawn(publish_load(client, topic, load)).await??;
    handle.shutdown();
    Ok(figures)
}

async fn publish_load(client: Client, topic: Topic, load: Load) -> anyhow::Result<Figures> {
    let payload = bytes::Bytes::from(vec![b'x'; PAYLOAD]);
    let mut hist = Histogram::<u64>::new(3)?;
    let mut in_flight = FuturesUnordered::new();
    let start = Instant::now();
    for _ in 0..load.messages {
        if in_flight.len() == load.in_flight
            && let Some(result) = in_flight.next().await
        {
            let took: Duration = result?;
            hist.record(took.as_micros() as u64)?;
        }
        let (client, topic, payload) = (client.clone(), topic.clone(), payload.clone());
        in_flight.push(async move {
            let sent = Instant::now();
            client.publish(&topic, payload).await?;
            anyhow::Ok(sent.elapsed())
        });
    }
    while let Some(result) = in_flight.next().await {
        hist.record(result?.as_micros() as u64)?;
    }
    Ok(figures(load.messages, start.elapsed(), &hist))
}

/// The engine alone: `in_flight` records a batch, written, and synced per `fsync`.
fn raw_engine(dir: &Path, keys: &Arc<KeySet>, fsync: Fsync, load: Load) -> anyhow::Result<Figures> {
    let n = load.messages;
    let config = StreamConfig::new("orders.#", Retention::default());
    let mut log = SegmentLog::open(dir, config, keys.clone())?;
    let meta = vec![b'm'; 40];
    let secret = vec![b'x'; PAYLOAD];
    let mut hist = Histogram::<u64>::new(3)?;
    let start = Instant::now();
    let mut last_sync = Instant::now();
    let mut done = 0;
    while done < n {
        let batch_start = Instant::now();
        let batch = (load.in_flight as u64).min(n - done);
        for _ in 0..batch {
            log.append(weft_now_ms(), &meta, &secret)?;
        }
        log.write()?;
        match fsync {
            Fsync::Always => log.sync()?,
            Fsync::Interval(every) if last_sync.elapsed() >= every => {
                log.sync()?;
                last_sync = Instant::now();
            }
            _ => {}
        }
        hist.record(batch_start.elapsed().as_micros() as u64)?;
        done += batch;
    }
    log.sync()?;
    Ok(figures(n, start.elapsed(), &hist))
}

/// Replays the stream stored in `dir` to a new subscription, and reads it with the
/// engine alone; messages a second each.
async fn replay(dir: &Path, keys: &Arc<KeySet>, n: u64) -> anyhow::Result<(f64, f64)> {
    let (handle, client) = broker_and_client(dir, keys, Fsync::Always).await?;
    // Read by a task of the runtime, as an app reads its subscriptions.
    let weft = tokio::spawn(async move {
        let start = Instant::now();
        let mut sub = client
            .subscribe_with(Pattern::new("orders.#")?, None, Some(Replay::AfterSeq(0)))
            .await?;
        for _ in 0..n {
            sub.next().await.context("the replay ended early")?;
        }
        anyhow::Ok(n as f64 / start.elapsed().as_secs_f64())
    })
    .await??;
    handle.shutdown();

    let stream = weft_journal::stream_dir(&dir.join("journal"), "orders.#");
    let log = SegmentLog::open(
        &stream,
        StreamConfig::new("orders.#", Retention::default()),
        keys.clone(),
    )?;
    let reader = log.reader();
    let start = Instant::now();
    let (mut seq, mut read, mut out) = (1, 0u64, Vec::with_capacity(512));
    while read < n {
        out.clear();
        seq = reader.read(seq, u64::MAX, 512, &mut |_| true, &mut out)?;
        anyhow::ensure!(!out.is_empty(), "the stream ended at {read} records");
        read += out.len() as u64;
    }
    Ok((weft, read as f64 / start.elapsed().as_secs_f64()))
}

/// Writes a 1 GB stream, then times opening it as the shell does.
fn startup(dir: &Path, keys: &Arc<KeySet>) -> anyhow::Result<()> {
    let stream = weft_journal::stream_dir(&dir.join("journal"), "orders.#");
    let config = StreamConfig::new("orders.#", Retention::default());
    {
        let mut log = SegmentLog::open(&stream, config.clone(), keys.clone())?;
        let (meta, secret) = (vec![b'm'; 40], vec![b'x'; PAYLOAD]);
        let mut bytes = 0u64;
        while bytes < 1 << 30 {
            for _ in 0..1024 {
                log.append(weft_now_ms(), &meta, &secret)?;
            }
            log.write()?;
            bytes += 1024 * (PAYLOAD as u64 + 40 + 40);
        }
        log.sync()?;
    }
    let on_disk: u64 = std::fs::read_dir(&stream)?
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    let time_open = || -> anyhow::Result<f64> {
        let start = Instant::now();
        let log = SegmentLog::open(&stream, config.clone(), keys.clone())?;
        let took = start.elapsed().as_secs_f64() * 1000.0;
        drop(log);
        Ok(took)
    };
    let warm_ms = time_open()?;
    let cold_ms = drop_page_cache().then(time_open).transpose()?;
    let (handle_ms, _) = {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let start = Instant::now();
            let (handle, _client) = broker_and_client(dir, keys, Fsync::Always).await?;
            let took = start.elapsed().as_secs_f64() * 1000.0;
            handle.shutdown();
            anyhow::Ok((took, ()))
        })?
    };
    println!(
        "{}",
        json!({
            "scenario": "journal_startup_1gb",
            "journal_bytes": on_disk,
            "engine_open_warm_ms": warm_ms,
            "engine_open_cold_ms": cold_ms,
            "weft_broker_open_ms": handle_ms,
        })
    );
    Ok(())
}

/// Drops the page cache (root only); whether it was dropped.
fn drop_page_cache() -> bool {
    // SAFETY: sync takes no arguments and only flushes file systems.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

fn weft_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
