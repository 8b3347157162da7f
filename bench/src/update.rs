//! `weft-bench update --old DIR --new DIR`: what an update costs, for two builds of
//! `weft` and `weft-app` (`scripts/bench-update` makes them: the release build, and
//! the same with one source line changed).
//!
//! - `update.patch`, per format (bsdiff, zstd `--patch-from`): the patch of the `weft`
//!   binary, its share of the binary, the time to make it and (median) to apply it.
//! - `update.delta`: the delta the publisher (`weft-release`) makes from the old
//!   release to the new — the smaller patch per file — beside the full archive.
//! - `update.apply_to_ready`: end to end from `weft update apply --now` run by the old
//!   version (check against the signed repository served on 127.0.0.1, delta download,
//!   patch, verification against the signed digests, install side by side) to the new
//!   version's `weft self-test` passing — the check a first start runs before it keeps
//!   the new version.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use semver::Version;
use serde_json::json;
use weft_e2e::{StaticServer, TestEnv};
use weft_release::{
    keys::KeyDir,
    repository::{self, Lifetimes, RepoDir},
};
use weft_update_repo::{Release, archive::Files, current_platform, patch::PatchFormat};
use weft_updater::install::Installation;

use crate::round;

/// The update scenario's arguments.
#[derive(clap::Args)]
pub struct UpdateArgs {
    /// A folder holding the old release's `weft` and `weft-app`.
    #[arg(long)]
    old: PathBuf,
    /// A folder holding the new release's `weft` and `weft-app`.
    #[arg(long)]
    new: PathBuf,
    /// How many times to time each apply.
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

const OLD: Version = Version::new(1, 0, 0);
const NEW: Version = Version::new(1, 0, 1);

/// Runs every update scenario.
pub fn run(args: UpdateArgs) -> anyhow::Result<()> {
    let runs = args.runs.max(1);
    let old = release_files(&args.old)?;
    let new = release_files(&args.new)?;
    patches(&old["weft"].0, &new["weft"].0, runs)?;
    apply_to_ready(&old, &new, runs)
}

fn release_files(dir: &Path) -> anyhow::Result<Files> {
    let mut files = Files::new();
    for name in ["weft", "weft-app"] {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        files.insert(name.to_owned(), (bytes, true));
    }
    Ok(files)
}

fn median(mut times: Vec<Duration>) -> f64 {
    times.sort();
    round(times[times.len() / 2].as_secs_f64() * 1000.0)
}

fn patches(old: &[u8], new: &[u8], runs: usize) -> anyhow::Result<()> {
    ensure!(
        old != new,
        "the two weft binaries are the same: nothing to patch"
    );
    for format in PatchFormat::ALL {
        let start = Instant::now();
        let patch = format.diff(old, new);
        let diff = start.elapsed();
        let mut applies = Vec::with_capacity(runs);
        for _ in 0..runs {
            let start = Instant::now();
            let made = format
                .apply(old, &patch, 1 << 30)
                .map_err(|e| anyhow::anyhow!("{}: {e}", format.label()))?;
            applies.push(start.elapsed());
            ensure!(made == new, "{} gave other bytes", format.label());
        }
        println!(
            "{}",
            json!({
                "scenario": "update.patch",
                "format": format.label(),
                "weft_bytes": new.len(),
                "patch_bytes": patch.len(),
                "share_pct": round(patch.len() as f64 * 100.0 / new.len() as f64 * 10.0) / 10.0,
                "diff_s": round(diff.as_secs_f64()),
                "apply_ms_median": median(applies),
                "runs": runs,
            })
        );
    }
    Ok(())
}

fn apply_to_ready(old: &Files, new: &Files, runs: usize) -> anyhow::Result<()> {
    let publisher = TestEnv::new();
    let repo = RepoDir::new(publisher.path("repo"));
    let keys = KeyDir::new(publisher.path("keys"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let lifetimes = Lifetimes::default();
    runtime.block_on(repository::init(&repo, &keys, &lifetimes))?;
    let release = |version: Version| Release {
        version,
        channel: "stable".into(),
        platform: current_platform(),
        rollout_percent: 100,
        min_version: None,
    };
    runtime.block_on(repository::publish(
        &repo,
        &keys,
        release(OLD),
        old,
        &lifetimes,
    ))?;
    let start = Instant::now();
    let published = runtime.block_on(repository::publish(
        &repo,
        &keys,
        release(NEW),
        new,
        &lifetimes,
    ))?;
    let publish_time = start.elapsed();
    let delta = published
        .deltas
        .get(&OLD)
        .context("the publisher made no delta")?;
    let chosen: Vec<_> = delta
        .patches
        .iter()
        .map(|p| json!({"file": p.name, "format": p.chosen.label()}))
        .collect();
    println!(
        "{}",
        json!({
            "scenario": "update.delta",
            "delta_bytes": delta.length,
            "full_archive_bytes": published.full.1,
            "share_of_full_archive_pct": round(delta.length as f64 * 100.0 / published.full.1 as f64),
            "kept": chosen,
            "publish_s": round(publish_time.as_secs_f64()),
        })
    );

    let server = StaticServer::serve(&publisher.path("repo"));
    let config = format!(
        "[updates]\nmirror = {:?}\nroot = {:?}\ncheck_every_minutes = 0\n",
        server.base,
        repo.first_root().display().to_string()
    );
    let (mut applies, mut readies) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let env = TestEnv::new();
        env.write_config(&config);
        let root = env.path("install");
        let (mut install, _) = Installation::open(&root)?;
        install.install(&OLD, old, &mut |_| {})?;
        install.mark_healthy(&OLD)?;
        drop(install);

        let start = Instant::now();
        let out = env
            .command(&root.join("versions/1.0.0/weft"), None)
            .args(["update", "apply", "--now"])
            .output()?;
        let said = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !said.contains("by delta") {
            bail!(
                "weft update apply: {said}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        applies.push(start.elapsed());
        let out = env
            .command(&root.join("current/weft"), None)
            .args(["self-test"])
            .output()?;
        if !out.status.success() {
            bail!(
                "the new version's self-test: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        readies.push(start.elapsed());
    }
    println!(
        "{}",
        json!({
            "scenario": "update.apply_to_ready",
            "runs": runs,
            "apply_ms_median": median(applies),
            "ready_ms_median": median(readies),
            "measured": "weft update apply --now (signed check, delta download from 127.0.0.1, patch, verify, install) -> the new version's self-test passes",
        })
    );
    Ok(())
}
