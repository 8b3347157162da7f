//! End-to-end tests with real shells, real app processes and real WebKit pages under a
//! private Xvfb display. They run one at a time (see `webview_lock` and the nextest
//! `webview` test group).

use std::{collections::HashSet, time::Duration};

use serde_json::{Value, json};
use weft_client::{Client, ClientError};
use weft_e2e::{
    SLOW, Shell, TestEnv, binary, process_tree, runtime, topic, wait_for, wait_gone, within,
};
use weft_proto::{
    Token,
    frame::{AppInfo, AppState},
    handshake::{Hello, Refusal},
};

/// Launches a workspace of `apps` headless and waits until all are ready.
fn launched(name: &str, apps: &[(&str, &str)]) -> (Shell, Vec<AppInfo>) {
    let env = TestEnv::new();
    let ws = env.workspace(name, apps);
    let mut shell = Shell::launch(env, &ws);
    let ready = shell.wait_ready(apps.len());
    (shell, ready)
}

#[test]
fn a_message_round_trips_through_a_page_in_another_process() {
    let (shell, apps) = launched("echo", &[("echo", "echo/index.html")]);

    runtime().block_on(async {
        let client = shell.client().await;
        let mut pongs = client.subscribe(&topic("e2e.pong")).await.unwrap();
        client
            .publish(&topic("e2e.ping"), r#"{"n":42,"s":"ünïcødé"}"#)
            .await
            .unwrap();
        let pong = within("the page's reply", pongs.next()).await.unwrap();
        let body: Value = serde_json::from_slice(&pong.payload).unwrap();

        // The page got exactly what was sent, with the sender stamped by the broker.
        assert_eq!(body["got"], json!({"n": 42, "s": "ünïcødé"}));
        assert_eq!(body["meta"]["topic"], "e2e.ping");
        assert_eq!(body["meta"]["sender"]["appId"], "weft-cli");
        assert_eq!(
            body["meta"]["sender"]["instanceId"],
            client.identity().instance_id.as_str()
        );
        assert!(body["meta"]["ts"].as_u64().unwrap() > 1_600_000_000_000);
        assert!(body["meta"]["id"].is_string());
        // The page knows who it is, and the broker agrees.
        assert_eq!(body["me"]["appId"], "echo");
        assert_eq!(body["me"]["instanceId"], apps[0].instance_id.as_str());
        assert_eq!(pong.sender.app_id, "echo");
        assert_eq!(pong.sender.instance_id, apps[0].instance_id);
        // Errors carry stable codes, and the strict CSP blocked the inline script.
        assert_eq!(body["badTopicCode"], "InvalidTopic");
        assert_eq!(body["inlineScriptRan"], false);

        // The page's wildcard subscription matches one segment, not more.
        client.publish(&topic("e2e.wild.a.b"), "0").await.unwrap();
        client.publish(&topic("e2e.wild.abc"), "1").await.unwrap();
        let pong = within("the wildcard reply", pongs.next()).await.unwrap();
        let body: Value = serde_json::from_slice(&pong.payload).unwrap();
        assert_eq!(body, json!({"wild": "e2e.wild.abc", "got": 1}));
    });
}

#[test]
fn pages_use_request_rpc_and_send_with_typed_errors() {
    let env = TestEnv::new();
    let ws = env.workspace(
        "services",
        &[
            ("provider", "services/index.html"),
            ("caller", "services/index.html"),
        ],
    );
    // Listen before the pages start, so their readiness reports are not missed.
    let mut shell = Shell::launch(env, &ws);
    // One runtime for the whole test: the client's tasks live on it.
    let rt = runtime();
    let mut reports = rt.block_on(async {
        let client = shell.client_when_listening().await;
        (
            client.clone(),
            client.subscribe(&topic("e2e.report")).await.unwrap(),
        )
    });
    shell.wait_ready(2);
    let caller = rt.block_on(async {
        let (client, sub) = &mut reports;
        let mut ready = HashSet::new();
        while ready.len() < 2 {
            let d = within("both pages to set up", sub.next()).await.unwrap();
            let v: Value = serde_json::from_slice(&d.payload).unwrap();
            assert!(v.get("setupFailed").is_none(), "{v}");
            ready.insert(d.sender.app_id.clone());
        }
        client.publish(&topic("e2e.go"), "{}").await.unwrap();
        let mut caller = None;
        let mut direct = None;
        while caller.is_none() || direct.is_none() {
            let d = within("the reports", sub.next()).await.unwrap();
            let v: Value = serde_json::from_slice(&d.payload).unwrap();
            if let Some(report) = v.get("caller") {
                caller = Some(report.clone());
            } else if v.get("direct").is_some() {
                assert_eq!(d.sender.app_id, "provider");
                direct = Some(v);
            }
        }
        assert_eq!(direct.unwrap(), json!({"direct": "hi", "from": "caller"}));
        caller.unwrap()
    });
    assert_eq!(caller["ask"], json!({"ok": {"answer": 42}}));
    assert_eq!(caller["add"], json!({"ok": {"sum": 5, "caller": "caller"}}));
    assert_eq!(caller["boom"]["code"], "HandlerError");
    assert_eq!(caller["boom"]["message"], "kaboom");
    assert_eq!(caller["missing"]["code"], "NoSuchAction");
    assert_eq!(caller["slow"]["code"], "Timeout");
    assert_eq!(caller["nobody"]["code"], "NoResponders");
    assert_eq!(caller["ghost"]["code"], "TargetGone");
    assert_eq!(caller["direct"], json!({"ok": null}));
    assert_eq!(caller["badTopic"]["code"], "InvalidTopic");
}

#[test]
fn a_frozen_page_costs_bounded_memory_and_never_holds_up_other_apps() {
    let (shell, apps) = launched(
        "frozen",
        &[("stuck", "frozen/index.html"), ("echo", "echo/index.html")],
    );
    let stuck_pid = apps[0].pid.unwrap();
    let rt = runtime();
    rt.block_on(async {
        let client = shell.client().await;
        // Freeze the page, and confirm it: its answers stop.
        client.publish(&topic("e2e.freeze"), "{}").await.unwrap();
        let ping = topic("e2e.stuck.ping");
        within("the page to stop answering", async {
            loop {
                match client
                    .request(&ping, "{}", Duration::from_millis(500))
                    .await
                {
                    Err(ClientError::Timeout(_)) => break,
                    Ok(_) | Err(ClientError::Broker { .. }) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        })
        .await;

        let before = rss_kib(stuck_pid);
        // 64 MiB of messages for the frozen page.
        let chunk = format!("\"{}\"", "x".repeat(64 * 1024 - 2));
        let flood = topic("e2e.flood");
        for _ in 0..1024 {
            client.publish_nowait(&flood, chunk.clone()).await.unwrap();
        }
        client
            .publish(&topic("e2e.flood.done"), "{}")
            .await
            .unwrap();

        // The other app is unaffected: a round trip through its page still works.
        let mut pongs = client.subscribe(&topic("e2e.pong")).await.unwrap();
        client.publish(&topic("e2e.ping"), "1").await.unwrap();
        let pong = within("the other page's reply", pongs.next())
            .await
            .unwrap();
        assert_eq!(pong.sender.app_id, "echo");

        wait_for(
            "the host to start dropping for the frozen page",
            SLOW,
            || {
                shell
                    .app_log("stuck")
                    .contains("dropping messages for it")
                    .then_some(())
            },
        );
        let grown = rss_kib(stuck_pid).saturating_sub(before);
        assert!(
            grown < 40 * 1024,
            "the frozen page's host grew by {grown} KiB for 64 MiB of messages"
        );
    });
    // The host was not disconnected as a slow consumer: it kept reading the bus.
    assert!(!shell.log_text().contains("SlowConsumer"));
    assert!(!shell.app_log("stuck").contains("SlowConsumer"));
    assert!(process_tree::is_alive(stuck_pid));
}

#[test]
fn a_stopped_subscriber_process_is_cut_off_and_costs_the_shell_bounded_memory() {
    let (shell, _) = launched("echo", &[("echo", "echo/index.html")]);
    // A command-line subscriber, frozen with SIGSTOP once it is listening.
    let mut frozen = shell
        .env
        .weft(None)
        .args(["bus", "sub", "e2e.load", "--data-only"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Lines are read on a thread: the subscriber may not be listening yet when the
    // first probes are published, and a blocking read must not stall the poll.
    let stdout = frozen.stdout.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(stdout);
        let mut line = String::new();
        while std::io::BufRead::read_line(&mut reader, &mut line).is_ok_and(|n| n > 0) {
            if lines_tx.send(std::mem::take(&mut line)).is_err() {
                // Nobody listens any more; keep draining so the process never blocks.
                continue;
            }
        }
    });
    wait_for("the subscriber to listen", SLOW, || {
        let out = shell.env.run_weft(&["bus", "pub", "e2e.load", "0"]);
        assert!(out.status.success());
        lines.recv_timeout(Duration::from_millis(200)).ok()
    });
    drop(lines);
    // SAFETY: sends SIGSTOP to the child this test started.
    unsafe { libc::kill(frozen.id() as i32, libc::SIGSTOP) };

    let before = status_kib(shell.pid(), "VmRSS:");
    let rt = runtime();
    rt.block_on(async {
        let client = shell.client().await;
        let mut live = client.subscribe(&topic("e2e.load")).await.unwrap();
        let chunk = format!("\"{}\"", "x".repeat(64 * 1024 - 2));
        let n = 3072; // 192 MiB, three times the broker's per-connection queue
        let publisher = {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in 0..n {
                    client
                        .publish(&topic("e2e.load"), chunk.clone())
                        .await
                        .unwrap();
                }
            })
        };
        for _ in 0..n {
            within("the live subscriber's messages", live.next())
                .await
                .unwrap();
        }
        publisher.await.unwrap();
    });
    let peak = status_kib(shell.pid(), "VmHWM:");
    assert!(
        peak.saturating_sub(before) < 128 * 1024,
        "the shell grew from {before} KiB to a peak of {peak} KiB for 192 MiB of messages"
    );
    wait_for("the broker to cut the stopped subscriber off", SLOW, || {
        shell
            .log_text()
            .contains("disconnecting a slow consumer")
            .then_some(())
    });
    // SAFETY: resumes the child this test stopped.
    unsafe { libc::kill(frozen.id() as i32, libc::SIGCONT) };
    let status = wait_for("the cut-off subscriber to exit", SLOW, || {
        frozen.try_wait().unwrap()
    });
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut frozen.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("closed the connection"), "{stderr}");
}

#[test]
fn a_page_flooding_the_bus_gets_every_call_settled_and_cannot_exhaust_its_host() {
    let (shell, apps) = launched("flood", &[("flooder", "flood/index.html")]);
    let rt = runtime();
    let report = rt.block_on(async {
        let client = shell.client().await;
        let mut reports = client.subscribe(&topic("e2e.flood.report")).await.unwrap();
        client.publish(&topic("e2e.flood.go"), "{}").await.unwrap();
        let d = within("the flood report", reports.next()).await.unwrap();
        serde_json::from_slice::<Value>(&d.payload).unwrap()
    });
    let fulfilled = report["fulfilled"].as_u64().unwrap();
    let refused = report["refused"].as_object().unwrap();
    let refused_total: u64 = refused.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(fulfilled + refused_total, 20000, "{report}");
    for code in refused.keys() {
        assert_eq!(code, "Backpressure", "{report}");
    }
    assert!(process_tree::is_alive(apps[0].pid.unwrap()));
}

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// A `/proc/PID/status` field in KiB (`VmRSS:`, `VmHWM:`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn bus_pub_and_sub_work_from_the_command_line() {
    let (shell, _) = launched("echo", &[("echo", "echo/index.html")]);

    // A subscriber with a pattern, reading lines as they come.
    let mut sub = shell
        .env
        .weft(None)
        .args(["bus", "sub", "e2e.cli.#", "--count", "2"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let stdout = sub.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let _ = lines_tx.send(line.unwrap());
        }
    });
    // Publish until the subscriber shows it is listening: it may not have subscribed yet.
    let first = wait_for("the subscriber's first line", SLOW, || {
        let out = shell
            .env
            .run_weft(&["bus", "pub", "e2e.cli.probe", r#"{"probe":true}"#]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        lines.recv_timeout(Duration::from_millis(200)).ok()
    });
    let out = shell
        .env
        .run_weft(&["bus", "pub", "e2e.cli.x.y", r#"{"n": 2}"#]);
    assert!(out.status.success());
    let status = wait_for("the subscriber to exit after 2 messages", SLOW, || {
        sub.try_wait().unwrap()
    });
    assert!(status.success());
    let mut rest: Vec<String> = lines.try_iter().collect();
    // Probes published before the subscription went live were never seen; ones after it
    // may have been: the last line is the one that made the count.
    let last: Value = serde_json::from_str(&rest.pop().unwrap_or(first.clone())).unwrap();
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["topic"], "e2e.cli.probe");
    assert_eq!(first["data"], json!({"probe": true}));
    assert_eq!(first["sender"]["appId"], "weft-cli");
    assert!(first["id"].is_string() && first["ts"].is_u64());
    assert!(
        last["topic"] == "e2e.cli.x.y" || last["topic"] == "e2e.cli.probe",
        "{last}"
    );

    // A request answered by the page's handler, and one nobody answers.
    // The page subscribes once loaded; until then the answer is NoResponders.
    let out = wait_for("the page to answer a request", SLOW, || {
        let out = shell
            .env
            .run_weft(&["bus", "request", "e2e.double", "21", "--data-only"]);
        let refused = String::from_utf8_lossy(&out.stderr).contains("NoResponders");
        (!refused).then_some(out)
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
    let out = shell.env.run_weft(&["bus", "request", "e2e.nobody", "{}"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NoResponders"));

    // --data-only prints the payload alone; --timeout exits 2 when nothing comes.
    let out = shell
        .env
        .run_weft(&["bus", "sub", "e2e.quiet", "--timeout", "0.3"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn ps_lists_one_process_per_app_instance() {
    let (shell, apps) = launched(
        "three",
        &[
            ("one", "echo/index.html"),
            ("two", "echo/index.html"),
            ("three", "echo/index.html"),
        ],
    );

    let ids: Vec<_> = apps.iter().map(|a| a.app_id.as_str()).collect();
    assert_eq!(ids, ["one", "two", "three"]);
    let pids: HashSet<u32> = apps.iter().map(|a| a.pid.expect("a pid")).collect();
    assert_eq!(pids.len(), 3, "each instance has its own process: {apps:?}");
    let app_bin = std::fs::canonicalize(binary("weft-app")).unwrap();
    for pid in &pids {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert_eq!(exe, app_bin, "pid {pid} runs weft-app");
        assert_eq!(process_tree::read(*pid).unwrap().ppid, shell.pid());
    }
    // Every host has its own WebKit web process.
    for pid in &pids {
        let web = process_tree::descendants(*pid)
            .into_iter()
            .filter_map(process_tree::read)
            .filter(|p| p.comm.starts_with("WebKitWebProces"))
            .count();
        assert_eq!(web, 1, "app process {pid} hosts one WebKit web process");
    }

    // The raw JSON has the documented shape.
    let out = shell.env.run_weft(&["ps", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for app in v["apps"].as_array().unwrap() {
        for key in ["appId", "instanceId", "pid", "state"] {
            assert!(app.get(key).is_some(), "missing {key} in {app}");
        }
        assert_eq!(app["state"], "ready");
    }
}

#[test]
fn killing_the_shell_leaves_no_app_or_webkit_process_behind() {
    let (mut shell, _) = launched(
        "two",
        &[("one", "echo/index.html"), ("two", "echo/index.html")],
    );
    let tree = process_tree::descendants(shell.pid());
    let names: Vec<String> = tree
        .iter()
        .filter_map(|p| process_tree::read(*p))
        .map(|p| p.comm)
        .collect();
    assert_eq!(
        names.iter().filter(|n| *n == "weft-app").count(),
        2,
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("WebKitWebProces")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("WebKitNetworkP")),
        "{names:?}"
    );

    shell.kill_9();
    let survivors = wait_gone(&tree, Duration::from_secs(2));
    let described: Vec<_> = survivors
        .iter()
        .filter_map(|p| process_tree::read(*p))
        .collect();
    assert!(
        survivors.is_empty(),
        "still running 2 s after kill -9 of the shell: {described:?}"
    );
}

#[test]
fn messages_from_iframes_and_page_scripts_without_the_secret_are_dropped() {
    let (shell, _) = launched("iframe", &[("framed", "iframe/index.html")]);

    runtime().block_on(async {
        let client = shell.client().await;
        let mut forged = client.subscribe(&topic("e2e.forged")).await.unwrap();
        client.publish(&topic("e2e.iframe.go"), "{}").await.unwrap();
        let first = within("the genuine message", forged.next()).await.unwrap();
        assert_eq!(
            &first.payload[..],
            br#""genuine""#,
            "a forged message got through before the genuine one"
        );
        assert_eq!(first.sender.app_id, "framed");
    });
    // The host says what it dropped, in the app's log.
    let log = shell.app_log("framed");
    assert!(log.contains("missing or wrong page secret"), "{log}");
    assert!(
        log.contains("a second hello in the same page load"),
        "{log}"
    );
}

#[test]
fn clients_without_a_valid_token_or_version_are_refused_by_the_real_shell() {
    let (shell, _) = launched("echo", &[("echo", "echo/index.html")]);
    let endpoint = shell.env.endpoint();
    let mode = |p: &std::path::Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };
    assert_eq!(mode(endpoint.dir()), 0o700);
    assert_eq!(mode(&endpoint.cli_token_path()), 0o600);

    runtime().block_on(async {
        let socket = endpoint.socket_path();
        let good = shell.client().await;
        let mut sub = good.subscribe(&topic("e2e.secret")).await.unwrap();

        let refused = |r: Result<Client, ClientError>| match r {
            Err(ClientError::Refused { reason, .. }) => reason,
            Err(e) => panic!("expected a refusal, got {e}"),
            Ok(_) => panic!("an unauthenticated client was accepted"),
        };
        assert_eq!(
            refused(Client::connect(&socket, &Token::random()).await),
            Refusal::BadToken
        );
        let mut no_token = Hello::new(&Token::random());
        no_token.token.clear();
        assert_eq!(
            refused(Client::connect_with_hello(&socket, &no_token.encode()).await),
            Refusal::Malformed
        );
        let cli_token = endpoint.read_cli_token().unwrap();
        let mut old = Hello::new(&cli_token);
        old.version = 0;
        assert_eq!(
            refused(Client::connect_with_hello(&socket, &old.encode()).await),
            Refusal::VersionMismatch
        );

        good.publish(&topic("e2e.secret"), "1").await.unwrap();
        let d = within("the genuine message", sub.next()).await.unwrap();
        assert_eq!(&d.payload[..], b"1");
        assert_eq!(d.sender.app_id, "weft-cli");
    });
}

#[test]
fn a_second_launch_hands_over_to_the_running_shell() {
    let env = TestEnv::new();
    let first = env.workspace("first", &[("alpha", "echo/index.html")]);
    let second = env.workspace("second", &[("beta", "echo/index.html")]);
    let mut shell = Shell::launch(env, &first);
    shell.wait_ready(1);

    let out = shell
        .env
        .weft(Some(&shell.display))
        .args(["launch", second.to_str().unwrap(), "--no-panel"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("handed over"));

    let apps = shell.wait_ready(2);
    let ids: Vec<_> = apps.iter().map(|a| a.app_id.as_str()).collect();
    assert_eq!(ids, ["alpha", "beta"]);
    // Both apps belong to the one shell: no second broker was started.
    for app in &apps {
        assert_eq!(
            process_tree::read(app.pid.unwrap()).unwrap().ppid,
            shell.pid()
        );
    }
    let shells = process_tree::all()
        .into_iter()
        .filter(|p| p.comm == "weft" && process_tree::is_alive(p.pid))
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{}/environ", p.pid))
                .is_ok_and(|e| e.contains(&*shell.env.data_dir().to_string_lossy()))
        })
        .count();
    assert_eq!(shells, 1);
}

#[test]
fn weft_stop_stops_every_app_and_the_shell_gracefully() {
    let (mut shell, apps) = launched(
        "two",
        &[("one", "echo/index.html"), ("two", "echo/index.html")],
    );
    let tree = process_tree::descendants(shell.pid());

    let out = shell.env.run_weft(&["stop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = shell.wait_exit(SLOW);
    assert!(status.success(), "the shell exited with {status}");
    assert!(wait_gone(&tree, Duration::from_secs(10)).is_empty());
    let log = shell.log_text();
    for app in &apps {
        // Graceful: each app exited by itself with status 0 after SIGTERM.
        assert!(
            log.contains(&format!("instance_id=\"{}\"", app.instance_id))
                && log.contains("exit code 0"),
            "{log}"
        );
    }
    assert!(
        !log.contains("killing it"),
        "an app had to be killed:\n{log}"
    );
    let ps = shell.env.run_weft(&["ps"]);
    assert!(!ps.status.success());
    assert!(String::from_utf8_lossy(&ps.stderr).contains("no Weft shell is running"));
}

#[test]
fn stopping_one_app_leaves_the_others_and_sigterm_stops_the_shell() {
    let (mut shell, apps) = launched(
        "two",
        &[("one", "echo/index.html"), ("two", "echo/index.html")],
    );

    // Stopping one app from the command line leaves the other running.
    runtime().block_on(async {
        let client = shell.client().await;
        client
            .control(weft_proto::frame::ControlRequest::StopApp {
                instance_id: apps[0].instance_id.clone(),
            })
            .await
            .unwrap();
    });
    let ps = wait_for("the first app to stop", SLOW, || {
        let ps = shell.ps()?;
        (ps.apps[0].state == AppState::Stopped).then_some(ps)
    });
    assert_eq!(ps.apps[1].state, AppState::Ready);
    assert!(!process_tree::is_alive(apps[0].pid.unwrap()));

    let tree = process_tree::descendants(shell.pid());
    // SAFETY: sends SIGTERM to the shell this test started.
    unsafe { libc::kill(shell.pid() as i32, libc::SIGTERM) };
    assert!(shell.wait_exit(SLOW).success());
    assert!(wait_gone(&tree, Duration::from_secs(10)).is_empty());
}

#[test]
fn the_control_panel_runs_the_demo_and_closes_on_weft_stop() {
    let env = TestEnv::new();
    let mut shell = Shell::start(env, &[]);
    let apps = shell.wait_ready(3);
    let ids: Vec<_> = apps.iter().map(|a| a.app_id.as_str()).collect();
    assert_eq!(ids, ["watchlist", "chart", "news"]);

    // A second plain `weft` brings the running shell forward instead of starting the
    // demo again.
    let out = shell.env.weft(Some(&shell.display)).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"));
    assert_eq!(shell.ps().unwrap().apps.len(), 3);

    // The panel window is on the display.
    wait_for("the control panel window", SLOW, || {
        let out = std::process::Command::new("xwininfo")
            .args(["-root", "-tree", "-display", &shell.display.name()])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .contains("\"Weft\"")
            .then_some(())
    });

    // The demo apps interoperate: a selection (what the watchlist publishes when a row
    // is clicked) makes the chart page draw and publish the day's range for the news.
    runtime().block_on(async {
        let client = shell.client().await;
        let mut ranges = client.subscribe(&topic("demo.chart.range")).await.unwrap();
        client
            .publish(
                &topic("demo.instrument.selected"),
                r#"{"symbol":"AAPL","name":"Apple Inc.","price":189.84}"#,
            )
            .await
            .unwrap();
        let range = within("the chart's range", ranges.next()).await.unwrap();
        assert_eq!(range.sender.app_id, "chart");
        let body: Value = serde_json::from_slice(&range.payload).unwrap();
        assert_eq!(body["symbol"], "AAPL");
        assert!(body["low"].as_f64().unwrap() <= body["high"].as_f64().unwrap());
    });
    assert!(shell.display.screenshot(&shell.env.path("panel.png")));

    let out = shell.env.run_weft(&["stop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shell.wait_exit(SLOW).success());
}
