//! `weft audit verify` and `weft audit export`: run on the files, whether or not a shell
//! runs (the shell only appends, and a line is visible only once whole).

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, SystemTime},
};

use anyhow::{Context, bail};
use weft_audit::{AnchorRecord, anchor::log_id, export};

use crate::{audit_trail, data_dir};

/// `weft audit verify`.
pub fn verify(
    data_dir: Option<&Path>,
    files: &[PathBuf],
    no_journal: bool,
) -> anyhow::Result<ExitCode> {
    let data_dir = data_dir::resolve(data_dir)?;
    let dir = audit_trail::dir(&data_dir);
    if !dir.is_dir() {
        bail!("there is no audit log in {}", dir.display());
    }
    let log = log_id(&dir);
    let mut anchors = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading anchors from {}", file.display()))?;
        anchors.extend(AnchorRecord::find_in(&text, &log));
    }
    if !no_journal && let Some(text) = system_journal() {
        anchors.extend(AnchorRecord::find_in(&text, &log));
    }
    match weft_audit::verify(&dir, &anchors) {
        Ok(v) => {
            let head = v
                .head
                .map(|(seq, hash)| format!("; head: seq {seq}, sha256 {hash}"))
                .unwrap_or_default();
            println!(
                "audit log {} (log id {}): {} lines in {} files, chain intact{head}; \
                 checked against {} anchors (the head file included)",
                dir.display(),
                v.log,
                v.lines,
                v.files,
                v.anchors
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(bad) => {
            eprintln!("weft: the audit log has been tampered with or damaged: {bad}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The anchors journald holds, if it runs here.
fn system_journal() -> Option<String> {
    let out = std::process::Command::new("journalctl")
        .args([
            "--quiet",
            "--no-pager",
            "--output=cat",
            "--identifier=weft-audit",
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `weft audit export`.
pub fn export(
    data_dir: Option<&Path>,
    since: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let data_dir = data_dir::resolve(data_dir)?;
    let dir = audit_trail::dir(&data_dir);
    let since = match since {
        None => SystemTime::UNIX_EPOCH,
        Some(text) => parse_since(text, SystemTime::now())?,
    };
    let records = export::since(&dir, since)
        .with_context(|| format!("reading the audit log in {}", dir.display()))?;
    for (record, line) in records {
        if json {
            println!("{line}");
        } else {
            println!("{}", export::as_text(&record));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An RFC 3339 time, or a span back from `now`.
fn parse_since(text: &str, now: SystemTime) -> anyhow::Result<SystemTime> {
    if let Ok(at) = humantime::parse_rfc3339_weak(text) {
        return Ok(at);
    }
    let span: Duration = humantime::parse_duration(text).map_err(|_| {
        anyhow::anyhow!(
            "--since {text:?} is neither an RFC 3339 time (2026-11-22T09:00:00Z) nor a span \
             back from now (2h, 7days)"
        )
    })?;
    Ok(now.checked_sub(span).unwrap_or(SystemTime::UNIX_EPOCH))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_times_and_spans_and_names_what_it_cannot_read() {
        let now = humantime::parse_rfc3339("2026-11-22T12:00:00Z").unwrap();
        assert_eq!(
            parse_since("2h", now).unwrap(),
            humantime::parse_rfc3339("2026-11-22T10:00:00Z").unwrap()
        );
        assert_eq!(
            parse_since("2026-11-22T09:30:00Z", now).unwrap(),
            humantime::parse_rfc3339("2026-11-22T09:30:00Z").unwrap()
        );
        let e = parse_since("yesterday-ish", now).unwrap_err().to_string();
        assert!(e.contains("yesterday-ish") && e.contains("RFC 3339"), "{e}");
    }
}
