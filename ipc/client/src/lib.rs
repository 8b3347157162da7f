//! An async client for Weft's bus.
//!
//! [`Client::connect`] performs the handshake and spawns two tasks: one that reads
//! frames and dispatches answers and deliveries, and one that writes queued frames in
//! batches. Every request method waits for the broker's answer. The client is cheap to
//! clone; the connection closes when the last clone and subscription are dropped, or on
//! [`Client::close`].
//!
//! It is not a broker and holds no policy: it does what its caller asks and reports the
//! broker's typed errors.

mod inbox;

use std::{
    collections::{HashMap, VecDeque},
    io,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::{
    io::AsyncWriteExt,
    net::UnixStream,
    sync::{mpsc, oneshot, watch},
};
use weft_wire::{FrameError, FrameQueue, FrameReader, Refused, frame_queue};

use crate::inbox::{InboxReceiver, InboxSender, inbox};
use weft_proto::{
    ClientFrame, ErrorCode, Identity, Pattern, ServerFrame, Token, Topic,
    endpoint::Endpoint,
    fast_path::{self, DeliveryReader},
    frame::{
        ControlReply, ControlRequest, Delivery, HostCommand, IdentityFilter, PageStatus,
        RemoteError, Replay,
    },
    handshake::{Hello, HelloReply, Refusal},
    headers::Headers,
};

/// Deliveries buffered per subscription before the reader waits for the consumer.
const SUBSCRIPTION_BUFFER: usize = 1024;
/// Bytes of frames queued for the socket before publishing waits (or, for
/// [`Client::try_publish`], reports `Backpressure`).
const OUTBOUND_QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// What went wrong talking to the broker.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No shell is listening at the socket.
    #[error("no Weft shell is listening at {path}: {source}")]
    NotRunning {
        /// The socket path tried.
        path: std::path::PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The command-line token could not be read.
    #[error("cannot read the shell's token: {0}")]
    Token(io::Error),
    /// The broker refused the handshake.
    #[error("the broker refused the connection ({}): {message}", reason.as_str())]
    Refused {
        /// Why, as a stable code.
        reason: Refusal,
        /// The broker's explanation.
        message: String,
    },
    /// The broker answered a request with an error.
    #[error("{}: {message}", code.as_str())]
    Broker {
        /// Stable error code.
        code: ErrorCode,
        /// The broker's explanation.
        message: String,
    },
    /// The connection is closed.
    #[error("not connected to the broker: {0}")]
    NotConnected(String),
    /// No answer came within the time the caller allowed.
    #[error("Timeout: no answer within {0:?}")]
    Timeout(Duration),
    /// The broker sent something this client does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Reading or writing the socket failed.
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
}

impl ClientError {
    /// The explanation without the code: for a broker error, exactly the broker's (or
    /// the remote handler's) message.
    pub fn message(&self) -> String {
        match self {
            ClientError::Broker { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// The stable code pages see for this error.
    pub fn code(&self) -> &'static str {
        match self {
            ClientError::Broker { code, .. } => code.as_str(),
            ClientError::Refused { reason, .. } => reason.as_str(),
            ClientError::NotRunning { .. } | ClientError::NotConnected(_) => "NotConnected",
            ClientError::Token(_) | ClientError::Io(_) => "NotConnected",
            ClientError::Protocol(_) => "ProtocolError",
            ClientError::Timeout(_) => "Timeout",
        }
    }
}

/// What a request is answered with.
enum Reply {
    Done,
    Control(ControlReply),
    Response(Delivery),
}

type Answer = Result<Reply, ClientError>;

struct Inner {
    identity: Identity,
    outbound: FrameQueue,
    pending: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    subs: Mutex<HashMap<u64, InboxSender<Delivery>>>,
    /// Services this connection provides → where their invocations go.
    provided: Mutex<HashMap<Topic, mpsc::Sender<Invocation>>>,
    /// Services this connection is a client of → flag raised when the provider goes.
    services: Mutex<HashMap<Topic, watch::Sender<bool>>>,
    next_req: AtomicU64,
    next_sub: AtomicU64,
    /// `Some(reason)` once the connection has ended.
    closed: watch::Sender<Option<String>>,
    /// Where commands from the shell go, once someone asked for them.
    commands: Mutex<Option<mpsc::UnboundedSender<HostCommand>>>,
}

/// A connection to the broker, authenticated as [`Client::identity`].
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// Messages on one subscription, in the order the broker routed them.
pub struct Subscription {
    id: u64,
    deliveries: InboxReceiver<Delivery>,
    client: Client,
    /// Set once [`Subscription::unsubscribe`] has told the broker, so `Drop` need not.
    ended: bool,
}

impl Client {
    /// Connects with the command-line token of the shell at `endpoint`.
    pub async fn connect_cli(endpoint: &Endpoint) -> Result<Client, ClientError> {
        let socket = endpoint.socket_path();
        // A shell writes its token after binding its socket and removes both when it
        // stops: a missing file of either kind means no shell is running.
        let token = match endpoint.read_cli_token() {
            Ok(token) => token,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ClientError::NotRunning {
                    path: socket,
                    source: e,
                });
            }
            Err(e) => return Err(ClientError::Token(e)),
        };
        Client::connect(&socket, &token).await
    }

    /// Connects to the broker at `socket` and authenticates with `token`.
    pub async fn connect(socket: &Path, token: &Token) -> Result<Client, ClientError> {
        Client::connect_with_hello(socket, &Hello::new(token).encode()).await
    }

    /// Connects and sends `hello` verbatim as the handshake. For tests of the broker's
    /// refusals; use [`Client::connect`] otherwise.
    pub async fn connect_with_hello(socket: &Path, hello: &[u8]) -> Result<Client, ClientError> {
        let stream =
            UnixStream::connect(socket)
                .await
                .map_err(|source| ClientError::NotRunning {
                    path: socket.to_owned(),
                    source,
                })?;
        let (read, mut write) = stream.into_split();
        let mut reader = FrameReader::new(read, weft_proto::DEFAULT_MAX_FRAME_LEN);
        write.write_all(&framed(hello)).await?;
        let body = match reader.next_frame().await {
            Ok(Some(body)) => body,
            Err(FrameError::Io(e)) => return Err(ClientError::Io(e)),
            Err(e) => return Err(ClientError::Protocol(format!("bad handshake reply: {e}"))),
            Ok(None) => {
                return Err(ClientError::NotConnected(
                    "closed during the handshake".into(),
                ));
            }
        };
        let identity = match HelloReply::decode(body) {
            Ok(HelloReply::Accepted { identity, .. }) => identity,
            Ok(HelloReply::Refused {
                reason, message, ..
            }) => return Err(ClientError::Refused { reason, message }),
            Err(e) => return Err(ClientError::Protocol(format!("bad handshake reply: {e}"))),
        };

        let (outbound, queue) = frame_queue(OUTBOUND_QUEUE_BYTES);
        let inner = Arc::new(Inner {
            identity,
            outbound,
            pending: Mutex::new(HashMap::new()),
            subs: Mutex::new(HashMap::new()),
            provided: Mutex::new(HashMap::new()),
            services: Mutex::new(HashMap::new()),
            next_req: AtomicU64::new(1),
            next_sub: AtomicU64::new(1),
            closed: watch::Sender::new(None),
            commands: Mutex::new(None),
        });
        tokio::spawn(queue.run(write));
        tokio::spawn(read_loop(Arc::downgrade(&inner), reader));
        Ok(Client { inner })
    }

    /// Who the broker says this connection is.
    pub fn identity(&self) -> &Identity {
        &self.inner.identity
    }

    /// Publishes `payload` on `topic`; returns once the broker has accepted it.
    pub async fn publish(
        &self,
        topic: &Topic,
        payload: impl Into<Bytes>,
    ) -> Result<(), ClientError> {
        self.publish_with(topic, payload, Headers::new()).await
    }

    /// Publishes without waiting for the broker's acknowledgement: returns once the
    /// message is queued for the socket, waiting only while this client's outbound queue
    /// is full. Refusals (an invalid header, say) are logged, not returned.
    pub async fn publish_nowait(
        &self,
        topic: &Topic,
        payload: impl Into<Bytes>,
    ) -> Result<(), ClientError> {
        let payload = payload.into();
        let len = fast_path::publish_len(0, topic.as_str(), &payload);
        self.inner
            .outbound
            .push_frame_waiting(len, |buf| {
                fast_path::encode_publish(buf, 0, topic.as_str(), &payload)
            })
            .await
            .map_err(refused)
    }

    /// As [`Client::publish_nowait`], but never waits: `Backpressure` when this client's
    /// outbound queue is full, so the caller can slow down or drop.
    pub fn try_publish(&self, topic: &Topic, payload: impl Into<Bytes>) -> Result<(), ClientError> {
        let payload = payload.into();
        let len = fast_path::publish_len(0, topic.as_str(), &payload);
        self.inner
            .outbound
            .push_frame(len, |buf| {
                fast_path::encode_publish(buf, 0, topic.as_str(), &payload)
            })
            .map_err(refused)
    }

    /// Publishes with headers (for example a W3C `traceparent`).
    pub async fn publish_with(
        &self,
        topic: &Topic,
        payload: impl Into<Bytes>,
        headers: Headers,
    ) -> Result<(), ClientError> {
        let payload = payload.into();
        self.call(|req| ClientFrame::Publish {
            req,
            topic: topic.clone(),
            payload,
            headers,
        })
        .await
        .map(drop)
    }

    /// Delivers `payload` on `topic` only to the subscriptions of `to` (every instance
    /// of an app, or one instance); `TargetGone` if none is running.
    pub async fn send(
        &self,
        to: &IdentityFilter,
        topic: &Topic,
        payload: impl Into<Bytes>,
    ) -> Result<(), ClientError> {
        self.send_with(to, topic, payload, Headers::new()).await
    }

    /// [`Client::send`] with headers.
    pub async fn send_with(
        &self,
        to: &IdentityFilter,
        topic: &Topic,
        payload: impl Into<Bytes>,
        headers: Headers,
    ) -> Result<(), ClientError> {
        let payload = payload.into();
        self.call(|req| ClientFrame::Send {
            req,
            to: to.clone(),
            topic: topic.clone(),
            payload,
            headers,
        })
        .await
        .map(drop)
    }

    /// Publishes a question on `topic` and waits up to `timeout` for the first answer
    /// from any subscriber; `NoResponders` at once if nothing subscribes.
    pub async fn request(
        &self,
        topic: &Topic,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Delivery, ClientError> {
        self.request_with(topic, payload, timeout, Headers::new())
            .await
    }

    /// [`Client::request`] with headers.
    pub async fn request_with(
        &self,
        topic: &Topic,
        payload: impl Into<Bytes>,
        timeout: Duration,
        headers: Headers,
    ) -> Result<Delivery, ClientError> {
        let payload = payload.into();
        self.call_for_response(timeout, |req| ClientFrame::Request {
            req,
            topic: topic.clone(),
            payload,
            headers,
        })
        .await
    }

    /// Answers the call `call`: a delivered message's `reply_to`, or an
    /// [`Invocation`]'s call.
    pub async fn respond(
        &self,
        call: u64,
        outcome: Result<Bytes, RemoteError>,
    ) -> Result<(), ClientError> {
        self.call(|req| ClientFrame::Respond { req, call, outcome })
            .await
            .map(drop)
    }

    /// As [`Client::respond`], without waiting for the broker's acknowledgement; a
    /// refusal (the call was already answered, say) is logged.
    pub async fn respond_nowait(
        &self,
        call: u64,
        outcome: Result<Bytes, RemoteError>,
    ) -> Result<(), ClientError> {
        let frame = ClientFrame::Respond {
            req: 0,
            call,
            outcome,
        };
        self.inner.send(&frame.encode()).await
    }

    /// Provides the RPC service `service`; `ServiceExists` if another connection does.
    pub async fn provide(&self, service: &Topic) -> Result<Provider, ClientError> {
        let (tx, invocations) = mpsc::channel(SUBSCRIPTION_BUFFER);
        lock(&self.inner.provided).insert(service.clone(), tx);
        let result = self
            .call(|req| ClientFrame::Provide {
                req,
                service: service.clone(),
            })
            .await;
        if let Err(e) = result {
            lock(&self.inner.provided).remove(service);
            return Err(e);
        }
        Ok(Provider {
            service: service.clone(),
            invocations,
            client: self.clone(),
            withdrawn: false,
        })
    }

    /// Connects to the RPC service `service`. With `wait`, waits up to that long for a
    /// provider that has not started yet; without, fails at once with `NoProvider`.
    pub async fn connect_service(
        &self,
        service: &Topic,
        wait: Option<Duration>,
    ) -> Result<ServiceClient, ClientError> {
        // Every client of one service on this connection shares one "gone" flag.
        let gone = lock(&self.inner.services)
            .entry(service.clone())
            .or_insert_with(|| watch::channel(false).0)
            .subscribe();
        let make = |req| ClientFrame::Connect {
            req,
            service: service.clone(),
            wait: wait.is_some(),
        };
        let result = match wait {
            Some(timeout) => self.call_with_timeout(timeout, make).await.map(drop),
            None => self.call(make).await.map(drop),
        };
        if let Err(e) = result {
            let mut services = lock(&self.inner.services);
            if services
                .get(service)
                .is_some_and(|flag| flag.receiver_count() <= 1)
            {
                services.remove(service);
            }
            return Err(e);
        }
        Ok(ServiceClient {
            service: service.clone(),
            client: self.clone(),
            gone,
        })
    }

    /// Subscribes to every topic matching `pattern` (a [`Topic`] is a pattern without
    /// wildcards); returns once the broker has registered the subscription, so every
    /// matching message published after this returns is delivered.
    pub async fn subscribe(
        &self,
        pattern: impl Into<Pattern>,
    ) -> Result<Subscription, ClientError> {
        self.subscribe_from(pattern, None).await
    }

    /// As [`Client::subscribe`], keeping only messages whose sender `from` selects.
    pub async fn subscribe_from(
        &self,
        pattern: impl Into<Pattern>,
        from: Option<IdentityFilter>,
    ) -> Result<Subscription, ClientError> {
        self.subscribe_with(pattern, from, None).await
    }

    /// As [`Client::subscribe_from`], first delivering the messages of durable streams
    /// stored from the point `replay` names, in order, then live ones with no gap and
    /// no duplicate between them. Stored messages carry their `seq`.
    pub async fn subscribe_with(
        &self,
        pattern: impl Into<Pattern>,
        from: Option<IdentityFilter>,
        replay: Option<Replay>,
    ) -> Result<Subscription, ClientError> {
        let pattern = pattern.into();
        self.open_subscription(|req, sub| ClientFrame::Subscribe {
            req,
            sub,
            pattern,
            from,
            replay,
        })
        .await
    }

    /// Registers a new subscription's inbox, asks the broker with the frame `make`
    /// builds (from the request and subscription ids), and hands the subscription out
    /// once the broker confirmed it.
    async fn open_subscription(
        &self,
        make: impl FnOnce(u64, u64) -> ClientFrame,
    ) -> Result<Subscription, ClientError> {
        let sub = self.inner.next_sub.fetch_add(1, Ordering::Relaxed);
        let (tx, deliveries) = inbox(SUBSCRIPTION_BUFFER);
        lock(&self.inner.subs).insert(sub, tx);
        if let Err(e) = self.call(|req| make(req, sub)).await {
            lock(&self.inner.subs).remove(&sub);
            return Err(e);
        }
        Ok(Subscription {
            id: sub,
            deliveries,
            client: self.clone(),
            ended: false,
        })
    }

    /// Attaches to the durable consumer `name` of this client's app (made on first use,
    /// starting where `start` says, or with new messages only): its stored messages come
    /// one at a time, each after the previous one was acknowledged with
    /// [`Subscription::ack`]. `ConsumerBusy` if it is attached elsewhere or follows
    /// another pattern.
    pub async fn consume(
        &self,
        pattern: impl Into<Pattern>,
        name: &str,
        start: Option<Replay>,
    ) -> Result<Subscription, ClientError> {
        let (pattern, name) = (pattern.into(), name.to_owned());
        self.open_subscription(|req, sub| ClientFrame::Consume {
            req,
            sub,
            pattern,
            name,
            start,
        })
        .await
    }

    /// Tells the broker how the handler of consumer subscription `sub`'s message `seq`
    /// ended; a failure is retried, then dead-lettered.
    pub fn ack(&self, sub: u64, seq: u64, outcome: Result<(), String>) -> Result<(), ClientError> {
        let frame = ClientFrame::Ack { sub, seq, outcome };
        self.inner
            .outbound
            .push_regardless(&frame.encode())
            .map_err(|_| ClientError::NotConnected("the connection is closed".into()))
    }

    /// Tells the shell the state of this app host's page. Only app hosts may.
    pub async fn report_status(&self, status: PageStatus) -> Result<(), ClientError> {
        self.call(|req| ClientFrame::ReportStatus { req, status })
            .await
            .map(drop)
    }

    /// Commands the shell sends this app host, from now on (a second call takes them
    /// over from the first).
    pub fn host_commands(&self) -> mpsc::UnboundedReceiver<HostCommand> {
        let (tx, rx) = mpsc::unbounded_channel();
        *lock(&self.inner.commands) = Some(tx);
        rx
    }

    /// Tells the shell where this app host's window is now. Only app hosts may.
    pub async fn report_window(
        &self,
        bounds: weft_proto::launch::WindowBounds,
    ) -> Result<(), ClientError> {
        self.call(|req| ClientFrame::ReportWindow { req, bounds })
            .await
            .map(drop)
    }

    /// Answers the shell's snapshot request `request`. Only app hosts may.
    pub async fn report_saved(
        &self,
        request: u64,
        saved: weft_proto::launch::SavedApp,
    ) -> Result<(), ClientError> {
        self.call(|req| ClientFrame::ReportSaved {
            req,
            request,
            saved,
        })
        .await
        .map(drop)
    }

    /// Reports what the page tried and was refused, for the audit log. Only app hosts
    /// may.
    pub async fn report_violation(
        &self,
        violation: weft_proto::frame::PageViolation,
        unreported: u64,
    ) -> Result<(), ClientError> {
        self.call(|req| ClientFrame::ReportViolation {
            req,
            violation,
            unreported,
        })
        .await
        .map(drop)
    }

    /// Sends a command to the shell. Only command-line clients may.
    pub async fn control(&self, request: ControlRequest) -> Result<ControlReply, ClientError> {
        match self
            .call(|req| ClientFrame::Control { req, request })
            .await?
        {
            Reply::Control(reply) => Ok(reply),
            _ => Err(ClientError::Protocol("expected a control reply".into())),
        }
    }

    /// Waits until the connection has ended and returns why.
    pub async fn closed(&self) -> String {
        let mut rx = self.inner.closed.subscribe();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return "the client was dropped".into();
            }
        }
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.borrow().is_some()
    }

    /// Sends a request and waits for its `Response`, giving up after `timeout`.
    async fn call_for_response(
        &self,
        timeout: Duration,
        make: impl FnOnce(u64) -> ClientFrame,
    ) -> Result<Delivery, ClientError> {
        match self.call_with_timeout(timeout, make).await? {
            Reply::Response(d) => Ok(d),
            _ => Err(ClientError::Protocol("expected a response".into())),
        }
    }

    /// Sends a request and waits for the answer, giving up after `timeout` and telling
    /// the broker, which then forgets the call.
    async fn call_with_timeout(
        &self,
        timeout: Duration,
        make: impl FnOnce(u64) -> ClientFrame,
    ) -> Answer {
        let req = self.inner.next_req.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout(timeout, self.call_as(req, make)).await {
            Ok(answer) => answer,
            Err(_) => {
                lock(&self.inner.pending).remove(&req);
                let cancel = ClientFrame::Cancel { target: req };
                // Closed means the connection is gone, and the frame with it.
                let _ = self.inner.outbound.push_regardless(&cancel.encode());
                Err(ClientError::Timeout(timeout))
            }
        }
    }

    async fn call(&self, make: impl FnOnce(u64) -> ClientFrame) -> Answer {
        let req = self.inner.next_req.fetch_add(1, Ordering::Relaxed);
        self.call_as(req, make).await
    }

    async fn call_as(&self, req: u64, make: impl FnOnce(u64) -> ClientFrame) -> Answer {
        if let Some(reason) = self.inner.closed.borrow().clone() {
            return Err(ClientError::NotConnected(reason));
        }
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.pending).insert(req, tx);
        if let Err(e) = self.inner.send(&make(req).encode()).await {
            lock(&self.inner.pending).remove(&req);
            return Err(e);
        }
        match rx.await {
            Ok(answer) => answer,
            Err(_) => Err(ClientError::NotConnected(
                self.inner
                    .closed
                    .borrow()
                    .clone()
                    .unwrap_or_else(|| "the connection is closed".into()),
            )),
        }
    }
}

impl Subscription {
    /// The id of this subscription on its connection.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The next message, or `None` once the connection has closed.
    pub async fn next(&mut self) -> Option<Delivery> {
        self.deliveries.recv().await
    }

    /// The next message if one has already arrived, without waiting.
    pub fn try_next(&mut self) -> Option<Delivery> {
        self.deliveries.try_recv()
    }

    /// For a durable consumer's message: its handler is done (`Ok`) or failed.
    pub fn ack(&self, message: &Delivery, outcome: Result<(), String>) -> Result<(), ClientError> {
        self.client
            .ack(self.id, message.seq.unwrap_or_default(), outcome)
    }

    /// Ends the subscription and waits for the broker to confirm.
    pub async fn unsubscribe(mut self) -> Result<(), ClientError> {
        let id = self.id;
        lock(&self.client.inner.subs).remove(&id);
        self.deliveries.close();
        self.ended = true;
        self.client
            .call(|req| ClientFrame::Unsubscribe { req, sub: id })
            .await
            .map(drop)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        lock(&self.client.inner.subs).remove(&self.id);
        let frame = ClientFrame::Unsubscribe {
            req: 0,
            sub: self.id,
        };
        // Closed means the connection is gone, and the frame with it.
        let _ = self.client.inner.outbound.push_regardless(&frame.encode());
    }
}

/// One call of an action of a service this client provides.
#[derive(Debug)]
pub struct Invocation {
    /// Answer with [`Client::respond`] (or [`Provider::respond`]) and this id.
    pub call: u64,
    /// The action called.
    pub action: String,
    /// The argument, its caller as `sender`.
    pub message: Delivery,
}

/// A service this client provides: a stream of invocations.
pub struct Provider {
    service: Topic,
    invocations: mpsc::Receiver<Invocation>,
    client: Client,
    withdrawn: bool,
}

impl Provider {
    /// The next invocation, or `None` once the connection has closed.
    pub async fn next(&mut self) -> Option<Invocation> {
        self.invocations.recv().await
    }

    /// Answers an invocation.
    pub async fn respond(
        &self,
        call: u64,
        outcome: Result<Bytes, RemoteError>,
    ) -> Result<(), ClientError> {
        self.client.respond(call, outcome).await
    }

    /// Stops providing the service; its clients are told.
    pub async fn withdraw(mut self) -> Result<(), ClientError> {
        self.withdrawn = true;
        lock(&self.client.inner.provided).remove(&self.service);
        let service = self.service.clone();
        self.client
            .call(|req| ClientFrame::Withdraw { req, service })
            .await
            .map(drop)
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        if self.withdrawn {
            return;
        }
        lock(&self.client.inner.provided).remove(&self.service);
        let frame = ClientFrame::Withdraw {
            req: 0,
            service: self.service.clone(),
        };
        // Closed means the connection is gone, and the frame with it.
        let _ = self.client.inner.outbound.push_regardless(&frame.encode());
    }
}

/// A connection to an RPC service.
pub struct ServiceClient {
    service: Topic,
    client: Client,
    gone: watch::Receiver<bool>,
}

impl ServiceClient {
    /// Calls `action` with `payload` and waits up to `timeout` for the result.
    /// Errors: `NoProvider`, `NoSuchAction`, `HandlerError` (with the provider's
    /// message), `ProviderGone`, `Timeout`.
    pub async fn dispatch(
        &self,
        action: &str,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Delivery, ClientError> {
        self.dispatch_with(action, payload, timeout, Headers::new())
            .await
    }

    /// [`ServiceClient::dispatch`] with headers.
    pub async fn dispatch_with(
        &self,
        action: &str,
        payload: impl Into<Bytes>,
        timeout: Duration,
        headers: Headers,
    ) -> Result<Delivery, ClientError> {
        let payload = payload.into();
        self.client
            .call_for_response(timeout, |req| ClientFrame::Dispatch {
                req,
                service: self.service.clone(),
                action: action.to_owned(),
                payload,
                headers,
            })
            .await
    }

    /// Whether the provider has gone away since this client connected.
    pub fn is_gone(&self) -> bool {
        *self.gone.borrow()
    }

    /// Waits until the provider goes away.
    pub async fn gone(&self) {
        let mut flag = self.gone.clone();
        let _ = flag.wait_for(|gone| *gone).await;
    }
}

impl Inner {
    /// Queues a whole frame, waiting while the outbound queue is full.
    async fn send(&self, body: &[u8]) -> Result<(), ClientError> {
        self.outbound
            .push_frame_waiting(body.len(), |buf| buf.put_slice(body))
            .await
            .map_err(refused)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The writer sends what is queued, then shuts the socket down.
        self.outbound.close();
    }
}

/// Why the outbound queue did not take a frame, as the caller sees it.
fn refused(why: Refused) -> ClientError {
    match why {
        Refused::Full => ClientError::Broker {
            code: ErrorCode::Backpressure,
            message: "this client's outbound queue is full".into(),
        },
        Refused::Closed => not_connected(),
        Refused::TooLarge => ClientError::Protocol("the message is larger than 4 GiB".into()),
    }
}

fn not_connected() -> ClientError {
    ClientError::NotConnected("the connection is closed".into())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn framed(body: &[u8]) -> BytesMut {
    let mut buf = BytesMut::with_capacity(4 + body.len());
    put_frame(&mut buf, body);
    buf
}

fn put_frame(buf: &mut BytesMut, body: &[u8]) {
    buf.put_u32(body.len() as u32);
    buf.put_slice(body);
}

async fn read_loop(
    inner: std::sync::Weak<Inner>,
    mut reader: FrameReader<tokio::net::unix::OwnedReadHalf>,
) {
    let mut deliveries = DeliveryReader::default();
    // Messages read for one subscription, handed to it together: when the next message
    // is for another subscription, another kind of frame comes, or nothing more is
    // buffered. Handing over the ones before any other frame keeps the order in which
    // the broker sent them.
    let mut staged = Staged::default();
    let reason = loop {
        let body = match reader.next_owned().await {
            Ok(None) => break "the broker closed the connection".to_owned(),
            Err(e) => break format!("reading from the broker failed: {e}"),
            Ok(Some(body)) => body,
        };
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if let Some((sub, message)) = deliveries.read(&body) {
            if staged.sub != Some(sub) {
                staged.hand_over().await;
                staged.target(sub, lock(&inner.subs).get(&sub).cloned());
            }
            staged.push(message);
            if !reader.has_buffered_frame() || staged.is_full() {
                staged.hand_over().await;
            }
            continue;
        }
        staged.hand_over().await;
        let frame = match ServerFrame::decode(&body) {
            Ok(frame) => frame,
            Err(e) => break format!("the broker sent a malformed frame: {e}"),
        };
        match frame {
            ServerFrame::Ok { req } => answer(&inner, req, Ok(Reply::Done)),
            ServerFrame::ControlReply { req, reply } => {
                answer(&inner, req, Ok(Reply::Control(reply)))
            }
            ServerFrame::Response { req, message } => {
                answer(&inner, req, Ok(Reply::Response(message)))
            }
            ServerFrame::Invoke {
                call,
                service,
                action,
                message,
            } => {
                let sink = lock(&inner.provided).get(&service).cloned();
                match sink {
                    Some(sink) => {
                        let _ = sink
                            .send(Invocation {
                                call,
                                action,
                                message,
                            })
                            .await;
                    }
                    None => {
                        // Withdrawn meanwhile: tell the caller rather than leave it waiting.
                        let outcome = Err(RemoteError {
                            code: ErrorCode::HandlerError,
                            message: format!("{service} is no longer provided here"),
                        });
                        let frame = ClientFrame::Respond {
                            req: 0,
                            call,
                            outcome,
                        };
                        // Closed means the connection is gone, and the frame with it.
                        let _ = inner.outbound.push_regardless(&frame.encode());
                    }
                }
            }
            ServerFrame::ServiceGone { service } => {
                if let Some(flag) = lock(&inner.services).remove(&service) {
                    flag.send_replace(true);
                }
            }
            ServerFrame::Error { req, code, message } => {
                answer(&inner, req, Err(ClientError::Broker { code, message }))
            }
            ServerFrame::Deliver { sub, message } => {
                staged.target(sub, lock(&inner.subs).get(&sub).cloned());
                staged.push(message);
                staged.hand_over().await;
            }
            ServerFrame::Closing { reason } => {
                break format!("the broker closed the connection: {reason}");
            }
            ServerFrame::Command { command } => {
                let sink = lock(&inner.commands).clone();
                match sink {
                    Some(sink) => {
                        let _ = sink.send(command);
                    }
                    None => {
                        tracing::warn!("a command from the shell nobody listens for: {command:?}")
                    }
                }
            }
        }
    };
    if let Some(inner) = inner.upgrade() {
        tracing::debug!("bus connection ended: {reason}");
        inner.closed.send_replace(Some(reason.clone()));
        for (_, sink) in lock(&inner.subs).drain() {
            sink.close();
        }
        lock(&inner.provided).clear();
        for (_, flag) in lock(&inner.services).drain() {
            flag.send_replace(true);
        }
        for (_, waiter) in lock(&inner.pending).drain() {
            let _ = waiter.send(Err(ClientError::NotConnected(reason.clone())));
        }
    }
}

/// Deliveries read off the socket for one subscription and not yet in its inbox.
#[derive(Default)]
struct Staged {
    /// The subscription they are for.
    sub: Option<u64>,
    /// Its inbox, if it still exists.
    sink: Option<InboxSender<Delivery>>,
    messages: VecDeque<Delivery>,
}

impl Staged {
    /// Most messages staged before they are handed over.
    const MAX: usize = 256;

    /// Stages messages for `sub` from now on (after [`Staged::hand_over`]).
    fn target(&mut self, sub: u64, sink: Option<InboxSender<Delivery>>) {
        debug_assert!(self.messages.is_empty());
        self.sub = Some(sub);
        self.sink = sink;
    }

    fn push(&mut self, message: Delivery) {
        // Messages for a subscription that is gone are dropped.
        if self.sink.is_some() {
            self.messages.push_back(message);
        }
    }

    fn is_full(&self) -> bool {
        self.messages.len() >= Self::MAX
    }

    /// Moves the staged messages into the inbox. Waiting here is the backpressure: a
    /// consumer that does not keep up stops this reader, and the broker's queue for us
    /// fills instead.
    async fn hand_over(&mut self) {
        if self.messages.is_empty() {
            return;
        }
        let Some(sink) = &self.sink else {
            return;
        };
        if sink.send_all(&mut self.messages).await.is_err() {
            // Unsubscribed meanwhile.
            self.messages.clear();
            self.sink = None;
        }
    }
}

fn answer(inner: &Inner, req: u64, result: Answer) {
    if let Some(waiter) = lock(&inner.pending).remove(&req) {
        let _ = waiter.send(result);
    } else if let Err(e) = result {
        // An error for a fire-and-forget frame (request id 0): nobody waits for it.
        tracing::warn!("the broker refused a message sent without waiting: {e}");
    }
}
