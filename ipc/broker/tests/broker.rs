//! The broker against real clients over a real Unix socket.

use std::{path::PathBuf, time::Duration};

use bytes::{BufMut, BytesMut};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::UnixStream,
    sync::mpsc,
};
use weft_broker::{Broker, BrokerConfig, BrokerEvent, BrokerHandle};
use weft_client::{Client, ClientError};
use weft_proto::Pattern;
use weft_proto::{
    ErrorCode, Identity, Token, Topic,
    frame::{ControlReply, ControlRequest, IdentityFilter, PageStatus, RemoteError},
    handshake::{Hello, Refusal},
};

const DEADLINE: Duration = Duration::from_secs(10);

struct TestBroker {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    handle: BrokerHandle,
    events: mpsc::UnboundedReceiver<BrokerEvent>,
    cli: Token,
}

impl TestBroker {
    fn start_with(config: impl FnOnce(&mut BrokerConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("bus.sock");
        let mut cfg = BrokerConfig::new(&socket);
        config(&mut cfg);
        let (broker, handle, events) = Broker::bind(cfg).unwrap();
        tokio::spawn(broker.run());
        let cli = Token::random();
        handle.grant_cli(cli.clone());
        Self {
            _dir: dir,
            socket,
            handle,
            events,
            cli,
        }
    }

    fn start() -> Self {
        Self::start_with(|_| {})
    }

    async fn cli(&self) -> Client {
        Client::connect(&self.socket, &self.cli).await.unwrap()
    }

    async fn app(&self, app_id: &str) -> Client {
        let token = Token::random();
        self.handle
            .grant_app(token.clone(), Identity::new_instance(app_id));
        Client::connect(&self.socket, &token).await.unwrap()
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

fn topic(s: &str) -> Topic {
    Topic::new(s).unwrap()
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f).await.expect("timed out")
}

#[tokio::test]
async fn publish_reaches_subscriber_with_sender_stamped_by_broker() {
    let b = TestBroker::start();
    let app = b.app("watchlist").await;
    let cli = b.cli().await;
    let mut sub = cli.subscribe(&topic("fx.EURUSD")).await.unwrap();
    app.publish(&topic("fx.EURUSD"), &br#"{"px":1.1}"#[..])
        .await
        .unwrap();
    let d = within(sub.next()).await.unwrap();
    assert_eq!(&d.payload[..], br#"{"px":1.1}"#);
    assert_eq!(*d.sender, *app.identity());
    assert_eq!(d.sender.app_id, "watchlist");
    assert_eq!(d.topic.as_str(), "fx.EURUSD");
    assert!(d.ts_ms > 1_600_000_000_000);
    assert_eq!(cli.identity().app_id, "weft-cli");
}

#[tokio::test]
async fn messages_from_one_publisher_arrive_in_order_and_only_on_their_topic() {
    let b = TestBroker::start();
    let publisher = b.cli().await;
    let consumer = b.cli().await;
    let mut sub = consumer.subscribe(&topic("seq")).await.unwrap();
    let mut other = consumer.subscribe(&topic("seq.other")).await.unwrap();
    let n = 5000u32;
    let p = publisher.clone();
    let send = tokio::spawn(async move {
        for i in 0..n {
            p.publish(&topic("seq"), i.to_string()).await.unwrap();
        }
        p.publish(&topic("seq.other"), "end").await.unwrap();
    });
    for i in 0..n {
        let d = within(sub.next()).await.unwrap();
        assert_eq!(d.payload, i.to_string().as_bytes());
    }
    assert_eq!(&within(other.next()).await.unwrap().payload[..], b"end");
    send.await.unwrap();
}

#[tokio::test]
async fn wildcard_subscriptions_match_and_each_subscription_gets_one_copy() {
    let b = TestBroker::start();
    let c = b.cli().await;
    let pattern = |s: &str| weft_proto::Pattern::new(s).unwrap();
    let mut one = c.subscribe(pattern("fx.*.spot")).await.unwrap();
    let mut many = c.subscribe(pattern("fx.#")).await.unwrap();
    let mut twice = c.subscribe(pattern("#.#")).await.unwrap();
    let mut exact = c.subscribe(&topic("fx.EUR.spot")).await.unwrap();
    c.publish(&topic("fx.EUR.spot"), "1").await.unwrap();
    c.publish(&topic("fx"), "2").await.unwrap();
    c.publish(&topic("eq.AAPL"), "3").await.unwrap();
    assert_eq!(&within(one.next()).await.unwrap().payload[..], b"1");
    assert_eq!(&within(exact.next()).await.unwrap().payload[..], b"1");
    assert_eq!(&within(many.next()).await.unwrap().payload[..], b"1");
    assert_eq!(&within(many.next()).await.unwrap().payload[..], b"2");
    // `#.#` can match a topic by several paths, yet delivers each message once.
    for expected in [b"1", b"2", b"3"] {
        assert_eq!(&within(twice.next()).await.unwrap().payload[..], expected);
    }
    c.publish(&topic("end"), "4").await.unwrap();
    assert_eq!(&within(twice.next()).await.unwrap().payload[..], b"4");
    // Frames arrive in order, so everything routed before "4" has been handed over:
    // nothing else is waiting for the other subscriptions.
    assert!(one.try_next().is_none());
    assert!(exact.try_next().is_none());
    assert!(many.try_next().is_none());
}

#[tokio::test]
async fn unsubscribed_messages_stop() {
    let b = TestBroker::start();
    let c = b.cli().await;
    let sub = c.subscribe(&topic("a")).await.unwrap();
    let mut keep = c.subscribe(&topic("b")).await.unwrap();
    sub.unsubscribe().await.unwrap();
    c.publish(&topic("a"), "lost").await.unwrap();
    c.publish(&topic("b"), "kept").await.unwrap();
    assert_eq!(&within(keep.next()).await.unwrap().payload[..], b"kept");
}

#[tokio::test]
async fn wrong_token_is_refused_and_reported_with_the_peer() {
    let mut b = TestBroker::start();
    match Client::connect(&b.socket, &Token::random()).await {
        Err(ClientError::Refused { reason, .. }) => assert_eq!(reason, Refusal::BadToken),
        other => panic!(
            "expected refusal, got {:?}",
            other.map(|c| c.identity().clone())
        ),
    }
    let (reason, peer) = within(async {
        loop {
            if let Some(BrokerEvent::Refused { reason, peer, .. }) = b.events.recv().await {
                return (reason, peer);
            }
        }
    })
    .await;
    assert_eq!(reason, Refusal::BadToken.as_str());
    let me = (std::process::id() as i32, own_uid());
    assert_eq!(peer, Some(me));
}

/// This process's user id, read from `/proc` (the test needs no `libc`).
fn own_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn wrong_protocol_version_is_refused_even_with_a_good_token() {
    let b = TestBroker::start();
    let mut hello = Hello::new(&b.cli);
    hello.version = weft_proto::PROTOCOL_VERSION + 1;
    match Client::connect_with_hello(&b.socket, &hello.encode()).await {
        Err(ClientError::Refused { reason, message }) => {
            assert_eq!(reason, Refusal::VersionMismatch);
            assert!(message.contains("version"), "{message}");
        }
        other => panic!("expected refusal, got {:?}", other.is_ok()),
    }
}

#[tokio::test]
async fn missing_token_or_garbage_handshake_is_refused() {
    let b = TestBroker::start();
    let mut hello = Hello::new(&b.cli);
    hello.token.clear();
    for body in [hello.encode(), b"GET / HTTP/1.1".to_vec(), vec![]] {
        match Client::connect_with_hello(&b.socket, &body).await {
            Err(ClientError::Refused { reason, .. }) => assert_eq!(reason, Refusal::Malformed),
            other => panic!("expected refusal, got {:?}", other.is_ok()),
        }
    }
}

/// A client that skips the handshake and sends a publish frame first cannot publish.
#[tokio::test]
async fn a_publish_before_the_handshake_is_not_routed() {
    let b = TestBroker::start();
    let c = b.cli().await;
    let mut sub = c.subscribe(&topic("secret")).await.unwrap();

    let mut raw = UnixStream::connect(&b.socket).await.unwrap();
    let frame = weft_proto::ClientFrame::Publish {
        req: 1,
        topic: topic("secret"),
        payload: "forged".into(),
        headers: vec![],
    };
    raw.write_all(&framed(&frame.encode())).await.unwrap();
    let mut rest = vec![];
    within(raw.read_to_end(&mut rest)).await.unwrap();
    assert!(!rest.is_empty(), "expected a refusal frame");

    c.publish(&topic("secret"), "genuine").await.unwrap();
    assert_eq!(&within(sub.next()).await.unwrap().payload[..], b"genuine");
}

#[tokio::test]
async fn an_app_token_serves_one_connection_at_a_time() {
    let b = TestBroker::start();
    let token = Token::random();
    b.handle
        .grant_app(token.clone(), Identity::new_instance("chart"));
    let first = Client::connect(&b.socket, &token).await.unwrap();
    match Client::connect(&b.socket, &token).await {
        Err(ClientError::Refused { reason, .. }) => assert_eq!(reason, Refusal::TokenInUse),
        other => panic!("expected refusal, got {:?}", other.is_ok()),
    }
    drop(first);
    within(async {
        loop {
            if Client::connect(&b.socket, &token).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn control_is_for_the_command_line_and_status_for_apps() {
    let mut b = TestBroker::start();
    let app = b.app("news").await;
    match app.control(ControlRequest::ListApps).await {
        Err(ClientError::Broker { code, .. }) => assert_eq!(code, ErrorCode::NotPermitted),
        other => panic!("expected NotPermitted, got {other:?}"),
    }
    let cli = b.cli().await;
    match cli.report_status(PageStatus::Ready).await {
        Err(ClientError::Broker { code, .. }) => assert_eq!(code, ErrorCode::NotPermitted),
        other => panic!("expected NotPermitted, got {other:?}"),
    }
    app.report_status(PageStatus::Ready).await.unwrap();

    let ask = tokio::spawn(async move { cli.control(ControlRequest::ListApps).await });
    let mut saw_status = false;
    loop {
        match within(b.events.recv()).await.unwrap() {
            BrokerEvent::AppConnected(id) => assert_eq!(id.app_id, "news"),
            BrokerEvent::PageStatus(id, PageStatus::Ready) => {
                assert_eq!(id.app_id, "news");
                saw_status = true;
            }
            BrokerEvent::Control {
                from,
                request,
                reply,
            } => {
                assert_eq!(from.app_id, "weft-cli");
                assert_eq!(request, ControlRequest::ListApps);
                reply
                    .send(Ok(ControlReply::Apps {
                        apps: vec![],
                        metrics_url: None,
                    }))
                    .unwrap();
                break;
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert!(saw_status);
    assert_eq!(
        ask.await.unwrap().unwrap(),
        ControlReply::Apps {
            apps: vec![],
            metrics_url: None
        }
    );
}

#[tokio::test]
async fn malformed_and_oversized_frames_close_only_that_client() {
    let b = TestBroker::start_with(|c| c.max_frame_len = 1024);
    let good = b.cli().await;
    let mut sub = good.subscribe(&topic("t")).await.unwrap();

    for body in [vec![0xff; 16], vec![0u8; 2048]] {
        let mut raw = UnixStream::connect(&b.socket).await.unwrap();
        raw.write_all(&framed(&Hello::new(&b.cli).encode()))
            .await
            .unwrap();
        raw.write_all(&framed(&body)).await.unwrap();
        let mut rest = vec![];
        // The broker answers the handshake, then closes: reading reaches end of stream.
        within(raw.read_to_end(&mut rest)).await.unwrap();
    }
    // A frame cut off mid-way, then a disconnect.
    let mut raw = UnixStream::connect(&b.socket).await.unwrap();
    raw.write_all(&framed(&Hello::new(&b.cli).encode()))
        .await
        .unwrap();
    raw.write_all(&[0, 0, 0, 100, 1, 2]).await.unwrap();
    drop(raw);

    good.publish(&topic("t"), "still here").await.unwrap();
    assert_eq!(
        &within(sub.next()).await.unwrap().payload[..],
        b"still here"
    );
}

#[tokio::test]
async fn a_slow_consumer_is_disconnected_and_others_keep_receiving() {
    let b = TestBroker::start_with(|c| c.outbound_queue_bytes = 256 * 1024);
    let publisher = b.cli().await;
    let fast = b.cli().await;
    let mut fast_sub = fast.subscribe(&topic("load")).await.unwrap();

    // A subscriber that never reads its socket.
    let mut slow = UnixStream::connect(&b.socket).await.unwrap();
    slow.write_all(&framed(&Hello::new(&b.cli).encode()))
        .await
        .unwrap();
    let sub = weft_proto::ClientFrame::Subscribe {
        req: 1,
        sub: 1,
        pattern: topic("load").into(),
        from: None,
        replay: None,
    };
    slow.write_all(&framed(&sub.encode())).await.unwrap();
    // Read the handshake reply and the subscription's confirmation, then never read again.
    within(read_frame(&mut slow)).await;
    let confirmed = weft_proto::ServerFrame::decode(&within(read_frame(&mut slow)).await).unwrap();
    assert_eq!(confirmed, weft_proto::ServerFrame::Ok { req: 1 });

    let payload = vec![b'x'; 16 * 1024];
    let reader = tokio::spawn(async move {
        let mut n = 0usize;
        while n < 2000 {
            fast_sub.next().await.unwrap();
            n += 1;
        }
        n
    });
    for _ in 0..2000 {
        publisher
            .publish(&topic("load"), payload.clone())
            .await
            .unwrap();
    }
    assert_eq!(within(reader).await.unwrap(), 2000);
    within(async {
        while b.handle.connection_count() > 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // The broker closed the slow client's socket rather than waiting to write to it, and
    // said why: the reason follows whatever was already on its way, frames left whole.
    let mut rest = vec![];
    within(slow.read_to_end(&mut rest)).await.unwrap();
    let mut last = None;
    let mut at = 0;
    while at < rest.len() {
        let len = u32::from_be_bytes(rest[at..at + 4].try_into().unwrap()) as usize;
        last = Some(weft_proto::ServerFrame::decode(&rest[at + 4..at + 4 + len]).unwrap());
        at += 4 + len;
    }
    match last {
        Some(weft_proto::ServerFrame::Closing { reason }) => {
            assert!(reason.starts_with("SlowConsumer"), "{reason}")
        }
        other => panic!("the last frame was {other:?}"),
    }
    let stats = b.handle.stats();
    assert_eq!(stats.slow_consumer_disconnects, 1);
    assert_eq!(stats.published, 2000);
    assert!(
        stats.dropped > 0,
        "copies refused by the full queue count as dropped"
    );
    // Two copies of each message until the slow one was cut off, then one.
    assert!(stats.delivered >= 2000, "{stats:?}");
    assert!(stats.delivered + stats.dropped > 2000, "{stats:?}");
}

#[tokio::test]
async fn the_stats_count_messages_and_show_each_connections_queue() {
    let b = TestBroker::start();
    let publisher = b.app("pricer").await;
    let consumer = b.cli().await;
    let mut sub = consumer
        .subscribe(Pattern::new("px.*").unwrap())
        .await
        .unwrap();
    let mut all = consumer
        .subscribe(Pattern::new("px.#").unwrap())
        .await
        .unwrap();
    for i in 0..100 {
        publisher
            .publish(&topic("px.EURUSD"), i.to_string())
            .await
            .unwrap();
    }
    publisher
        .publish(&topic("nobody.listens"), "x")
        .await
        .unwrap();
    for _ in 0..100 {
        within(sub.next()).await.unwrap();
        within(all.next()).await.unwrap();
    }
    let stats = b.handle.stats();
    assert_eq!(stats.published, 101);
    assert_eq!(stats.delivered, 200, "one copy per matching subscription");
    assert_eq!((stats.dropped, stats.unrouted), (0, 1));
    let timed: u64 = stats.latency_counts.iter().sum();
    assert_eq!(timed, 101u64.div_ceil(weft_broker::SAMPLE_EVERY));
    assert!(stats.latency_sum > Duration::ZERO);
    let mut who: Vec<_> = stats
        .connections
        .iter()
        .map(|c| c.identity.app_id.as_str())
        .collect();
    who.sort();
    assert_eq!(who, ["pricer", "weft-cli"]);
}

#[tokio::test]
async fn a_client_that_does_not_keep_up_learns_it_was_a_slow_consumer() {
    let b = TestBroker::start_with(|c| c.outbound_queue_bytes = 256 * 1024);
    let publisher = b.cli().await;
    let slow = b.cli().await;
    // Subscribed, but nobody takes the messages for now: the client stops reading its
    // socket, and the broker's queue for it fills until it is cut off.
    let mut sub = slow.subscribe(&topic("load")).await.unwrap();
    let payload = vec![b'x'; 16 * 1024];
    within(async {
        while b.handle.connection_count() > 1 {
            publisher
                .publish(&topic("load"), payload.clone())
                .await
                .unwrap();
        }
    })
    .await;
    // Once it catches up on what reached it, it learns why the connection ended.
    within(async { while sub.next().await.is_some() {} }).await;
    let reason = within(slow.closed()).await;
    assert!(reason.contains("SlowConsumer"), "{reason}");
}

#[tokio::test]
async fn dropping_a_client_closes_its_connection_even_after_unsubscribing() {
    let b = TestBroker::start();
    let c = b.cli().await;
    let sub = c.subscribe(&topic("a")).await.unwrap();
    let kept = c.subscribe(&topic("b")).await.unwrap();
    assert_eq!(b.handle.connection_count(), 1);
    sub.unsubscribe().await.unwrap();
    drop(kept);
    drop(c);
    within(async {
        while b.handle.connection_count() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

async fn read_frame(stream: &mut UnixStream) -> Vec<u8> {
    let len = stream.read_u32().await.unwrap();
    let mut body = vec![0; len as usize];
    stream.read_exact(&mut body).await.unwrap();
    body
}

fn framed(body: &[u8]) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_u32(body.len() as u32);
    buf.put_slice(body);
    buf
}

fn code(r: Result<impl Sized, ClientError>) -> ErrorCode {
    match r {
        Err(ClientError::Broker { code, .. }) => code,
        Err(e) => panic!("expected a broker error, got {e}"),
        Ok(_) => panic!("expected a broker error, got success"),
    }
}

fn instance(c: &Client) -> IdentityFilter {
    IdentityFilter {
        app_id: c.identity().app_id.clone(),
        instance_id: Some(c.identity().instance_id.clone()),
    }
}

#[tokio::test]
async fn send_reaches_only_the_named_identity_and_fails_for_one_not_running() {
    let b = TestBroker::start();
    let sender = b.cli().await;
    let a1 = b.app("chart").await;
    let a2 = b.app("chart").await;
    let other = b.app("news").await;
    let mut s1 = a1.subscribe(&topic("cmd")).await.unwrap();
    let mut s2 = a2.subscribe(&topic("cmd")).await.unwrap();
    let mut so = other.subscribe(&topic("cmd")).await.unwrap();

    sender
        .send(&instance(&a2), &topic("cmd"), "to-a2")
        .await
        .unwrap();
    let app = IdentityFilter {
        app_id: "chart".into(),
        instance_id: None,
    };
    sender
        .send(&app, &topic("cmd"), "to-all-charts")
        .await
        .unwrap();
    sender.publish(&topic("cmd"), "broadcast").await.unwrap();

    let d = within(s2.next()).await.unwrap();
    assert_eq!((&d.payload[..], d.direct), (&b"to-a2"[..], true));
    assert_eq!(
        &within(s2.next()).await.unwrap().payload[..],
        b"to-all-charts"
    );
    assert_eq!(
        &within(s1.next()).await.unwrap().payload[..],
        b"to-all-charts"
    );
    let d = within(so.next()).await.unwrap();
    assert_eq!((&d.payload[..], d.direct), (&b"broadcast"[..], false));

    let missing = IdentityFilter {
        app_id: "chart".into(),
        instance_id: Some("chart-gone".into()),
    };
    assert_eq!(
        code(sender.send(&missing, &topic("cmd"), "x").await),
        ErrorCode::TargetGone
    );
    let missing_app = IdentityFilter {
        app_id: "ghost".into(),
        instance_id: None,
    };
    let err = sender
        .send(&missing_app, &topic("cmd"), "x")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no instance of ghost is running"),
        "{err}"
    );
}

#[tokio::test]
async fn subscriptions_can_filter_by_sender() {
    let b = TestBroker::start();
    let trusted = b.app("pricer").await;
    let untrusted = b.app("spoofer").await;
    let listener = b.cli().await;
    let from = IdentityFilter {
        app_id: "pricer".into(),
        instance_id: None,
    };
    let mut sub = listener
        .subscribe_from(&topic("px"), Some(from))
        .await
        .unwrap();
    untrusted.publish(&topic("px"), "fake").await.unwrap();
    trusted.publish(&topic("px"), "real").await.unwrap();
    let d = within(sub.next()).await.unwrap();
    assert_eq!(&d.payload[..], b"real");
    assert_eq!(d.sender.app_id, "pricer");
}

#[tokio::test]
async fn request_gets_the_first_answer_and_reports_no_responders() {
    let b = TestBroker::start();
    let asker = b.cli().await;
    assert_eq!(
        code(
            asker
                .request(&topic("quote.EURUSD"), "?", Duration::from_secs(5))
                .await
        ),
        ErrorCode::NoResponders
    );

    let responder = b.app("pricer").await;
    let mut questions = responder
        .subscribe(Pattern::new("quote.*").unwrap())
        .await
        .unwrap();
    let answering = tokio::spawn(async move {
        let q = questions.next().await.unwrap();
        assert_eq!(&q.payload[..], b"?");
        let call = q.reply_to.expect("a request carries reply_to");
        responder.respond(call, Ok("1.0842".into())).await.unwrap();
        // A second answer to the same call is refused.
        let again = responder.respond(call, Ok("late".into())).await;
        assert_eq!(code(again), ErrorCode::UnknownCall);
    });
    let answer = asker
        .request(&topic("quote.EURUSD"), "?", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(&answer.payload[..], b"1.0842");
    assert_eq!(answer.sender.app_id, "pricer");
    within(answering).await.unwrap();
}

#[tokio::test]
async fn a_request_nobody_answers_times_out_and_is_forgotten() {
    let b = TestBroker::start();
    let asker = b.cli().await;
    let silent = b.app("silent").await;
    let mut questions = silent.subscribe(&topic("q")).await.unwrap();
    let err = asker
        .request(&topic("q"), "?", Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout(_)), "{err}");
    assert_eq!(err.code(), "Timeout");
    // The broker forgets the call once the asker's cancel arrives; answering then fails.
    let q = within(questions.next()).await.unwrap();
    within(async {
        while b.handle.pending_calls() != 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(
        code(silent.respond(q.reply_to.unwrap(), Ok("late".into())).await),
        ErrorCode::UnknownCall
    );
}

#[tokio::test]
async fn a_stranger_cannot_answer_someone_elses_request() {
    let b = TestBroker::start();
    let asker = b.cli().await;
    let responder = b.app("pricer").await;
    let stranger = b.app("stranger").await;
    let mut questions = responder.subscribe(&topic("q")).await.unwrap();
    let ask = {
        let asker = asker.clone();
        tokio::spawn(async move {
            asker
                .request(&topic("q"), "?", Duration::from_secs(5))
                .await
        })
    };
    let q = within(questions.next()).await.unwrap();
    let call = q.reply_to.unwrap();
    assert_eq!(
        code(stranger.respond(call, Ok("forged".into())).await),
        ErrorCode::UnknownCall
    );
    responder.respond(call, Ok("genuine".into())).await.unwrap();
    assert_eq!(&within(ask).await.unwrap().unwrap().payload[..], b"genuine");
}

#[tokio::test]
async fn rpc_dispatch_results_errors_and_provider_lifecycle() {
    let b = TestBroker::start();
    let svc = topic("orders");
    let client = b.cli().await;
    assert_eq!(
        code(client.connect_service(&svc, None).await),
        ErrorCode::NoProvider
    );

    // A client may wait for a provider that has not started yet.
    let waiting = {
        let client = client.clone();
        let svc = svc.clone();
        tokio::spawn(async move {
            client
                .connect_service(&svc, Some(Duration::from_secs(10)))
                .await
        })
    };
    let provider_conn = b.app("oms").await;
    let mut provider = provider_conn.provide(&svc).await.unwrap();
    let connected = within(waiting).await.unwrap().unwrap();

    let second = b.app("oms2").await;
    assert_eq!(code(second.provide(&svc).await), ErrorCode::ServiceExists);

    let serving = tokio::spawn(async move {
        while let Some(inv) = provider.next().await {
            let outcome = match inv.action.as_str() {
                "place" => {
                    Ok(format!("placed:{}", String::from_utf8_lossy(&inv.message.payload)).into())
                }
                "fail" => Err(RemoteError {
                    code: ErrorCode::HandlerError,
                    message: "rejected: limit breached".into(),
                }),
                // A provider claiming a broker error is reported as a handler error.
                "forge" => Err(RemoteError {
                    code: ErrorCode::Timeout,
                    message: "pretend".into(),
                }),
                "hang" => continue,
                other => Err(RemoteError {
                    code: ErrorCode::NoSuchAction,
                    message: format!("no action {other}"),
                }),
            };
            provider.respond(inv.call, outcome).await.unwrap();
        }
    });

    let t = Duration::from_secs(5);
    let placed = connected.dispatch("place", "42", t).await.unwrap();
    assert_eq!(&placed.payload[..], b"placed:42");
    assert_eq!(placed.sender.app_id, "oms");
    match connected.dispatch("fail", "", t).await {
        Err(ClientError::Broker { code, message }) => {
            assert_eq!(code, ErrorCode::HandlerError);
            assert_eq!(message, "rejected: limit breached");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        code(connected.dispatch("nope", "", t).await),
        ErrorCode::NoSuchAction
    );
    assert_eq!(
        code(connected.dispatch("forge", "", t).await),
        ErrorCode::HandlerError
    );
    assert!(matches!(
        connected
            .dispatch("hang", "", Duration::from_millis(100))
            .await,
        Err(ClientError::Timeout(_))
    ));

    // The provider dies mid-call: the caller learns ProviderGone, the client is told.
    // First let the broker forget the timed-out call, so the count below is the new one.
    within(async {
        while b.handle.pending_calls() != 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let call = {
        let client = client.clone();
        let svc = svc.clone();
        tokio::spawn(async move {
            let c = client.connect_service(&svc, None).await.unwrap();
            c.dispatch("hang", "", Duration::from_secs(10)).await
        })
    };
    within(async {
        while b.handle.pending_calls() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    serving.abort();
    drop(provider_conn);
    assert_eq!(code(within(call).await.unwrap()), ErrorCode::ProviderGone);
    within(connected.gone()).await;
    assert!(connected.is_gone());
    assert_eq!(
        code(connected.dispatch("place", "1", t).await),
        ErrorCode::NoProvider
    );
    // The name is free again.
    second.provide(&svc).await.unwrap();
}

#[tokio::test]
async fn headers_travel_with_messages_and_bad_ones_are_refused() {
    let b = TestBroker::start();
    let c = b.cli().await;
    let mut sub = c.subscribe(&topic("traced")).await.unwrap();
    let tp = (
        "traceparent".to_owned(),
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
    );
    c.publish_with(&topic("traced"), "1", vec![tp.clone()])
        .await
        .unwrap();
    assert_eq!(within(sub.next()).await.unwrap().headers, vec![tp]);
    let bad = vec![("bad key".to_owned(), "v".to_owned())];
    assert_eq!(
        code(c.publish_with(&topic("traced"), "2", bad).await),
        ErrorCode::InvalidHeaders
    );
}

#[tokio::test]
async fn pending_calls_per_connection_are_bounded() {
    let b = TestBroker::start_with(|c| c.max_pending_calls = 2);
    let asker = b.cli().await;
    let silent = b.app("silent").await;
    let _questions = silent.subscribe(&topic("q")).await.unwrap();
    let mut waiting = vec![];
    for _ in 0..2 {
        let asker = asker.clone();
        waiting.push(tokio::spawn(async move {
            asker
                .request(&topic("q"), "?", Duration::from_secs(30))
                .await
        }));
    }
    within(async {
        while b.handle.pending_calls() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(
        code(
            asker
                .request(&topic("q"), "?", Duration::from_secs(5))
                .await
        ),
        ErrorCode::TooManyPending
    );
    for w in waiting {
        w.abort();
    }
}

#[tokio::test]
async fn fire_and_forget_publishing_keeps_order_and_is_not_acknowledged() {
    let b = TestBroker::start();
    let publisher = b.cli().await;
    let consumer = b.cli().await;
    let mut sub = consumer.subscribe(&topic("ff")).await.unwrap();
    for i in 0..1000u32 {
        publisher
            .publish_nowait(&topic("ff"), i.to_string())
            .await
            .unwrap();
    }
    for i in 0..1000u32 {
        assert_eq!(
            within(sub.next()).await.unwrap().payload,
            i.to_string().as_bytes()
        );
    }
    // A full outbound queue is reported, not waited on.
    let mut saw_backpressure = false;
    for _ in 0..100_000 {
        match publisher.try_publish(&topic("nobody"), vec![0u8; 1024]) {
            Ok(()) => {}
            Err(e) => {
                assert_eq!(e.code(), "Backpressure");
                saw_backpressure = true;
                break;
            }
        }
    }
    assert!(saw_backpressure);
}

/// Keeps what the broker reports about traced messages.
#[derive(Debug, Default)]
struct Recorded(std::sync::Mutex<Vec<(weft_broker::MessageKind, String, String, u64)>>);

impl weft_broker::TraceObserver for Recorded {
    fn routed(&self, m: &weft_broker::TracedMessage<'_>) {
        self.0.lock().unwrap().push((
            m.kind,
            m.topic.to_owned(),
            m.trace.span.to_string(),
            m.delivered,
        ));
    }
}

#[tokio::test]
async fn traced_messages_and_only_those_reach_the_trace_observer() {
    use weft_broker::MessageKind;
    use weft_proto::trace_context::{MessageTrace, TraceParent};

    let recorded = std::sync::Arc::new(Recorded::default());
    let observer = recorded.clone();
    let b = TestBroker::start_with(move |c| c.trace_observer = Some(observer));
    let app = b.app("tracer").await;
    let listener = b.cli().await;
    let mut sub = listener.subscribe(&topic("t.a")).await.unwrap();

    let root = MessageTrace::caused_by(None);
    app.publish_with(&topic("t.a"), "1", root.headers())
        .await
        .unwrap();
    app.publish(&topic("t.a"), "untraced").await.unwrap();
    let bad = vec![("traceparent".to_owned(), "not-a-traceparent".to_owned())];
    app.publish_with(&topic("t.a"), "badly traced", bad)
        .await
        .unwrap();
    let child = MessageTrace::caused_by(Some(&root.span));
    app.send_with(&instance(&listener), &topic("t.a"), "2", child.headers())
        .await
        .unwrap();
    for _ in 0..4 {
        within(sub.next()).await.unwrap();
    }
    let got = recorded.0.lock().unwrap().clone();
    assert_eq!(
        got,
        vec![
            (MessageKind::Publish, "t.a".into(), root.span.to_string(), 1),
            (MessageKind::Send, "t.a".into(), child.span.to_string(), 1),
        ]
    );
    // The receiver reads the same context, so it can continue the trace.
    let d = within(async {
        app.publish_with(&topic("t.a"), "3", child.headers())
            .await
            .unwrap();
        sub.next().await.unwrap()
    })
    .await;
    let read = MessageTrace::from_headers(&d.headers).unwrap();
    assert_eq!(read.caused_by, Some(root.span.span_id));
    assert_eq!(
        TraceParent::parse(&read.span.to_string()).unwrap().trace_id,
        root.span.trace_id
    );
}

#[tokio::test]
async fn a_broker_stopping_leaves_the_socket_of_the_one_bound_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("bus.sock");
    let (old, old_handle, _old_events) = Broker::bind(BrokerConfig::new(&socket)).unwrap();
    let old_run = tokio::spawn(old.run());
    // A new broker takes the path over (a restart in the same folder).
    let (new, new_handle, _new_events) = Broker::bind(BrokerConfig::new(&socket)).unwrap();
    tokio::spawn(new.run());
    old_handle.shutdown();
    within(old_run).await.unwrap();
    assert!(
        socket.exists(),
        "the old broker removed the new one's socket"
    );
    let cli = Token::random();
    new_handle.grant_cli(cli.clone());
    let client = within(Client::connect(&socket, &cli)).await.unwrap();
    client.publish(&topic("still.here"), "1").await.unwrap();
    new_handle.shutdown();
    // Its own socket it does remove.
    within(async {
        while socket.exists() {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

/// The next `AccessDenied` report among the broker's events.
async fn next_denial(
    events: &mut mpsc::UnboundedReceiver<BrokerEvent>,
) -> (String, String, String) {
    within(async {
        loop {
            if let Some(BrokerEvent::AccessDenied {
                identity,
                action,
                subject,
                ..
            }) = events.recv().await
            {
                return (identity.app_id, action.as_str().to_owned(), subject);
            }
        }
    })
    .await
}

#[tokio::test]
async fn an_app_is_held_to_its_bus_patterns_and_each_refusal_is_reported() {
    use weft_broker::BusAccess;
    use weft_proto::pattern_set::PatternSet;
    let set = |p: &[&str]| Some(PatternSet::new(p.iter().map(|p| Pattern::new(*p).unwrap())));
    let mut b = TestBroker::start();
    let token = Token::random();
    b.handle.grant_app_with(
        token.clone(),
        Identity::new_instance("quotes"),
        BusAccess {
            publish: set(&["fx.#", "svc.price"]),
            subscribe: set(&["fx.*.spot", "svc.own"]),
        },
    );
    let app = Client::connect(&b.socket, &token).await.unwrap();
    let watcher = b.cli().await;
    let mut everything = watcher
        .subscribe(&Pattern::new("#").unwrap())
        .await
        .unwrap();

    // Allowed: published and delivered.
    app.publish(&topic("fx.EUR.spot"), "ok").await.unwrap();
    assert_eq!(&within(everything.next()).await.unwrap().payload[..], b"ok");

    // Outside the patterns, by the fast path and with headers: refused, never routed.
    assert_eq!(
        code(app.publish(&topic("rates.EUR"), "no").await),
        ErrorCode::AccessDenied
    );
    assert_eq!(
        next_denial(&mut b.events).await,
        ("quotes".into(), "publish".into(), "rates.EUR".into())
    );
    let headers = vec![("k".to_owned(), "v".to_owned())];
    assert_eq!(
        code(app.publish_with(&topic("rates.EUR"), "no", headers).await),
        ErrorCode::AccessDenied
    );
    assert_eq!(next_denial(&mut b.events).await.2, "rates.EUR");
    assert_eq!(
        code(app.request(&topic("rates.q"), "no", DEADLINE).await),
        ErrorCode::AccessDenied
    );
    assert_eq!(next_denial(&mut b.events).await.2, "rates.q");
    let cli = IdentityFilter {
        app_id: weft_proto::CLI_APP_ID.into(),
        instance_id: None,
    };
    assert_eq!(
        code(app.send(&cli, &topic("rates.EUR"), "no").await),
        ErrorCode::AccessDenied
    );
    assert_eq!(next_denial(&mut b.events).await.1, "publish");
    // Sends to the platform's services are theirs to check (here: none is running).
    let agent = IdentityFilter {
        app_id: weft_proto::FDC3_AGENT_APP_ID.into(),
        instance_id: None,
    };
    assert_eq!(
        code(app.send(&agent, &topic("weft.fdc3"), "{}").await),
        ErrorCode::TargetGone
    );

    // What only a platform service may send can be listened to.
    assert!(
        app.subscribe_from(&topic("weft.fdc3"), Some(agent.clone()))
            .await
            .is_ok()
    );

    // Subscriptions must be covered by the declared patterns.
    assert!(
        app.subscribe(&Pattern::new("fx.EUR.spot").unwrap())
            .await
            .is_ok()
    );
    assert!(
        app.subscribe(&Pattern::new("fx.*.spot").unwrap())
            .await
            .is_ok()
    );
    for wider in ["fx.#", "#", "fx.*.*"] {
        assert_eq!(
            code(app.subscribe(&Pattern::new(wider).unwrap()).await),
            ErrorCode::AccessDenied,
            "{wider}"
        );
        assert_eq!(
            next_denial(&mut b.events).await,
            ("quotes".into(), "subscribe".into(), wider.into())
        );
    }

    // Services: providing is receiving, calling is sending.
    assert!(app.provide(&topic("svc.own")).await.is_ok());
    assert_eq!(
        code(app.provide(&topic("svc.other")).await),
        ErrorCode::AccessDenied
    );
    assert_eq!(next_denial(&mut b.events).await.1, "provide");
    assert_eq!(
        code(app.connect_service(&topic("svc.other"), None).await),
        ErrorCode::AccessDenied
    );
    assert_eq!(next_denial(&mut b.events).await.1, "call");

    // The platform's services: any app may call them (they check their callers), no
    // app may provide one.
    assert_eq!(
        code(
            app.connect_service(&topic("weft.secureStorage"), None)
                .await
        ),
        ErrorCode::NoProvider
    );
    let open = b.app("open").await;
    assert_eq!(
        code(open.provide(&topic("weft.secureStorage")).await),
        ErrorCode::AccessDenied
    );
    assert_eq!(
        next_denial(&mut b.events).await,
        ("open".into(), "provide".into(), "weft.secureStorage".into())
    );

    // Nothing refused was routed: the watcher's next message is the next allowed one.
    app.publish(&topic("fx.GBP.spot"), "ok2").await.unwrap();
    assert_eq!(
        &within(everything.next()).await.unwrap().payload[..],
        b"ok2"
    );
}
