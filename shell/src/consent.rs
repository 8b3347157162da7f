//! Consent prompts: when an app first asks for a sensitive API its manifest declares,
//! a small Weft window over the app (on top and focused, not inside the panel, which
//! may be minimised or on another monitor) says which app — title, appId, origin — asks
//! for what, with Allow once / Always allow / Deny / Always deny.
//!
//! Questions queue and one window shows at a time; questions of the same app instance
//! about the same API that arrive while one is open are answered with it. The caller
//! waits for the answer ([`Prompts::ask`]) up to a deadline, after which the question is
//! withdrawn and the call denied.
//!
//! The buttons only work once the window has been up for [`ARMING_DELAY`], so that a
//! click or key press meant for the app cannot answer a prompt that appeared under it.
//! Keyboard: Tab moves between the buttons, Enter or Space presses one, Escape denies.
//!
//! Immediate mode, kept apart from the data: [`draw`] reads a question and returns the
//! user's answer; the panel's event loop shows the window ([`show`]).

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use eframe::egui;
use tokio::sync::oneshot;
use weft_permissions::Api;
use weft_proto::{Identity, frame::AppInfo, launch::WindowBounds};

use crate::{locking::lock, prompt_window};

/// The prompt window's title.
pub const WINDOW_TITLE: &str = "Weft: permission request";

/// How long a prompt is shown before its buttons work.
pub const ARMING_DELAY: Duration = Duration::from_millis(600);

/// What the user answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentAnswer {
    /// This call only.
    AllowOnce,
    /// This call and every later one, until revoked.
    AlwaysAllow,
    /// Not this call.
    Deny,
    /// Not this call nor any later one, until revoked.
    AlwaysDeny,
}

impl ConsentAnswer {
    /// Whether the call goes through.
    pub fn allows(self) -> bool {
        matches!(self, ConsentAnswer::AllowOnce | ConsentAnswer::AlwaysAllow)
    }

    /// The answer's name in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentAnswer::AllowOnce => "allowOnce",
            ConsentAnswer::AlwaysAllow => "alwaysAllow",
            ConsentAnswer::Deny => "deny",
            ConsentAnswer::AlwaysDeny => "alwaysDeny",
        }
    }
}

/// A question for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentQuestion {
    /// The app instance asking.
    pub app: Identity,
    /// Its window title.
    pub title: String,
    /// Where its page comes from.
    pub origin: String,
    /// What it asks for.
    pub api: Api,
}

/// A question in the queue, with the key its answer names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// Names it in [`Prompts::answer`].
    pub key: u64,
    /// The question.
    pub question: ConsentQuestion,
}

/// The questions waiting, shared by the callers (who wait) and the panel (which shows
/// the first).
#[derive(Clone, Default)]
pub struct Prompts {
    queue: Arc<Mutex<Queue>>,
    repaint: Arc<Mutex<Option<egui::Context>>>,
}

#[derive(Default)]
struct Queue {
    next_key: u64,
    waiting: VecDeque<(Queued, Vec<oneshot::Sender<ConsentAnswer>>)>,
}

impl Prompts {
    /// Asks the user and waits for the answer; `None` if none came within `deadline`
    /// (the question is withdrawn).
    pub async fn ask(
        &self,
        question: ConsentQuestion,
        deadline: Duration,
    ) -> Option<ConsentAnswer> {
        let (tx, rx) = oneshot::channel();
        let key = {
            let mut queue = lock(&self.queue);
            match queue
                .waiting
                .iter_mut()
                .find(|(q, _)| q.question == question)
            {
                Some((q, waiters)) => {
                    waiters.push(tx);
                    q.key
                }
                None => {
                    queue.next_key += 1;
                    let key = queue.next_key;
                    queue
                        .waiting
                        .push_back((Queued { key, question }, vec![tx]));
                    key
                }
            }
        };
        self.wake();
        match tokio::time::timeout(deadline, rx).await {
            Ok(Ok(answer)) => Some(answer),
            _ => {
                self.withdraw(key);
                None
            }
        }
    }

    /// The question to show.
    pub fn first(&self) -> Option<Queued> {
        lock(&self.queue).waiting.front().map(|(q, _)| q.clone())
    }

    /// Answers question `key` for everyone waiting on it.
    pub fn answer(&self, key: u64, answer: ConsentAnswer) {
        let taken = {
            let mut queue = lock(&self.queue);
            let at = queue.waiting.iter().position(|(q, _)| q.key == key);
            at.and_then(|at| queue.waiting.remove(at))
        };
        if let Some((_, waiters)) = taken {
            for waiter in waiters {
                let _ = waiter.send(answer);
            }
        }
        self.wake();
    }

    fn withdraw(&self, key: u64) {
        let mut queue = lock(&self.queue);
        queue
            .waiting
            .retain(|(q, waiters)| q.key != key || waiters.iter().any(|w| !w.is_closed()));
        drop(queue);
        self.wake();
    }

    /// The panel's context, to wake it when a question comes or goes.
    pub fn set_repaint(&self, ctx: egui::Context) {
        *lock(&self.repaint) = Some(ctx);
    }

    fn wake(&self) {
        if let Some(ctx) = lock(&self.repaint).as_ref() {
            ctx.request_repaint();
        }
    }
}

/// Draws the question and returns the user's answer, if they gave one this frame. The
/// buttons work only when `armed`; Escape denies at any time.
pub fn draw(ui: &mut egui::Ui, question: &ConsentQuestion, armed: bool) -> Option<ConsentAnswer> {
    let mut answer = ui
        .input(|i| i.key_pressed(egui::Key::Escape))
        .then_some(ConsentAnswer::Deny);
    ui.heading(format!("{} asks to use {}", question.title, question.api));
    ui.label(format!("App: {} ({})", question.title, question.app.app_id));
    ui.label(format!("From: {}", question.origin));
    ui.separator();
    ui.label(format!(
        "If you allow it, this app may {}.",
        question.api.describe()
    ));
    ui.add_space(8.0);
    ui.horizontal(|ui| {
        for (label, choice) in [
            ("Allow once", ConsentAnswer::AllowOnce),
            ("Always allow", ConsentAnswer::AlwaysAllow),
            ("Deny", ConsentAnswer::Deny),
            ("Always deny", ConsentAnswer::AlwaysDeny),
        ] {
            if ui.add_enabled(armed, egui::Button::new(label)).clicked() {
                answer = Some(choice);
            }
        }
    });
    ui.add_space(4.0);
    ui.small("Allow once and Deny apply to this request only. Remembered answers are listed in the panel under Permissions, where they can be revoked.");
    answer
}

/// How big the prompt window is.
const SIZE: [f32; 2] = [460.0, 220.0];

/// Shows the question in its own window, centred over the window of the app asking
/// (`over`, when known), focused and on top, since `shown_at`; returns its key and the
/// answer once given. Closing the window denies.
pub fn show(
    ctx: &egui::Context,
    queued: &Queued,
    over: Option<WindowBounds>,
    shown_at: Instant,
) -> Option<(u64, ConsentAnswer)> {
    let shown_for = shown_at.elapsed();
    let armed = shown_for >= ARMING_DELAY;
    if !armed {
        ctx.request_repaint_after(ARMING_DELAY - shown_for);
    }
    prompt_window::show(
        ctx,
        ("weft-consent", queued.key),
        WINDOW_TITLE,
        SIZE,
        over,
        |ui, closed| {
            draw(ui, &queued.question, armed)
                .or(closed.then_some(ConsentAnswer::Deny))
                .map(|answer| (queued.key, answer))
        },
    )
}

/// Where the prompt shows: over the app asking.
pub fn over(queued: &Queued, apps: &[AppInfo]) -> Option<WindowBounds> {
    prompt_window::over(apps, &queued.question.app.instance_id)
}

#[cfg(test)]
mod tests {
    use egui_kittest::{Harness, kittest::Queryable};

    use super::*;

    fn question(instance: &str) -> ConsentQuestion {
        ConsentQuestion {
            app: Identity {
                app_id: "vault".into(),
                instance_id: instance.into(),
            },
            title: "Vault".into(),
            origin: "https://vault.example".into(),
            api: Api::SecureStorage,
        }
    }

    fn harness(armed: bool) -> Harness<'static, Vec<ConsentAnswer>> {
        let q = question("v-1");
        Harness::new_ui_state(
            move |ui, answers: &mut Vec<ConsentAnswer>| {
                if let Some(a) = draw(ui, &q, armed) {
                    answers.push(a);
                }
            },
            vec![],
        )
    }

    #[test]
    fn says_which_app_from_where_asks_for_what() {
        let mut h = harness(true);
        h.run();
        h.get_by_label("Vault asks to use secureStorage");
        h.get_by_label("App: Vault (vault)");
        h.get_by_label("From: https://vault.example");
        h.get_by_label(&format!(
            "If you allow it, this app may {}.",
            Api::SecureStorage.describe()
        ));
        assert!(h.state().is_empty());
    }

    #[test]
    fn each_button_gives_its_answer_and_escape_denies() {
        let mut h = harness(true);
        h.run();
        for label in ["Allow once", "Always allow", "Deny", "Always deny"] {
            h.get_by_label(label).click();
            h.run();
        }
        h.key_press(egui::Key::Escape);
        h.run();
        assert_eq!(
            *h.state(),
            [
                ConsentAnswer::AllowOnce,
                ConsentAnswer::AlwaysAllow,
                ConsentAnswer::Deny,
                ConsentAnswer::AlwaysDeny,
                ConsentAnswer::Deny
            ]
        );
    }

    #[test]
    fn the_keyboard_reaches_each_button_with_tab() {
        for (tabs, expected) in [
            (1, ConsentAnswer::AllowOnce),
            (2, ConsentAnswer::AlwaysAllow),
            (3, ConsentAnswer::Deny),
            (4, ConsentAnswer::AlwaysDeny),
        ] {
            let mut h = harness(true);
            h.run();
            for _ in 0..tabs {
                h.key_press(egui::Key::Tab);
                h.run();
            }
            h.key_press(egui::Key::Enter);
            h.run();
            assert_eq!(*h.state(), [expected], "{tabs} tabs");
        }
    }

    #[test]
    fn before_it_is_armed_nothing_but_escape_answers() {
        let mut h = harness(false);
        h.run();
        h.get_by_label("Always allow").click();
        h.run();
        h.key_press(egui::Key::Tab);
        h.run();
        h.key_press(egui::Key::Enter);
        h.run();
        assert!(h.state().is_empty());
        h.key_press(egui::Key::Escape);
        h.run();
        assert_eq!(*h.state(), [ConsentAnswer::Deny]);
    }

    #[tokio::test]
    async fn questions_queue_one_at_a_time_and_the_same_question_is_asked_once() {
        let prompts = Prompts::default();
        let deadline = Duration::from_secs(30);
        let first = tokio::spawn({
            let p = prompts.clone();
            async move { p.ask(question("v-1"), deadline).await }
        });
        let again = tokio::spawn({
            let p = prompts.clone();
            async move { p.ask(question("v-1"), deadline).await }
        });
        let other = tokio::spawn({
            let p = prompts.clone();
            async move { p.ask(question("v-2"), deadline).await }
        });
        while lock(&prompts.queue).waiting.len() < 2 || lock(&prompts.queue).waiting[0].1.len() < 2
        {
            tokio::task::yield_now().await;
        }
        let shown = prompts.first().unwrap();
        assert_eq!(shown.question.app.instance_id, "v-1");
        prompts.answer(shown.key, ConsentAnswer::AllowOnce);
        assert_eq!(first.await.unwrap(), Some(ConsentAnswer::AllowOnce));
        assert_eq!(again.await.unwrap(), Some(ConsentAnswer::AllowOnce));
        let next = prompts.first().unwrap();
        assert_eq!(next.question.app.instance_id, "v-2");
        prompts.answer(next.key, ConsentAnswer::Deny);
        assert_eq!(other.await.unwrap(), Some(ConsentAnswer::Deny));
        assert!(prompts.first().is_none());
    }

    #[tokio::test]
    async fn an_unanswered_question_is_withdrawn_at_its_deadline() {
        let prompts = Prompts::default();
        let answer = prompts
            .ask(question("v-1"), Duration::from_millis(50))
            .await;
        assert_eq!(answer, None);
        assert!(prompts.first().is_none());
    }
}
