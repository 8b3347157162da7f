//! The notification centre: every notification apps showed, newest first, with its app
//! and time; unread ones marked. Clicking one brings its app to front (and tells the
//! page); its buttons call back into the page.

use eframe::egui;
use weft_proto::frame::Notification;

use super::PanelAction;

/// Draws the centre from `notifications` (newest first).
pub fn draw_notifications(ui: &mut egui::Ui, notifications: &[Notification]) -> Vec<PanelAction> {
    let mut actions = Vec::new();
    let unread = notifications.iter().filter(|n| !n.read).count();
    egui::CollapsingHeader::new(format!("Notifications ({unread} unread)"))
        .id_salt("notifications")
        .default_open(unread > 0)
        .show(ui, |ui| {
            if notifications.is_empty() {
                ui.label("No notifications yet.");
                return;
            }
            if unread > 0 && ui.button("Mark all read").clicked() {
                actions.push(PanelAction::MarkNotificationsRead);
            }
            for n in notifications {
                ui.horizontal(|ui| {
                    let heading = format!("{}: {}", n.app_title, n.title);
                    let heading = if n.read {
                        egui::RichText::new(heading)
                    } else {
                        egui::RichText::new(heading).strong()
                    };
                    if ui
                        .link(heading)
                        .on_hover_text("Bring its app to front")
                        .clicked()
                    {
                        actions.push(PanelAction::Notification {
                            id: n.id,
                            action: crate::notifications::DEFAULT_ACTION.to_owned(),
                        });
                    }
                    ui.label(&n.body);
                    ui.weak(&n.at);
                    for button in &n.actions {
                        if ui.button(&button.title).clicked() {
                            actions.push(PanelAction::Notification {
                                id: n.id,
                                action: button.id.clone(),
                            });
                        }
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
    use weft_proto::frame::NotificationButton;

    fn notification(id: u64, read: bool) -> Notification {
        Notification {
            id,
            app_id: "blotter".into(),
            instance_id: "blotter-1".into(),
            app_title: "Blotter".into(),
            title: format!("Order {id} filled"),
            body: "100 AAPL".into(),
            actions: vec![NotificationButton {
                id: "view".into(),
                title: format!("View {id}"),
            }],
            at: "2026-11-22T09:00:00Z".into(),
            read,
        }
    }

    #[test]
    fn the_centre_counts_unread_and_clicks_go_to_the_app_and_its_buttons_to_the_page() {
        let list = vec![notification(2, false), notification(1, true)];
        let mut h = Harness::new_ui_state(
            move |ui, actions: &mut Vec<PanelAction>| {
                actions.extend(draw_notifications(ui, &list));
            },
            vec![],
        );
        h.run();
        h.get_by_label("Notifications (1 unread)");
        h.get_by_label("Blotter: Order 2 filled").click();
        h.run();
        h.get_by_label("View 1").click();
        h.run();
        h.get_by_label("Mark all read").click();
        h.run();
        assert_eq!(
            h.state(),
            &[
                PanelAction::Notification {
                    id: 2,
                    action: "default".into()
                },
                PanelAction::Notification {
                    id: 1,
                    action: "view".into()
                },
                PanelAction::MarkNotificationsRead,
            ]
        );
    }
}
