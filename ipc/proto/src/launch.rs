//! What the supervisor tells an app host (`weft-app`) when it starts it.
//!
//! The spec travels as JSON through a pipe inherited as a file descriptor, which the
//! host reads to the end and closes before it creates any webview. It carries the app's
//! secret token, so it is never put in an environment variable: WebKit's web process,
//! which runs untrusted page content, inherits the host's environment.

use std::{
    io::{self, Read},
    path::PathBuf,
};

use serde::{Deserialize, Serialize};

use crate::{Identity, Token};

/// Largest spec a host accepts, in bytes.
pub const MAX_SPEC_LEN: u64 = 1024 * 1024;

/// Largest page state (`weft.workspace.onSave`'s JSON) a snapshot keeps, in bytes.
pub const MAX_APP_STATE: usize = 256 * 1024;

/// Everything an app host needs to know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LaunchSpec {
    /// Who the instance is.
    pub identity: Identity,
    /// Its secret bus token, in hexadecimal.
    pub token: String,
    /// The broker's socket.
    pub socket: PathBuf,
    /// The page to show.
    pub start: StartPage,
    /// The window title.
    pub title: String,
    /// The window's position and size, if given.
    pub bounds: Option<WindowBounds>,
    /// The webview's own data and cache directory.
    pub web_data_dir: PathBuf,
    /// The origins its pages and frames may be on (its own first); navigation
    /// anywhere else is blocked.
    #[serde(default)]
    pub origins: Vec<String>,
    /// Whether a new window the page asks for opens in the system browser (else it is
    /// refused).
    #[serde(default)]
    pub new_windows_in_browser: bool,
    /// Where and how the window was when its layout was saved: the host puts it back
    /// on that monitor, or fully on the nearest one when that monitor is gone or
    /// smaller. Wins over `bounds`.
    #[serde(default)]
    pub placement: Option<SavedWindow>,
    /// The page's own state from the saved layout (JSON text), handed to the page as
    /// `weft.workspace.restoredState`.
    #[serde(default)]
    pub app_state: Option<String>,
}

/// Where a window was and in what state, as a layout snapshot keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SavedWindow {
    /// Outer position and inner size when last neither maximised nor minimised, in
    /// logical pixels of the whole desktop.
    pub bounds: WindowBounds,
    /// The monitor it was on (the one holding most of it).
    #[serde(default)]
    pub monitor: Option<MonitorArea>,
    /// Maximised.
    #[serde(default)]
    pub maximized: bool,
    /// Minimised.
    #[serde(default)]
    pub minimized: bool,
}

/// A monitor: its name, where it is on the desktop and its size (logical pixels), and
/// its scale factor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MonitorArea {
    /// The name the system gives it (a connector, such as `DP-1`), when it gives one.
    #[serde(default)]
    pub name: Option<String>,
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Physical pixels per 100 logical pixels (its scale factor in percent: 100, 125,
    /// 200), a whole number so that every spec and frame reads back as written.
    pub scale_percent: u32,
}

/// What an app host reports of its instance when the shell saves a layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedApp {
    /// The page it shows now.
    pub url: String,
    /// Its window.
    pub window: Option<SavedWindow>,
    /// What the page's `weft.workspace.onSave` hook returned, as JSON text.
    pub app_state: Option<String>,
    /// Why the hook gave nothing, when it failed (threw, returned something that is
    /// not JSON, or a promise).
    pub app_state_error: Option<String>,
}

/// Where the first page comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum StartPage {
    /// An http(s) URL.
    Remote {
        /// The URL.
        url: String,
    },
    /// A file served by the host from `root` through Weft's own URL scheme.
    Local {
        /// The only folder files may be served from.
        root: PathBuf,
        /// The start page relative to `root`, with any query or fragment.
        path: String,
    },
}

/// A window's position and size, in logical pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowBounds {
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// A launch spec could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LaunchSpecError {
    /// Reading the pipe failed.
    #[error("cannot read the launch spec: {0}")]
    Io(#[from] io::Error),
    /// The spec is larger than [`MAX_SPEC_LEN`].
    #[error("the launch spec is larger than {MAX_SPEC_LEN} bytes")]
    TooLarge,
    /// The spec is not valid.
    #[error("the launch spec is invalid: {0}")]
    Invalid(String),
}

impl LaunchSpec {
    /// Encodes the spec.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a LaunchSpec always serialises")
    }

    /// Reads a spec from `reader` to its end.
    pub fn read_from(reader: impl Read) -> Result<LaunchSpec, LaunchSpecError> {
        let mut buf = Vec::new();
        reader.take(MAX_SPEC_LEN + 1).read_to_end(&mut buf)?;
        if buf.len() as u64 > MAX_SPEC_LEN {
            return Err(LaunchSpecError::TooLarge);
        }
        let spec: LaunchSpec =
            serde_json::from_slice(&buf).map_err(|e| LaunchSpecError::Invalid(e.to_string()))?;
        spec.token()?;
        Ok(spec)
    }

    /// The bus token.
    pub fn token(&self) -> Result<Token, LaunchSpecError> {
        Token::from_hex(&self.token).map_err(|e| LaunchSpecError::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> LaunchSpec {
        LaunchSpec {
            identity: Identity::new_instance("a"),
            token: Token::random().to_hex(),
            socket: "/run/weft/bus.sock".into(),
            start: StartPage::Local {
                root: "/ws".into(),
                path: "a/index.html".into(),
            },
            title: "A".into(),
            bounds: Some(WindowBounds {
                x: 0,
                y: 0,
                width: 10,
                height: 10,
            }),
            web_data_dir: "/data/webdata/a".into(),
            origins: vec!["weft://localhost".into(), "https://charts.example".into()],
            new_windows_in_browser: true,
            placement: Some(SavedWindow {
                bounds: WindowBounds {
                    x: 2000,
                    y: 40,
                    width: 600,
                    height: 400,
                },
                monitor: Some(MonitorArea {
                    name: Some("DP-2".into()),
                    x: 1920,
                    y: 0,
                    width: 1280,
                    height: 1024,
                    scale_percent: 100,
                }),
                maximized: true,
                minimized: false,
            }),
            app_state: Some(r#"{"tab":2}"#.into()),
        }
    }

    #[test]
    fn round_trips_and_rejects_bad_specs() {
        let s = spec();
        assert_eq!(LaunchSpec::read_from(&s.to_json()[..]).unwrap(), s);
        let mut bad = s.clone();
        bad.token = "short".into();
        assert!(matches!(
            LaunchSpec::read_from(&bad.to_json()[..]),
            Err(LaunchSpecError::Invalid(_))
        ));
        assert!(matches!(
            LaunchSpec::read_from(&b"{}"[..]),
            Err(LaunchSpecError::Invalid(_))
        ));
        let huge = vec![b' '; MAX_SPEC_LEN as usize + 10];
        assert!(matches!(
            LaunchSpec::read_from(&huge[..]),
            Err(LaunchSpecError::TooLarge)
        ));
    }
}
