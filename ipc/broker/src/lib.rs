//! Weft's message broker.
//!
//! The broker listens on a local socket, authenticates every connection by the token in
//! its handshake, stamps each message with the identity bound to that token, and routes
//! it to the subscribers of its topic. Payloads are opaque bytes: the broker never
//! parses them.
//!
//! It is not the shell: control requests from the command line and status reports from
//! app hosts are handed to the shell as [`BrokerEvent`]s, and the shell decides.
//!
//! Invariants:
//! - A connection's identity comes only from the token it presented; nothing a client
//!   sends can change it.
//! - An app token authenticates at most one live connection at a time.
//! - Messages from one connection are routed in the order they were received, and each
//!   subscriber's outbound queue is FIFO, so one publisher's messages on one topic reach
//!   every subscriber in publish order.
//! - Outbound queues are bounded; a subscriber whose queue is full is disconnected with
//!   the reason `SlowConsumer` instead of slowing anyone else down.

mod access;
mod calls;
mod connection;
mod consumers;
mod dead_letters;
mod durable;
mod replay;
mod routes;
mod session;
mod stats;
pub mod sublist;
mod tokens;

pub use access::{BusAccess, BusAction, DENIALS_PER_SECOND};
pub use consumers::{MAX_ATTEMPTS, TTL_HEADER};
pub use dead_letters::DLQ_CAPACITY;
pub use durable::{DurableConfig, DurableError, DurableInfo, Fsync, JournalSetup};
pub use stats::{ConnectionStats, LATENCY_BUCKETS, SAMPLE_EVERY, StatsSnapshot};
pub use weft_journal::{KeySet, Retention};

use std::{
    io,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::BufMut;
use tokio::{net::UnixListener, sync::mpsc};
use tokio_util::sync::CancellationToken;
use weft_proto::{
    ErrorCode, Identity, ServerFrame, Token, Topic,
    frame::{
        ControlReply, ControlRequest, DeadLetter, Delivery, IdentityFilter, MessageId, PageStatus,
    },
};
use weft_wire::{FrameQueue, Refused};

use crate::{
    calls::{Calls, ProviderGone},
    routes::{Conn, Routes, Select},
    stats::{BrokerStats, Routed},
    tokens::Tokens,
};

/// How a broker is set up.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Where to listen. A stale socket file there is replaced.
    pub socket_path: PathBuf,
    /// Largest frame body accepted, in bytes.
    pub max_frame_len: usize,
    /// Bytes that may wait in one connection's outbound queue before it counts as a
    /// slow consumer and is disconnected.
    pub outbound_queue_bytes: usize,
    /// How long a new connection may take to send its handshake.
    pub handshake_timeout: Duration,
    /// Requests and dispatches one connection may have waiting for answers.
    pub max_pending_calls: usize,
    /// Told about every routed message that carries a W3C trace context.
    pub trace_observer: Option<Arc<dyn TraceObserver>>,
}

/// Something that records traced messages (the shell's trace export).
///
/// Called on the sending connection's task right after the message is routed: it must
/// not block.
pub trait TraceObserver: Send + Sync + std::fmt::Debug {
    /// `message` was routed.
    fn routed(&self, message: &TracedMessage<'_>);
}

/// A routed message that carries a trace context.
#[derive(Debug)]
pub struct TracedMessage<'a> {
    /// Its place in its trace.
    pub trace: weft_proto::trace_context::MessageTrace,
    /// What kind of message it was.
    pub kind: MessageKind,
    /// Its topic (the service, for a dispatch).
    pub topic: &'a str,
    /// Who sent it.
    pub sender: &'a Identity,
    /// When the broker received it, in milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// When routing it ended, in milliseconds since the Unix epoch.
    pub routed_ms: u64,
    /// Copies queued for recipients.
    pub delivered: u64,
    /// Copies refused because a recipient's queue was full or closing.
    pub dropped: u64,
}

/// The kinds of traced message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// A publish to every subscriber.
    Publish,
    /// A send to one app or instance.
    Send,
    /// A request, answered by the first responder.
    Request,
    /// An RPC dispatch to a service's provider.
    Dispatch,
}

impl MessageKind {
    /// A short lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Publish => "publish",
            MessageKind::Send => "send",
            MessageKind::Request => "request",
            MessageKind::Dispatch => "dispatch",
        }
    }
}

impl BrokerConfig {
    /// Defaults for a broker listening at `socket_path`.
    pub fn new(socket_path: impl Into<PathBuf>) -> Self {
        Self {
            socket_path: socket_path.into(),
            max_frame_len: weft_proto::DEFAULT_MAX_FRAME_LEN,
            outbound_queue_bytes: 64 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(5),
            max_pending_calls: 4096,
            trace_observer: None,
        }
    }
}

/// The journal's figures, for the metrics endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// Every durable stream.
    pub streams: Vec<DurableInfo>,
    /// Letters in the dead-letter queue.
    pub dead_letters: u64,
    /// Dead letters that could not be kept (no journal, or too many at once).
    pub dead_letters_lost: u64,
}

/// What kind of client a connection is, decided by the token it presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// An app host (`weft-app`), with the identity of its app instance.
    App,
    /// A command-line client, acting as `weft-cli`.
    Cli,
}

/// Something the shell should know about or decide.
#[derive(Debug)]
pub enum BrokerEvent {
    /// An app host connected.
    AppConnected(Identity),
    /// An app host's connection ended.
    AppDisconnected(Identity),
    /// An app host reported its page's state.
    PageStatus(Identity, PageStatus),
    /// An app host reported where its window is now.
    WindowMoved(Identity, weft_proto::launch::WindowBounds),
    /// An app host answered a snapshot request (`HostCommand::Save`).
    Saved {
        /// The app instance, as its connection's token says.
        identity: Identity,
        /// The request it answers.
        request: u64,
        /// What it reported.
        saved: weft_proto::launch::SavedApp,
    },
    /// An app host reported what its page tried and was refused.
    PageViolation {
        /// The app instance, as its connection's token says.
        identity: Identity,
        /// What was refused.
        violation: weft_proto::frame::PageViolation,
        /// Refusals the host did not report before this one.
        unreported: u64,
    },
    /// An app was refused something its bus access does not allow.
    AccessDenied {
        /// The app instance, as its connection's token says.
        identity: Identity,
        /// What it tried.
        action: BusAction,
        /// The topic, pattern or service.
        subject: String,
        /// Refusals of this connection not reported since the last report (see
        /// [`DENIALS_PER_SECOND`]).
        suppressed: u64,
    },
    /// A client was refused at the handshake (a bad, reused or missing token, or a
    /// malformed hello).
    Refused {
        /// The stable name of the refusal.
        reason: &'static str,
        /// The details.
        message: String,
        /// The peer's process and user ids, from the socket.
        peer: Option<(i32, u32)>,
    },
    /// A command-line client asks the shell to act; answer on `reply`.
    Control {
        /// Who asks.
        from: Identity,
        /// What it asks.
        request: ControlRequest,
        /// Where the answer goes: a reply, or a message saying why it failed.
        reply: tokio::sync::oneshot::Sender<Result<ControlReply, String>>,
    },
}

/// A broker that has bound its socket and is ready to [`run`](Broker::run).
pub struct Broker {
    listener: UnixListener,
    shared: Arc<Shared>,
    /// The device and inode of the socket file bound: it is removed at the end only if
    /// the path still names it (another broker may have bound the path since).
    socket_file: Option<(u64, u64)>,
}

/// A cheap, cloneable handle to a running broker.
#[derive(Clone)]
pub struct BrokerHandle {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    config: BrokerConfig,
    tokens: Mutex<Tokens>,
    routes: Mutex<Routes>,
    /// Lock order: `calls` before `routes`, never the other way round.
    calls: Mutex<Calls>,
    events: mpsc::UnboundedSender<BrokerEvent>,
    shutdown: CancellationToken,
    next_conn: AtomicU64,
    next_message: AtomicU64,
    /// Random per broker run, so message ids stay unique across shell restarts.
    epoch: u32,
    stats: BrokerStats,
    durable: durable::Durable,
    consumers: consumers::Consumers,
    dead_letters: dead_letters::DeadLetters,
}

/// The broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Binding the socket failed.
    #[error("cannot listen on {path}: {source}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

impl Broker {
    /// Binds the socket (mode 0600) and returns the broker, a handle to it, and the stream
    /// of events the shell must consume.
    pub fn bind(
        config: BrokerConfig,
    ) -> Result<(Broker, BrokerHandle, mpsc::UnboundedReceiver<BrokerEvent>), BrokerError> {
        let path = config.socket_path.clone();
        let bind_err = |source| BrokerError::Bind {
            path: path.clone(),
            source,
        };
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(bind_err(e)),
        }
        let listener = UnixListener::bind(&path).map_err(bind_err)?;
        set_mode_0600(&path).map_err(bind_err)?;
        let socket_file = file_id(&path);
        let (events, rx) = mpsc::unbounded_channel();
        let mut epoch = [0u8; 4];
        getrandom::fill(&mut epoch).expect("the operating system's random source failed");
        let epoch = u32::from_le_bytes(epoch);
        let shared = Arc::new(Shared {
            calls: Mutex::new(Calls::new(config.max_pending_calls)),
            config,
            tokens: Mutex::new(Tokens::default()),
            routes: Mutex::new(Routes::default()),
            events,
            shutdown: CancellationToken::new(),
            next_conn: AtomicU64::new(1),
            next_message: AtomicU64::new(1),
            epoch,
            stats: BrokerStats::default(),
            durable: durable::Durable::default(),
            consumers: consumers::Consumers::default(),
            dead_letters: dead_letters::DeadLetters::default(),
        });
        let handle = BrokerHandle {
            shared: shared.clone(),
        };
        Ok((
            Broker {
                listener,
                shared,
                socket_file,
            },
            handle,
            rx,
        ))
    }

    /// Accepts and serves connections until [`BrokerHandle::shutdown`] is called; then
    /// tells every client it is closing and removes the socket file.
    pub async fn run(self) {
        let shared = self.shared;
        loop {
            tokio::select! {
                _ = shared.shutdown.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
                        tokio::spawn(connection::serve(shared.clone(), id, stream));
                    }
                    Err(e) => {
                        tracing::warn!("accepting a connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
            }
        }
        let path = &shared.config.socket_path;
        if self.socket_file.is_some() && file_id(path) == self.socket_file {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The device and inode of the file at `path`, if there is one.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

impl BrokerHandle {
    /// Allows `token` to connect as the app instance `identity`, with the bus open to it.
    pub fn grant_app(&self, token: Token, identity: Identity) {
        self.grant_app_with(token, identity, BusAccess::default());
    }

    /// Allows `token` to connect as the app instance `identity`, held to `access`.
    pub fn grant_app_with(&self, token: Token, identity: Identity, access: BusAccess) {
        lock(&self.shared.tokens).grant(token, ClientKind::App, Some(identity), access);
    }

    /// Allows `token` to connect as a command-line client (any number at once).
    pub fn grant_cli(&self, token: Token) {
        lock(&self.shared.tokens).grant(token, ClientKind::Cli, None, BusAccess::default());
    }

    /// Withdraws `token`; connections it already authenticated stay open.
    pub fn revoke(&self, token: &Token) {
        lock(&self.shared.tokens).revoke(token);
    }

    /// Closes every connection and stops accepting new ones. Durable streams store
    /// what they were handed, sync and stop.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
        self.shared.durable.close();
        self.shared.consumers.persist(true);
    }

    /// Says where durable streams live and with which keys (or why there are none).
    /// Must come before [`BrokerHandle::add_durable`]. With a journal, the dead-letter
    /// queue and the durable consumers are opened there too.
    pub fn set_journal(&self, setup: JournalSetup) {
        if let JournalSetup::Ready { dir, keys } = &setup {
            if let Err(e) = self
                .shared
                .dead_letters
                .open(&dir.join("dead-letters"), keys.clone())
            {
                tracing::error!("cannot open the dead-letter queue: {e}");
            }
            self.shared.consumers.load(dir.join("consumers.json"));
        }
        self.shared.durable.set_up(setup);
    }

    /// The dead-letter queue's letters (oldest first) and the bytes it takes.
    pub fn dead_letters(&self) -> Result<(Vec<DeadLetter>, u64), String> {
        self.shared.dead_letters.list()
    }

    /// The journal's figures: durable streams and the dead-letter queue.
    pub fn journal_stats(&self) -> JournalStats {
        JournalStats {
            streams: self.shared.durable.info(),
            dead_letters: self.shared.dead_letters.depth(),
            dead_letters_lost: self.shared.dead_letters.lost(),
        }
    }

    /// Delivers dead letters again — one by id, or all — on their topic, from their
    /// sender, with their message id and a `weft-redriven` header, and takes them out
    /// of the queue. Returns how many.
    pub fn redrive(&self, id: Option<u64>) -> Result<u64, String> {
        let letters = self.shared.dead_letters.take(id)?;
        let count = letters.len() as u64;
        for letter in letters {
            let mut message = letter.message;
            message.seq = None;
            message
                .headers
                .push(("weft-redriven".into(), letter.id.to_string()));
            self.shared.republish(message)?;
        }
        Ok(count)
    }

    /// Empties the dead-letter queue; returns how many letters it held.
    pub fn purge_dead_letters(&self) -> Result<u64, String> {
        self.shared.dead_letters.purge()
    }

    /// Opens a durable stream (recovering what a crash left of it) and stores every
    /// later publish to a topic it matches. A pattern already open is left as it is.
    /// Blocks on disk I/O.
    pub fn add_durable(&self, config: DurableConfig) -> Result<(), DurableError> {
        self.shared.durable.add(&self.shared, config)
    }

    /// The durable streams and what they hold.
    pub fn durable_info(&self) -> Vec<DurableInfo> {
        self.shared.durable.info()
    }

    /// Damage found in the durable streams so far.
    pub fn journal_damage(&self) -> Vec<weft_journal::Damage> {
        self.shared
            .durable
            .streams()
            .iter()
            .flat_map(|s| s.reader.damage())
            .collect()
    }

    /// Sends `command` to the app host connected as `identity`; false if it is not
    /// connected.
    pub fn command(&self, identity: &Identity, command: weft_proto::frame::HostCommand) -> bool {
        let routes = lock(&self.shared.routes);
        let Some((conn, _)) = routes.conn_of(identity) else {
            return false;
        };
        self.shared
            .queue(&routes, conn, &ServerFrame::Command { command }.encode());
        true
    }

    /// What the broker has routed so far, and what waits in each connection's queue.
    pub fn stats(&self) -> StatsSnapshot {
        let connections = lock(&self.shared.routes).connection_stats();
        self.shared.stats.snapshot(connections)
    }

    /// Number of authenticated connections.
    pub fn connection_count(&self) -> usize {
        lock(&self.shared.routes).connection_count()
    }

    /// Number of requests and dispatches waiting for answers.
    pub fn pending_calls(&self) -> usize {
        lock(&self.shared.calls).pending_count()
    }

    /// The socket the broker listens on.
    pub fn socket_path(&self) -> &Path {
        &self.shared.config.socket_path
    }
}

impl Shared {
    fn message_id(&self) -> MessageId {
        MessageId {
            epoch: self.epoch,
            seq: self.next_message.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Queues `delivery` for every subscription matching its topic that accepts its
    /// sender, on the connections selected by `only` if given. The message is encoded
    /// once; each subscriber's frame only adds its subscription id.
    /// The writers whose queues this made non-empty join `wakes`.
    fn route(
        &self,
        delivery: &Delivery,
        only: Option<&IdentityFilter>,
        wakes: &DeferredWakes,
    ) -> Routed {
        let message = delivery.encode();
        self.route_encoded(
            delivery.topic.as_str(),
            &delivery.sender,
            only,
            &message,
            wakes,
        )
    }

    /// As [`Shared::route`], for a message already encoded (the publish fast path).
    fn route_encoded(
        &self,
        topic: &str,
        sender: &Identity,
        only: Option<&IdentityFilter>,
        message: &[u8],
        wakes: &DeferredWakes,
    ) -> Routed {
        let mut routes = lock(&self.routes);
        let select = Select {
            only,
            stored_in: None,
        };
        self.route_in(&mut routes, topic, sender, select, message, wakes)
    }

    /// As [`Shared::route_encoded`], with the routes already locked and the targets
    /// selected by `select`.
    fn route_in(
        &self,
        routes: &mut Routes,
        topic: &str,
        sender: &Identity,
        select: Select<'_>,
        message: &[u8],
        wakes: &DeferredWakes,
    ) -> Routed {
        let mut routed = Routed::default();
        routes.for_each_target(topic, sender, select, |target, conn| {
            let (prefix, len) = ServerFrame::deliver_prefix(target.sub);
            let pushed = conn
                .outbound
                .push_frame_deferred(len + message.len(), |buf| {
                    buf.put_slice(&prefix[..len]);
                    buf.put_slice(message);
                });
            match pushed {
                Ok(woken) => {
                    routed.delivered += 1;
                    if woken {
                        wakes.add(&conn.outbound);
                    }
                }
                Err(refused) => {
                    routed.dropped += 1;
                    if refused == Refused::Full
                        && let Ok(lost) = postcard::from_bytes::<Delivery>(message)
                    {
                        self.dead_letters.add(
                            dead_letters::Reason::SlowConsumer,
                            "its subscriber could not keep up and was disconnected".into(),
                            conn.identity.to_string(),
                            lost,
                        );
                    }
                    self.refused(target.conn, conn, Err(refused));
                }
            }
        });
        routed
    }

    /// Queues an encoded frame for `conn`, waking its writer with the others in
    /// `wakes`; a connection whose queue is full is disconnected.
    fn queue_deferred(&self, routes: &Routes, conn: u64, body: &[u8], wakes: &DeferredWakes) {
        if let Some(c) = routes.conn(conn) {
            match c
                .outbound
                .push_frame_deferred(body.len(), |buf| buf.put_slice(body))
            {
                Ok(true) => wakes.add(&c.outbound),
                Ok(false) => {}
                Err(refused) => self.refused(conn, c, Err(refused)),
            }
        }
    }

    /// Queues `frame` for connection `conn`, if it is still there; true if it was
    /// queued.
    fn send_to(&self, conn: u64, frame: ServerFrame) -> bool {
        let routes = lock(&self.routes);
        self.queue(&routes, conn, &frame.encode())
    }

    /// Queues an encoded frame; a connection whose queue is full is disconnected
    /// rather than waited for. True if it was queued.
    fn queue(&self, routes: &Routes, conn: u64, body: &[u8]) -> bool {
        match routes.conn(conn) {
            Some(c) => {
                let pushed = c.outbound.push(body);
                let queued = pushed.is_ok();
                self.refused(conn, c, pushed);
                queued
            }
            None => false,
        }
    }

    /// Disconnects `c` if its queue was full.
    fn refused(&self, conn: u64, c: &Conn, pushed: Result<(), Refused>) {
        match pushed {
            Ok(()) | Err(Refused::Closed) => {}
            // Frames routed here come from frames read within the frame limit.
            Err(Refused::TooLarge) => {
                tracing::error!(conn, "a frame too large for its length prefix was not sent")
            }
            Err(Refused::Full) => {
                if !c.kill.is_cancelled() {
                    tracing::warn!(
                        conn,
                        identity = %c.identity,
                        "disconnecting a slow consumer: its outbound queue is full"
                    );
                    self.stats.slow_consumer();
                    c.kill.cancel();
                }
            }
        }
    }

    /// Publishes a message again (a redriven dead letter): stored first if its topic
    /// is durable, else routed.
    fn republish(&self, message: Delivery) -> Result<(), String> {
        match self.durable.stream_for(message.topic.as_str()) {
            Some(stream) => stream.try_append(durable::Append {
                conn: 0,
                req: 0,
                ts_ms: now_ms(),
                id: message.id,
                topic: message.topic,
                sender: message.sender,
                headers: message.headers,
                payload: message.payload,
            }),
            None => {
                let wakes = DeferredWakes::default();
                self.route(&message, None, &wakes);
                wakes.wake_all();
                Ok(())
            }
        }
    }

    /// Tells callers and clients that a provider went away.
    fn provider_gone(&self, gone: ProviderGone) {
        for pending in gone.calls {
            let service = pending
                .service
                .as_ref()
                .map(Topic::as_str)
                .unwrap_or("the service");
            self.send_to(
                pending.caller,
                ServerFrame::Error {
                    req: pending.req,
                    code: ErrorCode::ProviderGone,
                    message: format!("the provider of {service} went away before answering"),
                },
            );
        }
        for (service, clients) in gone.services {
            for client in clients {
                self.send_to(
                    client,
                    ServerFrame::ServiceGone {
                        service: service.clone(),
                    },
                );
            }
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Writers to wake once the frames at hand are routed.
///
/// A connection's reader routes every frame it already has buffered before waking the
/// writers of the queues it filled (see `FrameQueue::push_frame_deferred`): each writer
/// then wakes once per burst and writes it whole, instead of racing on the other core to
/// write each message alone.
#[derive(Default)]
pub(crate) struct DeferredWakes(Mutex<Vec<FrameQueue>>);

impl DeferredWakes {
    pub(crate) fn add(&self, queue: &FrameQueue) {
        lock(&self.0).push(queue.clone());
    }

    /// Wakes every writer added since the last call.
    pub(crate) fn wake_all(&self) {
        for queue in lock(&self.0).drain(..) {
            queue.wake();
        }
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it: every critical
/// section here leaves the tables consistent between statements.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn set_mode_0600(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}
