//! An app's own settings — title, window bounds, restart policy, limits, permissions — as a
//! workspace entry gives them, or an FDC3 App Directory record under
//! `hostManifests.weft`.
//!
//! Both give the same JSON fields; a workspace entry's fields win over the record's
//! field by field ([`RawSettings::or`]), and [`RawSettings::check`] turns the result into
//! the checked values an [`crate::AppSpec`] holds.

use serde::Deserialize;

use weft_permissions::{Declared, RawPermissions};

use crate::{Bounds, Limits, MIN_MEMORY_MB, Restart, RestartPolicy};

/// The settings fields as written, every one optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSettings {
    title: Option<String>,
    bounds: Option<Bounds>,
    restart: Option<RestartPolicy>,
    crash_loop_secs: Option<f64>,
    max_crashes: Option<u32>,
    hang_grace_secs: Option<f64>,
    limits: Option<RawLimits>,
    permissions: Option<RawPermissions>,
    /// An App Directory record's signature (`hostManifests.weft.signature`), checked on
    /// the record as read.
    #[serde(default, rename = "signature")]
    _signature: serde::de::IgnoredAny,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawLimits {
    memory_mb: Option<u64>,
    cpu_percent: Option<u32>,
}

/// Checked settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The window title, if one was given.
    pub title: Option<String>,
    /// Window position and size, if given.
    pub bounds: Option<Bounds>,
    /// Restart policy and crash-loop breaker.
    pub restart: Restart,
    /// Resource limits.
    pub limits: Limits,
    /// What the app declares it will use.
    pub permissions: Declared,
}

impl RawSettings {
    /// Reads settings from JSON; on failure, the path of the offending field (such as
    /// `limits.memoryMb`, or `.` for the whole value) and the problem.
    pub fn from_json(value: &serde_json::Value) -> Result<RawSettings, (String, String)> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            (path, crate::strip_position(&e.into_inner().to_string()))
        })
    }

    /// These settings, each field missing here taken from `defaults`.
    pub fn or(self, defaults: RawSettings) -> RawSettings {
        let limits = match (self.limits, defaults.limits) {
            (Some(mine), Some(theirs)) => Some(RawLimits {
                memory_mb: mine.memory_mb.or(theirs.memory_mb),
                cpu_percent: mine.cpu_percent.or(theirs.cpu_percent),
            }),
            (mine, theirs) => mine.or(theirs),
        };
        RawSettings {
            title: self.title.or(defaults.title),
            bounds: self.bounds.or(defaults.bounds),
            restart: self.restart.or(defaults.restart),
            crash_loop_secs: self.crash_loop_secs.or(defaults.crash_loop_secs),
            max_crashes: self.max_crashes.or(defaults.max_crashes),
            hang_grace_secs: self.hang_grace_secs.or(defaults.hang_grace_secs),
            limits,
            // A permissions block is taken whole: one manifest's declaration is not
            // widened by another's.
            permissions: self.permissions.or(defaults.permissions),
            _signature: serde::de::IgnoredAny,
        }
    }

    /// Checks the values; on failure, the field's name (such as `limits.memoryMb`) and
    /// the problem.
    pub fn check(&self) -> Result<Settings, (String, String)> {
        self.check_fields()
            .map_err(|(field, problem)| (field.to_owned(), problem))
            .and_then(|mut settings| {
                if let Some(raw) = &self.permissions {
                    settings.permissions = raw
                        .check()
                        .map_err(|(field, problem)| (format!("permissions.{field}"), problem))?;
                }
                Ok(settings)
            })
    }

    fn check_fields(&self) -> Result<Settings, (&'static str, String)> {
        if let Some(b) = self.bounds
            && (b.width == 0 || b.height == 0)
        {
            return Err(("bounds", "width and height must be at least 1".into()));
        }
        if let Some(title) = &self.title
            && title.trim().is_empty()
        {
            return Err(("title", "the title is empty".into()));
        }
        let mut restart = Restart::default();
        if let Some(policy) = self.restart {
            restart.policy = policy;
        }
        if let Some(window) = seconds(self.crash_loop_secs, "crashLoopSecs")? {
            restart.crash_loop = window;
        }
        if let Some(grace) = seconds(self.hang_grace_secs, "hangGraceSecs")? {
            restart.hang_grace = grace;
        }
        if let Some(max) = self.max_crashes {
            if max == 0 {
                return Err(("maxCrashes", "must be at least 1".into()));
            }
            restart.max_crashes = max;
        }
        let mut limits = Limits::default();
        if let Some(raw) = &self.limits {
            if let Some(mb) = raw.memory_mb {
                if mb < MIN_MEMORY_MB {
                    return Err((
                        "limits.memoryMb",
                        format!("{mb} MB is below the {MIN_MEMORY_MB} MB a web page needs"),
                    ));
                }
                limits.memory_mb = Some(mb);
            }
            if let Some(pct) = raw.cpu_percent {
                if pct == 0 {
                    return Err(("limits.cpuPercent", "must be at least 1".into()));
                }
                limits.cpu_percent = Some(pct);
            }
        }
        Ok(Settings {
            title: self.title.clone(),
            bounds: self.bounds,
            restart,
            limits,
            permissions: Declared::default(),
        })
    }
}

fn seconds(
    value: Option<f64>,
    name: &'static str,
) -> Result<Option<std::time::Duration>, (&'static str, String)> {
    match value {
        None => Ok(None),
        Some(secs) if secs.is_finite() && secs > 0.0 && secs <= 86_400.0 => {
            Ok(Some(std::time::Duration::from_secs_f64(secs)))
        }
        Some(secs) => Err((
            name,
            format!("{secs} is not a number of seconds between 0 and 86400"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> RawSettings {
        RawSettings::from_json(&serde_json::from_str(json).unwrap()).unwrap()
    }

    #[test]
    fn the_entry_wins_field_by_field() {
        let entry = raw(r#"{"restart":"never","limits":{"cpuPercent":50}}"#);
        let record = raw(
            r#"{"title":"Blotter","restart":"always","maxCrashes":2,"limits":{"memoryMb":300,"cpuPercent":80}}"#,
        );
        let settings = entry.or(record).check().unwrap();
        assert_eq!(settings.title.as_deref(), Some("Blotter"));
        assert_eq!(settings.restart.policy, RestartPolicy::Never);
        assert_eq!(settings.restart.max_crashes, 2);
        assert_eq!(
            settings.limits,
            Limits {
                memory_mb: Some(300),
                cpu_percent: Some(50)
            }
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let e = RawSettings::from_json(&serde_json::json!({"limits": {"memoryMb": "lots"}}))
            .unwrap_err();
        assert_eq!(e.0, "limits.memoryMb");
        let e = RawSettings::from_json(&serde_json::json!({"colour": "red"})).unwrap_err();
        assert_eq!(e.0, "colour");
        assert!(e.1.contains("unknown field"), "{}", e.1);
        assert_eq!(raw(r#"{"title":" "}"#).check().unwrap_err().0, "title");
        let e = raw(r#"{"permissions":{"api":["camera"]}}"#)
            .check()
            .unwrap_err();
        assert_eq!(e.0, "permissions.api[0]");
    }

    #[test]
    fn a_permissions_block_is_taken_whole() {
        let entry = raw(r#"{"permissions":{"publish":["a.#"]}}"#);
        let record = raw(r#"{"permissions":{"subscribe":["b.#"],"api":["secureStorage"]}}"#);
        let settings = entry.or(record.clone()).check().unwrap();
        assert!(settings.permissions.subscribe.is_none());
        assert!(settings.permissions.api.is_empty());
        let settings = RawSettings::default().or(record).check().unwrap();
        assert_eq!(settings.permissions.api.len(), 1);
    }
}
