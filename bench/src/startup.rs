//! `weft-bench startup`: cold start of the demo workspace and memory per app.
//!
//! Starts the built-in demo (`weft launch --no-panel`) on a private Xvfb display with a
//! fresh data directory, several times over, and reports the time from spawning the
//! shell to every app being ready (page loaded and bridge connected), then the resident
//! memory of each app instance: RSS and PSS summed over the app's whole process tree
//! (the `weft-app` host plus its WebKit web and network processes), read from
//! `/proc/PID/smaps_rollup`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use weft_client::Client;
use weft_e2e::{Display, TestEnv, process_tree};
use weft_proto::frame::{AppInfo, AppState, ControlReply, ControlRequest};

use crate::{BenchShell, round, start_shell};

struct Run {
    env: TestEnv,
    shell: BenchShell,
}

impl Run {
    fn start(display: &Display) -> anyhow::Result<(Run, Instant)> {
        let env = TestEnv::new();
        let started = Instant::now();
        let shell = start_shell(&env, display, &[])?;
        Ok((Run { env, shell }, started))
    }

    /// Polls the shell over the bus until `count` apps are ready.
    async fn wait_ready(&self, count: usize) -> anyhow::Result<Vec<AppInfo>> {
        let deadline = Instant::now() + Duration::from_secs(120);
        let endpoint = self.env.endpoint();
        let mut client = None;
        loop {
            if Instant::now() > deadline {
                bail!("the demo did not become ready within 120 s");
            }
            if client.is_none() {
                client = Client::connect_cli(&endpoint).await.ok();
            }
            if let Some(c) = &client
                && let Ok(ControlReply::Apps { apps, .. }) =
                    c.control(ControlRequest::ListApps).await
                && apps.len() == count
                && apps.iter().all(|a| a.state == AppState::Ready)
            {
                return Ok(apps);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn stop(self) {
        self.shell.stop();
    }
}

pub fn run(runs: usize, settle: Duration) -> anyhow::Result<()> {
    let display = Display::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut times = Vec::new();
    for i in 0..runs.max(1) {
        let (run, started) = Run::start(&display)?;
        let apps = runtime.block_on(run.wait_ready(3))?;
        let elapsed = started.elapsed();
        times.push(elapsed.as_secs_f64() * 1000.0);
        if i + 1 == runs.max(1) {
            std::thread::sleep(settle);
            report_memory(&apps, run.shell.id())?;
        }
        run.stop();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({
            "scenario": "cold_start_demo",
            "apps": 3,
            "runs": times.len(),
            "median_ms": round(times[times.len() / 2]),
            "min_ms": round(times[0]),
            "max_ms": round(times[times.len() - 1]),
        })
    );
    Ok(())
}

fn report_memory(apps: &[AppInfo], shell_pid: u32) -> anyhow::Result<()> {
    let mut total_rss = 0.0;
    let mut total_pss = 0.0;
    for app in apps {
        let pid = app.pid.context("an app without a pid")?;
        let mut pids = vec![pid];
        pids.extend(process_tree::descendants(pid));
        let (rss, pss) = pids
            .iter()
            .map(|p| memory_kb(*p))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        let names: Vec<String> = pids
            .iter()
            .filter_map(|p| process_tree::read(*p))
            .map(|p| p.comm)
            .collect();
        let (rss_mb, pss_mb) = (rss as f64 / 1024.0, pss as f64 / 1024.0);
        total_rss += rss_mb;
        total_pss += pss_mb;
        println!(
            "{}",
            json!({
                "scenario": "memory_per_app",
                "app": app.app_id,
                "processes": names,
                "rss_mb": round(rss_mb),
                "pss_mb": round(pss_mb),
            })
        );
    }
    let (shell_rss, shell_pss) = memory_kb(shell_pid);
    let n = apps.len() as f64;
    println!(
        "{}",
        json!({
            "scenario": "memory_mean_per_app",
            "apps": apps.len(),
            "rss_mb": round(total_rss / n),
            "pss_mb": round(total_pss / n),
            "shell_rss_mb": round(shell_rss as f64 / 1024.0),
            "shell_pss_mb": round(shell_pss as f64 / 1024.0),
        })
    );
    Ok(())
}

/// (RSS, PSS) of one process in KiB, from `/proc/PID/smaps_rollup`.
fn memory_kb(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("Rss:"), field("Pss:"))
}
