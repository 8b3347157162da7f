//! The desktop owner's policy: TOML files the user cannot override. The system-wide
//! file ([`SYSTEM_POLICY_FILE`]) and one named by the shell's settings are read
//! together; each may be absent, but one that exists and is malformed is an error (the
//! shell stops rather than run unprotected).
//!
//! ```toml
//! [apps]
//! allow = ["blotter", "chart"]                 # only these appIds may start
//! origins = ["https://apps.bank.example"]      # only apps from these origins
//!
//! [permissions]
//! default_publish = ["public.#"]   # for apps that declare no publish patterns
//! default_subscribe = ["public.#"] # likewise for subscriptions
//! grant = { blotter = ["secureStorage"] }      # granted without asking
//! deny = { "*" = ["secureStorage"] }           # refused whatever the user says
//!
//! [manifests]
//! require_signed = true             # workspace files and App Directory records
//! trusted_keys = ["ed25519:…"]      # signed with one of these (weft manifest keygen)
//!
//! [audit]
//! collector = "https://audit.bank.example/weft"   # where chain heads are sent too
//!
//! [settings]                        # config.toml keys, forced and locked
//! log = { level = "info" }
//! ```
//!
//! When both files exist they combine so that neither can loosen the other: an app
//! must pass both allowlists, denials add up and beat grants, and where both set a
//! default bus pattern list, an app gets the patterns of the system file.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use weft_manifest_signing::PublisherKey;
use weft_proto::{Pattern, pattern_set::PatternSet};

use crate::{Api, Declared};

/// Where the system-wide policy is read from.
pub const SYSTEM_POLICY_FILE: &str = "/etc/weft/policy.toml";

/// The key of `grant` and `deny` tables that stands for every app.
pub const EVERY_APP: &str = "*";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    apps: RawApps,
    #[serde(default)]
    manifests: RawManifests,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    permissions: RawPermissionRules,
    #[serde(default)]
    settings: toml::Table,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApps {
    allow: Option<BTreeSet<String>>,
    origins: Option<Vec<String>>,
    new_windows: Option<NewWindows>,
}

/// What happens when a page opens a new window (`window.open`, `target="_blank"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NewWindows {
    /// http(s) links open in the system's browser, outside Weft.
    #[default]
    Browser,
    /// Nothing opens.
    Refuse,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    collector: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifests {
    #[serde(default)]
    require_signed: bool,
    #[serde(default)]
    trusted_keys: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPermissionRules {
    default_publish: Option<Vec<Pattern>>,
    default_subscribe: Option<Vec<Pattern>>,
    #[serde(default)]
    grant: BTreeMap<String, BTreeSet<Api>>,
    #[serde(default)]
    deny: BTreeMap<String, BTreeSet<Api>>,
}

/// The policy in force: every file read, combined.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    /// The files it was read from (those that exist).
    pub sources: Vec<PathBuf>,
    /// Each file's app allowlist: an app must be in every one.
    app_allowlists: Vec<BTreeSet<String>>,
    /// Each file's origin allowlist (ASCII-serialised origins).
    origin_allowlists: Vec<BTreeSet<String>>,
    default_publish: Option<PatternSet>,
    default_subscribe: Option<PatternSet>,
    grant: BTreeMap<String, BTreeSet<Api>>,
    deny: BTreeMap<String, BTreeSet<Api>>,
    /// `config.toml` keys forced by policy, as a partial `config.toml`.
    pub locked_settings: toml::Table,
    /// What pages' new windows do; refusal wins when the files differ.
    pub new_windows: NewWindows,
    /// Whether every manifest must be signed by a trusted key (either file may ask).
    pub require_signed: bool,
    /// The publishers' keys manifests may be signed with.
    pub trusted_keys: Vec<PublisherKey>,
    /// Where the audit log's head is sent besides the system log (the system file's
    /// when both name one).
    pub audit_collector: Option<url::Url>,
}

/// A policy file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file exists but cannot be read.
    #[error("cannot read the policy file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid policy.
    #[error("the policy file {path} is invalid: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        message: String,
    },
}

/// Something the policy forbids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// The app is not on an allowlist.
    AppNotAllowed {
        /// The app.
        app_id: String,
    },
    /// A manifest the app comes from is not signed by a trusted key, and policy
    /// requires it.
    UnsignedManifest {
        /// The app.
        app_id: String,
        /// Which manifest.
        manifest: String,
        /// What is wrong with its signature.
        problem: String,
    },
    /// The app's start page is not from an allowed origin.
    OriginNotAllowed {
        /// The app.
        app_id: String,
        /// Its origin.
        origin: String,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::AppNotAllowed { app_id } => write!(
                f,
                "the desktop owner's policy does not allow the app `{app_id}` \
                 (it is not in [apps] allow)"
            ),
            Violation::UnsignedManifest {
                app_id,
                manifest,
                problem,
            } => write!(
                f,
                "the desktop owner's policy requires signed manifests, and {manifest} \
                 (of `{app_id}`) {problem}"
            ),
            Violation::OriginNotAllowed { app_id, origin } => write!(
                f,
                "the desktop owner's policy does not allow apps from {origin} \
                 (`{app_id}`; see [apps] origins)"
            ),
        }
    }
}

impl Policy {
    /// Reads every file of `paths` that exists and combines them; the first is the
    /// system-wide one.
    pub fn load(paths: &[PathBuf]) -> Result<Policy, PolicyError> {
        let mut policy = Policy::default();
        for path in paths {
            let text = match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(PolicyError::Read {
                        path: path.clone(),
                        source,
                    });
                }
            };
            policy.add(path, &text)?;
        }
        Ok(policy)
    }

    /// Adds one file's rules to the policy.
    fn add(&mut self, path: &Path, text: &str) -> Result<(), PolicyError> {
        let invalid = |message: String| PolicyError::Invalid {
            path: path.to_owned(),
            message,
        };
        let raw: RawPolicy = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if let Some(allow) = raw.apps.allow {
            self.app_allowlists.push(allow);
        }
        if let Some(origins) = raw.apps.origins {
            let mut set = BTreeSet::new();
            for (i, text) in origins.iter().enumerate() {
                set.insert(origin_of(text).ok_or_else(|| {
                    invalid(format!(
                        "apps.origins[{i}]: `{text}` is not an origin such as \
                         https://apps.example.com"
                    ))
                })?);
            }
            self.origin_allowlists.push(set);
        }
        if let Some(text) = raw.audit.collector
            && self.audit_collector.is_none()
        {
            let url = url::Url::parse(&text)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .ok_or_else(|| {
                    invalid(format!("audit.collector: `{text}` is not an http(s) URL"))
                })?;
            self.audit_collector = Some(url);
        }
        self.require_signed |= raw.manifests.require_signed;
        for (i, text) in raw.manifests.trusted_keys.iter().enumerate() {
            let key: PublisherKey = text
                .parse()
                .map_err(|e| invalid(format!("manifests.trusted_keys[{i}]: `{text}` is {e}")))?;
            self.trusted_keys.push(key);
        }
        if raw.apps.new_windows == Some(NewWindows::Refuse) {
            self.new_windows = NewWindows::Refuse;
        }
        let rules = raw.permissions;
        if self.default_publish.is_none() {
            self.default_publish = rules.default_publish.map(PatternSet::new);
        }
        if self.default_subscribe.is_none() {
            self.default_subscribe = rules.default_subscribe.map(PatternSet::new);
        }
        for (app, apis) in rules.grant {
            self.grant.entry(app).or_default().extend(apis);
        }
        for (app, apis) in rules.deny {
            self.deny.entry(app).or_default().extend(apis);
        }
        merge_missing(&mut self.locked_settings, raw.settings);
        self.sources.push(path.to_owned());
        Ok(())
    }

    /// Whether the app may start at all, from its start page `url` (`None` for pages
    /// served by Weft from the workspace's folder, whose origin is `weft://localhost`).
    pub fn check_app(&self, app_id: &str, url: Option<&str>) -> Result<(), Violation> {
        if self
            .app_allowlists
            .iter()
            .any(|list| !list.contains(app_id))
        {
            return Err(Violation::AppNotAllowed {
                app_id: app_id.to_owned(),
            });
        }
        if !self.origin_allowlists.is_empty() {
            let origin = match url {
                None => LOCAL_ORIGIN.to_owned(),
                Some(url) => origin_of(url).unwrap_or_else(|| url.to_owned()),
            };
            if self
                .origin_allowlists
                .iter()
                .any(|list| !list.contains(&origin))
            {
                return Err(Violation::OriginNotAllowed {
                    app_id: app_id.to_owned(),
                    origin,
                });
            }
        }
        Ok(())
    }

    /// The origins an app's pages may be on: its own (from its start page `url`, `None`
    /// for pages Weft serves) and those it declares that every origin allowlist allows.
    pub fn navigable_origins(&self, url: Option<&str>, declared: &Declared) -> Vec<String> {
        let own = match url {
            None => LOCAL_ORIGIN.to_owned(),
            Some(url) => origin_of(url).unwrap_or_else(|| url.to_owned()),
        };
        let mut origins = vec![own];
        for origin in &declared.origins {
            if self
                .origin_allowlists
                .iter()
                .all(|list| list.contains(origin))
                && !origins.contains(origin)
            {
                origins.push(origin.clone());
            }
        }
        origins
    }

    /// The publish and subscribe patterns the broker holds the app to: its own
    /// declaration, else the policy's default, else none (the bus is open to it).
    pub fn bus_access(&self, declared: &Declared) -> (Option<PatternSet>, Option<PatternSet>) {
        (
            declared
                .publish
                .clone()
                .or_else(|| self.default_publish.clone()),
            declared
                .subscribe
                .clone()
                .or_else(|| self.default_subscribe.clone()),
        )
    }

    /// Every forced rule: (app or `*`, API, granted).
    pub fn forced(&self) -> Vec<(String, Api, bool)> {
        let rules = |map: &BTreeMap<String, BTreeSet<Api>>, granted: bool| {
            map.iter()
                .flat_map(|(app, apis)| apis.iter().map(move |api| (app.clone(), *api, granted)))
                .collect::<Vec<_>>()
        };
        let mut all = rules(&self.deny, false);
        all.extend(rules(&self.grant, true));
        all
    }

    /// Whether policy grants `api` to `app_id` without asking.
    pub fn grants(&self, app_id: &str, api: Api) -> bool {
        rule_names(&self.grant, app_id, api)
    }

    /// Whether policy refuses `api` to `app_id` whatever the user says.
    pub fn denies(&self, app_id: &str, api: Api) -> bool {
        rule_names(&self.deny, app_id, api)
    }
}

/// The origin of pages Weft serves from a workspace's folder.
pub const LOCAL_ORIGIN: &str = "weft://localhost";

fn rule_names(rules: &BTreeMap<String, BTreeSet<Api>>, app_id: &str, api: Api) -> bool {
    [app_id, EVERY_APP]
        .iter()
        .any(|key| rules.get(*key).is_some_and(|apis| apis.contains(&api)))
}

/// The ASCII serialisation of `url`'s origin (`https://host:port`, `weft://localhost`),
/// if it has one that is not opaque.
pub fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    if parsed.scheme() == "weft" {
        return Some(format!("weft://{}", parsed.host_str()?));
    }
    let origin = parsed.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// Adds to `into` every key of `from` it does not have yet, recursively for tables:
/// the first file read (the system one) wins where both lock the same key.
fn merge_missing(into: &mut toml::Table, from: toml::Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (None, value) => {
                into.insert(key, value);
            }
            (Some(toml::Value::Table(mine)), toml::Value::Table(theirs)) => {
                merge_missing(mine, theirs);
            }
            (Some(_), _) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(files: &[&str]) -> Policy {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = files
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let path = dir.path().join(format!("{i}.toml"));
                std::fs::write(&path, text).unwrap();
                path
            })
            .collect();
        Policy::load(&paths).unwrap()
    }

    #[test]
    fn missing_files_are_no_policy() {
        let p = Policy::load(&["/nonexistent/weft/policy.toml".into()]).unwrap();
        assert_eq!(p, Policy::default());
        assert!(p.check_app("anything", Some("https://x.example")).is_ok());
    }

    #[test]
    fn malformed_files_are_refused_with_where() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        for (text, wants) in [
            ("[apps]\nalow = [\"a\"]\n", "alow"),
            ("[permissions]\ngrant = { a = [\"camera\"] }\n", "camera"),
            ("[permissions]\ndefault_publish = [\"a..b\"]\n", "empty"),
            ("[apps]\norigins = [\"not a url\"]\n", "apps.origins[0]"),
            (
                "[manifests]\ntrusted_keys = [\"ed25519:short\"]\n",
                "manifests.trusted_keys[0]",
            ),
            ("[apps\n", "line 1"),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = Policy::load(std::slice::from_ref(&path))
                .unwrap_err()
                .to_string();
            assert!(e.contains(&*path.to_string_lossy()), "{e}");
            assert!(e.contains(wants), "{text:?}: {e}");
        }
    }

    #[test]
    fn allowlists_of_both_files_apply() {
        let p = policy(&[
            "[apps]\nallow = [\"a\", \"b\"]\norigins = [\"https://apps.example:443/\"]\n",
            "[apps]\nallow = [\"b\", \"c\"]\n",
        ]);
        assert_eq!(
            p.check_app("a", Some("https://apps.example/x")),
            Err(Violation::AppNotAllowed { app_id: "a".into() })
        );
        assert!(p.check_app("b", Some("https://apps.example/x")).is_ok());
        assert_eq!(
            p.check_app("b", Some("https://evil.example/x")),
            Err(Violation::OriginNotAllowed {
                app_id: "b".into(),
                origin: "https://evil.example".into()
            })
        );
        assert!(p.check_app("b", None).is_err());
        let local = policy(&["[apps]\norigins = [\"weft://localhost\"]\n"]);
        assert!(local.check_app("x", None).is_ok());
    }

    #[test]
    fn denials_add_up_and_defaults_apply_only_to_the_undeclared() {
        let p = policy(&[
            "[permissions]\ndefault_publish = [\"public.#\"]\ngrant = { a = [\"secureStorage\"] }\n",
            "[permissions]\ndefault_publish = [\"#\"]\ndeny = { \"*\" = [\"secureStorage\"] }\n",
        ]);
        assert!(p.grants("a", Api::SecureStorage));
        assert!(p.denies("a", Api::SecureStorage));
        assert!(p.denies("b", Api::SecureStorage));
        let (publish, subscribe) = p.bus_access(&Declared::default());
        assert!(publish.as_ref().unwrap().matches_str("public.x"));
        assert!(!publish.unwrap().matches_str("private.x"));
        assert!(subscribe.is_none());
        let declared = Declared {
            publish: Some(PatternSet::new([Pattern::new("mine.#").unwrap()])),
            ..Declared::default()
        };
        assert!(p.bus_access(&declared).0.unwrap().matches_str("mine.x"));
    }

    #[test]
    fn declared_origins_pass_only_the_allowlists() {
        let declared = Declared {
            origins: vec![
                "https://charts.example".into(),
                "https://evil.example".into(),
            ],
            ..Declared::default()
        };
        let open = Policy::default();
        assert_eq!(
            open.navigable_origins(Some("https://app.example/x"), &declared),
            [
                "https://app.example",
                "https://charts.example",
                "https://evil.example"
            ]
        );
        let p = policy(&[
            "[apps]\norigins = [\"https://app.example\", \"https://charts.example\"]\nnew_windows = \"refuse\"\n",
        ]);
        assert_eq!(
            p.navigable_origins(None, &declared),
            ["weft://localhost", "https://charts.example"]
        );
        assert_eq!(p.new_windows, NewWindows::Refuse);
        assert_eq!(open.new_windows, NewWindows::Browser);
    }

    #[test]
    fn the_system_file_wins_locked_settings() {
        let p = policy(&[
            "[settings]\nlog = { level = \"info\" }\n",
            "[settings]\nlog = { level = \"trace\" }\nmetrics = { addr = \"off\" }\n",
        ]);
        assert_eq!(p.locked_settings["log"]["level"].as_str(), Some("info"));
        assert_eq!(p.locked_settings["metrics"]["addr"].as_str(), Some("off"));
    }

    proptest::proptest! {
        /// Any text as a policy file is read or refused with a message naming the file,
        /// never a panic.
        #[test]
        fn arbitrary_policy_text_never_panics(text in "(\\[[a-z]{0,12}\\]\n|[a-z_]{1,16} = (\"[^\"\n]{0,20}\"|\\[\"[^\"\n]{0,20}\"\\]|true|[0-9]{1,4})\n|\\PC{0,12}\n){0,8}") {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("policy.toml");
            std::fs::write(&path, &text).unwrap();
            if let Err(e) = Policy::load(std::slice::from_ref(&path)) {
                proptest::prop_assert!(e.to_string().contains("policy.toml"), "{}", e);
            }
        }
    }
}
