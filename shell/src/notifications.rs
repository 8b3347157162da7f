//! The notification centre: what pages show with `weft.notifications.create`, kept
//! (the last 200, with their app and whether they were read) for the panel and
//! `weft notifications list`, and shown on the desktop (freedesktop notifications over
//! D-Bus, through `notify-rust`) where the desktop has a notification server.
//!
//! Clicking a notification — on the desktop or in the panel — brings its app to front
//! and tells its page (`{"id", "action": "default"}`); an action button tells the page
//! which (`{"id", "action": "<its id>"}`). Pages hear it through
//! `weft.notifications.onAction`: the shell sends the event to that instance alone.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use weft_proto::{
    Identity,
    frame::{Notification, NotificationButton, WindowAction},
};
use weft_supervisor::Supervisor;

use crate::locking::lock;

/// Notifications kept; the oldest go first.
const KEPT: usize = 200;
/// Longest title, in characters.
const MAX_TITLE: usize = 200;
/// Longest body, in characters.
const MAX_BODY: usize = 2000;
/// Most action buttons.
const MAX_ACTIONS: usize = 3;
/// The action of a click on the notification itself.
pub const DEFAULT_ACTION: &str = "default";

/// A page's `create` arguments, checked: title, body and buttons; else the error for
/// the page.
fn parse_create(
    args: &Value,
) -> Result<(String, String, Vec<NotificationButton>), (&'static str, String)> {
    let bad = |m: &str| ("InvalidArgument", m.to_owned());
    let title = args
        .get("title")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| bad("a notification needs a title"))?;
    if title.chars().count() > MAX_TITLE {
        return Err(bad(&format!(
            "the title is longer than {MAX_TITLE} characters"
        )));
    }
    let body = args.get("body").and_then(Value::as_str).unwrap_or("");
    if body.chars().count() > MAX_BODY {
        return Err(bad(&format!(
            "the body is longer than {MAX_BODY} characters"
        )));
    }
    let actions: Vec<NotificationButton> = match args.get("actions") {
        None | Some(Value::Null) => vec![],
        Some(a) => serde_json::from_value(a.clone())
            .map_err(|_| bad("actions are a list of {id, title}"))?,
    };
    let well_formed = actions.len() <= MAX_ACTIONS
        && actions.iter().all(|a| {
            !a.id.is_empty()
                && a.id != DEFAULT_ACTION
                && a.id.len() <= 64
                && !a.title.is_empty()
                && a.title.chars().count() <= 64
        });
    if !well_formed {
        return Err(bad(
            "at most 3 actions, each with an id (not \"default\") and a title of 1 to 64 characters",
        ));
    }
    Ok((title.to_owned(), body.to_owned(), actions))
}

/// An event for a page: `(the instance, its payload)`.
pub type PageEvent = (Identity, Value);

/// The centre; cheap to share.
pub struct NotificationCentre {
    kept: Mutex<(VecDeque<Notification>, u64)>,
    supervisor: Supervisor,
    to_pages: mpsc::UnboundedSender<PageEvent>,
    on_change: Mutex<Option<Arc<dyn Fn() + Send + Sync>>>,
    /// Whether a desktop notification has failed already (said once in the log).
    desktop_failed: AtomicBool,
    /// Whether notifications are also shown on the desktop.
    desktop: bool,
}

impl NotificationCentre {
    /// A centre whose page events go to `to_pages`; `desktop` shows them on the
    /// desktop too.
    pub fn new(
        supervisor: Supervisor,
        to_pages: mpsc::UnboundedSender<PageEvent>,
        desktop: bool,
    ) -> Arc<Self> {
        Arc::new(Self {
            kept: Mutex::new((VecDeque::new(), 0)),
            supervisor,
            to_pages,
            on_change: Mutex::new(None),
            desktop_failed: AtomicBool::new(false),
            desktop,
        })
    }

    /// Calls `f` whenever the centre changes (for the panel's repaint).
    pub fn set_on_change(&self, f: Arc<dyn Fn() + Send + Sync>) {
        *lock(&self.on_change) = Some(f);
    }

    fn changed(&self) {
        if let Some(f) = lock(&self.on_change).clone() {
            f();
        }
    }

    /// Every notification kept, newest first.
    pub fn list(&self) -> Vec<Notification> {
        lock(&self.kept).0.iter().rev().cloned().collect()
    }

    /// `caller`'s page asks to show a notification (`{title, body, actions}`): its id,
    /// or the error code and message for the page.
    pub fn create(
        self: &Arc<Self>,
        caller: &Identity,
        args: &Value,
    ) -> Result<u64, (&'static str, String)> {
        let (title, body, actions) = parse_create(args)?;
        let app_title = self
            .supervisor
            .apps()
            .into_iter()
            .find(|a| a.instance_id == caller.instance_id)
            .map_or_else(|| caller.app_id.clone(), |a| a.title);
        let notification = {
            let mut kept = lock(&self.kept);
            kept.1 += 1;
            let n = Notification {
                id: kept.1,
                app_id: caller.app_id.clone(),
                instance_id: caller.instance_id.clone(),
                app_title,
                title,
                body,
                actions,
                at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
                read: false,
            };
            kept.0.push_back(n.clone());
            while kept.0.len() > KEPT {
                kept.0.pop_front();
            }
            n
        };
        tracing::info!(
            app_id = caller.app_id,
            id = notification.id,
            "notification: {}",
            notification.title
        );
        if self.desktop {
            self.show_on_desktop(notification.clone());
        }
        self.changed();
        Ok(notification.id)
    }

    /// Shows `n` on the desktop; its clicks come back from a thread of its own, which
    /// waits until the notification is closed.
    fn show_on_desktop(self: &Arc<Self>, n: Notification) {
        let centre = self.clone();
        let spawned = std::thread::Builder::new()
            .name("weft-notification".into())
            .spawn(move || {
                let mut desktop = notify_rust::Notification::new();
                desktop
                    .appname(&n.app_title)
                    .summary(&n.title)
                    .body(&n.body)
                    .action(DEFAULT_ACTION, "Open");
                for a in &n.actions {
                    desktop.action(&a.id, &a.title);
                }
                match desktop.show() {
                    Ok(handle) => handle.wait_for_action(|action| {
                        if action != "__closed" {
                            centre.act(n.id, action);
                        }
                    }),
                    Err(e) => {
                        if !centre.desktop_failed.swap(true, Ordering::Relaxed) {
                            tracing::warn!(
                                "notifications are kept in the panel only: the desktop shows none ({e})"
                            );
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot show a notification on the desktop: {e}");
        }
    }

    /// The user clicked notification `id` (action [`DEFAULT_ACTION`]) or one of its
    /// buttons: it is read, its page is told, and a click brings its app to front.
    /// False if there is no such notification or button.
    pub fn act(&self, id: u64, action: &str) -> bool {
        let found = {
            let mut kept = lock(&self.kept);
            kept.0.iter_mut().find(|n| n.id == id).and_then(|n| {
                let known = action == DEFAULT_ACTION || n.actions.iter().any(|a| a.id == action);
                known.then(|| {
                    n.read = true;
                    n.clone()
                })
            })
        };
        let Some(n) = found else {
            return false;
        };
        if action == DEFAULT_ACTION
            && let Err(e) = self
                .supervisor
                .window(Some(&n.instance_id), WindowAction::Focus)
        {
            tracing::info!(id, "the notification's app cannot be brought to front: {e}");
        }
        let instance = Identity {
            app_id: n.app_id.clone(),
            instance_id: n.instance_id.clone(),
        };
        let _ = self
            .to_pages
            .send((instance, json!({"id": id, "action": action})));
        self.changed();
        true
    }

    /// Marks every notification read.
    pub fn mark_all_read(&self) {
        for n in lock(&self.kept).0.iter_mut() {
            n.read = true;
        }
        self.changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_needs_a_title_and_at_most_three_named_actions() {
        let (title, body, actions) = parse_create(&json!({
            "title": "Order filled", "body": "100 AAPL",
            "actions": [{"id": "view", "title": "View"}]
        }))
        .unwrap();
        assert_eq!(
            (title.as_str(), body.as_str()),
            ("Order filled", "100 AAPL")
        );
        assert_eq!(actions[0].id, "view");
        for (bad, why) in [
            (json!({}), "needs a title"),
            (json!({"title": "  "}), "needs a title"),
            (json!({"title": "x".repeat(201)}), "longer than 200"),
            (
                json!({"title": "t", "body": "b".repeat(2001)}),
                "longer than 2000",
            ),
            (
                json!({"title": "t", "actions": "view"}),
                "list of {id, title}",
            ),
            (
                json!({"title": "t", "actions": [{"id": "default", "title": "D"}]}),
                "at most 3",
            ),
            (
                json!({"title": "t", "actions": [
                    {"id": "a", "title": "A"}, {"id": "b", "title": "B"},
                    {"id": "c", "title": "C"}, {"id": "d", "title": "D"}]}),
                "at most 3",
            ),
        ] {
            let (code, message) = parse_create(&bad).unwrap_err();
            assert_eq!(code, "InvalidArgument");
            assert!(message.contains(why), "{bad}: {message}");
        }
    }
}
