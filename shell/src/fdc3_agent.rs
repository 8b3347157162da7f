//! The shell's FDC3 Desktop Agent on the bus: a client of its own, as the reserved app
//! `weft-fdc3`, to which every app host sends its page's DACP messages directly on
//! `weft.fdc3`. The broker stamps each with the instance it came from, and that — never
//! the message — is who the agent believes sent it. One task owns the agent
//! (`weft_fdc3::Agent`): it hands it each message, and what it learns of apps and
//! instances from the shell, and sends what it answers to each instance directly.
//!
//! When the agent needs a new instance (`open`, an intent for an app not running), the
//! task has the supervisor launch it — as its workspace says, else from its App
//! Directory record — and reports how that went; once a second it lets the agent fail
//! what waited too long. The agent's questions for the user (intent resolver, channel
//! selector) go to the panel through `fdc3_prompts::Shared`, and the answers come back
//! as inputs; remembered intent choices are saved after each change.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use anyhow::Context;
use tokio::sync::mpsc;
use weft_appd::{AppRecord, Directory};
use weft_broker::BrokerHandle;
use weft_client::{Client, ClientError};
use weft_fdc3::{Agent, LaunchRequest, Outbound};
use weft_proto::{
    FDC3_AGENT_APP_ID, FDC3_TOPIC, Identity, Pattern, Token, Topic,
    frame::{IdentityFilter, WindowAction},
};
use weft_supervisor::Supervisor;
use weft_workspace::{AppSpec, Workspace, WorkspaceFile};

use crate::fdc3_prompts::{self, Answer, Prompt, Remembered};

/// How often the agent checks what waits on a deadline.
const TICK: Duration = Duration::from_secs(1);

/// What the shell tells the agent.
enum Input {
    Apps(Vec<AppRecord>),
    WorkspaceApps(Vec<AppSpec>),
    Started(Identity, String),
    Gone(Identity),
    Launched(u64, Result<Identity, String>),
    Resolved(u64, Answer),
    Forget(String, String),
    SelectChannel(String, Option<String>),
    UserChannels(tokio::sync::oneshot::Sender<BTreeMap<String, String>>),
}

/// Tells the running agent about apps and instances.
#[derive(Clone, Debug)]
pub struct AgentHandle(mpsc::UnboundedSender<Input>);

/// Where the agent's inputs wait until it starts ([`start`]).
pub struct Inbox(mpsc::UnboundedReceiver<Input>);

/// A handle for the agent, and the inbox it will read once started.
pub fn channel() -> (AgentHandle, Inbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    (AgentHandle(tx), Inbox(rx))
}

impl AgentHandle {
    /// The apps of a workspace being launched: `open` and intents may start them too
    /// (those no App Directory has are known by appId and title only).
    pub fn add_workspace(&self, workspace: &Workspace) {
        let _ = self.0.send(Input::WorkspaceApps(workspace.apps.clone()));
    }

    /// The apps of App Directories that were read.
    pub fn add_apps(&self, directory: &Directory) {
        let _ = self.0.send(Input::Apps(directory.apps().to_vec()));
    }

    /// An app instance connected, with this window title.
    pub fn started(&self, identity: Identity, title: String) {
        let _ = self.0.send(Input::Started(identity, title));
    }

    /// An app instance's connection ended.
    pub fn gone(&self, identity: Identity) {
        let _ = self.0.send(Input::Gone(identity));
    }

    /// The user answered the intent resolver's question `id`.
    pub fn resolved(&self, id: u64, answer: Answer) {
        let _ = self.0.send(Input::Resolved(id, answer));
    }

    /// The user put an app instance on a user channel (or none) in the channel
    /// selector.
    pub fn select_channel(&self, instance_id: String, channel: Option<String>) {
        let _ = self.0.send(Input::SelectChannel(instance_id, channel));
    }

    /// The user channel of every instance joined to one, by instanceId (for a layout
    /// snapshot); empty if the agent has stopped. Blocks: not for async tasks.
    pub fn user_channels_blocking(&self) -> BTreeMap<String, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = self.0.send(Input::UserChannels(tx));
        rx.blocking_recv().unwrap_or_default()
    }

    /// The user forgot a remembered intent choice.
    pub fn forget_choice(&self, intent: String, context_type: String) {
        let _ = self.0.send(Input::Forget(intent, context_type));
    }
}

/// The user's side of the agent: its questions (intent resolver, channel selector) and
/// remembered choices.
pub struct ResolverSide {
    /// Shared with the panel, which shows the questions (`None` without a panel: no
    /// question can be asked, remembered choices still apply).
    pub shared: Option<fdc3_prompts::Shared>,
    /// Where the remembered choices are kept.
    pub choices_file: PathBuf,
}

/// Connects the agent to the broker and starts serving; call on the runtime.
pub async fn start(
    handle: AgentHandle,
    inputs: Inbox,
    broker: &BrokerHandle,
    supervisor: Supervisor,
    resolver: ResolverSide,
) -> anyhow::Result<()> {
    let remembered = fdc3_prompts::load_choices(&resolver.choices_file)?;
    let identity = Identity {
        app_id: FDC3_AGENT_APP_ID.into(),
        instance_id: "agent".into(),
    };
    let token = Token::random();
    broker.grant_app(token.clone(), identity);
    let connected = Client::connect(broker.socket_path(), &token).await;
    // One connection: nobody else may use the token afterwards.
    broker.revoke(&token);
    let client = connected.context("connecting the FDC3 agent to the bus")?;
    let topic = Topic::new(FDC3_TOPIC).expect("the FDC3 topic is valid");
    let mut inbox = client
        .subscribe(Pattern::from(topic.clone()))
        .await
        .context("subscribing the FDC3 agent")?;
    let mut input = inputs.0;
    let launcher = Launcher {
        supervisor,
        workspace_apps: BTreeMap::new(),
        report: handle,
    };
    tokio::spawn(async move {
        let mut launcher = launcher;
        let mut agent = Agent::new();
        agent.set_resolver_available(resolver.shared.is_some());
        for r in &remembered {
            agent.remember_choice(&r.intent, &r.context_type, &r.app_id);
        }
        if let Some(shared) = &resolver.shared {
            shared.set_remembered(remembered);
        }
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    let out = agent.tick(std::time::Instant::now());
                    send_all(&client, &topic, &mut agent, out).await;
                }
                delivery = inbox.next() => {
                    let Some(d) = delivery else { break };
                    // Only messages sent to the agent count; a page publishing on the
                    // topic is not talking to it.
                    if !d.direct {
                        continue;
                    }
                    let message = match serde_json::from_slice(&d.payload) {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::warn!(sender = %d.sender, "FDC3: a message that is not JSON was dropped: {e}");
                            continue;
                        }
                    };
                    let out = agent.handle(&d.sender, &message);
                    send_all(&client, &topic, &mut agent, out).await;
                }
                Some(news) = input.recv() => match news {
                    Input::Apps(records) => agent.add_apps(&records),
                    Input::WorkspaceApps(specs) => {
                        let unknown: Vec<AppRecord> = specs
                            .iter()
                            .filter(|s| !agent.knows_app(&s.app_id))
                            .map(record_of)
                            .collect();
                        agent.add_apps(&unknown);
                        launcher
                            .workspace_apps
                            .extend(specs.into_iter().map(|s| (s.app_id.clone(), s)));
                    }
                    Input::Started(identity, title) => {
                        agent.instance_started(&identity, &title);
                        // A restored instance joins the channel it was on when saved.
                        if let Some(channel) = launcher.supervisor.restored_channel(&identity.instance_id) {
                            let out = agent.select_user_channel(&identity.instance_id, Some(&channel));
                            send_all(&client, &topic, &mut agent, out).await;
                        }
                    }
                    Input::UserChannels(reply) => {
                        let channels = agent
                            .instances()
                            .filter_map(|i| {
                                let channel = agent.user_channel_of(&i.instance_id)?;
                                Some((i.instance_id.clone(), channel.to_owned()))
                            })
                            .collect();
                        let _ = reply.send(channels);
                    }
                    Input::Gone(identity) => {
                        let out = agent.instance_gone(&identity.instance_id);
                        send_all(&client, &topic, &mut agent, out).await;
                    }
                    Input::Launched(id, outcome) => {
                        let out = agent.launched(id, outcome);
                        send_all(&client, &topic, &mut agent, out).await;
                    }
                    Input::Resolved(id, answer) => {
                        let choice = match answer {
                            Answer::Choose { option, remember } => Some((option, remember)),
                            Answer::Cancel => None,
                        };
                        let out = agent.resolved(id, choice);
                        send_all(&client, &topic, &mut agent, out).await;
                        if matches!(answer, Answer::Choose { remember: true, .. }) {
                            save_choices(&agent, &resolver);
                        }
                    }
                    Input::Forget(intent, context_type) => {
                        agent.forget_choice(&intent, &context_type);
                        save_choices(&agent, &resolver);
                    }
                    Input::SelectChannel(instance_id, channel) => {
                        let out = agent.select_user_channel(&instance_id, channel.as_deref());
                        send_all(&client, &topic, &mut agent, out).await;
                    }
                },
            }
            for launch in agent.take_launches() {
                launcher.launch(launch);
            }
            for target in agent.take_raises() {
                launcher.bring_to_front(&target);
            }
            // Without the panel there is nobody to ask: the agent answers the intent
            // questions itself (ResolverUnavailable), and channel requests are dropped.
            let channel_questions = agent.take_channel_questions();
            if let Some(shared) = &resolver.shared {
                for question in agent.take_resolve_requests() {
                    shared.ask(Prompt::Intent(question));
                }
                for question in channel_questions {
                    shared.ask(Prompt::Channel(question));
                }
                shared.keep_only(&agent.waiting_questions());
            }
        }
        tracing::info!("the FDC3 agent stopped: {}", client.closed().await);
    });
    Ok(())
}

/// What the agent knows of a workspace app that no App Directory lists: its appId,
/// title and page, and no declared intents.
fn record_of(spec: &AppSpec) -> AppRecord {
    AppRecord {
        app_id: spec.app_id.clone(),
        title: spec.title.clone(),
        name: None,
        version: None,
        description: None,
        tooltip: None,
        publisher: None,
        icons: vec![],
        screenshots: vec![],
        url: spec.url.clone(),
        interop: Default::default(),
        weft: Default::default(),
        // Not a record read from anywhere: the launcher starts such apps from their
        // workspace entry, whose own manifest is checked.
        signature: weft_workspace::SignatureCheck::Unsigned,
    }
}

/// Keeps the agent's remembered choices, and shows them in the panel.
fn save_choices(agent: &Agent, resolver: &ResolverSide) {
    let choices: Vec<Remembered> = agent
        .remembered_choices()
        .map(|(intent, context_type, app_id)| Remembered {
            intent: intent.into(),
            context_type: context_type.into(),
            app_id: app_id.into(),
        })
        .collect();
    if let Err(e) = fdc3_prompts::save_choices(&resolver.choices_file, &choices) {
        tracing::error!("the remembered intent choices could not be saved: {e:#}");
    }
    if let Some(shared) = &resolver.shared {
        shared.set_remembered(choices);
    }
}

/// Starts the instances the agent asks for and reports back.
struct Launcher {
    supervisor: Supervisor,
    /// Apps of the workspaces launched, by appId: started as their workspace says.
    workspace_apps: BTreeMap<String, AppSpec>,
    report: AgentHandle,
}

impl Launcher {
    /// Brings an instance's window to front: one `open` found running, or one an
    /// intent was delivered to.
    fn bring_to_front(&self, target: &Identity) {
        if let Err(e) = self
            .supervisor
            .window(Some(&target.instance_id), WindowAction::Focus)
        {
            tracing::warn!(
                instance_id = target.instance_id,
                "FDC3: cannot bring to front: {e}"
            );
        }
    }

    /// Launches a new instance of the app — as its workspace says, else from its App
    /// Directory record — off the async workers (launching blocks); the outcome comes
    /// back as an input.
    fn launch(&self, launch: LaunchRequest) {
        let (supervisor, report) = (self.supervisor.clone(), self.report.clone());
        let from_workspace = self.workspace_apps.get(&launch.app.app_id).cloned();
        tokio::task::spawn_blocking(move || {
            let workspace = match from_workspace {
                Some(spec) => Ok(Workspace {
                    name: spec.app_id.clone(),
                    apps: vec![spec],
                    durable: vec![],
                    file: PathBuf::from("the FDC3 agent"),
                }),
                None => WorkspaceFile::unnamed(&launch.app.app_id, "the FDC3 agent")
                    .with_apps(std::slice::from_ref(&launch.app.app_id), vec![])
                    .and_then(|file| file.resolve(&launch.app)),
            };
            let outcome = workspace
                .map_err(|e| e.to_string())
                .and_then(|ws| supervisor.launch(&ws).map_err(|e| e.to_string()))
                .and_then(|ids| {
                    ids.into_iter()
                        .next()
                        .ok_or_else(|| "the launch started nothing".to_owned())
                });
            match &outcome {
                Ok(id) => tracing::info!(%id, "FDC3: launched for an open or an intent"),
                Err(e) => tracing::warn!(app_id = launch.app.app_id, "FDC3: cannot launch: {e}"),
            }
            let _ = report.0.send(Input::Launched(launch.id, outcome));
        });
    }
}

/// Sends the agent's messages, each to its instance; an instance found gone is
/// dropped from the agent (and what that causes is sent too).
async fn send_all(client: &Client, topic: &Topic, agent: &mut Agent, mut out: Vec<Outbound>) {
    while !out.is_empty() {
        let mut later = Vec::new();
        for o in out {
            let to = IdentityFilter {
                app_id: o.to.app_id.clone(),
                instance_id: Some(o.to.instance_id.clone()),
            };
            let body = serde_json::to_vec(&o.message).expect("JSON values serialise");
            match client.send(&to, topic, body).await {
                Ok(()) => {}
                Err(ClientError::Broker {
                    code: weft_proto::ErrorCode::TargetGone,
                    ..
                }) => {
                    later.extend(agent.instance_gone(&o.to.instance_id));
                }
                Err(e) => tracing::warn!(to = %o.to, "FDC3: a message could not be sent: {e}"),
            }
        }
        out = later;
    }
}
