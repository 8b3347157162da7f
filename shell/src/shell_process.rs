//! The long-running shell: owns the data directory's lock, runs the broker and the
//! supervisor, answers the command line, and shows the control panel.

use std::{
    fs::File,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail};
use tokio::sync::mpsc;
use weft_broker::{Broker, BrokerConfig, BrokerEvent, BrokerHandle};
use weft_permissions::{Api, Policy, Violation};
use weft_proto::{
    Token,
    endpoint::Endpoint,
    frame::{ControlReply, ControlRequest, WindowAction},
};
use weft_supervisor::{AppLogSettings, PrepareLaunch, Supervisor, SupervisorConfig};
use weft_workspace::{AppSpec, SignatureCheck, Workspace};

use crate::{
    app_catalogue::AppCatalogue,
    audit_trail::AuditTrail,
    clipboard::Clipboard,
    config::Config,
    consent::Prompts,
    data_versions, demo, desktop_session,
    fdc3_agent::{self, AgentHandle},
    fdc3_prompts,
    gatekeeper::Gatekeeper,
    launch_request::{LaunchRequest, Loaded},
    logging,
    metrics::{self, MetricsAddr},
    notifications::NotificationCentre,
    page_services,
    panel::{self, PanelHandle},
    permission_store::PermissionStore,
    secure_storage::SecureStorage,
    shutdown::Shutdown,
    trace_export,
    tray::{self, TrayAction},
    update_service::UpdateService,
    workspace_snapshots::{self, Layouts},
};

/// What the shell should launch first.
pub enum Initial {
    /// The built-in demo.
    Demo,
    /// The last session, as it was when the shell last stopped; the demo when it
    /// cannot be restored.
    LastSession,
    /// A workspace, already read with its App Directories, and the request naming it.
    Workspace(LaunchRequest, Loaded),
    /// A layout snapshot, by name.
    Snapshot(String),
}

/// How long a stopping app may take before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How the shell runs.
pub struct ShellSettings {
    /// Whether the control panel is shown.
    pub show_panel: bool,
    /// Where the metrics endpoint listens.
    pub metrics_addr: MetricsAddr,
    /// The settings file's contents.
    pub config: Config,
}

/// Runs the shell in the foreground until it is told to stop. `lock` is the data
/// directory's lock, already held.
pub fn run(
    data_dir: &Path,
    endpoint: &Endpoint,
    lock: File,
    initial: Initial,
    settings: ShellSettings,
) -> anyhow::Result<()> {
    let prepared = data_versions::prepare(data_dir)?;
    let show_panel = settings.show_panel;
    let panel_settings = panel::SettingsUi {
        config: settings.config.clone(),
        rows: panel::SettingRow::of(&settings.config),
        file: settings.config.provenance.file.display().to_string(),
    };
    let audit = AuditTrail::open(
        data_dir,
        &settings.config.audit,
        settings.config.policy_in_force.audit_collector.as_ref(),
    )?;
    let policy = Arc::new(settings.config.policy_in_force.clone());
    audit.record(
        "shell.start",
        serde_json::json!({
            "pid": std::process::id(),
            "version": env!("CARGO_PKG_VERSION"),
            "policy": policy.sources,
        }),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("weft-shell")
        .enable_all()
        .build()
        .context("starting the async runtime")?;

    // Made outside the runtime: the OTLP exporter's blocking HTTP client must not be
    // created or dropped on an async worker.
    let (trace_observer, trace_export) = trace_export::observer(&settings.config)?;
    let (broker, broker_handle, events) = {
        let _guard = runtime.enter();
        let mut config = BrokerConfig::new(endpoint.socket_path());
        config.trace_observer = trace_observer;
        Broker::bind(config)?
    };
    let cli_token = Token::random();
    broker_handle.grant_cli(cli_token.clone());
    endpoint
        .write_cli_token(&cli_token)
        .with_context(|| format!("writing {}", endpoint.cli_token_path().display()))?;
    runtime.spawn(broker.run());

    let (fdc3, fdc3_inbox) = fdc3_agent::channel();
    let journal = Arc::new(crate::durable_streams::Journal::new(
        broker_handle.clone(),
        data_dir,
        settings.config.journal.key_file,
    ));
    let configured = settings
        .config
        .journal
        .streams()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    journal
        .open(&configured)
        .map_err(|e| anyhow::anyhow!("cannot open the durable streams of config.toml: {e}"))?;

    let supervisor = Supervisor::new(
        SupervisorConfig {
            app_bin: app_host_binary()?,
            socket: endpoint.socket_path(),
            data_dir: data_dir.to_owned(),
            stop_grace: STOP_GRACE,
            ask_user: show_panel,
            use_cgroups: settings.config.limits.cgroups,
            before_launch: Some(Arc::new(BeforeLaunch {
                journal: journal.clone(),
                fdc3: fdc3.clone(),
                policy: policy.clone(),
                audit: audit.clone(),
            })),
            policy: policy.clone(),
            lifecycle: Some(Arc::new(audit.clone())),
            app_logs: Some(AppLogSettings {
                dir: logging::app_logs_dir(data_dir),
                max_file_bytes: settings.config.app_logs.max_file_mb * 1024 * 1024,
                keep_files: settings.config.app_logs.keep_files,
            }),
        },
        broker_handle.clone(),
    );
    let catalogue = Arc::new(AppCatalogue::default());
    let layouts = Arc::new(Layouts::new(
        data_dir,
        supervisor.clone(),
        fdc3.clone(),
        catalogue.clone(),
    ));
    let resolver = show_panel.then(fdc3_prompts::Shared::default);
    let consent = show_panel.then(Prompts::default);
    let permissions = Arc::new(PermissionStore::open(data_dir)?);
    let gate = Arc::new(Gatekeeper {
        policy: policy.clone(),
        store: permissions.clone(),
        prompts: consent.clone(),
        audit: audit.clone(),
        supervisor: supervisor.clone(),
    });
    let storage = Arc::new(SecureStorage::new(
        data_dir,
        settings.config.secure_storage.key_file,
    ));
    let (page_events, page_events_rx) = tokio::sync::mpsc::unbounded_channel();
    let notifications = NotificationCentre::new(supervisor.clone(), page_events, true);
    runtime.block_on(page_services::start(
        &broker_handle,
        page_services::Services {
            gate,
            storage,
            notifications: notifications.clone(),
            clipboard: Arc::new(Clipboard::default()),
        },
        page_events_rx,
    ))?;
    runtime.block_on(fdc3_agent::start(
        fdc3.clone(),
        fdc3_inbox,
        &broker_handle,
        supervisor.clone(),
        fdc3_agent::ResolverSide {
            shared: resolver.clone(),
            choices_file: fdc3_prompts::choices_file(data_dir),
        },
    ))?;
    let metrics_url = match runtime.block_on(metrics::bind(settings.metrics_addr)) {
        Ok(Some(listener)) => {
            let addr = listener
                .local_addr()
                .context("reading the metrics endpoint's address")?;
            let sources = metrics::Sources {
                broker: broker_handle.clone(),
                supervisor: supervisor.clone(),
            };
            runtime.spawn(metrics::serve(listener, sources));
            let url = format!("http://{addr}/metrics");
            tracing::info!("serving metrics at {url} and health at http://{addr}/health");
            Some(url)
        }
        Ok(None) => None,
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "cannot serve metrics on {} (choose another with --metrics-addr, or `off`)",
                    settings.metrics_addr
                )
            });
        }
    };
    data_versions::record(&prepared, &audit);
    let updates = UpdateService::start(data_dir, &settings.config, audit.clone());
    let shutdown = Shutdown::default();
    watch_signals(&shutdown)?;
    desktop_session::watch_display(&shutdown)?;
    let panel = PanelHandle::default();
    runtime.spawn(serve_events(
        events,
        ShellParts {
            broker: broker_handle.clone(),
            fdc3: fdc3.clone(),
            supervisor: supervisor.clone(),
            shutdown: shutdown.clone(),
            panel: panel.clone(),
            data_dir: data_dir.to_owned(),
            metrics_url,
            audit: audit.clone(),
            permissions: permissions.clone(),
            catalogue: catalogue.clone(),
            layouts: layouts.clone(),
            notifications: notifications.clone(),
        },
    ));

    let restore = |name: &str| {
        layouts.restore(name).map(|(started, notes)| {
            for note in &notes {
                tracing::warn!("restoring {name:?}: {note}");
            }
            started
        })
    };
    let launched = match initial {
        Initial::Demo => launch_demo(data_dir, &supervisor, &catalogue),
        Initial::LastSession => restore(workspace_snapshots::LAST_SESSION).or_else(|e| {
            tracing::warn!("the last session cannot be restored ({e:#}); opening the demo");
            launch_demo(data_dir, &supervisor, &catalogue)
        }),
        Initial::Snapshot(name) => restore(&name),
        Initial::Workspace(request, loaded) => {
            let directory = &loaded.directory;
            fdc3.add_apps(directory);
            if !directory.apps().is_empty() || !directory.problems.is_empty() {
                tracing::info!(
                    apps = directory.apps().len(),
                    problems = directory.problems.len(),
                    "App Directories read"
                );
            }
            launch_loaded(&supervisor, &catalogue, &request, &loaded)
        }
    };
    if let Err(e) = &launched {
        shutdown.raise(format!("the first workspace could not start: {e:#}"));
    }

    if let (Some(resolver), Some(consent), true) = (resolver, consent, launched.is_ok()) {
        let tray = tray::start(
            runtime.handle(),
            tray_actions(panel.clone(), supervisor.clone(), shutdown.clone()),
        );
        let parts = panel::PanelParts {
            supervisor: supervisor.clone(),
            shutdown: shutdown.clone(),
            data_dir: data_dir.to_owned(),
            handle: panel,
            fdc3: panel::Fdc3Ui {
                agent: fdc3,
                resolver,
            },
            security: panel::SecurityUi {
                prompts: consent,
                store: permissions,
                policy,
                audit: audit.clone(),
            },
            settings: panel_settings,
            workspaces: panel::WorkspacesUi {
                layouts: layouts.clone(),
                catalogue: catalogue.clone(),
            },
            notifications: panel::NotificationsUi {
                centre: notifications.clone(),
            },
            tray,
            updates: updates.clone(),
        };
        // The panel has a thread of its own, so that a lost display, which ends its
        // event loop inside Xlib, still leaves this thread to stop the shell.
        desktop_session::keep_xlib_from_exiting(&shutdown)?;
        let closed = shutdown.clone();
        std::thread::Builder::new()
            .name("weft-panel".into())
            .spawn(move || {
                if let Err(e) = panel::run(parts) {
                    tracing::error!("{e:#}");
                }
                closed.raise("the control panel was closed");
            })
            .context("starting the control panel's thread")?;
    }
    let reason = shutdown.wait();
    match layouts.save_last_session() {
        Ok(Some(saved)) => {
            tracing::info!(apps = saved.apps, "the session was saved");
            for note in saved.notes {
                tracing::warn!("saving the session: {note}");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!("the session could not be saved: {e:#}"),
    }
    tracing::info!("shutting down: {reason}");
    updates.stop();
    supervisor.stop_all();
    broker_handle.shutdown();
    audit.record("shell.stop", serde_json::json!({"reason": reason}));
    audit.anchor_now();
    let _ = std::fs::remove_file(endpoint.cli_token_path());
    let _ = std::fs::remove_file(endpoint.socket_path());
    runtime.shutdown_timeout(Duration::from_secs(2));
    drop(trace_export);
    drop(lock);
    desktop_session::end_now_if_display_lost(if launched.is_ok() { 0 } else { 1 });
    launched.map(drop)
}

/// What the tray icon's menu does: show the panel (or its launcher), show every app
/// window, or quit.
fn tray_actions(panel: PanelHandle, supervisor: Supervisor, shutdown: Shutdown) -> tray::OnAction {
    Arc::new(move |action| {
        tracing::info!(action = action.label(), "tray icon");
        match action {
            TrayAction::ShowPanel => {
                panel.focus();
            }
            TrayAction::Launcher => {
                panel.open_launcher();
            }
            TrayAction::ShowAll => {
                if let Err(e) = supervisor.window(None, WindowAction::Show) {
                    tracing::warn!("cannot show the app windows: {e}");
                }
            }
            TrayAction::Quit => shutdown.raise("quit from the tray icon"),
        }
    })
}

/// Answers the broker's events until the broker stops.
async fn serve_events(mut events: mpsc::UnboundedReceiver<BrokerEvent>, shell: ShellParts) {
    while let Some(event) = events.recv().await {
        match event {
            BrokerEvent::AppConnected(id) => {
                tracing::debug!(%id, "app connected");
                let title = shell
                    .supervisor
                    .apps()
                    .into_iter()
                    .find(|a| a.instance_id == id.instance_id)
                    .map(|a| a.title);
                if let Some(title) = title {
                    shell.fdc3.started(id, title);
                }
            }
            BrokerEvent::AppDisconnected(id) => {
                shell.supervisor.disconnected(&id);
                shell.fdc3.gone(id);
            }
            BrokerEvent::PageStatus(id, status) => shell.supervisor.page_status(&id, status),
            BrokerEvent::WindowMoved(id, bounds) => shell.supervisor.window_moved(&id, bounds),
            BrokerEvent::Saved {
                identity,
                request,
                saved,
            } => shell.layouts.saved(identity, request, saved),
            BrokerEvent::AccessDenied {
                identity,
                action,
                subject,
                suppressed,
            } => {
                tracing::warn!(%identity, "refused {} {subject}", action.as_str());
                shell
                    .audit
                    .bus_denied(&identity, action, &subject, suppressed);
            }
            BrokerEvent::PageViolation {
                identity,
                violation,
                unreported,
            } => {
                tracing::warn!(%identity, ?violation, "the page was refused");
                shell
                    .audit
                    .page_violation(&identity, &violation, unreported);
            }
            BrokerEvent::Refused {
                reason,
                message,
                peer,
            } => shell.audit.client_refused(reason, &message, peer),
            BrokerEvent::Control {
                from,
                request,
                reply,
            } => {
                shell.audit.cli_request(&from, &request);
                if matches!(
                    request,
                    ControlRequest::ListApps | ControlRequest::ListNotifications
                ) {
                    tracing::debug!(%from, "command-line request: list apps");
                } else {
                    tracing::info!(%from, ?request, "command-line request");
                }
                let shell = shell.clone();
                // Launching, stopping and saving block, and a save waits for events
                // (apps becoming ready, hosts' reports) this loop delivers: carry the
                // request out on a thread of its own and keep serving events.
                tokio::spawn(async move {
                    let answer = tokio::task::spawn_blocking(move || control(&shell, request))
                        .await
                        .unwrap_or_else(|e| Err(format!("the request failed: {e}")));
                    let _ = reply.send(answer);
                });
            }
        }
    }
}

/// What every workspace launch (the command line's, the panel's, the demo, the FDC3
/// agent's own) needs first: its durable streams open, and the agent told of its apps.
#[derive(Debug)]
struct BeforeLaunch {
    journal: Arc<crate::durable_streams::Journal>,
    fdc3: AgentHandle,
    policy: Arc<Policy>,
    audit: AuditTrail,
}

impl PrepareLaunch for BeforeLaunch {
    fn prepare(&self, workspace: &Workspace) -> Result<(), String> {
        for app in &workspace.apps {
            let checked = self
                .policy
                .check_app(&app.app_id, app.url.remote())
                .and_then(|()| signed_as_required(&self.policy, app));
            if let Err(violation) = checked {
                self.audit
                    .policy_violation(&app.app_id, &violation.to_string());
                return Err(violation.to_string());
            }
        }
        self.journal.prepare(workspace)?;
        self.fdc3.add_workspace(workspace);
        Ok(())
    }
}

/// `Ok` unless policy requires signed manifests and one the app comes from is not
/// signed by a trusted key (an app of no manifest at all is refused too).
fn signed_as_required(policy: &Policy, app: &AppSpec) -> Result<(), Violation> {
    if !policy.require_signed {
        return Ok(());
    }
    let unsigned = |manifest: &str, problem: String| Violation::UnsignedManifest {
        app_id: app.app_id.clone(),
        manifest: manifest.to_owned(),
        problem,
    };
    if app.manifests.is_empty() {
        return Err(unsigned("its launch", "names no manifest".into()));
    }
    for manifest in &app.manifests {
        match &manifest.signature {
            SignatureCheck::Signed(key) if policy.trusted_keys.contains(key) => {}
            SignatureCheck::Signed(key) => {
                return Err(unsigned(
                    &manifest.what,
                    format!("is signed by {key}, which the policy does not trust"),
                ));
            }
            other => return Err(unsigned(&manifest.what, format!("is {other}"))),
        }
    }
    Ok(())
}

/// What the shell's event handling and command-line requests act on.
#[derive(Clone)]
struct ShellParts {
    broker: BrokerHandle,
    fdc3: AgentHandle,
    supervisor: Supervisor,
    shutdown: Shutdown,
    panel: PanelHandle,
    data_dir: PathBuf,
    metrics_url: Option<String>,
    audit: AuditTrail,
    permissions: Arc<PermissionStore>,
    catalogue: Arc<AppCatalogue>,
    layouts: Arc<Layouts>,
    notifications: Arc<NotificationCentre>,
}

fn control(shell: &ShellParts, request: ControlRequest) -> Result<ControlReply, String> {
    let ShellParts {
        supervisor,
        shutdown,
        panel,
        data_dir,
        ..
    } = shell;
    match request {
        ControlRequest::Activate => {
            panel.focus();
            if supervisor.apps().iter().any(|a| !a.state.is_final()) {
                return Ok(ControlReply::Launched(vec![]));
            }
            launch_demo(data_dir, supervisor, &shell.catalogue)
                .map(ControlReply::Launched)
                .map_err(|e| format!("{e:#}"))
        }
        ControlRequest::SaveWorkspace { name } => shell
            .layouts
            .save(&name)
            .map(|saved| ControlReply::Saved {
                file: saved.file.display().to_string(),
                apps: saved.apps as u64,
                notes: saved.notes,
            })
            .map_err(|e| format!("{e:#}")),
        ControlRequest::RestoreWorkspace { name } => shell
            .layouts
            .restore(&name)
            .map(|(started, notes)| ControlReply::Restored { started, notes })
            .map_err(|e| format!("{e:#}")),
        ControlRequest::ListNotifications => {
            Ok(ControlReply::Notifications(shell.notifications.list()))
        }
        ControlRequest::ListApps => Ok(ControlReply::Apps {
            apps: supervisor.apps(),
            metrics_url: shell.metrics_url.clone(),
        }),
        ControlRequest::Launch {
            workspace,
            app_directories,
            apps,
        } => {
            let request = LaunchRequest {
                workspace,
                app_directories,
                apps,
            };
            let launched = match request.is_empty() {
                true => launch_demo(data_dir, supervisor, &shell.catalogue),
                false => {
                    let loaded = request.load().map_err(|e| format!("{e:#}"))?;
                    shell.fdc3.add_apps(&loaded.directory);
                    launch_loaded(supervisor, &shell.catalogue, &request, &loaded)
                }
            };
            launched
                .map(ControlReply::Launched)
                .map_err(|e| format!("{e:#}"))
        }
        ControlRequest::StopApp { instance_id } => supervisor
            .stop(&instance_id)
            .map(|()| ControlReply::Done)
            .map_err(|e| e.to_string()),
        ControlRequest::OpenInspector { instance_id } => supervisor
            .open_inspector(&instance_id)
            .map(|()| ControlReply::Done)
            .map_err(|e| e.to_string()),
        ControlRequest::Window { target, action } => supervisor
            .window(target.as_deref(), action)
            .map(|told| ControlReply::Count(told.len() as u64))
            .map_err(|e| e.to_string()),
        ControlRequest::Shutdown => {
            shutdown.raise("`weft stop` was run");
            Ok(ControlReply::Done)
        }
        ControlRequest::DlqList => {
            let (letters, bytes) = shell.broker.dead_letters()?;
            Ok(ControlReply::DeadLetters {
                letters,
                bytes,
                capacity: weft_broker::DLQ_CAPACITY,
            })
        }
        ControlRequest::DlqRedrive { id } => shell.broker.redrive(id).map(ControlReply::Count),
        ControlRequest::DlqPurge => shell.broker.purge_dead_letters().map(ControlReply::Count),
        // Recorded with the other command-line requests.
        ControlRequest::KeysRotated { .. } | ControlRequest::UpdateChanged(_) => {
            Ok(ControlReply::Done)
        }
        ControlRequest::RevokePermission { app_id, api } => {
            let api = api
                .map(|name| {
                    Api::from_name(&name).ok_or_else(|| {
                        format!(
                            "`{name}` is not an API Weft knows (known: {})",
                            Api::names()
                        )
                    })
                })
                .transpose()?;
            let gone = shell
                .permissions
                .revoke(&app_id, api)
                .map_err(|e| format!("{e:#}"))?;
            for r in &gone {
                shell.audit.permission_revoked(r, "cli");
            }
            Ok(ControlReply::Count(gone.len() as u64))
        }
    }
}

/// Launches `loaded`, read from `request`, noting where its apps come from.
pub fn launch_loaded(
    supervisor: &Supervisor,
    catalogue: &AppCatalogue,
    request: &LaunchRequest,
    loaded: &Loaded,
) -> anyhow::Result<Vec<weft_proto::Identity>> {
    let ws = &loaded.workspace;
    tracing::info!(workspace = ws.name, file = %ws.file.display(), "launching");
    catalogue.record(request, ws, &loaded.directory);
    Ok(supervisor.launch(ws)?)
}

/// Launches the built-in demo.
pub fn launch_demo(
    data_dir: &Path,
    supervisor: &Supervisor,
    catalogue: &AppCatalogue,
) -> anyhow::Result<Vec<weft_proto::Identity>> {
    let loaded = Loaded {
        workspace: load_demo(data_dir)?,
        directory: weft_appd::Directory::default(),
    };
    launch_loaded(supervisor, catalogue, &LaunchRequest::default(), &loaded)
}

/// Installs and reads the built-in demo workspace (written into the data directory).
pub fn load_demo(data_dir: &Path) -> anyhow::Result<Workspace> {
    let file = demo::install(data_dir)?;
    Workspace::load(&file).map_err(anyhow::Error::from)
}

/// The `weft-app` executable: `WEFT_APP_BIN`, or the one beside this executable.
pub fn app_host_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("WEFT_APP_BIN") {
        return Ok(PathBuf::from(path));
    }
    let me = std::env::current_exe().context("cannot find this executable's path")?;
    let beside = me.with_file_name("weft-app");
    if !beside.is_file() {
        bail!(
            "cannot find the app host {}; install weft-app beside weft or set WEFT_APP_BIN",
            beside.display()
        );
    }
    Ok(beside)
}

/// SIGTERM and SIGINT stop the shell gracefully, and so does SIGHUP: the terminal or
/// the login session it ran in has ended.
fn watch_signals(shutdown: &Shutdown) -> anyhow::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])
    .context("installing signal handlers")?;
    let shutdown = shutdown.clone();
    std::thread::Builder::new()
        .name("weft-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                shutdown.raise(match sig {
                    signal_hook::consts::SIGHUP => {
                        "received SIGHUP: the terminal or session ended".to_owned()
                    }
                    signal_hook::consts::SIGTERM => "received SIGTERM".to_owned(),
                    signal_hook::consts::SIGINT => "received SIGINT".to_owned(),
                    other => format!("received signal {other}"),
                });
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}
