//! The Settings view: every setting in force and where it came from; the keys the
//! desktop owner's policy locks are marked locked, with what they overrode.

use eframe::egui;

use crate::config::{
    Config,
    layers::{Setting, Source},
};

/// One setting as the view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingRow {
    /// `key = value`.
    pub line: String,
    /// Where it came from, in words.
    pub source: String,
    /// Whether the policy holds it.
    pub locked: bool,
}

impl SettingRow {
    /// The rows of `config`'s settings.
    pub fn of(config: &Config) -> Vec<SettingRow> {
        let describe =
            |source: &Source| config.provenance.describe(source, &config.policy_in_force);
        config
            .provenance
            .settings
            .iter()
            .map(|s: &Setting| SettingRow {
                line: format!("{} = {}", s.key, s.value),
                source: describe(&s.source),
                locked: s.locked(),
            })
            .collect()
    }
}

/// Draws the Settings view from the rows and the settings file's path.
pub fn draw_settings(ui: &mut egui::Ui, rows: &[SettingRow], file: &str) {
    let locked = rows.iter().filter(|r| r.locked).count();
    egui::CollapsingHeader::new(format!("Settings ({locked} locked by policy)"))
        .id_salt("settings")
        .show(ui, |ui| {
            ui.label(format!(
                "From {file}; `weft config show` prints the same. Locked settings cannot \
                 be changed from the file or the command line."
            ));
            egui::Grid::new("settings-grid")
                .num_columns(2)
                .striped(true)
                .show(ui, |ui| {
                    for row in rows {
                        ui.monospace(&row.line);
                        if row.locked {
                            ui.strong(&row.source);
                        } else {
                            ui.label(&row.source);
                        }
                        ui.end_row();
                    }
                });
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use egui_kittest::{Harness, kittest::Queryable};

    #[test]
    fn locked_settings_are_marked_with_the_policy_that_holds_them() {
        let rows = vec![
            SettingRow {
                line: "log.level = \"warn\"".into(),
                source: "locked by policy /etc/weft/policy.toml".into(),
                locked: true,
            },
            SettingRow {
                line: "app_logs.keep_files = 4".into(),
                source: "default".into(),
                locked: false,
            },
        ];
        let mut h = Harness::new_ui(move |ui| draw_settings(ui, &rows, "/home/u/config.toml"));
        h.run();
        h.get_by_label("Settings (1 locked by policy)").click();
        h.run();
        h.get_by_label("log.level = \"warn\"");
        h.get_by_label("locked by policy /etc/weft/policy.toml");
        h.get_by_label("app_logs.keep_files = 4");
        h.get_by_label("default");
    }
}
