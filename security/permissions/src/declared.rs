//! What an app's manifest declares it will use: `"permissions": {"publish": [patterns],
//! "subscribe": [patterns], "api": [names], "origins": [origins]}` in a workspace entry,
//! or under `hostManifests.weft` in an App Directory record.
//!
//! `origins` are the origins besides its own that the app's pages may navigate to or
//! embed in frames (the bridge still answers only pages of its own origin).
//!
//! A missing `publish` or `subscribe` leaves that side of the bus open (unless policy
//! sets a default); a missing `api` grants no sensitive API. An empty list is a
//! declaration too: `"publish": []` means the app publishes nothing.

use std::collections::BTreeSet;

use serde::Deserialize;
use weft_proto::{Pattern, pattern_set::PatternSet};

use crate::Api;

/// The block as written; [`RawPermissions::check`] turns it into a [`Declared`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPermissions {
    publish: Option<Vec<String>>,
    subscribe: Option<Vec<String>>,
    api: Option<Vec<String>>,
    origins: Option<Vec<String>>,
}

/// Checked declarations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Declared {
    /// Topics the app may publish, send and request on; `None`: not declared.
    pub publish: Option<PatternSet>,
    /// Patterns the app may subscribe to (each one must be covered); `None`: not
    /// declared.
    pub subscribe: Option<PatternSet>,
    /// Sensitive APIs the app may ask for.
    pub api: BTreeSet<Api>,
    /// Other origins its pages may navigate to or frame (ASCII-serialised).
    pub origins: Vec<String>,
}

impl RawPermissions {
    /// Checks the block; on failure, the offending field relative to the block (such as
    /// `publish[1]`) and the problem.
    pub fn check(&self) -> Result<Declared, (String, String)> {
        let patterns = |name: &str, list: &Option<Vec<String>>| {
            list.as_ref()
                .map(|list| {
                    list.iter()
                        .enumerate()
                        .map(|(i, text)| {
                            Pattern::new(text.as_str()).map_err(|e| {
                                (
                                    format!("{name}[{i}]"),
                                    format!("`{text}` is not a pattern: {e}"),
                                )
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                        .map(PatternSet::new)
                })
                .transpose()
        };
        let mut api = BTreeSet::new();
        for (i, name) in self.api.iter().flatten().enumerate() {
            let known = Api::from_name(name).ok_or_else(|| {
                (
                    format!("api[{i}]"),
                    format!(
                        "`{name}` is not an API Weft knows (known: {})",
                        Api::names()
                    ),
                )
            })?;
            api.insert(known);
        }
        let mut origins = Vec::new();
        for (i, text) in self.origins.iter().flatten().enumerate() {
            let origin = crate::policy::origin_of(text)
                .filter(|o| o.starts_with("https://") || o.starts_with("http://"))
                .ok_or_else(|| {
                    (
                        format!("origins[{i}]"),
                        format!(
                            "`{text}` is not an http(s) origin such as https://charts.example.com"
                        ),
                    )
                })?;
            origins.push(origin);
        }
        Ok(Declared {
            publish: patterns("publish", &self.publish)?,
            subscribe: patterns("subscribe", &self.subscribe)?,
            api,
            origins,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: serde_json::Value) -> RawPermissions {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn reads_a_full_declaration() {
        let d = raw(serde_json::json!({
            "publish": ["fx.#"], "subscribe": ["fx.*.spot", "news.#"], "api": ["secureStorage"]
        }))
        .check()
        .unwrap();
        assert!(d.publish.unwrap().matches_str("fx.EUR"));
        assert_eq!(d.subscribe.unwrap().patterns().len(), 2);
        assert!(d.api.contains(&Api::SecureStorage));
    }

    #[test]
    fn nothing_declared_is_open_bus_and_no_api() {
        let d = RawPermissions::default().check().unwrap();
        assert_eq!(d, Declared::default());
        let empty = raw(serde_json::json!({"publish": []})).check().unwrap();
        assert_eq!(empty.publish, Some(PatternSet::default()));
    }

    #[test]
    fn bad_entries_are_named() {
        let e = raw(serde_json::json!({"publish": ["ok", "a..b"]}))
            .check()
            .unwrap_err();
        assert_eq!(e.0, "publish[1]");
        let e = raw(serde_json::json!({"api": ["secureStorage", "camera"]}))
            .check()
            .unwrap_err();
        assert_eq!(e.0, "api[1]");
        assert!(e.1.contains("secureStorage"), "{}", e.1);
        let e =
            serde_json::from_value::<RawPermissions>(serde_json::json!({"pub": []})).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }
}
