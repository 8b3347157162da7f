//! What the broker does with each frame of an authenticated connection.

use std::{sync::Arc, time::Instant};

use bytes::{BufMut, Bytes};
use tokio::sync::oneshot;
use weft_proto::{
    ClientFrame, ErrorCode, Identity, Pattern, ServerFrame, Topic,
    fast_path::{DeliveryParts, NO_HEADERS, PublishReader, PublishView},
    frame::{Delivery, IdentityFilter, RemoteError, Replay},
    headers::{self, Headers},
    trace_context::MessageTrace,
};
use weft_wire::{FrameQueue, Refused};

use crate::{
    BrokerEvent, ClientKind, DeferredWakes, MessageKind, Shared, TracedMessage,
    access::{BusAccess, BusAction, DenialReports, is_platform_service, is_platform_service_name},
    calls::{Connected, TooManyPending},
    connection::Reader,
    consumers::Attach,
    durable::{Append, DurableStream},
    lock, now_ms,
    replay::{ReplayJob, may_overlap},
    routes::SubError,
    stats::{Routed, Tally},
};

/// One authenticated connection, as the frame handlers see it.
pub(crate) struct Session<'a> {
    pub(crate) shared: &'a Shared,
    /// The same, for threads the session starts (replays).
    pub(crate) shared_arc: std::sync::Weak<Shared>,
    pub(crate) conn: u64,
    pub(crate) kind: ClientKind,
    pub(crate) identity: &'a Identity,
    /// What it may do on the bus.
    pub(crate) access: &'a BusAccess,
    /// Its refusals reported to the shell.
    pub(crate) denials: DenialReports,
    /// `identity`, shared by the messages it sends to durable streams.
    pub(crate) sender: Arc<Identity>,
    /// `identity` as encoded inside deliveries, for the publish fast path.
    pub(crate) sender_encoded: &'a [u8],
    pub(crate) outbound: &'a FrameQueue,
    /// Subscribers' writers to wake once the frames at hand are routed.
    pub(crate) wakes: DeferredWakes,
    /// What this connection routed since the end of its last burst.
    pub(crate) tally: Tally,
    /// Durable publishes of the burst at hand, stored at its end (one write per burst
    /// rather than per message).
    pub(crate) durable_burst: std::sync::Mutex<Vec<(Arc<DurableStream>, Append)>>,
}

/// Durable publishes held before they are handed over anyway.
const DURABLE_BURST: usize = 1024;

impl Session<'_> {
    /// Serves frames until the client leaves or misbehaves; returns why the loop ended.
    pub(crate) async fn read_loop(&self, reader: &mut Reader) -> String {
        // Where plain publishes are re-encoded as deliveries, reused for each.
        let mut scratch = Vec::new();
        let mut publishes = PublishReader::default();
        // The time stamped on the burst of frames at hand: read once per burst, since a
        // burst takes far less than the millisecond the stamp resolves.
        let mut burst_ms = None;
        loop {
            let body = match reader.next_frame().await {
                Ok(None) => return "the client disconnected".into(),
                Err(e) => return format!("unreadable frame: {e}"),
                Ok(Some(body)) => body,
            };
            let reply = match publishes.read(body) {
                Some(publish) if !self.access.may_publish(publish.topic) => {
                    Some(self.denied(publish.req, BusAction::Publish, publish.topic))
                }
                // Most frames are plain publishes: route them without decoding.
                Some(publish) => match self.shared.durable.stream_for(publish.topic) {
                    None => {
                        let ts_ms = *burst_ms.get_or_insert_with(now_ms);
                        Some(self.publish_fast(publish, ts_ms, &mut scratch))
                    }
                    Some(stream) => {
                        let (req, payload) = (publish.req, Bytes::copy_from_slice(publish.payload));
                        let topic = Topic::new(publish.topic).expect("the fast path checked it");
                        self.publish_durable(stream, req, topic, payload, Headers::new());
                        if lock(&self.durable_burst).len() >= DURABLE_BURST
                            && let Err(why) = self.hand_over_durable()
                        {
                            return why;
                        }
                        None
                    }
                },
                None => match ClientFrame::decode(body) {
                    Ok(frame) => {
                        // Nothing routed or stored waits behind a frame that may take
                        // its time.
                        if let Err(why) = self.hand_over_durable() {
                            return why;
                        }
                        self.wakes.wake_all();
                        let reply = self.handle(frame).await;
                        self.wakes.wake_all();
                        reply
                    }
                    Err(e) => return format!("Malformed: {e}"),
                },
            };
            // Request id 0 asks for no answer on success (fire-and-forget publishing);
            // errors are still reported.
            let wanted = !matches!(reply, Some(ServerFrame::Ok { req: 0 }));
            if let Some(reply) = reply
                && wanted
            {
                let body = reply.encode();
                let pushed = self
                    .outbound
                    .push_frame_deferred(body.len(), |buf| buf.put_slice(&body));
                match pushed {
                    Ok(true) => self.wakes.add(self.outbound),
                    Ok(false) => {}
                    Err(Refused::Full) => {
                        return "SlowConsumer: it does not read its own answers".into();
                    }
                    Err(Refused::Closed) => return "the writer stopped".into(),
                    Err(Refused::TooLarge) => return "an answer too large to send".into(),
                }
            }
            if !reader.has_buffered_frame() {
                if let Err(why) = self.hand_over_durable() {
                    return why;
                }
                // Counted before any answer goes out: whoever sees an acknowledgement
                // then sees its message in the broker's figures.
                self.tally.flush(&self.shared.stats);
                self.wakes.wake_all();
                burst_ms = None;
            }
        }
    }

    async fn handle(&self, frame: ClientFrame) -> Option<ServerFrame> {
        if let Some(refusal) = self.refuse(&frame) {
            return Some(refusal);
        }
        match frame {
            ClientFrame::Publish {
                req,
                topic,
                payload,
                headers,
            } => match self.shared.durable.stream_for(topic.as_str()) {
                None => Some(self.publish(req, topic, payload, headers, None)),
                Some(stream) => {
                    if let Err(e) = headers::validate(&headers) {
                        return Some(error(req, ErrorCode::InvalidHeaders, &e.to_string()));
                    }
                    self.publish_durable(stream, req, topic, payload, headers);
                    None
                }
            },
            ClientFrame::Send {
                req,
                to,
                topic,
                payload,
                headers,
            } => Some(self.publish(req, topic, payload, headers, Some(to))),
            ClientFrame::Subscribe {
                req,
                sub,
                pattern,
                from,
                replay,
            } => Some(self.subscribe(req, sub, pattern, from, replay)),
            ClientFrame::Unsubscribe { req, sub } => {
                if self.shared.consumers.detach(self.conn, sub) {
                    return Some(ServerFrame::Ok { req });
                }
                let result = lock(&self.shared.routes).unsubscribe(self.conn, sub);
                Some(sub_reply(req, sub, result))
            }
            ClientFrame::Consume {
                req,
                sub,
                pattern,
                name,
                start,
            } => Some(self.consume(req, sub, pattern, &name, start)),
            ClientFrame::Ack { sub, seq, outcome } => {
                self.shared.consumers.ack(self.conn, sub, seq, outcome);
                None
            }
            ClientFrame::Request {
                req,
                topic,
                payload,
                headers,
            } => self.request(req, topic, payload, headers),
            ClientFrame::Provide { req, service } => Some(self.provide(req, service)),
            ClientFrame::Withdraw { req, service } => {
                let gone = lock(&self.shared.calls).withdraw(self.conn, &service);
                match gone {
                    Some(gone) => {
                        self.shared.provider_gone(gone);
                        Some(ServerFrame::Ok { req })
                    }
                    None => Some(error(
                        req,
                        ErrorCode::NoProvider,
                        &format!("this connection does not provide {service}"),
                    )),
                }
            }
            ClientFrame::Connect { req, service, wait } => {
                let connected = lock(&self.shared.calls).connect(self.conn, req, &service, wait);
                match connected {
                    Connected::Now => Some(ServerFrame::Ok { req }),
                    Connected::Waiting => None,
                    Connected::NoProvider => Some(no_provider(req, &service)),
                }
            }
            ClientFrame::Dispatch {
                req,
                service,
                action,
                payload,
                headers,
            } => self.dispatch(req, service, action, payload, headers),
            ClientFrame::Respond { req, call, outcome } => Some(self.respond(req, call, outcome)),
            ClientFrame::Cancel { target } => {
                lock(&self.shared.calls).cancel(self.conn, target);
                None
            }
            ClientFrame::ReportStatus { req, status } => {
                if self.kind != ClientKind::App {
                    return Some(not_permitted(req, "only app hosts report page status"));
                }
                let event = BrokerEvent::PageStatus(self.identity.clone(), status);
                let _ = self.shared.events.send(event);
                Some(ServerFrame::Ok { req })
            }
            ClientFrame::ReportWindow { req, bounds } => {
                if self.kind != ClientKind::App {
                    return Some(not_permitted(req, "only app hosts report their window"));
                }
                let event = BrokerEvent::WindowMoved(self.identity.clone(), bounds);
                let _ = self.shared.events.send(event);
                Some(ServerFrame::Ok { req })
            }
            ClientFrame::ReportSaved {
                req,
                request,
                saved,
            } => {
                if self.kind != ClientKind::App {
                    return Some(not_permitted(req, "only app hosts report for a snapshot"));
                }
                let _ = self.shared.events.send(BrokerEvent::Saved {
                    identity: self.identity.clone(),
                    request,
                    saved,
                });
                Some(ServerFrame::Ok { req })
            }
            ClientFrame::ReportViolation {
                req,
                violation,
                unreported,
            } => {
                if self.kind != ClientKind::App {
                    return Some(not_permitted(req, "only app hosts report their page"));
                }
                let event = BrokerEvent::PageViolation {
                    identity: self.identity.clone(),
                    violation,
                    unreported,
                };
                let _ = self.shared.events.send(event);
                Some(ServerFrame::Ok { req })
            }
            ClientFrame::Control { req, request } => {
                if self.kind != ClientKind::Cli {
                    return Some(not_permitted(
                        req,
                        "only the command line controls the shell",
                    ));
                }
                let (reply, answer) = oneshot::channel();
                let event = BrokerEvent::Control {
                    from: self.identity.clone(),
                    request,
                    reply,
                };
                if self.shared.events.send(event).is_err() {
                    return Some(error(
                        req,
                        ErrorCode::ShuttingDown,
                        "the shell is not listening",
                    ));
                }
                Some(match answer.await {
                    Ok(Ok(reply)) => ServerFrame::ControlReply { req, reply },
                    Ok(Err(message)) => error(req, ErrorCode::ControlFailed, &message),
                    Err(_) => error(
                        req,
                        ErrorCode::ShuttingDown,
                        "the shell dropped the request",
                    ),
                })
            }
        }
    }

    /// The refusal of `frame`, if this connection's bus access does not allow it.
    fn refuse(&self, frame: &ClientFrame) -> Option<ServerFrame> {
        let (req, action, subject, allowed) = match frame {
            ClientFrame::Publish { req, topic, .. } | ClientFrame::Request { req, topic, .. } => (
                *req,
                BusAction::Publish,
                topic.as_str(),
                self.access.may_publish(topic.as_str()),
            ),
            ClientFrame::Send { req, to, topic, .. } => (
                *req,
                BusAction::Publish,
                topic.as_str(),
                is_platform_service(&to.app_id) || self.access.may_publish(topic.as_str()),
            ),
            // Messages only a platform service may send are that service's to check.
            ClientFrame::Subscribe {
                req, pattern, from, ..
            } => (
                *req,
                BusAction::Subscribe,
                pattern.as_str(),
                from.as_ref()
                    .is_some_and(|f| is_platform_service(&f.app_id))
                    || self.access.may_subscribe(pattern),
            ),
            ClientFrame::Consume { req, pattern, .. } => (
                *req,
                BusAction::Subscribe,
                pattern.as_str(),
                self.access.may_subscribe(pattern),
            ),
            ClientFrame::Provide { req, service } => (
                *req,
                BusAction::Provide,
                service.as_str(),
                match is_platform_service_name(service.as_str()) {
                    true => {
                        self.kind == ClientKind::App && is_platform_service(&self.identity.app_id)
                    }
                    false => self.access.may_subscribe(&service.into()),
                },
            ),
            ClientFrame::Connect { req, service, .. }
            | ClientFrame::Dispatch { req, service, .. } => (
                *req,
                BusAction::Call,
                service.as_str(),
                is_platform_service_name(service.as_str())
                    || self.access.may_publish(service.as_str()),
            ),
            _ => return None,
        };
        (!allowed).then(|| self.denied(req, action, subject))
    }

    /// Reports a refusal to the shell and answers it with `AccessDenied`.
    fn denied(&self, req: u64, action: BusAction, subject: &str) -> ServerFrame {
        self.denials
            .report(&self.shared.events, self.identity, action, subject);
        let message = format!(
            "{} may not {} {subject}: its permissions allow {} only {}",
            self.identity.app_id,
            action.as_str(),
            action.as_str(),
            self.access.patterns_for(action),
        );
        error(req, ErrorCode::AccessDenied, &message)
    }

    fn message(
        &self,
        topic: Topic,
        payload: Bytes,
        headers: Headers,
        reply_to: Option<u64>,
        direct: bool,
    ) -> Delivery {
        Delivery {
            id: self.shared.message_id(),
            ts_ms: now_ms(),
            topic,
            sender: Arc::new(self.identity.clone()),
            payload,
            headers,
            reply_to,
            direct,
            seq: None,
        }
    }

    /// Queues a publish for its durable stream, to be stored with the rest of the
    /// burst by [`Session::hand_over_durable`] and acknowledged once stored.
    fn publish_durable(
        &self,
        stream: Arc<DurableStream>,
        req: u64,
        topic: Topic,
        payload: Bytes,
        headers: Headers,
    ) {
        let append = Append {
            conn: self.conn,
            req,
            ts_ms: now_ms(),
            id: self.shared.message_id(),
            topic,
            sender: self.sender.clone(),
            headers,
            payload,
        };
        lock(&self.durable_burst).push((stream, append));
    }

    /// Stores the burst's durable publishes in their streams, in order. Errors go back
    /// to their publishers; `Err` if this connection cannot take them.
    fn hand_over_durable(&self) -> Result<(), String> {
        let burst = std::mem::take(&mut *lock(&self.durable_burst));
        let mut burst = burst.into_iter().peekable();
        while let Some((stream, first)) = burst.next() {
            let mut same = vec![first];
            while let Some((_, next)) = burst.next_if(|(s, _)| Arc::ptr_eq(s, &stream)) {
                same.push(next);
            }
            if let Err(errors) = stream.append(same) {
                for e in errors {
                    let body = e.encode();
                    if self
                        .outbound
                        .push_frame_deferred(body.len(), |buf| buf.put_slice(&body))
                        .is_err()
                    {
                        return Err("the writer stopped".into());
                    }
                }
                self.wakes.add(self.outbound);
            }
        }
        Ok(())
    }

    /// Registers a subscription; with a replay, starts replaying the durable streams
    /// its pattern may overlap.
    fn subscribe(
        &self,
        req: u64,
        sub: u64,
        pattern: Pattern,
        from: Option<IdentityFilter>,
        replay: Option<Replay>,
    ) -> ServerFrame {
        let streams: Vec<Arc<DurableStream>> = match replay {
            Some(_) => self
                .shared
                .durable
                .streams()
                .into_iter()
                .filter(|s| may_overlap(&pattern, &s.pattern))
                .collect(),
            None => vec![],
        };
        let replaying = streams.iter().map(|s| s.index).collect();
        let result = lock(&self.shared.routes).subscribe(
            self.conn,
            sub,
            pattern.clone(),
            from.clone(),
            replaying,
        );
        if result.is_ok()
            && let Some(replay) = replay
            && !streams.is_empty()
        {
            let Some(shared) = self.shared_arc.upgrade() else {
                return error(req, ErrorCode::ShuttingDown, "the broker is stopping");
            };
            let job = ReplayJob {
                shared,
                conn: self.conn,
                sub,
                pattern,
                from,
                replay,
                streams,
                queue: self.outbound.clone(),
                runtime: tokio::runtime::Handle::current(),
            };
            let started = std::thread::Builder::new()
                .name(format!("replay {}/{sub}", self.conn))
                .spawn(move || job.run());
            if let Err(e) = started {
                let _ = lock(&self.shared.routes).unsubscribe(self.conn, sub);
                return error(
                    req,
                    ErrorCode::ShuttingDown,
                    &format!("cannot start the replay: {e}"),
                );
            }
        }
        sub_reply(req, sub, result)
    }

    /// Attaches this connection's subscription `sub` to a durable consumer of its app.
    fn consume(
        &self,
        req: u64,
        sub: u64,
        pattern: Pattern,
        name: &str,
        start: Option<Replay>,
    ) -> ServerFrame {
        let Some(shared) = self.shared_arc.upgrade() else {
            return error(req, ErrorCode::ShuttingDown, "the broker is stopping");
        };
        let attach = Attach {
            app_id: &self.identity.app_id,
            name,
            pattern,
            start,
            conn: self.conn,
            sub,
            queue: self.outbound.clone(),
        };
        match self.shared.consumers.attach(&shared, attach) {
            Ok(()) => ServerFrame::Ok { req },
            Err(refusal) => error(req, refusal.code, &refusal.message),
        }
    }

    /// A publish without headers, routed from the frame's own bytes; `scratch` holds
    /// the delivery while it is copied to each subscriber's queue.
    fn publish_fast(
        &self,
        publish: PublishView<'_>,
        ts_ms: u64,
        scratch: &mut Vec<u8>,
    ) -> ServerFrame {
        let parts = DeliveryParts {
            id: self.shared.message_id(),
            ts_ms,
            topic: publish.topic,
            sender: self.sender_encoded,
            payload: publish.payload,
            headers: NO_HEADERS,
            reply_to: None,
            direct: false,
            seq: None,
        };
        parts.encode_into(scratch);
        self.timed(|| {
            self.shared
                .route_encoded(publish.topic, self.identity, None, scratch, &self.wakes)
        });
        ServerFrame::Ok { req: publish.req }
    }

    /// Routes a message with `route`, tallying how it fared and, for a sample of
    /// messages, how long routing took.
    fn timed(&self, route: impl FnOnce() -> Routed) -> Routed {
        let start = self.tally.time_next().then(Instant::now);
        let routed = route();
        let took = start.map(|s| s.elapsed());
        self.tally.record(&self.shared.stats, routed, took);
        routed
    }

    /// Tells the trace observer, if there is one, about a routed message that carries a
    /// trace context.
    fn traced(&self, kind: MessageKind, delivery: &Delivery, routed: Routed) {
        let Some(observer) = &self.shared.config.trace_observer else {
            return;
        };
        let Some(trace) = MessageTrace::from_headers(&delivery.headers) else {
            return;
        };
        observer.routed(&TracedMessage {
            trace,
            kind,
            topic: delivery.topic.as_str(),
            sender: self.identity,
            ts_ms: delivery.ts_ms,
            routed_ms: now_ms(),
            delivered: routed.delivered,
            dropped: routed.dropped,
        });
    }

    /// `Publish`, or `Send` when `to` is given.
    fn publish(
        &self,
        req: u64,
        topic: Topic,
        payload: Bytes,
        headers: Headers,
        to: Option<IdentityFilter>,
    ) -> ServerFrame {
        if let Err(e) = headers::validate(&headers) {
            return error(req, ErrorCode::InvalidHeaders, &e.to_string());
        }
        if let Some(to) = &to
            && !lock(&self.shared.routes).any_connected(to)
        {
            return error(req, ErrorCode::TargetGone, &no_such_target(to));
        }
        let direct = to.is_some();
        let delivery = self.message(topic, payload, headers, None, direct);
        let routed = self.timed(|| self.shared.route(&delivery, to.as_ref(), &self.wakes));
        let kind = if direct {
            MessageKind::Send
        } else {
            MessageKind::Publish
        };
        self.traced(kind, &delivery, routed);
        ServerFrame::Ok { req }
    }

    fn request(
        &self,
        req: u64,
        topic: Topic,
        payload: Bytes,
        headers: Headers,
    ) -> Option<ServerFrame> {
        if let Err(e) = headers::validate(&headers) {
            return Some(error(req, ErrorCode::InvalidHeaders, &e.to_string()));
        }
        // Register the call before delivering, so that no answer can outrun it.
        let mut calls = lock(&self.shared.calls);
        let targets = lock(&self.shared.routes).targets(&topic, self.identity, None);
        let mut responders: Vec<u64> = targets.iter().map(|t| t.conn).collect();
        responders.dedup();
        if responders.is_empty() {
            return Some(error(
                req,
                ErrorCode::NoResponders,
                &format!("no subscription matches {topic}"),
            ));
        }
        let call = match calls.start(self.conn, req, responders, None) {
            Ok(call) => call,
            Err(TooManyPending) => return Some(too_many(req)),
        };
        drop(calls);
        let delivery = self.message(topic, payload, headers, Some(call), false);
        let routed = self.timed(|| self.shared.route(&delivery, None, &self.wakes));
        self.traced(MessageKind::Request, &delivery, routed);
        None
    }

    fn provide(&self, req: u64, service: Topic) -> ServerFrame {
        let provided = lock(&self.shared.calls).provide(self.conn, &service);
        match provided {
            Ok(waiters) => {
                for (conn, waiting_req) in waiters {
                    self.shared
                        .send_to(conn, ServerFrame::Ok { req: waiting_req });
                }
                ServerFrame::Ok { req }
            }
            Err(_) => error(
                req,
                ErrorCode::ServiceExists,
                &format!("{service} already has a provider"),
            ),
        }
    }

    fn dispatch(
        &self,
        req: u64,
        service: Topic,
        action: String,
        payload: Bytes,
        headers: Headers,
    ) -> Option<ServerFrame> {
        if let Err(e) = headers::validate(&headers) {
            return Some(error(req, ErrorCode::InvalidHeaders, &e.to_string()));
        }
        if action.is_empty() || action.len() > 256 || action.chars().any(char::is_control) {
            return Some(error(
                req,
                ErrorCode::NoSuchAction,
                "an action name is 1 to 256 bytes without control characters",
            ));
        }
        let mut calls = lock(&self.shared.calls);
        let Some(provider) = calls.provider(&service) else {
            return Some(no_provider(req, &service));
        };
        let call = match calls.start(self.conn, req, vec![provider], Some(service.clone())) {
            Ok(call) => call,
            Err(TooManyPending) => return Some(too_many(req)),
        };
        drop(calls);
        let message = self.message(service.clone(), payload, headers, Some(call), true);
        // The invocation takes the message; the observer needs only its envelope.
        let envelope = self
            .shared
            .config
            .trace_observer
            .is_some()
            .then(|| Delivery {
                payload: Bytes::new(),
                ..message.clone()
            });
        let routed = self.timed(|| {
            let queued = self.shared.send_to(
                provider,
                ServerFrame::Invoke {
                    call,
                    service,
                    action,
                    message,
                },
            );
            Routed::one(queued)
        });
        if let Some(envelope) = envelope {
            self.traced(MessageKind::Dispatch, &envelope, routed);
        }
        None
    }

    fn respond(&self, req: u64, call: u64, outcome: Result<Bytes, RemoteError>) -> ServerFrame {
        let Some(pending) = lock(&self.shared.calls).answer(call, self.conn) else {
            return error(
                req,
                ErrorCode::UnknownCall,
                &format!("call {call} is answered, cancelled or not addressed to this connection"),
            );
        };
        let answer = match outcome {
            Ok(payload) => {
                let topic = pending
                    .service
                    .clone()
                    .unwrap_or_else(|| Topic::new("response").expect("a valid topic"));
                let message = self.message(topic, payload, Headers::new(), None, true);
                ServerFrame::Response {
                    req: pending.req,
                    message,
                }
            }
            Err(remote) => {
                // Responders may only report their own failures, never the broker's.
                let code = match remote.code {
                    ErrorCode::NoSuchAction => ErrorCode::NoSuchAction,
                    _ => ErrorCode::HandlerError,
                };
                error(pending.req, code, &remote.message)
            }
        };
        if matches!(answer, ServerFrame::Response { .. }) {
            self.timed(|| Routed::one(self.shared.send_to(pending.caller, answer)));
        } else {
            self.shared.send_to(pending.caller, answer);
        }
        ServerFrame::Ok { req }
    }
}

fn sub_reply(req: u64, sub: u64, result: Result<(), SubError>) -> ServerFrame {
    match result {
        Ok(()) => ServerFrame::Ok { req },
        Err(SubError::Duplicate) => error(
            req,
            ErrorCode::DuplicateSubscription,
            &format!("subscription id {sub} is already in use on this connection"),
        ),
        Err(SubError::Unknown) => error(
            req,
            ErrorCode::UnknownSubscription,
            &format!("no subscription with id {sub} on this connection"),
        ),
    }
}

fn no_such_target(to: &IdentityFilter) -> String {
    match &to.instance_id {
        Some(instance) => format!("no instance {instance} of {} is running", to.app_id),
        None => format!("no instance of {} is running", to.app_id),
    }
}

fn no_provider(req: u64, service: &Topic) -> ServerFrame {
    error(
        req,
        ErrorCode::NoProvider,
        &format!("nothing provides {service}"),
    )
}

fn too_many(req: u64) -> ServerFrame {
    error(
        req,
        ErrorCode::TooManyPending,
        "too many requests of this connection are waiting for answers",
    )
}

fn not_permitted(req: u64, message: &str) -> ServerFrame {
    error(req, ErrorCode::NotPermitted, message)
}

pub(crate) fn error(req: u64, code: ErrorCode, message: &str) -> ServerFrame {
    ServerFrame::Error {
        req,
        code,
        message: message.to_owned(),
    }
}
