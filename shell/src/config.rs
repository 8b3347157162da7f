//! The shell's settings file, `config.toml` in the data directory.
//!
//! Every setting is optional; command-line options and `RUST_LOG` win over the file.
//! Unknown keys are refused, so a misspelt setting is reported instead of ignored.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use weft_permissions::{Policy, policy::SYSTEM_POLICY_FILE};

use crate::metrics::MetricsAddr;

/// The file's name inside the data directory.
pub const FILE_NAME: &str = "config.toml";

/// The settings, as read from the file.
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The shell's own log.
    #[serde(default)]
    pub log: LogConfig,
    /// The metrics endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Per-app log files.
    #[serde(default)]
    pub app_logs: AppLogConfig,
    /// Trace export.
    #[serde(default)]
    pub tracing: TracingConfig,
    /// How app limits are enforced.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The message journal.
    #[serde(default)]
    pub journal: JournalConfig,
    /// Where the desktop owner's policy is, besides the system-wide file.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Apps' secure storage.
    #[serde(default)]
    pub secure_storage: SecureStorageConfig,
    /// The audit log.
    #[serde(default)]
    pub audit: AuditConfig,
    /// The desktop owner's policy in force (read from the files, not from here).
    #[serde(skip)]
    pub policy_in_force: Policy,
}

/// `[policy]`
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// A policy file read together with the system-wide one (`/etc/weft/policy.toml`).
    pub file: Option<PathBuf>,
}

/// `[secure_storage]`
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SecureStorageConfig {
    /// Keep the secure storage's key in a file (mode 0600) when no OS keychain is
    /// available, instead of refusing `weft.secureStorage`.
    #[serde(default)]
    pub key_file: bool,
}

/// `[audit]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The system log's socket, where the chain's head is anchored.
    #[serde(default = "AuditConfig::default_syslog_socket")]
    pub syslog_socket: PathBuf,
    /// How often the head is anchored while it moves, in seconds.
    #[serde(default = "AuditConfig::default_anchor_every_secs")]
    pub anchor_every_secs: u64,
    /// A log file is closed and the next begun at this size, in MB.
    #[serde(default = "AuditConfig::default_max_file_mb")]
    pub max_file_mb: u64,
}

impl AuditConfig {
    fn default_syslog_socket() -> PathBuf {
        weft_audit::anchor::SYSLOG_SOCKET.into()
    }
    fn default_anchor_every_secs() -> u64 {
        60
    }
    fn default_max_file_mb() -> u64 {
        16
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            syslog_socket: Self::default_syslog_socket(),
            anchor_every_secs: Self::default_anchor_every_secs(),
            max_file_mb: Self::default_max_file_mb(),
        }
    }
}

/// `[journal]`
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    /// Keep the journal's key in a file (mode 0600) when no OS keychain is available,
    /// instead of refusing durable topics.
    #[serde(default)]
    pub key_file: bool,
    /// Durable streams open whatever workspace runs, as in a workspace's `durable`.
    #[serde(default)]
    pub durable: Vec<weft_workspace::RawDurable>,
}

impl JournalConfig {
    /// The declared streams, checked.
    pub fn streams(&self) -> Result<Vec<weft_workspace::DurableSpec>, String> {
        self.durable
            .iter()
            .enumerate()
            .map(|(i, raw)| {
                raw.validate()
                    .map_err(|(field, problem)| format!("journal.durable[{i}].{field}: {problem}"))
            })
            .collect()
    }
}

/// `[limits]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Enforce limits with control groups where the machine allows it (true), or only
    /// memory limits, with the PSS watchdog (false).
    #[serde(default = "LimitsConfig::default_cgroups")]
    pub cgroups: bool,
}

impl LimitsConfig {
    fn default_cgroups() -> bool {
        true
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            cgroups: Self::default_cgroups(),
        }
    }
}

/// `[log]`
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `weft_broker=debug,info`; `RUST_LOG` wins.
    pub level: Option<String>,
}

/// `[metrics]`
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// As `--metrics-addr`: `off`, a port, or a loopback `IP:PORT`.
    pub addr: Option<String>,
}

/// `[app_logs]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AppLogConfig {
    /// Size at which an app's log file is rotated, in MiB.
    #[serde(default = "AppLogConfig::default_max_file_mb")]
    pub max_file_mb: u64,
    /// Rotated files kept per app besides the current one.
    #[serde(default = "AppLogConfig::default_keep_files")]
    pub keep_files: usize,
}

impl AppLogConfig {
    fn default_max_file_mb() -> u64 {
        10
    }
    fn default_keep_files() -> usize {
        4
    }
}

impl Default for AppLogConfig {
    fn default() -> Self {
        Self {
            max_file_mb: Self::default_max_file_mb(),
            keep_files: Self::default_keep_files(),
        }
    }
}

/// `[tracing]`
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// An OTLP/HTTP collector to export spans to, such as `http://127.0.0.1:4318`
    /// (honoured when Weft is built with the `otlp` feature).
    pub otlp_endpoint: Option<String>,
}

/// The settings file could not be used.
/// The policy files: the system-wide one, then the one the settings name.
fn policy_files(configured: Option<&Path>) -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from(SYSTEM_POLICY_FILE)];
    files.extend(configured.map(Path::to_owned));
    files
}

/// The files a policy was read from, for messages.
pub fn describe_sources(policy: &Policy) -> String {
    let names: Vec<String> = policy
        .sources
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    names.join(" and ")
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// It exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not valid TOML or has a wrong key or value.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and where, as the TOML parser says it.
        message: String,
    },
    /// A policy file cannot be used: the shell does not run unprotected.
    #[error("{0}; the shell does not start without its policy (ask your desktop administrator)")]
    Policy(#[from] weft_permissions::PolicyError),
}

impl Config {
    /// Reads `config.toml` from `data_dir`; the defaults when there is none.
    pub fn load(data_dir: &Path) -> Result<Self, ConfigError> {
        let path = data_dir.join(FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let invalid = |message: String| ConfigError::Invalid {
            path: path.clone(),
            message,
        };
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        // The policy is read first: what it locks replaces the user's values.
        let own: Config = table
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| invalid(e.to_string()))?;
        let policy = Policy::load(&policy_files(own.policy.file.as_deref()))?;
        for (key, value) in &policy.locked_settings {
            table.insert(key.clone(), value.clone());
        }
        let mut config: Config = table.try_into().map_err(|e: toml::de::Error| {
            invalid(format!(
                "{e} (with the settings locked by the policy in {})",
                describe_sources(&policy)
            ))
        })?;
        config.validate(&path)?;
        config.policy_in_force = policy;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        if let Some(addr) = &self.metrics.addr {
            addr.parse::<MetricsAddr>()
                .map_err(|e| invalid(format!("metrics.addr: {e}")))?;
        }
        self.journal.streams().map_err(invalid)?;
        if let Some(level) = &self.log.level {
            tracing_subscriber::EnvFilter::try_new(level)
                .map_err(|e| invalid(format!("log.level: `{level}` is not a log filter: {e}")))?;
        }
        if self.audit.max_file_mb == 0 || self.audit.anchor_every_secs == 0 {
            return Err(invalid(
                "audit.max_file_mb and audit.anchor_every_secs must be at least 1".into(),
            ));
        }
        if self.app_logs.max_file_mb == 0 {
            return Err(invalid("app_logs.max_file_mb must be at least 1".into()));
        }
        Ok(())
    }

    /// The metrics address from the file, if set (already validated).
    pub fn metrics_addr(&self) -> Option<MetricsAddr> {
        self.metrics.addr.as_deref().and_then(|a| a.parse().ok())
    }
}

/// `scheme://user:pass@host…` → `scheme://<redacted>@host…`; `None` if there are none.
pub fn without_url_credentials(s: &str) -> Option<String> {
    let (scheme, rest) = s.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..authority_end].rfind('@')?;
    Some(format!("{scheme}://<redacted>{}", &rest[at..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), text).unwrap();
        Config::load(dir.path())
    }

    #[test]
    fn the_policy_named_in_the_settings_locks_keys_and_a_broken_one_stops_everything() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.toml");
        std::fs::write(
            &policy,
            "[settings]\nlog = { level = \"warn\" }\n[apps]\nallow = [\"a\"]\n",
        )
        .unwrap();
        let config = load(&format!(
            "[log]\nlevel = \"trace\"\n[policy]\nfile = {:?}\n",
            policy.display().to_string()
        ))
        .unwrap();
        assert_eq!(config.log.level.as_deref(), Some("warn"));
        assert!(config.policy_in_force.check_app("b", None).is_err());
        assert_eq!(
            config.policy_in_force.sources,
            std::slice::from_ref(&policy)
        );

        std::fs::write(&policy, "[apps]\nallow = \"a\"\n").unwrap();
        let e = load(&format!(
            "[policy]\nfile = {:?}\n",
            policy.display().to_string()
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("policy.toml") && e.contains("does not start"),
            "{e}"
        );
    }

    #[test]
    fn journal_streams_are_read_and_bad_ones_named() {
        let config = load(
            "[journal]\nkey_file = true\ndurable = [{ pattern = \"audit.#\", fsync = \"interval(50)\", retention = { maxAgeSecs = 86400 } }]\n",
        )
        .unwrap();
        assert!(config.journal.key_file);
        let streams = config.journal.streams().unwrap();
        assert_eq!(streams[0].pattern.as_str(), "audit.#");
        assert_eq!(
            streams[0].fsync,
            weft_workspace::FsyncPolicy::IntervalMs(50)
        );
        assert_eq!(streams[0].retention.max_age_secs, Some(86400));
        let bad = load("[journal]\ndurable = [{ pattern = \"a\", fsync = \"often\" }]\n")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("journal.durable[0].fsync"), "{bad}");
    }

    #[test]
    fn credentials_in_urls_are_blanked_and_the_rest_left_alone() {
        assert_eq!(
            without_url_credentials("https://u:p@h:1/x").as_deref(),
            Some("https://<redacted>@h:1/x")
        );
        assert_eq!(without_url_credentials("http://127.0.0.1:4318"), None);
        assert_eq!(without_url_credentials("http://h/path@x"), None);
        assert_eq!(without_url_credentials("plain text"), None);
    }

    #[test]
    fn no_file_means_defaults() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Config::load(dir.path()).unwrap(), Config::default());
    }

    #[test]
    fn settings_are_read() {
        let c = load(
            "[log]\nlevel = \"debug\"\n[metrics]\naddr = \"off\"\n[app_logs]\nmax_file_mb = 2\n",
        )
        .unwrap();
        assert_eq!(c.log.level.as_deref(), Some("debug"));
        assert_eq!(c.metrics_addr(), Some(MetricsAddr::Off));
        assert_eq!(c.app_logs.max_file_mb, 2);
        assert_eq!(c.app_logs.keep_files, 4);
    }

    #[test]
    fn mistakes_are_named_with_the_file_and_key() {
        let e = load("[metrics]\nadr = \"0\"\n").unwrap_err().to_string();
        assert!(e.contains("config.toml") && e.contains("adr"), "{e}");
        let e = load("[metrics]\naddr = \"0.0.0.0:1\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("metrics.addr") && e.contains("loopback"), "{e}");
        let e = load("[app_logs]\nmax_file_mb = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("app_logs.max_file_mb"), "{e}");
        let e = load("[log\n").unwrap_err().to_string();
        assert!(e.contains("config.toml"), "{e}");
    }
}
