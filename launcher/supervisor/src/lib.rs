//! The supervisor: starts each app instance as its own `weft-app` process, tracks its
//! state, and stops it.
//!
//! Every instance gets a fresh secret token, granted to the broker before the process
//! starts and handed to the process through an inherited pipe (see
//! [`weft_proto::launch`]), never through its environment. Processes are spawned by one
//! long-lived thread ([`spawner`]) with `PR_SET_PDEATHSIG`, so they die with the shell
//! even when it is killed outright.
//!
//! An app whose process ends without being asked to is started again according to its
//! workspace restart policy, with the same identity and a fresh token, unless its
//! crash-loop breaker has tripped ([`restart`]). Otherwise the supervisor is told what
//! to launch and stop by the shell, and learns page state from the broker's events.
//!
//! What each app's processes print goes to its own rotating log file ([`app_log`]).

pub mod app_log;
pub mod cgroup;
pub mod log_file;
mod proc_stats;
mod restart;
mod spawner;

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use weft_broker::{BrokerHandle, BusAccess};
use weft_proto::{
    Identity, Token,
    frame::{AppInfo, AppState, HostCommand, PageStatus, WindowAction},
    launch::{LaunchSpec, StartPage, WindowBounds},
};
use weft_workspace::{AppUrl, Limits, Workspace};

pub use crate::app_log::AppLogSettings;
use crate::{
    app_log::AppLogs,
    cgroup::{AppCgroup, CgroupLimits, CgroupRoot},
    restart::{CrashLoop, Decision},
    spawner::{Exit, ProcessHandle, Spawner},
};

/// How the supervisor starts app hosts.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// The `weft-app` executable.
    pub app_bin: PathBuf,
    /// The broker's socket, passed to every app host.
    pub socket: PathBuf,
    /// The shell's data directory; each app's webview data goes under `webdata/<appId>`.
    pub data_dir: PathBuf,
    /// How long a stopping app may take before it is killed.
    pub stop_grace: Duration,
    /// Whether someone can be asked what to do about an app that is not responding (the
    /// control panel runs). If not, once its hang grace is over it is killed and its
    /// restart policy decides.
    pub ask_user: bool,
    /// Where each app's output is kept; `None` leaves it on the shell's stderr.
    pub app_logs: Option<AppLogSettings>,
    /// Whether to enforce limits with control groups where this machine allows it
    /// (otherwise, and where it does not, the PSS watchdog enforces memory limits).
    pub use_cgroups: bool,
    /// Prepares what a workspace needs before any of its apps starts (the shell opens
    /// its durable streams, so that the first publish is stored); an error refuses the
    /// launch with that message.
    pub before_launch: Option<Arc<dyn PrepareLaunch>>,
    /// The desktop owner's policy: the bus patterns of apps that declare none.
    pub policy: Arc<weft_permissions::Policy>,
    /// Told of every app process started and ended (the shell audits them).
    pub lifecycle: Option<Arc<dyn LifecycleObserver>>,
}

/// See [`SupervisorConfig::lifecycle`].
pub trait LifecycleObserver: Send + Sync + std::fmt::Debug {
    /// An app host process started (`restarts` is how many times before).
    fn started(&self, app: &AppInfo, pid: u32);
    /// An app host process ended; `crashed` if it failed without being asked to stop,
    /// and `app.state` says what became of the instance.
    fn exited(&self, app: &AppInfo, crashed: bool);
}

/// See [`SupervisorConfig::before_launch`].
pub trait PrepareLaunch: Send + Sync + std::fmt::Debug {
    /// Prepares what `workspace` needs; an error refuses its launch.
    fn prepare(&self, workspace: &Workspace) -> Result<(), String>;
}

/// How often the watchdog looks at the apps.
const WATCH_EVERY: Duration = Duration::from_millis(250);
/// CPU is sampled every this many watchdog rounds (1 s).
const SAMPLE_CPU_EVERY: u64 = 4;
/// Memory (PSS, dearer to read) every this many rounds (5 s).
const SAMPLE_MEMORY_EVERY: u64 = 20;

/// How long an app host may stay silent on the bus (it reports its page's state every
/// second) before it is considered not responding.
pub const HEARTBEAT_LIMIT: Duration = Duration::from_secs(3);

/// Something the supervisor could not do.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// Starting an app host failed.
    #[error("cannot start {app_id} ({bin}): {source}")]
    Spawn {
        /// The app.
        app_id: String,
        /// The executable tried.
        bin: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// No instance has that id.
    #[error("no app instance {0:?}")]
    UnknownInstance(String),
    /// No running instance has that id, nor any running app that appId.
    #[error("no running app or instance {0:?}")]
    NothingRunning(String),
    /// The instance's host is not connected to the bus (starting, or gone).
    #[error("app instance {0:?} is not connected")]
    NotConnected(String),
    /// The supervisor is shutting down and launches nothing more.
    #[error("the shell is shutting down")]
    ShuttingDown,
    /// What the workspace needs could not be prepared; nothing was started.
    #[error("cannot launch {workspace}: {problem}")]
    NotPrepared {
        /// The workspace's name.
        workspace: String,
        /// What went wrong.
        problem: String,
    },
}

/// The page an instance starts on, and how it is shown in `ps`: the page a layout
/// snapshot saved when it is on one of the app's origins (a page Weft serves, for an
/// app of local files), else the app's start page.
fn start_page(app: &weft_workspace::AppSpec, origins: &[String]) -> (StartPage, String) {
    let saved = app.restored.page.as_deref();
    match &app.url {
        AppUrl::Remote(start) => {
            let url = saved
                .filter(|page| {
                    weft_permissions::policy::origin_of(page)
                        .is_some_and(|origin| origins.contains(&origin))
                })
                .unwrap_or(start);
            (
                StartPage::Remote {
                    url: url.to_owned(),
                },
                url.to_owned(),
            )
        }
        AppUrl::Local { root, path } => {
            let page = saved
                .and_then(|page| page.strip_prefix(LOCAL_PAGE_PREFIX))
                .filter(|rest| !rest.is_empty())
                .unwrap_or(path);
            (
                StartPage::Local {
                    root: root.clone(),
                    path: page.to_owned(),
                },
                format!("{}/{page}", root.display()),
            )
        }
    }
}

/// How pages Weft serves from an app's folder begin.
const LOCAL_PAGE_PREFIX: &str = "weft://localhost/";

/// A handle to the supervisor; cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

struct Inner {
    config: SupervisorConfig,
    broker: BrokerHandle,
    spawner: Spawner,
    logs: Option<AppLogs>,
    cgroups: Option<CgroupRoot>,
    state: Mutex<State>,
    on_change: Mutex<Option<Arc<dyn Fn() + Send + Sync>>>,
}

#[derive(Default)]
struct State {
    instances: Vec<Instance>,
    shutting_down: bool,
    /// Groups of ended runs that still had a process in them; removed once empty.
    stale_cgroups: Vec<AppCgroup>,
}

impl State {
    fn instance(&self, instance_id: &str) -> Result<&Instance, SupervisorError> {
        self.instances
            .iter()
            .find(|i| i.info.instance_id == instance_id)
            .ok_or_else(|| SupervisorError::UnknownInstance(instance_id.to_owned()))
    }

    fn instance_mut(&mut self, instance_id: &str) -> Result<&mut Instance, SupervisorError> {
        self.instances
            .iter_mut()
            .find(|i| i.info.instance_id == instance_id)
            .ok_or_else(|| SupervisorError::UnknownInstance(instance_id.to_owned()))
    }
}

struct Instance {
    info: AppInfo,
    /// How it is started (again); the token changes at each start.
    spec: LaunchSpec,
    token: Token,
    stop_requested: bool,
    process: Option<Arc<ProcessHandle>>,
    crash_loop: CrashLoop,
    /// When the page of the current run became ready.
    ready_at: Option<Instant>,
    /// When its host last reported (its heartbeat).
    last_heard: Option<Instant>,
    /// Since when it has been not responding.
    hung_since: Option<Instant>,
    /// How long it may be not responding before something is done.
    hang_grace: Duration,
    /// The user asked for a restart: the coming exit is not a crash.
    restart_requested: bool,
    /// When its current process started.
    started_at: Option<Instant>,
    /// The last CPU sample of its process tree: when, and its total in clock ticks.
    cpu_sample: Option<(Instant, u64)>,
    /// Its resource limits.
    limits: Limits,
    /// The FDC3 user channel it joins when it starts (from a restored layout).
    channel: Option<String>,
    /// What it may do on the bus, granted with each token.
    access: BusAccess,
    /// What its manifest declares (the sensitive APIs are checked by the shell).
    declared: weft_permissions::Declared,
    /// The control group of its current run, when limits are enforced that way.
    cgroup: Option<AppCgroup>,
    /// Runs started so far (names each run's control group).
    runs: u32,
    /// OOM kills in the current run's group already acted on.
    oom_kills: u64,
}

impl Supervisor {
    /// A supervisor granting tokens on `broker`.
    pub fn new(config: SupervisorConfig, broker: BrokerHandle) -> Self {
        let supervisor = Self {
            inner: Arc::new(Inner {
                logs: config.app_logs.clone().map(AppLogs::new),
                cgroups: config.use_cgroups.then(CgroupRoot::detect).flatten(),
                config,
                broker,
                spawner: Spawner::start(),
                state: Mutex::new(State::default()),
                on_change: Mutex::new(None),
            }),
        };
        let weak = Arc::downgrade(&supervisor.inner);
        std::thread::Builder::new()
            .name("weft-watchdog".into())
            .spawn(move || {
                // A periodic check, for as long as the supervisor exists.
                let mut round = 0u64;
                while let Some(inner) = weak.upgrade() {
                    let supervisor = Supervisor { inner };
                    supervisor.watch(Instant::now());
                    if round.is_multiple_of(SAMPLE_CPU_EVERY) {
                        supervisor.sample(round.is_multiple_of(SAMPLE_MEMORY_EVERY));
                    }
                    round += 1;
                    drop(supervisor);
                    std::thread::sleep(WATCH_EVERY);
                }
            })
            .expect("cannot start the watchdog thread");
        supervisor
    }

    /// Marks silent hosts not responding, and acts on apps not responding for longer
    /// than their grace when nobody can be asked.
    fn watch(&self, now: Instant) {
        let mut changed = false;
        let mut to_kill = Vec::new();
        {
            let mut state = lock(&self.inner.state);
            if state.shutting_down {
                return;
            }
            for i in &mut state.instances {
                if i.stop_requested || i.process.is_none() {
                    continue;
                }
                let silent = i
                    .last_heard
                    .is_some_and(|heard| now.duration_since(heard) > HEARTBEAT_LIMIT);
                if silent && i.info.state != AppState::NotResponding {
                    tracing::warn!(
                        instance_id = i.info.instance_id,
                        "no heartbeat from the app host for {HEARTBEAT_LIMIT:?}"
                    );
                    i.info.state = AppState::NotResponding;
                    i.hung_since.get_or_insert(now);
                    changed = true;
                }
                let overdue = i
                    .hung_since
                    .is_some_and(|since| now.duration_since(since) > i.hang_grace);
                if overdue && !self.inner.config.ask_user && i.info.state == AppState::NotResponding
                {
                    tracing::error!(
                        app_id = i.info.app_id,
                        instance_id = i.info.instance_id,
                        "not responding for more than {:?}; killing it (its restart policy decides what next)",
                        i.hang_grace
                    );
                    i.hung_since = None;
                    to_kill.extend(i.process.clone());
                }
            }
        }
        for process in to_kill {
            process.signal(libc::SIGKILL);
        }
        if changed {
            self.changed();
        }
    }

    /// Samples the CPU (and, with `memory`, the memory) of every running app's process
    /// tree.
    fn sample(&self, memory: bool) {
        self.enforce_cgroup_limits();
        self.remove_stale_cgroups();
        // Memory limits of apps in a control group are the kernel's to enforce.
        let running: Vec<(String, u32, Option<u64>)> = lock(&self.inner.state)
            .instances
            .iter()
            .filter(|i| i.process.is_some())
            .filter_map(|i| {
                let watched = i.limits.memory_mb.filter(|_| i.cgroup.is_none());
                Some((i.info.instance_id.clone(), i.info.pid?, watched))
            })
            .collect();
        if running.is_empty() {
            return;
        }
        let table = proc_stats::ProcessTable::read();
        let now = Instant::now();
        let per_second = proc_stats::ticks_per_second() as f64;
        let mut over_limit = Vec::new();
        for (id, pid, limit_mb) in running {
            let tree = table.tree(pid);
            let ticks = table.cpu_ticks(&tree);
            // An app with a memory limit is measured every time: the limit is enforced
            // by this watchdog.
            let pss = (memory || limit_mb.is_some()).then(|| proc_stats::pss_kb(&tree));
            let mut state = lock(&self.inner.state);
            let Some(i) = state
                .instances
                .iter_mut()
                .find(|i| i.info.instance_id == id && i.info.pid == Some(pid))
            else {
                continue;
            };
            if let Some((at, before)) = i.cpu_sample {
                let secs = now.duration_since(at).as_secs_f64();
                if secs > 0.0 {
                    let used = ticks.saturating_sub(before) as f64 / per_second;
                    i.info.cpu_percent = Some(((used / secs) * 1000.0).round() as f32 / 10.0);
                }
            }
            i.cpu_sample = Some((now, ticks));
            if let Some(pss) = pss {
                i.info.memory_pss_kb = Some(pss);
                if let Some(limit) = limit_mb
                    && pss / 1024 > limit
                    && !i.stop_requested
                {
                    tracing::error!(
                        app_id = i.info.app_id,
                        instance_id = id,
                        "exceeded its memory limit ({} MB > {limit} MB); killing it \
                         (its restart policy decides what next)",
                        pss / 1024
                    );
                    over_limit.extend(i.process.clone());
                }
            }
        }
        for process in over_limit {
            process.signal(libc::SIGKILL);
        }
    }

    /// The FDC3 user channel an instance joins when it starts (from a restored layout).
    pub fn restored_channel(&self, instance_id: &str) -> Option<String> {
        let state = lock(&self.inner.state);
        state.instance(instance_id).ok()?.channel.clone()
    }

    /// Opens the web inspector on an app's page.
    pub fn open_inspector(&self, instance_id: &str) -> Result<(), SupervisorError> {
        self.command(instance_id, HostCommand::OpenInspector)
    }

    /// Asks an instance's host to report it for the layout snapshot `request`.
    pub fn ask_to_save(&self, instance_id: &str, request: u64) -> Result<(), SupervisorError> {
        self.command(instance_id, HostCommand::Save { request })
    }

    /// Sends `command` to an instance's host.
    fn command(&self, instance_id: &str, command: HostCommand) -> Result<(), SupervisorError> {
        let identity = {
            let state = lock(&self.inner.state);
            let inst = state.instance(instance_id)?;
            inst.spec.identity.clone()
        };
        if self.inner.broker.command(&identity, command) {
            Ok(())
        } else {
            Err(SupervisorError::NotConnected(instance_id.to_owned()))
        }
    }

    /// Does `action` to the windows of `target` — one instance (by instanceId) or every
    /// running instance of an app (by appId) — or of every running app when `None`.
    /// Returns the instances told; an instance whose host is not connected yet is
    /// skipped (and named in the error when it was the only one).
    pub fn window(
        &self,
        target: Option<&str>,
        action: WindowAction,
    ) -> Result<Vec<String>, SupervisorError> {
        let chosen: Vec<(String, Identity)> = {
            let state = lock(&self.inner.state);
            state
                .instances
                .iter()
                .filter(|i| !i.info.state.is_final())
                .filter(|i| match target {
                    None => true,
                    Some(t) => i.info.instance_id == t || i.info.app_id == t,
                })
                .map(|i| (i.info.instance_id.clone(), i.spec.identity.clone()))
                .collect()
        };
        if chosen.is_empty() {
            return match target {
                Some(t) => Err(SupervisorError::NothingRunning(t.to_owned())),
                None => Ok(vec![]),
            };
        }
        let mut told = Vec::new();
        let mut missed = None;
        for (instance_id, identity) in chosen {
            if self
                .inner
                .broker
                .command(&identity, HostCommand::Window(action))
            {
                told.push(instance_id);
            } else {
                missed = Some(instance_id);
            }
        }
        match (told.is_empty(), missed) {
            (true, Some(instance_id)) => Err(SupervisorError::NotConnected(instance_id)),
            _ => Ok(told),
        }
    }

    /// The user chose to keep waiting for an app that is not responding: its grace
    /// starts again.
    pub fn keep_waiting(&self, instance_id: &str) {
        self.update(instance_id, |i| {
            if i.hung_since.is_some() {
                i.hung_since = Some(Instant::now());
            }
        });
    }

    /// Restarts an app at the user's request: stops its process (killing it if it does
    /// not stop in time) and starts it again at once. Not counted as a crash.
    pub fn restart_app(&self, instance_id: &str) -> Result<(), SupervisorError> {
        let process = {
            let mut state = lock(&self.inner.state);
            let inst = state.instance_mut(instance_id)?;
            if inst.info.state.is_final() || inst.stop_requested {
                return Ok(());
            }
            inst.restart_requested = true;
            inst.process.clone()
        };
        tracing::info!(instance_id, "restarting at the user's request");
        if let Some(process) = process {
            process.signal(libc::SIGTERM);
            self.kill_after_grace(instance_id, process);
        }
        Ok(())
    }

    /// Calls `f` (from any thread) whenever an instance's state changes.
    pub fn set_on_change(&self, f: Arc<dyn Fn() + Send + Sync>) {
        *lock(&self.inner.on_change) = Some(f);
    }

    /// Starts every app of `workspace`. If any fails to start, the ones already started
    /// are stopped again and the error returned: a workspace starts whole or not at all.
    pub fn launch(&self, workspace: &Workspace) -> Result<Vec<Identity>, SupervisorError> {
        if lock(&self.inner.state).shutting_down {
            return Err(SupervisorError::ShuttingDown);
        }
        if let Some(prepare) = &self.inner.config.before_launch {
            prepare
                .prepare(workspace)
                .map_err(|problem| SupervisorError::NotPrepared {
                    workspace: workspace.name.clone(),
                    problem,
                })?;
        }
        let mut started: Vec<Identity> = Vec::new();
        for app in &workspace.apps {
            let identity = Identity::new_instance(&app.app_id);
            let origins = self
                .inner
                .config
                .policy
                .navigable_origins(app.url.remote(), &app.permissions);
            let (start, url) = start_page(app, &origins);
            let token = Token::random();
            let spec = LaunchSpec {
                identity: identity.clone(),
                token: token.to_hex(),
                socket: self.inner.config.socket.clone(),
                start,
                title: app.title.clone(),
                bounds: app.bounds.map(|b| WindowBounds {
                    x: b.x,
                    y: b.y,
                    width: b.width,
                    height: b.height,
                }),
                web_data_dir: self.inner.config.data_dir.join("webdata").join(&app.app_id),
                origins,
                new_windows_in_browser: self.inner.config.policy.new_windows
                    == weft_permissions::policy::NewWindows::Browser,
                placement: app.restored.window.clone(),
                app_state: app.restored.app_state.clone(),
            };
            let info = AppInfo {
                app_id: app.app_id.clone(),
                instance_id: identity.instance_id.clone(),
                title: app.title.clone(),
                url,
                pid: None,
                state: AppState::Starting,
                exit: None,
                restarts: 0,
                bounds: None,
                uptime_secs: None,
                cpu_percent: None,
                memory_pss_kb: None,
                heartbeat_age_ms: None,
                memory_limit_mb: None,
                limits_enforced_by: None,
            };
            if app.limits.cpu_percent.is_some()
                && !self
                    .inner
                    .cgroups
                    .as_ref()
                    .is_some_and(CgroupRoot::cpu_enabled)
            {
                tracing::warn!(
                    app_id = app.app_id,
                    "limits.cpuPercent is not enforced: it needs a control group with the \
                     cpu controller this shell may manage, which this machine does not offer"
                );
            }
            lock(&self.inner.state).instances.push(Instance {
                info,
                spec,
                token,
                stop_requested: false,
                process: None,
                crash_loop: CrashLoop::new(app.restart),
                ready_at: None,
                last_heard: None,
                hung_since: None,
                hang_grace: app.restart.hang_grace,
                restart_requested: false,
                started_at: None,
                cpu_sample: None,
                limits: app.limits,
                channel: app.restored.channel.clone(),
                access: {
                    let (publish, subscribe) =
                        self.inner.config.policy.bus_access(&app.permissions);
                    BusAccess { publish, subscribe }
                },
                declared: app.permissions.clone(),
                cgroup: None,
                runs: 0,
                oom_kills: 0,
            });
            if let Err(e) = self.start_process(&identity.instance_id) {
                lock(&self.inner.state)
                    .instances
                    .retain(|i| i.info.instance_id != identity.instance_id);
                for id in &started {
                    let _ = self.stop(&id.instance_id);
                }
                return Err(e);
            }
            started.push(identity);
        }
        Ok(started)
    }

    /// Starts the process of instance `instance_id` with a fresh token.
    fn start_process(&self, instance_id: &str) -> Result<(), SupervisorError> {
        let token = Token::random();
        let (spec, app_id) = {
            let mut state = lock(&self.inner.state);
            let inst = state.instance_mut(instance_id)?;
            inst.token = token.clone();
            inst.spec.token = token.to_hex();
            inst.ready_at = None;
            inst.last_heard = None;
            inst.hung_since = None;
            inst.restart_requested = false;
            (inst.spec.clone(), inst.info.app_id.clone())
        };
        let access = {
            let state = lock(&self.inner.state);
            state.instance(instance_id)?.access.clone()
        };
        self.inner
            .broker
            .grant_app_with(token.clone(), spec.identity.clone(), access);
        let weak = Arc::downgrade(&self.inner);
        let exit_id = instance_id.to_owned();
        let (output, capture) = match self.output_pipe(&app_id) {
            Some((reader, writer)) => (Some(writer), Some(reader)),
            None => (None, None),
        };
        let cgroup_procs = self.new_cgroup(instance_id, &app_id);
        let spawned = self.inner.spawner.spawn(
            self.inner.config.app_bin.clone(),
            spec.to_json(),
            output,
            cgroup_procs,
            Box::new(move |exit| {
                if let Some(inner) = weak.upgrade() {
                    Supervisor { inner }.exited(&exit_id, exit);
                }
            }),
        );
        match spawned {
            Ok(process) => {
                let pid = process.pid();
                if let (Some(logs), Some(reader)) = (&self.inner.logs, capture) {
                    logs.capture(&app_id, instance_id, pid, reader);
                }
                self.update(instance_id, |i| {
                    i.info.pid = Some(pid);
                    i.process = Some(Arc::new(process));
                    i.started_at = Some(Instant::now());
                    i.cpu_sample = None;
                    i.info.cpu_percent = None;
                    i.info.memory_pss_kb = None;
                });
                tracing::info!(app_id, instance_id, pid, "started app");
                if let (Some(observer), Some(info)) =
                    (&self.inner.config.lifecycle, self.info(instance_id))
                {
                    observer.started(&info, pid);
                }
                Ok(())
            }
            Err(source) => {
                self.inner.broker.revoke(&token);
                Err(SupervisorError::Spawn {
                    app_id,
                    bin: self.inner.config.app_bin.clone(),
                    source,
                })
            }
        }
    }

    /// Puts the next run of `instance_id` in a control group of its own with its
    /// limits, when it has limits and groups are available; returns the files its
    /// process writes itself into. Without one, the PSS watchdog enforces its memory
    /// limit.
    fn new_cgroup(&self, instance_id: &str, app_id: &str) -> Vec<std::ffi::CString> {
        let Some(root) = &self.inner.cgroups else {
            return Vec::new();
        };
        let mut state = lock(&self.inner.state);
        let Ok(inst) = state.instance_mut(instance_id) else {
            return Vec::new();
        };
        let limits = CgroupLimits {
            memory_bytes: inst.limits.memory_mb.map(|mb| mb * 1024 * 1024),
            cpu_percent: inst.limits.cpu_percent,
        };
        if limits == CgroupLimits::default() {
            return Vec::new();
        }
        inst.runs += 1;
        inst.oom_kills = 0;
        let old = inst.cgroup.take();
        let name = format!("{instance_id}.{}", inst.runs);
        let created = root.create(&name, limits);
        let procs = match created {
            Ok(group) => {
                let procs = group.procs_files();
                inst.cgroup = Some(group);
                procs
            }
            Err(e) => {
                tracing::error!(
                    app_id,
                    instance_id,
                    "cannot make its control group ({e}); the PSS watchdog enforces its \
                     memory limit this run"
                );
                Vec::new()
            }
        };
        state.stale_cgroups.extend(old);
        procs
    }

    /// Empties and removes the groups of ended runs; those still busy are kept for the
    /// next round.
    fn remove_stale_cgroups(&self) {
        let stale = std::mem::take(&mut lock(&self.inner.state).stale_cgroups);
        let busy: Vec<AppCgroup> = stale
            .into_iter()
            .filter(|group| {
                group.kill_all();
                group.remove().is_err()
            })
            .collect();
        lock(&self.inner.state).stale_cgroups.extend(busy);
    }

    /// Stops every app whose control group saw the kernel's OOM killer act: the rest
    /// of the app goes too, and its restart policy decides.
    fn enforce_cgroup_limits(&self) {
        let mut state = lock(&self.inner.state);
        for i in &mut state.instances {
            let Some(group) = &i.cgroup else { continue };
            if i.process.is_none() || i.stop_requested {
                continue;
            }
            let kills = group.oom_kills();
            if kills > i.oom_kills {
                i.oom_kills = kills;
                tracing::error!(
                    app_id = i.info.app_id,
                    instance_id = i.info.instance_id,
                    "exceeded its memory limit ({} MB): the kernel stopped a process in its \
                     control group; stopping the app (its restart policy decides what next)",
                    i.limits.memory_mb.unwrap_or_default()
                );
                group.kill_all();
            }
        }
    }

    /// A pipe for an app's output, when app logs are kept and a pipe can be had (if
    /// not, the app writes to the shell's stderr, which is said once per app start).
    fn output_pipe(&self, app_id: &str) -> Option<(std::io::PipeReader, std::io::PipeWriter)> {
        self.inner.logs.as_ref()?;
        match std::io::pipe() {
            Ok(pipe) => Some(pipe),
            Err(e) => {
                tracing::warn!(app_id, "no log file for this run: cannot make a pipe: {e}");
                None
            }
        }
    }

    /// Records a page state reported by an app host.
    pub fn page_status(&self, identity: &Identity, status: PageStatus) {
        self.update(&identity.instance_id, |i| {
            let running = !i.stop_requested
                && !i.info.state.is_final()
                && i.info.state != AppState::Restarting;
            if running {
                let now = Instant::now();
                i.last_heard = Some(now);
                i.info.state = match status {
                    PageStatus::Ready => AppState::Ready,
                    PageStatus::Loading => AppState::Starting,
                    PageStatus::NotResponding => AppState::NotResponding,
                };
                if status == PageStatus::Ready && i.ready_at.is_none() {
                    i.ready_at = Some(now);
                }
                if status == PageStatus::NotResponding {
                    i.hung_since.get_or_insert(now);
                } else {
                    i.hung_since = None;
                }
            }
        });
    }

    /// Records where an app host's window is now: a restart puts it back there.
    pub fn window_moved(&self, identity: &Identity, bounds: WindowBounds) {
        self.update(&identity.instance_id, |i| {
            i.spec.bounds = Some(bounds);
        });
    }

    /// Records that an app host's bus connection ended.
    pub fn disconnected(&self, identity: &Identity) {
        self.update(&identity.instance_id, |i| {
            if i.info.state == AppState::Ready {
                i.info.state = AppState::Starting;
            }
        });
    }

    /// Asks one instance to stop (SIGTERM); it is killed if it has not exited within the
    /// grace period.
    pub fn stop(&self, instance_id: &str) -> Result<(), SupervisorError> {
        let process = {
            let mut state = lock(&self.inner.state);
            let inst = state.instance_mut(instance_id)?;
            if inst.info.state.is_final() {
                return Ok(());
            }
            inst.stop_requested = true;
            if inst.info.state == AppState::Restarting {
                // No process to stop: the pending restart sees the request and gives up.
                inst.info.state = AppState::Stopped;
                drop(state);
                self.changed();
                return Ok(());
            }
            inst.info.state = AppState::Stopping;
            inst.process.clone()
        };
        self.changed();
        if let Some(process) = process {
            process.signal(libc::SIGTERM);
            self.kill_after_grace(instance_id, process);
        }
        Ok(())
    }

    /// Kills `process` if it is still the instance's process once the stop grace is
    /// over.
    fn kill_after_grace(&self, instance_id: &str, process: Arc<ProcessHandle>) {
        let weak = Arc::downgrade(&self.inner);
        let id = instance_id.to_owned();
        let grace = self.inner.config.stop_grace;
        std::thread::spawn(move || {
            let still_running = || {
                weak.upgrade().is_some_and(|inner| {
                    lock(&inner.state).instances.iter().any(|i| {
                        i.info.instance_id == id
                            && i.process.as_ref().is_some_and(|p| Arc::ptr_eq(p, &process))
                    })
                })
            };
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if !still_running() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if still_running() {
                tracing::warn!(instance_id = id, "app did not stop in time; killing it");
                process.signal(libc::SIGKILL);
            }
        });
    }

    /// Stops every app instance gracefully (killing those that outlive their grace)
    /// and returns once all have ended; new launches stay possible.
    pub fn stop_all_apps(&self) {
        let ids: Vec<String> = lock(&self.inner.state)
            .instances
            .iter()
            .map(|i| i.info.instance_id.clone())
            .collect();
        for id in &ids {
            let _ = self.stop(id);
        }
        wait_until(
            self.inner.config.stop_grace + Duration::from_secs(2),
            || ids.iter().all(|id| self.is_final(id)),
        );
    }

    /// Stops every instance and refuses further launches; returns once all have exited
    /// (killing those that outlive the grace period).
    pub fn stop_all(&self) {
        lock(&self.inner.state).shutting_down = true;
        self.stop_all_apps();
        {
            let mut state = lock(&self.inner.state);
            let groups: Vec<AppCgroup> = state
                .instances
                .iter_mut()
                .filter_map(|i| i.cgroup.take())
                .collect();
            state.stale_cgroups.extend(groups);
        }
        // WebKit processes may take a moment to leave after their host.
        wait_until(Duration::from_secs(3), || {
            self.remove_stale_cgroups();
            lock(&self.inner.state).stale_cgroups.is_empty()
        });
        if let Some(root) = &self.inner.cgroups {
            root.remove();
        }
    }

    /// An instance's recorded state and what its manifest declares, for permission
    /// checks of its calls.
    pub fn declared(&self, instance_id: &str) -> Option<(AppInfo, weft_permissions::Declared)> {
        let state = lock(&self.inner.state);
        let i = state.instance(instance_id).ok()?;
        Some((i.info.clone(), i.declared.clone()))
    }

    /// The recorded state of one instance, for its lifecycle observer.
    fn info(&self, instance_id: &str) -> Option<AppInfo> {
        let state = lock(&self.inner.state);
        state.instance(instance_id).ok().map(|i| i.info.clone())
    }

    /// Every instance this shell started, in launch order.
    pub fn apps(&self) -> Vec<AppInfo> {
        let now = Instant::now();
        lock(&self.inner.state)
            .instances
            .iter()
            .map(|i| {
                let mut info = i.info.clone();
                // Kept once, in the launch spec and the limits; shown from there.
                info.bounds = i.spec.bounds;
                info.memory_limit_mb = i.limits.memory_mb;
                info.limits_enforced_by =
                    limits_mechanism(&i.limits, i.cgroup.as_ref(), self.inner.cgroups.as_ref());
                let running = i.process.is_some();
                info.uptime_secs = i
                    .started_at
                    .filter(|_| running)
                    .map(|t| now.duration_since(t).as_secs());
                info.heartbeat_age_ms = i
                    .last_heard
                    .filter(|_| running)
                    .map(|t| now.duration_since(t).as_millis() as u64);
                if !running {
                    info.cpu_percent = None;
                    info.memory_pss_kb = None;
                }
                info
            })
            .collect()
    }

    fn is_final(&self, instance_id: &str) -> bool {
        lock(&self.inner.state)
            .instance(instance_id)
            .map_or(true, |i| i.info.state.is_final())
    }

    fn exited(&self, instance_id: &str, exit: Exit) {
        let mut token = None;
        let mut decision = Decision::Leave;
        let mut app_id = String::new();
        let mut window = Duration::ZERO;
        let mut ended_group = None;
        let mut crashed = false;
        let shutting_down = lock(&self.inner.state).shutting_down;
        self.update(instance_id, |i| {
            token = Some(i.token.clone());
            app_id = i.info.app_id.clone();
            window = i.crash_loop.window();
            i.info.exit = Some(exit.to_string());
            i.process = None;
            crashed = !exit.success() && !i.stop_requested && !shutting_down;
            if i.restart_requested && !i.stop_requested && !shutting_down {
                decision = Decision::Restart {
                    after: Duration::ZERO,
                };
            } else if !i.stop_requested && !shutting_down {
                decision = i
                    .crash_loop
                    .exited(!exit.success(), i.ready_at, Instant::now());
            }
            i.info.state = match decision {
                Decision::Restart { .. } => AppState::Restarting,
                Decision::GiveUp { .. } => AppState::Failed,
                Decision::Leave if i.stop_requested || exit.success() => AppState::Stopped,
                Decision::Leave => AppState::Crashed,
            };
            // A run that is over for good gives its control group up (a restart
            // replaces it instead).
            if i.info.state.is_final() {
                ended_group = i.cgroup.take();
            }
        });
        if let Some(group) = ended_group {
            lock(&self.inner.state).stale_cgroups.push(group);
            self.remove_stale_cgroups();
        }
        if let Some(token) = token {
            self.inner.broker.revoke(&token);
        }
        tracing::info!(app_id, instance_id, "app exited: {exit}");
        if let (Some(observer), Some(info)) = (&self.inner.config.lifecycle, self.info(instance_id))
        {
            observer.exited(&info, crashed);
        }
        match decision {
            Decision::Leave => {}
            Decision::GiveUp { crashes } => tracing::error!(
                app_id,
                instance_id,
                "{app_id} ended {crashes} times in a row within {:?} of starting; \
                 it is not restarted again (failed)",
                window
            ),
            Decision::Restart { after } => {
                tracing::warn!(app_id, instance_id, "restarting {app_id} in {after:?}");
                let weak = Arc::downgrade(&self.inner);
                let id = instance_id.to_owned();
                std::thread::spawn(move || {
                    // A delay, not synchronisation: the backoff between restarts.
                    std::thread::sleep(after);
                    if let Some(inner) = weak.upgrade() {
                        Supervisor { inner }.restart(&id);
                    }
                });
            }
        }
    }

    /// Starts an instance whose process ended, unless it was stopped meanwhile.
    fn restart(&self, instance_id: &str) {
        let proceed = {
            let mut state = lock(&self.inner.state);
            let shutting_down = state.shutting_down;
            match state.instance_mut(instance_id).ok() {
                Some(i)
                    if i.info.state == AppState::Restarting
                        && !i.stop_requested
                        && !shutting_down =>
                {
                    i.info.state = AppState::Starting;
                    i.info.restarts += 1;
                    true
                }
                _ => false,
            }
        };
        if !proceed {
            return;
        }
        self.changed();
        if let Err(e) = self.start_process(instance_id) {
            tracing::error!(instance_id, "cannot restart the app: {e}");
            self.update(instance_id, |i| i.info.state = AppState::Failed);
        }
    }

    fn update(&self, instance_id: &str, f: impl FnOnce(&mut Instance)) {
        {
            let mut state = lock(&self.inner.state);
            let Ok(inst) = state.instance_mut(instance_id) else {
                return;
            };
            f(inst);
        }
        self.changed();
    }

    fn changed(&self) {
        let callback = lock(&self.inner.on_change).clone();
        if let Some(f) = callback {
            f();
        }
    }
}

/// How `limits` are enforced for one app, for `weft ps` and the panel: by its control
/// group (`group`) if it has one, else memory by the PSS watchdog.
fn limits_mechanism(
    limits: &Limits,
    group: Option<&AppCgroup>,
    root: Option<&CgroupRoot>,
) -> Option<String> {
    let (memory, cpu) = match (group, root) {
        (Some(_), Some(root)) => (
            root.flavour().mechanism(),
            root.cpu_enabled().then(|| root.flavour().mechanism()),
        ),
        _ => ("pss-watchdog", None),
    };
    match (limits.memory_mb, limits.cpu_percent, cpu) {
        (None, None, _) => None,
        (Some(_), None, _) => Some(memory.into()),
        (None, Some(_), Some(cpu)) | (Some(_), Some(_), Some(cpu)) if group.is_some() => {
            Some(cpu.into())
        }
        (None, Some(_), _) => Some("cpuPercent not enforced (needs a control group)".into()),
        (Some(_), Some(_), _) => Some(format!(
            "{memory}; cpuPercent not enforced (needs a control group)"
        )),
    }
}

/// Checks `done` every 20 ms until it holds or `limit` has passed.
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(url: AppUrl, saved: Option<&str>) -> weft_workspace::AppSpec {
        weft_workspace::AppSpec {
            app_id: "a".into(),
            url,
            title: "A".into(),
            bounds: None,
            restart: Default::default(),
            limits: Default::default(),
            permissions: Default::default(),
            manifests: vec![],
            restored: weft_workspace::Restored {
                page: saved.map(str::to_owned),
                ..Default::default()
            },
        }
    }

    #[test]
    fn a_restored_page_is_used_only_on_the_apps_own_origins() {
        let remote = AppUrl::Remote("https://apps.example/a/".into());
        let origins = vec![
            "https://apps.example".to_owned(),
            "https://cdn.example".to_owned(),
        ];
        let start = |saved| start_page(&app(remote.clone(), saved), &origins).0;
        assert_eq!(
            start(Some("https://cdn.example/x?tab=2")),
            StartPage::Remote {
                url: "https://cdn.example/x?tab=2".into()
            }
        );
        for elsewhere in [
            Some("https://evil.example/"),
            Some("file:///etc/passwd"),
            None,
        ] {
            assert_eq!(
                start(elsewhere),
                StartPage::Remote {
                    url: "https://apps.example/a/".into()
                },
                "{elsewhere:?}"
            );
        }
        let local = AppUrl::Local {
            root: "/ws".into(),
            path: "a/index.html".into(),
        };
        let start = |saved| start_page(&app(local.clone(), saved), &origins).0;
        assert_eq!(
            start(Some("weft://localhost/a/other.html?x=1")),
            StartPage::Local {
                root: "/ws".into(),
                path: "a/other.html?x=1".into()
            }
        );
        for elsewhere in [
            Some("https://apps.example/"),
            Some("weft://localhost/"),
            None,
        ] {
            assert_eq!(
                start(elsewhere),
                StartPage::Local {
                    root: "/ws".into(),
                    path: "a/index.html".into()
                },
                "{elsewhere:?}"
            );
        }
    }
}
