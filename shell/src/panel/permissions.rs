//! The views of what the user chose to remember: permission answers (revocable, beside
//! what the desktop owner's policy forces) and FDC3 intent choices (forgettable).

use eframe::egui;
use weft_permissions::{Answer, Api};

use super::PanelAction;
use crate::{fdc3_prompts::Remembered, permission_store::Remembered as RememberedPermission};

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

#[cfg(test)]
mod tests {
    use super::*;
    use egui_kittest::{Harness, kittest::Queryable};

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
}
