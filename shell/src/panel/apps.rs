//! The apps view: the launch row, the outcome of the last action, and one row per app
//! instance with its health and the buttons that act on it.

use std::path::PathBuf;

use eframe::egui;
use weft_proto::frame::{AppInfo, AppState, WindowAction};

use super::PanelAction;

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
    ui.horizontal(|ui| {
        for (label, action) in [
            ("Bring all to front", WindowAction::Focus),
            ("Show all", WindowAction::Show),
            ("Hide all", WindowAction::Hide),
        ] {
            if ui.button(label).clicked() {
                actions.push(PanelAction::Window {
                    target: None,
                    action,
                });
            }
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
                        if ui
                            .add_enabled(running, egui::Button::new("Focus"))
                            .on_hover_text("Show its window, bring it to front and focus it")
                            .clicked()
                        {
                            actions.push(PanelAction::Window {
                                target: Some(app.instance_id.clone()),
                                action: WindowAction::Focus,
                            });
                        }
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
        h.state_mut().actions.clear();
        h.get_all_by_label("Focus").nth(1).unwrap().click();
        h.run();
        h.get_by_label("Hide all").click();
        h.run();
        assert_eq!(
            h.state().actions,
            [
                PanelAction::Window {
                    target: Some("news-1".into()),
                    action: WindowAction::Focus
                },
                PanelAction::Window {
                    target: None,
                    action: WindowAction::Hide
                }
            ]
        );
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
