//! `weft-release`: makes and signs Weft's update repository. See `docs/releasing.md`
//! for the key ceremony (offline root keys, online timestamp key).

use std::{os::unix::fs::PermissionsExt, path::PathBuf};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use jiff::SignedDuration;
use semver::Version;
use weft_release::{
    keys::KeyDir,
    repository::{self, Lifetimes, RepoDir},
};
use weft_update_repo::{Release, archive::Files, current_platform};

#[derive(Parser)]
#[command(
    version,
    about = "Publish signed Weft releases (TUF repository, full archives, deltas)"
)]
struct Cli {
    /// The repository folder (served as it is by any HTTPS server).
    #[arg(long, global = true, default_value = "repository")]
    repo: PathBuf,
    /// The folder of signing keys.
    #[arg(long, global = true, default_value = "keys")]
    keys: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make the missing keys and a new repository (root signed by two root keys).
    Init,
    /// Publish a release: its full archive and deltas from the previous three versions.
    Publish {
        /// Its version.
        #[arg(long)]
        version: Version,
        /// The channel.
        #[arg(long, default_value = "stable")]
        channel: String,
        /// The platform its files are for.
        #[arg(long, default_value_t = current_platform())]
        platform: String,
        /// The share of installs offered it at first, 0–100.
        #[arg(long, default_value_t = 100)]
        rollout: u8,
        /// Installs older than this are not offered it.
        #[arg(long)]
        min_version: Option<Version>,
        /// The folder of the release's files (`weft`, `weft-app`, …).
        #[arg(long)]
        files: PathBuf,
    },
    /// Change the share of installs a release is offered to.
    Rollout {
        /// The release's version.
        #[arg(long)]
        version: Version,
        /// Its channel.
        #[arg(long, default_value = "stable")]
        channel: String,
        /// The new share, 0–100.
        #[arg(long)]
        percent: u8,
    },
    /// Stop offering a release (its rollout to 0).
    Halt {
        /// The release's version.
        #[arg(long)]
        version: Version,
        /// Its channel.
        #[arg(long, default_value = "stable")]
        channel: String,
    },
    /// Re-sign the timestamp with the online key (run it well within its lifetime).
    Timestamp {
        /// How long the new timestamp is valid, in hours.
        #[arg(long, default_value_t = 24)]
        hours: i64,
    },
}

fn read_files(dir: &PathBuf) -> anyhow::Result<Files> {
    let mut files = Files::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if !meta.is_file() {
            bail!(
                "{} is not a plain file: a release holds files only",
                entry.path().display()
            );
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(entry.path())?;
        files.insert(name, (bytes, meta.permissions().mode() & 0o111 != 0));
    }
    if files.is_empty() {
        bail!("{} holds no files", dir.display());
    }
    Ok(files)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let repo = RepoDir::new(&cli.repo);
    let keys = KeyDir::new(&cli.keys);
    let lifetimes = Lifetimes::default();
    match cli.command {
        Command::Init => {
            repository::init(&repo, &keys, &lifetimes).await?;
            println!(
                "created {}; ship {} inside weft",
                cli.repo.display(),
                repo.first_root().display()
            );
        }
        Command::Publish {
            version,
            channel,
            platform,
            rollout,
            min_version,
            files,
        } => {
            if rollout > 100 {
                bail!("--rollout is a percentage: {rollout} is over 100");
            }
            let files = read_files(&files)?;
            let release = Release {
                version,
                channel,
                platform,
                rollout_percent: rollout,
                min_version,
            };
            let published = repository::publish(&repo, &keys, release, &files, &lifetimes).await?;
            println!("{} ({} bytes)", published.full.0, published.full.1);
            for (from, delta) in &published.deltas {
                println!(
                    "{} ({} bytes, {:.1} % of the full archive) from {from}",
                    delta.name,
                    delta.length,
                    delta.length as f64 * 100.0 / published.full.1 as f64
                );
                for file in &delta.patches {
                    let sizes: Vec<String> = file
                        .sizes
                        .iter()
                        .map(|(format, size)| format!("{} {size} bytes", format.label()))
                        .collect();
                    println!(
                        "  {}: {} kept ({})",
                        file.name,
                        file.chosen.label(),
                        sizes.join(", ")
                    );
                }
            }
        }
        Command::Rollout {
            version,
            channel,
            percent,
        } => {
            let n = repository::set_rollout(&repo, &keys, &channel, &version, percent, &lifetimes)
                .await?;
            println!("{version} on {channel}: {percent} % ({n} targets)");
        }
        Command::Halt { version, channel } => {
            let n =
                repository::set_rollout(&repo, &keys, &channel, &version, 0, &lifetimes).await?;
            println!("{version} on {channel}: halted ({n} targets)");
        }
        Command::Timestamp { hours } => {
            let version =
                repository::refresh_timestamp(&repo, &keys, SignedDuration::from_hours(hours))
                    .await?;
            println!("timestamp version {version}, valid for {hours} h");
        }
    }
    Ok(())
}
