//! Durable streams as a workspace (or the shell's settings file) declares them:
//!
//! ```json
//! "durable": [{"pattern": "orders.#", "fsync": "always",
//!              "retention": {"maxAgeSecs": 86400, "maxMb": 512, "maxMessages": 1000000}}]
//! ```
//!
//! `fsync` is `"always"` (the default: acknowledge after the batch is synced),
//! `"interval(MS)"` (acknowledge once written, sync every MS milliseconds) or `"none"`.
//! Retention defaults to 7 days and 1024 MiB, with no count limit.

use serde::{Deserialize, Serialize};
use weft_proto::Pattern;

/// How long stored messages are kept when a stream says nothing: 7 days.
pub const DEFAULT_MAX_AGE_SECS: u64 = 7 * 24 * 3600;
/// How many bytes a stream keeps when it says nothing: 1 GiB.
pub const DEFAULT_MAX_MB: u64 = 1024;

/// One durable stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurableSpec {
    /// The topics it stores.
    pub pattern: Pattern,
    /// When stored messages are synced.
    pub fsync: FsyncPolicy,
    /// What is kept.
    pub retention: RetentionSpec,
}

/// When a durable stream syncs what it stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Before acknowledging each batch.
    Always,
    /// At most this many milliseconds after a write; acknowledged once written.
    IntervalMs(u64),
    /// Never explicitly; acknowledged once written.
    None,
}

impl FsyncPolicy {
    /// Reads `always`, `none` or `interval(MS)` (MS from 1 to 60000).
    pub fn parse(text: &str) -> Result<FsyncPolicy, String> {
        match text.trim() {
            "always" => Ok(FsyncPolicy::Always),
            "none" => Ok(FsyncPolicy::None),
            other => other
                .strip_prefix("interval(")
                .and_then(|rest| rest.strip_suffix(')'))
                .and_then(|ms| ms.trim().parse::<u64>().ok())
                .filter(|ms| (1..=60_000).contains(ms))
                .map(FsyncPolicy::IntervalMs)
                .ok_or_else(|| {
                    format!(
                        "{other:?} is not an fsync policy: use \"always\", \"none\" or \"interval(MS)\" with MS from 1 to 60000"
                    )
                }),
        }
    }
}

/// What a durable stream keeps; the first limit reached applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSpec {
    /// Seconds a message is kept.
    pub max_age_secs: Option<u64>,
    /// MiB the stream keeps on disk.
    pub max_mb: Option<u64>,
    /// Messages the stream keeps.
    pub max_messages: Option<u64>,
}

impl Default for RetentionSpec {
    fn default() -> Self {
        RetentionSpec {
            max_age_secs: Some(DEFAULT_MAX_AGE_SECS),
            max_mb: Some(DEFAULT_MAX_MB),
            max_messages: None,
        }
    }
}

/// A durable stream as written in a file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawDurable {
    pattern: String,
    fsync: Option<String>,
    retention: Option<RawRetention>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRetention {
    max_age_secs: Option<u64>,
    max_mb: Option<u64>,
    max_messages: Option<u64>,
}

impl RawDurable {
    /// Checks the entry; the error names the field (relative to the entry) and the
    /// problem.
    pub fn validate(&self) -> Result<DurableSpec, (&'static str, String)> {
        let pattern = Pattern::new(self.pattern.clone()).map_err(|e| ("pattern", e.to_string()))?;
        let fsync = match &self.fsync {
            None => FsyncPolicy::Always,
            Some(text) => FsyncPolicy::parse(text).map_err(|e| ("fsync", e))?,
        };
        let retention = match self.retention {
            None => RetentionSpec::default(),
            Some(raw) => {
                for (name, value) in [
                    ("retention.maxAgeSecs", raw.max_age_secs),
                    ("retention.maxMb", raw.max_mb),
                    ("retention.maxMessages", raw.max_messages),
                ] {
                    if value == Some(0) {
                        return Err((
                            name,
                            "must be at least 1 (leave it out for no limit)".into(),
                        ));
                    }
                }
                if raw.max_age_secs.is_none() && raw.max_mb.is_none() && raw.max_messages.is_none()
                {
                    return Err((
                        "retention",
                        "give at least one of maxAgeSecs, maxMb and maxMessages (leave retention out for the defaults)"
                            .into(),
                    ));
                }
                RetentionSpec {
                    max_age_secs: raw.max_age_secs,
                    max_mb: raw.max_mb,
                    max_messages: raw.max_messages,
                }
            }
        };
        Ok(DurableSpec {
            pattern,
            fsync,
            retention,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> RawDurable {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn entries_are_read_with_defaults_and_checked() {
        let spec = raw(r#"{"pattern": "orders.#"}"#).validate().unwrap();
        assert_eq!(spec.fsync, FsyncPolicy::Always);
        assert_eq!(spec.retention, RetentionSpec::default());
        let spec =
            raw(r#"{"pattern": "a.*", "fsync": "interval(100)", "retention": {"maxMessages": 5}}"#)
                .validate()
                .unwrap();
        assert_eq!(spec.fsync, FsyncPolicy::IntervalMs(100));
        assert_eq!(spec.retention.max_messages, Some(5));
        assert_eq!(spec.retention.max_age_secs, None);
        assert_eq!(FsyncPolicy::parse("none"), Ok(FsyncPolicy::None));
        for bad in ["sometimes", "interval(0)", "interval(x)", "interval(100"] {
            assert!(
                FsyncPolicy::parse(bad)
                    .unwrap_err()
                    .contains("not an fsync policy")
            );
        }
        assert_eq!(
            raw(r#"{"pattern": "a..b"}"#).validate().unwrap_err().0,
            "pattern"
        );
        assert_eq!(
            raw(r#"{"pattern": "a", "retention": {"maxMb": 0}}"#)
                .validate()
                .unwrap_err()
                .0,
            "retention.maxMb"
        );
        assert_eq!(
            raw(r#"{"pattern": "a", "retention": {}}"#)
                .validate()
                .unwrap_err()
                .0,
            "retention"
        );
    }
}
