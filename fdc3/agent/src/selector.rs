//! The user's side of user channels: each app window shows the channel its app is on
//! and lets the user change it through the shell's channel selector.
//!
//! The app host is told its instance's channel whenever it changes (a message of type
//! `weft_proto::FDC3_HOST_CHANNEL_TYPE`, with the channel and its colour as
//! `#rrggbb`, which the host keeps from the page), and asks for the selector with
//! `weft_proto::FDC3_CHOOSE_CHANNEL_TYPE`. A channel the user picks reaches the page
//! as the standard's `channelChangedEvent`, so its user-channel listeners move to it
//! (the proxy fetches the channel's current context for them); a change the app makes
//! itself (`joinUserChannel`) does not, as the proxy has already moved them.

use serde_json::{Value, json};
use weft_proto::{FDC3_HOST_CHANNEL_TYPE, Identity};

use crate::{Agent, Outbound, USER_CHANNELS, event};

/// A request for the channel selector: over the window of `instance`, which is on
/// `current`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelQuestion {
    /// The app instance whose channel the user is choosing.
    pub instance: Identity,
    /// The user channel it is on.
    pub current: Option<String>,
}

impl Agent {
    /// The channel selector requests since the last call.
    pub fn take_channel_questions(&mut self) -> Vec<ChannelQuestion> {
        std::mem::take(&mut self.channel_questions)
    }

    /// The user put `instance_id` on `channel` (or on none): its page hears of it
    /// (`channelChangedEvent`), and its host too.
    pub fn select_user_channel(
        &mut self,
        instance_id: &str,
        channel: Option<&str>,
    ) -> Vec<Outbound> {
        let mut out = Vec::new();
        if channel.is_some_and(|c| !self.channels.is_user(c)) {
            return out;
        }
        let Some(instance) = self.instances.get_mut(instance_id) else {
            return out;
        };
        instance.user_channel = channel.map(str::to_owned);
        let to = instance.identity.clone();
        out.push(Outbound {
            to: to.clone(),
            message: event("channelChangedEvent", json!({ "newChannelId": channel })),
        });
        self.tell_host(&to, &mut out);
        out
    }

    /// The host of `from` asks for the channel selector.
    pub(crate) fn choose_channel(&mut self, from: &Identity) {
        let current = self.user_channel_of(&from.instance_id).map(str::to_owned);
        self.channel_questions.push(ChannelQuestion {
            instance: from.clone(),
            current,
        });
    }

    /// Tells the host of `to` which user channel its instance is on.
    pub(crate) fn tell_host(&self, to: &Identity, out: &mut Vec<Outbound>) {
        let id = self.user_channel_of(&to.instance_id);
        let channel = id
            .and_then(|id| self.channels.get(id).map(|c| c.describe(id)))
            .unwrap_or(Value::Null);
        let rgb = id
            .and_then(|id| USER_CHANNELS.iter().find(|(c, _)| *c == id))
            .map(|(_, d)| d.hex());
        out.push(Outbound {
            to: to.clone(),
            message: event(
                FDC3_HOST_CHANNEL_TYPE,
                json!({ "channel": channel, "rgb": rgb }),
            ),
        });
    }
}
