//! Layout snapshots: `weft workspace save NAME` keeps, for every running app instance,
//! the page it shows, its window (bounds, monitor, maximised or minimised), its FDC3
//! user channel and its page's own state (`weft.workspace.onSave`), together with the
//! launch it came from; `restore` starts those launches again — through the same
//! reading, signature and policy checks as the first time — with each instance put
//! back as it was. The last session is saved this way when the shell stops.
//!
//! Snapshots are JSON files in `<data dir>/workspaces/`, one per name.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use weft_proto::{
    Identity,
    frame::{AppInfo, AppState},
    launch::{MAX_APP_STATE, SavedApp, SavedWindow, WindowBounds},
};
use weft_supervisor::Supervisor;
use weft_workspace::{Restored, Workspace};

use crate::{
    app_catalogue::AppCatalogue, fdc3_agent::AgentHandle, launch_request::LaunchRequest,
    locking::lock, private_file,
};

/// The snapshots' folder inside the data directory.
const DIR: &str = "workspaces";
/// The snapshot the shell saves when it stops, and a plain `weft` restores.
pub const LAST_SESSION: &str = "Last session";
/// The snapshot format's version.
const VERSION: u32 = 1;
/// How long a save waits for apps that are still starting.
const STARTING_DEADLINE: Duration = Duration::from_secs(30);
/// How long a save waits for the hosts' reports (each page has 3 s to answer).
const ANSWER_DEADLINE: Duration = Duration::from_secs(5);
/// Longest snapshot name.
const MAX_NAME: usize = 64;

/// A snapshot file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Snapshot {
    /// The format's version.
    pub version: u32,
    /// Its name.
    pub name: String,
    /// When it was saved (RFC 3339).
    pub saved_at: String,
    /// The app instances, in launch order.
    pub apps: Vec<SavedInstance>,
}

/// One app instance of a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SavedInstance {
    /// The app.
    pub app_id: String,
    /// Its window title.
    pub title: String,
    /// The launch it came from (empty: the demo).
    pub source: LaunchRequest,
    /// The page it showed, when its host said.
    #[serde(default)]
    pub url: Option<String>,
    /// Its window.
    #[serde(default)]
    pub window: Option<SavedWindow>,
    /// Its FDC3 user channel.
    #[serde(default)]
    pub channel: Option<String>,
    /// Its page's own state.
    #[serde(default)]
    pub app_state: Option<serde_json::Value>,
}

/// What a save did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveOutcome {
    /// The file written.
    pub file: PathBuf,
    /// How many instances it holds.
    pub apps: usize,
    /// What could not be saved in full.
    pub notes: Vec<String>,
}

/// One saved snapshot, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Listed {
    /// Its name.
    pub name: String,
    /// When it was saved.
    pub saved_at: String,
    /// How many app instances it holds.
    pub apps: usize,
}

/// Whether `name` can name a snapshot: 1 to 64 characters, no path separator, no
/// control character, not starting with a dot.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let bad = name.is_empty()
        || name.chars().count() > MAX_NAME
        || name.starts_with('.')
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if bad {
        bail!(
            "{name:?} cannot name a workspace snapshot: use 1 to {MAX_NAME} characters, \
             without /, \\ or control characters, not starting with a dot"
        );
    }
    Ok(())
}

/// The snapshots' folder.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join(DIR)
}

/// The file of snapshot `name`.
pub fn file(data_dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    Ok(dir(data_dir).join(format!("{name}.json")))
}

/// Whether an instance in `state` belongs in the last session: all but those stopped.
fn in_session(state: AppState) -> bool {
    !matches!(state, AppState::Stopping | AppState::Stopped)
}

/// Reads snapshot `name`, checking it.
pub fn read(data_dir: &Path, name: &str) -> anyhow::Result<Snapshot> {
    let path = file(data_dir, name)?;
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let known: Vec<String> = list(data_dir)
                .unwrap_or_default()
                .into_iter()
                .map(|l| l.name)
                .collect();
            bail!(
                "no workspace snapshot {name:?} (saved: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            );
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let snapshot: Snapshot = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a workspace snapshot", path.display()))?;
    if snapshot.version != VERSION {
        bail!(
            "{} is a version {} snapshot; this Weft reads version {VERSION}",
            path.display(),
            snapshot.version
        );
    }
    for (i, app) in snapshot.apps.iter().enumerate() {
        let size = app.app_state.as_ref().map_or(0, |v| v.to_string().len());
        if size > MAX_APP_STATE {
            bail!(
                "{}: apps[{i}].appState is {} KiB; at most {} KiB is kept",
                path.display(),
                size / 1024,
                MAX_APP_STATE / 1024
            );
        }
    }
    Ok(snapshot)
}

/// The names of every snapshot file, readable or not.
pub fn saved_names(data_dir: &Path) -> anyhow::Result<Vec<String>> {
    let folder = dir(data_dir);
    let entries = match std::fs::read_dir(&folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).with_context(|| format!("reading {}", folder.display())),
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|entry| {
            Some(
                entry
                    .file_name()
                    .to_str()?
                    .strip_suffix(".json")?
                    .to_owned(),
            )
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Every snapshot saved, by name; files that cannot be read are left out.
pub fn list(data_dir: &Path) -> anyhow::Result<Vec<Listed>> {
    let mut listed: Vec<Listed> = saved_names(data_dir)?
        .into_iter()
        .filter_map(|name| {
            let snapshot = read(data_dir, &name).ok()?;
            Some(Listed {
                name,
                saved_at: snapshot.saved_at,
                apps: snapshot.apps.len(),
            })
        })
        .collect();
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(listed)
}

/// Deletes snapshot `name`.
pub fn delete(data_dir: &Path, name: &str) -> anyhow::Result<()> {
    let path = file(data_dir, name)?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("no workspace snapshot {name:?}")
        }
        Err(e) => Err(e).with_context(|| format!("deleting {}", path.display())),
    }
}

/// Saving and restoring in a running shell.
pub struct Layouts {
    data_dir: PathBuf,
    supervisor: Supervisor,
    fdc3: AgentHandle,
    catalogue: Arc<AppCatalogue>,
    /// Snapshot requests waiting for hosts' reports, by request.
    waiting: Mutex<HashMap<u64, mpsc::Sender<(Identity, SavedApp)>>>,
    next_request: AtomicU64,
}

impl Layouts {
    /// Saving and restoring with these parts of the shell.
    pub fn new(
        data_dir: &Path,
        supervisor: Supervisor,
        fdc3: AgentHandle,
        catalogue: Arc<AppCatalogue>,
    ) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            supervisor,
            fdc3,
            catalogue,
            waiting: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
        }
    }

    /// A host reported its instance for snapshot `request`.
    pub fn saved(&self, identity: Identity, request: u64, saved: SavedApp) {
        if let Some(tx) = lock(&self.waiting).get(&request) {
            let _ = tx.send((identity, saved));
        }
    }

    /// Saves the running apps as snapshot `name`: waits (up to 30 s) for apps still
    /// starting, then asks every running instance's host. Blocks.
    pub fn save(&self, name: &str) -> anyhow::Result<SaveOutcome> {
        self.save_within(name, STARTING_DEADLINE, AppState::is_live)
    }

    /// Saves the last session, as the shell stops: apps still starting are not waited
    /// for long. The session is every instance nobody stopped: also those that crashed
    /// or are being restarted (as when the desktop session ends under them), kept at
    /// their last known place. Nothing is written when there is none.
    pub fn save_last_session(&self) -> anyhow::Result<Option<SaveOutcome>> {
        if !self.supervisor.apps().iter().any(|a| in_session(a.state)) {
            return Ok(None);
        }
        self.save_within(LAST_SESSION, Duration::from_secs(2), in_session)
            .map(Some)
    }

    /// Saves the instances whose state `keep` accepts as snapshot `name`, waiting up to
    /// `starting` for those still starting; the running ones are asked for their page
    /// and window.
    fn save_within(
        &self,
        name: &str,
        starting: Duration,
        keep: fn(AppState) -> bool,
    ) -> anyhow::Result<SaveOutcome> {
        let path = file(&self.data_dir, name)?;
        let deadline = Instant::now() + starting;
        let apps = loop {
            let apps = self.supervisor.apps();
            let starting = apps.iter().any(|a| a.state == AppState::Starting);
            if !starting || Instant::now() >= deadline {
                break apps;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let apps: Vec<AppInfo> = apps.into_iter().filter(|a| keep(a.state)).collect();
        let running: Vec<AppInfo> = apps.iter().filter(|a| a.state.is_live()).cloned().collect();
        let reports = self.ask(&running);
        let channels = self.fdc3.user_channels_blocking();
        let mut notes = Vec::new();
        let mut saved = Vec::new();
        for app in &apps {
            let Some(source) = self.catalogue.source_of(&app.app_id) else {
                notes.push(format!(
                    "{} ({}) was left out: the launch it came from is not known",
                    app.title, app.instance_id
                ));
                continue;
            };
            let report = reports.get(&app.instance_id);
            let (url, window, app_state) = match report {
                Some(r) => {
                    if let Some(why) = &r.app_state_error {
                        notes.push(format!("{}: its state was not saved: {why}", app.title));
                    }
                    let state = r
                        .app_state
                        .as_deref()
                        .and_then(|text| serde_json::from_str(text).ok());
                    (Some(r.url.clone()), r.window.clone(), state)
                }
                None => {
                    notes.push(format!(
                        "{} did not answer; its last known place is kept, without its page \
                         or state",
                        app.title
                    ));
                    let window = app.bounds.map(|b| SavedWindow {
                        bounds: WindowBounds {
                            x: b.x,
                            y: b.y,
                            width: b.width,
                            height: b.height,
                        },
                        monitor: None,
                        maximized: false,
                        minimized: false,
                    });
                    (None, window, None)
                }
            };
            saved.push(SavedInstance {
                app_id: app.app_id.clone(),
                title: app.title.clone(),
                source,
                url: url.filter(|u| !u.is_empty()),
                window,
                channel: channels.get(&app.instance_id).cloned(),
                app_state,
            });
        }
        let snapshot = Snapshot {
            version: VERSION,
            name: name.to_owned(),
            saved_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            apps: saved,
        };
        let text = serde_json::to_vec_pretty(&snapshot).expect("a snapshot serialises");
        private_file::replace(&path, &text)
            .with_context(|| format!("writing {}", path.display()))?;
        tracing::info!(name, apps = snapshot.apps.len(), "workspace snapshot saved");
        Ok(SaveOutcome {
            file: path,
            apps: snapshot.apps.len(),
            notes,
        })
    }

    /// Asks each instance's host for its report; those that answered in time.
    fn ask(&self, apps: &[AppInfo]) -> HashMap<String, SavedApp> {
        let request = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        lock(&self.waiting).insert(request, tx);
        let mut asked = 0;
        for app in apps {
            match self.supervisor.ask_to_save(&app.instance_id, request) {
                Ok(()) => asked += 1,
                Err(e) => {
                    tracing::warn!(instance = app.instance_id, "cannot ask for a snapshot: {e}")
                }
            }
        }
        let deadline = Instant::now() + ANSWER_DEADLINE;
        let mut reports = HashMap::new();
        while reports.len() < asked {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((identity, saved)) => {
                    reports.insert(identity.instance_id, saved);
                }
                Err(_) => break,
            }
        }
        lock(&self.waiting).remove(&request);
        reports
    }

    /// Restores snapshot `name`: the apps running now are stopped, then every saved
    /// instance starts from its launch, with its page, window, channel and state.
    /// Launches that can no longer be read are named in the notes; the others start.
    pub fn restore(&self, name: &str) -> anyhow::Result<(Vec<Identity>, Vec<String>)> {
        let snapshot = read(&self.data_dir, name)?;
        let plan = self.plan(&snapshot);
        if plan.workspaces.is_empty() {
            bail!(
                "nothing of {name:?} can be started: {}",
                plan.notes.join("; ")
            );
        }
        self.supervisor.stop_all_apps();
        let mut started = Vec::new();
        let mut notes = plan.notes;
        for workspace in plan.workspaces {
            match self.supervisor.launch(&workspace) {
                Ok(ids) => started.extend(ids),
                Err(e) => notes.push(format!("{}: {e}", workspace.file.display())),
            }
        }
        Ok((started, notes))
    }

    /// What `snapshot` starts: one workspace per launch it came from, each with its
    /// saved instances, in the order saved.
    fn plan(&self, snapshot: &Snapshot) -> Plan {
        let mut sources: Vec<&LaunchRequest> = Vec::new();
        for app in &snapshot.apps {
            if !sources.contains(&&app.source) {
                sources.push(&app.source);
            }
        }
        let mut plan = Plan::default();
        for source in sources {
            let instances: Vec<&SavedInstance> = snapshot
                .apps
                .iter()
                .filter(|a| &a.source == source)
                .collect();
            let app_ids: Vec<String> = instances.iter().map(|i| i.app_id.clone()).collect();
            match self
                .catalogue
                .load(&self.data_dir, &self.fdc3, source, &app_ids)
            {
                Ok(workspace) => plan.workspaces.push(restored(workspace, &instances)),
                Err(e) => plan
                    .notes
                    .push(format!("{} could not start: {e:#}", names(&instances))),
            }
        }
        plan
    }
}

/// What a restore starts, and what it cannot.
#[derive(Default)]
struct Plan {
    workspaces: Vec<Workspace>,
    notes: Vec<String>,
}

/// `workspace` with one app per saved instance, each as it was.
fn restored(workspace: Workspace, instances: &[&SavedInstance]) -> Workspace {
    let apps = instances
        .iter()
        .filter_map(|saved| {
            let mut app = workspace
                .apps
                .iter()
                .find(|a| a.app_id == saved.app_id)?
                .clone();
            app.restored = Restored {
                page: saved.url.clone(),
                window: saved.window.clone(),
                channel: saved.channel.clone(),
                app_state: saved.app_state.as_ref().map(|v| v.to_string()),
            };
            Some(app)
        })
        .collect();
    Workspace { apps, ..workspace }
}

fn names(instances: &[&SavedInstance]) -> String {
    let names: Vec<&str> = instances.iter().map(|i| i.title.as_str()).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_the_folder_or_hide_are_refused() {
        for ok in ["Morning", "Last session", "desk v1.2", "Łódź"] {
            check_name(ok).unwrap();
        }
        for bad in ["", ".hidden", "a/b", "a\\b", "tab\there", &"x".repeat(65)] {
            let e = check_name(bad).unwrap_err().to_string();
            assert!(e.contains("cannot name a workspace snapshot"), "{bad}: {e}");
        }
    }

    fn snapshot(name: &str, app_state: Option<serde_json::Value>) -> Snapshot {
        Snapshot {
            version: VERSION,
            name: name.into(),
            saved_at: "2026-11-22T08:00:00Z".into(),
            apps: vec![SavedInstance {
                app_id: "blotter".into(),
                title: "Blotter".into(),
                source: LaunchRequest {
                    workspace: Some("/ws/desk.json".into()),
                    ..Default::default()
                },
                url: Some("weft://localhost/blotter.html?view=2".into()),
                window: None,
                channel: Some("fdc3.channel.2".into()),
                app_state,
            }],
        }
    }

    fn write(data_dir: &Path, s: &Snapshot) {
        let path = file(data_dir, &s.name).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, serde_json::to_vec(s).unwrap()).unwrap();
    }

    #[test]
    fn snapshots_are_read_listed_and_deleted_and_bad_ones_named() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        assert!(list(data).unwrap().is_empty());
        let e = read(data, "Morning").unwrap_err().to_string();
        assert!(
            e.contains("no workspace snapshot \"Morning\" (saved: none)"),
            "{e}"
        );
        let s = snapshot("Morning", Some(serde_json::json!({"tab": 1})));
        write(data, &s);
        assert_eq!(read(data, "Morning").unwrap(), s);
        assert_eq!(
            list(data).unwrap(),
            [Listed {
                name: "Morning".into(),
                saved_at: "2026-11-22T08:00:00Z".into(),
                apps: 1
            }]
        );
        let e = read(data, "Evening").unwrap_err().to_string();
        assert!(e.contains("(saved: Morning)"), "{e}");

        let mut newer = snapshot("Newer", None);
        newer.version = 2;
        write(data, &newer);
        let e = format!("{:#}", read(data, "Newer").unwrap_err());
        assert!(e.contains("a version 2 snapshot"), "{e}");
        std::fs::write(file(data, "Broken").unwrap(), "{\"version\": 1").unwrap();
        let e = format!("{:#}", read(data, "Broken").unwrap_err());
        assert!(e.contains("Broken.json is not a workspace snapshot"), "{e}");
        let big = snapshot("Big", Some(serde_json::json!("x".repeat(MAX_APP_STATE))));
        write(data, &big);
        let e = format!("{:#}", read(data, "Big").unwrap_err());
        assert!(e.contains("apps[0].appState is 256 KiB"), "{e}");
        // Unreadable files are left out of the list.
        assert_eq!(list(data).unwrap().len(), 1);

        delete(data, "Morning").unwrap();
        assert!(
            delete(data, "Morning")
                .unwrap_err()
                .to_string()
                .contains("no workspace")
        );
    }

    #[test]
    fn each_saved_instance_becomes_its_app_with_what_was_saved() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("blotter.html"), "<p>b</p>").unwrap();
        let ws_file = dir.path().join("desk.json");
        std::fs::write(
            &ws_file,
            r#"{"name": "Desk", "apps": [{"appId": "blotter", "url": "blotter.html"}, {"appId": "news", "url": "blotter.html"}]}"#,
        )
        .unwrap();
        let workspace = Workspace::load(&ws_file).unwrap();
        let s = snapshot("Morning", Some(serde_json::json!({"tab": 1})));
        let mut second = s.apps[0].clone();
        second.channel = None;
        let instances = [&s.apps[0], &second];
        let ws = restored(workspace, &instances);
        assert_eq!(
            ws.apps.len(),
            2,
            "two instances of blotter; news was not saved"
        );
        assert!(ws.apps.iter().all(|a| a.app_id == "blotter"));
        assert_eq!(
            ws.apps[0].restored.page.as_deref(),
            Some("weft://localhost/blotter.html?view=2")
        );
        assert_eq!(
            ws.apps[0].restored.channel.as_deref(),
            Some("fdc3.channel.2")
        );
        assert_eq!(
            ws.apps[0].restored.app_state.as_deref(),
            Some(r#"{"tab":1}"#)
        );
        assert_eq!(ws.apps[1].restored.channel, None);
    }
}
