//! Which data directory a command works on.

use std::path::{Path, PathBuf};

use anyhow::Context;
use weft_proto::endpoint::Endpoint;

/// The data directory from `--data-dir`/`WEFT_DATA_DIR`, or the platform's standard
/// per-user one (`~/.local/share/weft` on Linux).
pub fn resolve(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    match explicit {
        Some(dir) => Ok(dir.to_owned()),
        None => directories::ProjectDirs::from("", "", "weft")
            .map(|p| p.data_dir().to_owned())
            .context(
                "cannot find a home directory for the default data directory; pass --data-dir",
            ),
    }
}

/// The shell endpoint belonging to `data_dir`.
pub fn endpoint(data_dir: &Path) -> anyhow::Result<Endpoint> {
    Endpoint::for_data_dir(data_dir).with_context(|| {
        format!(
            "cannot locate the runtime directory for {}",
            data_dir.display()
        )
    })
}
