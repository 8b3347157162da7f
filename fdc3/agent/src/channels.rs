//! Channels and the contexts they hold: the eight standard user channels and the app
//! channels apps create.
//!
//! Each channel keeps, per context type, the most recent context broadcast on it, and
//! which of them came last (`getCurrentContext` with and without a type).

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// What kind of channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// One of the user channels, joined through the channel selector or
    /// `joinUserChannel`.
    User,
    /// Created by `getOrCreateChannel`.
    App,
    /// Created by `createPrivateChannel`: only its participants may use it.
    Private,
}

impl ChannelKind {
    fn as_str(self) -> &'static str {
        match self {
            ChannelKind::User => "user",
            ChannelKind::App => "app",
            ChannelKind::Private => "private",
        }
    }
}

/// How a user channel is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayMetadata {
    /// Its name.
    pub name: &'static str,
    /// Its colour.
    pub color: &'static str,
    /// Its glyph.
    pub glyph: &'static str,
    /// How Weft draws its colour (not part of the standard's metadata).
    pub rgb: [u8; 3],
}

impl DisplayMetadata {
    /// The colour as `#rrggbb`.
    pub fn hex(&self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.rgb[0], self.rgb[1], self.rgb[2])
    }
}

/// The standard's recommended set of user channels (FDC3 2.2, "User Channels").
pub const USER_CHANNELS: [(&str, DisplayMetadata); 8] = [
    (
        "fdc3.channel.1",
        DisplayMetadata {
            name: "Channel 1",
            color: "red",
            glyph: "1",
            rgb: [0xe5, 0x39, 0x35],
        },
    ),
    (
        "fdc3.channel.2",
        DisplayMetadata {
            name: "Channel 2",
            color: "orange",
            glyph: "2",
            rgb: [0xfb, 0x8c, 0x00],
        },
    ),
    (
        "fdc3.channel.3",
        DisplayMetadata {
            name: "Channel 3",
            color: "yellow",
            glyph: "3",
            rgb: [0xfd, 0xd8, 0x35],
        },
    ),
    (
        "fdc3.channel.4",
        DisplayMetadata {
            name: "Channel 4",
            color: "green",
            glyph: "4",
            rgb: [0x43, 0xa0, 0x47],
        },
    ),
    (
        "fdc3.channel.5",
        DisplayMetadata {
            name: "Channel 5",
            color: "cyan",
            glyph: "5",
            rgb: [0x00, 0xac, 0xc1],
        },
    ),
    (
        "fdc3.channel.6",
        DisplayMetadata {
            name: "Channel 6",
            color: "blue",
            glyph: "6",
            rgb: [0x1e, 0x88, 0xe5],
        },
    ),
    (
        "fdc3.channel.7",
        DisplayMetadata {
            name: "Channel 7",
            color: "magenta",
            glyph: "7",
            rgb: [0xd8, 0x1b, 0x60],
        },
    ),
    (
        "fdc3.channel.8",
        DisplayMetadata {
            name: "Channel 8",
            color: "purple",
            glyph: "8",
            rgb: [0x8e, 0x24, 0xaa],
        },
    ),
];

/// One channel.
#[derive(Debug)]
pub(crate) struct Channel {
    pub(crate) kind: ChannelKind,
    display: Option<DisplayMetadata>,
    /// The most recent context of each type.
    by_type: BTreeMap<String, Value>,
    /// The type of the most recent context.
    last_type: Option<String>,
}

impl Channel {
    fn new(kind: ChannelKind) -> Channel {
        Channel {
            kind,
            display: None,
            by_type: BTreeMap::new(),
            last_type: None,
        }
    }

    /// The channel as the protocol describes it.
    pub(crate) fn describe(&self, id: &str) -> Value {
        let mut channel = json!({ "id": id, "type": self.kind.as_str() });
        if let Some(d) = &self.display {
            channel["displayMetadata"] =
                json!({ "name": d.name, "color": d.color, "glyph": d.glyph });
        }
        channel
    }

    /// Keeps `context` (of type `kind`) as the channel's current one.
    pub(crate) fn store(&mut self, context_type: &str, context: Value) {
        self.by_type.insert(context_type.to_owned(), context);
        self.last_type = Some(context_type.to_owned());
    }

    /// The most recent context of `context_type`, or the most recent of all.
    pub(crate) fn current(&self, context_type: Option<&str>) -> Option<&Value> {
        let t = context_type.or(self.last_type.as_deref())?;
        self.by_type.get(t)
    }
}

/// Every channel, by id.
#[derive(Debug)]
pub(crate) struct Channels {
    by_id: BTreeMap<String, Channel>,
}

impl Default for Channels {
    fn default() -> Self {
        let by_id = USER_CHANNELS
            .iter()
            .map(|(id, display)| {
                (
                    (*id).to_owned(),
                    Channel {
                        kind: ChannelKind::User,
                        display: Some(display.clone()),
                        by_type: BTreeMap::new(),
                        last_type: None,
                    },
                )
            })
            .collect();
        Channels { by_id }
    }
}

impl Channels {
    pub(crate) fn get(&self, id: &str) -> Option<&Channel> {
        self.by_id.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut Channel> {
        self.by_id.get_mut(id)
    }

    /// Whether `id` is a user channel.
    pub(crate) fn is_user(&self, id: &str) -> bool {
        self.get(id).is_some_and(|c| c.kind == ChannelKind::User)
    }

    /// The user channels, in order.
    pub(crate) fn user_channels(&self) -> Vec<Value> {
        USER_CHANNELS
            .iter()
            .filter_map(|(id, _)| self.get(id).map(|c| c.describe(id)))
            .collect()
    }

    /// A new private channel; its id.
    pub(crate) fn new_private(&mut self) -> String {
        let id = format!("private.{}", crate::envelope::new_uuid());
        self.by_id
            .insert(id.clone(), Channel::new(ChannelKind::Private));
        id
    }

    /// Forgets a channel (a private one nobody is connected to any more).
    pub(crate) fn remove(&mut self, id: &str) {
        self.by_id.remove(id);
    }

    /// The app channel `id`, created if new; `None` if `id` names a channel of another
    /// kind.
    pub(crate) fn app_channel(&mut self, id: &str) -> Option<&Channel> {
        let channel = self
            .by_id
            .entry(id.to_owned())
            .or_insert_with(|| Channel::new(ChannelKind::App));
        (channel.kind == ChannelKind::App).then_some(channel)
    }
}
