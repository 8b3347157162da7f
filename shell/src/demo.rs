//! The built-in demo workspace, embedded in the binary and written to the data
//! directory when launched, so that it is served like any other workspace.

use std::path::{Path, PathBuf};

use anyhow::Context;
use include_dir::{Dir, include_dir};

static DEMO: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../assets/demo");

/// Writes the demo under `data_dir/demo` (replacing an older copy) and returns the path
/// of its workspace file.
pub fn install(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = data_dir.join("demo");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("removing the old demo in {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    DEMO.extract(&dir)
        .with_context(|| format!("writing the demo to {}", dir.display()))?;
    Ok(dir.join("workspace.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_is_a_valid_workspace_of_at_least_three_apps() {
        let data = tempfile::tempdir().unwrap();
        let file = install(data.path()).unwrap();
        let ws = weft_workspace::Workspace::load(&file).unwrap();
        assert!(ws.apps.len() >= 3, "{ws:?}");
        // Installing again replaces the copy cleanly.
        install(data.path()).unwrap();
    }
}
