//! The host's side of the bus: carries the page's requests to the broker and the
//! broker's messages to the page. Runs on its own thread with a Tokio runtime; talks to
//! the window thread only through channels and the event-loop proxy.

use std::{collections::HashMap, sync::Arc, time::Duration};

use bytes::Bytes;

use tokio::{sync::mpsc, task::JoinHandle};
use weft_client::{Client, ClientError, ServiceClient};
use weft_proto::{
    Pattern, Topic,
    frame::{Delivery, HostCommand, IdentityFilter, PageStatus, PageViolation},
    headers::Headers,
    launch::{LaunchSpec, WindowBounds},
    trace_context::{MessageTrace, TraceParent},
};

use crate::{
    channel_bar::ShownChannel,
    console_log::ConsoleLog,
    page_gate::{PageRequest, WindowOp},
    page_probe::{self, PageProbe},
    page_queue::{InFlight, PageBacklog, PageQueue, PageQueueReceiver, page_queue},
    page_script::{ToPage, batch_script},
    per_second::PerSecond,
    snapshot::PendingSaves,
    window::HostEvent,
};

/// Most items in one script sent to the page.
const MAX_BATCH: usize = 256;

/// What the window thread tells the bus side.
pub enum FromWindow {
    /// An accepted page request.
    Page(PageRequest),
    /// A new page load started: the old page's subscriptions end.
    PageStarted,
    /// The user moved or resized the window.
    Window(WindowBounds),
    /// The user asked to change the app's FDC3 user channel.
    ChooseChannel,
    /// The page tried something and was refused: reported for the audit log.
    Violation(PageViolation),
    /// The window thread's part of snapshot request `request`: the page is being asked
    /// for its state.
    SaveStarted {
        /// The request.
        request: u64,
        /// The page shown.
        url: String,
        /// The window.
        window: Option<weft_proto::launch::SavedWindow>,
    },
    /// The page ran probe `id` (see [`crate::page_probe`]); the window was `visible`.
    ProbeAnswered {
        /// The probe.
        id: u64,
        /// Whether the window was shown and not minimised.
        visible: bool,
    },
}

/// Somewhere to send events for the window thread.
pub trait WindowSink: Send + Sync + 'static {
    /// Delivers `event` to the window thread; false once that thread is gone.
    fn send(&self, event: HostEvent) -> bool;
}

/// Connects and serves until the connection ends or the window thread hangs up.
pub async fn run(
    spec: LaunchSpec,
    mut from_window: mpsc::UnboundedReceiver<FromWindow>,
    window: impl WindowSink,
    in_flight: Arc<InFlight>,
    backlog: Arc<PageBacklog>,
) {
    let token = match spec.token() {
        Ok(t) => t,
        Err(e) => {
            window.send(HostEvent::Exit {
                code: 2,
                reason: e.to_string(),
            });
            return;
        }
    };
    let client = match Client::connect(&spec.socket, &token).await {
        Ok(c) => c,
        Err(e) => {
            window.send(HostEvent::Exit {
                code: 2,
                reason: format!("cannot connect to the bus: {e}"),
            });
            return;
        }
    };
    tracing::info!(identity = %client.identity(), "connected to the bus");

    let (to_page, to_page_rx) = page_queue();
    let window = Arc::new(window);
    tokio::spawn(flush_to_page(to_page_rx, window.clone(), in_flight));
    let fdc3 = match forward_fdc3(&client, to_page.clone(), window.clone()).await {
        Ok(task) => task,
        Err(e) => {
            window.send(HostEvent::Exit {
                code: 2,
                reason: format!("cannot listen to the FDC3 agent: {e}"),
            });
            return;
        }
    };
    let _fdc3 = AbortOnDrop(fdc3);

    let mut session = Session {
        client: client.clone(),
        to_page,
        subs: HashMap::new(),
        consumers: HashMap::new(),
        provided: HashMap::new(),
        services: HashMap::new(),
        platform_services: HashMap::new(),
        violations: PerSecond::new(VIOLATIONS_PER_SECOND, std::time::Instant::now()),
        hello: false,
        loaded: false,
        probe: PageProbe::default(),
        visible: true,
        console: ConsoleLog::new(std::time::Instant::now()),
        saves: PendingSaves::default(),
    };
    let mut commands = client.host_commands();
    let mut ticks = tokio::time::interval(page_probe::CHECK_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heartbeat = 0u8;
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                session.probe(window.as_ref());
                for (request, saved) in session.saves.expired(std::time::Instant::now()) {
                    tracing::warn!("the page did not answer the snapshot in time; saved without its state");
                    session.report_saved(request, saved);
                }
                // Every eighth tick (each second), a heartbeat: the shell notices a host
                // gone silent.
                heartbeat = (heartbeat + 1) % 8;
                if heartbeat == 0 {
                    session.report(session.status()).await;
                }
            }
            Some(command) = commands.recv() => match command {
                HostCommand::OpenInspector => {
                    window.send(HostEvent::OpenInspector);
                }
                HostCommand::Window(action) => {
                    window.send(HostEvent::Window { id: None, op: WindowOp::Do(action) });
                }
                HostCommand::Save { request } => {
                    window.send(HostEvent::Save { request });
                }
            },
            msg = from_window.recv() => match msg {
                Some(msg) => {
                    if matches!(&msg, FromWindow::Page(req) if req.takes_backlog_place()) {
                        backlog.release();
                    }
                    session.handle(msg, window.as_ref()).await;
                }
                None => return,
            },
            reason = client.closed() => {
                window.send(HostEvent::Exit { code: 3, reason: format!("the bus connection ended: {reason}") });
                return;
            }
        }
    }
}

type PageResult = Result<(), (&'static str, String)>;

/// The FDC3 message saying a page is gone.
const GOODBYE: &str = r#"{"type":"WCP6Goodbye","meta":{}}"#;

/// Aborts its task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where this instance's FDC3 messages go: the agent, on its reserved topic.
fn fdc3_agent() -> (IdentityFilter, Topic) {
    (
        IdentityFilter {
            app_id: weft_proto::FDC3_AGENT_APP_ID.into(),
            instance_id: None,
        },
        Topic::new(weft_proto::FDC3_TOPIC).expect("the FDC3 topic is valid"),
    )
}

/// Hands the FDC3 agent's messages to the page, for the life of the connection, but
/// for those about the app's user channel, which go to the window's channel strip.
/// Only messages the broker stamps as the agent's are taken.
async fn forward_fdc3(
    client: &Client,
    to_page: PageQueue,
    window: Arc<impl WindowSink>,
) -> Result<JoinHandle<()>, ClientError> {
    let (agent, topic) = fdc3_agent();
    let pattern = Pattern::new(topic.as_str()).expect("a topic is a pattern");
    let mut from_agent = client.subscribe_from(pattern, Some(agent)).await?;
    Ok(tokio::spawn(async move {
        while let Some(d) = from_agent.next().await {
            if let Some(channel) = ShownChannel::from_message(&d.payload) {
                window.send(HostEvent::UserChannel(channel));
                continue;
            }
            let Some(message) = ToPage::fdc3(&d.payload) else {
                tracing::warn!("the FDC3 agent sent something that is not a JSON object");
                continue;
            };
            if !to_page.send_message(message) {
                break;
            }
        }
    }))
}

/// A message a page sends, checked: its topic, and its trace headers (see
/// [`trace_headers`]).
fn outgoing(
    topic: String,
    trace: Option<String>,
) -> Result<(Topic, Headers), (&'static str, String)> {
    let topic = Topic::new(topic).map_err(|e| ("InvalidTopic", e.to_string()))?;
    Ok((topic, trace_headers(trace)?))
}

/// The trace headers of a message a page sends: a child of the message that caused it
/// (`cause`, the `traceparent` the bridge passes while a handler runs, or one the page
/// gives), or the start of a new trace. Every message from a page is traced.
fn trace_headers(cause: Option<String>) -> Result<Headers, (&'static str, String)> {
    let cause = match cause {
        Some(tp) => Some(TraceParent::parse(&tp).map_err(|e| ("InvalidArgument", e.to_string()))?),
        None => None,
    };
    Ok(MessageTrace::caused_by(cause.as_ref()).headers())
}

/// What the current page has open on the bus. Everything is dropped when a new page
/// load starts: subscriptions end, provided services are withdrawn.
struct Session {
    client: Client,
    to_page: PageQueue,
    /// Page subscription id → the task forwarding its messages.
    subs: HashMap<u64, JoinHandle<()>>,
    /// Page subscription id → the bus subscription id, for durable consumers (whose
    /// messages the page acknowledges).
    consumers: HashMap<u64, u64>,
    /// Provided service → the task forwarding its invocations (owning the provider).
    provided: HashMap<String, JoinHandle<()>>,
    /// Connected service → the client and the task watching for its provider leaving.
    services: HashMap<String, (Arc<ServiceClient>, JoinHandle<()>)>,
    /// The shell's services behind the sensitive APIs, once connected, by name.
    platform_services: HashMap<&'static str, Arc<ServiceClient>>,
    /// Reports of what the page was refused, at most [`VIOLATIONS_PER_SECOND`].
    violations: PerSecond,
    hello: bool,
    loaded: bool,
    probe: PageProbe,
    /// Whether the window showed when the page last answered a probe.
    visible: bool,
    console: ConsoleLog,
    /// Snapshot requests waiting for the page's state.
    saves: PendingSaves,
}

impl Session {
    /// What the shell is told about the page.
    fn status(&self) -> PageStatus {
        match (self.loaded, self.probe.responding()) {
            (false, _) => PageStatus::Loading,
            (true, true) => PageStatus::Ready,
            (true, false) => PageStatus::NotResponding,
        }
    }

    /// Answers the shell's snapshot request, off the loop (the broker acknowledges).
    fn report_saved(&self, request: u64, saved: weft_proto::launch::SavedApp) {
        let client = self.client.clone();
        tokio::spawn(async move {
            if let Err(e) = client.report_saved(request, saved).await {
                tracing::warn!("cannot answer the snapshot request: {e}");
            }
        });
    }

    /// Probes a loaded page, and reports it once it stops answering.
    fn probe(&mut self, window: &impl WindowSink) {
        if !self.loaded {
            return;
        }
        let tick = self.probe.tick(std::time::Instant::now(), self.visible);
        if let Some(id) = tick.send {
            window.send(HostEvent::Probe { id });
        }
        if tick.hung {
            tracing::warn!("the page is not responding");
            let client = self.client.clone();
            tokio::spawn(async move {
                let _ = client.report_status(PageStatus::NotResponding).await;
            });
        }
    }

    async fn handle(&mut self, msg: FromWindow, window: &impl WindowSink) {
        let request = match msg {
            FromWindow::PageStarted => {
                if self.hello {
                    // The page that talked to the agent is gone with its listeners.
                    self.to_fdc3_agent(GOODBYE.into()).await;
                }
                self.reset();
                if self.hello || self.loaded {
                    self.hello = false;
                    self.loaded = false;
                    self.report(PageStatus::Loading).await;
                }
                return;
            }
            FromWindow::SaveStarted {
                request,
                url,
                window,
            } => {
                self.saves
                    .started(request, url, window, std::time::Instant::now());
                return;
            }
            FromWindow::ProbeAnswered { id, visible } => {
                self.visible = visible;
                if self.probe.answered(id, std::time::Instant::now()) {
                    tracing::info!("the page is responding again");
                    self.report(PageStatus::Ready).await;
                }
                return;
            }
            FromWindow::Violation(violation) => {
                if let Some(unreported) = self.violations.admit(std::time::Instant::now()) {
                    let client = self.client.clone();
                    tokio::spawn(async move {
                        if let Err(e) = client.report_violation(violation, unreported).await {
                            tracing::warn!("cannot report what the page was refused: {e}");
                        }
                    });
                }
                return;
            }
            FromWindow::ChooseChannel => {
                let choose = serde_json::json!({
                    "type": weft_proto::FDC3_CHOOSE_CHANNEL_TYPE,
                    "meta": {},
                });
                self.to_fdc3_agent(choose.to_string()).await;
                return;
            }
            FromWindow::Window(bounds) => {
                if let Err(e) = self.client.report_window(bounds).await {
                    tracing::warn!("cannot tell the shell where the window is: {e}");
                }
                return;
            }
            FromWindow::Page(request) => request,
        };
        match request {
            PageRequest::Console { level, text } => {
                self.console.record(std::time::Instant::now(), level, &text);
            }
            PageRequest::Hello => self.hello = true,
            PageRequest::Fdc3 { message } => self.to_fdc3_agent(message).await,
            // The window thread answers at once.
            PageRequest::Window { id, op } => {
                window.send(HostEvent::Window { id: Some(id), op });
            }
            PageRequest::Saved {
                request,
                state,
                error,
            } => {
                if let Some(saved) = self.saves.answered(request, state, error) {
                    self.report_saved(request, saved);
                }
            }
            PageRequest::Close => {
                // The agent drops the page's listeners and tells its private channels
                // at once, rather than when the connection ends.
                self.to_fdc3_agent(GOODBYE.into()).await;
                window.send(HostEvent::Exit {
                    code: 0,
                    reason: "the page closed its window".into(),
                });
            }
            PageRequest::Ready => {
                if self.hello && !self.loaded {
                    self.loaded = true;
                    self.report(PageStatus::Ready).await;
                }
            }
            PageRequest::Publish {
                id,
                topic,
                data,
                trace,
                ttl_ms,
            } => {
                let result = match outgoing(topic, trace) {
                    Ok((topic, mut headers)) => {
                        if let Some(ttl) = ttl_ms {
                            headers.push((weft_proto::headers::TTL_MS.into(), ttl.to_string()));
                        }
                        self.client
                            .publish_with(&topic, data, headers)
                            .await
                            .map_err(client_error)
                    }
                    Err(e) => Err(e),
                };
                self.answer(id, result);
            }
            PageRequest::Send {
                id,
                to,
                topic,
                data,
                trace,
            } => {
                let result = match outgoing(topic, trace) {
                    Ok((topic, headers)) => self
                        .client
                        .send_with(&to, &topic, data, headers)
                        .await
                        .map_err(client_error),
                    Err(e) => Err(e),
                };
                self.answer(id, result);
            }
            PageRequest::Subscribe {
                id,
                sub,
                topic,
                from,
                replay,
                durable,
            } => {
                let result = match durable {
                    None => self.subscribe(sub, topic, from, replay).await,
                    Some(name) => self.consume(sub, topic, &name, replay).await,
                };
                self.answer(id, result);
            }
            PageRequest::Ack { sub, seq, error } => {
                if let Some(&bus_sub) = self.consumers.get(&sub) {
                    let outcome = error.map_or(Ok(()), Err);
                    if let Err(e) = self.client.ack(bus_sub, seq, outcome) {
                        tracing::warn!(seq, "the page's acknowledgement was not sent: {e}");
                    }
                }
            }
            PageRequest::Unsubscribe { id, sub } => {
                self.consumers.remove(&sub);
                let result = match self.subs.remove(&sub) {
                    Some(task) => {
                        task.abort();
                        Ok(())
                    }
                    None => Err(("UnknownSubscription", format!("no subscription {sub}"))),
                };
                self.answer(id, result);
            }
            PageRequest::Request {
                id,
                topic,
                data,
                timeout_ms,
                trace,
            } => {
                let (topic, headers) = match outgoing(topic, trace) {
                    Ok(checked) => checked,
                    Err(e) => return self.answer(id, Err(e)),
                };
                // Answers take time; the page's other calls must not wait behind them.
                let client = self.client.clone();
                let to_page = self.to_page.clone();
                tokio::spawn(async move {
                    let answer = client
                        .request_with(&topic, data, Duration::from_millis(timeout_ms), headers)
                        .await;
                    let _ = to_page.send(reply_item(id, answer));
                });
            }
            PageRequest::Respond { call, outcome } => {
                let outcome = outcome.map(Bytes::from);
                if let Err(e) = self.client.respond(call, outcome).await {
                    tracing::warn!(call, "the page's answer was refused: {e}");
                }
            }
            PageRequest::Provide { id, service } => {
                let result = self.provide(service).await;
                self.answer(id, result);
            }
            PageRequest::Withdraw { id, service } => {
                let result = match self.provided.remove(&service) {
                    // Dropping the provider (with its task) withdraws the service.
                    Some(task) => {
                        task.abort();
                        Ok(())
                    }
                    None => Err((
                        "NoProvider",
                        format!("this page does not provide {service}"),
                    )),
                };
                self.answer(id, result);
            }
            PageRequest::Connect {
                id,
                service,
                wait_ms,
            } => {
                let result = self.connect(service, wait_ms).await;
                self.answer(id, result);
            }
            PageRequest::SecureStorage {
                id,
                action,
                key,
                value,
            } => {
                let service = match self
                    .platform_service(weft_proto::SECURE_STORAGE_SERVICE)
                    .await
                {
                    Ok(service) => service,
                    Err(e) => return self.answer(id, Err(client_error(e))),
                };
                let args = secure_storage_args(key.as_deref(), value.as_deref());
                let to_page = self.to_page.clone();
                tokio::spawn(async move {
                    let answer = service
                        .dispatch(action.as_str(), args, PLATFORM_CALL_TIMEOUT)
                        .await;
                    let _ = to_page.send(platform_answer(id, answer, "StorageFailed"));
                });
            }
            PageRequest::Platform {
                id,
                service,
                action,
                args,
            } => {
                let service = match self.platform_service(service.topic()).await {
                    Ok(service) => service,
                    Err(e) => return self.answer(id, Err(client_error(e))),
                };
                let to_page = self.to_page.clone();
                tokio::spawn(async move {
                    let answer = service.dispatch(action, args, PLATFORM_CALL_TIMEOUT).await;
                    let _ = to_page.send(platform_answer(id, answer, "Unavailable"));
                });
            }
            PageRequest::Dispatch {
                id,
                service,
                action,
                data,
                timeout_ms,
                trace,
            } => {
                let headers = match trace_headers(trace) {
                    Ok(h) => h,
                    Err(e) => return self.answer(id, Err(e)),
                };
                let Some((svc, _)) = self.services.get(&service) else {
                    let message = format!("this page is not connected to {service}");
                    return self.answer(id, Err(("NoProvider", message)));
                };
                let svc = svc.clone();
                let to_page = self.to_page.clone();
                tokio::spawn(async move {
                    let answer = svc
                        .dispatch_with(&action, data, Duration::from_millis(timeout_ms), headers)
                        .await;
                    let _ = to_page.send(reply_item(id, answer));
                });
            }
        }
    }

    /// Ends everything the old page had open.
    /// Sends one of the page's FDC3 messages to the agent. There is nobody to tell
    /// when that fails (the proxy times out), so it is logged.
    async fn to_fdc3_agent(&self, message: String) {
        let (agent, topic) = fdc3_agent();
        if let Err(e) = self.client.send(&agent, &topic, message).await {
            tracing::warn!("an FDC3 message could not reach the agent: {e}");
        }
    }

    fn reset(&mut self) {
        self.probe.reset();
        for (_, task) in self.subs.drain() {
            task.abort();
        }
        for (_, task) in self.provided.drain() {
            task.abort();
        }
        for (_, (_, task)) in self.services.drain() {
            task.abort();
        }
    }

    async fn subscribe(
        &mut self,
        sub: u64,
        topic: String,
        from: Option<IdentityFilter>,
        replay: Option<weft_proto::frame::Replay>,
    ) -> PageResult {
        if self.subs.contains_key(&sub) {
            return Err((
                "DuplicateSubscription",
                format!("subscription {sub} exists"),
            ));
        }
        let pattern = Pattern::new(topic).map_err(|e| ("InvalidTopic", e.to_string()))?;
        let mut subscription = self
            .client
            .subscribe_with(pattern, from, replay)
            .await
            .map_err(client_error)?;
        let to_page = self.to_page.clone();
        let task = tokio::spawn(async move {
            while let Some(d) = subscription.next().await {
                if !to_page.send_message(ToPage::message(sub, &d)) {
                    break;
                }
            }
        });
        self.subs.insert(sub, task);
        Ok(())
    }

    /// Attaches page subscription `sub` to the durable consumer `name` of this app.
    async fn consume(
        &mut self,
        sub: u64,
        topic: String,
        name: &str,
        start: Option<weft_proto::frame::Replay>,
    ) -> PageResult {
        if self.subs.contains_key(&sub) {
            return Err((
                "DuplicateSubscription",
                format!("subscription {sub} exists"),
            ));
        }
        let pattern = Pattern::new(topic).map_err(|e| ("InvalidTopic", e.to_string()))?;
        let mut subscription = self
            .client
            .consume(pattern, name, start)
            .await
            .map_err(client_error)?;
        self.consumers.insert(sub, subscription.id());
        let to_page = self.to_page.clone();
        let task = tokio::spawn(async move {
            while let Some(d) = subscription.next().await {
                if !to_page.send_message(ToPage::consumed(sub, &d)) {
                    break;
                }
            }
        });
        self.subs.insert(sub, task);
        Ok(())
    }

    async fn provide(&mut self, service: String) -> PageResult {
        if self.provided.contains_key(&service) {
            return Err((
                "ServiceExists",
                format!("this page already provides {service}"),
            ));
        }
        let topic = Topic::new(service.clone()).map_err(|e| ("InvalidTopic", e.to_string()))?;
        let mut provider = self.client.provide(&topic).await.map_err(client_error)?;
        let to_page = self.to_page.clone();
        let name = service.clone();
        let task = tokio::spawn(async move {
            while let Some(inv) = provider.next().await {
                let item = ToPage::invoke(&name, inv.call, &inv.action, &inv.message);
                if !to_page.send(item) {
                    break;
                }
            }
        });
        self.provided.insert(service, task);
        Ok(())
    }

    async fn connect(&mut self, service: String, wait_ms: Option<u64>) -> PageResult {
        let topic = Topic::new(service.clone()).map_err(|e| ("InvalidTopic", e.to_string()))?;
        let wait = wait_ms.map(Duration::from_millis);
        let svc = self
            .client
            .connect_service(&topic, wait)
            .await
            .map_err(client_error)?;
        let svc = Arc::new(svc);
        let watcher = svc.clone();
        let to_page = self.to_page.clone();
        let name = service.clone();
        let task = tokio::spawn(async move {
            watcher.gone().await;
            let _ = to_page.send(ToPage::service_gone(&name));
        });
        if let Some((_, old)) = self.services.insert(service, (svc, task)) {
            old.abort();
        }
        Ok(())
    }

    /// The shell's secure storage service, connected on first use.
    /// The shell's service `name` behind a sensitive API, connected on first use.
    async fn platform_service(
        &mut self,
        name: &'static str,
    ) -> Result<Arc<ServiceClient>, ClientError> {
        if let Some(service) = self.platform_services.get(name)
            && !service.is_gone()
        {
            return Ok(service.clone());
        }
        let topic = Topic::new(name).expect("a valid service name");
        let service = Arc::new(
            self.client
                .connect_service(&topic, Some(Duration::from_secs(10)))
                .await?,
        );
        self.platform_services.insert(name, service.clone());
        Ok(service)
    }

    fn answer(&self, id: u64, result: PageResult) {
        let item = match result {
            Ok(()) => ToPage::ok(id),
            Err((code, message)) => ToPage::err(id, code, &message),
        };
        let _ = self.to_page.send(item);
    }

    async fn report(&self, status: PageStatus) {
        if let Err(e) = self.client.report_status(status).await {
            tracing::warn!("cannot report the page status: {e}");
        }
    }
}

/// Reports of refused page actions sent per second; the rest are counted in the next.
const VIOLATIONS_PER_SECOND: u32 = 10;

/// How long a call of a sensitive API may take: longer than the shell waits for the
/// user to answer a consent prompt, so that the page hears the shell's verdict.
const PLATFORM_CALL_TIMEOUT: Duration = Duration::from_secs(90);

/// The argument of a secure storage call: `{"key", "value"}`, the value as the page gave
/// it (JSON text the gate checked).
fn secure_storage_args(key: Option<&str>, value: Option<&str>) -> String {
    let value = value.and_then(|v| serde_json::from_str::<&serde_json::value::RawValue>(v).ok());
    serde_json::json!({ "key": key, "value": value }).to_string()
}

/// The page's answer to a call of the shell's services: the shell's `{"ok": value}` or
/// `{"error": {code, message}}`, or why the call did not reach it (`garbled` when the
/// shell's answer cannot be read).
fn platform_answer(id: u64, answer: Result<Delivery, ClientError>, garbled: &str) -> ToPage {
    #[derive(serde::Deserialize)]
    struct Failure {
        code: String,
        message: String,
    }
    type Answer<'a> = std::collections::BTreeMap<&'a str, &'a serde_json::value::RawValue>;
    let reply = match answer {
        Ok(reply) => reply,
        Err(e) => return ToPage::err(id, e.code(), &e.message()),
    };
    let answer = serde_json::from_slice::<Answer<'_>>(&reply.payload).unwrap_or_default();
    let failure = answer
        .get("error")
        .and_then(|e| serde_json::from_str::<Failure>(e.get()).ok());
    match (answer.get("ok"), failure) {
        (Some(value), None) => ToPage::value(id, value),
        (None, Some(f)) => ToPage::err(id, &f.code, &f.message),
        _ => ToPage::err(id, garbled, "the shell's answer was not understood"),
    }
}

/// The page's answer to a request or dispatch: `{data, meta}` of the reply, or the error.
fn reply_item(id: u64, answer: Result<Delivery, ClientError>) -> ToPage {
    match answer {
        Ok(reply) => ToPage::reply(id, &reply),
        Err(e) => ToPage::err(id, e.code(), &e.message()),
    }
}

fn client_error(e: ClientError) -> (&'static str, String) {
    (e.code(), e.message())
}

/// Sends everything queued for the page, one script per batch, while WebKit has
/// room for more (see [`crate::page_queue`]).
async fn flush_to_page(
    mut queue: PageQueueReceiver,
    window: Arc<impl WindowSink>,
    in_flight: Arc<InFlight>,
) {
    let mut batch = Vec::new();
    while let Some(first) = queue.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Some(item) => batch.push(item),
                None => break,
            }
        }
        if let Some(notice) = queue.dropped_notice() {
            batch.push(notice);
        }
        let script = batch_script(&batch);
        batch.clear();
        let len = script.len();
        let generation = in_flight.reserve(len).await;
        if !window.send(HostEvent::Eval {
            script,
            len,
            generation,
        }) {
            return;
        }
    }
}
