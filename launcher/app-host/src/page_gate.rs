//! Which page messages the host accepts.
//!
//! WebKit exposes the IPC handler to every frame of the page, including iframes of other
//! origins, and page scripts can call it directly. The bridge therefore makes a random
//! secret at each page load and announces it in its first message (`hello`), which the
//! init script sends at document start, before any page script or frame exists. The
//! gate remembers that secret until the next page load starts and drops every message
//! that does not carry it, and every message sent while the top frame is not on the
//! app's own origin.

use serde::Deserialize;
use serde_json::value::RawValue;
use url::Url;
use weft_proto::{
    ErrorCode,
    frame::{IdentityFilter, RemoteError, Replay, WindowAction},
    launch::WindowBounds,
};

/// A message from the page, accepted and decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum PageRequest {
    /// The bridge announced itself.
    Hello,
    /// The page finished loading.
    Ready,
    /// `weft.publish(topic, data)`; `data` is JSON text.
    Publish {
        /// Request id.
        id: u64,
        /// The topic, not yet validated.
        topic: String,
        /// The payload as JSON text, checked to be JSON.
        data: String,
        /// The `traceparent` of the message that caused this one, not yet validated.
        trace: Option<String>,
        /// Milliseconds the message stays deliverable (`opts.ttlMs`).
        ttl_ms: Option<u64>,
    },
    /// The handler of a durable consumer's message finished: `error` if it failed.
    Ack {
        /// The page's subscription id.
        sub: u64,
        /// The message's sequence number.
        seq: u64,
        /// The handler's error, if it threw or its promise was rejected.
        error: Option<String>,
    },
    /// `weft.send(target, topic, data)`.
    Send {
        /// Request id.
        id: u64,
        /// The recipient.
        to: IdentityFilter,
        /// The topic, not yet validated.
        topic: String,
        /// The payload as JSON text.
        data: String,
        /// The `traceparent` of the message that caused this one, not yet validated.
        trace: Option<String>,
    },
    /// `weft.subscribe(pattern, handler, {from})`.
    Subscribe {
        /// Request id.
        id: u64,
        /// The page's subscription id.
        sub: u64,
        /// The pattern, not yet validated.
        topic: String,
        /// Only messages from this sender.
        from: Option<IdentityFilter>,
        /// Stored messages to deliver first (for a durable consumer: where a new one
        /// starts).
        replay: Option<Replay>,
        /// The durable consumer to attach to (`opts.durable`).
        durable: Option<String>,
    },
    /// `weft.request(topic, data, {timeout})`.
    Request {
        /// Request id.
        id: u64,
        /// The topic, not yet validated.
        topic: String,
        /// The question as JSON text.
        data: String,
        /// Milliseconds to wait for an answer.
        timeout_ms: u64,
        /// The `traceparent` of the message that caused this one, not yet validated.
        trace: Option<String>,
    },
    /// The answer to a request delivered to the page, or to an invocation.
    Respond {
        /// The call answered.
        call: u64,
        /// The answer as JSON text, or the handler's failure.
        outcome: Result<String, RemoteError>,
    },
    /// `weft.rpc.provide(name)`.
    Provide {
        /// Request id.
        id: u64,
        /// The service, not yet validated.
        service: String,
    },
    /// `provider.withdraw()`.
    Withdraw {
        /// Request id.
        id: u64,
        /// The service.
        service: String,
    },
    /// `weft.rpc.connect(name, {wait, timeout})`.
    Connect {
        /// Request id.
        id: u64,
        /// The service, not yet validated.
        service: String,
        /// Milliseconds to wait for a provider, if waiting.
        wait_ms: Option<u64>,
    },
    /// `client.dispatch(action, payload, {timeout})`.
    Dispatch {
        /// Request id.
        id: u64,
        /// The service.
        service: String,
        /// The action.
        action: String,
        /// The argument as JSON text.
        data: String,
        /// Milliseconds to wait for the result.
        timeout_ms: u64,
        /// The `traceparent` of the message that caused this one, not yet validated.
        trace: Option<String>,
    },
    /// `subscription.unsubscribe()`.
    Unsubscribe {
        /// Request id.
        id: u64,
        /// The page's subscription id.
        sub: u64,
    },
    /// `weft.secureStorage.get/set/delete/keys`, served by the shell after its
    /// permission check.
    SecureStorage {
        /// Request id.
        id: u64,
        /// `get`, `set`, `delete` or `keys`.
        action: SecureAction,
        /// The entry's name (not for `keys`).
        key: Option<String>,
        /// The value as JSON text (for `set`).
        value: Option<String>,
    },
    /// `window.close()`: the app closes, as when its window is closed.
    Close,
    /// `weft.notifications.…` or `weft.clipboard.…`: a sensitive API the shell serves
    /// after its permission check.
    Platform {
        /// Request id.
        id: u64,
        /// The API's service.
        service: PlatformService,
        /// The action, one the service has.
        action: &'static str,
        /// The arguments, as JSON text.
        args: String,
    },
    /// The page's answer to a snapshot request: what its `weft.workspace.onSave`
    /// hook returned (JSON text), or why it gave nothing.
    Saved {
        /// The snapshot request.
        request: u64,
        /// The page's state, checked to be JSON; none without a hook.
        state: Option<String>,
        /// The hook's failure.
        error: Option<String>,
    },
    /// `weft.window.…`: something done to or asked of the page's own window, handled
    /// by the window thread at once.
    Window {
        /// Request id.
        id: u64,
        /// What.
        op: WindowOp,
    },
    /// A message of the page's FDC3 Desktop Agent proxy, for the agent.
    Fdc3 {
        /// The message: the text of a JSON object, not yet checked to be a valid
        /// request (the agent checks).
        message: String,
    },
    /// A line of the page's console, or an error it did not catch.
    Console {
        /// How severe.
        level: ConsoleLevel,
        /// The text, at most [`MAX_CONSOLE_TEXT`] bytes.
        text: String,
    },
}

/// What a secure storage call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecureAction {
    /// Read one entry.
    Get,
    /// Write one entry.
    Set,
    /// Remove one entry.
    Delete,
    /// List the entries' names.
    Keys,
}

impl SecureAction {
    /// The action's name, as the shell's service knows it.
    pub fn as_str(self) -> &'static str {
        match self {
            SecureAction::Get => "get",
            SecureAction::Set => "set",
            SecureAction::Delete => "delete",
            SecureAction::Keys => "keys",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "get" => SecureAction::Get,
            "set" => SecureAction::Set,
            "delete" => SecureAction::Delete,
            "keys" => SecureAction::Keys,
            _ => return None,
        })
    }
}

/// The longest console line kept, in bytes; the rest is cut.
pub const MAX_CONSOLE_TEXT: usize = 16 * 1024;

/// How severe a console line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleLevel {
    /// `console.debug`.
    Debug,
    /// `console.log` and `console.info`.
    Info,
    /// `console.warn`.
    Warn,
    /// `console.error`, uncaught errors and unhandled promise rejections.
    Error,
}

impl ConsoleLevel {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "debug" => ConsoleLevel::Debug,
            "log" | "info" => ConsoleLevel::Info,
            "warn" => ConsoleLevel::Warn,
            "error" => ConsoleLevel::Error,
            _ => return None,
        })
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn truncated(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(" […cut]");
    }
    text
}

/// A sensitive API served by the shell, and its actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformService {
    /// `weft.notifications`.
    Notifications,
    /// `weft.clipboard`.
    Clipboard,
}

impl PlatformService {
    /// The service on the bus.
    pub fn topic(self) -> &'static str {
        match self {
            PlatformService::Notifications => weft_proto::NOTIFICATIONS_SERVICE,
            PlatformService::Clipboard => weft_proto::CLIPBOARD_SERVICE,
        }
    }

    fn parse(name: &str) -> Option<PlatformService> {
        match name {
            "notifications" => Some(PlatformService::Notifications),
            "clipboard" => Some(PlatformService::Clipboard),
            _ => None,
        }
    }

    /// `action` as one of this service's, if it is one.
    fn action(self, action: &str) -> Option<&'static str> {
        let actions: &[&'static str] = match self {
            PlatformService::Notifications => &["create"],
            PlatformService::Clipboard => &["readText", "writeText"],
        };
        actions.iter().copied().find(|a| *a == action)
    }
}

/// What a page asks of its own window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowOp {
    /// Do this.
    Do(WindowAction),
    /// Where is it (logical pixels)?
    GetBounds,
    /// Is it visible, minimised, maximised, focused?
    GetState,
}

/// Largest window side a page may ask for, in logical pixels.
const MAX_WINDOW_SIDE: u32 = 16_384;
/// Farthest a page may place its window from the origin, in logical pixels.
const MAX_WINDOW_OFFSET: i32 = 100_000;

impl PageRequest {
    /// Whether it takes a place in the page's backlog of calls until it is handled:
    /// console lines wait on no answer, and window requests are answered by the window
    /// thread at once.
    pub fn takes_backlog_place(&self) -> bool {
        !matches!(
            self,
            PageRequest::Console { .. } | PageRequest::Window { .. } | PageRequest::Saved { .. }
        )
    }

    /// The page's request id, for requests the page waits on.
    pub fn id(&self) -> Option<u64> {
        match self {
            PageRequest::Hello
            | PageRequest::Ready
            | PageRequest::Respond { .. }
            | PageRequest::Ack { .. }
            | PageRequest::Fdc3 { .. }
            | PageRequest::Close
            | PageRequest::Saved { .. }
            | PageRequest::Console { .. } => None,
            PageRequest::Publish { id, .. }
            | PageRequest::Send { id, .. }
            | PageRequest::Subscribe { id, .. }
            | PageRequest::Unsubscribe { id, .. }
            | PageRequest::Request { id, .. }
            | PageRequest::Provide { id, .. }
            | PageRequest::Withdraw { id, .. }
            | PageRequest::Connect { id, .. }
            | PageRequest::Dispatch { id, .. }
            | PageRequest::SecureStorage { id, .. }
            | PageRequest::Platform { id, .. }
            | PageRequest::Window { id, .. } => Some(*id),
        }
    }
}

/// Why a message was dropped.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Dropped {
    /// The message is not JSON of the expected shape.
    #[error("not a bridge message: {0}")]
    Malformed(String),
    /// No secret, or the wrong one.
    #[error("missing or wrong page secret")]
    BadSecret,
    /// A second `hello` in one page load.
    #[error("a second hello in the same page load")]
    RepeatedHello,
    /// The top frame is on another origin than the app's.
    #[error("the page is on {0}, not the app's origin")]
    ForeignOrigin(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw<'a> {
    s: Option<String>,
    t: String,
    id: Option<u64>,
    sub: Option<u64>,
    topic: Option<String>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    to: Option<RawIdentity>,
    from: Option<RawIdentity>,
    svc: Option<String>,
    action: Option<String>,
    call: Option<u64>,
    timeout: Option<u64>,
    wait: Option<u64>,
    err: Option<RawError>,
    level: Option<String>,
    msg: Option<String>,
    tp: Option<String>,
    replay: Option<RawReplay>,
    durable: Option<String>,
    ttl: Option<u64>,
    seq: Option<u64>,
    key: Option<String>,
    bounds: Option<RawBounds>,
    #[serde(borrow)]
    m: Option<&'a RawValue>,
}

/// `{x, y, width, height}` for `weft.window.setBounds`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBounds {
    x: i32,
    y: i32,
    width: u32,
    height: u32,
}

impl RawBounds {
    fn checked(self) -> Result<WindowBounds, String> {
        let side = 1..=MAX_WINDOW_SIDE;
        let offset = -MAX_WINDOW_OFFSET..=MAX_WINDOW_OFFSET;
        if !side.contains(&self.width) || !side.contains(&self.height) {
            return Err(format!(
                "bounds: width and height must be 1 to {MAX_WINDOW_SIDE}"
            ));
        }
        if !offset.contains(&self.x) || !offset.contains(&self.y) {
            return Err(format!(
                "bounds: x and y must be within ±{MAX_WINDOW_OFFSET}"
            ));
        }
        Ok(WindowBounds {
            x: self.x,
            y: self.y,
            width: self.width,
            height: self.height,
        })
    }
}

/// `{last: N}`, `{since: ms}` or `{afterSeq: n}`: exactly one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawReplay {
    last: Option<u64>,
    since: Option<u64>,
    after_seq: Option<u64>,
}

impl RawReplay {
    fn checked(self) -> Result<Replay, String> {
        match (self.last, self.since, self.after_seq) {
            (Some(n), None, None) => Ok(Replay::Last(n)),
            (None, Some(ts), None) => Ok(Replay::Since(ts)),
            (None, None, Some(seq)) => Ok(Replay::AfterSeq(seq)),
            _ => Err("replay takes exactly one of last, since and afterSeq".into()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawIdentity {
    app_id: String,
    instance_id: Option<String>,
}

impl From<RawIdentity> for IdentityFilter {
    fn from(r: RawIdentity) -> Self {
        IdentityFilter {
            app_id: r.app_id,
            instance_id: r.instance_id,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawError {
    code: Option<String>,
    message: String,
}

/// Longest wait a page may ask for, in milliseconds (10 minutes).
const MAX_WAIT_MS: u64 = 600_000;

/// The gate for one webview.
pub struct PageGate {
    origin: Origin,
    secret: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: Option<String>,
    port: Option<u16>,
}

impl Origin {
    fn of(url: &str) -> Option<Origin> {
        let url = Url::parse(url).ok()?;
        Some(Origin {
            scheme: url.scheme().to_owned(),
            host: url.host_str().map(str::to_owned),
            port: url.port_or_known_default(),
        })
    }
}

impl PageGate {
    /// A gate for an app whose pages live on the origin of `start_url`.
    pub fn new(start_url: &str) -> Self {
        Self {
            origin: Origin::of(start_url).unwrap_or(Origin {
                scheme: String::new(),
                host: None,
                port: None,
            }),
            secret: None,
        }
    }

    /// A new page load has started: forget the old page's secret.
    pub fn page_started(&mut self) {
        self.secret = None;
    }

    /// Checks `body`, sent while the top frame showed `page_url`.
    pub fn accept(&mut self, page_url: &str, body: &str) -> Result<PageRequest, Dropped> {
        if Origin::of(page_url).as_ref() != Some(&self.origin) {
            return Err(Dropped::ForeignOrigin(page_url.to_owned()));
        }
        let raw: Raw<'_> =
            serde_json::from_str(body).map_err(|e| Dropped::Malformed(e.to_string()))?;
        let presented = raw.s.as_deref().ok_or(Dropped::BadSecret)?;
        if raw.t == "hello" {
            if self.secret.is_some() {
                return Err(Dropped::RepeatedHello);
            }
            if presented.len() < 16 {
                return Err(Dropped::Malformed("the secret is too short".into()));
            }
            self.secret = Some(presented.to_owned());
            return Ok(PageRequest::Hello);
        }
        match &self.secret {
            Some(secret) if constant_time_eq(secret.as_bytes(), presented.as_bytes()) => {}
            _ => return Err(Dropped::BadSecret),
        }
        let kind = raw.t.clone();
        let need = |field: &str| Dropped::Malformed(format!("{kind:?} needs the field {field:?}"));
        let data = |raw: &Raw<'_>| -> Result<String, Dropped> {
            json_text(raw.data.ok_or_else(|| need("data"))?)
        };
        let millis = |value: Option<u64>, field: &str| -> Result<u64, Dropped> {
            let v = value.ok_or_else(|| need(field))?;
            if v == 0 || v > MAX_WAIT_MS {
                return Err(Dropped::Malformed(format!(
                    "{field} must be 1 to {MAX_WAIT_MS} ms"
                )));
            }
            Ok(v)
        };
        Ok(match raw.t.as_str() {
            "ready" => PageRequest::Ready,
            "close" => PageRequest::Close,
            "platform" => {
                let service = raw
                    .svc
                    .as_deref()
                    .and_then(PlatformService::parse)
                    .ok_or_else(|| need("svc"))?;
                let action = raw.action.as_deref().ok_or_else(|| need("action"))?;
                let action = service.action(action).ok_or_else(|| {
                    Dropped::Malformed(format!("{action:?} is not an action of {service:?}"))
                })?;
                PageRequest::Platform {
                    id: raw.id.ok_or_else(|| need("id"))?,
                    service,
                    action,
                    args: data(&raw)?,
                }
            }
            "window" => {
                let action = raw.action.as_deref().ok_or_else(|| need("action"))?;
                let op = match (WindowAction::simple(action), action) {
                    (Some(simple), _) => WindowOp::Do(simple),
                    (None, "getBounds") => WindowOp::GetBounds,
                    (None, "getState") => WindowOp::GetState,
                    (None, "setBounds") => WindowOp::Do(WindowAction::SetBounds(
                        raw.bounds
                            .ok_or_else(|| need("bounds"))?
                            .checked()
                            .map_err(Dropped::Malformed)?,
                    )),
                    (None, other) => {
                        return Err(Dropped::Malformed(format!(
                            "{other:?} is not a window action"
                        )));
                    }
                };
                PageRequest::Window {
                    id: raw.id.ok_or_else(|| need("id"))?,
                    op,
                }
            }
            "secure" => {
                let action = raw
                    .action
                    .as_deref()
                    .and_then(SecureAction::parse)
                    .ok_or_else(|| need("action"))?;
                let key = match action {
                    SecureAction::Keys => None,
                    _ => Some(raw.key.clone().ok_or_else(|| need("key"))?),
                };
                let value = match action {
                    SecureAction::Set => Some(data(&raw)?),
                    _ => None,
                };
                PageRequest::SecureStorage {
                    id: raw.id.ok_or_else(|| need("id"))?,
                    action,
                    key,
                    value,
                }
            }
            "fdc3" => {
                let message = raw.m.ok_or_else(|| need("m"))?.get();
                if !message.starts_with('{') {
                    return Err(Dropped::Malformed(
                        "an FDC3 message must be an object".into(),
                    ));
                }
                PageRequest::Fdc3 {
                    message: message.to_owned(),
                }
            }
            "log" => PageRequest::Console {
                level: raw
                    .level
                    .as_deref()
                    .and_then(ConsoleLevel::parse)
                    .ok_or_else(|| need("level"))?,
                text: truncated(raw.msg.ok_or_else(|| need("msg"))?, MAX_CONSOLE_TEXT),
            },
            "pub" => PageRequest::Publish {
                id: raw.id.ok_or_else(|| need("id"))?,
                data: data(&raw)?,
                topic: raw.topic.ok_or_else(|| need("topic"))?,
                trace: raw.tp,
                ttl_ms: raw.ttl,
            },
            "saved" => PageRequest::Saved {
                request: raw.id.ok_or_else(|| need("id"))?,
                state: match raw.data {
                    Some(_) => Some(data(&raw)?),
                    None => None,
                },
                error: raw.err.map(|e| truncated(e.message, MAX_CONSOLE_TEXT)),
            },
            "ack" => PageRequest::Ack {
                sub: raw.sub.ok_or_else(|| need("sub"))?,
                seq: raw.seq.ok_or_else(|| need("seq"))?,
                error: raw.err.map(|e| truncated(e.message, MAX_CONSOLE_TEXT)),
            },
            "send" => PageRequest::Send {
                id: raw.id.ok_or_else(|| need("id"))?,
                data: data(&raw)?,
                to: raw.to.ok_or_else(|| need("to"))?.into(),
                topic: raw.topic.ok_or_else(|| need("topic"))?,
                trace: raw.tp,
            },
            "sub" => PageRequest::Subscribe {
                id: raw.id.ok_or_else(|| need("id"))?,
                sub: raw.sub.ok_or_else(|| need("sub"))?,
                topic: raw.topic.ok_or_else(|| need("topic"))?,
                from: raw.from.map(Into::into),
                replay: raw
                    .replay
                    .map(RawReplay::checked)
                    .transpose()
                    .map_err(Dropped::Malformed)?,
                durable: raw.durable,
            },
            "unsub" => PageRequest::Unsubscribe {
                id: raw.id.ok_or_else(|| need("id"))?,
                sub: raw.sub.ok_or_else(|| need("sub"))?,
            },
            "req" => PageRequest::Request {
                id: raw.id.ok_or_else(|| need("id"))?,
                data: data(&raw)?,
                timeout_ms: millis(raw.timeout, "timeout")?,
                topic: raw.topic.ok_or_else(|| need("topic"))?,
                trace: raw.tp,
            },
            "respond" => PageRequest::Respond {
                call: raw.call.ok_or_else(|| need("call"))?,
                outcome: match raw.err {
                    Some(err) => Err(RemoteError {
                        code: match err.code.as_deref() {
                            Some("NoSuchAction") => ErrorCode::NoSuchAction,
                            _ => ErrorCode::HandlerError,
                        },
                        message: err.message,
                    }),
                    None => Ok(data(&raw)?),
                },
            },
            "provide" => PageRequest::Provide {
                id: raw.id.ok_or_else(|| need("id"))?,
                service: raw.svc.ok_or_else(|| need("svc"))?,
            },
            "withdraw" => PageRequest::Withdraw {
                id: raw.id.ok_or_else(|| need("id"))?,
                service: raw.svc.ok_or_else(|| need("svc"))?,
            },
            "connect" => PageRequest::Connect {
                id: raw.id.ok_or_else(|| need("id"))?,
                wait_ms: match raw.wait {
                    Some(_) => Some(millis(raw.wait, "wait")?),
                    None => None,
                },
                service: raw.svc.ok_or_else(|| need("svc"))?,
            },
            "dispatch" => PageRequest::Dispatch {
                id: raw.id.ok_or_else(|| need("id"))?,
                data: data(&raw)?,
                timeout_ms: millis(raw.timeout, "timeout")?,
                action: raw.action.ok_or_else(|| need("action"))?,
                service: raw.svc.ok_or_else(|| need("svc"))?,
                trace: raw.tp,
            },
            other => {
                return Err(Dropped::Malformed(format!(
                    "unknown message kind {other:?}"
                )));
            }
        })
    }
}

/// The bridge sends payloads as a JSON string holding JSON text; returns that text,
/// checked to be JSON.
fn json_text(data: &RawValue) -> Result<String, Dropped> {
    let text: String = serde_json::from_str(data.get())
        .map_err(|_| Dropped::Malformed("data must be a string of JSON text".into()))?;
    serde_json::from_str::<&RawValue>(&text)
        .map_err(|e| Dropped::Malformed(format!("data is not JSON: {e}")))?;
    Ok(text)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "weft://localhost/app/index.html";
    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn gate() -> PageGate {
        let mut g = PageGate::new(PAGE);
        g.page_started();
        assert_eq!(
            g.accept(PAGE, &format!(r#"{{"s":"{SECRET}","t":"hello"}}"#)),
            Ok(PageRequest::Hello)
        );
        g
    }

    #[test]
    fn fdc3_messages_are_objects_passed_on_unread() {
        let mut g = gate();
        let body = format!(
            r#"{{"s":"{SECRET}","t":"fdc3","m":{{"type":"getInfoRequest","meta":{{"requestUuid":"u"}},"payload":{{}}}}}}"#
        );
        assert_eq!(
            g.accept(PAGE, &body),
            Ok(PageRequest::Fdc3 {
                message: r#"{"type":"getInfoRequest","meta":{"requestUuid":"u"},"payload":{}}"#
                    .into()
            })
        );
        for m in ["[1]", "\"text\"", "3"] {
            let body = format!(r#"{{"s":"{SECRET}","t":"fdc3","m":{m}}}"#);
            assert!(
                matches!(g.accept(PAGE, &body), Err(Dropped::Malformed(_))),
                "{m}"
            );
        }
        let body = format!(r#"{{"s":"{SECRET}","t":"fdc3"}}"#);
        assert!(matches!(g.accept(PAGE, &body), Err(Dropped::Malformed(_))));
        let forged = r#"{"s":"nope","t":"fdc3","m":{}}"#;
        assert_eq!(g.accept(PAGE, forged), Err(Dropped::BadSecret));
    }

    #[test]
    fn secure_storage_calls_need_their_fields() {
        let mut g = gate();
        let set = format!(
            r#"{{"s":"{SECRET}","t":"secure","id":4,"action":"set","key":"k","data":"{{\"a\":1}}"}}"#
        );
        assert_eq!(
            g.accept(PAGE, &set),
            Ok(PageRequest::SecureStorage {
                id: 4,
                action: SecureAction::Set,
                key: Some("k".into()),
                value: Some(r#"{"a":1}"#.into()),
            })
        );
        let keys = format!(r#"{{"s":"{SECRET}","t":"secure","id":5,"action":"keys"}}"#);
        assert!(matches!(
            g.accept(PAGE, &keys),
            Ok(PageRequest::SecureStorage {
                key: None,
                value: None,
                ..
            })
        ));
        for bad in [
            format!(r#"{{"s":"{SECRET}","t":"secure","id":6,"action":"get"}}"#),
            format!(r#"{{"s":"{SECRET}","t":"secure","id":6,"action":"set","key":"k"}}"#),
            format!(r#"{{"s":"{SECRET}","t":"secure","id":6,"action":"steal","key":"k"}}"#),
            format!(
                r#"{{"s":"{SECRET}","t":"secure","id":6,"action":"get","key":"k","appId":"other"}}"#
            ),
        ] {
            assert!(
                matches!(g.accept(PAGE, &bad), Err(Dropped::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_the_bridge_can_close_the_app() {
        let mut g = gate();
        let body = format!(r#"{{"s":"{SECRET}","t":"close"}}"#);
        assert_eq!(g.accept(PAGE, &body), Ok(PageRequest::Close));
        let forged = r#"{"s":"0123456789abcdef0123456789abcdee","t":"close"}"#;
        assert_eq!(g.accept(PAGE, forged), Err(Dropped::BadSecret));
        assert!(matches!(
            g.accept("https://elsewhere.example/", &body),
            Err(Dropped::ForeignOrigin(_))
        ));
    }

    #[test]
    fn console_lines_are_accepted_with_a_known_level_and_cut_when_long() {
        let mut g = gate();
        let body = format!(r#"{{"s":"{SECRET}","t":"log","level":"warn","msg":"careful"}}"#);
        assert_eq!(
            g.accept(PAGE, &body),
            Ok(PageRequest::Console {
                level: ConsoleLevel::Warn,
                text: "careful".into()
            })
        );
        let long = "é".repeat(MAX_CONSOLE_TEXT);
        let body = format!(r#"{{"s":"{SECRET}","t":"log","level":"log","msg":"{long}"}}"#);
        match g.accept(PAGE, &body) {
            Ok(PageRequest::Console { text, .. }) => {
                assert!(text.len() <= MAX_CONSOLE_TEXT + " […cut]".len());
                assert!(text.ends_with(" […cut]"));
            }
            other => panic!("{other:?}"),
        }
        let body = format!(r#"{{"s":"{SECRET}","t":"log","level":"loud","msg":"x"}}"#);
        assert!(matches!(g.accept(PAGE, &body), Err(Dropped::Malformed(_))));
        let unsigned = r#"{"s":"nope","t":"log","level":"error","msg":"forged"}"#;
        assert_eq!(g.accept(PAGE, unsigned), Err(Dropped::BadSecret));
    }

    #[test]
    fn accepts_signed_messages() {
        let mut g = gate();
        let body =
            format!(r#"{{"s":"{SECRET}","t":"pub","id":3,"topic":"a.b","data":"{{\"x\":1}}"}}"#);
        assert_eq!(
            g.accept("weft://localhost/other.html", &body),
            Ok(PageRequest::Publish {
                id: 3,
                topic: "a.b".into(),
                data: r#"{"x":1}"#.into(),
                trace: None,
                ttl_ms: None,
            })
        );
        let body = format!(
            r#"{{"s":"{SECRET}","t":"sub","id":4,"sub":6,"topic":"a","replay":{{"afterSeq":9}}}}"#
        );
        assert!(matches!(
            g.accept(PAGE, &body),
            Ok(PageRequest::Subscribe {
                sub: 6,
                replay: Some(Replay::AfterSeq(9)),
                ..
            })
        ));
        let two = format!(
            r#"{{"s":"{SECRET}","t":"sub","id":4,"sub":6,"topic":"a","replay":{{"last":1,"since":2}}}}"#
        );
        assert!(
            matches!(g.accept(PAGE, &two), Err(Dropped::Malformed(m)) if m.contains("exactly one"))
        );
        let body = format!(r#"{{"s":"{SECRET}","t":"sub","id":4,"sub":5,"topic":"a"}}"#);
        assert!(matches!(
            g.accept(PAGE, &body),
            Ok(PageRequest::Subscribe {
                sub: 5,
                from: None,
                replay: None,
                ..
            })
        ));
    }

    #[test]
    fn platform_calls_name_a_known_service_and_action() {
        let mut g = gate();
        let ask = |g: &mut PageGate, svc: &str, action: &str| {
            g.accept(
                PAGE,
                &format!(
                    r#"{{"s":"{SECRET}","t":"platform","id":3,"svc":"{svc}","action":"{action}","data":"{{\"title\":\"Hi\"}}"}}"#
                ),
            )
        };
        assert_eq!(
            ask(&mut g, "notifications", "create"),
            Ok(PageRequest::Platform {
                id: 3,
                service: PlatformService::Notifications,
                action: "create",
                args: r#"{"title":"Hi"}"#.into()
            })
        );
        assert!(matches!(
            ask(&mut g, "clipboard", "writeText"),
            Ok(PageRequest::Platform {
                service: PlatformService::Clipboard,
                ..
            })
        ));
        assert!(matches!(
            ask(&mut g, "clipboard", "create"),
            Err(Dropped::Malformed(_))
        ));
        assert!(matches!(
            ask(&mut g, "camera", "create"),
            Err(Dropped::Malformed(_))
        ));
    }

    #[test]
    fn window_requests_are_read_and_bad_bounds_refused() {
        let mut g = gate();
        let ask = |g: &mut PageGate, rest: &str| {
            g.accept(
                PAGE,
                &format!(r#"{{"s":"{SECRET}","t":"window","id":7{rest}}}"#),
            )
        };
        assert_eq!(
            ask(&mut g, r#","action":"focus""#),
            Ok(PageRequest::Window {
                id: 7,
                op: WindowOp::Do(WindowAction::Focus)
            })
        );
        assert_eq!(
            ask(&mut g, r#","action":"getState""#),
            Ok(PageRequest::Window {
                id: 7,
                op: WindowOp::GetState
            })
        );
        assert_eq!(
            ask(
                &mut g,
                r#","action":"setBounds","bounds":{"x":-20,"y":5,"width":640,"height":480}"#
            ),
            Ok(PageRequest::Window {
                id: 7,
                op: WindowOp::Do(WindowAction::SetBounds(WindowBounds {
                    x: -20,
                    y: 5,
                    width: 640,
                    height: 480
                }))
            })
        );
        for (rest, why) in [
            (r#","action":"fly""#, "not a window action"),
            (r#","action":"setBounds""#, "bounds"),
            (
                r#","action":"setBounds","bounds":{"x":0,"y":0,"width":0,"height":9}"#,
                "width and height",
            ),
            (
                r#","action":"setBounds","bounds":{"x":0,"y":900000,"width":9,"height":9}"#,
                "x and y",
            ),
            (
                r#","action":"setBounds","bounds":{"x":0,"y":0,"width":9,"height":9,"z":1}"#,
                "unknown field",
            ),
        ] {
            match ask(&mut g, rest) {
                Err(Dropped::Malformed(m)) => assert!(m.contains(why), "{rest}: {m}"),
                other => panic!("{rest}: {other:?}"),
            }
        }
        assert!(
            !PageRequest::Window {
                id: 1,
                op: WindowOp::GetBounds
            }
            .takes_backlog_place()
        );
    }

    #[test]
    fn drops_unsigned_wrongly_signed_and_second_hello() {
        let mut g = gate();
        let unsigned = r#"{"t":"pub","id":1,"topic":"a","data":"1"}"#;
        assert_eq!(g.accept(PAGE, unsigned), Err(Dropped::BadSecret));
        let wrong =
            r#"{"s":"ffffffffffffffffffffffffffffffff","t":"pub","id":1,"topic":"a","data":"1"}"#;
        assert_eq!(g.accept(PAGE, wrong), Err(Dropped::BadSecret));
        let hello = r#"{"s":"ffffffffffffffffffffffffffffffff","t":"hello"}"#;
        assert_eq!(g.accept(PAGE, hello), Err(Dropped::RepeatedHello));
    }

    #[test]
    fn a_new_page_load_invalidates_the_old_secret() {
        let mut g = gate();
        g.page_started();
        let body = format!(r#"{{"s":"{SECRET}","t":"ready"}}"#);
        assert_eq!(g.accept(PAGE, &body), Err(Dropped::BadSecret));
    }

    #[test]
    fn drops_foreign_origins_and_bad_payloads() {
        let mut g = gate();
        let body = format!(r#"{{"s":"{SECRET}","t":"ready"}}"#);
        assert!(matches!(
            g.accept("https://evil.example/", &body),
            Err(Dropped::ForeignOrigin(_))
        ));
        let not_json =
            format!(r#"{{"s":"{SECRET}","t":"pub","id":1,"topic":"a","data":"{{nope"}}"#);
        assert!(matches!(
            g.accept(PAGE, &not_json),
            Err(Dropped::Malformed(_))
        ));
        let unknown = format!(r#"{{"s":"{SECRET}","t":"launch-missiles"}}"#);
        assert!(matches!(
            g.accept(PAGE, &unknown),
            Err(Dropped::Malformed(_))
        ));
        assert!(matches!(g.accept(PAGE, "[1,2"), Err(Dropped::Malformed(_))));
        let missing = format!(r#"{{"s":"{SECRET}","t":"sub","id":1}}"#);
        assert!(matches!(
            g.accept(PAGE, &missing),
            Err(Dropped::Malformed(_))
        ));
    }

    proptest::proptest! {
        /// Whatever a page sends, the gate answers without panicking, and nothing but a
        /// first hello is accepted before the secret is known.
        #[test]
        fn arbitrary_messages_never_panic(body in "\\PC{0,200}", t in "(hello|ready|pub|sub|unsub|x)") {
            let mut g = PageGate::new(PAGE);
            let _ = g.accept(PAGE, &body);
            let shaped = format!(r#"{{"s":"{SECRET}","t":"{t}","id":1,"sub":2,"topic":{body:?},"data":{body:?}}}"#);
            let mut fresh = PageGate::new(PAGE);
            if let Ok(req) = fresh.accept(PAGE, &shaped) {
                proptest::prop_assert_eq!(req, PageRequest::Hello);
            }
        }
    }

    #[test]
    fn remote_origins_compare_scheme_host_and_port() {
        let mut g = PageGate::new("https://app.example/start");
        let hello = format!(r#"{{"s":"{SECRET}","t":"hello"}}"#);
        assert!(matches!(
            g.accept("https://app.example:8443/", &hello),
            Err(Dropped::ForeignOrigin(_))
        ));
        assert!(matches!(
            g.accept("http://app.example/", &hello),
            Err(Dropped::ForeignOrigin(_))
        ));
        assert_eq!(
            g.accept("https://app.example:443/x", &hello),
            Ok(PageRequest::Hello)
        );
    }
}
