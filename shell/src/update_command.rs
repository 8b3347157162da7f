//! `weft update status` and `weft update check`: what the updater would do under the
//! settings in force (`[updates]`, which policy can lock), and what the repository
//! offers this install, checked with `weft-updater` (TUF, from the newest root trusted).
//!
//! Trusted state is kept per user in `DATA_DIR/updates/` (`root.json`, `tuf/`, and the
//! install's random `install-id` for staged rollouts).

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, bail};
use semver::Version;
use weft_updater::{
    CheckSettings, Mirror,
    install::{Installation, StartCheck, TRIAL_STARTS},
};

use weft_proto::frame::{ControlReply, ControlRequest, UpdateChange, UpdateEvent};

use crate::{
    audit_trail,
    config::{Config, UpdatesConfig},
};

/// The version installed: the install's folder name when this `weft` runs from a
/// side-by-side install, else this build's own version.
pub fn installed() -> Version {
    running_version().unwrap_or_else(|| {
        Version::parse(env!("CARGO_PKG_VERSION")).expect("the package version is semver")
    })
}

/// Where this `weft` is installed side by side (`ROOT/versions/VERSION/weft`), if it is.
pub fn install_root() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let versions = exe.parent()?.parent()?;
    (versions.file_name()? == "versions").then(|| versions.parent().map(Path::to_owned))?
}

/// The version this install runs: its folder's name (`ROOT/versions/VERSION/weft`),
/// which the installer chose, whatever the binary says of itself.
fn running_version() -> Option<Version> {
    install_root()?;
    let exe = std::env::current_exe().ok()?;
    Version::parse(exe.parent()?.file_name()?.to_str()?).ok()
}

/// What a start of the shell does first when it runs from a side-by-side install:
/// finishes or undoes an interrupted update step, counts the start of a version on
/// trial and keeps it once `weft self-test`'s checks pass, and — when the version used
/// up its trial starts without passing — switches back to the previous version, refuses
/// the failed one and runs the previous one in its place (never returns then).
pub fn on_start(data_dir: Option<&Path>, config_file: Option<&Path>) -> anyhow::Result<()> {
    let (Some(root), Some(running)) = (install_root(), running_version()) else {
        return Ok(());
    };
    let (mut install, recovered) = Installation::open(&root)?;
    if let Some(step) = recovered {
        eprintln!("weft: finished an interrupted update step: {step:?}");
    }
    match install.begin_start(&running)? {
        StartCheck::Run => Ok(()),
        StartCheck::Trial { start } => {
            let failed = crate::self_test::failures(data_dir, config_file);
            if failed.is_empty() {
                install.mark_healthy(&running)?;
                drop(install);
                eprintln!("weft: {running} passed its self-test and is kept");
                record_at_start(
                    data_dir,
                    config_file,
                    UpdateChange {
                        event: UpdateEvent::Kept,
                        version: running.to_string(),
                        from: None,
                        how: format!("its self-test passed at start {start} of {TRIAL_STARTS}"),
                    },
                );
            } else {
                eprintln!(
                    "weft: {running} is on trial (start {start} of {TRIAL_STARTS}) and not healthy: {}",
                    failed.join("; ")
                );
            }
            Ok(())
        }
        StartCheck::Reverted { to, binary } => {
            eprintln!(
                "weft: {running} did not pass its self-test within {TRIAL_STARTS} starts: back to \
                 {to}, and {running} is not offered again"
            );
            drop(install);
            record_at_start(
                data_dir,
                config_file,
                UpdateChange {
                    event: UpdateEvent::Reverted,
                    version: to.to_string(),
                    from: Some(running.to_string()),
                    how: format!("its self-test did not pass within {TRIAL_STARTS} starts"),
                },
            );
            use std::os::unix::process::CommandExt;
            let e = std::process::Command::new(&binary)
                .args(std::env::args_os().skip(1))
                .exec();
            bail!("cannot start {to} ({}): {e}", binary.display())
        }
    }
}

/// Records what a start did to the installed versions; a start goes on without it.
fn record_at_start(data_dir: Option<&Path>, config_file: Option<&Path>, change: UpdateChange) {
    let recorded = crate::data_dir::resolve(data_dir).and_then(|dir| {
        let config = Config::load_user(config_file)?;
        record_change(&dir, &config, &change)
    });
    if let Err(e) = recorded {
        eprintln!("weft: {e:#}");
    }
}

/// The TUF root this build was made with (`WEFT_UPDATE_ROOT`, see `build.rs`), which an
/// install trusts first unless `updates.root` names another (an internal repository's).
#[cfg(weft_shipped_root)]
const SHIPPED_ROOT: Option<&[u8]> = Some(include_bytes!(concat!(
    env!("OUT_DIR"),
    "/shipped-root.json"
)));
#[cfg(not(weft_shipped_root))]
const SHIPPED_ROOT: Option<&[u8]> = None;

/// Whether there is a root to trust first: configured or built in.
pub fn has_root(config: &Config) -> bool {
    config.updates.root.is_some() || SHIPPED_ROOT.is_some()
}

/// Where the root trusted first comes from, in words.
fn root_source(config: &Config) -> String {
    match (&config.updates.root, SHIPPED_ROOT) {
        (Some(root), _) => format!(
            "{} (from {})",
            root.display(),
            source_of(config, "updates.root")
        ),
        (None, Some(_)) => "built into this weft".into(),
        (None, None) => "none: this build has none built in; set updates.root".into(),
    }
}

/// Where the updater keeps what it trusts, for this data directory.
fn state_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("updates")
}

/// This install's random id (made once), which places it in staged rollouts.
fn install_id(state: &Path) -> anyhow::Result<String> {
    let path = state.join("install-id");
    if let Ok(id) = std::fs::read_to_string(&path)
        && id.trim().len() == 32
    {
        return Ok(id.trim().to_owned());
    }
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no randomness for an install id: {e}"))?;
    let id = hex::encode(bytes);
    std::fs::create_dir_all(state).with_context(|| format!("creating {}", state.display()))?;
    std::fs::write(&path, &id).with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
}

/// Where a setting came from, for messages.
fn source_of(config: &Config, key: &str) -> String {
    config
        .provenance
        .settings
        .iter()
        .find(|s| s.key == key)
        .map_or_else(
            || "default".to_owned(),
            |s| {
                config
                    .provenance
                    .describe(&s.source, &config.policy_in_force)
            },
        )
}

/// The check's settings, or why updates cannot be checked.
fn settings(config: &Config, data_dir: &Path, now: bool) -> anyhow::Result<CheckSettings> {
    let updates: &UpdatesConfig = &config.updates;
    if !updates.enabled {
        bail!(
            "updates are turned off (updates.enabled = false, from {})",
            source_of(config, "updates.enabled")
        );
    }
    let Some(mirror) = &updates.mirror else {
        bail!("no update repository is configured (set updates.mirror; see docs/configuration.md)");
    };
    let shipped_root = match (&updates.root, SHIPPED_ROOT) {
        (Some(root), _) => std::fs::read(root)
            .with_context(|| format!("reading the TUF root {}", root.display()))?,
        (None, Some(built_in)) => built_in.to_vec(),
        (None, None) => bail!(
            "no TUF root to trust: this build was made without one (WEFT_UPDATE_ROOT, see \
             docs/releasing.md); set updates.root to the repository's 1.root.json"
        ),
    };
    let mirror = Mirror::at(&mirror.parse().context("updates.mirror is not a URL")?)?;
    let state_dir = state_dir(data_dir);
    let refused = match install_root() {
        Some(root) => Installation::peek(&root)?.refused,
        None => Default::default(),
    };
    Ok(CheckSettings {
        mirror,
        shipped_root,
        install_id: install_id(&state_dir)?,
        state_dir,
        channel: updates.channel.clone(),
        platform: weft_update_repo::current_platform(),
        installed: installed(),
        pinned: updates.pin.as_deref().map(Version::parse).transpose()?,
        skip_staging: now,
        refused,
    })
}

/// Checks the repository under the settings in force; the settings and what it found.
fn check_repository(
    config: &Config,
    data_dir: &Path,
    now: bool,
) -> anyhow::Result<(CheckSettings, weft_updater::Checked)> {
    let settings = settings(config, data_dir, now)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime")?;
    let checked = runtime.block_on(weft_updater::check(&settings))?;
    Ok((settings, checked))
}

/// `weft update status`: the settings in force and the install's versions.
pub fn status(data_dir: &Path, config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let updates = &config.updates;
    let managed = install_root();
    let install = match &managed {
        Some(root) => Some(Installation::peek(root)?),
        None => None,
    };
    if json {
        println!(
            "{}",
            serde_json::json!({
                "installed": installed().to_string(),
                "enabled": updates.enabled,
                "enabledFrom": source_of(config, "updates.enabled"),
                "mirror": updates.mirror,
                "channel": updates.channel,
                "pin": updates.pin,
                "root": root_source(config),
                "stateDir": state_dir(data_dir),
                "installRoot": managed,
                "current": install.as_ref().and_then(|s| s.current.as_ref().map(Version::to_string)),
                "previous": install.as_ref().map(|s| s.previous.iter().map(Version::to_string).collect::<Vec<_>>()),
                "trial": install.as_ref().and_then(|s| s.trial.as_ref().map(|t| t.version.to_string())),
                "refused": install.as_ref().map(|s| s.refused.iter().map(Version::to_string).collect::<Vec<_>>()),
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("weft {} on channel {}", installed(), updates.channel);
    println!(
        "updates: {} (from {})",
        if updates.enabled { "on" } else { "off" },
        source_of(config, "updates.enabled")
    );
    println!(
        "repository: {}",
        updates.mirror.as_deref().unwrap_or("none configured")
    );
    println!("TUF root trusted first: {}", root_source(config));
    if let Some(pin) = &updates.pin {
        println!(
            "pinned to {pin} (from {})",
            source_of(config, "updates.pin")
        );
    }
    match (&managed, &install) {
        (Some(root), Some(s)) => {
            println!("installed side by side in {}", root.display());
            let list = |v: &[Version]| {
                v.iter()
                    .map(Version::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            println!(
                "kept to roll back to: {}",
                if s.previous.is_empty() {
                    "none".into()
                } else {
                    list(&s.previous)
                }
            );
            if let Some(t) = &s.trial {
                println!("on trial: {} ({} starts so far)", t.version, t.starts);
            }
            if !s.refused.is_empty() {
                println!(
                    "never offered again: {}",
                    list(&s.refused.iter().cloned().collect::<Vec<_>>())
                );
            }
        }
        _ => println!("this weft is not installed side by side, so it cannot be updated in place"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft update check [--now]`: what the repository offers this install.
pub fn check(data_dir: &Path, config: &Config, now: bool, json: bool) -> anyhow::Result<ExitCode> {
    let (settings, checked) = check_repository(config, data_dir, now)?;
    let target =
        |t: &weft_updater::TargetRef| serde_json::json!({"name": t.name, "length": t.length});
    if json {
        println!(
            "{}",
            serde_json::json!({
                "installed": settings.installed.to_string(),
                "channel": settings.channel,
                "offer": checked.offer.as_ref().map(|o| serde_json::json!({
                    "version": o.release.version.to_string(),
                    "rolloutPercent": o.release.rollout_percent,
                    "full": target(&o.full),
                    "delta": o.delta.as_ref().map(target),
                })),
                "newest": checked.newest.as_ref().map(|r| r.version.to_string()),
                "rootVersion": checked.root_version,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", describe(&settings, &checked));
    Ok(ExitCode::SUCCESS)
}

/// `weft update apply [--now]`: downloads (by delta when it can) and installs what the
/// repository offers beside the running version; it runs from the next start.
pub fn apply(data_dir: &Path, config: &Config, now: bool) -> anyhow::Result<ExitCode> {
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("weft update {bar:30} {bytes}/{total_bytes} {eta}")
            .expect("a valid template"),
    );
    let done = apply_offer(
        data_dir,
        config,
        now,
        "the command line",
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    );
    bar.finish_and_clear();
    let done = done?;
    if let Some(change) = &done.change {
        record_change(data_dir, config, change)?;
    }
    println!("{}", done.text);
    Ok(ExitCode::SUCCESS)
}

/// What an update command did: in words, and as the audit log records it.
#[derive(Debug, Clone)]
pub struct Done {
    /// What was done, for the user.
    pub text: String,
    /// The change to the installed versions, when there was one.
    pub change: Option<UpdateChange>,
}

/// Checks, downloads and installs what the repository offers (reporting download
/// progress); `by` says who asked, for the audit log.
pub fn apply_offer(
    data_dir: &Path,
    config: &Config,
    now: bool,
    by: &str,
    progress: &mut dyn FnMut(u64, u64),
) -> anyhow::Result<Done> {
    let Some(root) = install_root() else {
        bail!(
            "this weft ({}) is not installed side by side (ROOT/versions/VERSION/weft), so it \
             cannot be updated in place",
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    };
    let (_, checked) = check_repository(config, data_dir, now)?;
    let Some(offer) = checked.offer else {
        return Ok(Done {
            text: "up to date: nothing to apply".into(),
            change: None,
        });
    };
    let version = &offer.release.version;
    if Installation::peek(&root)?.current.as_ref() == Some(version) {
        return Ok(Done {
            text: format!("weft {version} is already installed and runs from the next start"),
            change: None,
        });
    }
    let applied = weft_updater::apply::apply(
        &root,
        &offer,
        &weft_updater::transport::MirrorTransport::download_agent(),
        &state_dir(data_dir).join("downloads"),
        progress,
    )?;
    let kib = applied.transferred.div_ceil(1024);
    let how = match (&applied.by_delta, &applied.delta_failed) {
        (true, _) => format!("by delta, {kib} KiB downloaded"),
        (false, Some(why)) => {
            format!("from the full archive, {kib} KiB downloaded, because the delta failed: {why}")
        }
        (false, None) => format!("from the full archive, {kib} KiB downloaded"),
    };
    Ok(Done {
        text: format!(
            "weft {version} is installed ({how}). It runs from the next start, on trial until \
             its self-test passes; `weft update rollback` returns to {}.",
            installed()
        ),
        change: Some(UpdateChange {
            event: UpdateEvent::Installed,
            version: version.to_string(),
            from: Some(installed().to_string()),
            how: format!("{how}; asked by {by}"),
        }),
    })
}

/// `weft update rollback`: back to the newest kept earlier version from the next start;
/// the version left is never offered again.
pub fn rollback(data_dir: &Path, config: &Config) -> anyhow::Result<ExitCode> {
    let done = roll_back("the command line")?;
    if let Some(change) = &done.change {
        record_change(data_dir, config, change)?;
    }
    println!("{}", done.text);
    Ok(ExitCode::SUCCESS)
}

/// Switches the install back one version; `by` says who asked, for the audit log.
pub fn roll_back(by: &str) -> anyhow::Result<Done> {
    let Some(root) = install_root() else {
        bail!("this weft is not installed side by side, so there is nothing to roll back to");
    };
    let (mut install, _) = Installation::open(&root)?;
    let from = install.status().current;
    let to = install.rollback()?;
    let text = match &from {
        Some(from) => format!("back to weft {to} from the next start; {from} is not offered again"),
        None => format!("back to weft {to} from the next start"),
    };
    Ok(Done {
        text,
        change: Some(UpdateChange {
            event: UpdateEvent::RolledBack,
            version: to.to_string(),
            from: from.map(|v| v.to_string()),
            how: format!("asked by {by}"),
        }),
    })
}

/// Records a change in the audit log: through the running shell (its only writer), or
/// directly while holding the data directory's lock when none runs.
pub fn record_change(
    data_dir: &Path,
    config: &Config,
    change: &UpdateChange,
) -> anyhow::Result<()> {
    crate::commands::through_shell_or_locked(
        data_dir,
        ControlRequest::UpdateChanged(change.clone()),
        || {
            audit_trail::record_offline(
                data_dir,
                config,
                change.event.audit_name(),
                audit_trail::update_details(change),
            )
            .map(|()| ControlReply::Done)
        },
    )
    .map(drop)
    .context("recording the update in the audit log")
}

/// What the panel's Updates view shows: the settings in force with their sources, and
/// the install's versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdatesView {
    /// Whether updates are on.
    pub enabled: bool,
    /// Where each setting came from, as `key: value (source)` lines.
    pub settings: Vec<String>,
    /// This install's versions, when it is installed side by side.
    pub install: Option<weft_updater::install::Status>,
    /// The version running.
    pub running: Version,
}

impl UpdatesView {
    /// The view of `config` and the install this `weft` runs from.
    pub fn read(config: &Config) -> UpdatesView {
        let line =
            |key: &str, value: String| format!("{key}: {value} ({})", source_of(config, key));
        let updates = &config.updates;
        let mut settings = vec![
            line("updates.enabled", updates.enabled.to_string()),
            line("updates.channel", updates.channel.clone()),
            line(
                "updates.mirror",
                updates.mirror.clone().unwrap_or_else(|| "none".into()),
            ),
        ];
        if let Some(pin) = &updates.pin {
            settings.push(line("updates.pin", pin.clone()));
        }
        settings.push(format!("TUF root trusted first: {}", root_source(config)));
        UpdatesView {
            enabled: updates.enabled,
            settings,
            install: install_root().and_then(|root| Installation::peek(&root).ok()),
            running: installed(),
        }
    }
}

/// What the repository offers this install, in words (the panel's "Check now").
pub fn offer_text(data_dir: &Path, config: &Config, now: bool) -> anyhow::Result<String> {
    let (settings, checked) = check_repository(config, data_dir, now)?;
    Ok(describe(&settings, &checked))
}

/// A check's result, in words.
fn describe(settings: &CheckSettings, checked: &weft_updater::Checked) -> String {
    match &checked.offer {
        Some(offer) => {
            let size = match &offer.delta {
                Some(d) => format!(
                    "a {} KiB delta from {} (the full archive is {} KiB)",
                    d.length.div_ceil(1024),
                    settings.installed,
                    offer.full.length.div_ceil(1024)
                ),
                None => format!("{} KiB", offer.full.length.div_ceil(1024)),
            };
            format!(
                "{} is available on {}: {size}",
                offer.release.version, settings.channel
            )
        }
        None => match &checked.newest {
            Some(newest) if newest.version > settings.installed => format!(
                "up to date for this install: {} is published on {} but not offered here \
                 (staged at {} %, halted, pinned or refused)",
                newest.version, settings.channel, newest.rollout_percent
            ),
            _ => format!(
                "up to date: {} is the newest on {}",
                settings.installed, settings.channel
            ),
        },
    }
}
