//! End-to-end tests of FDC3 with real shells and real WebKit pages under a private
//! Xvfb display: apps launched from App Directories. They run one at a time (the
//! nextest `webview` test group).

use std::time::Duration;

use serde_json::{Value, json};
use weft_e2e::{PageService, Shell, TestEnv, runtime, topic, within};

fn web(app_id: &str, title: &str, page: &str) -> serde_json::Value {
    json!({"appId": app_id, "title": title, "type": "web", "details": {"url": page}})
}

fn hand_over(shell: &Shell, args: &[&str]) {
    let out = shell
        .env
        .weft(Some(&shell.display))
        .args(args)
        .output()
        .expect("running weft");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    assert!(stderr.contains("handed over"), "{stderr}");
}

#[test]
fn apps_launch_from_app_directories_alone_by_handover_and_from_a_workspace() {
    let env = TestEnv::new();
    let appd = env.app_directory(
        "appd",
        &[
            web("alpha", "Alpha", "echo/index.html"),
            web("beta", "Beta", "echo/index.html"),
            web("gamma", "Gamma", "echo/index.html"),
            json!({"appId": "broken", "type": "web", "details": {"url": "echo/index.html"}}),
        ],
    );
    let appd_arg = appd.to_str().unwrap().to_owned();
    let workspace = env.fixtures().join("from-appd.json");
    std::fs::write(
        &workspace,
        json!({"name": "From AppD", "appDirectories": ["appd.json"], "apps": [{"appId": "gamma"}]})
            .to_string(),
    )
    .unwrap();

    // Nothing to launch: refused before a shell starts, naming what the directory holds.
    let out = env.run_weft(&[
        "launch",
        "--appd",
        &appd_arg,
        "--app",
        "delta",
        "--no-panel",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "--app delta: no App Directory has this appId (they hold: alpha, beta, gamma)"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("(appId \"broken\"): field `title`"),
        "{stderr}"
    );

    let mut shell = Shell::start(
        env,
        &[
            "launch",
            "--appd",
            &appd_arg,
            "--app",
            "alpha",
            "--no-panel",
        ],
    );
    let apps = shell.wait_ready(1);
    assert_eq!(apps[0].app_id, "alpha");
    assert!(
        shell.log_text().contains("App Directories read"),
        "{}",
        shell.log_text()
    );

    hand_over(
        &shell,
        &["launch", "--appd", &appd_arg, "--app", "beta", "--no-panel"],
    );
    hand_over(
        &shell,
        &["launch", workspace.to_str().unwrap(), "--no-panel"],
    );
    let apps = shell.wait_ready(3);
    let ids: Vec<_> = apps.iter().map(|a| a.app_id.as_str()).collect();
    assert_eq!(ids, ["alpha", "beta", "gamma"]);
}

/// Drives the `fdc3` fixture page of one app through its RPC service.
struct Page(PageService);

impl Page {
    async fn of(client: &weft_client::Client, app_id: &str) -> Page {
        Page(PageService::connect(client, &format!("e2e.fdc3.{app_id}")).await)
    }

    async fn action(&self, action: &str, args: Value) -> Value {
        self.0.action(action, args).await
    }

    /// `fdc3[method](...args)`: its result, or the error it threw.
    async fn call(&self, method: &str, args: Value) -> Result<Value, String> {
        let outcome = self
            .action("call", json!({"method": method, "args": args}))
            .await;
        match outcome.get("error") {
            Some(e) => Err(e.as_str().unwrap_or_default().to_owned()),
            None => Ok(outcome["ok"].clone()),
        }
    }
}

fn fdc3_workspace(env: &TestEnv, apps: &[&str]) -> std::path::PathBuf {
    let apps: Vec<(&str, &str)> = apps.iter().map(|a| (*a, "fdc3/index.html")).collect();
    env.workspace("fdc3", &apps)
}

#[test]
fn window_fdc3_is_there_first_and_a_broadcast_reaches_another_process() {
    let env = TestEnv::new();
    let ws = fdc3_workspace(&env, &["alice", "bob"]);
    let mut shell = Shell::launch(env, &ws);
    let apps = shell.wait_ready(2);
    runtime().block_on(async {
        let client = shell.client().await;
        let mut heard = client.subscribe(topic("e2e.fdc3.heard")).await.unwrap();
        let (alice, bob) = (
            Page::of(&client, "alice").await,
            Page::of(&client, "bob").await,
        );

        // window.fdc3 existed before the page's first script, fdc3Ready fired, and the
        // standard's getAgent() found it.
        for page in [&alice, &bob] {
            let started = page.action("started", json!(null)).await;
            assert_eq!(
                started,
                json!({"fdc3AtStart": true, "ready": true, "getAgent": true})
            );
        }
        let info = alice.call("getInfo", json!([])).await.unwrap();
        assert_eq!(info["fdc3Version"], "2.2");
        assert_eq!(info["provider"], "Weft");
        assert_eq!(info["appMetadata"]["appId"], "alice");
        let alice_instance = apps.iter().find(|a| a.app_id == "alice").unwrap();
        assert_eq!(
            info["appMetadata"]["instanceId"],
            alice_instance.instance_id.as_str()
        );

        let channels = alice.call("getUserChannels", json!([])).await.unwrap();
        assert_eq!(channels.as_array().unwrap().len(), 8);
        for page in [&alice, &bob] {
            page.call("joinUserChannel", json!(["fdc3.channel.1"]))
                .await
                .unwrap();
        }
        assert_eq!(
            bob.action("listen", json!({"contextType": "fdc3.instrument"}))
                .await["ok"],
            true
        );
        let aapl = json!({"type": "fdc3.instrument", "id": {"ticker": "AAPL"}});
        alice.call("broadcast", json!([aapl])).await.unwrap();
        let d = within("bob hearing alice's broadcast", heard.next())
            .await
            .unwrap();
        let report: Value = serde_json::from_slice(&d.payload).unwrap();
        assert_eq!(report, json!({"by": "bob", "context": aapl}));
        let current = bob.call("getCurrentChannel", json!([])).await.unwrap();
        assert_eq!(current["id"], "fdc3.channel.1");

        // A page forging another app's identity in a raw protocol message is not
        // believed: the join applies to the page that really sent it.
        alice
            .action(
                "raw",
                json!({
                    "type": "joinUserChannelRequest",
                    "meta": {"requestUuid": "forged-1", "timestamp": "2026-11-22T10:00:00Z",
                             "source": {"appId": "bob", "instanceId": "forged"}},
                    "payload": {"channelId": "fdc3.channel.3"}
                }),
            )
            .await;
        let alice_now = wait_for_channel(&alice, "fdc3.channel.3").await;
        assert_eq!(alice_now["id"], "fdc3.channel.3");
        let bob_now = bob.call("getCurrentChannel", json!([])).await.unwrap();
        assert_eq!(bob_now["id"], "fdc3.channel.1", "bob was not moved");

        // The forms 2.2 deprecates still work: system channels, joinChannel, an app
        // named by a string. An app of the workspace, in no App Directory, can be
        // opened by appId (bob runs: that instance is brought forward).
        let system = alice.call("getSystemChannels", json!([])).await.unwrap();
        assert_eq!(system.as_array().unwrap().len(), 8);
        alice
            .call("joinChannel", json!(["fdc3.channel.2"]))
            .await
            .unwrap();
        let current = alice.call("getCurrentChannel", json!([])).await.unwrap();
        assert_eq!(current["id"], "fdc3.channel.2");
        let opened = alice.call("open", json!(["bob"])).await.unwrap();
        assert_eq!(opened["appId"], "bob");
        let bob_instance = apps.iter().find(|a| a.app_id == "bob").unwrap();
        assert_eq!(opened["instanceId"], bob_instance.instance_id.as_str());
        let info = alice
            .call("getAppMetadata", json!([{"appId": "bob"}]))
            .await
            .unwrap();
        assert_eq!(info, json!({"appId": "bob", "title": "bob"}));
    });
    let apps = shell.ps().expect("ps").apps;
    let bobs = apps.iter().filter(|a| a.app_id == "bob").count();
    assert_eq!(bobs, 1, "no second bob: {apps:?}");
}

/// Polls `getCurrentChannel` until it is `id` (the raw message has no answer the
/// test can wait on).
async fn wait_for_channel(page: &Page, id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let current = page.call("getCurrentChannel", json!([])).await.unwrap();
        if current["id"] == id || std::time::Instant::now() > deadline {
            return current;
        }
        tokio::task::yield_now().await;
    }
}

/// The App Directory record of `pricer`, at `page`, listening for `intents`.
fn pricer_record(page: &str, intents: Value) -> Value {
    json!({"appId": "pricer", "title": "Pricer", "type": "web", "details": {"url": page},
           "interop": {"intents": {"listensFor": intents}}})
}

/// A shell launched from an App Directory of `asker` (the fdc3 page) and `other`,
/// with `asker` running and ready.
fn asker_with(other: Value) -> Shell {
    let env = TestEnv::new();
    let appd = env.app_directory("appd", &[web("asker", "Asker", "fdc3/index.html"), other]);
    let mut shell = Shell::start(
        env,
        &[
            "launch",
            "--appd",
            appd.to_str().unwrap(),
            "--app",
            "asker",
            "--no-panel",
        ],
    );
    shell.wait_ready(1);
    shell
}

#[test]
fn raise_intent_launches_its_app_returns_its_result_and_private_channels_round_trip() {
    let pricer = pricer_record(
        "fdc3/index.html?intents=GetPrice,StartChat&listen=1",
        json!({
            "GetPrice": {"contexts": ["fdc3.instrument"], "resultType": "fdc3.valuation"},
            "StartChat": {"contexts": ["fdc3.contact"], "resultType": "channel"}
        }),
    );
    let mut shell = asker_with(pricer);
    runtime().block_on(async {
        let client = shell.client().await;
        let mut intents = client.subscribe(topic("e2e.fdc3.intent")).await.unwrap();
        let mut heard = client.subscribe(topic("e2e.fdc3.heard")).await.unwrap();
        let mut chat = client.subscribe(topic("e2e.fdc3.chat")).await.unwrap();
        let asker = Page::of(&client, "asker").await;

        // pricer is not running: the intent launches it and waits for its listener.
        let aapl = json!({"type": "fdc3.instrument", "id": {"ticker": "AAPL"}});
        let raised = asker
            .action("raise", json!({"intent": "GetPrice", "context": aapl}))
            .await;
        assert_eq!(raised["intent"], "GetPrice", "{raised}");
        assert_eq!(raised["source"]["appId"], "pricer");
        assert_eq!(
            raised["result"],
            json!({"type": "fdc3.valuation", "price": 42, "of": aapl})
        );
        let d = within("the intent at the pricer", intents.next())
            .await
            .unwrap();
        let delivered: Value = serde_json::from_slice(&d.payload).unwrap();
        assert_eq!(delivered["context"], aapl);
        assert_eq!(delivered["source"]["appId"], "asker");
        let pricer_instance = raised["source"]["instanceId"].as_str().unwrap().to_owned();

        // A private channel: handed back as the result, used both ways, disconnected.
        let jane = json!({"type": "fdc3.contact", "name": "Jane"});
        let chatted = asker.action("chat", json!({"context": jane})).await;
        assert_eq!(
            chatted,
            json!({"channel": "private", "echo": {"type": "fdc3.chat.message", "text": "echo: hi"}})
        );
        let d = within("the pricer hearing the disconnect", chat.next())
            .await
            .unwrap();
        let event: Value = serde_json::from_slice(&d.payload).unwrap();
        assert_eq!(event, json!({"by": "pricer", "event": "disconnected"}));

        // open of an app that runs: that instance is brought to front (not another
        // started) and handed the context, as it listens for it.
        let msft = json!({"type": "fdc3.instrument", "id": {"ticker": "MSFT"}});
        let opened = asker
            .call("open", json!([{"appId": "pricer"}, msft]))
            .await
            .unwrap();
        assert_eq!(opened["appId"], "pricer");
        assert_eq!(opened["instanceId"], pricer_instance.as_str());
        let d = within("the opened pricer hearing the context", heard.next())
            .await
            .unwrap();
        let report: Value = serde_json::from_slice(&d.payload).unwrap();
        assert_eq!(report, json!({"by": "pricer", "context": msft}));
        let unknown = asker.call("open", json!([{"appId": "nobody"}])).await;
        assert_eq!(unknown, Err("AppNotFound".into()));
    });
    let apps = shell.wait_ready(2);
    let ids: Vec<_> = apps.iter().map(|a| a.app_id.as_str()).collect();
    assert_eq!(ids, ["asker", "pricer"], "open started no second pricer");
}

#[test]
fn an_app_that_calls_window_close_goes_and_its_private_channels_hear_it() {
    let pricer = pricer_record(
        "fdc3/index.html?intents=StartChat",
        json!({"StartChat": {"contexts": ["fdc3.contact"], "resultType": "channel"}}),
    );
    let shell = asker_with(pricer);
    runtime().block_on(async {
        let client = shell.client().await;
        let mut chat = client.subscribe(topic("e2e.fdc3.chat")).await.unwrap();
        let asker = Page::of(&client, "asker").await;
        let jane = json!({"type": "fdc3.contact", "name": "Jane"});
        let kept = asker.action("chatKeep", json!({"context": jane})).await;
        assert!(
            kept["ok"].as_str().unwrap().starts_with("private."),
            "{kept}"
        );
        let running = asker
            .call("findInstances", json!([{"appId": "pricer"}]))
            .await
            .unwrap();
        assert_eq!(running.as_array().unwrap().len(), 1);

        let pricer = Page::of(&client, "pricer").await;
        assert_eq!(pricer.action("close", json!(null)).await["ok"], true);
        let d = within("the asker hearing the pricer go", chat.next())
            .await
            .unwrap();
        let event: Value = serde_json::from_slice(&d.payload).unwrap();
        assert_eq!(event, json!({"by": "asker", "event": "disconnected"}));
        let running = asker
            .call("findInstances", json!([{"appId": "pricer"}]))
            .await
            .unwrap();
        assert_eq!(running, json!([]), "its instance is dropped");
    });
    // Its process is gone, having exited with success (not a crash).
    let apps = weft_e2e::wait_for("the pricer to exit", weft_e2e::SLOW, || {
        let ps = shell.ps()?;
        let pricer = ps.apps.iter().find(|a| a.app_id == "pricer")?;
        pricer.state.is_final().then(|| ps.apps.clone())
    });
    let pricer = apps.iter().find(|a| a.app_id == "pricer").unwrap();
    assert_eq!(
        pricer.state,
        weft_proto::frame::AppState::Stopped,
        "{pricer:?}"
    );
}

#[test]
fn the_intent_resolver_asks_over_the_raising_app_and_the_keyboard_answers() {
    let env = TestEnv::new();
    let charting = |app_id: &str, title: &str| {
        json!({"appId": app_id, "title": title, "type": "web",
               "details": {"url": "fdc3/index.html?intents=ViewChart"},
               "interop": {"intents": {"listensFor": {"ViewChart": {"contexts": ["fdc3.instrument"]}}}}})
    };
    let appd = env.app_directory(
        "appd",
        &[
            web("asker", "Asker", "fdc3/index.html"),
            charting("chart", "Chart"),
            charting("pricer", "Pricer"),
        ],
    );
    // With the control panel: its event loop shows the resolver.
    let mut shell = Shell::start(
        env,
        &["launch", "--appd", appd.to_str().unwrap(), "--app", "asker"],
    );
    shell.wait_ready(1);
    let asker_window = shell.geometry(&shell.window_of("Asker"));
    // Worker threads run the raises while this thread waits for windows.
    weft_e2e::threaded_runtime().block_on(async {
        let client = shell.client().await;
        let asker = std::sync::Arc::new(Page::of(&client, "asker").await);
        let aapl = json!({"type": "fdc3.instrument", "id": {"ticker": "AAPL"}});
        let raise = |asker: std::sync::Arc<Page>| {
            let aapl = aapl.clone();
            tokio::spawn(async move {
                asker
                    .action("raise", json!({"intent": "ViewChart", "context": aapl}))
                    .await
            })
        };

        // Escape cancels.
        let raised = raise(asker.clone());
        let resolver = shell.window_of("Weft: choose an app");
        let (x, y, w, h) = shell.geometry(&resolver);
        let centre = |x: i32, w: u32| x + w as i32 / 2;
        assert!(
            (centre(x, w) - centre(asker_window.0, asker_window.2)).abs() < 80
                && (centre(y, h) - centre(asker_window.1, asker_window.3)).abs() < 80,
            "the resolver {:?} is over the asker {asker_window:?}",
            (x, y, w, h)
        );
        shell.xdotool(&["windowfocus", "--sync", &resolver, "key", "Escape"]);
        let outcome = within("the cancelled raise", raised).await.unwrap();
        assert_eq!(outcome, json!({"error": "UserCancelledResolution"}));

        // 2 chooses the second app: a new Pricer gets the intent. (A window of its own:
        // the last one may not be gone yet.)
        let raised = raise(asker.clone());
        let first = resolver;
        let resolver = weft_e2e::wait_for("the second question's window", weft_e2e::SLOW, || {
            let found =
                shell.xdotool(&["search", "--onlyvisible", "--name", "^Weft: choose an app$"]);
            found.lines().find(|id| *id != first).map(str::to_owned)
        });
        shell.xdotool(&["windowfocus", "--sync", &resolver, "key", "2"]);
        let outcome = within("the resolved raise", raised).await.unwrap();
        assert_eq!(outcome["source"]["appId"], "pricer", "{outcome}");
        assert_eq!(outcome["result"], Value::Null, "ViewChart returns nothing");
    });
    let apps = shell.wait_ready(2);
    let ids: Vec<_> = apps.iter().map(|a| a.app_id.as_str()).collect();
    assert_eq!(ids, ["asker", "pricer"]);
}

#[test]
fn an_app_window_shows_its_channel_and_the_user_changes_it_there() {
    let env = TestEnv::new();
    let ws = fdc3_workspace(&env, &["alice", "bob"]);
    // With the control panel: its event loop shows the channel selector.
    let mut shell = Shell::start(env, &["launch", ws.to_str().unwrap()]);
    shell.wait_ready(2);
    let bob_window = shell.geometry(&shell.window_of("bob"));
    weft_e2e::threaded_runtime().block_on(async {
        let client = shell.client().await;
        let mut heard = client.subscribe(topic("e2e.fdc3.heard")).await.unwrap();
        let (alice, bob) = (
            Page::of(&client, "alice").await,
            Page::of(&client, "bob").await,
        );
        assert_eq!(
            bob.action("listen", json!({"contextType": null})).await["ok"],
            true
        );

        // The strip at the top of bob's window: grey (no channel). A click opens the
        // selector over the window; 1 puts bob on Channel 1, and the strip turns red.
        let strip = (bob_window.0 + 12, bob_window.1 + 12);
        assert_eq!(
            shell.display.pixel(strip.0, strip.1).as_deref(),
            Some("#9E9E9E")
        );
        shell.xdotool(&[
            "mousemove",
            &strip.0.to_string(),
            &strip.1.to_string(),
            "click",
            "1",
        ]);
        let selector = shell.window_of("Weft: choose a channel");
        shell.xdotool(&["windowfocus", "--sync", &selector, "key", "1"]);
        weft_e2e::wait_for("the strip to turn red", weft_e2e::SLOW, || {
            (shell.display.pixel(strip.0, strip.1).as_deref() == Some("#E53935")).then_some(())
        });
        let current = bob.call("getCurrentChannel", json!([])).await.unwrap();
        assert_eq!(current["id"], "fdc3.channel.1");

        // bob's listener moved with it: alice's broadcast on Channel 1 reaches it.
        alice
            .call("joinUserChannel", json!(["fdc3.channel.1"]))
            .await
            .unwrap();
        let aapl = json!({"type": "fdc3.instrument", "id": {"ticker": "AAPL"}});
        alice.call("broadcast", json!([aapl])).await.unwrap();
        let d = within("bob hearing alice", heard.next()).await.unwrap();
        let report: Value = serde_json::from_slice(&d.payload).unwrap();
        assert_eq!(report, json!({"by": "bob", "context": aapl}));
    });
}
