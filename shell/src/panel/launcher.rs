//! The launcher: every app known from the workspaces and App Directories (title, icon,
//! description), found by typing part of its title, appId or description, keyboard
//! first — type, arrows, Enter. Enter focuses a running app or starts one that is not
//! running; "New" always starts another instance.

use eframe::egui;
use weft_proto::frame::WindowAction;

use super::PanelAction;

/// An app as the launcher lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LauncherEntry {
    /// The app.
    pub app_id: String,
    /// Its title.
    pub title: String,
    /// What it is, when its record says.
    pub description: Option<String>,
    /// Its icon's URL, when its record has one.
    pub icon: Option<String>,
    /// How many of its instances run.
    pub running: usize,
}

/// What the user typed and which match is selected.
#[derive(Debug, Default)]
pub struct LauncherState {
    /// The search text.
    pub query: String,
    /// The selected match, by position.
    pub selected: usize,
    /// Put the keyboard in the search field at the next frame (the tray's Launcher).
    pub focus_requested: bool,
}

/// The entries matching `query` (case-insensitive, in title, appId or description),
/// in their order; all of them for an empty query.
pub fn matching<'a>(entries: &'a [LauncherEntry], query: &str) -> Vec<&'a LauncherEntry> {
    let query = query.trim().to_lowercase();
    entries
        .iter()
        .filter(|e| {
            query.is_empty()
                || e.title.to_lowercase().contains(&query)
                || e.app_id.to_lowercase().contains(&query)
                || e.description
                    .as_deref()
                    .is_some_and(|d| d.to_lowercase().contains(&query))
        })
        .collect()
}

/// What opening `entry` means: focus it if it runs, else start it.
fn open(entry: &LauncherEntry) -> PanelAction {
    if entry.running > 0 {
        PanelAction::Window {
            target: Some(entry.app_id.clone()),
            action: WindowAction::Focus,
        }
    } else {
        PanelAction::LaunchApp(entry.app_id.clone())
    }
}

/// Draws the launcher and returns what the user asked for.
pub fn draw_launcher(
    ui: &mut egui::Ui,
    entries: &[LauncherEntry],
    state: &mut LauncherState,
) -> Vec<PanelAction> {
    let mut actions = Vec::new();
    egui::CollapsingHeader::new(format!("Launcher ({} apps)", entries.len()))
        .id_salt("launcher")
        .default_open(true)
        .show(ui, |ui| {
            let search = ui.add(
                egui::TextEdit::singleline(&mut state.query)
                    .hint_text("Find an app (Ctrl+K): type part of its name")
                    .desired_width(320.0),
            );
            if std::mem::take(&mut state.focus_requested)
                || ui.input(|i| i.modifiers.command && i.key_pressed(egui::Key::K))
            {
                search.request_focus();
                search.scroll_to_me(Some(egui::Align::TOP));
            }
            let found = matching(entries, &state.query);
            if search.changed() {
                state.selected = 0;
            }
            state.selected = state.selected.min(found.len().saturating_sub(1));
            if search.has_focus() || search.lost_focus() {
                let (down, up, enter) = ui.input(|i| {
                    (
                        i.key_pressed(egui::Key::ArrowDown),
                        i.key_pressed(egui::Key::ArrowUp),
                        i.key_pressed(egui::Key::Enter),
                    )
                });
                if down && state.selected + 1 < found.len() {
                    state.selected += 1;
                }
                if up {
                    state.selected = state.selected.saturating_sub(1);
                }
                if enter && let Some(entry) = found.get(state.selected) {
                    actions.push(open(entry));
                    search.request_focus();
                }
            }
            if found.is_empty() {
                ui.label(if entries.is_empty() {
                    "No app is known yet: launch a workspace or an App Directory."
                } else {
                    "No app matches."
                });
            }
            egui::Grid::new("launcher-grid")
                .num_columns(4)
                .show(ui, |ui| {
                    for (i, entry) in found.iter().enumerate() {
                        match &entry.icon {
                            Some(icon) => {
                                ui.add(
                                    egui::Image::new(icon.as_str())
                                        .max_size(egui::vec2(20.0, 20.0)),
                                );
                            }
                            None => {
                                ui.label("");
                            }
                        }
                        let selected = i == state.selected;
                        let running = match entry.running {
                            0 => String::new(),
                            n => format!(" ({n} running)"),
                        };
                        let title =
                            ui.selectable_label(selected, format!("{}{running}", entry.title));
                        if title.clicked() {
                            state.selected = i;
                            actions.push(open(entry));
                        }
                        ui.label(entry.description.as_deref().unwrap_or(""));
                        if ui
                            .button(format!("New {}", entry.title))
                            .on_hover_text("Start another instance")
                            .clicked()
                        {
                            actions.push(PanelAction::LaunchApp(entry.app_id.clone()));
                        }
                        ui.end_row();
                    }
                });
        });
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use egui_kittest::{Harness, kittest::Queryable};

    fn entry(app_id: &str, title: &str, running: usize) -> LauncherEntry {
        LauncherEntry {
            app_id: app_id.into(),
            title: title.into(),
            description: Some(format!("{title} for traders")),
            icon: None,
            running,
        }
    }

    struct State {
        launcher: LauncherState,
        actions: Vec<PanelAction>,
    }

    fn harness(entries: Vec<LauncherEntry>) -> Harness<'static, State> {
        Harness::new_ui_state(
            move |ui, s: &mut State| {
                let actions = draw_launcher(ui, &entries, &mut s.launcher);
                s.actions.extend(actions);
            },
            State {
                launcher: LauncherState::default(),
                actions: vec![],
            },
        )
    }

    #[test]
    fn an_app_is_found_by_part_of_its_title_and_started_with_the_keyboard_alone() {
        let mut h = harness(vec![
            entry("blotter", "Order Blotter", 0),
            entry("pricer", "FX Pricer", 0),
            entry("pricer-pro", "FX Pricer Pro", 0),
            entry("news", "News", 1),
        ]);
        h.run();
        // Ctrl+K to the search field, type, arrow down to the second match, Enter.
        h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::K);
        h.run();
        h.run();
        let search = h.get_by_role(egui::accesskit::Role::TextInput);
        assert!(search.is_focused());
        search.type_text("pric");
        h.run();
        assert!(h.query_by_label("Order Blotter").is_none(), "filtered out");
        h.get_by_label("FX Pricer");
        h.key_press(egui::Key::ArrowDown);
        h.run();
        h.key_press(egui::Key::Enter);
        h.run();
        assert_eq!(
            h.state().actions,
            [PanelAction::LaunchApp("pricer-pro".into())]
        );
    }

    #[test]
    fn the_trays_launcher_puts_the_keyboard_in_the_search() {
        let mut h = harness(vec![entry("news", "News", 0), entry("chart", "Chart", 0)]);
        h.run();
        assert!(!h.get_by_role(egui::accesskit::Role::TextInput).is_focused());
        h.state_mut().launcher.focus_requested = true;
        h.run();
        h.run();
        let search = h.get_by_role(egui::accesskit::Role::TextInput);
        assert!(search.is_focused());
        assert!(!h.state().launcher.focus_requested, "asked once");
        search.type_text("cha");
        h.run();
        h.key_press(egui::Key::Enter);
        h.run();
        assert_eq!(h.state().actions, [PanelAction::LaunchApp("chart".into())]);
    }

    #[test]
    fn a_running_app_is_focused_and_new_starts_another() {
        let mut h = harness(vec![entry("news", "News", 1)]);
        h.run();
        // Tab reaches the search field too.
        for _ in 0..2 {
            h.key_press(egui::Key::Tab);
            h.run();
        }
        let search = h.get_by_role(egui::accesskit::Role::TextInput);
        assert!(search.is_focused());
        search.type_text("NEWS");
        h.run();
        h.key_press(egui::Key::Enter);
        h.run();
        h.get_by_label("New News").click();
        h.run();
        assert_eq!(
            h.state().actions,
            [
                PanelAction::Window {
                    target: Some("news".into()),
                    action: WindowAction::Focus
                },
                PanelAction::LaunchApp("news".into())
            ]
        );
        h.get_by_label("News (1 running)");
    }

    #[test]
    fn matching_looks_in_titles_ids_and_descriptions() {
        let entries = vec![
            entry("blotter", "Order Blotter", 0),
            entry("news", "News", 0),
        ];
        let ids = |q: &str| -> Vec<String> {
            matching(&entries, q)
                .iter()
                .map(|e| e.app_id.clone())
                .collect()
        };
        assert_eq!(ids(""), ["blotter", "news"]);
        assert_eq!(ids("BLOT"), ["blotter"]);
        assert_eq!(ids("news for"), ["news"]);
        assert!(ids("chart").is_empty());
    }
}
