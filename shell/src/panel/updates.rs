//! The Updates view: the update settings in force and where each came from (a policy
//! lock shows as such), this install's versions, what the updater is doing (a download's
//! progress bar), what it did last and when it checks next, and the buttons: check now,
//! install the update, roll back to the previous version in one click.

use std::time::SystemTime;

use eframe::egui;

use super::PanelAction;
use crate::{
    update_command::UpdatesView,
    update_service::{Activity, Progress},
};

/// Draws the Updates view and returns what the user asked for.
pub fn draw_updates(
    ui: &mut egui::Ui,
    view: &UpdatesView,
    progress: &Progress,
) -> Vec<PanelAction> {
    let mut actions = Vec::new();
    let idle = progress.activity.is_none();
    egui::CollapsingHeader::new(format!("Updates (weft {})", view.running))
        .id_salt("updates")
        .show(ui, |ui| {
            draw_progress(ui, progress);
            for line in &view.settings {
                if line.contains("locked by policy") {
                    ui.strong(line);
                } else {
                    ui.label(line);
                }
            }
            match &view.install {
                None => {
                    ui.label(
                        "This weft is not installed side by side: it cannot be updated in place.",
                    );
                }
                Some(status) => {
                    if let Some(trial) = &status.trial {
                        ui.label(format!(
                            "{} is on trial ({} starts so far) until its self-test passes.",
                            trial.version, trial.starts
                        ));
                    }
                    if !status.refused.is_empty() {
                        let refused: Vec<String> =
                            status.refused.iter().map(ToString::to_string).collect();
                        ui.label(format!("Never offered again: {}", refused.join(", ")));
                    }
                    ui.horizontal(|ui| {
                        if ui
                            .add_enabled(view.enabled && idle, egui::Button::new("Check now"))
                            .clicked()
                        {
                            actions.push(PanelAction::CheckUpdates);
                        }
                        if ui
                            .add_enabled(view.enabled && idle, egui::Button::new("Install update"))
                            .clicked()
                        {
                            actions.push(PanelAction::ApplyUpdate);
                        }
                        if let Some(previous) = status.previous.first()
                            && ui
                                .add_enabled(
                                    idle,
                                    egui::Button::new(format!("Roll back to {previous}")),
                                )
                                .clicked()
                        {
                            actions.push(PanelAction::RollbackUpdate);
                        }
                    });
                }
            }
        });
    actions
}

/// What the updater is doing, did last, and when it checks next.
fn draw_progress(ui: &mut egui::Ui, progress: &Progress) {
    match progress.activity {
        Some(Activity::Checking) => {
            ui.label("Checking for updates…");
        }
        Some(Activity::Installing { done, total }) => {
            let fraction = if total == 0 {
                0.0
            } else {
                done as f32 / total as f32
            };
            ui.add(
                egui::ProgressBar::new(fraction)
                    .show_percentage()
                    .text(format!(
                        "Downloading the update: {} of {} KiB",
                        done.div_ceil(1024),
                        total.div_ceil(1024)
                    )),
            );
        }
        Some(Activity::RollingBack) => {
            ui.label("Rolling back…");
        }
        None => {}
    }
    if let Some((at, text, failed)) = &progress.last {
        let line = format!("{} ({})", text, ago(*at));
        if *failed {
            ui.colored_label(ui.visuals().error_fg_color, line);
        } else {
            ui.label(line);
        }
    }
    if let Some(next) = progress.next_check {
        let minutes = next
            .duration_since(SystemTime::now())
            .map_or(0, |d| d.as_secs().div_ceil(60));
        ui.label(if minutes == 0 {
            "Next scheduled check: now".to_owned()
        } else {
            format!("Next scheduled check in {minutes} min")
        });
    }
}

/// `at` as a time ago, in words.
fn ago(at: SystemTime) -> String {
    let secs = SystemTime::now()
        .duration_since(at)
        .map_or(0, |d| d.as_secs());
    match secs {
        0..60 => "just now".into(),
        60..3600 => format!("{} min ago", secs / 60),
        _ => format!("{} h ago", secs / 3600),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use egui_kittest::{Harness, kittest::Queryable};
    use semver::Version;
    use weft_updater::install::{Status, Trial};

    use super::*;

    fn view(enabled: bool, install: Option<Status>) -> UpdatesView {
        UpdatesView {
            enabled,
            settings: vec![
                format!("updates.enabled: {enabled} (locked by policy /etc/weft/policy.toml)"),
                "updates.channel: stable (default)".into(),
            ],
            install,
            running: Version::new(2, 0, 0),
        }
    }

    fn harness(view: UpdatesView) -> Harness<'static, Vec<PanelAction>> {
        harness_with(view, Progress::default())
    }

    fn harness_with(view: UpdatesView, progress: Progress) -> Harness<'static, Vec<PanelAction>> {
        let mut h = Harness::new_ui_state(
            move |ui, actions: &mut Vec<PanelAction>| {
                actions.extend(draw_updates(ui, &view, &progress));
            },
            Vec::new(),
        );
        h.get_by_label("Updates (weft 2.0.0)").click();
        h.run();
        h
    }

    #[test]
    fn rollback_is_one_click_and_what_policy_decided_is_shown() {
        let status = Status {
            current: Some(Version::new(2, 0, 0)),
            previous: vec![Version::new(1, 9, 0)],
            trial: Some(Trial {
                version: Version::new(2, 0, 0),
                starts: 1,
            }),
            refused: BTreeSet::from([Version::new(1, 9, 5)]),
        };
        let mut h = harness(view(true, Some(status)));
        h.get_by_label("updates.enabled: true (locked by policy /etc/weft/policy.toml)");
        h.get_by_label("2.0.0 is on trial (1 starts so far) until its self-test passes.");
        h.get_by_label("Never offered again: 1.9.5");
        h.get_by_label("Roll back to 1.9.0").click();
        h.run();
        h.get_by_label("Check now").click();
        h.run();
        assert_eq!(
            h.state(),
            &[PanelAction::RollbackUpdate, PanelAction::CheckUpdates]
        );
    }

    #[test]
    fn updates_turned_off_disable_the_buttons_and_an_unmanaged_build_says_why() {
        let status = Status {
            current: Some(Version::new(2, 0, 0)),
            previous: vec![],
            trial: None,
            refused: BTreeSet::new(),
        };
        let mut h = harness(view(false, Some(status)));
        h.get_by_label("Install update").click();
        h.run();
        assert!(h.state().is_empty(), "disabled by policy");
        assert!(
            h.query_by_label_contains("Roll back").is_none(),
            "nothing to roll back to"
        );
        let h = harness(view(true, None));
        h.get_by_label("This weft is not installed side by side: it cannot be updated in place.");
    }

    #[test]
    fn a_download_shows_its_progress_and_holds_the_buttons_until_done() {
        let status = Status {
            current: Some(Version::new(2, 0, 0)),
            previous: vec![Version::new(1, 9, 0)],
            trial: None,
            refused: BTreeSet::new(),
        };
        let busy = Progress {
            activity: Some(Activity::Installing {
                done: 512 * 1024,
                total: 2048 * 1024,
            }),
            last: Some((
                SystemTime::now(),
                "up to date: 2.0.0 is the newest on stable".into(),
                false,
            )),
            next_check: Some(SystemTime::now() + std::time::Duration::from_secs(90 * 60)),
        };
        let mut h = harness_with(view(true, Some(status)), busy);
        h.get_by_label_contains("Downloading the update: 512 of 2048 KiB");
        h.get_by_label("up to date: 2.0.0 is the newest on stable (just now)");
        h.get_by_label("Next scheduled check in 90 min");
        h.get_by_label("Install update").click();
        h.get_by_label("Roll back to 1.9.0").click();
        h.run();
        assert!(
            h.state().is_empty(),
            "nothing starts while the updater is busy"
        );
    }
}
