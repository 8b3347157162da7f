//! The Workspaces view: the saved layout snapshots, each with Restore and Delete, and
//! a name to save the running apps' layout under.

use eframe::egui;

use super::PanelAction;
use crate::workspace_snapshots::Listed;

/// Draws the view from the snapshots listed and the name being typed.
pub fn draw_workspaces(ui: &mut egui::Ui, saved: &[Listed], name: &mut String) -> Vec<PanelAction> {
    let mut actions = Vec::new();
    egui::CollapsingHeader::new(format!("Workspaces ({} saved)", saved.len()))
        .id_salt("workspaces")
        .default_open(true)
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.label("Save the layout as:");
                let field = ui.add(
                    egui::TextEdit::singleline(name)
                        .hint_text("Morning")
                        .desired_width(180.0),
                );
                let typed = name.trim();
                let submitted = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                if (ui
                    .add_enabled(!typed.is_empty(), egui::Button::new("Save layout"))
                    .clicked()
                    || submitted)
                    && !typed.is_empty()
                {
                    actions.push(PanelAction::SaveLayout(typed.to_owned()));
                }
            });
            if saved.is_empty() {
                ui.label("No saved workspaces yet.");
            }
            egui::Grid::new("workspaces-grid")
                .num_columns(3)
                .striped(true)
                .show(ui, |ui| {
                    for s in saved {
                        ui.label(&s.name);
                        ui.label(format!("{} app(s), saved {}", s.apps, s.saved_at));
                        ui.horizontal(|ui| {
                            if ui.button(format!("Restore {}", s.name)).clicked() {
                                actions.push(PanelAction::RestoreLayout(s.name.clone()));
                            }
                            if ui.button(format!("Delete {}", s.name)).clicked() {
                                actions.push(PanelAction::DeleteLayout(s.name.clone()));
                            }
                        });
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

    struct State {
        name: String,
        actions: Vec<PanelAction>,
    }

    #[test]
    fn snapshots_are_listed_restored_deleted_and_saved_by_name() {
        let saved = vec![Listed {
            name: "Morning".into(),
            saved_at: "2026-11-22T08:00:00Z".into(),
            apps: 3,
        }];
        let mut h = Harness::new_ui_state(
            move |ui, s: &mut State| {
                let actions = draw_workspaces(ui, &saved, &mut s.name);
                s.actions.extend(actions);
            },
            State {
                name: String::new(),
                actions: vec![],
            },
        );
        h.run();
        h.get_by_label("Workspaces (1 saved)");
        h.get_by_label("3 app(s), saved 2026-11-22T08:00:00Z");
        h.get_by_label("Restore Morning").click();
        h.run();
        h.get_by_label("Delete Morning").click();
        h.run();
        h.get_by_label("Save layout").click();
        h.run();
        assert_eq!(
            h.state().actions,
            [
                PanelAction::RestoreLayout("Morning".into()),
                PanelAction::DeleteLayout("Morning".into())
            ],
            "Save is disabled without a name"
        );
        h.state_mut().name = "Evening ".into();
        h.run();
        h.get_by_label("Save layout").click();
        h.run();
        assert_eq!(
            h.state().actions.last(),
            Some(&PanelAction::SaveLayout("Evening".into()))
        );
    }
}
