//! Durable topics through a real broker and real clients: stored before delivered,
//! acknowledged once stored, replayed with no gap or duplicate at the seam, across
//! broker restarts.

use std::{path::Path, sync::Arc, time::Duration};

use weft_broker::{
    Broker, BrokerConfig, BrokerHandle, DurableConfig, Fsync, JournalSetup, KeySet, Retention,
};
use weft_client::{Client, Subscription};
use weft_proto::{Identity, Pattern, Token, Topic, frame::Delivery, frame::Replay};

const DEADLINE: Duration = Duration::from_secs(20);

struct Running {
    handle: BrokerHandle,
    socket: std::path::PathBuf,
    cli: Token,
}

impl Running {
    /// A broker whose journal lives in `journal`, storing `orders.#` with `fsync`.
    fn start(dir: &Path, keys: &Arc<KeySet>, fsync: Fsync) -> Running {
        let socket = dir.join("bus.sock");
        let (broker, handle, events) = Broker::bind(BrokerConfig::new(&socket)).unwrap();
        std::mem::forget(events);
        tokio::spawn(broker.run());
        handle.set_journal(JournalSetup::Ready {
            dir: dir.join("journal"),
            keys: keys.clone(),
        });
        handle
            .add_durable(DurableConfig {
                pattern: Pattern::new("orders.#").unwrap(),
                fsync,
                retention: Retention::default(),
            })
            .unwrap();
        let cli = Token::random();
        handle.grant_cli(cli.clone());
        Running {
            handle,
            socket,
            cli,
        }
    }

    async fn client(&self) -> Client {
        Client::connect(&self.socket, &self.cli).await.unwrap()
    }

    async fn app(&self, app_id: &str) -> Client {
        let token = Token::random();
        self.handle
            .grant_app(token.clone(), Identity::new_instance(app_id));
        Client::connect(&self.socket, &token).await.unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

fn topic(s: &str) -> Topic {
    Topic::new(s).unwrap()
}

async fn next(sub: &mut Subscription) -> Delivery {
    tokio::time::timeout(DEADLINE, sub.next())
        .await
        .expect("a message in time")
        .expect("the subscription is open")
}

/// The payloads' numbers and the sequence numbers of `n` messages.
async fn take(sub: &mut Subscription, n: usize) -> Vec<(u64, u64)> {
    let mut got = vec![];
    for _ in 0..n {
        let d = next(sub).await;
        let number: u64 = std::str::from_utf8(&d.payload).unwrap().parse().unwrap();
        got.push((number, d.seq.expect("stored messages carry their seq")));
    }
    got
}

fn numbered(range: std::ops::RangeInclusive<u64>) -> Vec<(u64, u64)> {
    range.map(|n| (n, n)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_messages_carry_their_seq_and_replay_joins_live_without_gap_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(KeySet::generate());
    let broker = Running::start(dir.path(), &keys, Fsync::Always);
    let publisher = broker.app("orders-blotter").await;
    let live_client = broker.client().await;
    let mut live = live_client
        .subscribe(Pattern::new("orders.#").unwrap())
        .await
        .unwrap();
    let mut plain = live_client.subscribe(topic("prices.fx")).await.unwrap();
    for n in 1..=100u64 {
        publisher
            .publish(&topic("orders.new"), n.to_string())
            .await
            .unwrap();
    }
    assert_eq!(take(&mut live, 100).await, numbered(1..=100));
    publisher.publish(&topic("prices.fx"), "1.1").await.unwrap();
    assert_eq!(
        next(&mut plain).await.seq,
        None,
        "non-durable topics are not stored"
    );

    let replayer = broker.client().await;
    let mut last = replayer
        .subscribe_with(
            Pattern::new("orders.#").unwrap(),
            None,
            Some(Replay::Last(10)),
        )
        .await
        .unwrap();
    assert_eq!(take(&mut last, 10).await, numbered(91..=100));
    publisher
        .publish(&topic("orders.new"), "101")
        .await
        .unwrap();
    assert_eq!(take(&mut last, 1).await, numbered(101..=101));
    assert_eq!(take(&mut live, 1).await, numbered(101..=101));

    // A replay from the start while the publisher keeps going: the seam is exact.
    // Thousands of messages are stored before it starts, so that it reads ahead.
    let load = tokio::spawn(async move {
        for n in 102..=10_000u64 {
            publisher
                .publish_nowait(&topic("orders.new"), n.to_string())
                .await
                .unwrap();
        }
        publisher
            .publish(&topic("orders.new"), "10001")
            .await
            .unwrap();
        publisher
    });
    tokio::time::timeout(DEADLINE, async {
        while broker.handle.durable_info()[0].last_seq < 5000 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the load is stored");
    // On a client of its own: a client whose subscription is not read stops reading
    // (that is its backpressure), and `last` is not read meanwhile.
    let late = broker.client().await;
    let mut all = late
        .subscribe_with(
            Pattern::new("orders.*").unwrap(),
            None,
            Some(Replay::AfterSeq(0)),
        )
        .await
        .unwrap();
    assert_eq!(take(&mut all, 10_001).await, numbered(1..=10_001));
    let publisher = load.await.unwrap();
    assert_eq!(take(&mut live, 9900).await, numbered(102..=10_001));
    assert!(all.try_next().is_none(), "nothing twice");

    // Only what the sender filter and the pattern select is replayed.
    publisher
        .publish(&topic("orders.cancel"), "10002")
        .await
        .unwrap();
    let mut cancels = broker
        .client()
        .await
        .subscribe_with(
            Pattern::new("orders.cancel").unwrap(),
            None,
            Some(Replay::Last(5)),
        )
        .await
        .unwrap();
    assert_eq!(take(&mut cancels, 1).await, [(10_002, 10_002)]);
    let info = broker.handle.durable_info();
    assert_eq!(
        (info[0].first_seq, info[0].last_seq, info[0].damaged),
        (1, 10_002, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_works_across_a_restart_by_time_and_by_seq() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(KeySet::generate());
    let before;
    {
        let broker = Running::start(
            dir.path(),
            &keys,
            Fsync::Interval(Duration::from_millis(50)),
        );
        let publisher = broker.client().await;
        for n in 1..=50u64 {
            publisher
                .publish(&topic("orders.new"), n.to_string())
                .await
                .unwrap();
        }
        // Every message so far was stored at or before `stored`; `before` is later.
        let stored = weft_now_ms();
        before = loop {
            let now = weft_now_ms();
            if now > stored {
                break now;
            }
            std::hint::spin_loop();
        };
        for n in 51..=60u64 {
            publisher
                .publish(&topic("orders.new"), n.to_string())
                .await
                .unwrap();
        }
    }
    let broker = Running::start(dir.path(), &keys, Fsync::Always);
    let client = broker.client().await;
    let mut since = client
        .subscribe_with(
            Pattern::new("orders.#").unwrap(),
            None,
            Some(Replay::Since(before)),
        )
        .await
        .unwrap();
    let got = take(&mut since, 10).await;
    assert_eq!(got, numbered(51..=60));
    let mut after = client
        .subscribe_with(Pattern::new("#").unwrap(), None, Some(Replay::AfterSeq(57)))
        .await
        .unwrap();
    assert_eq!(take(&mut after, 3).await, numbered(58..=60));
    // A durable consumer made to start at a time starts exactly there.
    let app = broker.app("ledger").await;
    let mut consumer = app
        .consume(
            Pattern::new("orders.#").unwrap(),
            "from-time",
            Some(Replay::Since(before)),
        )
        .await
        .unwrap();
    let first = next(&mut consumer).await;
    assert_eq!((first.seq, &first.payload[..]), (Some(51), &b"51"[..]));
    client.publish(&topic("orders.new"), "61").await.unwrap();
    assert_eq!(take(&mut since, 1).await, numbered(61..=61));
    assert_eq!(take(&mut after, 1).await, numbered(61..=61));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_journal_durable_streams_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, handle, _events) = Broker::bind(BrokerConfig::new(dir.path().join("s"))).unwrap();
    handle.set_journal(JournalSetup::Unavailable(
        "no keychain and no key file".into(),
    ));
    let refused = handle
        .add_durable(DurableConfig {
            pattern: Pattern::new("orders.#").unwrap(),
            fsync: Fsync::Always,
            retention: Retention::default(),
        })
        .unwrap_err();
    assert!(refused.to_string().contains("no keychain"), "{refused}");
}

fn weft_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Attaches `app` to its consumer `book` of `orders.#` once its previous attachment
/// has let go (detaching is asynchronous).
async fn attach_book(app: &Client) -> Subscription {
    tokio::time::timeout(DEADLINE, async {
        loop {
            match app
                .consume(Pattern::new("orders.#").unwrap(), "book", None)
                .await
            {
                Ok(sub) => return sub,
                Err(e) if e.code() == "ConsumerBusy" => tokio::task::yield_now().await,
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .expect("the consumer is free in time")
}

/// Waits until the dead-letter queue holds `n` letters.
async fn letters(handle: &BrokerHandle, n: usize) -> Vec<weft_proto::frame::DeadLetter> {
    tokio::time::timeout(DEADLINE, async {
        loop {
            let (letters, _) = handle.dead_letters().unwrap();
            if letters.len() >= n {
                return letters;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("dead letters in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_consumers_hold_order_retry_dead_letter_and_resume_after_their_last_ack() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(KeySet::generate());
    let publisher_id;
    {
        let broker = Running::start(dir.path(), &keys, Fsync::Always);
        let publisher = broker.client().await;
        publisher_id = publisher.identity().clone();
        for n in 1..=5u64 {
            publisher
                .publish(&topic("orders.new"), n.to_string())
                .await
                .unwrap();
        }
        let app = broker.app("blotter").await;
        let mut sub = app
            .consume(
                Pattern::new("orders.#").unwrap(),
                "book",
                Some(Replay::AfterSeq(0)),
            )
            .await
            .unwrap();
        let busy = broker
            .app("blotter")
            .await
            .consume(Pattern::new("orders.#").unwrap(), "book", None)
            .await;
        assert_eq!(busy.err().map(|e| e.code()), Some("ConsumerBusy"));

        let first = next(&mut sub).await;
        assert_eq!((first.seq, &first.payload[..]), (Some(1), &b"1"[..]));
        assert!(sub.try_next().is_none(), "one message at a time");
        sub.ack(&first, Ok(())).unwrap();
        // The second fails every time: retried with backoff, then dead-lettered, and
        // only then does the third come.
        let mut ids = vec![];
        for _ in 0..weft_broker::MAX_ATTEMPTS {
            let second = next(&mut sub).await;
            assert_eq!(second.seq, Some(2));
            ids.push(second.id);
            sub.ack(&second, Err("the book is closed".into())).unwrap();
        }
        assert!(
            ids.windows(2).all(|w| w[0] == w[1]),
            "the same message id each time"
        );
        let third = next(&mut sub).await;
        assert_eq!(third.seq, Some(3));
        let dead = letters(&broker.handle, 1).await;
        assert_eq!(dead[0].reason, "HandlerFailed");
        assert!(
            dead[0].detail.contains("the book is closed"),
            "{}",
            dead[0].detail
        );
        assert_eq!(dead[0].target, "blotter consumer book");
        assert_eq!(dead[0].message.payload, &b"2"[..]);
        assert_eq!(dead[0].message.sender.as_ref(), &publisher_id);
        // The app goes away before acknowledging 3: it comes again later.
        drop(sub);
        drop(app);
    }
    let broker = Running::start(dir.path(), &keys, Fsync::Always);
    let app = broker.app("blotter").await;
    let mut sub = attach_book(&app).await;
    for seq in 3..=5 {
        let d = next(&mut sub).await;
        assert_eq!(
            d.seq,
            Some(seq),
            "after a restart: from the last acknowledged on"
        );
        sub.ack(&d, Ok(())).unwrap();
    }
    // The dead letter survived the restart; redriving delivers it again.
    let dead = letters(&broker.handle, 1).await;
    assert_eq!(broker.handle.redrive(Some(dead[0].id)).unwrap(), 1);
    let again = next(&mut sub).await;
    assert_eq!(
        (&again.payload[..], again.id),
        (&b"2"[..], dead[0].message.id)
    );
    assert!(
        again
            .headers
            .iter()
            .any(|(k, v)| k == "weft-redriven" && *v == dead[0].id.to_string())
    );
    sub.ack(&again, Ok(())).unwrap();
    assert!(
        broker.handle.dead_letters().unwrap().0.is_empty(),
        "redriven letters leave the queue"
    );

    // A message whose time-to-live ran out before delivery is dead-lettered.
    drop(sub);
    let publisher = broker.client().await;
    publisher
        .publish_with(
            &topic("orders.new"),
            "6",
            vec![(weft_broker::TTL_HEADER.into(), "1".into())],
        )
        .await
        .unwrap();
    let published = weft_now_ms();
    while weft_now_ms() <= published + 1 {
        std::hint::spin_loop();
    }
    let mut sub = attach_book(&app).await;
    let expired = letters(&broker.handle, 1).await;
    assert_eq!(
        (expired[0].reason.as_str(), &expired[0].message.payload[..]),
        ("Expired", &b"6"[..])
    );
    publisher.publish(&topic("orders.new"), "7").await.unwrap();
    assert_eq!(next(&mut sub).await.payload, &b"7"[..]);
    assert_eq!(broker.handle.purge_dead_letters().unwrap(), 1);
    assert!(broker.handle.dead_letters().unwrap().0.is_empty());

    // A direct send to an identity that is gone fails to its sender, and is not also
    // dead-lettered.
    let gone = weft_proto::frame::IdentityFilter {
        app_id: "nobody".into(),
        instance_id: None,
    };
    let refused = publisher
        .send(&gone, &topic("orders.new"), "8")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "TargetGone");
    assert!(broker.handle.dead_letters().unwrap().0.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_refused_to_a_slow_consumer_are_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(KeySet::generate());
    let socket = dir.path().join("bus.sock");
    let mut config = BrokerConfig::new(&socket);
    config.outbound_queue_bytes = 64 * 1024;
    let (broker, handle, events) = Broker::bind(config).unwrap();
    std::mem::forget(events);
    tokio::spawn(broker.run());
    handle.set_journal(JournalSetup::Ready {
        dir: dir.path().join("journal"),
        keys,
    });
    let cli = Token::random();
    handle.grant_cli(cli.clone());
    // A subscriber whose subscription is never read: once its inbox is full its
    // client stops reading the socket.
    let slow = Client::connect(&socket, &cli).await.unwrap();
    let _sub = slow.subscribe(topic("prices.fx")).await.unwrap();
    let publisher = Client::connect(&socket, &cli).await.unwrap();
    let payload = "x".repeat(4096);
    let dead = tokio::time::timeout(DEADLINE, async {
        loop {
            publisher
                .publish(&topic("prices.fx"), payload.clone())
                .await
                .unwrap();
            let (letters, _) = handle.dead_letters().unwrap();
            if let Some(letter) = letters.into_iter().next() {
                return letter;
            }
        }
    })
    .await
    .expect("a refused message is dead-lettered");
    assert_eq!(dead.reason, "SlowConsumer");
    assert_eq!(dead.target, slow.identity().to_string());
    assert_eq!(dead.message.payload, payload.as_bytes());
    handle.shutdown();
}

/// A 2 MiB filesystem, unmounted when dropped (mounting needs root, as CI has).
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount() -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a 2 MiB tmpfs needs root");
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_durable_publishes_with_storage_full_and_keeps_what_was_stored() {
    let disk = SmallDisk::mount();
    let keys = Arc::new(KeySet::generate());
    let acked;
    {
        let broker = Running::start(disk.0.path(), &keys, Fsync::Always);
        let publisher = broker.client().await;
        let payload = "y".repeat(8 * 1024);
        let mut n = 0u64;
        let refused = loop {
            match publisher
                .publish(&topic("orders.new"), format!("{n}:{payload}"))
                .await
            {
                Ok(()) => n += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(refused.code(), "StorageFull", "{refused}");
        assert!(refused.to_string().contains("disk is full"), "{refused}");
        acked = n;
        // Non-durable topics are untouched.
        let mut plain = publisher.subscribe(topic("prices.fx")).await.unwrap();
        publisher.publish(&topic("prices.fx"), "1").await.unwrap();
        assert_eq!(next(&mut plain).await.payload, &b"1"[..]);
    }
    assert!(acked > 50, "{acked} stored before the disk filled");
    let broker = Running::start(disk.0.path(), &keys, Fsync::Always);
    let client = broker.client().await;
    let mut all = client
        .subscribe_with(
            Pattern::new("orders.#").unwrap(),
            None,
            Some(Replay::AfterSeq(0)),
        )
        .await
        .unwrap();
    for n in 0..acked {
        let d = next(&mut all).await;
        let text = std::str::from_utf8(&d.payload).unwrap();
        assert!(text.starts_with(&format!("{n}:")), "message {n} intact");
        assert_eq!(d.seq, Some(n + 1));
    }
    assert!(broker.handle.journal_damage().is_empty());
}
