//! One App Directory record (FDC3 AppD v2 `Application`): read leniently (fields this
//! crate does not use are ignored, as the standard adds fields over time), checked
//! strictly (every field it uses must have the right type and a usable value).

use std::{collections::BTreeMap, path::Path};

use serde::Deserialize;
use weft_workspace::{AppUrl, RawSettings};

/// An image of an app: icon or screenshot.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Image {
    /// Its URL.
    pub src: String,
    /// Its size, as `"WxH"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Its media type.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// A caption (screenshots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// An intent an app listens for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentListener {
    /// How the intent is shown to users.
    pub display_name: Option<String>,
    /// The context types it accepts (none: any).
    pub contexts: Vec<String>,
    /// What it returns: a context type, `channel`, or `channel<type>`.
    pub result_type: Option<String>,
}

/// Which channels an app broadcasts on and listens to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelUse {
    /// Context types it broadcasts.
    pub broadcasts: Vec<String>,
    /// Context types it listens for.
    pub listens_for: Vec<String>,
}

/// An app channel an app uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppChannelUse {
    /// The channel's id.
    pub id: String,
    /// What it is for.
    pub description: Option<String>,
    /// Its use of the channel.
    pub usage: ChannelUse,
}

/// How an app interoperates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interop {
    /// Intents it listens for, by name.
    pub listens_for: BTreeMap<String, IntentListener>,
    /// Intents it raises, by name, with the context types it raises them with.
    pub raises: BTreeMap<String, Vec<String>>,
    /// Its use of user channels.
    pub user_channels: ChannelUse,
    /// The app channels it uses.
    pub app_channels: Vec<AppChannelUse>,
}

/// A checked record of a web app.
#[derive(Debug, Clone, PartialEq)]
pub struct AppRecord {
    /// Its unique id.
    pub app_id: String,
    /// Its title.
    pub title: String,
    /// Its (older) name.
    pub name: Option<String>,
    /// Its version.
    pub version: Option<String>,
    /// What it is.
    pub description: Option<String>,
    /// A short description.
    pub tooltip: Option<String>,
    /// Who publishes it.
    pub publisher: Option<String>,
    /// Its icons.
    pub icons: Vec<Image>,
    /// Its screenshots.
    pub screenshots: Vec<Image>,
    /// Where its page comes from (`details.url`).
    pub url: AppUrl,
    /// How it interoperates.
    pub interop: Interop,
    /// Weft's settings for it (`hostManifests.weft`).
    pub weft: RawSettings,
    /// What its signature (`hostManifests.weft.signature`) says.
    pub signature: weft_workspace::SignatureCheck,
}

/// A problem with a record: the field (as a path such as `details.url`) and what is
/// wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordProblem {
    /// The record's appId, when it has a readable one.
    pub app_id: Option<String>,
    /// The offending field, when the problem is in one.
    pub field: Option<String>,
    /// What is wrong.
    pub problem: String,
}

/// Where relative URLs of a directory's records point.
#[derive(Debug, Clone)]
pub enum Base<'a> {
    /// A directory read from a file: relative `details.url` paths are files in its
    /// folder, served by Weft.
    Folder(&'a Path),
    /// A directory read from a URL: relative URLs are resolved against it.
    Url(&'a url::Url),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRecord {
    app_id: String,
    title: Option<String>,
    name: Option<String>,
    #[serde(rename = "type")]
    app_type: Option<String>,
    details: Option<RawDetails>,
    version: Option<String>,
    description: Option<String>,
    tooltip: Option<String>,
    publisher: Option<String>,
    #[serde(default)]
    icons: Vec<Image>,
    #[serde(default)]
    screenshots: Vec<Image>,
    #[serde(default)]
    interop: RawInterop,
    #[serde(default)]
    host_manifests: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct RawDetails {
    url: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawInterop {
    #[serde(default)]
    intents: RawIntents,
    #[serde(default)]
    user_channels: RawChannelUse,
    #[serde(default)]
    app_channels: Vec<RawAppChannel>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawIntents {
    #[serde(default)]
    listens_for: BTreeMap<String, RawListener>,
    #[serde(default)]
    raises: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawListener {
    display_name: Option<String>,
    #[serde(default)]
    contexts: Vec<String>,
    result_type: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawChannelUse {
    #[serde(default)]
    broadcasts: Vec<String>,
    #[serde(default)]
    listens_for: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAppChannel {
    id: String,
    description: Option<String>,
    #[serde(default)]
    broadcasts: Vec<String>,
    #[serde(default)]
    listens_for: Vec<String>,
}

impl From<RawChannelUse> for ChannelUse {
    fn from(raw: RawChannelUse) -> Self {
        ChannelUse {
            broadcasts: raw.broadcasts,
            listens_for: raw.listens_for,
        }
    }
}

/// Whether `result_type` is a context type, `channel`, or `channel<type>`.
pub fn valid_result_type(result_type: &str) -> bool {
    let named = |t: &str| !t.is_empty() && !t.contains(['<', '>']) && t.trim() == t;
    match result_type
        .strip_prefix("channel<")
        .and_then(|r| r.strip_suffix('>'))
    {
        Some(inner) => named(inner),
        None => named(result_type),
    }
}

/// Reads and checks one record.
pub fn check_record(
    value: &serde_json::Value,
    base: &Base<'_>,
) -> Result<AppRecord, RecordProblem> {
    let app_id = value
        .get("appId")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let fail = |field: &str, problem: String| RecordProblem {
        app_id: app_id.clone(),
        field: (!field.is_empty()).then(|| field.to_owned()),
        problem,
    };
    let raw: RawRecord = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        let message = match message.rfind(" at line ") {
            Some(i) => message[..i].to_owned(),
            None => message,
        };
        fail(if path == "." { "" } else { &path }, message)
    })?;
    weft_proto::identity::validate_app_id(&raw.app_id)
        .map_err(|e| fail("appId", format!("not usable as a Weft appId: {e}")))?;
    let title = match raw.title.or(raw.name.clone()) {
        Some(t) if !t.trim().is_empty() => t,
        Some(_) => return Err(fail("title", "the title is empty".into())),
        None => return Err(fail("title", "missing field `title`".into())),
    };
    match raw.app_type.as_deref() {
        Some("web") => {}
        Some(other) => {
            return Err(fail(
                "type",
                format!("{other:?} apps cannot run in Weft, which runs \"web\" apps"),
            ));
        }
        None => return Err(fail("type", "missing field `type`".into())),
    }
    let url = raw
        .details
        .and_then(|d| d.url)
        .ok_or_else(|| fail("details.url", "a web app needs details.url".into()))?;
    let url = match base {
        Base::Folder(folder) => AppUrl::resolve(&url, folder),
        Base::Url(directory) => resolve_against(directory, &url),
    }
    .map_err(|p| fail("details.url", p))?;
    for (field, images) in [("icons", &raw.icons), ("screenshots", &raw.screenshots)] {
        for (i, image) in images.iter().enumerate() {
            if image.src.trim().is_empty() {
                return Err(fail(
                    &format!("{field}[{i}].src"),
                    "the src is empty".into(),
                ));
            }
        }
    }
    let mut listens_for = BTreeMap::new();
    for (intent, listener) in raw.interop.intents.listens_for {
        let field = format!("interop.intents.listensFor.{intent}");
        if intent.trim().is_empty() {
            return Err(fail(&field, "an intent name is empty".into()));
        }
        if let Some(rt) = &listener.result_type
            && !valid_result_type(rt)
        {
            return Err(fail(
                &format!("{field}.resultType"),
                format!("{rt:?} is not a context type, \"channel\" or \"channel<type>\""),
            ));
        }
        listens_for.insert(
            intent,
            IntentListener {
                display_name: listener.display_name,
                contexts: listener.contexts,
                result_type: listener.result_type,
            },
        );
    }
    let app_channels = raw
        .interop
        .app_channels
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            if c.id.trim().is_empty() {
                return Err(fail(
                    &format!("interop.appChannels[{i}].id"),
                    "the channel id is empty".into(),
                ));
            }
            Ok(AppChannelUse {
                id: c.id,
                description: c.description,
                usage: ChannelUse {
                    broadcasts: c.broadcasts,
                    listens_for: c.listens_for,
                },
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let weft = match raw.host_manifests.get("weft") {
        None => RawSettings::default(),
        Some(value) => {
            let settings = RawSettings::from_json(value).map_err(|(path, problem)| {
                let field = if path == "." {
                    "hostManifests.weft".to_owned()
                } else {
                    format!("hostManifests.weft.{path}")
                };
                fail(&field, problem)
            })?;
            settings
                .check()
                .map_err(|(name, problem)| fail(&format!("hostManifests.weft.{name}"), problem))?;
            settings
        }
    };
    Ok(AppRecord {
        app_id: raw.app_id,
        title,
        name: raw.name,
        version: raw.version,
        description: raw.description,
        tooltip: raw.tooltip,
        publisher: raw.publisher,
        icons: raw.icons,
        screenshots: raw.screenshots,
        url,
        interop: Interop {
            listens_for,
            raises: raw.interop.intents.raises,
            user_channels: raw.interop.user_channels.into(),
            app_channels,
        },
        weft,
        signature: weft_manifest_signing::check(value, weft_manifest_signing::RECORD_SIGNATURE),
    })
}

/// A record's URL read against the URL its directory came from.
fn resolve_against(directory: &url::Url, url: &str) -> Result<AppUrl, String> {
    if url.trim().is_empty() {
        return Err("the url is empty".into());
    }
    let joined = directory
        .join(url)
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match joined.scheme() {
        "http" | "https" if joined.host().is_some() => Ok(AppUrl::Remote(joined.into())),
        scheme => Err(format!(
            "the scheme {scheme:?} is not allowed; web apps are http or https"
        )),
    }
}
