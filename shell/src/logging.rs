//! The shell's own log: to stderr, and for a running shell also to
//! `<data dir>/logs/weft.log` (rotated like the app logs). Its level comes from
//! `RUST_LOG`, else the config file's `log.level`, else `info`.

use std::{path::Path, sync::Mutex};

use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};
use weft_supervisor::log_file::RotatingFile;

use crate::config::Config;

/// The directory of the log files inside the data directory.
pub fn logs_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("logs")
}

/// The directory of the per-app log files.
pub fn app_logs_dir(data_dir: &Path) -> std::path::PathBuf {
    logs_dir(data_dir).join("apps")
}

/// The shell's own log file.
pub fn shell_log_path(data_dir: &Path) -> std::path::PathBuf {
    logs_dir(data_dir).join("weft.log")
}

fn filter(config_level: Option<&str>) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .ok()
        .or_else(|| config_level.and_then(|l| EnvFilter::try_new(l).ok()))
        .unwrap_or_else(|| EnvFilter::new("info"))
}

fn stderr_layer<S>() -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
}

/// Logging for a short-lived command: stderr only.
pub fn init_for_command() {
    tracing_subscriber::registry()
        .with(filter(None))
        .with(stderr_layer())
        .init();
}

/// Logging for a running shell: stderr and the shell's log file, at the level the
/// environment or `config` sets, plus span export where configured.
pub fn init_for_shell(data_dir: &Path, config: &Config) {
    let file = RotatingFile::new(
        shell_log_path(data_dir),
        config.app_logs.max_file_mb * 1024 * 1024,
        config.app_logs.keep_files,
    );
    let file_layer = tracing_subscriber::fmt::layer()
        .with_writer(Mutex::new(file))
        .with_ansi(false);
    tracing_subscriber::registry()
        .with(filter(config.log.level.as_deref()))
        .with(stderr_layer())
        .with(file_layer)
        .init();
}
