//! The intent resolver: when several apps can handle a raised intent, a small Weft
//! window over the app that raised it asks the user which one — a running instance or
//! a new one — with "Remember my choice" for that intent and context type. Keyboard
//! first: arrows move, Enter chooses, Escape cancels, 1–9 choose directly. Questions
//! queue; one window shows at a time.
//!
//! Immediate mode, kept apart from the data: [`draw`] reads a question and the
//! window's own state and returns the user's answer; the panel's event loop shows the
//! window ([`show`]) and hands answers to the agent. The remembered choices are kept in
//! `DATA_DIR/fdc3/choices.json` and listed in the panel, where they can be forgotten.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use anyhow::Context as _;
use eframe::egui;
use serde::{Deserialize, Serialize};
use weft_fdc3::ResolveRequest;
use weft_proto::launch::WindowBounds;

/// The user's answer to a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// This option; remember it for the intent and context type when `remember`.
    Choose {
        /// The option's index.
        option: usize,
        /// Whether to remember it.
        remember: bool,
    },
    /// None of them.
    Cancel,
}

/// The resolver window's own state.
#[derive(Debug, Default)]
pub struct ResolverForm {
    /// The option the keyboard is on.
    pub selected: usize,
    /// Whether "Remember my choice" is ticked.
    pub remember: bool,
}

/// A remembered choice: intents of this name, raised with contexts of this type, go to
/// this app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    /// The intent.
    pub intent: String,
    /// The context type.
    pub context_type: String,
    /// The app chosen.
    pub app_id: String,
}

/// What the agent and the panel share: the questions waiting (the first one is shown)
/// and the remembered choices, as the agent last saved them.
#[derive(Clone, Default)]
pub struct Shared {
    questions: Arc<Mutex<VecDeque<ResolveRequest>>>,
    remembered: Arc<Mutex<Vec<Remembered>>>,
    repaint: Arc<Mutex<Option<egui::Context>>>,
}

impl Shared {
    /// Queues a question and wakes the panel.
    pub fn ask(&self, question: ResolveRequest) {
        tracing::info!(
            requester = %question.requester,
            options = question.options.len(),
            "FDC3: asking the user which app handles an intent"
        );
        lock(&self.questions).push_back(question);
        self.wake();
    }

    /// The question to show.
    pub fn first(&self) -> Option<ResolveRequest> {
        lock(&self.questions).front().cloned()
    }

    /// Takes question `id` off the queue (answered).
    pub fn answered(&self, id: u64) {
        lock(&self.questions).retain(|q| q.id != id);
    }

    /// Drops questions the agent no longer waits on (their raiser went, or time ran
    /// out): those not in `waiting`.
    pub fn keep_only(&self, waiting: &[u64]) {
        let mut questions = lock(&self.questions);
        let before = questions.len();
        questions.retain(|q| waiting.contains(&q.id));
        if questions.len() != before {
            drop(questions);
            self.wake();
        }
    }

    /// The remembered choices.
    pub fn remembered(&self) -> Vec<Remembered> {
        lock(&self.remembered).clone()
    }

    /// Records the remembered choices the agent now has.
    pub fn set_remembered(&self, choices: Vec<Remembered>) {
        *lock(&self.remembered) = choices;
        self.wake();
    }

    /// The panel's context, to wake it when something changes.
    pub fn set_repaint(&self, ctx: egui::Context) {
        *lock(&self.repaint) = Some(ctx);
    }

    fn wake(&self) {
        if let Some(ctx) = lock(&self.repaint).as_ref() {
            ctx.request_repaint();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Draws the question and returns the user's answer, if they gave one this frame.
pub fn draw(
    ui: &mut egui::Ui,
    question: &ResolveRequest,
    form: &mut ResolverForm,
) -> Option<Answer> {
    let count = question.options.len();
    form.selected = form.selected.min(count.saturating_sub(1));
    let mut answer = None;
    ui.input(|i| {
        if i.key_pressed(egui::Key::ArrowDown) {
            form.selected = (form.selected + 1).min(count.saturating_sub(1));
        }
        if i.key_pressed(egui::Key::ArrowUp) {
            form.selected = form.selected.saturating_sub(1);
        }
        if i.key_pressed(egui::Key::Escape) {
            answer = Some(Answer::Cancel);
        }
        if i.key_pressed(egui::Key::Enter) && count > 0 {
            answer = Some(Answer::Choose {
                option: form.selected,
                remember: form.remember,
            });
        }
        let digits = [
            egui::Key::Num1,
            egui::Key::Num2,
            egui::Key::Num3,
            egui::Key::Num4,
            egui::Key::Num5,
            egui::Key::Num6,
            egui::Key::Num7,
            egui::Key::Num8,
            egui::Key::Num9,
        ];
        for (n, key) in digits.iter().enumerate().take(count) {
            if i.key_pressed(*key) {
                answer = Some(Answer::Choose {
                    option: n,
                    remember: form.remember,
                });
            }
        }
    });
    let intents: Vec<&str> = question.options.iter().map(|o| o.intent.as_str()).collect();
    let same_intent = intents.windows(2).all(|w| w[0] == w[1]);
    let heading = match (same_intent, intents.first()) {
        (true, Some(intent)) => format!("Which app should handle {intent}?"),
        _ => "Which app should handle this?".to_owned(),
    };
    ui.heading(heading);
    ui.label(format!("Context: {}", question.context_type));
    ui.separator();
    for (n, option) in question.options.iter().enumerate() {
        let what = match (&option.instance_id, same_intent) {
            (Some(_), true) => format!("{}. {} (running)", n + 1, option.title),
            (None, true) => format!("{}. {} (new window)", n + 1, option.title),
            (Some(_), false) => format!("{}. {}: {} (running)", n + 1, option.intent, option.title),
            (None, false) => format!(
                "{}. {}: {} (new window)",
                n + 1,
                option.intent,
                option.title
            ),
        };
        if ui.selectable_label(form.selected == n, what).clicked() {
            answer = Some(Answer::Choose {
                option: n,
                remember: form.remember,
            });
        }
    }
    ui.separator();
    ui.checkbox(&mut form.remember, "Remember my choice");
    if ui.button("Cancel").clicked() {
        answer = Some(Answer::Cancel);
    }
    answer
}

/// The resolver window's title.
pub const WINDOW_TITLE: &str = "Weft: choose an app";

/// How big the resolver window is.
const SIZE: [f32; 2] = [380.0, 260.0];

/// Shows the first question in its own window, centred over the window of the app that
/// asked (when known), focused and on top; returns the answer and the question's id.
pub fn show(
    ctx: &egui::Context,
    question: &ResolveRequest,
    over: Option<WindowBounds>,
    form: &mut ResolverForm,
) -> Option<(u64, Answer)> {
    let mut builder = egui::ViewportBuilder::default()
        .with_title(WINDOW_TITLE)
        .with_app_id("weft-resolver")
        .with_inner_size(SIZE)
        .with_always_on_top()
        .with_active(true);
    if let Some(b) = over {
        let x = b.x as f32 + (b.width as f32 - SIZE[0]) / 2.0;
        let y = b.y as f32 + (b.height as f32 - SIZE[1]) / 2.0;
        builder = builder.with_position([x.max(0.0), y.max(0.0)]);
    }
    let id = egui::ViewportId::from_hash_of(("weft-resolver", question.id));
    ctx.show_viewport_immediate(id, builder, |ui, _| {
        let closed = ui.input(|i| i.viewport().close_requested());
        let answer = egui::CentralPanel::default()
            .show(ui, |ui| draw(ui, question, form))
            .inner;
        answer
            .or(closed.then_some(Answer::Cancel))
            .map(|a| (question.id, a))
    })
}

/// Where the remembered choices are kept.
pub fn choices_file(data_dir: &Path) -> PathBuf {
    data_dir.join("fdc3").join("choices.json")
}

/// Reads the remembered choices; none when the file does not exist.
pub fn load_choices(file: &Path) -> anyhow::Result<Vec<Remembered>> {
    match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "reading the remembered intent choices in {}",
                file.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
        Err(e) => Err(e).with_context(|| format!("reading {}", file.display())),
    }
}

/// Writes the remembered choices (to a new file, then renamed over the old one).
pub fn save_choices(file: &Path, choices: &[Remembered]) -> anyhow::Result<()> {
    let dir = file.parent().context("the choices file has no folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = file.with_extension("json.new");
    std::fs::write(&tmp, serde_json::to_vec_pretty(choices)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, file).with_context(|| format!("replacing {}", file.display()))
}

#[cfg(test)]
mod tests {
    use egui_kittest::{Harness, kittest::Queryable};
    use weft_fdc3::ResolverOption;
    use weft_proto::Identity;

    use super::*;

    fn question() -> ResolveRequest {
        let option = |app: &str, title: &str, instance: Option<&str>| ResolverOption {
            intent: "ViewChart".into(),
            app_id: app.into(),
            instance_id: instance.map(str::to_owned),
            title: title.into(),
        };
        ResolveRequest {
            id: 7,
            requester: Identity {
                app_id: "blotter".into(),
                instance_id: "b-1".into(),
            },
            context_type: "fdc3.instrument".into(),
            options: vec![
                option("chart", "Chart", Some("c-1")),
                option("pricer", "Pricer", None),
            ],
        }
    }

    struct State {
        form: ResolverForm,
        answers: Vec<Answer>,
    }

    fn harness() -> Harness<'static, State> {
        let q = question();
        Harness::new_ui_state(
            move |ui, s: &mut State| {
                if let Some(a) = draw(ui, &q, &mut s.form) {
                    s.answers.push(a);
                }
            },
            State {
                form: ResolverForm::default(),
                answers: vec![],
            },
        )
    }

    #[test]
    fn shows_the_intent_the_context_and_each_choice() {
        let mut h = harness();
        h.run();
        h.get_by_label("Which app should handle ViewChart?");
        h.get_by_label("Context: fdc3.instrument");
        h.get_by_label("1. Chart (running)");
        h.get_by_label("2. Pricer (new window)");
        h.get_by_label("Remember my choice");
        assert!(h.state().answers.is_empty());
    }

    #[test]
    fn a_click_chooses_and_remember_my_choice_is_passed_on() {
        let mut h = harness();
        h.run();
        h.get_by_label("2. Pricer (new window)").click();
        h.run();
        assert_eq!(
            h.state().answers,
            [Answer::Choose {
                option: 1,
                remember: false
            }]
        );
        h.get_by_label("Remember my choice").click();
        h.run();
        h.get_by_label("1. Chart (running)").click();
        h.run();
        assert_eq!(
            h.state().answers[1],
            Answer::Choose {
                option: 0,
                remember: true
            }
        );
        h.get_by_label("Cancel").click();
        h.run();
        assert_eq!(h.state().answers[2], Answer::Cancel);
    }

    #[test]
    fn the_keyboard_alone_can_choose_or_cancel() {
        let mut h = harness();
        h.run();
        h.key_press(egui::Key::ArrowDown);
        h.run();
        h.key_press(egui::Key::Enter);
        h.run();
        assert_eq!(
            h.state().answers,
            [Answer::Choose {
                option: 1,
                remember: false
            }]
        );
        h.key_press(egui::Key::ArrowUp);
        h.run();
        h.key_press(egui::Key::Enter);
        h.run();
        assert_eq!(
            h.state().answers[1],
            Answer::Choose {
                option: 0,
                remember: false
            }
        );
        h.key_press(egui::Key::Num2);
        h.run();
        assert_eq!(
            h.state().answers[2],
            Answer::Choose {
                option: 1,
                remember: false
            }
        );
        h.key_press(egui::Key::Escape);
        h.run();
        assert_eq!(h.state().answers[3], Answer::Cancel);
    }

    #[test]
    fn remembered_choices_survive_a_restart_of_the_shell() {
        let dir = tempfile::tempdir().unwrap();
        let file = choices_file(dir.path());
        assert_eq!(load_choices(&file).unwrap(), []);
        let choices = vec![Remembered {
            intent: "ViewChart".into(),
            context_type: "fdc3.instrument".into(),
            app_id: "pricer".into(),
        }];
        save_choices(&file, &choices).unwrap();
        assert_eq!(load_choices(&file).unwrap(), choices);
        std::fs::write(&file, "{not json").unwrap();
        let e = load_choices(&file).unwrap_err();
        assert!(format!("{e:#}").contains("choices.json"), "{e:#}");
    }
}
