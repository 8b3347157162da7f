//! The control panel: one egui window with the running apps (`apps.rs`: launch, stop,
//! restart, focus, health), the layout snapshots (`workspaces.rs`), the FDC3 intent
//! choices and permission answers the user asked to remember (`permissions.rs`), and
//! the settings in force (`settings.rs`). Its event
//! loop also shows the intent resolver's windows (`fdc3_prompts.rs`) and the consent
//! prompts (`consent.rs`), one at a time.
//!
//! Immediate mode, kept apart from the data: each view's `draw_…` reads a snapshot (the
//! supervisor's apps, the stores, the form's text) and returns what the user asked for
//! as [`PanelAction`]s; [`PanelApp`] carries them out. Nothing registers callbacks that
//! could fall out of sync with the state.

mod apps;
mod launcher;
mod notifications;
mod permissions;
mod settings;
mod updates;
mod workspaces;

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use eframe::egui;
use weft_proto::frame::WindowAction;
use weft_supervisor::Supervisor;

use weft_permissions::{Api, Policy};

pub use self::settings::SettingRow;
use self::{
    apps::{PanelForm, draw},
    launcher::{LauncherEntry, LauncherState, draw_launcher},
    notifications::draw_notifications,
    permissions::{draw_choices, draw_permissions},
    settings::draw_settings,
    updates::draw_updates,
    workspaces::draw_workspaces,
};
use crate::{
    app_catalogue::AppCatalogue,
    audit_trail::AuditTrail,
    consent::{self, Prompts},
    fdc3_agent::AgentHandle,
    fdc3_prompts::{self, PromptForm, Reply},
    launch_request::LaunchRequest,
    locking::lock,
    notifications::NotificationCentre,
    permission_store::PermissionStore,
    shell_process,
    shutdown::Shutdown,
    tray::TrayIcon,
    update_service::UpdateService,
    workspace_snapshots::{self, Layouts, Listed},
};

/// How often the Workspaces and Updates views read their files again.
const LAYOUTS_REREAD: Duration = Duration::from_secs(5);

/// Lets other threads bring the panel window forward once it is open.
#[derive(Clone, Default)]
pub struct PanelHandle {
    ctx: Arc<Mutex<Option<egui::Context>>>,
    /// The launcher's search should take the keyboard at the next frame.
    launcher_requested: Arc<AtomicBool>,
}

impl PanelHandle {
    /// Shows (also from the tray), raises and focuses the panel window; returns false
    /// when no panel is open.
    pub fn focus(&self) -> bool {
        let ctx = lock(&self.ctx).clone();
        match ctx {
            Some(ctx) => {
                ctx.send_viewport_cmd(egui::ViewportCommand::Visible(true));
                ctx.send_viewport_cmd(egui::ViewportCommand::Minimized(false));
                ctx.send_viewport_cmd(egui::ViewportCommand::Focus);
                ctx.request_repaint();
                true
            }
            None => false,
        }
    }

    /// Shows the panel with the keyboard in the launcher's search.
    pub fn open_launcher(&self) -> bool {
        self.launcher_requested.store(true, Ordering::Release);
        self.focus()
    }
}

/// What the user asked the panel to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PanelAction {
    /// Launch the built-in demo workspace.
    LaunchDemo,
    /// Launch the workspace file at this path.
    LaunchWorkspace(PathBuf),
    /// Stop one app instance.
    Stop(String),
    /// Restart one app instance (stop it and start it again).
    Restart(String),
    /// Keep waiting for an app instance that is not responding.
    Wait(String),
    /// Open the web inspector on an app instance's page.
    Inspect(String),
    /// Act on the window of an instance, or on every running app's.
    Window {
        /// The instanceId; every app when `None`.
        target: Option<String>,
        /// What to do.
        action: WindowAction,
    },
    /// Forget the user's remembered answer for an app and API.
    Revoke {
        /// The app.
        app_id: String,
        /// The API.
        api: Api,
    },
    /// Forget a remembered intent choice.
    ForgetChoice {
        /// Its intent.
        intent: String,
        /// Its context type.
        context_type: String,
    },
    /// The user clicked a notification (action `default`) or one of its buttons.
    Notification {
        /// The notification.
        id: u64,
        /// What was clicked.
        action: String,
    },
    /// Mark every notification read.
    MarkNotificationsRead,
    /// Start a new instance of a known app, by appId.
    LaunchApp(String),
    /// Save the running apps' layout under this name.
    SaveLayout(String),
    /// Restore the layout snapshot of this name.
    RestoreLayout(String),
    /// Delete the layout snapshot of this name.
    DeleteLayout(String),
    /// Ask the update repository now, past staged rollout.
    CheckUpdates,
    /// Download and install the update offered.
    ApplyUpdate,
    /// Return to the previous version from the next start.
    RollbackUpdate,
}

/// The notification centre.
pub struct NotificationsUi {
    /// The centre.
    pub centre: Arc<NotificationCentre>,
}

/// Layout snapshots and where launches come from, for the Workspaces view and the
/// launch buttons.
pub struct WorkspacesUi {
    /// Saving and restoring.
    pub layouts: Arc<Layouts>,
    /// Where each app's launch came from.
    pub catalogue: Arc<AppCatalogue>,
}

/// The FDC3 agent as the panel reaches it: its resolver's questions and remembered
/// choices, and where answers go.
pub struct Fdc3Ui {
    /// Where answers and forgotten choices go.
    pub agent: AgentHandle,
    /// The questions and remembered choices.
    pub resolver: fdc3_prompts::Shared,
}

/// What the panel needs for permissions: the consent prompts to show, the remembered
/// answers, the policy, and the audit log for revocations.
pub struct SecurityUi {
    /// The consent questions waiting.
    pub prompts: Prompts,
    /// The remembered answers.
    pub store: Arc<PermissionStore>,
    /// The desktop owner's policy.
    pub policy: Arc<Policy>,
    /// Where revocations are recorded.
    pub audit: AuditTrail,
}

/// The settings in force, for the Settings view.
pub struct SettingsUi {
    /// The whole configuration (the Updates view reads its `[updates]`).
    pub config: crate::config::Config,
    /// Each setting and where it came from.
    pub rows: Vec<SettingRow>,
    /// The user's settings file.
    pub file: String,
}

/// The eframe app: reads the supervisor, draws, carries out actions.
struct PanelApp {
    supervisor: Supervisor,
    data_dir: PathBuf,
    form: PanelForm,
    fdc3: Fdc3Ui,
    security: SecurityUi,
    settings: SettingsUi,
    workspaces: WorkspacesUi,
    notifications: NotificationsUi,
    /// The snapshots saved, as last read, and when.
    saved_layouts: (Vec<Listed>, Option<Instant>),
    /// The name typed to save the layout under.
    layout_name: String,
    /// The Updates view as last read (the install's state file), and when.
    updates_view: (Option<crate::update_command::UpdatesView>, Option<Instant>),
    /// The shell's updater: its schedule and progress, and the Updates view's buttons.
    updates: UpdateService,
    /// The launcher's search.
    launcher: LauncherState,
    /// The consent prompt on screen and since when (its buttons arm after a delay).
    consent_shown: Option<(u64, std::time::Instant)>,
    prompt_form: PromptForm,
    /// Actions are run off the UI thread so that a slow launch never freezes the panel.
    pending: Arc<Mutex<Option<(bool, String)>>>,
    /// How the window closes: hidden to the tray, or quitting after asking.
    lifecycle: Lifecycle,
}

/// What closing the panel window does, and what it is waiting on.
struct Lifecycle {
    /// Raised to stop the shell; closing the window for real waits on it.
    shutdown: Shutdown,
    /// The tray icon, when the desktop shows one.
    tray: Option<TrayIcon>,
    /// Brings the panel back, and asks for the launcher.
    handle: PanelHandle,
    /// The user closed the window without a tray: "Quit Weft?" is on screen.
    asking_to_quit: bool,
}

impl Lifecycle {
    /// Handles a close of the window: with a tray in the desktop it hides to the tray;
    /// without, it asks before quitting. Once the shell stops, the window closes.
    fn on_close_requested(&mut self, ctx: &egui::Context) {
        if self.shutdown.is_raised() {
            return;
        }
        ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
        if self.tray.as_ref().is_some_and(TrayIcon::is_shown) {
            tracing::info!("the control panel is hidden to the tray");
            ctx.send_viewport_cmd(egui::ViewportCommand::Visible(false));
        } else {
            self.asking_to_quit = true;
        }
    }

    /// Draws "Quit Weft?" while it is asked.
    fn draw_quit_question(&mut self, ctx: &egui::Context, running: usize) {
        if !self.asking_to_quit {
            return;
        }
        let mut answer = None;
        egui::Modal::new(egui::Id::unique("quit-weft")).show(ctx, |ui| {
            ui.heading("Quit Weft?");
            ui.label(match running {
                0 => "No app is running.".to_owned(),
                1 => "1 app will be stopped.".to_owned(),
                n => format!("{n} apps will be stopped."),
            });
            ui.label("The session is saved, and `weft` opens it as it is next time.");
            ui.horizontal(|ui| {
                if ui.button("Quit").clicked() || ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                    answer = Some(true);
                }
                if ui.button("Cancel").clicked() || ui.input(|i| i.key_pressed(egui::Key::Escape)) {
                    answer = Some(false);
                }
            });
        });
        match answer {
            Some(true) => {
                self.asking_to_quit = false;
                self.shutdown.raise("quit from the control panel");
            }
            Some(false) => self.asking_to_quit = false,
            None => {}
        }
    }
}

impl PanelApp {
    fn act(&mut self, action: PanelAction, ctx: egui::Context) {
        if let PanelAction::Revoke { app_id, api } = &action {
            self.form.status = Some(match self.security.store.revoke(app_id, Some(*api)) {
                Ok(gone) => {
                    for r in &gone {
                        self.security.audit.permission_revoked(r, "panel");
                    }
                    (false, format!("revoked {api} for {app_id}"))
                }
                Err(e) => (true, format!("{e:#}")),
            });
            return;
        }
        match &action {
            PanelAction::Notification { id, action } => {
                // Focusing only sends a command: quick enough for the UI thread.
                self.notifications.centre.act(*id, action);
                return;
            }
            PanelAction::MarkNotificationsRead => {
                self.notifications.centre.mark_all_read();
                return;
            }
            _ => {}
        }
        if let PanelAction::ForgetChoice {
            intent,
            context_type,
        } = action
        {
            self.form.status = Some((false, format!("forgot the choice for {intent}")));
            self.fdc3.agent.forget_choice(intent, context_type);
            return;
        }
        let supervisor = self.supervisor.clone();
        let data_dir = self.data_dir.clone();
        let outcome = self.pending.clone();
        let layouts = self.workspaces.layouts.clone();
        let catalogue = self.workspaces.catalogue.clone();
        let agent = self.fdc3.agent.clone();
        let updates = self.updates.clone();
        // The list is read again once the action is done.
        self.saved_layouts.1 = None;
        std::thread::spawn(move || {
            let result = match action {
                PanelAction::LaunchDemo => {
                    shell_process::launch_demo(&data_dir, &supervisor, &catalogue)
                        .map(|ids| format!("launched the demo ({} apps)", ids.len()))
                }
                PanelAction::LaunchWorkspace(file) => {
                    let request = LaunchRequest {
                        workspace: Some(file),
                        ..Default::default()
                    };
                    request.load().and_then(|loaded| {
                        agent.add_apps(&loaded.directory);
                        let name = loaded.workspace.name.clone();
                        shell_process::launch_loaded(&supervisor, &catalogue, &request, &loaded)
                            .map(|ids| format!("launched {name} ({} apps)", ids.len()))
                    })
                }
                PanelAction::LaunchApp(app_id) => catalogue
                    .launch_new(&data_dir, &agent, &supervisor, &app_id)
                    .map(|ids| format!("started {app_id} ({})", ids.len())),
                PanelAction::SaveLayout(name) => layouts.save(&name).map(|saved| {
                    let mut text = format!("saved {name} ({} apps)", saved.apps);
                    for note in saved.notes {
                        text.push_str(&format!("; {note}"));
                    }
                    text
                }),
                PanelAction::RestoreLayout(name) => {
                    layouts.restore(&name).map(|(started, notes)| {
                        let mut text = format!("restored {name} ({} apps)", started.len());
                        for note in notes {
                            text.push_str(&format!("; not restored: {note}"));
                        }
                        text
                    })
                }
                PanelAction::DeleteLayout(name) => workspace_snapshots::delete(&data_dir, &name)
                    .map(|()| format!("deleted {name}")),
                PanelAction::Stop(id) => supervisor
                    .stop(&id)
                    .map(|()| format!("stopping {id}"))
                    .map_err(anyhow::Error::from),
                PanelAction::Restart(id) => supervisor
                    .restart_app(&id)
                    .map(|()| format!("restarting {id}"))
                    .map_err(anyhow::Error::from),
                PanelAction::Wait(id) => {
                    supervisor.keep_waiting(&id);
                    Ok(format!("waiting for {id}"))
                }
                PanelAction::Inspect(id) => supervisor
                    .open_inspector(&id)
                    .map(|()| format!("opening the inspector of {id}"))
                    .map_err(anyhow::Error::from),
                PanelAction::Window { target, action } => supervisor
                    .window(target.as_deref(), action)
                    .map(|told| format!("{}: {} window(s)", action.name(), told.len()))
                    .map_err(anyhow::Error::from),
                PanelAction::CheckUpdates => updates.check_now(),
                PanelAction::ApplyUpdate => updates.install_now(),
                PanelAction::RollbackUpdate => updates.roll_back(),
                PanelAction::ForgetChoice { .. }
                | PanelAction::Revoke { .. }
                | PanelAction::Notification { .. }
                | PanelAction::MarkNotificationsRead => {
                    unreachable!("handled above")
                }
            };
            *lock(&outcome) = Some(match result {
                Ok(text) => (false, text),
                Err(e) => (true, format!("{e:#}")),
            });
            ctx.request_repaint();
        });
    }
}

impl eframe::App for PanelApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        if ui.ctx().input(|i| i.viewport().close_requested()) {
            self.lifecycle.on_close_requested(ui.ctx());
        }
        if self
            .lifecycle
            .handle
            .launcher_requested
            .swap(false, Ordering::AcqRel)
        {
            self.launcher.focus_requested = true;
        }
        if let Some(outcome) = lock(&self.pending).take() {
            self.form.status = Some(outcome);
            self.saved_layouts.1 = None;
            self.updates_view.1 = None;
        }
        if self
            .updates_view
            .1
            .is_none_or(|at| at.elapsed() > LAYOUTS_REREAD)
        {
            self.updates_view = (
                Some(crate::update_command::UpdatesView::read(
                    &self.settings.config,
                )),
                Some(Instant::now()),
            );
        }
        let stale = self
            .saved_layouts
            .1
            .is_none_or(|at| at.elapsed() > LAYOUTS_REREAD);
        if stale {
            self.saved_layouts = (
                workspace_snapshots::list(&self.data_dir).unwrap_or_default(),
                Some(Instant::now()),
            );
        }
        let apps = self.supervisor.apps();
        let running = apps.iter().filter(|a| a.state.is_live()).count();
        self.lifecycle.draw_quit_question(ui.ctx(), running);
        let remembered = self.fdc3.resolver.remembered();
        let permissions = self.security.store.list();
        let forced = self.security.policy.forced();
        let sources = crate::config::describe_sources(&self.security.policy);
        let actions = egui::CentralPanel::default()
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .show(ui, |ui| {
                        let mut actions = draw(ui, &apps, &mut self.form);
                        actions.extend(draw_notifications(ui, &self.notifications.centre.list()));
                        ui.separator();
                        let entries: Vec<LauncherEntry> = self
                            .workspaces
                            .catalogue
                            .entries()
                            .into_iter()
                            .map(|e| LauncherEntry {
                                running: apps
                                    .iter()
                                    .filter(|a| a.app_id == e.app_id && a.state.is_live())
                                    .count(),
                                app_id: e.app_id,
                                title: e.title,
                                description: e.description,
                                icon: e.icon,
                            })
                            .collect();
                        actions.extend(draw_launcher(ui, &entries, &mut self.launcher));
                        ui.separator();
                        actions.extend(draw_choices(ui, &remembered));
                        actions.extend(draw_permissions(ui, &permissions, &forced, &sources));
                        actions.extend(draw_workspaces(
                            ui,
                            &self.saved_layouts.0,
                            &mut self.layout_name,
                        ));
                        if let Some(view) = &self.updates_view.0 {
                            let progress = self.updates.progress();
                            if progress.activity.is_some() {
                                ui.ctx().request_repaint_after(Duration::from_millis(250));
                            }
                            actions.extend(draw_updates(ui, view, &progress));
                        }
                        draw_settings(ui, &self.settings.rows, &self.settings.file);
                        actions
                    })
                    .inner
            })
            .inner;
        for action in actions {
            self.act(action, ui.ctx().clone());
        }
        // The agent's questions (intent resolver, channel selector), then the consent
        // prompts, over their app; one window at a time.
        if self.fdc3.resolver.first().is_none()
            && let Some(queued) = self.security.prompts.first()
        {
            let over = consent::over(&queued, &apps);
            let shown_at = match self.consent_shown {
                Some((key, at)) if key == queued.key => at,
                _ => {
                    let now = std::time::Instant::now();
                    self.consent_shown = Some((queued.key, now));
                    now
                }
            };
            if let Some((key, answer)) = consent::show(ui.ctx(), &queued, over, shown_at) {
                self.security.prompts.answer(key, answer);
            }
        }
        if let Some(queued) = self.fdc3.resolver.first() {
            let over = fdc3_prompts::over(&queued, &apps);
            if let Some((key, reply)) =
                fdc3_prompts::show(ui.ctx(), &queued, over, &mut self.prompt_form)
            {
                self.fdc3.resolver.answered(key);
                self.prompt_form = PromptForm::default();
                match reply {
                    Reply::Intent { id, answer } => self.fdc3.agent.resolved(id, answer),
                    Reply::Channel {
                        instance_id,
                        channel,
                    } => self.fdc3.agent.select_channel(instance_id, channel),
                    Reply::Dismissed => {}
                }
            }
        }
    }
}

/// Everything the panel shows and acts on.
pub struct PanelParts {
    /// The apps.
    pub supervisor: Supervisor,
    /// Raised when the panel closes; closes the panel when raised elsewhere.
    pub shutdown: Shutdown,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Lets other threads bring the panel forward.
    pub handle: PanelHandle,
    /// The FDC3 agent's questions and choices.
    pub fdc3: Fdc3Ui,
    /// Consent prompts and permissions.
    pub security: SecurityUi,
    /// The settings in force.
    pub settings: SettingsUi,
    /// Layout snapshots.
    pub workspaces: WorkspacesUi,
    /// The notification centre.
    pub notifications: NotificationsUi,
    /// The tray icon, where the desktop has a tray.
    pub tray: Option<TrayIcon>,
    /// The shell's updater.
    pub updates: UpdateService,
}

/// Shows the panel until the user closes it or the shell is told to stop.
pub fn run(parts: PanelParts) -> anyhow::Result<()> {
    let PanelParts {
        supervisor,
        shutdown,
        data_dir,
        handle,
        fdc3,
        security,
        settings,
        workspaces,
        notifications,
        tray,
        updates,
    } = parts;
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Weft")
            .with_app_id("weft-panel")
            .with_inner_size([760.0, 240.0])
            .with_position([40.0, 540.0]),
        // The shell runs the panel on a thread of its own (see `shell_process`).
        event_loop_builder: Some(Box::new(|builder| {
            use winit::platform::{
                wayland::EventLoopBuilderExtWayland, x11::EventLoopBuilderExtX11,
            };
            EventLoopBuilderExtX11::with_any_thread(builder, true);
            EventLoopBuilderExtWayland::with_any_thread(builder, true);
        })),
        ..Default::default()
    };
    let app = PanelApp {
        supervisor: supervisor.clone(),
        data_dir,
        form: PanelForm::default(),
        pending: Arc::new(Mutex::new(None)),
        prompt_form: PromptForm::default(),
        fdc3,
        security,
        settings,
        workspaces,
        notifications,
        saved_layouts: (vec![], None),
        layout_name: String::new(),
        updates_view: (None, None),
        updates,
        launcher: LauncherState::default(),
        consent_shown: None,
        lifecycle: Lifecycle {
            shutdown: shutdown.clone(),
            tray,
            handle: handle.clone(),
            asking_to_quit: false,
        },
    };
    let resolver = app.fdc3.resolver.clone();
    let notification_centre = app.notifications.centre.clone();
    let consent = app.security.prompts.clone();
    eframe::run_native(
        "weft-panel",
        options,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            // App icons in the launcher: from files and http(s) URLs, PNG and JPEG.
            egui_extras::install_image_loaders(&ctx);
            *lock(&handle.ctx) = Some(ctx.clone());
            resolver.set_repaint(ctx.clone());
            let repaint = ctx.clone();
            notification_centre.set_on_change(Arc::new(move || repaint.request_repaint()));
            consent.set_repaint(ctx.clone());
            let repaint = ctx.clone();
            supervisor.set_on_change(Arc::new(move || repaint.request_repaint()));
            shutdown.on_raise(move || {
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                ctx.request_repaint();
            });
            // Uptime-style fields are not shown yet, so repaint only on change, plus a
            // slow tick as a safety net.
            cc.egui_ctx.request_repaint_after(Duration::from_secs(1));
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("the control panel failed: {e}"))
}
