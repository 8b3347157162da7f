//! The control panel: one egui window listing the running apps, with buttons to launch
//! the demo or a workspace file and to stop apps, the FDC3 intent choices the user
//! asked to remember, and the Permissions view (remembered answers, revocable, and
//! what the desktop owner's policy forces). Its event loop also shows the intent
//! resolver's windows (`fdc3_prompts.rs`) and the consent prompts (`consent.rs`), one
//! at a time.
//!
//! Immediate mode, kept apart from the data: [`draw`] reads a snapshot of the
//! supervisor's apps and the form's text, and returns what the user asked for as
//! [`PanelAction`]s; [`PanelApp`] carries them out. Nothing registers callbacks that
//! could fall out of sync with the state.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use eframe::egui;
use weft_proto::frame::{AppInfo, AppState};
use weft_supervisor::Supervisor;
use weft_workspace::Workspace;

use weft_permissions::{Answer, Api, Policy};

use crate::{
    audit_trail::AuditTrail,
    consent::{self, Prompts},
    fdc3_agent::AgentHandle,
    fdc3_prompts::{self, PromptForm, Remembered, Reply},
    locking::lock,
    permission_store::{PermissionStore, Remembered as RememberedPermission},
    shell_process,
    shutdown::Shutdown,
};

/// Lets other threads bring the panel window forward once it is open.
#[derive(Clone, Default)]
pub struct PanelHandle {
    ctx: Arc<Mutex<Option<egui::Context>>>,
}

impl PanelHandle {
    /// Raises and focuses the panel window; returns false when no panel is open.
    pub fn focus(&self) -> bool {
        let ctx = lock(&self.ctx).clone();
        match ctx {
            Some(ctx) => {
                ctx.send_viewport_cmd(egui::ViewportCommand::Minimized(false));
                ctx.send_viewport_cmd(egui::ViewportCommand::Focus);
                ctx.request_repaint();
                true
            }
            None => false,
        }
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

/// Draws the Permissions view: each remembered answer with a Revoke button, then what
/// the desktop owner's policy forces (which the user cannot change).
pub fn draw_permissions(
    ui: &mut egui::Ui,
    remembered: &[RememberedPermission],
    forced: &[(String, Api, bool)],
    policy_sources: &str,
) -> Vec<PanelAction> {
    let mut actions = Vec::new();
    egui::CollapsingHeader::new(format!("Permissions ({} remembered)", remembered.len()))
        .id_salt("permissions")
        .default_open(!remembered.is_empty())
        .show(ui, |ui| {
            if remembered.is_empty() {
                ui.label("No remembered answers: apps ask the first time they need a permission.");
            }
            for r in remembered {
                ui.horizontal(|ui| {
                    let answer = match r.answer {
                        Answer::AlwaysAllow => "always allowed",
                        Answer::AlwaysDeny => "always denied",
                    };
                    ui.label(format!("{}: {} {answer} (since {})", r.app_id, r.api, r.at));
                    if ui
                        .button(format!("Revoke {} {}", r.app_id, r.api))
                        .clicked()
                    {
                        actions.push(PanelAction::Revoke {
                            app_id: r.app_id.clone(),
                            api: r.api,
                        });
                    }
                });
            }
            if !forced.is_empty() {
                ui.separator();
                ui.label(format!(
                    "Set by the desktop owner's policy ({policy_sources}):"
                ));
                for (app, api, granted) in forced {
                    let app = if app == weft_permissions::policy::EVERY_APP {
                        "every app"
                    } else {
                        app.as_str()
                    };
                    let what = if *granted { "granted" } else { "denied" };
                    ui.label(format!("{app}: {api} {what} (locked)"));
                }
            }
        });
    actions
}

/// Draws the remembered intent choices, each with a Forget button.
pub fn draw_choices(ui: &mut egui::Ui, remembered: &[Remembered]) -> Vec<PanelAction> {
    let mut actions = Vec::new();
    egui::CollapsingHeader::new(format!("Remembered intent choices ({})", remembered.len()))
        .default_open(!remembered.is_empty())
        .show(ui, |ui| {
            if remembered.is_empty() {
                ui.label("None: the intent resolver asks each time.");
            }
            for choice in remembered {
                ui.horizontal(|ui| {
                    ui.label(format!(
                        "{} with {} goes to {}",
                        choice.intent, choice.context_type, choice.app_id
                    ));
                    if ui.button("Forget").clicked() {
                        actions.push(PanelAction::ForgetChoice {
                            intent: choice.intent.clone(),
                            context_type: choice.context_type.clone(),
                        });
                    }
                });
            }
        });
    actions
}

/// The panel's own editable state.
#[derive(Debug, Default)]
pub struct PanelForm {
    /// The workspace path being typed.
    pub workspace_path: String,
    /// The outcome of the last action: (is an error, text).
    pub status: Option<(bool, String)>,
}

/// Draws the panel for `apps` and returns the user's actions this frame.
pub fn draw(ui: &mut egui::Ui, apps: &[AppInfo], form: &mut PanelForm) -> Vec<PanelAction> {
    let mut actions = Vec::new();
    ui.heading("Weft");
    ui.horizontal(|ui| {
        if ui.button("Launch demo").clicked() {
            actions.push(PanelAction::LaunchDemo);
        }
        ui.label("Workspace file:");
        let field = ui.add(
            egui::TextEdit::singleline(&mut form.workspace_path)
                .hint_text("/path/to/workspace.json")
                .desired_width(260.0),
        );
        let submitted = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        let path = form.workspace_path.trim();
        if (ui
            .add_enabled(!path.is_empty(), egui::Button::new("Launch"))
            .clicked()
            || submitted)
            && !path.is_empty()
        {
            actions.push(PanelAction::LaunchWorkspace(PathBuf::from(path)));
        }
    });
    if let Some((is_error, text)) = &form.status {
        let color = if *is_error {
            ui.visuals().error_fg_color
        } else {
            ui.visuals().text_color()
        };
        ui.colored_label(color, text);
    }
    ui.separator();

    let running = apps.iter().filter(|a| !a.state.is_final()).count();
    ui.label(format!("{running} running, {} in all", apps.len()));
    egui::ScrollArea::vertical().show(ui, |ui| {
        egui::Grid::new("apps")
            .num_columns(10)
            .striped(true)
            .spacing([16.0, 6.0])
            .show(ui, |ui| {
                ui.strong("App");
                ui.strong("Instance");
                ui.strong("PID");
                ui.strong("State");
                ui.strong("Restarts");
                ui.strong("Uptime");
                ui.strong("CPU");
                ui.strong("Memory");
                ui.strong("Heartbeat");
                ui.strong("");
                ui.end_row();
                for app in apps {
                    ui.label(&app.title).on_hover_text(&app.url);
                    ui.label(&app.instance_id);
                    ui.label(app.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()));
                    let state = match &app.exit {
                        Some(exit) if app.state.is_final() || app.state == AppState::Restarting => {
                            format!("{} ({exit})", app.state.as_str())
                        }
                        _ => app.state.as_str().to_owned(),
                    };
                    let state = ui.colored_label(state_color(app.state), state);
                    if app.state == AppState::Failed {
                        state.on_hover_text(
                            "It ended too often right after starting; \
                             it is not restarted again. Launch the workspace again to retry.",
                        );
                    }
                    ui.label(app.restarts.to_string());
                    ui.label(app.uptime_secs.map(uptime).unwrap_or_else(|| "-".into()));
                    ui.label(
                        app.cpu_percent
                            .map(|c| format!("{c:.1} %"))
                            .unwrap_or_else(|| "-".into()),
                    );
                    let memory = match (app.memory_pss_kb, app.memory_limit_mb) {
                        (Some(kb), Some(limit)) => format!("{} / {limit} MB", kb / 1024),
                        (Some(kb), None) => format!("{} MB", kb / 1024),
                        (None, _) => "-".into(),
                    };
                    let hover = match &app.limits_enforced_by {
                        Some(how) => {
                            format!("PSS of the app's host and WebKit processes; limits: {how}")
                        }
                        None => "PSS of the app's host and WebKit processes".into(),
                    };
                    ui.label(memory).on_hover_text(hover);
                    ui.label(
                        app.heartbeat_age_ms
                            .map(|ms| format!("{:.1} s ago", ms as f64 / 1000.0))
                            .unwrap_or_else(|| "-".into()),
                    );
                    let running = matches!(
                        app.state,
                        AppState::Starting | AppState::Ready | AppState::NotResponding
                    );
                    let stoppable = running || app.state == AppState::Restarting;
                    ui.horizontal(|ui| {
                        if app.state == AppState::NotResponding
                            && ui
                                .button("Wait")
                                .on_hover_text("Give it more time before acting")
                                .clicked()
                        {
                            actions.push(PanelAction::Wait(app.instance_id.clone()));
                        }
                        if ui
                            .add_enabled(running, egui::Button::new("Restart"))
                            .clicked()
                        {
                            actions.push(PanelAction::Restart(app.instance_id.clone()));
                        }
                        if ui
                            .add_enabled(stoppable, egui::Button::new("Stop"))
                            .clicked()
                        {
                            actions.push(PanelAction::Stop(app.instance_id.clone()));
                        }
                        if ui
                            .add_enabled(running, egui::Button::new("Inspect"))
                            .on_hover_text("Open the web inspector on its page")
                            .clicked()
                        {
                            actions.push(PanelAction::Inspect(app.instance_id.clone()));
                        }
                    });
                    ui.end_row();
                }
            });
    });
    actions
}

/// `75 s`, `12 min`, `3 h 05 min`.
fn uptime(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        _ => format!("{} h {:02} min", secs / 3600, secs / 60 % 60),
    }
}

fn state_color(state: AppState) -> egui::Color32 {
    match state {
        AppState::Ready => egui::Color32::from_rgb(0x2e, 0x9d, 0x4c),
        AppState::Starting
        | AppState::Stopping
        | AppState::Restarting
        | AppState::NotResponding => egui::Color32::from_rgb(0xc9, 0x8a, 0x00),
        AppState::Stopped => egui::Color32::GRAY,
        AppState::Crashed | AppState::Failed => egui::Color32::from_rgb(0xd0, 0x36, 0x36),
    }
}

/// The eframe app: reads the supervisor, draws, carries out actions.
struct PanelApp {
    supervisor: Supervisor,
    data_dir: PathBuf,
    form: PanelForm,
    fdc3: Fdc3Ui,
    security: SecurityUi,
    /// The consent prompt on screen and since when (its buttons arm after a delay).
    consent_shown: Option<(u64, std::time::Instant)>,
    prompt_form: PromptForm,
    /// Actions are run off the UI thread so that a slow launch never freezes the panel.
    pending: Arc<Mutex<Option<(bool, String)>>>,
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
        std::thread::spawn(move || {
            let result = match action {
                PanelAction::LaunchDemo => shell_process::load_demo(&data_dir)
                    .and_then(|ws| Ok(supervisor.launch(&ws)?))
                    .map(|ids| format!("launched the demo ({} apps)", ids.len())),
                PanelAction::LaunchWorkspace(file) => Workspace::load(&file)
                    .map_err(anyhow::Error::from)
                    .and_then(|ws| Ok((ws.name.clone(), supervisor.launch(&ws)?)))
                    .map(|(name, ids)| format!("launched {name} ({} apps)", ids.len())),
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
                PanelAction::ForgetChoice { .. } | PanelAction::Revoke { .. } => {
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
        if let Some(outcome) = lock(&self.pending).take() {
            self.form.status = Some(outcome);
        }
        let apps = self.supervisor.apps();
        let remembered = self.fdc3.resolver.remembered();
        let permissions = self.security.store.list();
        let forced = self.security.policy.forced();
        let sources = crate::config::describe_sources(&self.security.policy);
        let actions = egui::CentralPanel::default()
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .show(ui, |ui| {
                        let mut actions = draw(ui, &apps, &mut self.form);
                        ui.separator();
                        actions.extend(draw_choices(ui, &remembered));
                        actions.extend(draw_permissions(ui, &permissions, &forced, &sources));
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

/// Shows the panel until the user closes it or the shell is told to stop.
pub fn run(
    supervisor: Supervisor,
    shutdown: Shutdown,
    data_dir: PathBuf,
    handle: PanelHandle,
    fdc3: Fdc3Ui,
    security: SecurityUi,
) -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Weft")
            .with_app_id("weft-panel")
            .with_inner_size([760.0, 240.0])
            .with_position([40.0, 540.0]),
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
        consent_shown: None,
    };
    let resolver = app.fdc3.resolver.clone();
    let consent = app.security.prompts.clone();
    eframe::run_native(
        "weft-panel",
        options,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            *lock(&handle.ctx) = Some(ctx.clone());
            resolver.set_repaint(ctx.clone());
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

#[cfg(test)]
mod tests {
    use super::*;
    use egui_kittest::{Harness, kittest::Queryable};

    fn app(id: &str, state: AppState) -> AppInfo {
        AppInfo {
            app_id: id.into(),
            instance_id: format!("{id}-1"),
            title: format!("{id} title"),
            url: "weft://localhost/x.html".into(),
            pid: Some(42),
            state,
            exit: None,
            restarts: 0,
            bounds: None,
            uptime_secs: Some(75),
            cpu_percent: Some(1.5),
            memory_pss_kb: Some(110_000),
            heartbeat_age_ms: Some(400),
            memory_limit_mb: None,
            limits_enforced_by: None,
        }
    }

    struct State {
        apps: Vec<AppInfo>,
        form: PanelForm,
        actions: Vec<PanelAction>,
    }

    fn harness(apps: Vec<AppInfo>) -> Harness<'static, State> {
        Harness::new_ui_state(
            |ui, s: &mut State| {
                let actions = draw(ui, &s.apps, &mut s.form);
                s.actions.extend(actions);
            },
            State {
                apps,
                form: PanelForm::default(),
                actions: vec![],
            },
        )
    }

    #[test]
    fn remembered_intent_choices_are_listed_and_can_be_forgotten() {
        let remembered = vec![Remembered {
            intent: "ViewChart".into(),
            context_type: "fdc3.instrument".into(),
            app_id: "pricer".into(),
        }];
        let mut h = Harness::new_ui_state(
            move |ui, actions: &mut Vec<PanelAction>| {
                actions.extend(draw_choices(ui, &remembered));
            },
            vec![],
        );
        h.run();
        h.get_by_label("Remembered intent choices (1)");
        h.get_by_label("ViewChart with fdc3.instrument goes to pricer");
        h.get_by_label("Forget").click();
        h.run();
        assert_eq!(
            h.state(),
            &[PanelAction::ForgetChoice {
                intent: "ViewChart".into(),
                context_type: "fdc3.instrument".into()
            }]
        );
    }

    #[test]
    fn remembered_permissions_are_listed_revocable_and_policy_rules_shown_locked() {
        let remembered = vec![RememberedPermission {
            app_id: "vault".into(),
            api: Api::SecureStorage,
            answer: Answer::AlwaysAllow,
            at: "2026-11-22T10:00:00Z".into(),
        }];
        let forced = vec![("*".to_owned(), Api::SecureStorage, false)];
        let mut h = Harness::new_ui_state(
            move |ui, actions: &mut Vec<PanelAction>| {
                actions.extend(draw_permissions(
                    ui,
                    &remembered,
                    &forced,
                    "/etc/weft/policy.toml",
                ));
            },
            vec![],
        );
        h.run();
        h.get_by_label("Permissions (1 remembered)");
        h.get_by_label("vault: secureStorage always allowed (since 2026-11-22T10:00:00Z)");
        h.get_by_label("every app: secureStorage denied (locked)");
        h.get_by_label("Revoke vault secureStorage").click();
        h.run();
        assert_eq!(
            h.state(),
            &[PanelAction::Revoke {
                app_id: "vault".into(),
                api: Api::SecureStorage
            }]
        );
    }

    #[test]
    fn lists_apps_and_stops_the_one_clicked() {
        let mut h = harness(vec![
            app("watchlist", AppState::Ready),
            app("news", AppState::Starting),
        ]);
        h.run();
        h.get_by_label("watchlist title");
        h.get_by_label("news-1");
        h.get_by_label("ready");
        h.get_by_label("2 running, 2 in all");
        // The health columns.
        h.get_all_by_label("75 s").next().unwrap();
        h.get_all_by_label("1.5 %").next().unwrap();
        h.get_all_by_label("107 MB").next().unwrap();
        h.get_all_by_label("0.4 s ago").next().unwrap();
        assert_eq!(h.get_all_by_label("Inspect").count(), 2);
        let stops: Vec<_> = h.get_all_by_label("Stop").collect();
        assert_eq!(stops.len(), 2);
        stops[1].click();
        h.run();
        assert_eq!(h.state().actions, [PanelAction::Stop("news-1".into())]);
    }

    #[test]
    fn an_app_not_responding_offers_wait_and_restart() {
        let mut h = harness(vec![
            app("watchlist", AppState::Ready),
            app("chart", AppState::NotResponding),
        ]);
        h.run();
        h.get_by_label("not-responding");
        // Only the hung app offers Wait; both can be restarted.
        let waits: Vec<_> = h.get_all_by_label("Wait").collect();
        assert_eq!(waits.len(), 1);
        waits[0].click();
        h.run();
        let restarts: Vec<_> = h.get_all_by_label("Restart").collect();
        assert_eq!(restarts.len(), 2);
        restarts[1].click();
        h.run();
        assert_eq!(
            h.state().actions,
            [
                PanelAction::Wait("chart-1".into()),
                PanelAction::Restart("chart-1".into())
            ]
        );
    }

    #[test]
    fn stopped_apps_cannot_be_stopped_again_and_show_how_they_ended() {
        let mut stopped = app("chart", AppState::Crashed);
        stopped.exit = Some("killed by signal 9".into());
        let mut h = harness(vec![stopped]);
        h.run();
        h.get_by_label("crashed (killed by signal 9)");
        h.get_by_label("Stop").click();
        h.run();
        assert!(h.state().actions.is_empty());
    }

    #[test]
    fn launches_the_demo_or_a_typed_workspace() {
        let mut h = harness(vec![]);
        h.run();
        h.get_by_label("Launch demo").click();
        h.run();
        h.get_by_label("Launch").click();
        h.run();
        assert_eq!(
            h.state().actions,
            [PanelAction::LaunchDemo],
            "Launch is disabled while empty"
        );
        h.state_mut().form.workspace_path = "/tmp/ws.json".into();
        h.run();
        h.get_by_label("Launch").click();
        h.run();
        assert_eq!(
            h.state().actions,
            [
                PanelAction::LaunchDemo,
                PanelAction::LaunchWorkspace("/tmp/ws.json".into())
            ]
        );
    }

    #[test]
    fn shows_the_outcome_of_the_last_action() {
        let mut h = harness(vec![]);
        h.state_mut().form.status = Some((true, "workspace x: bad".into()));
        h.run();
        h.get_by_label("workspace x: bad");
    }
}
