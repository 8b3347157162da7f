//! The strip at the top of an app's window showing which FDC3 user channel the app is
//! on, in the channel's colour; clicking it (or pressing Enter on it) asks the shell to
//! show its channel selector over the window.

use gtk::prelude::*;
use weft_proto::FDC3_HOST_CHANNEL_TYPE;

/// The channel the agent says the app is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownChannel {
    /// Its name, as users see it.
    pub name: String,
    /// Its colour, `#rrggbb`.
    pub rgb: String,
}

/// Just enough of an agent message to tell whether it is about the channel: the
/// others (most of them) go to the page without being parsed further.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(borrow)]
    payload: Option<&'a serde_json::value::RawValue>,
}

impl ShownChannel {
    /// The channel an agent message of type `FDC3_HOST_CHANNEL_TYPE` names:
    /// `Some(None)` for none; `None` if the message is not one (or not readable).
    pub fn from_message(message: &[u8]) -> Option<Option<ShownChannel>> {
        let envelope: Envelope<'_> = serde_json::from_slice(message).ok()?;
        if envelope.kind != FDC3_HOST_CHANNEL_TYPE {
            return None;
        }
        let payload: serde_json::Value = serde_json::from_str(envelope.payload?.get()).ok()?;
        let channel = payload.get("channel")?;
        if channel.is_null() {
            return Some(None);
        }
        let name = channel
            .get("displayMetadata")
            .and_then(|d| d.get("name"))
            .or_else(|| channel.get("id"))?
            .as_str()?;
        let rgb = payload.get("rgb")?.as_str()?;
        let valid = rgb.len() == 7
            && rgb.starts_with('#')
            && rgb[1..].chars().all(|c| c.is_ascii_hexdigit());
        valid.then(|| {
            Some(ShownChannel {
                name: name.to_owned(),
                rgb: rgb.to_owned(),
            })
        })
    }
}

/// The strip: a button whose label shows the channel.
pub struct ChannelBar {
    button: gtk::Button,
    label: gtk::Label,
}

impl ChannelBar {
    /// Adds the strip at the top of `container`; `on_click` runs when the user asks to
    /// change the channel.
    pub fn new(container: &gtk::Box, on_click: impl Fn() + 'static) -> ChannelBar {
        let label = gtk::Label::new(None);
        label.set_xalign(0.0);
        let button = gtk::Button::new();
        button.add(&label);
        button.set_relief(gtk::ReliefStyle::None);
        button.set_tooltip_text(Some(
            "The FDC3 user channel this app shares context on. Click to change it.",
        ));
        button.connect_clicked(move |_| on_click());
        container.pack_start(&button, false, false, 0);
        button.show_all();
        let bar = ChannelBar { button, label };
        bar.show(None);
        bar
    }

    /// Shows `channel` (or none).
    pub fn show(&self, channel: Option<&ShownChannel>) {
        let markup = match channel {
            Some(c) => format!(
                "<span background=\"{}\">      </span>  Channel: {}",
                c.rgb,
                gtk::glib::markup_escape_text(&c.name)
            ),
            None => "<span background=\"#9e9e9e\">      </span>  Channel: none".to_owned(),
        };
        self.label.set_markup(&markup);
        self.button.queue_draw();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_the_agents_channel_messages_only() {
        let on = json!({"type": "weftUserChannel", "payload": {
            "channel": {"id": "fdc3.channel.1", "type": "user", "displayMetadata": {"name": "Channel 1"}},
            "rgb": "#e53935"}});
        assert_eq!(
            ShownChannel::from_message(on.to_string().as_bytes()),
            Some(Some(ShownChannel {
                name: "Channel 1".into(),
                rgb: "#e53935".into()
            }))
        );
        let none = json!({"type": "weftUserChannel", "payload": {"channel": null, "rgb": null}});
        assert_eq!(
            ShownChannel::from_message(none.to_string().as_bytes()),
            Some(None)
        );
        let bad_colour = json!({"type": "weftUserChannel", "payload": {
            "channel": {"id": "x"}, "rgb": "red\" foreground=\"x"}});
        assert_eq!(
            ShownChannel::from_message(bad_colour.to_string().as_bytes()),
            None
        );
        let other = json!({"type": "broadcastEvent", "payload": {}});
        assert_eq!(
            ShownChannel::from_message(other.to_string().as_bytes()),
            None
        );
    }
}
