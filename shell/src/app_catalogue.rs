//! Every app known this session — from the workspaces launched and the App Directories
//! read — with what the launcher shows of it (title, description, icon) and the launch
//! it comes from, so that the launcher and layout snapshots can start it again the same
//! way, through the same checks. The latest launch naming an app wins.

use std::{collections::BTreeMap, path::Path, sync::Mutex};

use weft_appd::Directory;
use weft_proto::Identity;
use weft_supervisor::Supervisor;
use weft_workspace::Workspace;

use crate::{
    fdc3_agent::AgentHandle,
    launch_request::{LaunchRequest, Loaded},
    locking::lock,
    shell_process,
};

/// One app of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogueEntry {
    /// The app.
    pub app_id: String,
    /// Its title.
    pub title: String,
    /// Its description, from its App Directory record.
    pub description: Option<String>,
    /// Its icon's URL, from its App Directory record.
    pub icon: Option<String>,
    /// The launch it comes from (empty: the demo).
    pub source: LaunchRequest,
}

/// The apps known, by appId.
#[derive(Debug, Default)]
pub struct AppCatalogue {
    entries: Mutex<BTreeMap<String, CatalogueEntry>>,
}

impl AppCatalogue {
    /// `request` was read into `workspace` and `directory`: their apps are known, and
    /// come from it.
    pub fn record(&self, request: &LaunchRequest, workspace: &Workspace, directory: &Directory) {
        let source = LaunchRequest {
            apps: vec![],
            ..request.clone()
        };
        let mut entries = lock(&self.entries);
        for app in &workspace.apps {
            entries.insert(
                app.app_id.clone(),
                CatalogueEntry {
                    app_id: app.app_id.clone(),
                    title: app.title.clone(),
                    description: None,
                    icon: None,
                    source: source.clone(),
                },
            );
        }
        for record in directory.apps() {
            let from_workspace = entries.get(&record.app_id);
            let title = from_workspace.map_or(record.title.clone(), |e| e.title.clone());
            entries.insert(
                record.app_id.clone(),
                CatalogueEntry {
                    app_id: record.app_id.clone(),
                    title,
                    description: record.description.clone().or(record.tooltip.clone()),
                    icon: record.icons.first().map(|i| i.src.clone()),
                    source: source.clone(),
                },
            );
        }
    }

    /// The launch `app_id` came from.
    pub fn source_of(&self, app_id: &str) -> Option<LaunchRequest> {
        lock(&self.entries).get(app_id).map(|e| e.source.clone())
    }

    /// Every app known, by appId.
    pub fn entries(&self) -> Vec<CatalogueEntry> {
        lock(&self.entries).values().cloned().collect()
    }

    /// Reads the launch `source` again — the demo when it is empty — with `app_ids`
    /// that its workspace does not list taken from its App Directories; the apps are
    /// known again, and the agent told of the directories' records.
    pub fn load(
        &self,
        data_dir: &Path,
        fdc3: &AgentHandle,
        source: &LaunchRequest,
        app_ids: &[String],
    ) -> anyhow::Result<Workspace> {
        if *source == LaunchRequest::default() {
            let demo = shell_process::load_demo(data_dir)?;
            self.record(source, &demo, &Directory::default());
            return Ok(demo);
        }
        let mut request = source.clone();
        let mut loaded: Loaded = request.load()?;
        let mut missing: Vec<String> = Vec::new();
        for id in app_ids {
            if !loaded.workspace.apps.iter().any(|a| &a.app_id == id) && !missing.contains(id) {
                missing.push(id.clone());
            }
        }
        if !missing.is_empty() {
            request.apps = missing;
            loaded = request.load()?;
        }
        fdc3.add_apps(&loaded.directory);
        self.record(source, &loaded.workspace, &loaded.directory);
        Ok(loaded.workspace)
    }

    /// Starts a new instance of `app_id`, from the launch it came from.
    pub fn launch_new(
        &self,
        data_dir: &Path,
        fdc3: &AgentHandle,
        supervisor: &Supervisor,
        app_id: &str,
    ) -> anyhow::Result<Vec<Identity>> {
        let source = self
            .source_of(app_id)
            .ok_or_else(|| anyhow::anyhow!("{app_id} is not an app Weft knows"))?;
        let workspace = self.load(data_dir, fdc3, &source, &[app_id.to_owned()])?;
        let apps = workspace
            .apps
            .iter()
            .filter(|a| a.app_id == app_id)
            .take(1)
            .cloned()
            .collect();
        Ok(supervisor.launch(&Workspace { apps, ..workspace })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apps_of_workspaces_and_directories_are_known_with_their_launch() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.html"), "<p>a</p>").unwrap();
        let appd = dir.path().join("appd.json");
        std::fs::write(
            &appd,
            serde_json::json!({"applications": [
                {"appId": "news", "title": "News", "type": "web", "details": {"url": "a.html"},
                 "description": "Headlines", "icons": [{"src": "https://apps.example/news.png"}]}
            ]})
            .to_string(),
        )
        .unwrap();
        let ws = dir.path().join("ws.json");
        std::fs::write(
            &ws,
            format!(
                r#"{{"name": "W", "appDirectories": [{:?}], "apps": [{{"appId": "blotter", "url": "a.html", "title": "Blotter"}}]}}"#,
                appd.display().to_string()
            ),
        )
        .unwrap();
        let request = LaunchRequest {
            workspace: Some(ws.clone()),
            ..Default::default()
        };
        let loaded = request.load().unwrap();
        let catalogue = AppCatalogue::default();
        catalogue.record(&request, &loaded.workspace, &loaded.directory);
        let entries = catalogue.entries();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].app_id, "blotter");
        assert_eq!(entries[0].title, "Blotter");
        assert_eq!(entries[1].description.as_deref(), Some("Headlines"));
        assert_eq!(
            entries[1].icon.as_deref(),
            Some("https://apps.example/news.png")
        );
        assert_eq!(catalogue.source_of("news"), Some(request.clone()));
        assert_eq!(catalogue.source_of("chart"), None);

        // Read again, with the directory app the workspace does not list.
        let (fdc3, _inbox) = crate::fdc3_agent::channel();
        let again = catalogue
            .load(dir.path(), &fdc3, &request, &["news".to_owned()])
            .unwrap();
        let ids: Vec<&str> = again.apps.iter().map(|a| a.app_id.as_str()).collect();
        assert_eq!(ids, ["blotter", "news"]);
    }
}
