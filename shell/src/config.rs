//! The shell's settings: `config.toml` in the platform's configuration directory.
//!
//! Every setting is optional. Precedence, lowest first: Weft's defaults, the user's
//! file, command-line flags (`--metrics-addr`, `--set KEY=VALUE`), and the keys the
//! desktop owner's policy locks (`[settings]` of the policy files). `RUST_LOG` wins over
//! `log.level`. Unknown keys are refused, so a misspelt setting is reported (with its
//! line and column) instead of ignored. `weft config show` prints the result and where
//! each value came from ([`layers`]).

pub mod layers;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use self::layers::{Layers, Setting, Source};

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
    /// Updates of Weft itself.
    #[serde(default)]
    pub updates: UpdatesConfig,
    /// The desktop owner's policy in force (read from the files, not from here).
    #[serde(skip)]
    pub policy_in_force: Policy,
    /// Where each setting came from.
    #[serde(skip)]
    pub provenance: Provenance,
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

/// `[updates]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpdatesConfig {
    /// Look for updates at all.
    #[serde(default = "UpdatesConfig::default_enabled")]
    pub enabled: bool,
    /// The update repository's base URL (http(s) or file), serving `metadata/` and
    /// `targets/`; none means no updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    /// The channel followed.
    #[serde(default = "UpdatesConfig::default_channel")]
    pub channel: String,
    /// Stay on exactly this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// The TUF root to trust first (the repository's `1.root.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// Minutes between the running shell's checks (plus up to a tenth, at random, so
    /// that desktops started together do not check together); 0: only on request.
    #[serde(default = "UpdatesConfig::default_check_every_minutes")]
    pub check_every_minutes: u32,
    /// Install what a scheduled check finds without asking (it runs from the next
    /// start, on trial); otherwise the panel offers it.
    #[serde(default = "UpdatesConfig::default_enabled")]
    pub auto_install: bool,
}

impl UpdatesConfig {
    fn default_enabled() -> bool {
        true
    }

    fn default_channel() -> String {
        "stable".into()
    }

    fn default_check_every_minutes() -> u32 {
        6 * 60
    }
}

impl Default for UpdatesConfig {
    fn default() -> Self {
        Self {
            enabled: Self::default_enabled(),
            mirror: None,
            channel: Self::default_channel(),
            pin: None,
            root: None,
            check_every_minutes: Self::default_check_every_minutes(),
            auto_install: Self::default_enabled(),
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

/// The user's settings file: `--config`/`WEFT_CONFIG`, else `config.toml` in the
/// platform's per-user configuration directory (`$XDG_CONFIG_HOME/weft`, by default
/// `~/.config/weft`, on Linux).
pub fn user_file(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    match explicit {
        Some(file) => Ok(file.to_owned()),
        None => directories::ProjectDirs::from("", "", "weft")
            .map(|p| p.config_dir().join(FILE_NAME))
            .ok_or_else(|| {
                anyhow::anyhow!("cannot find a home directory for the settings file; pass --config")
            }),
    }
}

/// Command-line flags that set configuration keys; they win over the file and lose to
/// the policy (a flag that tries to change a locked key is refused).
#[derive(Debug, Default, Clone)]
pub struct Flags {
    /// `--metrics-addr`, as typed.
    pub metrics_addr: Option<String>,
    /// Each `--set KEY=VALUE`, as typed.
    pub set: Vec<String>,
}

impl Flags {
    /// Each flag as a partial settings table, with how it was typed.
    fn layers(&self) -> Result<Vec<(toml::Table, Source)>, ConfigError> {
        let mut out = Vec::new();
        if let Some(addr) = &self.metrics_addr {
            let mut metrics = toml::Table::new();
            metrics.insert("addr".into(), addr.clone().into());
            let mut table = toml::Table::new();
            table.insert("metrics".into(), metrics.into());
            out.push((table, Source::Flag("--metrics-addr".into())));
        }
        for arg in &self.set {
            let flag = format!("--set {arg}");
            let refuse = |message: &str| ConfigError::Flag {
                flag: flag.clone(),
                message: message.to_owned(),
            };
            let (key, value) = arg
                .split_once('=')
                .ok_or_else(|| refuse("expected KEY=VALUE, such as log.level=debug"))?;
            let key = key.trim();
            let path: Vec<&str> = key.split('.').collect();
            let bare = |part: &&str| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            };
            if !path.iter().all(bare) {
                return Err(refuse(&format!(
                    "`{key}` is not a settings key (dotted names of letters, digits, _ and -)"
                )));
            }
            // A TOML value (`5`, `true`, `["a"]`, `"quoted"`), else the text as a string;
            // the text as a string too where the key takes one (`metrics.addr=0`).
            let text = toml::Value::String(value.to_owned());
            let typed = format!("v = {value}")
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| text.clone());
            let typed = nested(&path, typed);
            let table = match Config::deserialize(typed.clone()) {
                Ok(_) => typed,
                Err(e) => {
                    let as_text = nested(&path, text);
                    match Config::deserialize(as_text.clone()) {
                        Ok(_) => as_text,
                        Err(_) => return Err(refuse(e.message())),
                    }
                }
            };
            out.push((table, Source::Flag(flag)));
        }
        Ok(out)
    }
}

/// `value` at the dotted `path`, as a table.
fn nested(path: &[&str], value: toml::Value) -> toml::Table {
    let mut table = toml::Table::new();
    let mut inner = &mut table;
    for part in &path[..path.len() - 1] {
        inner = inner
            .entry((*part).to_owned())
            .or_insert_with(|| toml::Table::new().into())
            .as_table_mut()
            .expect("inserted a table");
    }
    inner.insert(path[path.len() - 1].to_owned(), value);
    table
}

/// Where the settings came from: the file read and each leaf key's layer.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Provenance {
    /// The user's settings file.
    pub file: PathBuf,
    /// Whether it existed.
    pub file_found: bool,
    /// Every leaf setting with its layer, sorted by key.
    pub settings: Vec<Setting>,
}

impl Provenance {
    /// Says where a layer is, for people.
    pub fn describe(&self, source: &Source, policy: &Policy) -> String {
        match source {
            Source::Default => "default".into(),
            Source::File => self.file.display().to_string(),
            Source::Flag(flag) => format!("flag {flag}"),
            Source::Policy => format!("locked by policy {}", describe_sources(policy)),
        }
    }
}

/// The settings could not be used.
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
    /// A command-line flag names a wrong key or value, or a locked key.
    #[error("{flag}: {message}")]
    Flag {
        /// The flag as typed.
        flag: String,
        /// What is wrong.
        message: String,
    },
    /// A key has a value it cannot take.
    #[error("{key} = {value} ({set_by}): {message}")]
    Value {
        /// The dotted key.
        key: String,
        /// Its value.
        value: String,
        /// Where it was set.
        set_by: String,
        /// What is wrong.
        message: String,
    },
    /// A policy file cannot be used: the shell does not run unprotected.
    #[error("{0}; the shell does not start without its policy (ask your desktop administrator)")]
    Policy(#[from] weft_permissions::PolicyError),
}

impl Config {
    /// Reads the settings: the defaults, `file` over them (if it exists), the flags over
    /// that, and the keys the desktop owner's policy locks over everything.
    pub fn load(file: &Path, flags: &Flags) -> Result<Self, ConfigError> {
        let (text, file_found) = match std::fs::read_to_string(file) {
            Ok(text) => (text, true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), false),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: file.to_owned(),
                    source,
                });
            }
        };
        let invalid = |message: String| ConfigError::Invalid {
            path: file.to_owned(),
            message,
        };
        // Read as settings first, so that a mistake is named with its line and column.
        toml::from_str::<Config>(&text).map_err(|e| invalid(e.to_string()))?;
        let file_table: toml::Table = text.parse().map_err(|e| invalid(format!("{e}")))?;
        let flag_layers = flags.layers()?;
        let mut layers = Layers::new(
            &toml::Table::try_from(Config::default()).expect("the defaults are a table"),
        );
        layers.overlay(&file_table, &Source::File);
        for (table, source) in &flag_layers {
            layers.overlay(table, source);
        }
        // The policy file may be named by the file or a flag; what it locks goes on top.
        let named: Config = Config::deserialize(layers.table().clone())
            .map_err(|e| invalid(e.message().to_owned()))?;
        let policy = Policy::load(&policy_files(named.policy.file.as_deref()))?;
        let locked = layers::keys(&policy.locked_settings);
        for (table, source) in &flag_layers {
            let Source::Flag(flag) = source else {
                continue;
            };
            for key in layers::keys(table) {
                let held = locked.iter().find(|l| {
                    **l == key
                        || l.starts_with(&format!("{key}."))
                        || key.starts_with(&format!("{l}."))
                });
                if let Some(held) = held {
                    return Err(ConfigError::Flag {
                        flag: flag.clone(),
                        message: format!(
                            "{held} is locked by the desktop owner's policy ({}) and cannot \
                             be changed",
                            describe_sources(&policy)
                        ),
                    });
                }
            }
        }
        Config::deserialize(policy.locked_settings.clone()).map_err(|e| ConfigError::Invalid {
            path: PathBuf::from(describe_sources(&policy)),
            message: format!("[settings]: {}", e.message()),
        })?;
        layers.overlay(&policy.locked_settings, &Source::Policy);
        let mut config = Config::deserialize(layers.table().clone())
            .map_err(|e| invalid(e.message().to_owned()))?;
        config.provenance = Provenance {
            file: file.to_owned(),
            file_found,
            settings: layers.settings(),
        };
        if let Err((key, message)) = config.validate() {
            let setting = config.provenance.settings.iter().find(|s| s.key == key);
            return Err(ConfigError::Value {
                value: setting.map(|s| s.value.to_string()).unwrap_or_default(),
                set_by: setting
                    .map(|s| config.provenance.describe(&s.source, &policy))
                    .unwrap_or_default(),
                key,
                message,
            });
        }
        config.policy_in_force = policy;
        Ok(config)
    }

    /// [`Config::load`] of the user's file (`--config` or the standard one) without
    /// flags: the settings commands other than the shell work with.
    pub fn load_user(explicit: Option<&Path>) -> anyhow::Result<Self> {
        Ok(Self::load(&user_file(explicit)?, &Flags::default())?)
    }

    /// Checks what the types alone cannot: the key and the problem.
    fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, message: String| Err((key.to_owned(), message));
        if let Some(addr) = &self.metrics.addr
            && let Err(e) = addr.parse::<MetricsAddr>()
        {
            return bad("metrics.addr", e.to_string());
        }
        if let Err(e) = self.journal.streams() {
            return bad("journal.durable", e);
        }
        if let Some(level) = &self.log.level
            && let Err(e) = tracing_subscriber::EnvFilter::try_new(level)
        {
            return bad("log.level", format!("not a log filter: {e}"));
        }
        if self.audit.max_file_mb == 0 {
            return bad("audit.max_file_mb", "must be at least 1".into());
        }
        if self.audit.anchor_every_secs == 0 {
            return bad("audit.anchor_every_secs", "must be at least 1".into());
        }
        if self.app_logs.max_file_mb == 0 {
            return bad("app_logs.max_file_mb", "must be at least 1".into());
        }
        if let Some(mirror) = &self.updates.mirror
            && let Err(e) = url::Url::parse(mirror)
        {
            return bad("updates.mirror", format!("not a URL: {e}"));
        }
        if let Some(pin) = &self.updates.pin
            && let Err(e) = semver::Version::parse(pin)
        {
            return bad("updates.pin", format!("not a version: {e}"));
        }
        if self.updates.channel.is_empty() {
            return bad("updates.channel", "must name a channel".into());
        }
        Ok(())
    }

    /// The metrics address, if set (already validated).
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
        load_with(text, &Flags::default())
    }

    fn load_with(text: &str, flags: &Flags) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), text).unwrap();
        Config::load(&dir.path().join(FILE_NAME), flags)
    }

    fn set(args: &[&str]) -> Flags {
        Flags {
            metrics_addr: None,
            set: args.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    fn source_of(config: &Config, key: &str) -> Source {
        config
            .provenance
            .settings
            .iter()
            .find(|s| s.key == key)
            .map(|s| s.source.clone())
            .unwrap_or_else(|| panic!("{key} not among the settings"))
    }

    #[test]
    fn flags_win_over_the_file_and_the_policy_over_both() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.toml");
        std::fs::write(&policy, "[settings]\nlog = { level = \"warn\" }\n").unwrap();
        let file = format!(
            "[log]\nlevel = \"trace\"\n[app_logs]\nkeep_files = 2\nmax_file_mb = 3\n[policy]\nfile = {:?}\n",
            policy.display().to_string()
        );
        let config = load_with(
            &file,
            &set(&["app_logs.keep_files=7", "limits.cgroups=false"]),
        )
        .unwrap();
        assert_eq!(config.app_logs.keep_files, 7);
        assert_eq!(config.app_logs.max_file_mb, 3);
        assert!(!config.limits.cgroups);
        assert_eq!(config.log.level.as_deref(), Some("warn"));
        assert_eq!(
            source_of(&config, "app_logs.keep_files"),
            Source::Flag("--set app_logs.keep_files=7".into())
        );
        assert_eq!(source_of(&config, "app_logs.max_file_mb"), Source::File);
        assert_eq!(
            source_of(&config, "audit.anchor_every_secs"),
            Source::Default
        );
        let level = config
            .provenance
            .settings
            .iter()
            .find(|s| s.key == "log.level")
            .unwrap();
        assert!(level.locked());
        assert_eq!(
            level.overridden,
            vec![(Source::File, toml::Value::String("trace".into()))]
        );

        // A flag may not change what the policy locks, whatever its spelling.
        for flags in [
            set(&["log.level=debug"]),
            set(&["log={ level = \"debug\" }"]),
        ] {
            let e = load_with(&file, &flags).unwrap_err().to_string();
            assert!(
                e.contains("log.level is locked") && e.contains("policy.toml"),
                "{e}"
            );
        }
        std::fs::write(&policy, "[settings]\nmetrics = { addr = \"off\" }\n").unwrap();
        let e = load_with(
            &file,
            &Flags {
                metrics_addr: Some("0".into()),
                set: vec![],
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("--metrics-addr: metrics.addr is locked"),
            "{e}"
        );
    }

    #[test]
    fn bad_flags_are_named() {
        let e = load_with("", &set(&["log.level"])).unwrap_err().to_string();
        assert!(
            e.contains("--set log.level") && e.contains("KEY=VALUE"),
            "{e}"
        );
        let e = load_with("", &set(&["log..level=x"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a settings key"), "{e}");
        let e = load_with("", &set(&["log.levle=x"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--set log.levle=x") && e.contains("levle"),
            "{e}"
        );
        let e = load_with("", &set(&["app_logs.keep_files=many"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--set app_logs.keep_files=many"), "{e}");
        let e = load_with("", &set(&["app_logs.max_file_mb=0"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("app_logs.max_file_mb = 0 (flag --set app_logs.max_file_mb=0)"),
            "{e}"
        );
        // Unquoted text is a string, and so is a number where the key takes text.
        let c = load_with("", &set(&["log.level=debug", "metrics.addr=0"])).unwrap();
        assert_eq!(c.log.level.as_deref(), Some("debug"));
        assert_eq!(c.metrics.addr.as_deref(), Some("0"));
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
    fn every_key_is_documented() {
        let doc = include_str!("../../docs/configuration.md");
        let full = Config {
            log: LogConfig {
                level: Some("info".into()),
            },
            metrics: MetricsConfig {
                addr: Some("off".into()),
            },
            tracing: TracingConfig {
                otlp_endpoint: Some("http://127.0.0.1:4318".into()),
            },
            policy: PolicyConfig {
                file: Some("/p.toml".into()),
            },
            updates: UpdatesConfig {
                mirror: Some("https://updates.example/".into()),
                pin: Some("1.2.3".into()),
                root: Some("/etc/weft/root.json".into()),
                ..UpdatesConfig::default()
            },
            ..Config::default()
        };
        let table = toml::Table::try_from(full).unwrap();
        let keys = layers::keys(&table);
        assert!(keys.len() >= 13, "{keys:?}");
        for key in keys {
            assert!(
                doc.contains(&format!("- `{key}` — ")),
                "docs/configuration.md does not document {key}"
            );
        }
    }

    #[test]
    fn no_file_means_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE_NAME);
        let config = Config::load(&file, &Flags::default()).unwrap();
        assert!(!config.provenance.file_found);
        assert!(
            config
                .provenance
                .settings
                .iter()
                .all(|s| s.source == Source::Default)
        );
        assert_eq!(
            Config {
                provenance: Provenance::default(),
                ..config
            },
            Config::default()
        );
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
        assert!(
            e.contains("config.toml") && e.contains("adr") && e.contains("line 2, column 1"),
            "{e}"
        );
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
