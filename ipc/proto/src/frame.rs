//! Frames exchanged after the handshake.
//!
//! On the wire every frame is a 4-byte big-endian length followed by that many bytes of
//! body (`weft-wire` moves them); bodies are [postcard](https://docs.rs/postcard)
//! encodings of [`ClientFrame`] (client to broker) or [`ServerFrame`] (broker to
//! client). Message payloads are opaque bytes: the broker never parses them.

use std::{path::PathBuf, sync::Arc};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{Identity, Pattern, Topic, headers::Headers};

/// A frame from a client to the broker. `req` is chosen by the client and echoed in the
/// broker's answer; `req` 0 means "no answer on success" (errors are still sent, with
/// `req` 0), which is how fire-and-forget publishing avoids an acknowledgement per
/// message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// Publish `payload` on `topic` to every matching subscription; answered by `Ok`
    /// once routed, or `Error`.
    Publish {
        /// Request id.
        req: u64,
        /// Where to publish.
        topic: Topic,
        /// The opaque message body (JSON text when it comes from a page).
        payload: Bytes,
        /// Extra metadata, such as trace context.
        headers: Headers,
    },
    /// Deliver `payload` on `topic` only to the subscriptions of the identity `to`;
    /// `TargetGone` if no such instance is connected.
    Send {
        /// Request id.
        req: u64,
        /// The recipient: an app (every instance) or one instance.
        to: IdentityFilter,
        /// The topic the recipient's subscriptions are matched against.
        topic: Topic,
        /// The opaque message body.
        payload: Bytes,
        /// Extra metadata.
        headers: Headers,
    },
    /// Start delivering messages whose topic matches `pattern`, tagged with `sub`.
    Subscribe {
        /// Request id.
        req: u64,
        /// The client's id for this subscription, unique on the connection.
        sub: u64,
        /// The topics to follow; `*` and `#` are wildcards.
        pattern: Pattern,
        /// Only messages from this sender, if given.
        from: Option<IdentityFilter>,
        /// Deliver messages stored in durable streams first, from this point on.
        replay: Option<Replay>,
    },
    /// Stop the subscription `sub`.
    Unsubscribe {
        /// Request id.
        req: u64,
        /// The subscription to end.
        sub: u64,
    },
    /// Ask every subscription matching `topic` and take the first answer, which comes
    /// back as `Response { req }`; `NoResponders` if nothing matches.
    Request {
        /// Request id.
        req: u64,
        /// The topic the question is published on.
        topic: Topic,
        /// The question.
        payload: Bytes,
        /// Extra metadata.
        headers: Headers,
    },
    /// Offer the RPC service `service` from this connection; `ServiceExists` if another
    /// connection provides it.
    Provide {
        /// Request id.
        req: u64,
        /// The service's name (topic rules, no wildcards).
        service: Topic,
    },
    /// Stop providing `service`; its connected clients are told.
    Withdraw {
        /// Request id.
        req: u64,
        /// The service.
        service: Topic,
    },
    /// Connect to the service `service`: `Ok` once it has a provider, waiting for one to
    /// appear if `wait`; `NoProvider` otherwise. A client gives up on a wait with
    /// `Cancel`.
    Connect {
        /// Request id.
        req: u64,
        /// The service.
        service: Topic,
        /// Whether to wait for a provider that has not started yet.
        wait: bool,
    },
    /// Call `action` of `service`; answered by `Response { req }`.
    Dispatch {
        /// Request id.
        req: u64,
        /// The service.
        service: Topic,
        /// The action's name.
        action: String,
        /// The argument.
        payload: Bytes,
        /// Extra metadata.
        headers: Headers,
    },
    /// Answer the call `call` (from a `Deliver` with `reply_to`, or an `Invoke`).
    Respond {
        /// Request id.
        req: u64,
        /// The call being answered.
        call: u64,
        /// The answer, or why there is none.
        outcome: Result<Bytes, RemoteError>,
    },
    /// Give up waiting for the answer to request `target` (a `Request`, `Dispatch` or
    /// waiting `Connect` sent earlier on this connection). Not answered.
    Cancel {
        /// The request given up on.
        target: u64,
    },
    /// An app host reports the state of its page. Refused from non-app clients.
    ReportStatus {
        /// Request id.
        req: u64,
        /// The page's new state.
        status: PageStatus,
    },
    /// A command for the shell. Refused from clients other than the command line.
    Control {
        /// Request id.
        req: u64,
        /// What to do.
        request: ControlRequest,
    },
    /// An app host reports where its window is now (after the user moved or resized
    /// it), so that a restart puts it back there. Refused from non-app clients.
    ReportWindow {
        /// Request id.
        req: u64,
        /// The window's position and size.
        bounds: crate::launch::WindowBounds,
    },
    /// Attach to the durable consumer `name` of this app (created on first use),
    /// delivering its messages to subscription `sub`, one at a time: each must be
    /// acknowledged with `Ack` before the next comes.
    Consume {
        /// Request id.
        req: u64,
        /// The client's id for this subscription.
        sub: u64,
        /// The topics the consumer follows (must match the consumer's if it exists).
        pattern: Pattern,
        /// The consumer's name, unique within the app.
        name: String,
        /// Where a new consumer starts; only new messages by default.
        start: Option<Replay>,
    },
    /// The handler of a consumer's message `seq` finished: `Ok`, or failed with this
    /// message (the message is retried, and dead-lettered after the last attempt).
    /// Not answered.
    Ack {
        /// The consumer's subscription.
        sub: u64,
        /// The message's sequence number.
        seq: u64,
        /// How the handler ended.
        outcome: Result<(), String>,
    },
    /// Answers `HostCommand::Save`: the instance's page, window and state. Refused
    /// from non-app clients.
    ReportSaved {
        /// Request id.
        req: u64,
        /// The snapshot request it answers.
        request: u64,
        /// What was saved.
        saved: crate::launch::SavedApp,
    },
    /// An app host reports what its page tried and was refused, for the audit log.
    /// Only app hosts may.
    ReportViolation {
        /// Request id.
        req: u64,
        /// What was refused.
        violation: PageViolation,
        /// Refusals not reported before this one (hosts rate-limit their reports).
        unreported: u64,
    },
}

/// What a page tried and its host refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PageViolation {
    /// A message to the bridge was dropped: no or a wrong page secret (a page script
    /// or a frame calling the host directly, which is how a forged identity would be
    /// attempted), a second hello, another origin, or a malformed message.
    BridgeMessageDropped {
        /// Why.
        reason: String,
        /// The page it came from.
        page: String,
    },
    /// Navigation (of the page or a frame) to a URL outside the app's origins.
    NavigationBlocked {
        /// Where it tried to go.
        url: String,
    },
    /// A new window the page asked for: refused, or opened in the system browser.
    NewWindow {
        /// Its URL.
        url: String,
        /// Whether it was handed to the system browser.
        opened_in_browser: bool,
    },
}

/// A frame from the broker to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// The request `req` succeeded.
    Ok {
        /// Request id.
        req: u64,
    },
    /// The request `req` failed.
    Error {
        /// Request id.
        req: u64,
        /// Stable error code.
        code: ErrorCode,
        /// What went wrong, for a person.
        message: String,
    },
    /// A message for subscription `sub`.
    Deliver {
        /// The subscription it matched.
        sub: u64,
        /// The message.
        message: Delivery,
    },
    /// A call of an action of a service this connection provides; answer with `Respond`.
    Invoke {
        /// The call id to answer.
        call: u64,
        /// The service.
        service: Topic,
        /// The action.
        action: String,
        /// The argument, with its sender and metadata.
        message: Delivery,
    },
    /// The answer to a `Request` or `Dispatch` sent as `req`.
    Response {
        /// Request id.
        req: u64,
        /// The answer, with the responder as its sender.
        message: Delivery,
    },
    /// The provider of a service this connection connected to has gone.
    ServiceGone {
        /// The service.
        service: Topic,
    },
    /// The answer to a `Control` request.
    ControlReply {
        /// Request id.
        req: u64,
        /// The shell's answer.
        reply: ControlReply,
    },
    /// The broker is closing this connection; no further frames follow.
    Closing {
        /// Why, for logs and the user.
        reason: String,
    },
    /// The shell tells an app host to do something. Sent to app hosts only.
    Command {
        /// What to do.
        command: HostCommand,
    },
}

/// What the shell can tell an app host to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostCommand {
    /// Open the web inspector on the app's page.
    OpenInspector,
    /// Do this to the app's window.
    Window(WindowAction),
    /// Report the instance for a layout snapshot (`ReportSaved` with this request).
    Save {
        /// Names the snapshot the report is for.
        request: u64,
    },
}

/// What can be done to an app's window, by its own page (`weft.window`) or by the shell
/// (the panel, `weft window`, FDC3 `open` and `raiseIntent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WindowAction {
    /// Show it, un-minimise it, raise it and give it the keyboard focus.
    Focus,
    /// Show it (where it was).
    Show,
    /// Hide it (it keeps running).
    Hide,
    /// Minimise it.
    Minimize,
    /// Maximise it.
    Maximize,
    /// Neither minimised nor maximised, and shown.
    Restore,
    /// Move and resize it (logical pixels, the outer position and the inner size).
    SetBounds(crate::launch::WindowBounds),
}

impl WindowAction {
    /// The actions that take no argument, by the names the page API and the command
    /// line use.
    pub const SIMPLE: [WindowAction; 6] = [
        WindowAction::Focus,
        WindowAction::Show,
        WindowAction::Hide,
        WindowAction::Minimize,
        WindowAction::Maximize,
        WindowAction::Restore,
    ];

    /// The action without argument named `name`.
    pub fn simple(name: &str) -> Option<WindowAction> {
        WindowAction::SIMPLE.into_iter().find(|a| a.name() == name)
    }

    /// The name the page API and the command line use.
    pub fn name(&self) -> &'static str {
        match self {
            WindowAction::Focus => "focus",
            WindowAction::Show => "show",
            WindowAction::Hide => "hide",
            WindowAction::Minimize => "minimize",
            WindowAction::Maximize => "maximize",
            WindowAction::Restore => "restore",
            WindowAction::SetBounds(_) => "setBounds",
        }
    }
}

/// One routed message, as its receiver sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Broker-assigned id, unique across shell runs.
    pub id: MessageId,
    /// When the broker accepted it, in milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// The topic it was published on (for a service call, the service).
    pub topic: Topic,
    /// Who published it, stamped by the broker from the connection. Shared: a stream
    /// of messages from one sender holds one copy.
    pub sender: Arc<Identity>,
    /// The opaque body.
    pub payload: Bytes,
    /// Metadata from the sender.
    pub headers: Headers,
    /// Set when the sender waits for an answer: respond to this call id.
    pub reply_to: Option<u64>,
    /// Whether it was sent directly to this identity rather than published.
    pub direct: bool,
    /// Its sequence number in its durable stream, when it was stored in one.
    pub seq: Option<u64>,
}

/// Where a subscription's replay of stored messages starts. Sequence numbers are per
/// durable stream: a pattern spanning several streams replays each from this point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Replay {
    /// The last `n` stored messages matching the pattern.
    Last(u64),
    /// Every stored message from this time on (milliseconds since the Unix epoch).
    Since(u64),
    /// Every stored message after this sequence number.
    AfterSeq(u64),
}

/// A message's id: a random number per broker run and a sequence number within it.
/// Shown as `epoch-seq` in hexadecimal, e.g. `9f3a01c2-1b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MessageId {
    /// Random per broker run.
    pub epoch: u32,
    /// Counts messages within the run.
    pub seq: u64,
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08x}-{:x}", self.epoch, self.seq)
    }
}

/// Selects senders or recipients: every instance of an app, or one instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityFilter {
    /// The application id.
    pub app_id: String,
    /// One instance of it; every instance when `None`.
    pub instance_id: Option<String>,
}

impl IdentityFilter {
    /// Whether `identity` is selected.
    pub fn matches(&self, identity: &Identity) -> bool {
        self.app_id == identity.app_id
            && self
                .instance_id
                .as_ref()
                .is_none_or(|i| *i == identity.instance_id)
    }
}

/// An error a responder or provider returns instead of an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteError {
    /// Either `HandlerError` or `NoSuchAction`; the broker turns any other code a client
    /// claims into `HandlerError`, so no responder can forge the broker's own errors.
    pub code: ErrorCode,
    /// The responder's message.
    pub message: String,
}

/// Stable error codes, shared by the broker, the Rust client and the page API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The topic is not valid.
    InvalidTopic,
    /// The payload is not acceptable (for pages: not JSON).
    InvalidPayload,
    /// The frame could not be decoded.
    Malformed,
    /// This kind of client may not make this request.
    NotPermitted,
    /// No subscription with that id on this connection.
    UnknownSubscription,
    /// The subscription id is already in use on this connection.
    DuplicateSubscription,
    /// The shell could not carry out a control request.
    ControlFailed,
    /// The broker is shutting down.
    ShuttingDown,
    /// The headers break the limits of [`Headers`].
    InvalidHeaders,
    /// A request matched no subscription.
    NoResponders,
    /// No connection provides the service.
    NoProvider,
    /// Another connection already provides the service.
    ServiceExists,
    /// The provider has no handler for the action.
    NoSuchAction,
    /// The provider's handler failed; the message is the provider's.
    HandlerError,
    /// The provider disconnected before answering.
    ProviderGone,
    /// No answer came in time.
    Timeout,
    /// The call was already answered, cancelled or never existed.
    UnknownCall,
    /// Too many requests of this connection are waiting for answers.
    TooManyPending,
    /// This connection's queue toward the broker is full; retry later.
    Backpressure,
    /// A durable topic's message could not be stored: the disk is full.
    StorageFull,
    /// A durable topic's message could not be stored (an I/O error, or no journal).
    StorageFailed,
    /// A direct send names an identity that is no longer (or never was) connected.
    TargetGone,
    /// A durable consumer is already attached, or exists with another pattern.
    ConsumerBusy,
    /// The app's permissions (its manifest, the desktop owner's policy or the user's
    /// answer) do not allow this.
    AccessDenied,
}

impl ErrorCode {
    /// The stable name, as pages see it in `error.code`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidTopic => "InvalidTopic",
            ErrorCode::InvalidPayload => "InvalidPayload",
            ErrorCode::Malformed => "Malformed",
            ErrorCode::NotPermitted => "NotPermitted",
            ErrorCode::UnknownSubscription => "UnknownSubscription",
            ErrorCode::DuplicateSubscription => "DuplicateSubscription",
            ErrorCode::ControlFailed => "ControlFailed",
            ErrorCode::ShuttingDown => "ShuttingDown",
            ErrorCode::InvalidHeaders => "InvalidHeaders",
            ErrorCode::NoResponders => "NoResponders",
            ErrorCode::NoProvider => "NoProvider",
            ErrorCode::ServiceExists => "ServiceExists",
            ErrorCode::NoSuchAction => "NoSuchAction",
            ErrorCode::HandlerError => "HandlerError",
            ErrorCode::ProviderGone => "ProviderGone",
            ErrorCode::Timeout => "Timeout",
            ErrorCode::UnknownCall => "UnknownCall",
            ErrorCode::TooManyPending => "TooManyPending",
            ErrorCode::Backpressure => "Backpressure",
            ErrorCode::StorageFull => "StorageFull",
            ErrorCode::StorageFailed => "StorageFailed",
            ErrorCode::TargetGone => "TargetGone",
            ErrorCode::ConsumerBusy => "ConsumerBusy",
            ErrorCode::AccessDenied => "AccessDenied",
        }
    }
}

/// The state of an app host's page, as reported by the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PageStatus {
    /// A page is loading; its bridge is not yet usable.
    Loading,
    /// The page has loaded and its bridge is connected.
    Ready,
    /// The page's JavaScript has not answered the host's probe in time (an endless
    /// loop, say). `Ready` follows when it answers again.
    NotResponding,
}

/// Commands the command line sends to the running shell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlRequest {
    /// List the running app instances.
    ListApps,
    /// Launch a workspace file (absolute path) and apps named by appId from App
    /// Directories; the built-in demo when all three are empty.
    Launch {
        /// The workspace file, already made absolute by the client.
        workspace: Option<PathBuf>,
        /// App Directories beyond the workspace's: URLs, or absolute file paths.
        app_directories: Vec<String>,
        /// Apps to launch from the directories, by appId.
        apps: Vec<String>,
    },
    /// Bring the control panel forward, and launch the demo if nothing runs: what a
    /// second plain `weft` asks.
    Activate,
    /// Stop one app instance.
    StopApp {
        /// Its instance id.
        instance_id: String,
    },
    /// Open the web inspector of one app instance.
    OpenInspector {
        /// Its instance id.
        instance_id: String,
    },
    /// List the notification centre, newest first.
    ListNotifications,
    /// Save the running apps' layout as the snapshot `name`.
    SaveWorkspace {
        /// The snapshot's name.
        name: String,
    },
    /// Restore the layout snapshot `name`: its apps start where they were.
    RestoreWorkspace {
        /// The snapshot's name.
        name: String,
    },
    /// Do something to app windows: those of an app (by appId) or of one instance (by
    /// instanceId), or every running app's when `target` is `None`.
    Window {
        /// An appId or instanceId; every app when `None`.
        target: Option<String>,
        /// What to do.
        action: WindowAction,
    },
    /// Stop every app and then the shell.
    Shutdown,
    /// List the dead-letter queue.
    DlqList,
    /// Deliver dead letters again (one by id, or all) and remove them from the queue.
    DlqRedrive {
        /// The dead letter's id; every one when `None`.
        id: Option<u64>,
    },
    /// Empty the dead-letter queue.
    DlqPurge,
    /// Forget the user's remembered permission answers for an app (for one API, when
    /// named); takes effect at once.
    RevokePermission {
        /// The app.
        app_id: String,
        /// The API's name, or every API.
        api: Option<String>,
    },
    /// `weft keys rotate` added a journal key while the shell runs: record it in the
    /// audit log (the shell is its only writer).
    KeysRotated {
        /// The new key's id.
        key_id: String,
        /// Where it is kept.
        store: String,
    },
    /// `weft update` changed the install, or a start kept or reverted a version on
    /// trial, while the shell runs: record it in the audit log.
    UpdateChanged(UpdateChange),
}

/// A change to the installed versions, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateChange {
    /// What happened.
    pub event: UpdateEvent,
    /// The version it concerns: installed, kept, or returned to.
    pub version: String,
    /// The version left, when one was.
    pub from: Option<String>,
    /// How, in words (by delta or full archive; from the command line or the panel).
    pub how: String,
}

/// What happened to the installed versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateEvent {
    /// A new version was installed beside the running one (it runs from the next start).
    Installed,
    /// The user went back to an earlier version.
    RolledBack,
    /// A version on trial passed its self-test and is kept.
    Kept,
    /// A version on trial failed its starts and the previous one was put back.
    Reverted,
}

impl UpdateEvent {
    /// The audit log's name for it (`update.installed`, …).
    pub fn audit_name(self) -> &'static str {
        match self {
            UpdateEvent::Installed => "update.installed",
            UpdateEvent::RolledBack => "update.rolledBack",
            UpdateEvent::Kept => "update.kept",
            UpdateEvent::Reverted => "update.reverted",
        }
    }
}

/// The shell's answer to a [`ControlRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ControlReply {
    /// The app instances, in launch order, and where the shell serves its metrics.
    Apps {
        /// The app instances.
        apps: Vec<AppInfo>,
        /// The metrics endpoint (`http://127.0.0.1:PORT/metrics`), unless it is off.
        metrics_url: Option<String>,
    },
    /// The instances a launch started.
    Launched(Vec<Identity>),
    /// The dead-letter queue.
    DeadLetters {
        /// Its letters, oldest first.
        letters: Vec<DeadLetter>,
        /// Bytes it takes on disk.
        bytes: u64,
        /// How many it holds at most; the oldest go first.
        capacity: u64,
    },
    /// How many dead letters were redriven or purged.
    Count(u64),
    /// The notification centre, newest first.
    Notifications(Vec<Notification>),
    /// A layout snapshot was restored.
    Restored {
        /// The instances started.
        started: Vec<Identity>,
        /// What could not be restored.
        notes: Vec<String>,
    },
    /// A layout snapshot was saved.
    Saved {
        /// Its file.
        file: String,
        /// How many app instances it holds.
        apps: u64,
        /// What could not be saved in full (an app that did not answer, say).
        notes: Vec<String>,
    },
    /// The request was carried out.
    Done,
}

/// An action button of a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationButton {
    /// What the page is told.
    pub id: String,
    /// What the button says.
    pub title: String,
}

/// One notification of the shell's notification centre.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Its id (unique for the shell's run).
    pub id: u64,
    /// The app that showed it.
    pub app_id: String,
    /// Its instance.
    pub instance_id: String,
    /// The app's window title.
    pub app_title: String,
    /// The notification's title.
    pub title: String,
    /// Its text.
    pub body: String,
    /// Its buttons.
    pub actions: Vec<NotificationButton>,
    /// When it came (RFC 3339).
    pub at: String,
    /// Whether the user has seen it (clicked it or one of its buttons).
    pub read: bool,
}

/// A message that could not be delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Its id in the queue.
    pub id: u64,
    /// Why: `HandlerFailed`, `SlowConsumer` or `Expired`.
    pub reason: String,
    /// More about why (the handler's last error, say).
    pub detail: String,
    /// Whom it was for (an app's durable consumer, or an instance).
    pub target: String,
    /// When it was dead-lettered, in milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// The message.
    pub message: Delivery,
}

/// One app instance as the supervisor sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo {
    /// The application id.
    pub app_id: String,
    /// The instance id.
    pub instance_id: String,
    /// The window title.
    pub title: String,
    /// The URL the app was started with.
    pub url: String,
    /// The host process id, once spawned.
    pub pid: Option<u32>,
    /// Where the instance is in its life.
    pub state: AppState,
    /// How the process ended last, once it has (also while it is being restarted).
    pub exit: Option<String>,
    /// How many times the supervisor has started it again after its process ended.
    pub restarts: u32,
    /// Where its window is (as last reported by its host), or was asked to be.
    pub bounds: Option<crate::launch::WindowBounds>,
    /// Seconds since its current process started.
    pub uptime_secs: Option<u64>,
    /// CPU use of its process tree (host and WebKit processes) over the last second,
    /// in percent of one core. Always finite: a frame saying otherwise is refused.
    #[serde(deserialize_with = "finite_or_none")]
    pub cpu_percent: Option<f32>,
    /// Memory of its process tree: the sum of PSS, in KiB (sampled every few seconds).
    pub memory_pss_kb: Option<u64>,
    /// Milliseconds since its host last reported (its heartbeat, every second).
    pub heartbeat_age_ms: Option<u64>,
    /// Its memory limit (PSS of its process tree), if it has one.
    pub memory_limit_mb: Option<u64>,
    /// How its limits are enforced (for example `pss-watchdog`), and what is not.
    pub limits_enforced_by: Option<String>,
}

/// An optional number that must be finite (NaN and infinities are refused).
fn finite_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f32>, D::Error> {
    match Option::<f32>::deserialize(d)? {
        Some(x) if !x.is_finite() => Err(serde::de::Error::custom(format!(
            "{x} is not a finite number"
        ))),
        other => Ok(other),
    }
}

/// Where an app instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppState {
    /// Spawned; the page has not loaded or the bridge has not connected yet.
    Starting,
    /// The page has loaded and its bridge is connected to the bus.
    Ready,
    /// Asked to stop, not yet exited.
    Stopping,
    /// Exited after being asked to, or with success.
    Stopped,
    /// Exited on its own with a failure, or was killed by a signal, and is not
    /// restarted (its policy says never).
    Crashed,
    /// Its process ended on its own and it is being started again (see its restart
    /// policy); `exit` says how it ended.
    Restarting,
    /// Crashed too often in a row soon after starting: the crash-loop breaker stopped
    /// restarting it.
    Failed,
    /// Running, but its page's JavaScript does not answer the host's probes (an endless
    /// loop, say), or its host has gone silent on the bus.
    NotResponding,
}

impl AppState {
    /// The stable name shown by `weft ps`.
    pub fn as_str(self) -> &'static str {
        match self {
            AppState::Starting => "starting",
            AppState::Ready => "ready",
            AppState::Stopping => "stopping",
            AppState::Stopped => "stopped",
            AppState::Crashed => "crashed",
            AppState::Restarting => "restarting",
            AppState::Failed => "failed",
            AppState::NotResponding => "not-responding",
        }
    }

    /// Whether the instance runs with its page: starting, ready or not responding.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            AppState::Starting | AppState::Ready | AppState::NotResponding
        )
    }

    /// Whether the instance has ended for good: its process has exited and it will not
    /// be started again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            AppState::Stopped | AppState::Crashed | AppState::Failed
        )
    }
}

/// Postcard's variant index of `ServerFrame::Deliver` (its position in the enum).
pub(crate) const DELIVER_VARIANT: u8 = 2;

impl Delivery {
    /// A plainly published message: no headers, not a request, not sent directly.
    pub fn published(
        id: MessageId,
        ts_ms: u64,
        topic: Topic,
        sender: impl Into<Arc<Identity>>,
        payload: Bytes,
    ) -> Self {
        Delivery {
            id,
            ts_ms,
            topic,
            sender: sender.into(),
            payload,
            headers: Headers::new(),
            reply_to: None,
            direct: false,
            seq: None,
        }
    }

    /// Encodes the message alone, to follow [`ServerFrame::deliver_prefix`].
    pub fn encode(&self) -> Vec<u8> {
        // One allocation of about the right size: fixed fields take at most ~40 bytes,
        // each length prefix at most 5.
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + 10)
            .sum();
        let size = 64
            + self.topic.as_str().len()
            + self.sender.app_id.len()
            + self.sender.instance_id.len()
            + self.payload.len()
            + headers;
        postcard::to_extend(self, Vec::with_capacity(size)).expect("a Delivery always serialises")
    }
}

/// A frame body could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("malformed frame: {0}")]
pub struct DecodeError(#[from] postcard::Error);

impl ClientFrame {
    /// Encodes the frame as a body.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("a ClientFrame always serialises")
    }

    /// Decodes a body, refusing trailing bytes.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        decode_exact(body)
    }
}

impl ServerFrame {
    /// The bytes that precede an encoded [`Delivery`] (see [`Delivery::encode`]) in a
    /// `Deliver` frame for `sub`: the variant index and the varint subscription id. A
    /// message routed to many subscribers is thus encoded once; prefix plus message is
    /// byte for byte what [`ServerFrame::encode`] gives. Returns the buffer and how much
    /// of it is used (at most 11 bytes).
    pub fn deliver_prefix(sub: u64) -> ([u8; 11], usize) {
        let mut out = [0u8; 11];
        out[0] = DELIVER_VARIANT;
        let mut len = 1;
        let mut n = sub;
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out[len] = byte;
                return (out, len + 1);
            }
            out[len] = byte | 0x80;
            len += 1;
        }
    }

    /// Encodes the frame as a body.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("a ServerFrame always serialises")
    }

    /// Decodes a body, refusing trailing bytes.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        decode_exact(body)
    }
}

fn decode_exact<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, DecodeError> {
    let (value, rest) = postcard::take_from_bytes(body)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(DecodeError(postcard::Error::DeserializeBadEncoding))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_delivery() -> Delivery {
        Delivery {
            id: MessageId { epoch: 1, seq: 2 },
            ts_ms: 1_700_000_000_000,
            topic: Topic::new("fx.EURUSD").unwrap(),
            sender: Arc::new(Identity {
                app_id: "a".into(),
                instance_id: "a-1".into(),
            }),
            payload: Bytes::from_static(br#"{"px":1.1}"#),
            headers: vec![("traceparent".into(), "00-abc-def-01".into())],
            reply_to: Some(3),
            direct: false,
            seq: Some(77),
        }
    }

    #[test]
    fn frames_round_trip() {
        let frames = [
            ClientFrame::Publish {
                req: 1,
                topic: Topic::new("a.b").unwrap(),
                payload: Bytes::from_static(b"[1]"),
                headers: vec![],
            },
            ClientFrame::Subscribe {
                req: 2,
                sub: 9,
                pattern: Pattern::new("a.#").unwrap(),
                from: Some(IdentityFilter {
                    app_id: "a".into(),
                    instance_id: None,
                }),
                replay: Some(Replay::Since(1_700_000_000_000)),
            },
            ClientFrame::Respond {
                req: 3,
                call: 4,
                outcome: Err(RemoteError {
                    code: ErrorCode::HandlerError,
                    message: "no".into(),
                }),
            },
            ClientFrame::Unsubscribe { req: 3, sub: 9 },
            ClientFrame::ReportStatus {
                req: 4,
                status: PageStatus::Ready,
            },
            ClientFrame::Control {
                req: 5,
                request: ControlRequest::Launch {
                    workspace: Some("/w.json".into()),
                    app_directories: vec!["https://appd.example.com/".into()],
                    apps: vec!["blotter".into()],
                },
            },
            ClientFrame::ReportWindow {
                req: 6,
                bounds: crate::launch::WindowBounds {
                    x: -10,
                    y: 20,
                    width: 300,
                    height: 200,
                },
            },
        ];
        for f in frames {
            assert_eq!(ClientFrame::decode(&f.encode()).unwrap(), f);
        }
        let s = ServerFrame::Deliver {
            sub: 4,
            message: sample_delivery(),
        };
        assert_eq!(ServerFrame::decode(&s.encode()).unwrap(), s);
    }

    #[test]
    fn pre_encoded_deliveries_are_identical_to_encoded_frames() {
        let message = sample_delivery();
        for sub in [0, 1, 127, 128, 300, 1 << 40, u64::MAX] {
            let frame = ServerFrame::Deliver {
                sub,
                message: message.clone(),
            };
            let (prefix, len) = ServerFrame::deliver_prefix(sub);
            let mut joined = prefix[..len].to_vec();
            joined.extend_from_slice(&message.encode());
            assert_eq!(joined, frame.encode());
        }
    }

    #[test]
    fn a_cpu_figure_that_is_not_a_number_is_refused() {
        // Found by the fuzzer: NaN would decode, and then never equal itself.
        let info = |cpu| AppInfo {
            app_id: "a".into(),
            instance_id: "a-1".into(),
            title: "a".into(),
            url: "https://a.example/".into(),
            pid: None,
            state: AppState::Ready,
            exit: None,
            restarts: 0,
            bounds: None,
            uptime_secs: None,
            cpu_percent: Some(cpu),
            memory_pss_kb: None,
            heartbeat_age_ms: None,
            memory_limit_mb: None,
            limits_enforced_by: None,
        };
        let reply = |cpu| ServerFrame::ControlReply {
            req: 1,
            reply: ControlReply::Apps {
                apps: vec![info(cpu)],
                metrics_url: Some("http://127.0.0.1:9464/metrics".into()),
            },
        };
        let good = reply(12.5);
        assert_eq!(ServerFrame::decode(&good.encode()).unwrap(), good);
        for bad in [f32::NAN, f32::INFINITY] {
            assert!(ServerFrame::decode(&reply(bad).encode()).is_err(), "{bad}");
        }
    }

    #[test]
    fn invalid_topic_inside_a_frame_is_a_decode_error() {
        #[derive(Serialize)]
        enum Raw {
            Publish {
                req: u64,
                topic: String,
                payload: Vec<u8>,
            },
        }
        let body = postcard::to_stdvec(&Raw::Publish {
            req: 1,
            topic: "a..b".into(),
            payload: vec![],
        })
        .unwrap();
        assert!(ClientFrame::decode(&body).is_err());
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut body = ClientFrame::Unsubscribe { req: 1, sub: 2 }.encode();
        body.push(0);
        assert!(ClientFrame::decode(&body).is_err());
    }

    #[test]
    fn app_state_names_are_stable() {
        let names: Vec<_> = [
            AppState::Starting,
            AppState::Ready,
            AppState::Stopping,
            AppState::Stopped,
            AppState::Crashed,
        ]
        .iter()
        .map(|s| serde_json::to_string(s).unwrap())
        .collect();
        assert_eq!(
            names,
            [
                r#""starting""#,
                r#""ready""#,
                r#""stopping""#,
                r#""stopped""#,
                r#""crashed""#
            ]
        );
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = ClientFrame::decode(&body);
            let _ = ServerFrame::decode(&body);
            let _ = crate::handshake::Hello::decode(&body);
        }
    }
}
