//! `weft-bench`: measures Weft as its users feel it and prints one JSON object per line.
//!
//! - `weft-bench startup`: cold start of the demo workspace and memory per app instance.
//! - `weft-bench bus [--quick]`: the bus against `nats-server` and a raw Unix-socket
//!   floor, in one run with one process layout for every backend.
//! - `weft-bench recovery [--kills N]`: from `kill -9` of an app to its page ready
//!   again.
//! - `weft-bench journal`: durable topics (fsync always and interval(100)), replay and
//!   start-up on a 1 GB journal, each beside the storage engine alone.
//! - `weft-bench update --old DIR --new DIR`: patch sizes and apply times (bsdiff beside
//!   zstd `--patch-from`) and from `weft update apply` to the new version ready
//!   (`scripts/bench-update` builds the two releases, one source line apart).
//!
//! Build in release mode first; the benchmark runs the `weft` and `weft-app` binaries
//! that sit beside it, and itself as worker processes. It is a measuring tool, not a
//! test: it asserts nothing.

mod bus;
mod journal;
mod recovery;
mod startup;
mod update;

/// The shell uses the same allocator, so the broker is measured as it runs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{
    path::PathBuf,
    process::{Child, Stdio},
    time::Duration,
};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use weft_e2e::{Display, TestEnv};

#[derive(Parser)]
#[command(
    name = "weft-bench",
    about = "Weft benchmarks; one JSON object per line"
)]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Cold start of the demo workspace to all apps ready, and memory per app instance.
    Startup {
        /// How many fresh starts to time.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Seconds to let the apps idle before reading memory.
        #[arg(long, default_value_t = 3.0)]
        settle: f64,
    },
    /// Every bus scenario, Weft beside nats-server and the Unix-socket floor.
    Bus(bus::BusArgs),
    /// Durable topics beside the storage engine alone: throughput, acknowledgement
    /// latency, replay and start-up.
    Journal(journal::JournalArgs),
    /// Mean time to recovery: kill -9 of an app to its page ready again.
    Recovery {
        /// How many kills to time.
        #[arg(long, default_value_t = 20)]
        kills: usize,
    },
    /// What an update costs: patch sizes and apply times, and apply to ready.
    Update(update::UpdateArgs),
    /// Internal: one side of a bus scenario, started by `weft-bench bus`.
    #[command(hide = true)]
    Worker(bus::worker::WorkerArgs),
    /// Internal: a Weft broker in its own process, started by `weft-bench bus`.
    #[command(hide = true)]
    ServeWeft {
        /// Where to listen.
        #[arg(long)]
        socket: PathBuf,
        /// The token every client presents, in hexadecimal.
        #[arg(long)]
        token: String,
    },
    /// Internal: the raw Unix-socket relay and echo server (the physical floor).
    #[command(hide = true)]
    ServeUds {
        /// Where to listen.
        #[arg(long)]
        socket: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        BenchCommand::Startup { runs, settle } => {
            startup::run(runs, Duration::from_secs_f64(settle))
        }
        BenchCommand::Bus(args) => bus::run(args),
        BenchCommand::Recovery { kills } => recovery::run(kills.max(1)),
        BenchCommand::Journal(args) => journal::run(args),
        BenchCommand::Update(args) => update::run(args),
        BenchCommand::Worker(args) => bus::worker::run(args),
        BenchCommand::ServeWeft { socket, token } => bus::servers::serve_weft(&socket, &token),
        BenchCommand::ServeUds { socket } => bus::servers::serve_uds(&socket),
    }
}

/// A binary built beside this one.
fn beside_me(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::current_exe()?.with_file_name(name);
    if !path.is_file() {
        bail!(
            "{} is missing: run `cargo build --release --workspace` first",
            path.display()
        );
    }
    Ok(path)
}

/// Starts the release `weft launch --no-panel [ARGS]` in `env` on `display`, quiet.
fn start_shell(
    env: &TestEnv,
    display: &Display,
    args: &[&std::ffi::OsStr],
) -> anyhow::Result<BenchShell> {
    env.command(&beside_me("weft")?, Some(display))
        .args(["launch", "--no-panel"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(BenchShell)
        .context("starting weft")
}

/// A shell a benchmark started; killed if still running when dropped.
struct BenchShell(Child);

impl BenchShell {
    /// Its process id.
    fn id(&self) -> u32 {
        self.0.id()
    }

    /// Stops it as a user would (SIGTERM: its apps stop gracefully) and waits.
    fn stop(mut self) {
        // SAFETY: kill only sends a signal, to the shell this benchmark started.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

impl Drop for BenchShell {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Writes a workspace of `apps` (workspace JSON objects) using the benchmark page
/// (`bench/pages/p2p`, whose role each app takes from its appId) into `env`'s folder
/// `name`; returns the workspace file.
fn write_page_workspace(
    env: &TestEnv,
    name: &str,
    apps: Vec<serde_json::Value>,
) -> anyhow::Result<PathBuf> {
    let dir = env.path(name);
    std::fs::create_dir_all(&dir)?;
    let pages = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pages/p2p");
    for file in ["index.html", "p2p.js"] {
        std::fs::copy(pages.join(file), dir.join(file))
            .with_context(|| format!("copying {}", pages.join(file).display()))?;
    }
    let file = dir.join("workspace.json");
    std::fs::write(
        &file,
        serde_json::json!({"name": name, "apps": apps}).to_string(),
    )?;
    Ok(file)
}

/// A command-line client of the shell in `env`, once the shell listens (by `deadline`).
async fn connect_when_up(
    env: &TestEnv,
    deadline: std::time::Instant,
) -> anyhow::Result<weft_client::Client> {
    let endpoint = env.endpoint();
    loop {
        if let Ok(c) = weft_client::Client::connect_cli(&endpoint).await {
            return Ok(c);
        }
        if std::time::Instant::now() > deadline {
            bail!("the shell did not start in time");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Rounds to one decimal place for printing.
fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
