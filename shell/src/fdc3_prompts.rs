//! The FDC3 agent's questions for the user, each in a small Weft window centred over
//! the app it is about, on top and focused:
//!
//! - the intent resolver: when several apps can handle a raised intent, which one — a
//!   running instance or a new one — with "Remember my choice" for that intent and
//!   context type;
//! - the channel selector: which user channel an app is on (asked from the app's own
//!   window).
//!
//! Keyboard first: arrows move, Enter chooses, Escape cancels, digits choose directly.
//! Questions queue; one window shows at a time.
//!
//! Immediate mode, kept apart from the data: [`draw_resolver`] and
//! [`draw_channel_selector`] read a question and the window's own state and return the
//! user's answer; the panel's event loop shows the window ([`show`]) and hands answers
//! to the agent. The remembered choices are kept in `DATA_DIR/fdc3/choices.json` and
//! listed in the panel, where they can be forgotten.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use anyhow::Context as _;
use eframe::egui;
use serde::{Deserialize, Serialize};
use weft_fdc3::{ChannelQuestion, ResolveRequest, USER_CHANNELS};
use weft_proto::{frame::AppInfo, launch::WindowBounds};

use crate::{locking::lock, prompt_window};

/// The intent resolver window's title.
pub const WINDOW_TITLE: &str = "Weft: choose an app";
/// The channel selector window's title.
pub const CHANNEL_WINDOW_TITLE: &str = "Weft: choose a channel";

/// A question for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// Which app handles an intent.
    Intent(ResolveRequest),
    /// Which user channel an app is on.
    Channel(ChannelQuestion),
}

impl Prompt {
    /// The app instance the question is about (its window is where it shows).
    fn instance_id(&self) -> &str {
        match self {
            Prompt::Intent(q) => &q.requester.instance_id,
            Prompt::Channel(q) => &q.instance.instance_id,
        }
    }
}

/// A question in the queue, with the key its answer names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// Names it in [`Shared::answered`].
    pub key: u64,
    /// The question.
    pub prompt: Prompt,
}

/// The user's answer to the intent resolver.
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

/// The user's reply to a queued question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// To the intent resolver's question `id`.
    Intent {
        /// The agent's id of the question.
        id: u64,
        /// The answer.
        answer: Answer,
    },
    /// The channel selector: put `instance_id` on `channel`.
    Channel {
        /// The app instance.
        instance_id: String,
        /// The user channel, or none.
        channel: Option<String>,
    },
    /// The channel selector was dismissed.
    Dismissed,
}

/// A question window's own state.
#[derive(Debug, Default)]
pub struct PromptForm {
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
    questions: Arc<Mutex<Questions>>,
    remembered: Arc<Mutex<Vec<Remembered>>>,
    repaint: Arc<Mutex<Option<egui::Context>>>,
}

/// The queue of questions.
#[derive(Default)]
struct Questions {
    next_key: u64,
    queue: VecDeque<Queued>,
}

impl Shared {
    /// Queues a question and wakes the panel.
    pub fn ask(&self, prompt: Prompt) {
        match &prompt {
            Prompt::Intent(q) => tracing::info!(
                requester = %q.requester,
                options = q.options.len(),
                "FDC3: asking the user which app handles an intent"
            ),
            Prompt::Channel(q) => {
                tracing::info!(instance = %q.instance, "FDC3: showing the channel selector");
            }
        }
        let mut questions = lock(&self.questions);
        questions.next_key += 1;
        let key = questions.next_key;
        questions.queue.push_back(Queued { key, prompt });
        drop(questions);
        self.wake();
    }

    /// The question to show.
    pub fn first(&self) -> Option<Queued> {
        lock(&self.questions).queue.front().cloned()
    }

    /// Takes question `key` off the queue (answered).
    pub fn answered(&self, key: u64) {
        lock(&self.questions).queue.retain(|q| q.key != key);
    }

    /// Drops intent questions the agent no longer waits on (their raiser went, or time
    /// ran out): those not in `waiting`.
    pub fn keep_only(&self, waiting: &[u64]) {
        let mut questions = lock(&self.questions);
        let before = questions.queue.len();
        questions.queue.retain(|q| match &q.prompt {
            Prompt::Intent(r) => waiting.contains(&r.id),
            Prompt::Channel(_) => true,
        });
        if questions.queue.len() != before {
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

/// What the keyboard asked for.
enum Key {
    Choose(usize),
    Cancel,
}

/// The keyboard's part: arrows move over `count` options, Enter chooses the selected
/// one, the digit `first_digit + n` chooses option `n`, Escape cancels.
fn keys(ui: &egui::Ui, count: usize, first_digit: usize, form: &mut PromptForm) -> Option<Key> {
    const DIGITS: [egui::Key; 10] = [
        egui::Key::Num0,
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
    form.selected = form.selected.min(count.saturating_sub(1));
    ui.input(|i| {
        if i.key_pressed(egui::Key::ArrowDown) {
            form.selected = (form.selected + 1).min(count.saturating_sub(1));
        }
        if i.key_pressed(egui::Key::ArrowUp) {
            form.selected = form.selected.saturating_sub(1);
        }
        if i.key_pressed(egui::Key::Escape) {
            return Some(Key::Cancel);
        }
        if i.key_pressed(egui::Key::Enter) && count > 0 {
            return Some(Key::Choose(form.selected));
        }
        (0..count)
            .find(|n| {
                DIGITS
                    .get(n + first_digit)
                    .is_some_and(|k| i.key_pressed(*k))
            })
            .map(Key::Choose)
    })
}

/// Draws the intent resolver's question and returns the user's answer, if they gave
/// one this frame.
pub fn draw_resolver(
    ui: &mut egui::Ui,
    question: &ResolveRequest,
    form: &mut PromptForm,
) -> Option<Answer> {
    let mut answer = keys(ui, question.options.len(), 1, form).map(|key| match key {
        Key::Choose(option) => Answer::Choose {
            option,
            remember: form.remember,
        },
        Key::Cancel => Answer::Cancel,
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
        let running = if option.instance_id.is_some() {
            "running"
        } else {
            "new window"
        };
        let what = if same_intent {
            format!("{}. {} ({running})", n + 1, option.title)
        } else {
            format!("{}. {}: {} ({running})", n + 1, option.intent, option.title)
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

/// Draws the channel selector: no channel, then the user channels in order (0 and 1–8
/// on the keyboard). Returns the user's reply this frame: `Some(Some(channel))` for a
/// channel (`None` inside: no channel), `Some(None)` when dismissed.
pub fn draw_channel_selector(
    ui: &mut egui::Ui,
    question: &ChannelQuestion,
    form: &mut PromptForm,
) -> Option<Option<Option<String>>> {
    let choices: Vec<Option<&str>> = std::iter::once(None)
        .chain(USER_CHANNELS.iter().map(|(id, _)| Some(*id)))
        .collect();
    let mut answer = keys(ui, choices.len(), 0, form).map(|key| match key {
        Key::Choose(n) => Some(choices[n].map(str::to_owned)),
        Key::Cancel => None,
    });
    ui.heading("Which channel should this app be on?");
    ui.separator();
    for (n, choice) in choices.iter().enumerate() {
        let (label, colour) = match choice {
            None => ("0. No channel".to_owned(), ui.visuals().text_color()),
            Some(_) => {
                let display = &USER_CHANNELS[n - 1].1;
                let [r, g, b] = display.rgb;
                (
                    format!("{n}. {} ({})", display.name, display.color),
                    egui::Color32::from_rgb(r, g, b),
                )
            }
        };
        let label = if question.current.as_deref() == *choice {
            format!("{label}, current")
        } else {
            label
        };
        let text = egui::RichText::new(label).color(colour);
        if ui.selectable_label(form.selected == n, text).clicked() {
            answer = Some(Some(choice.map(str::to_owned)));
        }
    }
    ui.separator();
    if ui.button("Cancel").clicked() {
        answer = Some(None);
    }
    answer
}

/// How big the question windows are.
const SIZE: [f32; 2] = [380.0, 330.0];

/// Shows a question in its own window, centred over the window of the app it is about
/// (`over`, when known), focused and on top; returns the question's key and the user's
/// reply, once given.
pub fn show(
    ctx: &egui::Context,
    queued: &Queued,
    over: Option<WindowBounds>,
    form: &mut PromptForm,
) -> Option<(u64, Reply)> {
    let title = match queued.prompt {
        Prompt::Intent(_) => WINDOW_TITLE,
        Prompt::Channel(_) => CHANNEL_WINDOW_TITLE,
    };
    prompt_window::show(
        ctx,
        ("weft-prompt", queued.key),
        title,
        SIZE,
        over,
        |ui, closed| {
            let reply = match &queued.prompt {
                Prompt::Intent(q) => draw_resolver(ui, q, form)
                    .or(closed.then_some(Answer::Cancel))
                    .map(|answer| Reply::Intent { id: q.id, answer }),
                Prompt::Channel(q) => match draw_channel_selector(ui, q, form) {
                    Some(Some(channel)) => Some(Reply::Channel {
                        instance_id: q.instance.instance_id.clone(),
                        channel,
                    }),
                    Some(None) => Some(Reply::Dismissed),
                    None => closed.then_some(Reply::Dismissed),
                },
            };
            reply.map(|r| (queued.key, r))
        },
    )
}

/// Where the window of a question shows: over the app it is about.
pub fn over(queued: &Queued, apps: &[AppInfo]) -> Option<WindowBounds> {
    prompt_window::over(apps, queued.prompt.instance_id())
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
        form: PromptForm,
        answers: Vec<Answer>,
    }

    fn harness() -> Harness<'static, State> {
        let q = question();
        Harness::new_ui_state(
            move |ui, s: &mut State| {
                if let Some(a) = draw_resolver(ui, &q, &mut s.form) {
                    s.answers.push(a);
                }
            },
            State {
                form: PromptForm::default(),
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
        let choose = |option| Answer::Choose {
            option,
            remember: false,
        };
        let steps = [
            (&[egui::Key::ArrowDown, egui::Key::Enter][..], choose(1)),
            (&[egui::Key::ArrowUp, egui::Key::Enter][..], choose(0)),
            (&[egui::Key::Num2][..], choose(1)),
            (&[egui::Key::Escape][..], Answer::Cancel),
        ];
        for (n, (keys, expected)) in steps.iter().enumerate() {
            for key in *keys {
                h.key_press(*key);
                h.run();
            }
            assert_eq!(h.state().answers.get(n), Some(expected), "{keys:?}");
        }
    }

    #[test]
    fn the_channel_selector_shows_every_user_channel_and_the_current_one() {
        let question = ChannelQuestion {
            instance: Identity {
                app_id: "chart".into(),
                instance_id: "c-1".into(),
            },
            current: Some("fdc3.channel.2".into()),
        };
        let mut h = Harness::new_ui_state(
            move |ui, s: &mut (PromptForm, Vec<Option<Option<String>>>)| {
                if let Some(a) = draw_channel_selector(ui, &question, &mut s.0) {
                    s.1.push(a);
                }
            },
            (PromptForm::default(), vec![]),
        );
        h.run();
        h.get_by_label("0. No channel");
        h.get_by_label("1. Channel 1 (red)");
        h.get_by_label("2. Channel 2 (orange), current");
        h.get_by_label("8. Channel 8 (purple)");
        h.get_by_label("3. Channel 3 (yellow)").click();
        h.run();
        h.key_press(egui::Key::Num0);
        h.run();
        h.key_press(egui::Key::ArrowDown);
        h.run();
        h.key_press(egui::Key::Enter);
        h.run();
        h.key_press(egui::Key::Escape);
        h.run();
        assert_eq!(
            h.state().1,
            [
                Some(Some("fdc3.channel.3".to_owned())),
                Some(None),
                Some(Some("fdc3.channel.1".to_owned())),
                None
            ]
        );
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
