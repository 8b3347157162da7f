//! `weft journal check` and `weft keys rotate`: run in the command's own process, on
//! the files, so they work whether or not a shell runs.

use std::{path::Path, process::ExitCode};

use anyhow::Context;
use serde::Serialize;
use weft_journal::{CheckReport, DamageKind};

use weft_proto::frame::{ControlReply, ControlRequest};

use crate::{audit_trail, commands, config::Config, data_dir, journal_keys};

/// Checks every stream of the data directory's journal.
pub fn check(
    data_dir: Option<&Path>,
    config_file: Option<&Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let data_dir = data_dir::resolve(data_dir)?;
    let config = Config::load_user(config_file)?;
    let journal = journal_keys::journal_dir(&data_dir);
    let mut streams = vec![];
    if let Ok(entries) = std::fs::read_dir(&journal) {
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", journal.display()))?;
            if entry.path().join("stream.name").exists() {
                streams.push(entry.path());
            }
        }
    }
    streams.sort();
    if streams.is_empty() {
        if !json {
            println!("no durable streams in {}", journal.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let keys = journal_keys::load(&data_dir, config.journal.key_file)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .keys;
    let mut unquarantined = 0;
    for dir in streams {
        let report = weft_journal::check_stream(&dir, &keys)
            .with_context(|| format!("checking {}", dir.display()))?;
        unquarantined += report
            .damage
            .iter()
            .filter(|d| d.kind != DamageKind::Quarantined)
            .count();
        if json {
            println!("{}", serde_json::to_string(&JsonReport::of(&report))?);
        } else {
            print_report(&report);
        }
    }
    Ok(if unquarantined == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_report(report: &CheckReport) {
    println!(
        "{}: {} records in {} segments ({} bytes), {}",
        report.stream,
        report.records,
        report.segments,
        report.bytes,
        match report.damage.len() {
            0 => "no damage".to_owned(),
            n => format!("{n} damaged places:"),
        }
    );
    for d in &report.damage {
        println!(
            "  {} at byte {} of {} ({} bytes){}",
            d.kind,
            d.offset,
            d.segment.display(),
            d.len,
            d.quarantined
                .as_ref()
                .map(|q| format!(", kept in {}", q.display()))
                .unwrap_or_default()
        );
    }
}

/// One stream's check, as `--json` prints it.
#[derive(Serialize)]
struct JsonReport<'a> {
    stream: &'a str,
    records: u64,
    segments: usize,
    bytes: u64,
    damage: Vec<JsonDamage>,
}

#[derive(Serialize)]
struct JsonDamage {
    kind: String,
    segment: String,
    offset: u64,
    len: u64,
    quarantined: Option<String>,
}

impl<'a> JsonReport<'a> {
    fn of(report: &'a CheckReport) -> Self {
        JsonReport {
            stream: &report.stream,
            records: report.records,
            segments: report.segments,
            bytes: report.bytes,
            damage: report
                .damage
                .iter()
                .map(|d| JsonDamage {
                    kind: d.kind.to_string(),
                    segment: d.segment.display().to_string(),
                    offset: d.offset,
                    len: d.len,
                    quarantined: d.quarantined.as_ref().map(|q| q.display().to_string()),
                })
                .collect(),
        }
    }
}

/// Adds a new journal key.
pub fn rotate_keys(
    data_dir: Option<&Path>,
    config_file: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let data_dir = data_dir::resolve(data_dir)?;
    let config = Config::load_user(config_file)?;
    let (id, source) = journal_keys::rotate(&data_dir, config.journal.key_file)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "journal key {id} created in {source}; segments written from the shell's next start use it"
    );
    record_rotation(&data_dir, &config, &id.to_string(), &source.to_string())?;
    Ok(ExitCode::SUCCESS)
}

/// Records a key rotation in the audit log: through the running shell, its only
/// writer, or directly while holding the data directory's lock when none runs.
fn record_rotation(
    data_dir: &Path,
    config: &Config,
    key_id: &str,
    store: &str,
) -> anyhow::Result<()> {
    let request = ControlRequest::KeysRotated {
        key_id: key_id.to_owned(),
        store: store.to_owned(),
    };
    commands::through_shell_or_locked(data_dir, request, || {
        audit_trail::record_offline(
            data_dir,
            config,
            "keys.rotate",
            serde_json::json!({"keyId": key_id, "store": store, "by": "cli"}),
        )
        .map(|()| ControlReply::Done)
    })
    .map(drop)
    .context("recording the rotation in the audit log")
}
