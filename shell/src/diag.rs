//! `weft diag`: a support bundle for the help desk, as one `.tar.gz`.
//!
//! It holds what a supporter asks for first — versions, the settings (with anything
//! secret blanked), the recent shell and app logs, and the app list and health if a
//! shell runs — and nothing that grants access: no tokens, no web data, no keys.

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
    path::{Path, PathBuf},
    process::ExitCode,
    time::SystemTime,
};

use anyhow::Context;
use flate2::{Compression, write::GzEncoder};
use serde_json::json;
use weft_proto::frame::{ControlReply, ControlRequest};
use weft_supervisor::log_file::RotatingFile;

use crate::{
    commands,
    config::{self, without_url_credentials},
    data_dir, logging,
    metrics::HealthReport,
};

/// The most of each log file's end that goes into the bundle.
const LOG_TAIL_BYTES: u64 = 1024 * 1024;

/// `weft diag`.
pub fn run(
    data_dir: Option<&Path>,
    config_file: Option<&Path>,
    output: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let dir = data_dir::resolve(data_dir)?;
    let config_file = config::user_file(config_file)?;
    let output = output.unwrap_or_else(|| {
        let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
            .to_string()
            .replace(':', "");
        PathBuf::from(format!("weft-diag-{stamp}.tar.gz"))
    });
    let file = File::create(&output)
        .with_context(|| format!("cannot create the bundle {}", output.display()))?;
    let mut tar = tar::Builder::new(GzEncoder::new(file, Compression::default()));
    let mut add = |name: &str, bytes: &[u8]| -> anyhow::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
        header.set_cksum();
        tar.append_data(&mut header, format!("weft-diag/{name}"), bytes)
            .with_context(|| format!("writing {name} into {}", output.display()))
    };

    add(
        "versions.json",
        &serde_json::to_vec_pretty(&versions(&dir))?,
    )?;
    add("config.toml", redacted_config(&config_file).as_bytes())?;
    match commands::control(Some(&dir), ControlRequest::ListApps) {
        Ok(ControlReply::Apps { apps, metrics_url }) => {
            let ps = json!({ "apps": apps, "metrics_url": metrics_url });
            add("ps.json", &serde_json::to_vec_pretty(&ps)?)?;
            add(
                "health.json",
                &serde_json::to_vec_pretty(&HealthReport::of(&apps))?,
            )?;
        }
        Ok(other) => add(
            "shell.txt",
            format!("unexpected answer: {other:?}\n").as_bytes(),
        )?,
        Err(e) => add(
            "shell.txt",
            format!("no running shell answered: {e:#}\n").as_bytes(),
        )?,
    }
    for log in log_files(&dir) {
        let name = log
            .strip_prefix(logging::logs_dir(&dir))
            .unwrap_or(&log)
            .display()
            .to_string();
        match tail(&log) {
            Ok(bytes) => add(&format!("logs/{name}"), &bytes)?,
            Err(e) => add(
                &format!("logs/{name}.unreadable"),
                format!("{e}\n").as_bytes(),
            )?,
        }
    }
    tar.into_inner()
        .and_then(|gz| gz.finish())
        .with_context(|| format!("finishing {}", output.display()))?;
    println!("{}", output.display());
    Ok(ExitCode::SUCCESS)
}

fn versions(data_dir: &Path) -> serde_json::Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned());
    json!({
        "weft": env!("CARGO_PKG_VERSION"),
        "protocol": weft_proto::PROTOCOL_VERSION,
        "os": os,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "arch": std::env::consts::ARCH,
        "dataDir": data_dir,
        "createdAt": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
    })
}

/// The settings file with every value that could be a secret blanked: keys naming a
/// token, secret, password, key or header, and credentials inside URLs.
fn redacted_config(path: &Path) -> String {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return format!("# {}: {e}\n", path.display()),
    };
    match text.parse::<toml::Table>() {
        Ok(mut table) => {
            redact(&mut table);
            toml::to_string(&table).unwrap_or_default()
        }
        Err(e) => format!(
            "# {} does not parse, so it is left out: {e}\n",
            path.display()
        ),
    }
}

fn redact(table: &mut toml::Table) {
    for (key, value) in table.iter_mut() {
        let k = key.to_ascii_lowercase();
        if ["token", "secret", "password", "key", "header", "credential"]
            .iter()
            .any(|s| k.contains(s))
        {
            *value = toml::Value::String("<redacted>".into());
            continue;
        }
        match value {
            toml::Value::Table(t) => redact(t),
            toml::Value::String(s) => {
                if let Some(cleaned) = without_url_credentials(s) {
                    *s = cleaned;
                }
            }
            _ => {}
        }
    }
}

/// The shell's and the apps' log files, current and rotated.
fn log_files(data_dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let shell = logging::shell_log_path(data_dir);
    let apps = logging::app_logs_dir(data_dir);
    let mut bases = vec![shell];
    if let Ok(entries) = std::fs::read_dir(&apps) {
        let mut names: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        names.sort();
        bases.extend(names);
    }
    for base in bases {
        let older = RotatingFile::rotated_path(&base, 1);
        files.extend([older, base].into_iter().filter(|p| p.is_file()));
    }
    files
}

/// The last [`LOG_TAIL_BYTES`] of a file.
fn tail(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)))?;
    let mut bytes = Vec::new();
    file.take(LOG_TAIL_BYTES).read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_blanked_and_the_rest_kept() {
        let mut t: toml::Table = r#"
            [log]
            level = "debug"
            [tracing]
            otlp_endpoint = "https://alice:s3cret@collector.example:4318/v1"
            otlp_headers = "authorization=Bearer abc"
            api_token = "xyz"
        "#
        .parse()
        .unwrap();
        redact(&mut t);
        let text = toml::to_string(&t).unwrap();
        assert!(
            !text.contains("s3cret") && !text.contains("alice"),
            "{text}"
        );
        assert!(!text.contains("Bearer") && !text.contains("xyz"), "{text}");
        assert!(
            text.contains("https://<redacted>@collector.example:4318/v1"),
            "{text}"
        );
        assert!(text.contains("level = \"debug\""), "{text}");
    }
}
