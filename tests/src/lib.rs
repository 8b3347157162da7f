//! The end-to-end test harness: real `weft` shells with temporary data directories,
//! real `weft-app` processes and real WebKit pages on a private Xvfb display.
//!
//! Every [`TestEnv`] has its own data dir, runtime dir and `HOME`; every [`Shell`] is
//! killed with all its descendants when dropped, even when the test fails, and a failing
//! test leaves a screenshot of the display and the shell's log under `target/tmp`.
//! Nothing here sleeps to synchronise: waits poll a condition against a deadline.
//!
//! Tests that start webviews must hold [`webview_lock`] (a [`Shell`] does): a 2-core
//! machine running several WebKit instances at once is too noisy to test reliably.

mod notification_server;
pub mod process_tree;
mod secret_service;
mod session_bus;
mod static_server;
mod tray_host;

pub use notification_server::PrivateNotifications;
pub use secret_service::PrivateKeyring;
pub use static_server::StaticServer;
pub use tray_host::PrivateTray;

use std::{
    collections::HashMap,
    fs,
    io::{BufRead, BufReader, Read, Write},
    os::{
        fd::{AsRawFd, OwnedFd},
        unix::process::CommandExt,
    },
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use serde::Deserialize;
use weft_client::Client;
use weft_proto::{endpoint::Endpoint, frame::AppInfo};

/// Generous deadline for anything involving WebKit on a small, busy machine.
pub const SLOW: Duration = Duration::from_secs(90);

/// The topic `s`, which the test knows to be valid.
pub fn topic(s: &str) -> weft_proto::Topic {
    weft_proto::Topic::new(s).expect("a valid topic")
}

/// A single-threaded runtime for a test's bus clients.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}

/// A Tokio runtime with worker threads: what a test spawns runs while the test's own
/// thread waits (on a window, say).
pub fn threaded_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}

/// Awaits `f`, panicking with `what` if it takes longer than [`SLOW`].
pub async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(SLOW, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Serialises tests that start webviews within one test binary.
pub fn webview_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Polls `f` until it returns `Some`, or panics with `what` after `deadline`.
pub fn wait_for<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > end {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A built binary of this workspace, beside the test executable's `deps` folder.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile directory");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the workspace first (`cargo build --workspace`)",
        path.display()
    );
    path
}

/// Where failing tests leave screenshots and logs: `target/tmp/e2e-failures`.
pub fn failure_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let target = exe.ancestors().nth(3).expect("target directory");
    target.join("tmp").join("e2e-failures")
}

/// A fixture page's RPC service (`e2e.<fixture>.<appId>`), through which a test
/// drives the page: each action answers with JSON.
pub struct PageService {
    service: weft_client::ServiceClient,
}

impl PageService {
    /// Connects to the service `name`, waiting for the page to provide it.
    pub async fn connect(client: &Client, name: &str) -> PageService {
        let service = within(
            "the page's service",
            client.connect_service(&topic(name), Some(Duration::from_secs(60))),
        )
        .await
        .expect("the page provides its service");
        PageService { service }
    }

    /// Calls `action` with `args`: the page's answer, or why there is none (the page
    /// went away, say).
    pub async fn try_action(
        &self,
        action: &str,
        args: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let d = within(
            action,
            self.service
                .dispatch(action, args.to_string(), Duration::from_secs(30)),
        )
        .await
        .map_err(|e| e.to_string())?;
        serde_json::from_slice(&d.payload).map_err(|e| e.to_string())
    }

    /// Calls `action` with `args` and returns the page's answer.
    pub async fn action(&self, action: &str, args: serde_json::Value) -> serde_json::Value {
        let d = within(
            action,
            self.service
                .dispatch(action, args.to_string(), Duration::from_secs(30)),
        )
        .await
        .unwrap_or_else(|e| panic!("{action}: {e}"));
        serde_json::from_slice(&d.payload).expect("the page answers JSON")
    }
}

/// Where tests keep screenshots worth looking at (of prompts, say), failed or not.
pub fn screenshot_dir() -> PathBuf {
    failure_dir().with_file_name("e2e-screenshots")
}

/// A private X display (Xvfb), with a window manager when asked; both stopped when
/// dropped.
pub struct Display {
    child: Child,
    number: u32,
    window_manager: Option<Child>,
    /// The X server's configuration and log, for one with several monitors.
    _server_dir: Option<tempfile::TempDir>,
}

impl Display {
    /// Starts Xvfb on a free display number, waiting until it accepts clients.
    pub fn start() -> Display {
        let mut cmd = Command::new("Xvfb");
        cmd.args(["-screen", "0", "1280x800x24"]);
        Display::serve(cmd, "Xvfb: is the xvfb package installed?", None)
    }

    /// Starts an X server whose desktop is `monitors` (width, height) side by side,
    /// left to right, each a monitor of its own as apps and window managers see them:
    /// Xorg's dummy driver, whose outputs `DUMMY0`, `DUMMY1`, … are RandR monitors.
    pub fn with_monitors(monitors: &[(u32, u32)]) -> Display {
        let dir = tempfile::tempdir().expect("temp dir");
        let conf = dir.path().join("xorg.conf");
        fs::write(&conf, xorg_conf(monitors)).expect("writing xorg.conf");
        let mut cmd = Command::new("Xorg");
        cmd.arg("-config")
            .arg(&conf)
            .arg("-logfile")
            .arg(dir.path().join("xorg.log"))
            .args(["-noreset", "-novtswitch", "-sharevts"]);
        let display = Display::serve(
            cmd,
            "Xorg: are the xserver-xorg-core and xserver-xorg-video-dummy packages installed?",
            Some(dir),
        );
        let name = display.name();
        for (i, (w, h)) in monitors.iter().enumerate().skip(1) {
            let mode = format!("{w}x{h}");
            let output = format!("DUMMY{i}");
            xrandr(&name, &["--addmode", &output, &mode]);
            xrandr(
                &name,
                &[
                    "--output",
                    &output,
                    "--mode",
                    &mode,
                    "--right-of",
                    &format!("DUMMY{}", i - 1),
                ],
            );
        }
        let listed = xrandr(&name, &["--listmonitors"]);
        assert!(
            listed.starts_with(&format!("Monitors: {}", monitors.len())),
            "the X server has other monitors than asked: {listed}"
        );
        display
    }

    /// Runs the X server `cmd` on a free display, waiting until it accepts clients.
    fn serve(mut cmd: Command, missing: &str, server_dir: Option<tempfile::TempDir>) -> Display {
        let (read, write) = std::io::pipe().expect("pipe");
        let write = OwnedFd::from(write);
        let write_fd = write.as_raw_fd();
        cmd.args(["-displayfd", "3", "-nolisten", "tcp"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: runs in the forked child before exec; dup2 and prctl are
        // async-signal-safe and use only the copied descriptor number.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(write_fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {missing} ({e})"));
        drop(write);
        let mut line = String::new();
        BufReader::new(read)
            .read_line(&mut line)
            .expect("reading the X server's display number");
        let number = line.trim().parse().unwrap_or_else(|_| {
            let log = server_dir
                .as_ref()
                .and_then(|d| fs::read_to_string(d.path().join("xorg.log")).ok())
                .unwrap_or_default();
            panic!("the X server ({missing}) said {line:?}\n{log}")
        });
        Display {
            child,
            number,
            window_manager: None,
            _server_dir: server_dir,
        }
    }

    /// Runs a window manager (Openbox, as on a real desktop: decorations, focus,
    /// maximising, `_NET_ACTIVE_WINDOW`) on the display, waiting until it manages it.
    pub fn with_window_manager(mut self) -> Display {
        let mut cmd = Command::new("openbox");
        cmd.arg("--sm-disable")
            .env("DISPLAY", self.name())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: runs in the forked child before exec; prctl is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                Ok(())
            });
        }
        self.window_manager = Some(
            cmd.spawn()
                .expect("cannot start openbox: is the openbox package installed?"),
        );
        let name = self.name();
        wait_for("the window manager", Duration::from_secs(20), || {
            let out = Command::new("xprop")
                .args(["-display", &name, "-root", "_NET_SUPPORTING_WM_CHECK"])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .ok()?;
            String::from_utf8_lossy(&out.stdout)
                .contains("window id")
                .then_some(())
        });
        self
    }

    /// The `DISPLAY` value.
    pub fn name(&self) -> String {
        format!(":{}", self.number)
    }

    /// The colour of the screen's pixel at `(x, y)`, as `#RRGGBB`.
    pub fn pixel(&self, x: i32, y: i32) -> Option<String> {
        let out = Command::new("import")
            .args([
                "-window",
                "root",
                "-crop",
                &format!("1x1+{x}+{y}"),
                "-depth",
                "8",
                "txt:-",
            ])
            .env("DISPLAY", self.name())
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let hex = text
            .split_whitespace()
            .find(|w| w.starts_with('#') && w.len() == 7)?;
        Some(hex.to_uppercase())
    }

    /// Saves a PNG of the whole screen; returns whether it worked.
    pub fn screenshot(&self, path: &Path) -> bool {
        Command::new("import")
            .args(["-window", "root"])
            .arg(path)
            .env("DISPLAY", self.name())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

/// An Xorg configuration of one dummy screen large enough for `monitors` side by side,
/// with a mode for each (the monitors themselves are RandR outputs, set up once the
/// server runs).
fn xorg_conf(monitors: &[(u32, u32)]) -> String {
    let width: u32 = monitors.iter().map(|m| m.0).sum();
    let height = monitors.iter().map(|m| m.1).max().unwrap_or(600);
    let modelines: String = monitors
        .iter()
        .map(|(w, h)| {
            // Blanking wide enough for the dummy driver's checks; 60 Hz.
            let (ht, vt) = (w + 160, h + 30);
            let clock = (ht as f64 * vt as f64 * 60.0) / 1e6;
            format!(
                "  Modeline \"{w}x{h}\" {clock:.2} {w} {} {} {ht} {h} {} {} {vt}\n",
                w + 16,
                w + 48,
                h + 3,
                h + 8
            )
        })
        .collect();
    let (w0, h0) = monitors.first().copied().unwrap_or((800, 600));
    let video_ram_kb = (width as u64 * height as u64 * 4) / 1024 + 4096;
    format!(
        "Section \"ServerFlags\"\n  Option \"DontVTSwitch\" \"true\"\n  \
         Option \"AllowMouseOpenFail\" \"true\"\n  Option \"AutoAddDevices\" \"false\"\nEndSection\n\
         Section \"Device\"\n  Identifier \"d0\"\n  Driver \"dummy\"\n  VideoRam {video_ram_kb}\nEndSection\n\
         Section \"Monitor\"\n  Identifier \"m0\"\n  HorizSync 5.0 - 1000.0\n  VertRefresh 5.0 - 200.0\n{modelines}EndSection\n\
         Section \"Screen\"\n  Identifier \"s0\"\n  Device \"d0\"\n  Monitor \"m0\"\n  DefaultDepth 24\n  \
         SubSection \"Display\"\n    Depth 24\n    Modes \"{w0}x{h0}\"\n    Virtual {width} {height}\n  EndSubSection\nEndSection\n"
    )
}

/// Runs `xrandr ARGS` on `display`, panicking with its words when it fails.
fn xrandr(display: &str, args: &[&str]) -> String {
    let out = Command::new("xrandr")
        .arg("-display")
        .arg(display)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run xrandr: is the x11-xserver-utils package installed?");
    assert!(
        out.status.success(),
        "xrandr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Display {
    /// Ends the display (and its window manager) under everything on it, as a desktop
    /// session's end does.
    pub fn end(&mut self) {
        if let Some(mut wm) = self.window_manager.take() {
            let _ = wm.kill();
            let _ = wm.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.end();
    }
}

/// Private directories for one test: data dir, runtime dir and `HOME`.
pub struct TestEnv {
    root: tempfile::TempDir,
    /// Variables every command started in this environment gets (a private D-Bus
    /// session's address, say).
    extra_env: Vec<(String, String)>,
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl TestEnv {
    /// Fresh, empty directories.
    pub fn new() -> TestEnv {
        let root = tempfile::Builder::new()
            .prefix("weft-e2e-")
            .tempdir()
            .expect("tempdir");
        for d in ["data", "run", "home"] {
            fs::create_dir(root.path().join(d)).expect("mkdir");
        }
        std::fs::set_permissions(
            root.path().join("run"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("chmod");
        TestEnv {
            root,
            extra_env: vec![],
        }
    }

    /// Gives every command started in this environment `key=value`.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.extra_env.push((key.to_owned(), value.to_owned()));
    }

    /// The home directory (`HOME`).
    pub fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// The user's settings file, where `weft` looks for it with this `HOME`.
    pub fn config_file(&self) -> PathBuf {
        self.root.path().join("home/.config/weft/config.toml")
    }

    /// Writes the user's settings file.
    pub fn write_config(&self, text: impl AsRef<str>) {
        let file = self.config_file();
        std::fs::create_dir_all(file.parent().expect("a parent")).expect("config dir");
        std::fs::write(&file, text.as_ref()).expect("writing config.toml");
    }

    /// The runtime directory (`XDG_RUNTIME_DIR`).
    pub fn runtime_dir(&self) -> PathBuf {
        self.root.path().join("run")
    }

    /// A scratch path inside the test's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// The shell's endpoint for this environment.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::with_runtime_dir(&self.data_dir(), Some(&self.runtime_dir())).expect("endpoint")
    }

    /// A `weft` command with this environment and `display`.
    pub fn weft(&self, display: Option<&Display>) -> Command {
        self.command(&binary("weft"), display)
    }

    /// `program` (a `weft` build) with this environment and `display`: nothing of the
    /// caller's environment but `PATH` and `RUST_LOG` leaks in.
    pub fn command(&self, program: &Path, display: Option<&Display>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.root.path().join("home"))
            .env("XDG_RUNTIME_DIR", self.runtime_dir())
            .env("WEFT_DATA_DIR", self.data_dir())
            .env("WEBKIT_DISABLE_DMABUF_RENDERER", "1")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        if let Some(d) = display {
            cmd.env("DISPLAY", d.name());
        }
        cmd
    }

    /// Runs `weft ARGS` to completion.
    pub fn run_weft(&self, args: &[&str]) -> Output {
        self.weft(None).args(args).output().expect("running weft")
    }

    /// The audit log's records, as `weft audit export --json` prints them.
    pub fn audit_records(&self) -> Vec<serde_json::Value> {
        let out = self.run_weft(&["audit", "export", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("an audit record"))
            .collect()
    }

    /// Copies the fixture pages into the test directory and writes a workspace there
    /// with one app per `(appId, page)`; returns the workspace file.
    pub fn workspace(&self, name: &str, apps: &[(&str, &str)]) -> PathBuf {
        let apps: Vec<_> = apps
            .iter()
            .map(|(id, page)| (*id, *page, serde_json::json!({})))
            .collect();
        self.workspace_with(name, &apps)
    }

    /// The fixture pages, copied into the test directory.
    pub fn fixtures(&self) -> PathBuf {
        let dir = self.path("fixtures");
        if !dir.exists() {
            copy_dir(
                &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures"),
                &dir,
            );
        }
        dir
    }

    /// Writes an FDC3 App Directory file `{"applications": records}` beside the
    /// fixture pages (so that records may name them by relative URL); returns it.
    pub fn app_directory(&self, name: &str, records: &[serde_json::Value]) -> PathBuf {
        let file = self.fixtures().join(format!("{name}.json"));
        fs::write(
            &file,
            serde_json::json!({ "applications": records }).to_string(),
        )
        .expect("write");
        file
    }

    /// As [`TestEnv::workspace`], with more fields for each app (`restart`, …) from
    /// the JSON object given with it.
    pub fn workspace_with(&self, name: &str, apps: &[(&str, &str, serde_json::Value)]) -> PathBuf {
        let dir = self.fixtures();
        let apps: Vec<_> = apps
            .iter()
            .enumerate()
            .map(|(i, (id, page, extra))| {
                let mut app = serde_json::json!({
                    "appId": id, "url": page, "title": id,
                    "bounds": {"x": 20 + 300 * (i as i32 % 4), "y": 20 + 250 * (i as i32 / 4),
                               "width": 280, "height": 230}
                });
                if let (Some(app), Some(extra)) = (app.as_object_mut(), extra.as_object()) {
                    app.extend(extra.clone());
                }
                app
            })
            .collect();
        let file = dir.join(format!("{name}.json"));
        fs::write(
            &file,
            serde_json::json!({"name": name, "apps": apps}).to_string(),
        )
        .expect("write");
        file
    }
}

/// `text` with the characters that are special in a regular expression escaped.
fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("read fixtures") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// `weft ps --json` output.
#[derive(Debug, Deserialize)]
pub struct Ps {
    /// The app instances.
    pub apps: Vec<AppInfo>,
    /// The metrics endpoint, unless it is off.
    pub metrics_url: Option<String>,
}

/// Parses OpenMetrics text with the format's reference parser (the Python
/// `prometheus_client`, Debian's `python3-prometheus-client`), panicking with its error
/// if the text does not conform. Returns every sample as (name, labels, value).
pub fn parse_openmetrics(text: &str) -> Vec<(String, HashMap<String, String>, f64)> {
    const SCRIPT: &str = "
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
";
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running /usr/bin/python3 (install python3-prometheus-client)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("writing to the parser");
    let out = child.wait_with_output().expect("the parser");
    assert!(
        out.status.success(),
        "not valid OpenMetrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the parser's JSON")
}

/// GETs `url` from a server on this machine: its status and body (any status, not only
/// success).
pub fn http_get(url: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut response = agent
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_string()
        .unwrap_or_else(|e| panic!("reading the body of {url}: {e}"));
    (status, body)
}

/// A running `weft launch --no-panel` (or with the panel) and its display.
pub struct Shell {
    child: Option<Child>,
    /// The test's directories.
    pub env: TestEnv,
    /// The shell's display.
    pub display: Display,
    log: PathBuf,
    _serial: MutexGuard<'static, ()>,
}

impl Shell {
    /// Launches `workspace` headless (no panel) in `env` on a fresh display.
    pub fn launch(env: TestEnv, workspace: &Path) -> Shell {
        Shell::start(
            env,
            &[
                "launch",
                workspace.to_str().expect("utf-8 path"),
                "--no-panel",
            ],
        )
    }

    /// Starts `weft ARGS` in `env` on a fresh display.
    pub fn start(env: TestEnv, args: &[&str]) -> Shell {
        let serial = webview_lock();
        Shell::start_locked(env, Display::start(), args, serial)
    }

    /// Starts `weft ARGS` in `env` on a fresh display with a window manager, as on a
    /// desktop.
    pub fn start_on_desktop(env: TestEnv, args: &[&str]) -> Shell {
        let serial = webview_lock();
        Shell::start_locked(env, Display::start().with_window_manager(), args, serial)
    }

    /// Starts `weft ARGS` in `env` on the display `display` makes (after taking the
    /// webview lock), such as one of several monitors with a window manager.
    pub fn start_on(env: TestEnv, display: impl FnOnce() -> Display, args: &[&str]) -> Shell {
        let serial = webview_lock();
        Shell::start_locked(env, display(), args, serial)
    }

    fn start_locked(
        env: TestEnv,
        display: Display,
        args: &[&str],
        serial: MutexGuard<'static, ()>,
    ) -> Shell {
        let log = env.path("shell.log");
        let out = fs::File::create(&log).expect("log file");
        let child = env
            .weft(Some(&display))
            .args(args)
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("starting weft");
        Shell {
            child: Some(child),
            env,
            display,
            log,
            _serial: serial,
        }
    }

    /// Runs `xdotool ARGS` on the shell's display; its output.
    pub fn xdotool(&self, args: &[&str]) -> String {
        let out = Command::new("xdotool")
            .args(args)
            .env("DISPLAY", self.display.name())
            .output()
            .expect("running xdotool (Debian package xdotool)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The window titled exactly `title`: its id once it is mapped.
    pub fn window_of(&self, title: &str) -> String {
        wait_for(&format!("the window {title:?}"), SLOW, || {
            let pattern = format!("^{}$", regex_escape(title));
            let found = self.xdotool(&["search", "--onlyvisible", "--name", &pattern]);
            found.lines().next().map(str::to_owned)
        })
    }

    /// `(x, y, width, height)` of window `id`.
    pub fn geometry(&self, id: &str) -> (i32, i32, u32, u32) {
        let text = self.xdotool(&["getwindowgeometry", "--shell", id]);
        let field = |name: &str| -> i64 {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name} in {text:?}"))
                .parse()
                .unwrap()
        };
        (
            field("X") as i32,
            field("Y") as i32,
            field("WIDTH") as u32,
            field("HEIGHT") as u32,
        )
    }

    /// The shell's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// `weft ps --json`, or `None` while the shell is not answering.
    pub fn ps(&self) -> Option<Ps> {
        let out = self.env.run_weft(&["ps", "--json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).expect("ps --json output is JSON"))
    }

    /// Waits until `count` apps are listed and all of them are ready.
    pub fn wait_ready(&mut self, count: usize) -> Vec<AppInfo> {
        let what = format!("{count} apps to be ready");
        wait_for(&what, SLOW, || {
            self.assert_alive();
            let ps = self.ps()?;
            let ready = ps
                .apps
                .iter()
                .filter(|a| a.state == weft_proto::frame::AppState::Ready);
            (ps.apps.len() == count && ready.count() == count).then_some(ps.apps)
        })
    }

    /// Panics (with the log) if the shell has exited.
    pub fn assert_alive(&mut self) {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().expect("try_wait"))
        {
            panic!(
                "the shell exited early ({status}); log:\n{}",
                self.log_text()
            );
        }
    }

    /// A bus client with the command-line token, once the shell listens: polls until
    /// it does (panicking if the shell exits, or after [`SLOW`]). For tests that must
    /// subscribe before the apps are ready.
    pub async fn client_when_listening(&mut self) -> Client {
        let endpoint = self.env.endpoint();
        let deadline = std::time::Instant::now() + SLOW;
        loop {
            self.assert_alive();
            if let Ok(c) = Client::connect_cli(&endpoint).await {
                return c;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the shell did not listen within {SLOW:?}"
            );
            // The poll's interval, not synchronisation: the loop checks the condition.
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    /// A bus client with the command-line token.
    pub async fn client(&self) -> Client {
        Client::connect_cli(&self.env.endpoint())
            .await
            .expect("connecting to the shell")
    }

    /// What the processes of `app_id` have written to its log so far.
    pub fn app_log(&self, app_id: &str) -> String {
        fs::read_to_string(self.env.data_dir().join(format!("logs/apps/{app_id}.log")))
            .unwrap_or_default()
    }

    /// The shell's log so far.
    pub fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// Waits for the shell to exit by itself and returns its status.
    pub fn wait_exit(&mut self, deadline: Duration) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("running");
        wait_for("the shell to exit", deadline, || {
            child.try_wait().expect("try_wait")
        })
    }

    /// Gives the test's directories back, to start another shell on them; the shell
    /// and its apps are killed if they still run.
    pub fn into_env(mut self) -> TestEnv {
        std::mem::take(&mut self.env)
    }

    /// Ends the shell's display, as the desktop session's end does.
    pub fn end_display(&mut self) {
        self.display.end();
    }

    /// Sends the shell `signal`.
    pub fn signal(&self, signal: i32) {
        let child = self.child.as_ref().expect("running");
        // SAFETY: kill only sends a signal, to the shell's own pid.
        unsafe { libc::kill(child.id() as i32, signal) };
    }

    /// Closes the window `id` through the window manager, as its close button does.
    pub fn close_window(&self, id: &str) {
        let out = Command::new("wmctrl")
            .args(["-i", "-c", id])
            .env("DISPLAY", self.display.name())
            .output()
            .expect("running wmctrl (Debian package wmctrl)");
        assert!(out.status.success(), "wmctrl -c {id}: {out:?}");
    }

    /// Kills the shell with SIGKILL, leaving its apps to fend for themselves.
    pub fn kill_9(&mut self) {
        let child = self.child.as_mut().expect("running");
        child.kill().expect("kill -9");
        child.wait().expect("reaping the shell");
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let name = std::thread::current()
                .name()
                .unwrap_or("unnamed")
                .replace("::", "-");
            let dir = failure_dir();
            let _ = fs::create_dir_all(&dir);
            let shot = dir.join(format!("{name}.png"));
            if self.display.screenshot(&shot) {
                eprintln!("screenshot of the failed test: {}", shot.display());
            }
            let _ = fs::copy(&self.log, dir.join(format!("{name}.log")));
            eprintln!("shell log:\n{}", self.log_text());
            if let Ok(entries) = fs::read_dir(self.env.data_dir().join("logs/apps")) {
                for entry in entries.flatten() {
                    let app = entry.file_name().to_string_lossy().into_owned();
                    let _ = fs::copy(entry.path(), dir.join(format!("{name}.{app}")));
                    let text = fs::read_to_string(entry.path()).unwrap_or_default();
                    eprintln!("app log {app}:\n{text}");
                }
            }
        }
        if let Some(mut child) = self.child.take() {
            let tree = process_tree::descendants(child.id());
            // SAFETY: kill only sends signals; the group is the shell's own (it was
            // started with process_group(0)), and the pids were just read from /proc.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
                for pid in &tree {
                    libc::kill(*pid as i32, libc::SIGKILL);
                }
            }
            let _ = child.wait();
            let _ = wait_gone(&tree, Duration::from_secs(10));
        }
    }
}

/// Waits until none of `pids` is alive (zombies count as gone); returns the survivors
/// at the deadline.
pub fn wait_gone(pids: &[u32], deadline: Duration) -> Vec<u32> {
    let end = Instant::now() + deadline;
    loop {
        let alive: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|p| process_tree::is_alive(*p))
            .collect();
        if alive.is_empty() || Instant::now() > end {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
