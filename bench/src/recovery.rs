//! `weft-bench recovery`: mean time to recovery. An app is killed with SIGKILL, and the
//! time runs until the supervisor has started it again and its new page is loaded with
//! its bridge connected — measured as the arrival of the message the page publishes
//! once it has subscribed (the `page_to_page` benchmark page, in its idle role).
//!
//! The workspace sets a short crash-loop window (`crashLoopSecs` 0.2), and each kill
//! waits until the app has been ready for longer than that: every kill is then a first
//! crash, restarted at once, as a kill after a healthy run is. Runs the release `weft`
//! on a private Xvfb.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use weft_client::Client;
use weft_e2e::{Display, TestEnv};
use weft_proto::{
    Topic,
    frame::{AppState, ControlReply, ControlRequest},
};

use crate::{connect_when_up, round, start_shell, write_page_workspace};

/// How long an app is left ready before the next kill: past its crash-loop window.
const HEALTHY_FOR: Duration = Duration::from_millis(300);

/// Kills the app `kills` times and prints the recovery times.
pub fn run(kills: usize) -> anyhow::Result<()> {
    let display = Display::start();
    let env = TestEnv::new();
    let workspace = write_workspace(&env)?;
    let shell = start_shell(&env, &display, &[workspace.as_os_str()])?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(measure(&env, kills));
    shell.stop();
    let mut times = result?;
    times.sort();
    let ms = |d: Duration| round(d.as_secs_f64() * 1000.0);
    println!(
        "{}",
        json!({
            "scenario": "recovery",
            "kills": times.len(),
            "median_ms": ms(times[times.len() / 2]),
            "min_ms": ms(times[0]),
            "max_ms": ms(times[times.len() - 1]),
            "measured": "kill -9 of the app host -> its new page loaded with the bridge connected",
        })
    );
    Ok(())
}

fn write_workspace(env: &TestEnv) -> anyhow::Result<std::path::PathBuf> {
    let app = json!({"appId": "victim", "url": "index.html", "crashLoopSecs": 0.2,
                     "maxCrashes": 1000,
                     "bounds": {"x": 0, "y": 0, "width": 400, "height": 300}});
    write_page_workspace(env, "recovery", vec![app])
}

async fn measure(env: &TestEnv, kills: usize) -> anyhow::Result<Vec<Duration>> {
    let client = connect_when_up(env, Instant::now() + Duration::from_secs(120)).await?;
    let mut ready = client.subscribe(&Topic::new("bench.p2p.ready")?).await?;
    let mut times = Vec::with_capacity(kills);
    let mut ready_at = wait_ready(&client, &mut ready, None).await?;
    for _ in 0..kills {
        // The benchmark's pacing: the app has been healthy past its crash-loop window.
        tokio::time::sleep_until((ready_at + HEALTHY_FOR).into()).await;
        let pid = host_pid(&client).await?;
        let killed = Instant::now();
        // SAFETY: kill only sends a signal, to the app host this benchmark's shell runs.
        if unsafe { libc::kill(pid as i32, libc::SIGKILL) } != 0 {
            bail!("cannot kill the app host {pid}");
        }
        ready_at = wait_ready(&client, &mut ready, Some(pid)).await?;
        times.push(ready_at - killed);
    }
    Ok(times)
}

/// The app host's current process id.
async fn host_pid(client: &Client) -> anyhow::Result<u32> {
    match client.control(ControlRequest::ListApps).await? {
        ControlReply::Apps { apps, .. } => apps
            .first()
            .filter(|a| a.state != AppState::Failed)
            .and_then(|a| a.pid)
            .context("the app has no process"),
        other => bail!("unexpected answer {other:?}"),
    }
}

/// Waits for the page's readiness message, from a host other than `old` if given.
async fn wait_ready(
    client: &Client,
    ready: &mut weft_client::Subscription,
    old: Option<u32>,
) -> anyhow::Result<Instant> {
    loop {
        tokio::time::timeout(Duration::from_secs(60), ready.next())
            .await
            .context("the app did not get ready within 60 s")?
            .context("the shell closed the connection")?;
        let at = Instant::now();
        // A message from the killed host still in flight would not be a recovery.
        if old.is_none() || host_pid(client).await.ok() != old {
            return Ok(at);
        }
    }
}
