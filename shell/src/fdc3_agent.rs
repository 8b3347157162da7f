//! The shell's FDC3 Desktop Agent on the bus: a client of its own, as the reserved app
//! `weft-fdc3`, to which every app host sends its page's DACP messages directly on
//! `weft.fdc3`. The broker stamps each with the instance it came from, and that — never
//! the message — is who the agent believes sent it. One task owns the agent
//! (`weft_fdc3::Agent`): it hands it each message, and what it learns of apps and
//! instances from the shell, and sends what it answers to each instance directly.

use anyhow::Context;
use tokio::sync::mpsc;
use weft_appd::Directory;
use weft_broker::BrokerHandle;
use weft_client::{Client, ClientError};
use weft_fdc3::{Agent, Outbound};
use weft_proto::{
    FDC3_AGENT_APP_ID, FDC3_TOPIC, Identity, Pattern, Token, Topic, frame::IdentityFilter,
};

/// What the shell tells the agent.
enum Input {
    Apps(Vec<weft_appd::AppRecord>),
    Started(Identity, String),
    Gone(Identity),
}

/// Tells the running agent about apps and instances.
#[derive(Clone)]
pub struct AgentHandle(mpsc::UnboundedSender<Input>);

impl AgentHandle {
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
}

/// Connects the agent to the broker and starts serving; call on the runtime.
pub async fn start(broker: &BrokerHandle) -> anyhow::Result<AgentHandle> {
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
    let (inputs, mut input) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut agent = Agent::new();
        loop {
            tokio::select! {
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
                    Input::Started(identity, title) => agent.instance_started(&identity, &title),
                    Input::Gone(identity) => {
                        let out = agent.instance_gone(&identity.instance_id);
                        send_all(&client, &topic, &mut agent, out).await;
                    }
                },
            }
        }
        tracing::info!("the FDC3 agent stopped: {}", client.closed().await);
    });
    Ok(AgentHandle(inputs))
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
