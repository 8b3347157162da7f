//! `weft-bench bus`: every bus scenario, Weft beside nats-server and a raw Unix-socket
//! floor, in one run and one process layout.
//!
//! Each backend's server runs in its own process (Weft's broker, `nats-server` on
//! 127.0.0.1 at a free port, and the floor relay), and every publisher, subscriber,
//! requester and responder is a worker process of its own. NATS is reached over TCP
//! loopback and Weft over its Unix socket: part of any difference is the transport a
//! user of each gets, and the output says so.

pub mod clock;
mod compression;
mod pages;
pub mod servers;
pub mod worker;

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use weft_broker::sublist::Sublist;
use weft_proto::{Pattern, Token, Topic, pattern_set::PatternSet};

use crate::round;
use worker::Backend;

/// Options of `weft-bench bus`.
#[derive(Debug, Args)]
pub struct BusArgs {
    /// A shortened run (under a minute).
    #[arg(long)]
    quick: bool,
    /// Only these scenarios (repeatable).
    #[arg(long)]
    only: Vec<String>,
}

/// Sizes of one run.
struct Plan {
    pubsub_messages: u64,
    fanout_subscribers: usize,
    fanout_messages: u64,
    requests: u64,
    request_warmup: u64,
    fixed_rate: u64,
    fixed_rate_secs: u64,
    routing_lookups: u64,
    page_samples: u64,
    page_warmup: u64,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Plan {
                pubsub_messages: 200_000,
                fanout_subscribers: 100,
                fanout_messages: 2_000,
                requests: 5_000,
                request_warmup: 500,
                fixed_rate: 10_000,
                fixed_rate_secs: 2,
                routing_lookups: 1_000_000,
                page_samples: 300,
                page_warmup: 50,
            }
        } else {
            Plan {
                pubsub_messages: 1_000_000,
                fanout_subscribers: 100,
                fanout_messages: 10_000,
                requests: 20_000,
                request_warmup: 2_000,
                fixed_rate: 10_000,
                fixed_rate_secs: 10,
                routing_lookups: 5_000_000,
                page_samples: 2_000,
                page_warmup: 200,
            }
        }
    }
}

/// Runs the scenarios and prints one JSON object per line.
pub fn run(args: BusArgs) -> anyhow::Result<()> {
    let plan = Plan::new(args.quick);
    let wanted = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let servers = Servers::start()?;

    if wanted("pubsub_1to1") {
        compare("pubsub_1to1", Metric::Throughput, |backend| {
            let r = pubsub(&servers, backend, 1, plan.pubsub_messages, 0)?;
            Ok(
                json!({"msgs_per_sec": r.msgs_per_sec, "delivered": r.received,
                      "published": plan.pubsub_messages, "payload_bytes": 128}),
            )
        })?;
    }
    if wanted("fanout_1to100") {
        compare("fanout_1to100", Metric::Throughput, |backend| {
            let n = plan.fanout_subscribers;
            let r = pubsub(&servers, backend, n, plan.fanout_messages, 0)?;
            Ok(
                json!({"msgs_per_sec": r.msgs_per_sec, "delivered": r.received,
                      "expected": plan.fanout_messages * n as u64,
                      "subscriber_processes": n, "payload_bytes": 128}),
            )
        })?;
    }
    if wanted("reqresp") {
        compare("reqresp", Metric::Latency, |backend| {
            reqresp(&servers, backend, plan.requests, plan.request_warmup)
        })?;
    }
    if wanted("latency_fixed_rate") {
        compare("latency_fixed_rate", Metric::Latency, |backend| {
            let count = plan.fixed_rate * plan.fixed_rate_secs;
            let r = pubsub(&servers, backend, 1, count, plan.fixed_rate)?;
            let mut v = r.latency.unwrap_or(Value::Null);
            v["rate_per_sec"] = json!(plan.fixed_rate);
            v["delivered"] = json!(r.received);
            Ok(v)
        })?;
    }
    if wanted("page_to_page") {
        for apps in [2, 20] {
            println!(
                "{}",
                pages::page_to_page(apps, plan.page_samples, plan.page_warmup)?
            );
        }
    }
    if wanted("compression") {
        for line in compression::run()? {
            println!("{line}");
        }
    }
    if wanted("routing_inproc") {
        for line in routing(plan.routing_lookups) {
            println!("{line}");
        }
    }
    if wanted("permission_check_inproc") {
        println!("{}", permission_checks(plan.routing_lookups));
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Metric {
    Throughput,
    Latency,
}

/// Runs `measure` for NATS, the floor and Weft, printing a line for each; Weft's line
/// carries `ratio_vs_nats` (above 1 means Weft is better).
fn compare(
    scenario: &str,
    metric: Metric,
    mut measure: impl FnMut(Backend) -> anyhow::Result<Value>,
) -> anyhow::Result<()> {
    let mut nats = None;
    for backend in [Backend::Nats, Backend::Uds, Backend::Weft] {
        let mut v =
            measure(backend).with_context(|| format!("{scenario} on {}", backend.name()))?;
        v["scenario"] = json!(scenario);
        v["backend"] = json!(backend.name());
        v["transport"] = json!(match backend {
            Backend::Nats => "tcp-loopback",
            Backend::Uds | Backend::Weft => "unix-socket",
        });
        match backend {
            Backend::Nats => nats = Some(v.clone()),
            Backend::Weft => {
                if let Some(n) = &nats {
                    let ratio = match metric {
                        Metric::Throughput => v["msgs_per_sec"]
                            .as_f64()
                            .zip(n["msgs_per_sec"].as_f64())
                            .map(|(w, n)| w / n),
                        Metric::Latency => v["p50_us"]
                            .as_f64()
                            .zip(n["p50_us"].as_f64())
                            .map(|(w, n)| n / w),
                    };
                    v["ratio_vs_nats"] = json!(ratio.map(|r| (r * 100.0).round() / 100.0));
                }
            }
            Backend::Uds => {}
        }
        println!("{v}");
    }
    Ok(())
}

/// The three servers, each in its own process; killed when dropped.
struct Servers {
    _dir: tempfile::TempDir,
    weft_socket: PathBuf,
    token: String,
    nats_url: String,
    uds_socket: PathBuf,
    children: Vec<Child>,
}

impl Servers {
    fn start() -> anyhow::Result<Servers> {
        let dir = tempfile::tempdir()?;
        let me = std::env::current_exe()?;
        let token = Token::random().to_hex();
        let weft_socket = dir.path().join("weft.sock");
        let uds_socket = dir.path().join("floor.sock");
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut servers = Servers {
            _dir: dir,
            weft_socket: weft_socket.clone(),
            token: token.clone(),
            nats_url: format!("nats://127.0.0.1:{port}"),
            uds_socket: uds_socket.clone(),
            children: vec![],
        };
        servers.children.push(quiet(
            Command::new(&me)
                .args(["serve-weft", "--token", &token])
                .arg("--socket")
                .arg(&weft_socket),
        )?);
        servers.children.push(quiet(
            Command::new(&me)
                .arg("serve-uds")
                .arg("--socket")
                .arg(&uds_socket),
        )?);
        servers.children.push(
            quiet(Command::new("nats-server").args(["-a", "127.0.0.1", "-p", &port.to_string()]))
                .context("starting nats-server (Debian package nats-server)")?,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(weft_socket.exists()
            && uds_socket.exists()
            && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
        {
            if Instant::now() > deadline {
                bail!("the benchmark servers did not start within 20 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(servers)
    }

    fn addr(&self, backend: Backend) -> String {
        match backend {
            Backend::Weft => self.weft_socket.display().to_string(),
            Backend::Nats => self.nats_url.clone(),
            Backend::Uds => self.uds_socket.display().to_string(),
        }
    }

    fn worker(&self, backend: Backend, role: &str) -> anyhow::Result<Command> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["worker", "--role", role, "--backend"])
            .arg(match backend {
                Backend::Weft => "weft",
                Backend::Nats => "nats",
                Backend::Uds => "uds",
            })
            .args(["--addr", &self.addr(backend), "--token", &self.token]);
        Ok(cmd)
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn quiet(cmd: &mut Command) -> std::io::Result<Child> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// A worker process whose stdout lines are read as they come.
struct Worker {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Worker {
    fn spawn(mut cmd: Command) -> anyhow::Result<Worker> {
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Worker { child, lines })
    }

    fn wait_ready(&self) -> anyhow::Result<()> {
        match self.lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line == "ready" => Ok(()),
            Ok(line) => bail!("a worker said {line:?} instead of ready"),
            Err(_) => bail!("a worker did not get ready within 60 s"),
        }
    }

    fn result(mut self) -> anyhow::Result<Value> {
        let status = self.child.wait()?;
        let last = self.lines.iter().last().unwrap_or_default();
        if !status.success() {
            bail!("a worker failed ({status})");
        }
        serde_json::from_str(&last).with_context(|| format!("a worker printed {last:?}"))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct PubSubResult {
    received: u64,
    msgs_per_sec: f64,
    latency: Option<Value>,
}

/// `subscribers` worker processes, then one publisher of `count` messages (at `rate`
/// per second, or as fast as it can when 0). Throughput counts delivered messages only,
/// from the first delivery to the last across all subscribers.
fn pubsub(
    servers: &Servers,
    backend: Backend,
    subscribers: usize,
    count: u64,
    rate: u64,
) -> anyhow::Result<PubSubResult> {
    let topic = format!("bench.{}", std::process::id());
    let mut subs = Vec::new();
    for _ in 0..subscribers {
        let mut cmd = servers.worker(backend, "sub")?;
        cmd.args([
            "--topic",
            &topic,
            "--count",
            &count.to_string(),
            "--idle",
            "3",
        ]);
        subs.push(Worker::spawn(cmd)?);
    }
    for s in &subs {
        s.wait_ready()?;
    }
    let mut cmd = servers.worker(backend, "pub")?;
    cmd.args([
        "--topic",
        &topic,
        "--count",
        &count.to_string(),
        "--rate",
        &rate.to_string(),
    ]);
    let publisher = Worker::spawn(cmd)?;
    publisher.result()?;
    let results: Vec<Value> = subs
        .into_iter()
        .map(Worker::result)
        .collect::<Result<_, _>>()?;
    let received: u64 = results
        .iter()
        .map(|r| r["received"].as_u64().unwrap_or(0))
        .sum();
    let first = results
        .iter()
        .filter_map(|r| r["first_ns"].as_u64())
        .filter(|v| *v > 0)
        .min()
        .unwrap_or(0);
    let last = results
        .iter()
        .filter_map(|r| r["last_ns"].as_u64())
        .max()
        .unwrap_or(0);
    let secs = (last.saturating_sub(first)) as f64 / 1e9;
    Ok(PubSubResult {
        received,
        msgs_per_sec: if secs > 0.0 {
            round(received as f64 / secs)
        } else {
            0.0
        },
        latency: results.first().map(|r| r["latency"].clone()),
    })
}

/// One requester sending `count` requests one after another to one responder (the
/// floor echoes them itself).
fn reqresp(servers: &Servers, backend: Backend, count: u64, warmup: u64) -> anyhow::Result<Value> {
    let topic = format!("bench.req.{}", std::process::id());
    let responder = if backend == Backend::Uds {
        None
    } else {
        let mut cmd = servers.worker(backend, "responder")?;
        cmd.args(["--topic", &topic, "--count", &(count + warmup).to_string()]);
        let w = Worker::spawn(cmd)?;
        w.wait_ready()?;
        Some(w)
    };
    let mut cmd = servers.worker(backend, "requester")?;
    cmd.args([
        "--topic",
        &topic,
        "--count",
        &count.to_string(),
        "--warmup",
        &warmup.to_string(),
    ]);
    let result = Worker::spawn(cmd)?.result()?;
    if let Some(r) = responder {
        r.result()?;
    }
    Ok(result)
}

/// In-process permission checks, as the broker makes them for an app that declares
/// bus patterns: 8 publish patterns (half with wildcards) against 1000 topics, half of
/// them allowed; and subscription patterns checked for coverage.
fn permission_checks(lookups: u64) -> Value {
    let declared = PatternSet::new(
        [
            "md.#",
            "orders.*.new",
            "fx.*.spot",
            "news.eu",
            "rates.#.close",
            "desk.a",
            "desk.b",
            "chat.*",
        ]
        .map(|p| Pattern::new(p).expect("valid")),
    );
    let topics: Vec<String> = (0..1000u64)
        .map(|i| match i % 2 {
            0 => format!("md.{}.{}", i % 50, i),
            _ => format!("secret.{}.{}", i % 50, i),
        })
        .collect();
    let start = Instant::now();
    let mut allowed = 0u64;
    for i in 0..lookups {
        allowed += u64::from(declared.matches_str(&topics[(i % 1000) as usize]));
    }
    let checks = lookups as f64 / start.elapsed().as_secs_f64();
    let wanted: Vec<Pattern> = ["md.*.x", "fx.#", "orders.*.new", "#", "rates.a.#.close"]
        .map(|p| Pattern::new(p).expect("valid"))
        .to_vec();
    let covers = lookups / 20;
    let start = Instant::now();
    for i in 0..covers {
        allowed += u64::from(declared.covers(&wanted[(i % 5) as usize]));
    }
    let coverage = covers as f64 / start.elapsed().as_secs_f64();
    std::hint::black_box(allowed);
    json!({"scenario": "permission_check_inproc", "backend": "weft", "patterns": 8,
           "publish_checks_per_sec": round(checks), "subscribe_checks_per_sec": round(coverage)})
}

/// In-process routing: 500 subscriptions, a fifth of them wildcards, matched against
/// 1000 topics, through the cache (hit) and around it (miss).
fn routing(lookups: u64) -> Vec<Value> {
    let mut list = Sublist::new(8192);
    for i in 0..500u64 {
        let pattern = match i % 5 {
            0 => format!("md.{}.*", i % 50),
            _ => format!("md.{}.{}", i % 50, i),
        };
        list.insert(&Pattern::new(pattern).expect("valid"), i);
    }
    let topics: Vec<Topic> = (0..1000u64)
        .map(|i| Topic::new(format!("md.{}.{}", i % 50, i)).expect("valid"))
        .collect();
    let mut matched = 0usize;
    for t in &topics {
        matched += list.matches(t).len();
    }
    let start = Instant::now();
    for i in 0..lookups {
        matched += list.matches(&topics[(i % 1000) as usize]).len();
    }
    let hit = lookups as f64 / start.elapsed().as_secs_f64();
    let misses = lookups / 5;
    let start = Instant::now();
    for i in 0..misses {
        matched += list.matches_uncached(&topics[(i % 1000) as usize]).len();
    }
    let miss = misses as f64 / start.elapsed().as_secs_f64();
    std::hint::black_box(matched);
    ["hit", "miss"]
        .iter()
        .zip([hit, miss])
        .map(|(cache, rate)| {
            json!({"scenario": "routing_inproc", "backend": "weft", "cache": cache,
                   "subscriptions": 500, "wildcard_share": 0.2, "matches_per_sec": round(rate)})
        })
        .collect()
}
