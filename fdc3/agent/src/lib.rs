//! Weft's FDC3 2.2 Desktop Agent: the standard's semantics, driven by the messages of
//! its Desktop Agent Communication Protocol (DACP, `@finos/fdc3-schema`), with no I/O.
//!
//! Each page runs the official `DesktopAgentProxy` (`assets/fdc3`), whose DACP
//! messages reach [`Agent::handle`] together with the identity of the app instance
//! they came from — taken from its bus connection, never from the message, whose
//! `meta.source` is ignored. The agent answers with [`Outbound`] messages for that
//! instance and events for others; the shell carries them over the bus. Every request
//! is checked here: a malformed one is answered with the standard's error name.
//!
//! What the agent knows of apps comes from App Directory records ([`Agent::add_apps`])
//! and from the instances that run ([`Agent::instance_started`],
//! [`Agent::instance_gone`]). When `open` or an intent needs a new instance, the agent
//! asks for it ([`Agent::take_launches`]) and is told how that went
//! ([`Agent::launched`]); when several apps can handle an intent it asks the user
//! ([`Agent::take_resolve_requests`], [`Agent::resolved`]); what waits has a deadline,
//! checked by [`Agent::tick`].
//!
//! Invariants:
//! - A listener belongs to the instance that added it; only that instance can remove
//!   it, and it goes when the instance goes.
//! - An instance receives at most one `broadcastEvent` per broadcast, whatever number
//!   of its listeners match (the proxy hands each event to every listener whose filter
//!   accepts it), and never one for its own broadcast.
//! - A context listener added with no channel, or on the user channel the instance is
//!   joined to, follows the instance's user channel from then on; one added on any
//!   channel also keeps receiving that channel's broadcasts (the proxy filters by the
//!   channel it currently listens to).
//! - A private channel is used only by its participants: its creator, and the raiser
//!   of the intent whose result it was. A participant that disconnects (or goes) is out
//!   for good, and the others are told.
//! - An intent result is taken only from the instance the intent was delivered to,
//!   and reaches only the instance that raised it.

mod channels;
mod envelope;
mod intents;
mod launch;
mod private;
mod resolver;
mod selector;

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use weft_appd::AppRecord;
use weft_proto::Identity;

use channels::Channels;
pub use channels::{ChannelKind, DisplayMetadata, USER_CHANNELS};
use envelope::{Request, error_response, event, response};
pub use launch::{INTENT_DELIVERY_TIMEOUT, LaunchRequest, OPEN_TIMEOUT};
pub use resolver::{RESOLVER_TIMEOUT, ResolveRequest, ResolverOption};
pub use selector::ChannelQuestion;

/// The FDC3 version implemented.
pub const FDC3_VERSION: &str = "2.2";
/// The provider named by `getInfo`.
pub const PROVIDER: &str = "Weft";

/// A request's answer: its payload, or one of the standard's error names.
type Answer = Result<Value, &'static str>;

/// A message for one app instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Outbound {
    /// The instance.
    pub to: Identity,
    /// The DACP message.
    pub message: Value,
}

/// The standard's error names used in responses.
mod errors {
    pub(crate) const MALFORMED_MESSAGE: &str = "MalformedMessage";
    pub(crate) const MALFORMED_CONTEXT: &str = "MalformedContext";
    pub(crate) const NO_CHANNEL_FOUND: &str = "NoChannelFound";
    pub(crate) const ACCESS_DENIED: &str = "AccessDenied";
    pub(crate) const CREATION_FAILED: &str = "CreationFailed";
    pub(crate) const NO_APPS_FOUND: &str = "NoAppsFound";
    pub(crate) const TARGET_APP_UNAVAILABLE: &str = "TargetAppUnavailable";
    pub(crate) const TARGET_INSTANCE_UNAVAILABLE: &str = "TargetInstanceUnavailable";
    pub(crate) const APP_NOT_FOUND: &str = "AppNotFound";
    pub(crate) const APP_TIMEOUT: &str = "AppTimeout";
    pub(crate) const ERROR_ON_LAUNCH: &str = "ErrorOnLaunch";
    pub(crate) const RESOLVER_UNAVAILABLE: &str = "ResolverUnavailable";
    pub(crate) const INTENT_DELIVERY_FAILED: &str = "IntentDeliveryFailed";
    pub(crate) const NO_RESULT_RETURNED: &str = "NoResultReturned";
    pub(crate) const USER_CANCELLED: &str = "UserCancelledResolution";
    pub(crate) const RESOLVER_TIMEOUT: &str = "ResolverTimeout";
}

/// A running app instance as the agent sees it.
#[derive(Debug)]
struct Instance {
    identity: Identity,
    /// Its window title, when the shell told it (apps not in any App Directory).
    title: Option<String>,
    /// The user channel it is joined to.
    user_channel: Option<String>,
}

/// A context listener.
#[derive(Debug)]
struct ContextListener {
    instance: String,
    /// The channel it was added on.
    channel: Option<String>,
    /// Whether it follows the instance's user channel.
    follows_user_channel: bool,
    /// The context type it wants; every type when `None`.
    context_type: Option<String>,
}

impl ContextListener {
    fn wants(&self, channel: &str, joined: Option<&str>, context_type: &str) -> bool {
        let on_channel = self.channel.as_deref() == Some(channel)
            || (self.follows_user_channel && joined == Some(channel));
        on_channel
            && self
                .context_type
                .as_deref()
                .is_none_or(|t| t == context_type)
    }
}

/// An event listener (`addEventListener`).
#[derive(Debug)]
struct EventListener {
    instance: String,
}

/// The Desktop Agent's state.
#[derive(Debug, Default)]
pub struct Agent {
    apps: BTreeMap<String, AppRecord>,
    instances: BTreeMap<String, Instance>,
    channels: Channels,
    context_listeners: BTreeMap<String, ContextListener>,
    event_listeners: BTreeMap<String, EventListener>,
    intent_listeners: BTreeMap<String, intents::IntentListener>,
    /// Intents delivered and awaiting their result, by the uuid the agent gave the
    /// delivery.
    delivered: BTreeMap<String, intents::Delivered>,
    /// Private channels, by id: who may use them.
    private: BTreeMap<String, private::Participants>,
    private_listeners: BTreeMap<String, private::EventListener>,
    launches: launch::Launches,
    /// Instances to bring to front (opened while running, or sent an intent), for the
    /// shell: [`Agent::take_raises`].
    raises: Vec<Identity>,
    resolver: resolver::Resolver,
    channel_questions: Vec<selector::ChannelQuestion>,
}

impl Agent {
    /// An agent that knows no app yet.
    pub fn new() -> Agent {
        Agent::default()
    }

    /// Learns apps from App Directory records; a record for an appId already known
    /// replaces the older one.
    pub fn add_apps<'a>(&mut self, records: impl IntoIterator<Item = &'a AppRecord>) {
        for record in records {
            self.apps.insert(record.app_id.clone(), record.clone());
        }
    }

    /// Whether the agent knows the app (from a record, or a workspace).
    pub fn knows_app(&self, app_id: &str) -> bool {
        self.apps.contains_key(app_id)
    }

    /// An instance was started, with this window title.
    pub fn instance_started(&mut self, identity: &Identity, title: &str) {
        self.instance(identity).title = Some(title.to_owned());
    }

    /// An instance is gone (closed, crashed or said goodbye): its listeners go with
    /// it, the other participants of its private channels are told, and whoever waits
    /// on an intent result from it gets an error.
    pub fn instance_gone(&mut self, instance_id: &str) -> Vec<Outbound> {
        let mut out = Vec::new();
        if self.instances.remove(instance_id).is_some() {
            tracing::debug!(instance_id, "FDC3: an instance left");
        }
        for channel in self.private_channels_of(instance_id) {
            self.disconnect_private(instance_id, &channel, &mut out);
        }
        self.context_listeners
            .retain(|_, l| l.instance != instance_id);
        self.event_listeners
            .retain(|_, l| l.instance != instance_id);
        self.intent_listeners
            .retain(|_, l| l.instance != instance_id);
        self.intents_lost(instance_id, &mut out);
        self.launches.forget_instance(instance_id);
        self.resolver.forget_instance(instance_id);
        out
    }

    /// The instances the user should now see in front — one `open` brought forward,
    /// or one an intent was delivered to — since the last call, oldest first.
    pub fn take_raises(&mut self) -> Vec<Identity> {
        std::mem::take(&mut self.raises)
    }

    /// The instances running, in the order of their ids.
    pub fn instances(&self) -> impl Iterator<Item = &Identity> {
        self.instances.values().map(|i| &i.identity)
    }

    /// The user channel an instance is joined to.
    pub fn user_channel_of(&self, instance_id: &str) -> Option<&str> {
        self.instances.get(instance_id)?.user_channel.as_deref()
    }

    fn instance(&mut self, identity: &Identity) -> &mut Instance {
        self.instances
            .entry(identity.instance_id.clone())
            .or_insert_with(|| Instance {
                identity: identity.clone(),
                title: None,
                user_channel: None,
            })
    }

    /// Handles one DACP message from the instance `from`; returns what to send.
    pub fn handle(&mut self, from: &Identity, message: &Value) -> Vec<Outbound> {
        let request = match envelope::read(message) {
            Ok(request) => request,
            Err(why) => {
                tracing::warn!(
                    app_id = from.app_id,
                    instance_id = from.instance_id,
                    "FDC3: an unreadable message was dropped: {}",
                    why.0
                );
                return vec![];
            }
        };
        self.instance(from);
        let mut out = Vec::new();
        let reply = self.dispatch(from, &request, &mut out);
        if let Some(reply) = reply {
            out.insert(
                0,
                Outbound {
                    to: from.clone(),
                    message: reply,
                },
            );
        }
        // What an opened or launched app was awaited for (a listener) goes after the
        // answer to the request that added it.
        self.launches_progress(from, &mut out);
        out
    }

    /// Handles a request; returns the response to the sender (if the request has
    /// one) and adds what others get to `out`.
    fn dispatch(
        &mut self,
        from: &Identity,
        request: &Request<'_>,
        out: &mut Vec<Outbound>,
    ) -> Option<Value> {
        let p = request.payload;
        let answer: Answer = match request.kind {
            "WCP6Goodbye" => {
                out.extend(self.instance_gone(&from.instance_id));
                return None;
            }
            "heartbeatAcknowledgementRequest" => return None,
            "getInfoRequest" => Ok(json!({ "implementationMetadata": self.info(from) })),
            "getUserChannelsRequest" => {
                Ok(json!({ "userChannels": self.channels.user_channels() }))
            }
            "getCurrentChannelRequest" => {
                let channel = self
                    .user_channel_of(&from.instance_id)
                    .and_then(|id| self.channels.get(id).map(|c| c.describe(id)));
                Ok(json!({ "channel": channel }))
            }
            "joinUserChannelRequest" => {
                let joined = self.join_user_channel(from, p);
                if joined.is_ok() {
                    self.tell_host(from, out);
                }
                joined
            }
            "leaveCurrentChannelRequest" => {
                self.instance(from).user_channel = None;
                self.tell_host(from, out);
                Ok(json!({}))
            }
            weft_proto::FDC3_CHOOSE_CHANNEL_TYPE => {
                self.choose_channel(from);
                return None;
            }
            "getOrCreateChannelRequest" => self.get_or_create_channel(p),
            "getCurrentContextRequest" => self.current_context(from, p),
            "broadcastRequest" => self.broadcast(from, p, out),
            "addContextListenerRequest" => self.add_context_listener(from, p, out),
            "contextListenerUnsubscribeRequest" => self.remove_context_listener(from, p, out),
            "addEventListenerRequest" => self.add_event_listener(from, p),
            "eventListenerUnsubscribeRequest" => {
                self.remove_listener(from, p, |a| &mut a.event_listeners)
            }
            "findInstancesRequest" => self.find_instances(p),
            "getAppMetadataRequest" => self.app_metadata_request(p),
            "openRequest" => return self.open(from, request, out),
            "addIntentListenerRequest" => self.add_intent_listener(from, p),
            "intentListenerUnsubscribeRequest" => {
                self.remove_listener(from, p, |a| &mut a.intent_listeners)
            }
            "findIntentRequest" => self.find_intent(p),
            "findIntentsByContextRequest" => self.find_intents_by_context(p),
            "raiseIntentRequest" | "raiseIntentForContextRequest" => {
                return self.raise_intent(from, request, out);
            }
            "intentResultRequest" => self.intent_result(from, p, out),
            "createPrivateChannelRequest" => Ok(self.create_private_channel(from)),
            "privateChannelAddEventListenerRequest" => self.add_private_listener(from, p),
            "privateChannelUnsubscribeEventListenerRequest" => {
                self.remove_listener(from, p, |a| &mut a.private_listeners)
            }
            "privateChannelDisconnectRequest" => self.private_disconnect_request(from, p, out),
            other => {
                tracing::warn!(
                    app_id = from.app_id,
                    "FDC3: an unknown message type {other:?} was refused"
                );
                Err(errors::MALFORMED_MESSAGE)
            }
        };
        Some(match answer {
            Ok(payload) => response(request, payload),
            Err(error) => error_response(request, error),
        })
    }

    /// Whether `instance` may use the channel `id` (a private channel only its
    /// participants may); `Err` with the standard's error otherwise.
    fn may_use(&self, instance: &str, id: &str) -> Result<(), &'static str> {
        let channel = self.channels.get(id).ok_or(errors::NO_CHANNEL_FOUND)?;
        if channel.kind == ChannelKind::Private
            && !self.private.get(id).is_some_and(|p| p.may_use(instance))
        {
            return Err(errors::ACCESS_DENIED);
        }
        Ok(())
    }

    fn info(&self, from: &Identity) -> Value {
        json!({
            "fdc3Version": FDC3_VERSION,
            "provider": PROVIDER,
            "providerVersion": env!("CARGO_PKG_VERSION"),
            "optionalFeatures": {
                "OriginatingAppMetadata": true,
                "UserChannelMembershipAPIs": true,
                "DesktopAgentBridging": false,
            },
            "appMetadata": self.app_metadata(&from.app_id, Some(&from.instance_id)),
        })
    }

    /// The AppMetadata of an app (and instance): only the keys the standard allows.
    fn app_metadata(&self, app_id: &str, instance_id: Option<&str>) -> Value {
        let mut m = Map::new();
        m.insert("appId".into(), app_id.into());
        if let Some(id) = instance_id {
            m.insert("instanceId".into(), id.into());
        }
        match self.apps.get(app_id) {
            Some(record) => {
                m.insert("title".into(), record.title.clone().into());
                for (key, value) in [
                    ("name", &record.name),
                    ("version", &record.version),
                    ("tooltip", &record.tooltip),
                    ("description", &record.description),
                ] {
                    if let Some(v) = value {
                        m.insert(key.into(), v.clone().into());
                    }
                }
                let icons: Vec<Value> = record
                    .icons
                    .iter()
                    .map(|i| {
                        let mut icon = json!({ "src": i.src });
                        if let Some(s) = &i.size {
                            icon["size"] = s.clone().into();
                        }
                        if let Some(t) = &i.media_type {
                            icon["type"] = t.clone().into();
                        }
                        icon
                    })
                    .collect();
                if !icons.is_empty() {
                    m.insert("icons".into(), icons.into());
                }
                if !record.screenshots.is_empty() {
                    m.insert(
                        "screenshots".into(),
                        serde_json::to_value(&record.screenshots).unwrap_or_default(),
                    );
                }
            }
            None => {
                let title = instance_id
                    .and_then(|id| self.instances.get(id))
                    .or_else(|| {
                        self.instances
                            .values()
                            .find(|i| i.identity.app_id == app_id)
                    })
                    .and_then(|i| i.title.clone());
                if let Some(title) = title {
                    m.insert("title".into(), title.into());
                }
            }
        }
        Value::Object(m)
    }

    fn join_user_channel(&mut self, from: &Identity, p: &Map<String, Value>) -> Answer {
        let id = envelope::string(p, "channelId").ok_or(errors::MALFORMED_MESSAGE)?;
        if !self.channels.is_user(id) {
            return Err(errors::NO_CHANNEL_FOUND);
        }
        self.instance(from).user_channel = Some(id.to_owned());
        Ok(json!({}))
    }

    fn get_or_create_channel(&mut self, p: &Map<String, Value>) -> Answer {
        let id = envelope::string(p, "channelId").ok_or(errors::MALFORMED_MESSAGE)?;
        if id.trim().is_empty() {
            return Err(errors::CREATION_FAILED);
        }
        match self.channels.app_channel(id) {
            Some(channel) => Ok(json!({ "channel": channel.describe(id) })),
            None => Err(errors::ACCESS_DENIED),
        }
    }

    fn current_context(&self, from: &Identity, p: &Map<String, Value>) -> Answer {
        let id = envelope::string(p, "channelId").ok_or(errors::MALFORMED_MESSAGE)?;
        let context_type =
            envelope::string_or_null(p, "contextType").map_err(|()| errors::MALFORMED_MESSAGE)?;
        self.may_use(&from.instance_id, id)?;
        let channel = self.channels.get(id).ok_or(errors::NO_CHANNEL_FOUND)?;
        Ok(json!({ "context": channel.current(context_type) }))
    }

    fn broadcast(
        &mut self,
        from: &Identity,
        p: &Map<String, Value>,
        out: &mut Vec<Outbound>,
    ) -> Answer {
        let id = envelope::string(p, "channelId").ok_or(errors::MALFORMED_MESSAGE)?;
        let context = p.get("context").ok_or(errors::MALFORMED_CONTEXT)?;
        let context_type = envelope::context_type(context).ok_or(errors::MALFORMED_CONTEXT)?;
        self.may_use(&from.instance_id, id)?;
        let channel = self.channels.get_mut(id).ok_or(errors::NO_CHANNEL_FOUND)?;
        channel.store(context_type, context.clone());
        let receivers: Vec<&Identity> = self
            .instances
            .values()
            .filter(|i| i.identity.instance_id != from.instance_id)
            .filter(|i| {
                self.context_listeners.values().any(|l| {
                    l.instance == i.identity.instance_id
                        && l.wants(id, i.user_channel.as_deref(), context_type)
                })
            })
            .map(|i| &i.identity)
            .collect();
        for to in receivers {
            out.push(Outbound {
                to: to.clone(),
                message: event(
                    "broadcastEvent",
                    json!({
                        "channelId": id,
                        "context": context,
                        "originatingApp": { "appId": from.app_id, "instanceId": from.instance_id },
                    }),
                ),
            });
        }
        Ok(json!({}))
    }

    fn add_context_listener(
        &mut self,
        from: &Identity,
        p: &Map<String, Value>,
        out: &mut Vec<Outbound>,
    ) -> Answer {
        let channel =
            envelope::string_or_null(p, "channelId").map_err(|()| errors::MALFORMED_MESSAGE)?;
        let context_type =
            envelope::string_or_null(p, "contextType").map_err(|()| errors::MALFORMED_MESSAGE)?;
        if let Some(id) = channel {
            self.may_use(&from.instance_id, id)?;
        }
        let joined = self.user_channel_of(&from.instance_id);
        let follows_user_channel = channel.is_none() || channel == joined;
        let uuid = envelope::new_uuid();
        self.context_listeners.insert(
            uuid.clone(),
            ContextListener {
                instance: from.instance_id.clone(),
                channel: channel.map(str::to_owned),
                follows_user_channel,
                context_type: context_type.map(str::to_owned),
            },
        );
        if let Some(id) = channel
            && self.private.contains_key(id)
        {
            self.private_event(
                &from.instance_id,
                id,
                private::Event::AddContextListener(context_type),
                out,
            );
        }
        Ok(json!({ "listenerUUID": uuid }))
    }

    fn add_event_listener(&mut self, from: &Identity, p: &Map<String, Value>) -> Answer {
        match envelope::string_or_null(p, "type") {
            Ok(None | Some("USER_CHANNEL_CHANGED")) => {}
            _ => return Err(errors::MALFORMED_MESSAGE),
        }
        let uuid = envelope::new_uuid();
        self.event_listeners.insert(
            uuid.clone(),
            EventListener {
                instance: from.instance_id.clone(),
            },
        );
        Ok(json!({ "listenerUUID": uuid }))
    }

    /// Removes the caller's own context listener; the other participants of a private
    /// channel it was on are told.
    fn remove_context_listener(
        &mut self,
        from: &Identity,
        p: &Map<String, Value>,
        out: &mut Vec<Outbound>,
    ) -> Answer {
        let uuid = envelope::string(p, "listenerUUID").ok_or(errors::MALFORMED_MESSAGE)?;
        let removed = match self.context_listeners.get(uuid) {
            Some(l) if l.instance == from.instance_id => self.context_listeners.remove(uuid),
            _ => None,
        };
        if let Some(listener) = removed
            && let Some(channel) = listener.channel.filter(|c| self.private.contains_key(c))
        {
            self.private_event(
                &from.instance_id,
                &channel,
                private::Event::Unsubscribe(listener.context_type.as_deref()),
                out,
            );
        }
        Ok(json!({}))
    }

    /// Removes the caller's own listener named in the payload; removing one that is
    /// not (or no longer) there is not an error, and another instance's is left alone.
    fn remove_listener<L: Owned>(
        &mut self,
        from: &Identity,
        p: &Map<String, Value>,
        listeners: impl Fn(&mut Agent) -> &mut BTreeMap<String, L>,
    ) -> Answer {
        let uuid = envelope::string(p, "listenerUUID").ok_or(errors::MALFORMED_MESSAGE)?;
        let listeners = listeners(self);
        if listeners
            .get(uuid)
            .is_some_and(|l| l.owner() == from.instance_id)
        {
            listeners.remove(uuid);
        }
        Ok(json!({}))
    }

    fn find_instances(&self, p: &Map<String, Value>) -> Answer {
        let (app_id, _) = p
            .get("app")
            .ok_or(())
            .and_then(envelope::app_identifier)
            .map_err(|()| errors::MALFORMED_MESSAGE)?;
        let running: Vec<Value> = self
            .instances
            .values()
            .filter(|i| i.identity.app_id == app_id)
            .map(|i| json!({ "appId": app_id, "instanceId": i.identity.instance_id }))
            .collect();
        if running.is_empty() && !self.apps.contains_key(app_id) {
            return Err(errors::NO_APPS_FOUND);
        }
        Ok(json!({ "appIdentifiers": running }))
    }

    fn app_metadata_request(&self, p: &Map<String, Value>) -> Answer {
        let (app_id, instance_id) = p
            .get("app")
            .ok_or(())
            .and_then(envelope::app_identifier)
            .map_err(|()| errors::MALFORMED_MESSAGE)?;
        let known = self.apps.contains_key(app_id)
            || self.instances.values().any(|i| i.identity.app_id == app_id);
        if !known {
            return Err(errors::TARGET_APP_UNAVAILABLE);
        }
        if let Some(id) = instance_id
            && self
                .instances
                .get(id)
                .is_none_or(|i| i.identity.app_id != app_id)
        {
            return Err(errors::TARGET_INSTANCE_UNAVAILABLE);
        }
        Ok(json!({ "appMetadata": self.app_metadata(app_id, instance_id) }))
    }
}

/// Whether a handler declaring `declared` as its result type matches a `resultType`
/// filter: the same type, or any channel for `channel`.
fn result_type_matches(declared: Option<&str>, wanted: &str) -> bool {
    match declared {
        None => false,
        Some(d) => d == wanted || (wanted == "channel" && d.starts_with("channel")),
    }
}

/// A listener that belongs to an instance.
trait Owned {
    fn owner(&self) -> &str;
}

impl Owned for ContextListener {
    fn owner(&self) -> &str {
        &self.instance
    }
}

impl Owned for EventListener {
    fn owner(&self) -> &str {
        &self.instance
    }
}

impl Owned for intents::IntentListener {
    fn owner(&self) -> &str {
        &self.instance
    }
}

impl Owned for private::EventListener {
    fn owner(&self) -> &str {
        &self.instance
    }
}

#[cfg(test)]
mod tests;
