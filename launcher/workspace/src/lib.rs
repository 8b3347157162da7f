//! Workspace files: which apps to launch, from where, and with which windows.
//!
//! A workspace is a JSON file:
//!
//! ```json
//! {"name": "Trading", "apps": [
//!   {"appId": "watchlist", "url": "watchlist/index.html", "title": "Watchlist",
//!    "bounds": {"x": 0, "y": 0, "width": 400, "height": 600}},
//!   {"appId": "news", "url": "https://news.example.com/",
//!    "restart": "always", "crashLoopSecs": 10, "maxCrashes": 5}
//! ]}
//! ```
//!
//! `"limits": {"memoryMb": N, "cpuPercent": N}` bounds an app's host and WebKit
//! processes together (see [`Limits`]).
//!
//! `restart` says what happens when an app's process ends without being asked to:
//! `"never"`, `"on-failure"` (the default: a non-zero exit or a signal) or `"always"`.
//! See [`Restart`].
//!
//! `"durable": [{"pattern": "orders.#", "fsync": "always", "retention": {…}}]` stores
//! the messages of matching topics (see [`durable`]).
//!
//! `url` is `http(s)://…`, or a path relative to the workspace file that must stay inside
//! its folder; the shell serves such files itself. `"appDirectories": [path-or-url, …]`
//! lists FDC3 App Directories; an app they hold may then be named by `{"appId": …}`
//! alone, its url, title and `hostManifests.weft` settings coming from its record (the
//! entry's own settings win). [`WorkspaceFile::load`] reads a file,
//! [`WorkspaceFile::resolve`] finds such apps (reading the directories is another
//! crate's job); [`Workspace::load`] does both for a file that needs no directory.
//! Either gives a workspace in which every app is launchable, or a [`WorkspaceError`]
//! naming the file, the field and the problem: nothing is ever launched from a
//! half-valid file.
//!
//! This crate only reads and checks; launching is the supervisor's job.

use std::{
    collections::HashMap,
    fmt, fs,
    path::{Component, Path, PathBuf},
};

use serde::Deserialize;
pub use weft_manifest_signing::SignatureCheck;
use weft_manifest_signing::WORKSPACE_SIGNATURE;

pub mod durable;
pub mod settings;

pub use durable::{DurableSpec, FsyncPolicy, RawDurable, RetentionSpec};
pub use settings::{RawSettings, Settings};

/// The smallest memory limit accepted: a WebKit page with its host and helper
/// processes needs tens of megabytes before it runs any script.
pub const MIN_MEMORY_MB: u64 = 64;

/// A validated workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct Workspace {
    /// The workspace's display name.
    pub name: String,
    /// The apps, in file order.
    pub apps: Vec<AppSpec>,
    /// Topics whose messages are stored (see [`durable`]).
    pub durable: Vec<DurableSpec>,
    /// The file it was read from (absolute).
    pub file: PathBuf,
}

/// One app of a workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct AppSpec {
    /// Unique within the workspace.
    pub app_id: String,
    /// Where its page comes from.
    pub url: AppUrl,
    /// Window title; the appId when the file gives none.
    pub title: String,
    /// Window position and size, if given.
    pub bounds: Option<Bounds>,
    /// What to do when its process ends without being asked to.
    pub restart: Restart,
    /// Resource limits over its whole process tree.
    pub limits: Limits,
    /// What it declares it will use on the bus and of the sensitive APIs.
    pub permissions: weft_permissions::Declared,
    /// The manifests it comes from and their signatures: the workspace file, when it
    /// was read from one, and the App Directory record, when it came from one.
    pub manifests: Vec<ManifestCheck>,
    /// How it comes back from a layout snapshot; empty for a fresh launch.
    pub restored: Restored,
}

/// How an app instance comes back from a layout snapshot: the page it showed, its
/// window, its FDC3 user channel and its page's own state. Empty for a fresh launch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Restored {
    /// The page it showed; used only when it is on one of the app's origins.
    pub page: Option<String>,
    /// Where its window was and in what state.
    pub window: Option<weft_proto::launch::SavedWindow>,
    /// The FDC3 user channel it was joined to.
    pub channel: Option<String>,
    /// What its page's `weft.workspace.onSave` returned (JSON text).
    pub app_state: Option<String>,
}

/// Resource limits of an app, over its host and WebKit processes together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Memory (PSS) above which the app is stopped and its restart policy applies.
    pub memory_mb: Option<u64>,
    /// CPU, in percent of one core.
    pub cpu_percent: Option<u32>,
}

/// When an app whose process ended on its own is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never: it stays stopped or crashed.
    Never,
    /// After a failure: a non-zero exit status or death by a signal.
    OnFailure,
    /// After any exit, successful ones too.
    Always,
}

/// An app's restart policy and its crash-loop breaker.
///
/// A crash counts towards the breaker when it comes before the app became ready, or
/// within `crash_loop` of it becoming ready; a crash later than that clears the count.
/// After `max_crashes` counted crashes in a row the app is not restarted again and is
/// marked failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restart {
    /// When to restart.
    pub policy: RestartPolicy,
    /// How soon after becoming ready a crash still counts towards the breaker.
    pub crash_loop: std::time::Duration,
    /// Counted crashes in a row that stop the restarts.
    pub max_crashes: u32,
    /// How long the app may be not responding before something is done: the user is
    /// asked (Wait / Restart) when the control panel runs, else it is killed and its
    /// policy decides.
    pub hang_grace: std::time::Duration,
}

impl Default for Restart {
    fn default() -> Self {
        Restart {
            policy: RestartPolicy::OnFailure,
            crash_loop: std::time::Duration::from_secs(10),
            max_crashes: 5,
            hang_grace: std::time::Duration::from_secs(10),
        }
    }
}

/// Where an app's page comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppUrl {
    /// An `http://` or `https://` URL, loaded as is.
    Remote(String),
    /// A file inside the workspace's folder, served by Weft.
    Local {
        /// The folder whose files may be served (canonical).
        root: PathBuf,
        /// The start page, relative to `root`, with `/` separators, plus any query or
        /// fragment the file gave.
        path: String,
    },
}

impl AppUrl {
    /// The URL of a remote page; `None` for pages Weft serves from the workspace's
    /// folder (whose origin is `weft://localhost`).
    pub fn remote(&self) -> Option<&str> {
        match self {
            AppUrl::Remote(url) => Some(url),
            AppUrl::Local { .. } => None,
        }
    }
}

impl fmt::Display for AppUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppUrl::Remote(url) => f.write_str(url),
            AppUrl::Local { root, path } => write!(f, "{}/{path}", root.display()),
        }
    }
}

/// A window's position and size, in logical pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width, at least 1.
    pub width: u32,
    /// Height, at least 1.
    pub height: u32,
}

/// Why a workspace file was refused: the file, the field (as a path such as
/// `apps[1].url`) and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct WorkspaceError {
    /// The workspace file.
    pub file: PathBuf,
    /// The offending field, when the problem is in one.
    pub field: Option<String>,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for WorkspaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "workspace {}: ", self.file.display())?;
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        f.write_str(&self.problem)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawWorkspace {
    name: String,
    /// The file's signature, checked on the JSON as read (see [`ManifestCheck`]).
    #[serde(default, rename = "signature")]
    _signature: serde::de::IgnoredAny,
    apps: Vec<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    durable: Vec<RawDurable>,
    #[serde(default)]
    app_directories: Vec<String>,
}

/// Where an FDC3 App Directory is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectorySource {
    /// A JSON file (absolute path).
    File(PathBuf),
    /// An `http://` or `https://` URL.
    Url(url::Url),
}

impl DirectorySource {
    /// Reads `text` as a URL, or as a path relative to `base`.
    pub fn parse(text: &str, base: &Path) -> Result<DirectorySource, String> {
        if text.trim().is_empty() {
            return Err("the app directory is empty".into());
        }
        match url::Url::parse(text) {
            Ok(url) => match url.scheme() {
                "http" | "https" if url.host().is_some() => Ok(DirectorySource::Url(url)),
                "http" | "https" => Err(format!("{text:?} has no host")),
                scheme => Err(format!(
                    "the scheme {scheme:?} is not allowed; use http, https or a file path"
                )),
            },
            Err(_) => Ok(DirectorySource::File(base.join(text))),
        }
    }
}

impl fmt::Display for DirectorySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirectorySource::File(path) => write!(f, "{}", path.display()),
            DirectorySource::Url(url) => f.write_str(url.as_str()),
        }
    }
}

/// An app as an App Directory describes it, for a workspace entry that names it by
/// appId alone.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectoryApp {
    /// Where its page comes from.
    pub url: AppUrl,
    /// Its title in the directory.
    pub title: String,
    /// Its settings under `hostManifests.weft`; the workspace entry's own win.
    pub settings: RawSettings,
    /// Its record, as a manifest whose signature policy may require.
    pub manifest: ManifestCheck,
}

/// One manifest an app's launch rests on (its workspace file, its App Directory record)
/// and what its signature says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestCheck {
    /// Which manifest, for messages (`the workspace file /x/ws.json`).
    pub what: String,
    /// Its signature.
    pub signature: SignatureCheck,
}

/// Finds apps in App Directories.
pub trait AppLookup {
    /// The app with this appId, if a directory has it.
    fn find(&self, app_id: &str) -> Option<DirectoryApp>;
}

/// No directory at all.
pub struct NoDirectories;

impl AppLookup for NoDirectories {
    fn find(&self, _: &str) -> Option<DirectoryApp> {
        None
    }
}

/// A workspace file as written: apps may still have to be found in its App
/// Directories ([`WorkspaceFile::resolve`]).
#[derive(Debug, Clone)]
pub struct WorkspaceFile {
    name: String,
    entries: Vec<Entry>,
    durable: Vec<DurableSpec>,
    /// The App Directories it lists, in order.
    pub app_directories: Vec<DirectorySource>,
    file: PathBuf,
    root: PathBuf,
    /// The file as a manifest; `None` for a workspace made from the command line.
    manifest: Option<ManifestCheck>,
}

#[derive(Debug, Clone)]
struct Entry {
    app_id: String,
    url: Option<String>,
    settings: RawSettings,
}

impl WorkspaceFile {
    /// Reads and checks the workspace file at `file`.
    pub fn load(file: &Path) -> Result<WorkspaceFile, WorkspaceError> {
        let fail = |problem: String| WorkspaceError {
            file: file.to_owned(),
            field: None,
            problem,
        };
        let abs = fs::canonicalize(file).map_err(|e| fail(format!("cannot read the file: {e}")))?;
        let text = fs::read(&abs).map_err(|e| fail(format!("cannot read the file: {e}")))?;
        let root = abs
            .parent()
            .ok_or_else(|| fail("the file has no parent folder".into()))?
            .to_owned();
        WorkspaceFile::parse(&text, file, &root)
    }

    /// Checks workspace JSON `text` as if read from `file`; relative URLs and
    /// directory paths are resolved against the folder `root`.
    pub fn parse(text: &[u8], file: &Path, root: &Path) -> Result<WorkspaceFile, WorkspaceError> {
        let fail = |field: Option<String>, problem: String| WorkspaceError {
            file: file.to_owned(),
            field,
            problem,
        };
        let de = &mut serde_json::Deserializer::from_slice(text);
        let raw: RawWorkspace = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let problem = if inner.is_syntax() || inner.is_eof() {
                format!("invalid JSON: {inner}")
            } else {
                strip_position(&inner.to_string())
            };
            let field = (path != "." && !inner.is_syntax() && !inner.is_eof()).then_some(path);
            fail(field, problem)
        })?;

        if raw.name.trim().is_empty() {
            return Err(fail(Some("name".into()), "the name is empty".into()));
        }
        if raw.apps.is_empty() {
            return Err(fail(
                Some("apps".into()),
                "a workspace needs at least one app".into(),
            ));
        }
        let root = fs::canonicalize(root).map_err(|e| {
            fail(
                None,
                format!("cannot open the folder {}: {e}", root.display()),
            )
        })?;
        let app_directories = raw
            .app_directories
            .iter()
            .enumerate()
            .map(|(i, text)| {
                DirectorySource::parse(text, &root)
                    .map_err(|p| fail(Some(format!("appDirectories[{i}]")), p))
            })
            .collect::<Result<Vec<_>, _>>()?;

        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut entries = Vec::with_capacity(raw.apps.len());
        for (i, app) in raw.apps.into_iter().enumerate() {
            let field = |name: &str| Some(format!("apps[{i}].{name}"));
            let mut app = app;
            let app_id = match app.remove("appId") {
                Some(serde_json::Value::String(id)) => id,
                Some(other) => {
                    return Err(fail(
                        field("appId"),
                        format!("invalid type: {other}, expected a string"),
                    ));
                }
                None => {
                    return Err(fail(
                        Some(format!("apps[{i}]")),
                        "missing field `appId`".into(),
                    ));
                }
            };
            weft_proto::identity::validate_app_id(&app_id)
                .map_err(|e| fail(field("appId"), e.to_string()))?;
            if let Some(first) = seen.insert(app_id.clone(), i) {
                return Err(fail(
                    field("appId"),
                    format!("duplicate appId {app_id:?} (also used by apps[{first}])"),
                ));
            }
            let url = match app.remove("url") {
                None => None,
                Some(serde_json::Value::String(url)) => Some(url),
                Some(other) => {
                    return Err(fail(
                        field("url"),
                        format!("invalid type: {other}, expected a string"),
                    ));
                }
            };
            let settings = RawSettings::from_json(&serde_json::Value::Object(app))
                .map_err(|(path, problem)| fail(field(&path), problem))?;
            settings
                .check()
                .map_err(|(name, problem)| fail(field(&name), problem))?;
            entries.push(Entry {
                app_id,
                url,
                settings,
            });
        }
        let mut durable = Vec::with_capacity(raw.durable.len());
        for (i, entry) in raw.durable.iter().enumerate() {
            let spec = entry
                .validate()
                .map_err(|(name, problem)| fail(Some(format!("durable[{i}].{name}")), problem))?;
            durable.push(spec);
        }
        // Read again as plain JSON (it parsed above) for its signature.
        let signature = serde_json::from_slice(text)
            .map(|value| weft_manifest_signing::check(&value, WORKSPACE_SIGNATURE))
            .unwrap_or(SignatureCheck::Unsigned);
        Ok(WorkspaceFile {
            name: raw.name,
            entries,
            durable,
            app_directories,
            manifest: Some(ManifestCheck {
                what: format!("the workspace file {}", file.display()),
                signature,
            }),
            file: file.to_owned(),
            root,
        })
    }

    /// A workspace of no app yet, named `name`, that comes from no file (`weft launch
    /// --appd … --app …`): errors name `origin` instead.
    pub fn unnamed(name: &str, origin: &str) -> WorkspaceFile {
        WorkspaceFile {
            name: name.to_owned(),
            entries: vec![],
            durable: vec![],
            app_directories: vec![],
            file: PathBuf::from(origin),
            root: PathBuf::new(),
            manifest: None,
        }
    }

    /// Adds App Directories, and apps named by appId alone, after those of the file.
    pub fn with_apps(
        mut self,
        app_ids: &[String],
        app_directories: Vec<DirectorySource>,
    ) -> Result<WorkspaceFile, WorkspaceError> {
        self.app_directories.extend(app_directories);
        for app_id in app_ids {
            let fail = |problem: String| WorkspaceError {
                file: self.file.clone(),
                field: Some(format!("app {app_id:?}")),
                problem,
            };
            weft_proto::identity::validate_app_id(app_id).map_err(|e| fail(e.to_string()))?;
            if self.entries.iter().any(|e| &e.app_id == app_id) {
                return Err(fail("named twice".into()));
            }
            self.entries.push(Entry {
                app_id: app_id.clone(),
                url: None,
                settings: RawSettings::default(),
            });
        }
        Ok(self)
    }

    /// The appIds of its apps, in order.
    pub fn app_ids(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.app_id.as_str())
    }

    /// The workspace, each app named by appId alone found with `lookup`.
    pub fn resolve(&self, lookup: &dyn AppLookup) -> Result<Workspace, WorkspaceError> {
        let fail = |field: String, problem: String| WorkspaceError {
            file: self.file.clone(),
            field: Some(field),
            problem,
        };
        let mut apps = Vec::with_capacity(self.entries.len());
        for (i, entry) in self.entries.iter().enumerate() {
            let field = |name: &str| format!("apps[{i}].{name}");
            let mut manifests: Vec<ManifestCheck> = self.manifest.iter().cloned().collect();
            let (url, directory_title, settings) = match &entry.url {
                Some(url) => (
                    AppUrl::resolve(url, &self.root).map_err(|p| fail(field("url"), p))?,
                    None,
                    entry.settings.clone(),
                ),
                None => {
                    let found = lookup.find(&entry.app_id).ok_or_else(|| {
                        let problem = if self.app_directories.is_empty() {
                            "no url, and the workspace lists no appDirectories to find the app in"
                                .to_owned()
                        } else {
                            format!(
                                "no url, and no app directory of the workspace has the appId {:?}",
                                entry.app_id
                            )
                        };
                        fail(field("url"), problem)
                    })?;
                    manifests.push(found.manifest);
                    (
                        found.url,
                        Some(found.title),
                        entry.settings.clone().or(found.settings),
                    )
                }
            };
            let checked = settings.check().map_err(|(name, problem)| {
                fail(
                    field(&name),
                    format!("{problem} (from the app directory's hostManifests.weft)"),
                )
            })?;
            apps.push(AppSpec {
                app_id: entry.app_id.clone(),
                url,
                title: checked
                    .title
                    .or(directory_title)
                    .unwrap_or_else(|| entry.app_id.clone()),
                bounds: checked.bounds,
                restart: checked.restart,
                limits: checked.limits,
                permissions: checked.permissions,
                manifests,
                restored: Restored::default(),
            });
        }
        Ok(Workspace {
            name: self.name.clone(),
            apps,
            durable: self.durable.clone(),
            file: self.file.clone(),
        })
    }
}

impl Workspace {
    /// Reads and validates the workspace file at `file`, which must give every app's
    /// url (a workspace that lists App Directories goes through [`WorkspaceFile`]).
    pub fn load(file: &Path) -> Result<Workspace, WorkspaceError> {
        WorkspaceFile::load(file)?.resolve(&NoDirectories)
    }

    /// Validates workspace JSON `text` as if read from `file`, resolving relative URLs
    /// against the folder `root`; every app must give its url.
    pub fn parse(text: &[u8], file: &Path, root: &Path) -> Result<Workspace, WorkspaceError> {
        WorkspaceFile::parse(text, file, root)?.resolve(&NoDirectories)
    }
}

/// serde_json appends " at line L column C" to data errors; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

impl AppUrl {
    /// Reads a page's URL: `http(s)://…`, or a path relative to the folder `root`
    /// that must stay inside it (through links too).
    pub fn resolve(url: &str, root: &Path) -> Result<AppUrl, String> {
        resolve_url(url, root)
    }
}

fn resolve_url(url: &str, root: &Path) -> Result<AppUrl, String> {
    if url.is_empty() {
        return Err("the url is empty".into());
    }
    if let Ok(parsed) = url::Url::parse(url) {
        return match parsed.scheme() {
            "http" | "https" if parsed.host().is_some() => Ok(AppUrl::Remote(parsed.into())),
            "http" | "https" => Err(format!("{url:?} has no host")),
            scheme => Err(format!(
                "the scheme {scheme:?} is not allowed; use http, https or a path relative to the workspace file"
            )),
        };
    }
    let split = url.find(['?', '#']).unwrap_or(url.len());
    let (path, suffix) = url.split_at(split);
    let rel = Path::new(path);
    if rel.is_absolute() {
        return Err(format!(
            "{path:?} is absolute; give a path relative to the workspace file"
        ));
    }
    let mut depth = 0i32;
    for c in rel.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => depth -= 1,
            Component::RootDir | Component::Prefix(_) => unreachable!("checked: not absolute"),
        }
        if depth < 0 {
            return Err(format!("{path:?} escapes the workspace folder"));
        }
    }
    let full = root.join(rel);
    let canonical =
        fs::canonicalize(&full).map_err(|e| format!("cannot read {}: {e}", full.display()))?;
    if !canonical.starts_with(root) {
        return Err(format!(
            "{path:?} escapes the workspace folder (through a link)"
        ));
    }
    if !canonical.is_file() {
        return Err(format!("{} is not a file", full.display()));
    }
    fs::File::open(&canonical).map_err(|e| format!("cannot read {}: {e}", full.display()))?;
    let rel = canonical
        .strip_prefix(root)
        .expect("checked above")
        .components()
        .map(|c| {
            c.as_os_str()
                .to_str()
                .ok_or_else(|| format!("{path:?} is not valid UTF-8"))
        })
        .collect::<Result<Vec<_>, _>>()?
        .join("/");
    Ok(AppUrl::Local {
        root: root.to_owned(),
        path: format!("{rel}{suffix}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(tempfile::TempDir);

    impl Dir {
        fn new() -> Self {
            let d = tempfile::tempdir().unwrap();
            fs::create_dir(d.path().join("app")).unwrap();
            fs::write(d.path().join("app/index.html"), "<p>hi</p>").unwrap();
            Self(d)
        }

        fn load(&self, json: &str) -> Result<Workspace, WorkspaceError> {
            let file = self.0.path().join("ws.json");
            fs::write(&file, json).unwrap();
            Workspace::load(&file)
        }

        fn err(&self, json: &str) -> WorkspaceError {
            self.load(json)
                .expect_err("expected the workspace to be refused")
        }
    }

    #[test]
    fn loads_local_and_remote_apps() {
        let d = Dir::new();
        let ws = d
            .load(
                r#"{"name":"W","apps":[
                {"appId":"a","url":"app/index.html?x=1","bounds":{"x":1,"y":2,"width":3,"height":4}},
                {"appId":"b","url":"https://example.com/p","title":"Bee"}]}"#,
            )
            .unwrap();
        assert_eq!(ws.name, "W");
        assert_eq!(ws.apps[0].title, "a");
        assert_eq!(
            ws.apps[0].url,
            AppUrl::Local {
                root: fs::canonicalize(d.0.path()).unwrap(),
                path: "app/index.html?x=1".into()
            }
        );
        assert_eq!(ws.apps[0].bounds.unwrap().width, 3);
        assert_eq!(
            ws.apps[1].url,
            AppUrl::Remote("https://example.com/p".into())
        );
        assert_eq!(ws.apps[1].title, "Bee");
    }

    #[test]
    fn bad_json_names_the_file_and_position() {
        let d = Dir::new();
        let e = d.err(r#"{"name": "W", "apps": [}"#);
        assert!(e.file.ends_with("ws.json"));
        assert_eq!(e.field, None);
        assert!(e.problem.starts_with("invalid JSON"), "{e}");
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn missing_and_mistyped_fields_are_named() {
        let d = Dir::new();
        let e = d.err(r#"{"name":"W","apps":[{"appId":"a"}]}"#);
        assert_eq!(e.field.as_deref(), Some("apps[0].url"));
        assert!(e.problem.contains("no url"), "{e}");
        assert!(e.problem.contains("lists no appDirectories"), "{e}");
        let e = d.err(r#"{"name":"W","apps":[{"url":"app/index.html"}]}"#);
        assert_eq!(e.field.as_deref(), Some("apps[0]"));
        assert!(e.problem.contains("missing field `appId`"), "{e}");
        let e = d.err(r#"{"name":"W","apps":[{"appId":"a","url":5}]}"#);
        assert_eq!(e.field.as_deref(), Some("apps[0].url"));
        assert!(e.problem.contains("invalid type"), "{e}");

        let e = d.err(r#"{"name":"W","apps":[{"appId":"a","url":"app/index.html","bounds":{"x":0,"y":0,"width":"wide","height":1}}]}"#);
        assert_eq!(e.field.as_deref(), Some("apps[0].bounds.width"));
        assert!(e.problem.contains("invalid type"), "{e}");

        let e = d.err(r#"{"name":"W","apps":[{"appId":7,"url":"app/index.html"}]}"#);
        assert_eq!(e.field.as_deref(), Some("apps[0].appId"));

        let e =
            d.err(r#"{"name":"W","apps":[{"appId":"a","url":"app/index.html","colour":"red"}]}"#);
        assert_eq!(e.field.as_deref(), Some("apps[0].colour"));
        assert!(e.problem.contains("unknown field"), "{e}");

        let e = d.err(r#"{"apps":[]}"#);
        assert!(e.problem.contains("missing field `name`"), "{e}");
    }

    #[test]
    fn duplicate_app_ids_are_refused() {
        let d = Dir::new();
        let e = d.err(
            r#"{"name":"W","apps":[{"appId":"a","url":"app/index.html"},{"appId":"b","url":"app/index.html"},{"appId":"a","url":"app/index.html"}]}"#,
        );
        assert_eq!(e.field.as_deref(), Some("apps[2].appId"));
        assert!(
            e.problem
                .contains("duplicate appId \"a\" (also used by apps[0])"),
            "{e}"
        );
    }

    #[test]
    fn unreadable_escaping_and_foreign_urls_are_refused() {
        let d = Dir::new();
        let cases = [
            ("app/missing.html", "cannot read"),
            ("../outside.html", "escapes the workspace folder"),
            ("app/../../x.html", "escapes the workspace folder"),
            ("/etc/passwd", "is absolute"),
            ("file:///etc/passwd", "scheme \"file\" is not allowed"),
            (
                "javascript:alert(1)",
                "scheme \"javascript\" is not allowed",
            ),
            ("app", "is not a file"),
            ("", "empty"),
        ];
        for (url, expected) in cases {
            let e = d.err(&format!(
                r#"{{"name":"W","apps":[{{"appId":"a","url":{url:?}}}]}}"#
            ));
            assert_eq!(e.field.as_deref(), Some("apps[0].url"), "{url}");
            assert!(e.problem.contains(expected), "{url}: {e}");
        }
    }

    #[test]
    fn restart_policies_default_to_on_failure_and_are_checked() {
        let d = Dir::new();
        let ws = d
            .load(
                r#"{"name":"W","apps":[
                {"appId":"a","url":"app/index.html"},
                {"appId":"b","url":"app/index.html","restart":"always","crashLoopSecs":2.5,"maxCrashes":3},
                {"appId":"c","url":"app/index.html","restart":"never"}]}"#,
            )
            .unwrap();
        assert_eq!(ws.apps[0].restart, Restart::default());
        assert_eq!(ws.apps[0].restart.policy, RestartPolicy::OnFailure);
        assert_eq!(
            ws.apps[1].restart,
            Restart {
                policy: RestartPolicy::Always,
                crash_loop: std::time::Duration::from_millis(2500),
                max_crashes: 3,
                hang_grace: std::time::Duration::from_secs(10),
            }
        );
        assert_eq!(ws.apps[2].restart.policy, RestartPolicy::Never);

        let cases = [
            (
                r#""restart":"sometimes""#,
                "apps[0].restart",
                "unknown variant",
            ),
            (
                r#""crashLoopSecs":0"#,
                "apps[0].crashLoopSecs",
                "between 0 and 86400",
            ),
            (
                r#""crashLoopSecs":-1"#,
                "apps[0].crashLoopSecs",
                "between 0 and 86400",
            ),
            (r#""maxCrashes":0"#, "apps[0].maxCrashes", "at least 1"),
            (
                r#""hangGraceSecs":1e9"#,
                "apps[0].hangGraceSecs",
                "between 0 and 86400",
            ),
            (r#""maxCrashes":-2"#, "apps[0].maxCrashes", "invalid value"),
        ];
        for (extra, field, problem) in cases {
            let e = d.err(&format!(
                r#"{{"name":"W","apps":[{{"appId":"a","url":"app/index.html",{extra}}}]}}"#
            ));
            assert_eq!(e.field.as_deref(), Some(field), "{extra}: {e}");
            assert!(e.problem.contains(problem), "{extra}: {e}");
        }
    }

    #[test]
    fn limits_are_read_and_checked() {
        let d = Dir::new();
        let ws = d
            .load(
                r#"{"name":"W","apps":[
                {"appId":"a","url":"app/index.html"},
                {"appId":"b","url":"app/index.html","limits":{"memoryMb":300,"cpuPercent":50}}]}"#,
            )
            .unwrap();
        assert_eq!(ws.apps[0].limits, Limits::default());
        assert_eq!(
            ws.apps[1].limits,
            Limits {
                memory_mb: Some(300),
                cpu_percent: Some(50)
            }
        );
        let cases = [
            (
                r#"{"memoryMb":10}"#,
                "apps[0].limits.memoryMb",
                "below the 64 MB",
            ),
            (
                r#"{"cpuPercent":0}"#,
                "apps[0].limits.cpuPercent",
                "at least 1",
            ),
            (r#"{"diskMb":1}"#, "apps[0].limits.diskMb", "unknown field"),
            (
                r#"{"memoryMb":"lots"}"#,
                "apps[0].limits.memoryMb",
                "invalid type",
            ),
        ];
        for (limits, field, problem) in cases {
            let e = d.err(&format!(
                r#"{{"name":"W","apps":[{{"appId":"a","url":"app/index.html","limits":{limits}}}]}}"#
            ));
            assert_eq!(e.field.as_deref(), Some(field), "{limits}: {e}");
            assert!(e.problem.contains(problem), "{limits}: {e}");
        }
    }

    /// A directory holding one app, `blotter`.
    struct OneApp(RawSettings);

    impl AppLookup for OneApp {
        fn find(&self, app_id: &str) -> Option<DirectoryApp> {
            (app_id == "blotter").then(|| DirectoryApp {
                url: AppUrl::Remote("https://apps.example.com/blotter/".into()),
                title: "Order Blotter".into(),
                settings: self.0.clone(),
                manifest: ManifestCheck {
                    what: "the App Directory record blotter".into(),
                    signature: SignatureCheck::Unsigned,
                },
            })
        }
    }

    #[test]
    fn apps_named_by_app_id_alone_come_from_the_directories() {
        let d = Dir::new();
        let file = d.0.path().join("ws.json");
        fs::write(
            &file,
            r#"{"name":"W","appDirectories":["appd.json","https://appd.example.com/"],
                "apps":[{"appId":"blotter","restart":"never"},{"appId":"a","url":"app/index.html"}]}"#,
        )
        .unwrap();
        let ws_file = WorkspaceFile::load(&file).unwrap();
        assert_eq!(
            ws_file.app_directories,
            [
                DirectorySource::File(fs::canonicalize(d.0.path()).unwrap().join("appd.json")),
                DirectorySource::Url(url::Url::parse("https://appd.example.com/").unwrap()),
            ]
        );
        let record = RawSettings::from_json(&serde_json::json!({
            "restart": "always", "maxCrashes": 2, "bounds": {"x": 1, "y": 2, "width": 3, "height": 4}
        }))
        .unwrap();
        let ws = ws_file.resolve(&OneApp(record)).unwrap();
        let blotter = &ws.apps[0];
        assert_eq!(
            blotter.url,
            AppUrl::Remote("https://apps.example.com/blotter/".into())
        );
        assert_eq!(blotter.title, "Order Blotter");
        assert_eq!(
            blotter.restart.policy,
            RestartPolicy::Never,
            "the entry wins"
        );
        assert_eq!(blotter.restart.max_crashes, 2, "the record fills in");
        assert_eq!(blotter.bounds.unwrap().width, 3);
        // Launched on two manifests: the workspace file and the record.
        let whats: Vec<&str> = blotter.manifests.iter().map(|m| m.what.as_str()).collect();
        assert_eq!(whats.len(), 2);
        assert!(whats[0].starts_with("the workspace file ") && whats[0].ends_with("ws.json"));
        assert_eq!(whats[1], "the App Directory record blotter");
        assert_eq!(ws.apps[1].app_id, "a");
        assert_eq!(ws.apps[1].manifests.len(), 1);

        let e = ws_file.resolve(&NoDirectories).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("apps[0].url"));
        assert!(e.problem.contains("no app directory"), "{e}");
        let bad = RawSettings::from_json(&serde_json::json!({"maxCrashes": 0})).unwrap();
        let e = ws_file.resolve(&OneApp(bad)).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("apps[0].maxCrashes"));
        assert!(e.problem.contains("hostManifests.weft"), "{e}");

        let e = d.err(r#"{"name":"W","appDirectories":["ftp://x/"],"apps":[{"appId":"a","url":"app/index.html"}]}"#);
        assert_eq!(e.field.as_deref(), Some("appDirectories[0]"));
    }

    #[test]
    fn apps_and_directories_can_be_added_to_a_file_or_to_nothing() {
        let d = Dir::new();
        let file = d.0.path().join("ws.json");
        fs::write(
            &file,
            r#"{"name":"W","apps":[{"appId":"a","url":"app/index.html"}]}"#,
        )
        .unwrap();
        let more = DirectorySource::Url(url::Url::parse("https://appd.example.com/").unwrap());
        let ws = WorkspaceFile::load(&file)
            .unwrap()
            .with_apps(&["blotter".into()], vec![more.clone()])
            .unwrap();
        assert_eq!(ws.app_directories, std::slice::from_ref(&more));
        assert_eq!(ws.app_ids().collect::<Vec<_>>(), ["a", "blotter"]);
        let resolved = ws.resolve(&OneApp(RawSettings::default())).unwrap();
        assert_eq!(resolved.apps[1].title, "Order Blotter");

        let e = WorkspaceFile::load(&file)
            .unwrap()
            .with_apps(&["a".into()], vec![])
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("app \"a\""));
        let only = WorkspaceFile::unnamed("App Directory", "the command line")
            .with_apps(&["blotter".into()], vec![more])
            .unwrap()
            .resolve(&OneApp(RawSettings::default()))
            .unwrap();
        assert_eq!(only.name, "App Directory");
        assert_eq!(only.apps.len(), 1);
        let e = WorkspaceFile::unnamed("App Directory", "the command line")
            .with_apps(&["nope".into()], vec![])
            .unwrap()
            .resolve(&NoDirectories)
            .unwrap_err();
        assert!(
            e.to_string().starts_with("workspace the command line: "),
            "{e}"
        );
    }

    #[test]
    fn a_link_out_of_the_folder_is_refused() {
        let d = Dir::new();
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::os::unix::fs::symlink(outside.path(), d.0.path().join("app/link.html")).unwrap();
        let e = d.err(r#"{"name":"W","apps":[{"appId":"a","url":"app/link.html"}]}"#);
        assert!(e.problem.contains("through a link"), "{e}");
    }

    proptest::proptest! {
        /// Arbitrary bytes, and JSON of roughly the right shape, never panic the parser.
        #[test]
        fn parsing_never_panics(
            bytes in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..300),
            id in "\\PC{0,20}",
            url in "\\PC{0,40}",
        ) {
            let d = Dir::new();
            let file = d.0.path().join("ws.json");
            let _ = Workspace::parse(&bytes, &file, d.0.path());
            let json = serde_json::json!({"name": "W", "apps": [{"appId": id, "url": url}]});
            if let Ok(ws) = Workspace::parse(json.to_string().as_bytes(), &file, d.0.path())
                && let AppUrl::Local { root, .. } = &ws.apps[0].url
            {
                proptest::prop_assert!(root.starts_with(fs::canonicalize(d.0.path()).unwrap()));
            }
        }
    }

    #[test]
    fn other_problems_are_named() {
        let d = Dir::new();
        let e = d.err(r#"{"name":"W","apps":[]}"#);
        assert_eq!(e.field.as_deref(), Some("apps"));
        let e = d.err(r#"{"name":" ","apps":[{"appId":"a","url":"app/index.html"}]}"#);
        assert_eq!(e.field.as_deref(), Some("name"));
        let e = d.err(r#"{"name":"W","apps":[{"appId":"a/b","url":"app/index.html"}]}"#);
        assert_eq!(e.field.as_deref(), Some("apps[0].appId"));
        let e = d.err(r#"{"name":"W","apps":[{"appId":"a","url":"app/index.html","bounds":{"x":0,"y":0,"width":0,"height":5}}]}"#);
        assert_eq!(e.field.as_deref(), Some("apps[0].bounds"));
        let e = Workspace::load(Path::new("/nonexistent/ws.json")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("workspace /nonexistent/ws.json: cannot read"),
            "{e}"
        );
    }
}
