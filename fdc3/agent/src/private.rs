//! Private channels: created by one app for a conversation with another, used only by
//! their participants, who hear when the others add or remove context listeners and
//! when they disconnect.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};
use weft_proto::Identity;

use crate::{Agent, Answer, Outbound, envelope, errors, event};

/// Who may use a private channel.
#[derive(Debug, Default)]
pub(crate) struct Participants {
    members: BTreeSet<String>,
}

impl Participants {
    pub(crate) fn may_use(&self, instance: &str) -> bool {
        self.members.contains(instance)
    }
}

/// Which events a private channel event listener wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    AddContextListener,
    Unsubscribe,
    Disconnect,
}

/// A listener for a private channel's events.
#[derive(Debug)]
pub(crate) struct EventListener {
    pub(crate) instance: String,
    channel: String,
    /// `None`: every kind.
    kind: Option<Kind>,
}

/// Something a participant did.
pub(crate) enum Event<'a> {
    /// Added a context listener (of this type).
    AddContextListener(Option<&'a str>),
    /// Removed a context listener (of this type).
    Unsubscribe(Option<&'a str>),
    /// Disconnected.
    Disconnect,
}

impl Agent {
    pub(crate) fn create_private_channel(&mut self, from: &Identity) -> Value {
        let id = self.channels.new_private();
        let mut participants = Participants::default();
        participants.members.insert(from.instance_id.clone());
        self.private.insert(id.clone(), participants);
        json!({ "privateChannel": { "id": id, "type": "private" } })
    }

    /// Lets `instance` use the private channel `id`, if it still exists.
    pub(crate) fn grant_private(&mut self, id: &str, instance: &str) {
        if let Some(p) = self.private.get_mut(id) {
            p.members.insert(instance.to_owned());
        }
    }

    /// The private channels `instance` takes part in.
    pub(crate) fn private_channels_of(&self, instance: &str) -> Vec<String> {
        self.private
            .iter()
            .filter(|(_, p)| p.may_use(instance))
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub(crate) fn add_private_listener(
        &mut self,
        from: &Identity,
        p: &Map<String, Value>,
    ) -> Answer {
        let channel = envelope::string(p, "privateChannelId").ok_or(errors::MALFORMED_MESSAGE)?;
        let kind = match envelope::string_or_null(p, "listenerType") {
            Ok(None) => None,
            Ok(Some("addContextListener")) => Some(Kind::AddContextListener),
            Ok(Some("unsubscribe")) => Some(Kind::Unsubscribe),
            Ok(Some("disconnect")) => Some(Kind::Disconnect),
            _ => return Err(errors::MALFORMED_MESSAGE),
        };
        if !self.private.contains_key(channel) {
            return Err(errors::NO_CHANNEL_FOUND);
        }
        self.may_use(&from.instance_id, channel)?;
        let uuid = envelope::new_uuid();
        self.private_listeners.insert(
            uuid.clone(),
            EventListener {
                instance: from.instance_id.clone(),
                channel: channel.to_owned(),
                kind,
            },
        );
        Ok(json!({ "listenerUUID": uuid }))
    }

    /// Tells the other participants of `channel` listening for it what `from` did:
    /// one event per instance, however many of its listeners want it.
    pub(crate) fn private_event(
        &self,
        from: &str,
        channel: &str,
        what: Event<'_>,
        out: &mut Vec<Outbound>,
    ) {
        let (kind, message_type, payload) = match what {
            Event::AddContextListener(t) => (
                Kind::AddContextListener,
                "privateChannelOnAddContextListenerEvent",
                json!({ "privateChannelId": channel, "contextType": t }),
            ),
            Event::Unsubscribe(t) => (
                Kind::Unsubscribe,
                "privateChannelOnUnsubscribeEvent",
                json!({ "privateChannelId": channel, "contextType": t }),
            ),
            Event::Disconnect => (
                Kind::Disconnect,
                "privateChannelOnDisconnectEvent",
                json!({ "privateChannelId": channel }),
            ),
        };
        let Some(participants) = self.private.get(channel) else {
            return;
        };
        let told: BTreeSet<&str> = self
            .private_listeners
            .values()
            .filter(|l| l.channel == channel && l.instance != from)
            .filter(|l| l.kind.is_none_or(|k| k == kind))
            .filter(|l| participants.may_use(&l.instance))
            .map(|l| l.instance.as_str())
            .collect();
        for instance in told {
            if let Some(i) = self.instances.get(instance) {
                out.push(Outbound {
                    to: i.identity.clone(),
                    message: event(message_type, payload.clone()),
                });
            }
        }
    }

    pub(crate) fn private_disconnect_request(
        &mut self,
        from: &Identity,
        p: &Map<String, Value>,
        out: &mut Vec<Outbound>,
    ) -> Answer {
        let channel = envelope::string(p, "channelId").ok_or(errors::MALFORMED_MESSAGE)?;
        if !self.private.contains_key(channel) {
            return Err(errors::NO_CHANNEL_FOUND);
        }
        self.may_use(&from.instance_id, channel)?;
        self.disconnect_private(&from.instance_id, channel, out);
        Ok(json!({}))
    }

    /// `instance` leaves the private channel for good: its context listeners on it go
    /// (the others hear of each), then the others hear it disconnected. A channel
    /// nobody is left on is forgotten.
    pub(crate) fn disconnect_private(
        &mut self,
        instance: &str,
        channel: &str,
        out: &mut Vec<Outbound>,
    ) {
        let mine: Vec<(String, Option<String>)> = self
            .context_listeners
            .iter()
            .filter(|(_, l)| l.instance == instance && l.channel.as_deref() == Some(channel))
            .map(|(uuid, l)| (uuid.clone(), l.context_type.clone()))
            .collect();
        for (uuid, context_type) in mine {
            self.context_listeners.remove(&uuid);
            self.private_event(
                instance,
                channel,
                Event::Unsubscribe(context_type.as_deref()),
                out,
            );
        }
        self.private_event(instance, channel, Event::Disconnect, out);
        self.private_listeners
            .retain(|_, l| !(l.instance == instance && l.channel == channel));
        let empty = self.private.get_mut(channel).is_none_or(|p| {
            p.members.remove(instance);
            p.members.is_empty()
        });
        if empty {
            self.private.remove(channel);
            self.channels.remove(channel);
        }
    }
}
