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
    let load = tokio::spawn(async move {
        for n in 102..=3000u64 {
            publisher
                .publish_nowait(&topic("orders.new"), n.to_string())
                .await
                .unwrap();
        }
        publisher
            .publish(&topic("orders.new"), "3001")
            .await
            .unwrap();
        publisher
    });
    tokio::time::timeout(DEADLINE, async {
        while broker.handle.durable_info()[0].last_seq < 500 {
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
    assert_eq!(take(&mut all, 3001).await, numbered(1..=3001));
    let publisher = load.await.unwrap();
    assert_eq!(take(&mut live, 2900).await, numbered(102..=3001));
    assert!(all.try_next().is_none(), "nothing twice");

    // Only what the sender filter and the pattern select is replayed.
    publisher
        .publish(&topic("orders.cancel"), "3002")
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
    assert_eq!(take(&mut cancels, 1).await, [(3002, 3002)]);
    let info = broker.handle.durable_info();
    assert_eq!(
        (info[0].first_seq, info[0].last_seq, info[0].damaged),
        (1, 3002, 0)
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
