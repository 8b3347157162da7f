//! `weft self-test`: whether this build works on this machine and can read this user's
//! data, without opening a window — a broker on a private socket, a bus round trip
//! through it, the app host beside this `weft` answering, the settings, and the data
//! directory's stores (remembered permissions, layout snapshots). It does not touch a running shell. It is the check a new version
//! on trial must pass to be kept.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::Context;
use serde::Serialize;
use weft_broker::{Broker, BrokerConfig};
use weft_client::Client;
use weft_proto::{Token, Topic};

use crate::{config::Config, permission_store::PermissionStore, workspace_snapshots};

/// How long the bus round trip may take.
const ROUND_TRIP: Duration = Duration::from_secs(10);

/// One check and how it went.
#[derive(Debug, Serialize)]
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

/// Runs every check; prints them (as one JSON object with `json`), and exits 0 when all
/// passed, 1 otherwise.
pub fn run(
    data_dir: Option<&Path>,
    config_file: Option<&Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let checks = checks(data_dir, config_file);
    let healthy = checks.iter().all(|c| c.ok);
    if json {
        println!(
            "{}",
            serde_json::json!({"healthy": healthy, "version": env!("CARGO_PKG_VERSION"), "checks": checks})
        );
    } else {
        for c in &checks {
            println!(
                "{} {}: {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        println!(
            "weft {} is {}",
            env!("CARGO_PKG_VERSION"),
            if healthy { "healthy" } else { "not healthy" }
        );
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn checks(data_dir: Option<&Path>, config_file: Option<&Path>) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut record = |name, result: anyhow::Result<String>| {
        checks.push(match result {
            Ok(detail) => Check {
                name,
                ok: true,
                detail,
            },
            Err(e) => Check {
                name,
                ok: false,
                detail: format!("{e:#}"),
            },
        })
    };
    record(
        "settings",
        Config::load_user(config_file).map(|c| format!("read ({})", c.provenance.file.display())),
    );
    record("bus", bus_round_trip());
    record("app host", app_host());
    match crate::data_dir::resolve(data_dir) {
        Ok(dir) => {
            record("permissions", permissions(&dir));
            record("layouts", layouts(&dir));
        }
        Err(e) => record("data directory", Err(e)),
    }
    checks
}

/// A broker on a socket of its own, a client connected with a token, and a message
/// published and received through it.
fn bus_round_trip() -> anyhow::Result<String> {
    let dir = tempfile::Builder::new()
        .prefix("weft-self-test-")
        .tempdir()
        .context("making a private folder for the socket")?;
    let socket: PathBuf = dir.path().join("bus.sock");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime")?;
    runtime.block_on(async {
        let (broker, handle, _events) =
            Broker::bind(BrokerConfig::new(socket.clone())).context("starting a broker")?;
        let token = Token::random();
        handle.grant_cli(token.clone());
        let served = tokio::spawn(broker.run());
        let result = tokio::time::timeout(ROUND_TRIP, async {
            let client = Client::connect(&socket, &token)
                .await
                .context("connecting to it")?;
            let topic = Topic::new("weft.self-test").expect("a valid topic");
            let mut subscription = client.subscribe(&topic).await.context("subscribing")?;
            let started = std::time::Instant::now();
            client
                .publish(&topic, &b"\"ping\""[..])
                .await
                .context("publishing")?;
            let delivery = subscription
                .next()
                .await
                .context("the message never came back")?;
            anyhow::ensure!(
                &delivery.payload[..] == b"\"ping\"",
                "another message came back"
            );
            Ok(format!(
                "a message went through a broker and back in {:.1} ms",
                started.elapsed().as_secs_f64() * 1000.0
            ))
        })
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("no round trip within {ROUND_TRIP:?}")));
        handle.shutdown();
        served.abort();
        result
    })
}

/// The `weft-app` this shell would start answers `--version` with its name.
fn app_host() -> anyhow::Result<String> {
    let binary = crate::shell_process::app_host_binary()?;
    let out = std::process::Command::new(&binary)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("starting {}", binary.display()))?;
    let said = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success() && said.starts_with("weft-app "),
        "{} --version answered {} with {:?}",
        binary.display(),
        out.status,
        said.trim()
    );
    Ok(format!("{} ({})", said.trim(), binary.display()))
}

/// The names and failures of the checks that failed; empty when healthy.
pub fn failures(data_dir: Option<&Path>, config_file: Option<&Path>) -> Vec<String> {
    checks(data_dir, config_file)
        .into_iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect()
}

fn permissions(data_dir: &Path) -> anyhow::Result<String> {
    let store = PermissionStore::open(data_dir)?;
    Ok(format!("{} remembered answers read", store.list().len()))
}

fn layouts(data_dir: &Path) -> anyhow::Result<String> {
    let names = workspace_snapshots::saved_names(data_dir)?;
    for name in &names {
        workspace_snapshots::read(data_dir, name)
            .with_context(|| format!("reading the layout {name:?}"))?;
    }
    Ok(format!("{} layout snapshots read", names.len()))
}
