//! Durable topics end to end: a real shell storing into its journal under load, killed
//! with SIGKILL, started again; its keys in a real Secret Service (gnome-keyring on a
//! private D-Bus session); damage planted in the files. Runs in the nextest `webview`
//! group (each shell starts a WebKit app).

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use weft_e2e::{PrivateKeyring, SLOW, Shell, TestEnv, runtime, topic, wait_for, within};
use weft_proto::{Pattern, frame::Replay};

/// Publishers writing at once.
const PUBLISHERS: u64 = 4;

/// A workspace of one app whose `orders.#` topics are stored with `fsync: always`.
fn durable_workspace(env: &TestEnv) -> PathBuf {
    let file = env.workspace("orders", &[("echo", "echo/index.html")]);
    let mut json: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    json["durable"] = serde_json::json!([{"pattern": "orders.#", "fsync": "always"}]);
    fs::write(&file, json.to_string()).unwrap();
    file
}

/// Every stored message from the start: (publisher, number, seq) in delivery order,
/// read until `enough` says the list is complete.
fn replay_all(
    shell: &mut Shell,
    enough: impl Fn(&[(u64, u64, u64)]) -> bool,
) -> Vec<(u64, u64, u64)> {
    let rt = runtime();
    rt.block_on(async {
        let client = shell.client_when_listening().await;
        let mut sub = client
            .subscribe_with(
                Pattern::new("orders.#").unwrap(),
                None,
                Some(Replay::AfterSeq(0)),
            )
            .await
            .unwrap();
        let mut got = vec![];
        while !enough(&got) {
            let d = within("stored messages to be replayed", sub.next())
                .await
                .expect("the subscription stays open");
            let v: serde_json::Value = serde_json::from_slice(&d.payload).unwrap();
            got.push((
                v["p"].as_u64().unwrap(),
                v["n"].as_u64().unwrap(),
                d.seq.expect("a stored message has its seq"),
            ));
        }
        got
    })
}

fn segments(data_dir: &Path) -> Vec<PathBuf> {
    let mut found = vec![];
    for stream in fs::read_dir(data_dir.join("journal")).unwrap().flatten() {
        if let Ok(files) = fs::read_dir(stream.path()) {
            found.extend(
                files
                    .flatten()
                    .map(|f| f.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "seg")),
            );
        }
    }
    found
}

#[test]
fn acknowledged_messages_survive_kill_9_under_load_and_damage_is_reported_not_fatal() {
    let mut env = TestEnv::new();
    let keyring = PrivateKeyring::start(&mut env);
    let ws = durable_workspace(&env);
    let mut shell = Shell::launch(env, &ws);
    shell.wait_ready(1);

    // Publishers each publish {"p": k, "n": 0, 1, 2, …}, every publish awaiting its
    // acknowledgement; the shell is killed while they run.
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..PUBLISHERS).map(|_| AtomicU64::new(0)).collect());
    let running = Arc::new(AtomicBool::new(true));
    // Publishers run on worker threads while this thread watches and kills.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut load = vec![];
    for p in 0..PUBLISHERS {
        let client = rt.block_on(shell.client_when_listening());
        let (acked, running) = (acked.clone(), running.clone());
        load.push(rt.spawn(async move {
            let mut n = 0u64;
            while running.load(Ordering::Relaxed) {
                let body = serde_json::json!({"p": p, "n": n}).to_string();
                if client.publish(&topic("orders.new"), body).await.is_err() {
                    break;
                }
                n += 1;
                acked[p as usize].store(n, Ordering::Release);
            }
        }));
    }
    wait_for("3000 acknowledged publishes", SLOW, || {
        let total: u64 = acked.iter().map(|a| a.load(Ordering::Acquire)).sum();
        (total >= 3000).then_some(())
    });
    shell.kill_9();
    running.store(false, Ordering::Relaxed);
    for task in load {
        rt.block_on(async { within("a publisher to stop", task).await.unwrap() });
    }
    // Acknowledged: n in 0..acked[p] for each publisher.
    let acked: Vec<u64> = acked.iter().map(|a| a.load(Ordering::Acquire)).collect();

    // The key is in the keychain, not in a file.
    let env = shell.into_env();
    assert!(
        keyring.search("weft").contains("journal-keys"),
        "the journal key is in the Secret Service: {}",
        keyring.search("weft")
    );
    assert!(!env.data_dir().join("journal/keys").exists());

    let mut shell = Shell::launch(env, &ws);
    shell.wait_ready(1);
    let stored = replay_all(&mut shell, |got| {
        (0..PUBLISHERS).all(|p| {
            got.iter()
                .any(|&(q, n, _)| q == p && n + 1 >= acked[p as usize])
        })
    });
    let mut per_publisher: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut last_seq = 0;
    for &(p, n, seq) in &stored {
        assert!(seq > last_seq, "replay is in sequence order");
        last_seq = seq;
        per_publisher.entry(p).or_default().push(n);
    }
    for (p, numbers) in &per_publisher {
        let expected: Vec<u64> = (0..numbers.len() as u64).collect();
        assert_eq!(
            numbers, &expected,
            "publisher {p}: every message once, in order"
        );
        assert!(
            numbers.len() as u64 >= acked[*p as usize],
            "publisher {p}: {} stored, {} acknowledged",
            numbers.len(),
            acked[*p as usize]
        );
    }
    let check = shell.env.run_weft(&["journal", "check"]);
    let report = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(
        check.status.success(),
        "a killed shell leaves no unquarantined damage: {report}"
    );
    assert!(report.contains("orders.#"), "{report}");

    // A flipped byte in the middle of the journal: reported, and everything else served.
    let stop = shell.env.run_weft(&["stop"]);
    assert!(stop.status.success());
    shell.wait_exit(SLOW);
    let env = shell.into_env();
    let biggest = segments(&env.data_dir())
        .into_iter()
        .max_by_key(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("a segment");
    let mut bytes = fs::read(&biggest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    fs::write(&biggest, bytes).unwrap();
    let check = env.run_weft(&["journal", "check"]);
    let report = String::from_utf8_lossy(&check.stdout).into_owned();
    assert_eq!(check.status.code(), Some(1), "damage found: {report}");
    assert!(report.contains("checksum"), "{report}");
    // A new key: later segments use it, older records stay readable.
    let rotated = env.run_weft(&["keys", "rotate"]);
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    assert!(String::from_utf8_lossy(&rotated.stdout).contains("journal key 2"));
    assert!(
        keyring.search("weft").contains("current 2"),
        "{}",
        keyring.search("weft")
    );

    let mut shell = Shell::launch(env, &ws);
    shell.wait_ready(1);
    // Read up to the last message read before: whatever is missing by then is lost.
    let (last_p, last_n, _) = *stored.last().unwrap();
    let served = replay_all(&mut shell, |got| {
        got.last()
            .is_some_and(|&(p, n, _)| (p, n) == (last_p, last_n))
    });
    assert_eq!(
        served.len(),
        stored.len() - 1,
        "one record lost to the flipped byte"
    );
    wait_for(
        "the damage to be in the shell's log",
        Duration::from_secs(10),
        || {
            shell
                .log_text()
                .contains("damaged journal bytes skipped")
                .then_some(())
        },
    );
}

/// The next `report.*` message on `sub` with topic `report.<kind>`, as JSON.
async fn report(sub: &mut weft_client::Subscription, kind: &str) -> serde_json::Value {
    loop {
        let d = within(&format!("a report.{kind}"), sub.next())
            .await
            .expect("the subscription stays open");
        let v: serde_json::Value = serde_json::from_slice(&d.payload).unwrap();
        assert_ne!(d.topic.as_str(), "report.error", "the page failed: {v}");
        if d.topic.as_str() == format!("report.{kind}") {
            return v;
        }
    }
}

#[test]
fn pages_replay_stored_messages_and_consume_durably_with_retries() {
    let env = TestEnv::new();
    // Keys in a key file (the opt-in when there is no keychain), and the stream from
    // the settings file, so that messages are stored before the page exists.
    env.write_config(
        "[journal]\nkey_file = true\ndurable = [{ pattern = \"orders.#\", fsync = \"always\" }]\n",
    );
    let first = env.workspace("echo", &[("echo", "echo/index.html")]);
    let ledger = env.workspace("ledger", &[("ledger", "ledger/index.html")]);
    let mut shell = Shell::launch(env, &first);
    shell.wait_ready(1);
    let rt = runtime();
    let cli = rt.block_on(shell.client_when_listening());
    let mut reports = rt
        .block_on(cli.subscribe(Pattern::new("report.#").unwrap()))
        .unwrap();
    for n in 1..=3u64 {
        rt.block_on(cli.publish(
            &topic("orders.new"),
            serde_json::json!({"n": n}).to_string(),
        ))
        .unwrap();
    }
    // No session bus here: the shell must not autolaunch one (with a keyring daemon
    // that would outlive it), and says why it keeps the key in the file.
    assert!(
        shell.log_text().contains("there is no D-Bus session bus"),
        "{}",
        shell.log_text()
    );
    let key_file = shell.env.data_dir().join("journal/keys");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&key_file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    let launched = shell.env.run_weft(&["launch", ledger.to_str().unwrap()]);
    assert!(
        launched.status.success(),
        "{}",
        String::from_utf8_lossy(&launched.stderr)
    );
    rt.block_on(async {
        let mut replayed = vec![];
        let mut consumed = vec![];
        let mut ready = None;
        while replayed.len() < 2 || consumed.len() < 3 || ready.is_none() {
            let d = within("the ledger's reports", reports.next())
                .await
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&d.payload).unwrap();
            match d.topic.as_str() {
                "report.replayed" => {
                    replayed.push((v["n"].as_u64().unwrap(), v["seq"].as_u64().unwrap()))
                }
                "report.consumed" => consumed.push(v["n"].as_u64().unwrap()),
                "report.ready" => ready = Some(v),
                other => panic!("{other}: {v}"),
            }
        }
        assert_eq!(
            replayed,
            [(2, 2), (3, 3)],
            "the last two stored, with their seq"
        );
        assert_eq!(consumed, [1, 2, 3], "in order, 3 after two failures");
        assert_eq!(ready.unwrap()["badReplay"], "InvalidArgument");

        cli.publish(&topic("orders.new"), r#"{"n":4}"#)
            .await
            .unwrap();
        let live = report(&mut reports, "replayed").await;
        assert_eq!(
            (live["n"].as_u64(), live["seq"].as_u64()),
            (Some(4), Some(4))
        );
        let next = report(&mut reports, "consumed").await;
        assert_eq!(next["n"], 4);
    });
    // The failures left no dead letter: the third attempt succeeded.
    let list = shell.env.run_weft(&["dlq", "list", "--json"]);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let dlq: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(dlq["letters"].as_array().map(Vec::len), Some(0), "{dlq}");
    assert_eq!(dlq["capacity"], 10_000);
    // The CLI replays too, printing seq.
    let sub = shell.env.run_weft(&[
        "bus",
        "sub",
        "orders.#",
        "--replay",
        "after:2",
        "--count",
        "2",
        "--timeout",
        "30",
    ]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&sub.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [3, 4]);
}
