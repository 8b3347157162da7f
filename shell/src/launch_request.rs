//! What `weft launch` asks to open — a workspace file, FDC3 App Directories, apps
//! named by appId — and reading it into a workspace and the directory its apps come
//! from. The same request is read by a shell that starts and, handed over, by one that
//! already runs.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use weft_appd::Directory;
use weft_workspace::{DirectorySource, Workspace, WorkspaceFile};

use crate::cli::LaunchArgs;

/// A launch, as the command line gave it, with paths made absolute. Empty, it means
/// the demo.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LaunchRequest {
    /// The workspace file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<PathBuf>,
    /// App Directories beyond the workspace's: URLs, or absolute paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_directories: Vec<String>,
    /// Apps to launch from the directories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<String>,
}

/// A workspace ready to launch, and the directories read for it.
pub struct Loaded {
    /// Every app launchable.
    pub workspace: Workspace,
    /// The App Directories' records.
    pub directory: Directory,
}

/// The name of a workspace made of App Directory apps alone.
const DIRECTORY_WORKSPACE: &str = "App Directory";

impl LaunchRequest {
    /// The command line's request, relative paths made absolute.
    pub fn from_args(args: &LaunchArgs) -> anyhow::Result<LaunchRequest> {
        let cwd = std::env::current_dir().context("reading the current directory")?;
        let app_directories = args
            .app_directories
            .iter()
            .map(|text| match DirectorySource::parse(text, &cwd) {
                Ok(DirectorySource::File(path)) => Ok(path.display().to_string()),
                Ok(DirectorySource::Url(url)) => Ok(url.to_string()),
                Err(problem) => bail!("--appd {text}: {problem}"),
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(LaunchRequest {
            workspace: args.workspace.as_deref().map(|w| absolute(&cwd, w)),
            app_directories,
            apps: args.apps.clone(),
        })
    }

    /// Whether it names nothing (the demo is launched).
    pub fn is_empty(&self) -> bool {
        self.workspace.is_none() && self.app_directories.is_empty() && self.apps.is_empty()
    }

    /// Reads the workspace file, every App Directory (the workspace's, then the
    /// command line's) and resolves the apps.
    pub fn load(&self) -> anyhow::Result<Loaded> {
        let sources = self
            .app_directories
            .iter()
            .map(|text| DirectorySource::parse(text, Path::new("/")).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let file = match &self.workspace {
            Some(path) => WorkspaceFile::load(path)?,
            None if self.apps.is_empty() => {
                bail!(
                    "name the apps to open from the App Directories with --app APPID (or give a workspace file)"
                )
            }
            None => WorkspaceFile::unnamed(DIRECTORY_WORKSPACE, "the command line"),
        }
        .with_apps(&self.apps, sources)?;
        let directory = Directory::load(&file.app_directories);
        for app_id in &self.apps {
            if directory.get(app_id).is_none() {
                let known: Vec<&str> = directory
                    .apps()
                    .iter()
                    .take(20)
                    .map(|a| a.app_id.as_str())
                    .collect();
                let known = if known.is_empty() {
                    "they hold no usable app".to_owned()
                } else {
                    format!("they hold: {}", known.join(", "))
                };
                let problems = if directory.problems.is_empty() {
                    String::new()
                } else {
                    let list: Vec<String> = directory
                        .problems
                        .iter()
                        .map(|p| format!("\n  {p}"))
                        .collect();
                    format!("; problems:{}", list.concat())
                };
                bail!("--app {app_id}: no App Directory has this appId ({known}){problems}");
            }
        }
        let workspace = file.resolve(&directory)?;
        Ok(Loaded {
            workspace,
            directory,
        })
    }
}

fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    let joined = cwd.join(path);
    weft_proto::endpoint::canonical(&joined).unwrap_or(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(workspace: Option<&str>, appd: &[&str], apps: &[&str]) -> LaunchArgs {
        LaunchArgs {
            workspace: workspace.map(PathBuf::from),
            app_directories: appd.iter().map(|s| s.to_string()).collect(),
            apps: apps.iter().map(|s| s.to_string()).collect(),
            no_panel: true,
            shell: Default::default(),
        }
    }

    #[test]
    fn apps_come_from_the_directories_named_on_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let appd = dir.path().join("appd.json");
        std::fs::write(dir.path().join("news.html"), "<p>news</p>").unwrap();
        std::fs::write(
            &appd,
            serde_json::json!({"applications": [
                {"appId": "news", "title": "News", "type": "web", "details": {"url": "news.html"},
                 "hostManifests": {"weft": {"restart": "never"}}},
                {"appId": "broken", "type": "web"}
            ]})
            .to_string(),
        )
        .unwrap();
        let request =
            LaunchRequest::from_args(&args(None, &[appd.to_str().unwrap()], &["news"])).unwrap();
        let loaded = request.load().unwrap();
        assert_eq!(loaded.workspace.name, DIRECTORY_WORKSPACE);
        assert_eq!(loaded.workspace.apps[0].title, "News");
        assert_eq!(
            loaded.workspace.apps[0].restart.policy,
            weft_workspace::RestartPolicy::Never
        );
        assert_eq!(loaded.directory.problems.len(), 1);

        let missing = LaunchRequest::from_args(&args(None, &[appd.to_str().unwrap()], &["chart"]))
            .unwrap()
            .load()
            .err()
            .unwrap()
            .to_string();
        assert!(
            missing.contains("--app chart: no App Directory has this appId (they hold: news)"),
            "{missing}"
        );
        assert!(
            missing.contains("applications[1] (appId \"broken\")"),
            "{missing}"
        );
        let none = LaunchRequest::from_args(&args(None, &[appd.to_str().unwrap()], &[]))
            .unwrap()
            .load()
            .err()
            .unwrap()
            .to_string();
        assert!(none.contains("--app APPID"), "{none}");
        let bad = LaunchRequest::from_args(&args(None, &["ftp://x/"], &["news"]))
            .unwrap_err()
            .to_string();
        assert!(bad.starts_with("--appd ftp://x/: "), "{bad}");
    }
}
