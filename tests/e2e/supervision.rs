//! Supervision end to end: real shells, real app processes and WebKit pages under a
//! private Xvfb, killed with SIGKILL. Runs in the nextest `webview` group (one WebKit
//! test at a time across binaries) and under `webview_lock`.

use std::time::{Duration, Instant};

use serde_json::json;
use weft_e2e::{SLOW, Shell, TestEnv, http_get, process_tree, runtime, topic, wait_for, within};
use weft_proto::frame::{AppInfo, AppState, IdentityFilter};

fn kill_9(pid: u32) {
    // SAFETY: kill only sends a signal, to an app process this test's shell started.
    let r = unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    assert_eq!(r, 0, "kill -9 {pid}");
}

fn app<'a>(apps: &'a [AppInfo], app_id: &str) -> &'a AppInfo {
    apps.iter()
        .find(|a| a.app_id == app_id)
        .unwrap_or_else(|| panic!("{app_id} is not listed: {apps:?}"))
}

/// The app `bystander` (an echo page) is ready, was never restarted, and answers.
fn assert_bystander_unharmed(
    shell: &Shell,
    rt: &tokio::runtime::Runtime,
    client: &weft_client::Client,
) {
    let ps = shell.ps().unwrap();
    assert_eq!(app(&ps.apps, "bystander").state, AppState::Ready);
    assert_eq!(app(&ps.apps, "bystander").restarts, 0);
    rt.block_on(async {
        let mut pongs = client.subscribe(&topic("e2e.pong")).await.unwrap();
        client.publish(&topic("e2e.ping"), "1").await.unwrap();
        within("the bystander's answer", pongs.next())
            .await
            .unwrap();
    });
}

/// Waits until `app_id` is ready again after its `restarts`-th restart, and returns it.
fn ready_after_restart(shell: &mut Shell, app_id: &str, restarts: u32) -> AppInfo {
    wait_for(
        &format!("{app_id} to be ready after restart {restarts}"),
        SLOW,
        || {
            shell.assert_alive();
            let ps = shell.ps()?;
            let a = app(&ps.apps, app_id).clone();
            (a.state == AppState::Ready && a.restarts == restarts).then_some(a)
        },
    )
}

#[test]
fn a_killed_app_comes_back_while_the_others_keep_talking_without_a_gap() {
    let env = TestEnv::new();
    let ws = env.workspace(
        "isolation",
        &[
            ("talker", "ticker/index.html"),
            ("listener", "ticker/index.html"),
            ("victim", "echo/index.html"),
        ],
    );
    let mut shell = Shell::launch(env, &ws);
    let rt = runtime();
    let client = rt.block_on(shell.client_when_listening());
    let mut ticker_ready = rt
        .block_on(client.subscribe(&topic("e2e.ticker.ready")))
        .unwrap();
    let mut heard = rt.block_on(client.subscribe(&topic("e2e.heard"))).unwrap();
    let apps = shell.wait_ready(3);
    let victim = app(&apps, "victim").clone();

    rt.block_on(async {
        for _ in 0..2 {
            within("the ticker pages", ticker_ready.next())
                .await
                .unwrap();
        }
        client.publish(&topic("e2e.start"), "{}").await.unwrap();
    });

    // Listen to the exchange for a while before, during and after the kill.
    let mut last: Option<(i64, Instant)> = None;
    let mut worst_gap = Duration::ZERO;
    let mut count = 0;
    let mut listen = |rt: &tokio::runtime::Runtime, for_how_long: Duration| {
        let until = Instant::now() + for_how_long;
        rt.block_on(async {
            while Instant::now() < until {
                let d = within("the exchange", heard.next()).await.unwrap();
                let n: i64 = serde_json::from_slice(&d.payload).unwrap();
                let now = Instant::now();
                if let Some((prev, at)) = last {
                    assert_eq!(n, prev + 1, "a message was lost or reordered");
                    worst_gap = worst_gap.max(now - at);
                }
                last = Some((n, now));
                count += 1;
            }
        });
    };
    listen(&rt, Duration::from_millis(500));
    kill_9(victim.pid.unwrap());
    listen(&rt, Duration::from_millis(1500));

    let back = ready_after_restart(&mut shell, "victim", 1);
    listen(&rt, Duration::from_millis(300));
    eprintln!("exchanged {count} messages, worst gap {worst_gap:?}");
    assert!(count > 50, "only {count} messages were exchanged");
    assert!(
        worst_gap < Duration::from_millis(100),
        "the exchange stalled for {worst_gap:?} while an app was killed and restarted"
    );

    // Same identity, new process, reachable on the bus.
    assert_eq!(back.instance_id, victim.instance_id);
    assert_ne!(back.pid, victim.pid);
    assert!(
        back.exit.as_deref().unwrap_or("").contains("signal 9"),
        "{back:?}"
    );
    rt.block_on(async {
        let mut pongs = client.subscribe(&topic("e2e.pong")).await.unwrap();
        let to = IdentityFilter {
            app_id: "victim".into(),
            instance_id: None,
        };
        client
            .send(&to, &topic("e2e.ping"), r#"{"again":true}"#)
            .await
            .unwrap();
        let pong = within("the restarted app's answer", pongs.next())
            .await
            .unwrap();
        assert_eq!(pong.sender.instance_id, victim.instance_id);
    });
    assert!(shell.log_text().contains("restarting victim"));
}

#[test]
fn quick_crashes_trip_the_breaker_and_spaced_ones_never_do() {
    let env = TestEnv::new();
    let ws = env.workspace_with(
        "crashloop",
        &[
            (
                "looping",
                "echo/index.html",
                json!({"crashLoopSecs": 30, "maxCrashes": 3}),
            ),
            (
                "spaced",
                "echo/index.html",
                json!({"crashLoopSecs": 1, "maxCrashes": 2}),
            ),
        ],
    );
    let mut shell = Shell::launch(env, &ws);
    let apps = shell.wait_ready(2);

    // `looping` dies right after each start: the third death in a row ends it.
    let mut pid = app(&apps, "looping").pid.unwrap();
    for restarts in 1..=2 {
        kill_9(pid);
        pid = ready_after_restart(&mut shell, "looping", restarts)
            .pid
            .unwrap();
    }
    kill_9(pid);
    let failed = wait_for("looping to be marked failed", SLOW, || {
        let ps = shell.ps()?;
        let a = app(&ps.apps, "looping").clone();
        (a.state == AppState::Failed).then_some(a)
    });
    assert_eq!(failed.restarts, 2);
    assert!(shell.log_text().contains("not restarted again (failed)"));
    // /health says so too, with 503 for the monitoring that polls it.
    let metrics = shell.ps().unwrap().metrics_url.expect("metrics are on");
    let (status, body) = http_get(&metrics.replace("/metrics", "/health"));
    assert_eq!(status, 503, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "failing", "{body}");
    let looping = health["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["appId"] == "looping")
        .expect("looping in /health");
    assert_eq!(looping["state"], "failed", "{body}");
    assert_eq!(looping["status"], "failing", "{body}");

    // `spaced` dies once it has been ready for longer than its 1 s window, more times
    // than its breaker allows in a row: it is restarted every time.
    let mut pid = app(&apps, "spaced").pid.unwrap();
    for restarts in 1..=3 {
        // The scenario's spacing, not synchronisation: the app has been ready since
        // before this point.
        std::thread::sleep(Duration::from_millis(1300));
        kill_9(pid);
        pid = ready_after_restart(&mut shell, "spaced", restarts)
            .pid
            .unwrap();
    }
    // The failed app stays failed and is not restarted behind the user's back.
    let ps = shell.ps().unwrap();
    assert_eq!(app(&ps.apps, "looping").state, AppState::Failed);
    assert_eq!(app(&ps.apps, "looping").restarts, 2);
}

#[test]
fn never_means_never_and_a_stopped_app_stays_stopped() {
    let env = TestEnv::new();
    let ws = env.workspace_with(
        "never",
        &[
            ("once", "echo/index.html", json!({"restart": "never"})),
            ("kept", "echo/index.html", json!({})),
        ],
    );
    let mut shell = Shell::launch(env, &ws);
    let apps = shell.wait_ready(2);
    kill_9(app(&apps, "once").pid.unwrap());
    let crashed = wait_for("once to be marked crashed", SLOW, || {
        let ps = shell.ps()?;
        let a = app(&ps.apps, "once").clone();
        (a.state == AppState::Crashed).then_some(a)
    });
    assert_eq!(crashed.restarts, 0);

    // Stopping on purpose is not a crash: no restart.
    let kept = app(&apps, "kept").clone();
    let rt = runtime();
    rt.block_on(async {
        let client = shell.client().await;
        let reply = client
            .control(weft_proto::frame::ControlRequest::StopApp {
                instance_id: kept.instance_id.clone(),
            })
            .await;
        assert!(reply.is_ok(), "{reply:?}");
    });
    let stopped = wait_for("kept to stop", SLOW, || {
        let ps = shell.ps()?;
        let a = app(&ps.apps, "kept").clone();
        (a.state == AppState::Stopped).then_some(a)
    });
    assert_eq!(stopped.restarts, 0);
}

#[test]
fn a_killed_web_process_is_replaced_and_the_page_loaded_again() {
    let env = TestEnv::new();
    let ws = env.workspace("webproc", &[("echo", "echo/index.html")]);
    let mut shell = Shell::launch(env, &ws);
    let apps = shell.wait_ready(1);
    let host = apps[0].pid.unwrap();
    let web_process = || {
        process_tree::descendants(host)
            .into_iter()
            .filter_map(process_tree::read)
            .find(|p| p.comm.starts_with("WebKitWebProces"))
            .map(|p| p.pid)
    };
    let before = wait_for("the page's web process", SLOW, web_process);
    kill_9(before);

    let after = wait_for("a new web process", SLOW, || {
        web_process().filter(|pid| *pid != before)
    });
    assert!(process_tree::is_alive(host), "the host itself must survive");
    // The page is back: loaded again, subscribed, answering.
    let rt = runtime();
    rt.block_on(async {
        let client = shell.client().await;
        let mut pongs = client.subscribe(&topic("e2e.pong")).await.unwrap();
        let answered = within("the reloaded page's answer", async {
            loop {
                client.publish(&topic("e2e.ping"), "1").await.unwrap();
                if let Ok(Some(pong)) =
                    tokio::time::timeout(Duration::from_millis(500), pongs.next()).await
                {
                    break pong;
                }
            }
        })
        .await;
        assert_eq!(answered.sender.instance_id, apps[0].instance_id);
    });
    let ps = shell.ps().unwrap();
    assert_eq!(ps.apps[0].state, AppState::Ready);
    assert_eq!(ps.apps[0].pid, Some(host));
    assert_eq!(ps.apps[0].restarts, 0);
    assert!(process_tree::is_alive(after));
    // The host says so in the app's log.
    let log = shell.app_log("echo");
    assert!(log.contains("the page's web process ended"), "{log}");
}

#[test]
fn a_restarted_app_gets_its_window_back_where_the_user_left_it() {
    let env = TestEnv::new();
    let ws = env.workspace("bounds", &[("mover", "echo/index.html")]);
    let mut shell = Shell::launch(env, &ws);
    let apps = shell.wait_ready(1);

    // The user moves and resizes the window; its host tells the shell.
    let window = shell.window_of("mover");
    shell.xdotool(&[
        "windowsize",
        &window,
        "350",
        "260",
        "windowmove",
        &window,
        "333",
        "222",
    ]);
    let moved = wait_for("the shell to learn the new bounds", SLOW, || {
        let ps = shell.ps()?;
        let b = ps.apps[0].bounds?;
        (b.width == 350 && b.height == 260 && b.x == 333 && b.y == 222).then_some(b)
    });

    kill_9(apps[0].pid.unwrap());
    ready_after_restart(&mut shell, "mover", 1);
    let window = shell.window_of("mover");
    assert_eq!(
        shell.geometry(&window),
        (moved.x, moved.y, moved.width, moved.height)
    );
}

#[test]
fn a_page_in_an_endless_loop_is_noticed_within_3_s_and_restarted_after_its_grace() {
    let env = TestEnv::new();
    let ws = env.workspace_with(
        "hang",
        &[
            ("stuck", "frozen/index.html", json!({"hangGraceSecs": 1})),
            ("bystander", "echo/index.html", json!({})),
        ],
    );
    let mut shell = Shell::launch(env, &ws);
    let apps = shell.wait_ready(2);
    let stuck = app(&apps, "stuck").clone();
    let rt = runtime();
    let client = rt.block_on(shell.client());

    rt.block_on(client.publish(&topic("e2e.freeze"), "{}"))
        .unwrap();
    let frozen_at = Instant::now();
    wait_for("stuck to be marked not responding", SLOW, || {
        let ps = shell.ps()?;
        (app(&ps.apps, "stuck").state == AppState::NotResponding).then_some(())
    });
    let noticed = frozen_at.elapsed();
    eprintln!("the hang was noticed after {noticed:?}");
    assert!(
        noticed < Duration::from_secs(3),
        "noticed after {noticed:?}"
    );

    // Nobody to ask (no panel): after its 1 s grace it is killed and restarted.
    let back = ready_after_restart(&mut shell, "stuck", 1);
    assert_eq!(back.instance_id, stuck.instance_id);
    assert_ne!(back.pid, stuck.pid);
    assert!(shell.log_text().contains("not responding for more than"));

    // The other app was never held up.
    assert_bystander_unharmed(&shell, &rt, &client);
}

#[test]
fn a_host_gone_silent_is_not_responding_until_it_speaks_again() {
    let env = TestEnv::new();
    let ws = env.workspace("silent", &[("sleeper", "echo/index.html")]);
    let mut shell = Shell::launch(env, &ws);
    let apps = shell.wait_ready(1);
    let pid = apps[0].pid.unwrap() as i32;

    // SAFETY: kill only sends a signal, to an app process this test's shell started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let stopped_at = Instant::now();
    wait_for("the silent host to be marked not responding", SLOW, || {
        let ps = shell.ps()?;
        (ps.apps[0].state == AppState::NotResponding).then_some(())
    });
    let noticed = stopped_at.elapsed();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    assert!(
        noticed >= Duration::from_secs(3) && noticed < Duration::from_secs(6),
        "noticed after {noticed:?}"
    );
    // Its heartbeat resumes: ready again, same process, no restart.
    let ps = wait_for("the host to be ready again", SLOW, || {
        let ps = shell.ps()?;
        (ps.apps[0].state == AppState::Ready).then_some(ps)
    });
    assert_eq!(ps.apps[0].pid, apps[0].pid);
    assert_eq!(ps.apps[0].restarts, 0);
}

#[test]
fn ps_reports_each_apps_uptime_cpu_memory_and_heartbeat() {
    let env = TestEnv::new();
    let ws = env.workspace("health", &[("echo", "echo/index.html")]);
    let mut shell = Shell::launch(env, &ws);
    shell.wait_ready(1);
    // Memory is sampled every 5 s, CPU every second.
    let a = wait_for("the health figures", SLOW, || {
        let ps = shell.ps()?;
        let a = ps.apps[0].clone();
        (a.memory_pss_kb.is_some() && a.cpu_percent.is_some() && a.uptime_secs >= Some(1))
            .then_some(a)
    });
    // A WebKit page with its host and helpers takes tens of megabytes.
    let pss = a.memory_pss_kb.unwrap();
    assert!((20_000..2_000_000).contains(&pss), "PSS {pss} KiB");
    let cpu = a.cpu_percent.unwrap();
    assert!((0.0..=200.0).contains(&cpu), "CPU {cpu} %");
    let age = a.heartbeat_age_ms.expect("a heartbeat");
    assert!(age < 3000, "last heartbeat {age} ms ago");

    let text = shell.env.run_weft(&["ps"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("CPU%") && text.contains("MEM(MB)"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("echo "))
        .expect("a row");
    assert!(!row.contains(" - "), "every figure is shown: {row}");
}

/// Runs a page that takes memory without end, limited to 400 MB, beside an echo page
/// (with `config` as the shell's config.toml); checks that it is stopped and restarted
/// and that the other app is unharmed. Returns how its limit was enforced, and the log.
fn hog_is_stopped_and_restarted(config: &str) -> (String, String) {
    let env = TestEnv::new();
    env.write_config(config);
    let ws = env.workspace_with(
        "limits",
        &[
            (
                "hog",
                "hog/index.html",
                json!({"limits": {"memoryMb": 400}}),
            ),
            ("bystander", "echo/index.html", json!({})),
        ],
    );
    let mut shell = Shell::launch(env, &ws);
    let apps = shell.wait_ready(2);
    let hog = app(&apps, "hog").clone();
    assert_eq!(hog.memory_limit_mb, Some(400));
    let mechanism = hog
        .limits_enforced_by
        .clone()
        .expect("a mechanism is named");

    let rt = runtime();
    let client = rt.block_on(shell.client());
    rt.block_on(client.publish(&topic("e2e.hog"), "{}"))
        .unwrap();
    let back = ready_after_restart(&mut shell, "hog", 1);
    assert_eq!(back.instance_id, hog.instance_id);
    assert!(
        back.exit.as_deref().unwrap_or("").contains("signal 9"),
        "{back:?}"
    );
    let log = shell.log_text();
    assert!(log.contains("exceeded its memory limit"), "{log}");
    assert_bystander_unharmed(&shell, &rt, &client);
    (mechanism, log)
}

#[test]
fn an_app_past_its_memory_limit_is_stopped_by_the_pss_watchdog_when_told_to() {
    let (mechanism, _) = hog_is_stopped_and_restarted("[limits]\ncgroups = false\n");
    assert_eq!(mechanism, "pss-watchdog");
}

#[test]
fn an_app_past_its_memory_limit_is_stopped_by_its_control_group_where_there_is_one() {
    let (mechanism, log) = hog_is_stopped_and_restarted("");
    // Control groups where this machine lets the shell make them (here: cgroup v1
    // memory as root, or a delegated v2 subtree); the watchdog otherwise.
    if log.contains("app limits are enforced with control groups") {
        assert!(mechanism.starts_with("cgroup-v"), "{mechanism}");
        assert!(
            log.contains("the kernel stopped a process in its control group"),
            "{log}"
        );
    } else {
        assert_eq!(mechanism, "pss-watchdog");
    }
}

#[test]
fn the_web_inspector_opens_on_request() {
    let env = TestEnv::new();
    let ws = env.workspace("inspect", &[("inspected", "echo/index.html")]);
    let mut shell = Shell::launch(env, &ws);
    let apps = shell.wait_ready(1);
    let inspectors =
        |shell: &Shell| shell.xdotool(&["search", "--onlyvisible", "--name", "Inspector"]);
    assert_eq!(inspectors(&shell).trim(), "", "no inspector before asking");

    let rt = runtime();
    rt.block_on(async {
        let client = shell.client().await;
        let reply = client
            .control(weft_proto::frame::ControlRequest::OpenInspector {
                instance_id: apps[0].instance_id.clone(),
            })
            .await;
        assert!(reply.is_ok(), "{reply:?}");
        let unknown = client
            .control(weft_proto::frame::ControlRequest::OpenInspector {
                instance_id: "nobody".into(),
            })
            .await;
        assert!(unknown.is_err());
    });
    wait_for("the web inspector's window", SLOW, || {
        let found = inspectors(&shell);
        (!found.trim().is_empty()).then_some(())
    });
}
