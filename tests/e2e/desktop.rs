//! End-to-end tests of Weft on the desktop: app windows under a real window manager
//! (Openbox on a private Xvfb display), driven from their pages (`weft.window`), the
//! command line (`weft window`) and FDC3 (`open` of a running app). Tests with pages
//! run one at a time (the nextest `webview` group).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weft_client::Client;
use weft_e2e::{
    Display, PageService, PrivateNotifications, PrivateTray, Shell, TestEnv, threaded_runtime,
};
use weft_proto::frame::AppState;

/// The `desktop` fixture page of one app, driven through its RPC service.
async fn page(client: &Client, app_id: &str) -> PageService {
    PageService::connect(client, &format!("e2e.desktop.{app_id}")).await
}

/// Asks the page `action` until `holds` accepts its value; the value.
async fn until(
    page: &PageService,
    action: &str,
    what: &str,
    holds: impl Fn(&Value) -> bool,
) -> Value {
    until_with(page, action, json!({}), what, holds).await
}

/// Asks the page `action` with `args` until `holds` accepts its value; the value.
async fn until_with(
    page: &PageService,
    action: &str,
    args: Value,
    what: &str,
    holds: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = page.action(action, args.clone()).await;
        assert_eq!(answer["ok"], true, "{action}: {answer}");
        if holds(&answer["value"]) {
            return answer["value"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last seen {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the page's window has the bounds `expected`.
async fn bounds_settle(page: &PageService, what: &str, expected: Value) {
    let get = json!({"op": "getBounds"});
    until_with(page, "window", get, what, |b| *b == expected).await;
}

/// Runs `weft ARGS` against the shell; its stderr, after checking it succeeded.
fn weft_ok(shell: &Shell, args: &[&str]) -> String {
    let out = shell.env.run_weft(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "weft {args:?}: {stderr}");
    stderr
}

/// Polls `holds` (a look at the desktop) until it is true.
fn until_seen(what: &str, holds: impl Fn() -> bool) {
    weft_e2e::wait_for(what, Duration::from_secs(30), || holds().then_some(()));
}

fn focused(v: &Value) -> bool {
    v["focused"] == true && v["hasFocus"] == true
}

#[test]
fn windows_answer_their_page_the_command_line_and_fdc3_open() {
    let env = TestEnv::new();
    let ws = env.workspace_with(
        "desk",
        &[
            (
                "alpha",
                "desktop/index.html",
                json!({"bounds": {"x": 40, "y": 40, "width": 420, "height": 320}}),
            ),
            (
                "beta",
                "desktop/index.html",
                json!({"bounds": {"x": 600, "y": 80, "width": 420, "height": 320}}),
            ),
        ],
    );
    let mut shell = Shell::start_on_desktop(env, &["launch", ws.to_str().unwrap(), "--no-panel"]);
    shell.wait_ready(2);
    let runtime = threaded_runtime();
    runtime.block_on(async {
        let client = shell.client().await;
        let alpha = page(&client, "alpha").await;
        let beta = page(&client, "beta").await;

        // A page focuses its own window; the command line focuses another app's.
        let done = alpha.action("window", json!({"op": "focus"})).await;
        assert_eq!(done["ok"], true, "{done}");
        until(&alpha, "seen", "alpha focused", focused).await;
        let said = weft_ok(&shell, &["window", "focus", "beta"]);
        assert!(said.contains("focus 1 window of beta"), "{said}");
        until(&beta, "seen", "beta focused by the CLI", focused).await;
        until(&alpha, "seen", "alpha no longer focused", |v| v["focused"] == false).await;

        // fdc3.open of a running app brings it forward instead of starting another.
        let opened = beta.action("open", json!({"app": {"appId": "alpha"}})).await;
        assert_eq!(opened["ok"], true, "{opened}");
        assert_eq!(opened["value"]["appId"], "alpha", "{opened}");
        until(&alpha, "seen", "alpha focused by fdc3.open", focused).await;
        let apps = shell.ps().expect("ps").apps;
        assert_eq!(apps.len(), 2, "nothing new was started: {apps:?}");
        assert_eq!(
            opened["value"]["instanceId"],
            apps.iter()
                .find(|a| a.app_id == "alpha")
                .unwrap()
                .instance_id
                .as_str()
        );

        // Bounds: set, read back (inner size exact; the window manager places the
        // frame at the position asked).
        let set = alpha
            .action(
                "window",
                json!({"op": "setBounds", "args": {"x": 100, "y": 120, "width": 500, "height": 360}}),
            )
            .await;
        assert_eq!(set["ok"], true, "{set}");
        bounds_settle(
            &alpha,
            "the bounds applied",
            json!({"x": 100, "y": 120, "width": 500, "height": 360}),
        )
        .await;
        let refused = alpha
            .action(
                "window",
                json!({"op": "setBounds", "args": {"x": 0, "y": 0, "width": 0, "height": 10}}),
            )
            .await;
        assert_eq!(refused["code"], "InvalidArgument", "{refused}");

        // Maximise, restore, minimise, and focus brings a minimised window back.
        alpha.action("window", json!({"op": "maximize"})).await;
        until(&alpha, "seen", "alpha maximised", |v| v["maximized"] == true).await;
        alpha.action("window", json!({"op": "restore"})).await;
        until(&alpha, "seen", "alpha restored", |v| v["maximized"] == false).await;
        weft_ok(&shell, &["window", "minimize", "alpha"]);
        until(&alpha, "seen", "alpha minimised", |v| v["minimized"] == true).await;
        weft_ok(&shell, &["window", "focus", "alpha"]);
        until(&alpha, "seen", "alpha back and focused", |v| {
            v["minimized"] == false && focused(v)
        })
        .await;

        // Hide all and show all, from the command line.
        let said = weft_ok(&shell, &["window", "hide", "--all"]);
        assert!(said.contains("hide 2 windows of every app"), "{said}");
        for p in [&alpha, &beta] {
            until(p, "seen", "hidden", |v| v["visible"] == false).await;
        }
        weft_ok(&shell, &["window", "show", "--all"]);
        for p in [&alpha, &beta] {
            until(p, "seen", "shown", |v| v["visible"] == true).await;
        }

        // window.open of the app's own page opens a child window in the app's process:
        // related to its opener (same origin, postMessage both ways), using the app's
        // bridge as the app, hidden and shown with the app, closed when it closes
        // itself.
        let child = alpha.action("popout", json!({"url": "child.html"})).await;
        assert_eq!(child["ok"], true, "{child}");
        let href = child["value"]["href"].as_str().unwrap_or_default();
        assert!(href.ends_with("/child.html"), "{child}");
        assert_eq!(child["value"]["appId"], "alpha", "{child}");
        assert_eq!(child["value"]["channel"], "fdc3.channel.2", "{child}");
        let joined = alpha.action("channel", json!({})).await;
        assert_eq!(joined["value"], "fdc3.channel.2", "the child joined as alpha: {joined}");
        let child_window = shell.window_of("Child of alpha");
        let alpha_pid = shell
            .ps()
            .expect("ps")
            .apps
            .iter()
            .find(|a| a.app_id == "alpha")
            .and_then(|a| a.pid)
            .expect("alpha's pid");
        assert_eq!(
            shell.xdotool(&["getwindowpid", &child_window]).trim(),
            alpha_pid.to_string(),
            "the child window belongs to alpha's process"
        );
        assert_eq!(shell.ps().expect("ps").apps.len(), 2, "no new app started");
        let visible_children = || {
            shell
                .xdotool(&["search", "--onlyvisible", "--name", "^Child of alpha$"])
                .lines()
                .count()
        };
        weft_ok(&shell, &["window", "hide", "alpha"]);
        until(&alpha, "seen", "alpha hidden", |v| v["visible"] == false).await;
        until_seen("the child hidden with its app", || visible_children() == 0);
        weft_ok(&shell, &["window", "show", "alpha"]);
        until_seen("the child shown with its app", || visible_children() == 1);
        let closed = alpha.action("close-popout", json!({})).await;
        assert_eq!(closed["ok"], true, "{closed}");
        until_seen("the child closed by its opener", || visible_children() == 0);
        until(&alpha, "seen", "alpha still open", |v| v["visible"] == true).await;

        // Nothing runs under a name no app has.
        let out = shell.env.run_weft(&["window", "focus", "gamma"]);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no running app or instance \"gamma\""),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// The two monitors of the layout tests: a 1920×1080 one, and a 1280×1024 one to its
/// right.
const TWO_MONITORS: [(u32, u32); 2] = [(1920, 1080), (1280, 1024)];

fn desk(monitors: &'static [(u32, u32)]) -> impl FnOnce() -> Display {
    move || Display::with_monitors(monitors).with_window_manager()
}

/// The page's answer's value, after checking the page did not fail.
async fn value(page: &PageService, action: &str, args: Value) -> Value {
    let answer = page.action(action, args.clone()).await;
    assert_eq!(answer["ok"], true, "{action} {args}: {answer}");
    answer["value"].clone()
}

/// The page of `app_id` once it shows a URL ending in `suffix` (after a navigation,
/// when the old page's service goes away and the new one's comes).
async fn on_page(client: &Client, app_id: &str, suffix: &str) -> PageService {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let p = page(client, app_id).await;
        if let Ok(answer) = p.try_action("where", json!({})).await
            && answer["value"]
                .as_str()
                .is_some_and(|u| u.ends_with(suffix))
        {
            return p;
        }
        assert!(Instant::now() < deadline, "{app_id} never showed …{suffix}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `b` lies fully inside the monitor at x..x+w, 0..h.
fn inside(b: &Value, x: i64, w: i64, h: i64) -> bool {
    let (bx, by) = (b["x"].as_i64().unwrap(), b["y"].as_i64().unwrap());
    let (bw, bh) = (b["width"].as_i64().unwrap(), b["height"].as_i64().unwrap());
    bx >= x && by >= 0 && bx + bw <= x + w && by + bh <= h
}

#[test]
fn a_layout_across_two_monitors_comes_back_as_it_was_and_onto_one_when_the_other_is_gone() {
    let env = TestEnv::new();
    let ws = env.workspace_with(
        "desk",
        &[
            (
                "left",
                "desktop/index.html",
                json!({"bounds": {"x": 60, "y": 60, "width": 500, "height": 360}}),
            ),
            (
                "right",
                "desktop/index.html",
                json!({"bounds": {"x": 2000, "y": 100, "width": 600, "height": 400}}),
            ),
            (
                "third",
                "desktop/index.html",
                json!({"bounds": {"x": 2500, "y": 500, "width": 500, "height": 300}}),
            ),
        ],
    );
    let args = ["launch", ws.to_str().unwrap(), "--no-panel"];
    let mut shell = Shell::start_on(env, desk(&TWO_MONITORS), &args);

    // A snapshot taken while the apps are still starting waits for them.
    let runtime = threaded_runtime();
    runtime.block_on(shell.client_when_listening());
    let starting = shell.ps().expect("ps").apps;
    assert!(
        starting.iter().any(|a| a.state == AppState::Starting),
        "the apps were already up: {starting:?}"
    );
    let said = weft_ok(&shell, &["workspace", "save", "early"]);
    assert!(said.contains("saved 3 app instance(s)"), "{said}");
    let early: Value = serde_json::from_str(
        &std::fs::read_to_string(shell.env.data_dir().join("workspaces/early.json")).unwrap(),
    )
    .unwrap();
    for app in early["apps"].as_array().unwrap() {
        assert!(
            app["url"]
                .as_str()
                .is_some_and(|u| u.ends_with("desktop/index.html")),
            "{app}"
        );
        assert!(
            app["window"]["bounds"]["width"].as_u64().unwrap() > 0,
            "{app}"
        );
    }

    shell.wait_ready(3);
    runtime.block_on(async {
        let client = shell.client().await;
        let left = page(&client, "left").await;
        // The user goes to another page, joins a channel, and the page keeps state.
        value(&left, "navigate", json!({"url": "index.html?view=orders"})).await;
        let left = on_page(&client, "left", "?view=orders").await;
        value(
            &left,
            "keep",
            json!({"state": {"tab": "orders", "rows": [1, 2, 3]}}),
        )
        .await;
        value(&left, "join", json!({"channel": "fdc3.channel.3"})).await;
        value(
            &left,
            "window",
            json!({"op": "setBounds", "args": {"x": 100, "y": 120, "width": 640, "height": 420}}),
        )
        .await;
        bounds_settle(
            &left,
            "left moved",
            json!({"x": 100, "y": 120, "width": 640, "height": 420}),
        )
        .await;
        let right = page(&client, "right").await;
        value(&right, "window", json!({"op": "maximize"})).await;
        until(&right, "seen", "right maximised", |v| {
            v["maximized"] == true
        })
        .await;
        let third = page(&client, "third").await;
        bounds_settle(
            &third,
            "third placed",
            json!({"x": 2500, "y": 500, "width": 500, "height": 300}),
        )
        .await;
    });
    let said = weft_ok(&shell, &["workspace", "save", "desk1"]);
    assert!(said.contains("saved 3 app instance(s)"), "{said}");
    let out = shell.env.run_weft(&["workspace", "list", "--json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = list["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["desk1", "early"]);
    let saved: Value = serde_json::from_str(
        &std::fs::read_to_string(shell.env.data_dir().join("workspaces/desk1.json")).unwrap(),
    )
    .unwrap();
    let app = |id: &str| {
        saved["apps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["appId"] == id)
            .unwrap()
            .clone()
    };
    let (left, right, third) = (app("left"), app("right"), app("third"));
    assert!(
        left["url"].as_str().unwrap().ends_with("?view=orders"),
        "{left}"
    );
    assert_eq!(
        left["appState"],
        json!({"tab": "orders", "rows": [1, 2, 3]}),
        "{left}"
    );
    assert_eq!(left["channel"], "fdc3.channel.3", "{left}");
    assert_eq!(left["window"]["monitor"]["x"], 0, "{left}");
    assert_eq!(right["window"]["maximized"], true, "{right}");
    assert_eq!(right["window"]["monitor"]["x"], 1920, "{right}");
    assert_eq!(
        right["window"]["bounds"],
        json!({"x": 2000, "y": 100, "width": 600, "height": 400}),
        "the bounds before maximising: {right}"
    );
    assert_eq!(third["window"]["monitor"]["width"], 1280, "{third}");

    weft_ok(&shell, &["stop"]);
    shell.wait_exit(Duration::from_secs(30));
    let env = shell.into_env();

    // Restored on the same two monitors: the same pages, places, states and channel.
    let mut shell = Shell::start_on(
        env,
        desk(&TWO_MONITORS),
        &["workspace", "restore", "desk1", "--no-panel"],
    );
    shell.wait_ready(3);
    runtime.block_on(async {
        let client = shell.client().await;
        let left = page(&client, "left").await;
        let url = value(&left, "where", json!({})).await;
        assert!(url.as_str().unwrap().ends_with("?view=orders"), "{url}");
        assert_eq!(
            value(&left, "restored", json!({})).await,
            json!({"tab": "orders", "rows": [1, 2, 3]})
        );
        assert_eq!(value(&left, "channel", json!({})).await, "fdc3.channel.3");
        bounds_settle(
            &left,
            "left back",
            json!({"x": 100, "y": 120, "width": 640, "height": 420}),
        )
        .await;
        let right = page(&client, "right").await;
        until(&right, "seen", "right maximised again", |v| {
            v["maximized"] == true
        })
        .await;
        let b = value(&right, "window", json!({"op": "getBounds"})).await;
        assert!(
            inside(&b, 1920, 1280, 1024),
            "right maximised on its monitor: {b}"
        );
        let third = page(&client, "third").await;
        bounds_settle(
            &third,
            "third back",
            json!({"x": 2500, "y": 500, "width": 500, "height": 300}),
        )
        .await;
        assert_eq!(value(&third, "restored", json!({})).await, Value::Null);
    });
    weft_ok(&shell, &["stop"]);
    shell.wait_exit(Duration::from_secs(30));
    let env = shell.into_env();

    // The second monitor is gone: every window lands fully on the remaining one.
    static ONE_MONITOR: [(u32, u32); 1] = [(1920, 1080)];
    let mut shell = Shell::start_on(
        env,
        desk(&ONE_MONITOR),
        &["workspace", "restore", "desk1", "--no-panel"],
    );
    shell.wait_ready(3);
    runtime.block_on(async {
        let client = shell.client().await;
        for id in ["left", "right", "third"] {
            let p = page(&client, id).await;
            until(&p, "seen", "shown", |v| v["visible"] == true).await;
            let b = value(&p, "window", json!({"op": "getBounds"})).await;
            assert!(
                inside(&b, 0, 1920, 1080),
                "{id} is not fully on screen: {b}"
            );
        }
        let third = page(&client, "third").await;
        // Same place relative to its monitor's corner: (2500 - 1920, 500).
        bounds_settle(
            &third,
            "third moved over",
            json!({"x": 580, "y": 500, "width": 500, "height": 300}),
        )
        .await;
    });

    // Stopping saves the session; a plain `weft` (with its panel) brings it back.
    weft_ok(&shell, &["stop"]);
    shell.wait_exit(Duration::from_secs(30));
    let env = shell.into_env();
    assert!(
        env.data_dir()
            .join("workspaces/Last session.json")
            .is_file()
    );
    let mut shell = Shell::start_on(env, desk(&ONE_MONITOR), &[]);
    let apps = shell.wait_ready(3);
    let mut ids: Vec<&str> = apps.iter().map(|a| a.app_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["left", "right", "third"]);
    runtime.block_on(async {
        let client = shell.client().await;
        let left = page(&client, "left").await;
        let url = value(&left, "where", json!({})).await;
        assert!(url.as_str().unwrap().ends_with("?view=orders"), "{url}");
        assert_eq!(value(&left, "channel", json!({})).await, "fdc3.channel.3");
        let right = page(&client, "right").await;
        until(&right, "seen", "right still maximised", |v| {
            v["maximized"] == true
        })
        .await;
    });
}

/// Runs `xclip ARGS` on `display`, with `input` on its standard input; its output when
/// `output` (an `xclip -i` goes on in the background, serving the selection, and must
/// not hold the pipe open).
fn xclip(display: &Display, args: &[&str], input: &str, output: bool) -> String {
    use std::io::Write;
    let stdout = match output {
        true => std::process::Stdio::piped(),
        false => std::process::Stdio::null(),
    };
    let mut child = std::process::Command::new("xclip")
        .args(args)
        .env("DISPLAY", display.name())
        .stdin(std::process::Stdio::piped())
        .stdout(stdout)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("xclip (package xclip) runs");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())
        .expect("writing to xclip");
    let out = child.wait_with_output().expect("xclip ends");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn notifications_reach_the_desktop_and_the_centre_a_click_focuses_the_app_and_the_clipboard_is_shared()
 {
    let mut env = TestEnv::new();
    let mut desktop_notifications = PrivateNotifications::start(&mut env);
    let policy = env.path("policy.toml");
    std::fs::write(
        &policy,
        "[permissions]\ngrant = { notifier = [\"notifications\", \"clipboard\"] }\n",
    )
    .unwrap();
    env.write_config(format!(
        "[policy]\nfile = {:?}\n",
        policy.display().to_string()
    ));
    let ws = env.workspace_with(
        "notify",
        &[
            (
                "notifier",
                "desktop/index.html",
                json!({"title": "Order Blotter", "permissions": {"api": ["notifications", "clipboard"]},
                       "bounds": {"x": 40, "y": 40, "width": 400, "height": 300}}),
            ),
            (
                "other",
                "desktop/index.html",
                json!({"bounds": {"x": 500, "y": 40, "width": 400, "height": 300}}),
            ),
        ],
    );
    let mut shell = Shell::start_on(
        env,
        || Display::start().with_window_manager(),
        &["launch", ws.to_str().unwrap(), "--no-panel"],
    );
    desktop_notifications.show_on(&shell.display.name());
    shell.wait_ready(2);
    let runtime = threaded_runtime();
    runtime.block_on(async {
        let client = shell.client().await;
        let mut notified = client
            .subscribe(&weft_proto::Pattern::new("e2e.desktop.notified").unwrap())
            .await
            .unwrap();
        let notifier = page(&client, "notifier").await;
        let other = page(&client, "other").await;
        value(&notifier, "listen-notifications", json!({})).await;
        value(&other, "window", json!({"op": "focus"})).await;
        until(&other, "seen", "the other app focused", focused).await;

        let id = value(
            &notifier,
            "notify",
            json!({"options": {"title": "Order filled", "body": "100 AAPL",
                               "actions": [{"id": "view", "title": "View"}]}}),
        )
        .await;
        assert!(id.as_u64().is_some(), "{id}");
        let refused = other
            .action("notify", json!({"options": {"title": "Spam"}}))
            .await;
        assert_eq!(refused["code"], "AccessDenied", "{refused}");

        // On the desktop, and in the centre with its app.
        weft_e2e::wait_for(
            "the notification on the desktop",
            Duration::from_secs(30),
            || (desktop_notifications.displayed() == 1).then_some(()),
        );
        let listed = shell.env.run_weft(&["notifications", "list", "--json"]);
        let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
        assert_eq!(listed["unread"], 1, "{listed}");
        let n = &listed["notifications"][0];
        assert_eq!(n["appId"], "notifier", "{listed}");
        assert_eq!(n["appTitle"], "Order Blotter", "{listed}");
        assert_eq!(n["title"], "Order filled", "{listed}");
        assert_eq!(n["actions"][0]["id"], "view", "{listed}");

        // Clicking it on the desktop brings its app to front and tells its page.
        let clicked = desktop_notifications.dunstctl(&["action", "0"]);
        assert!(clicked.status.success());
        let d = weft_e2e::within("the page hearing the click", notified.next())
            .await
            .unwrap();
        let event: Value = serde_json::from_slice(&d.payload).unwrap();
        assert_eq!(
            event,
            json!({"by": "notifier", "event": {"id": id, "action": "default"}})
        );
        until(&notifier, "seen", "the notifier brought to front", focused).await;
        let listed = shell.env.run_weft(&["notifications", "list", "--json"]);
        let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
        assert_eq!(listed["unread"], 0, "{listed}");

        // The clipboard is the desktop's, both ways; an app without the permission is
        // refused.
        value(&notifier, "copy", json!({"text": "EURUSD 1.0842"})).await;
        assert_eq!(
            xclip(&shell.display, &["-o", "-selection", "clipboard"], "", true),
            "EURUSD 1.0842"
        );
        xclip(
            &shell.display,
            &["-i", "-selection", "clipboard", "-loops", "1"],
            "copied elsewhere",
            false,
        );
        // xclip takes the selection in the background: poll until the paste sees it.
        until_with(
            &notifier,
            "paste",
            json!({}),
            "the text copied elsewhere",
            |v| v == "copied elsewhere",
        )
        .await;
        let refused = other.action("paste", json!({})).await;
        assert_eq!(refused["code"], "AccessDenied", "{refused}");
    });
}

/// Whether the control panel's window is on screen.
fn panel_shown(shell: &Shell) -> bool {
    let found = shell.xdotool(&["search", "--onlyvisible", "--name", "^Weft$"]);
    found.lines().count() == 1
}

/// Removes the last session, so that the next one read is the next shell's.
fn forget_last_session(env: &TestEnv) {
    std::fs::remove_file(env.data_dir().join("workspaces/Last session.json"))
        .expect("a last session to forget");
}

/// The last session the shell saved as it stopped.
fn last_session(env: &TestEnv) -> Value {
    let path = env.data_dir().join("workspaces/Last session.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).expect("the last session is JSON")
}

#[test]
fn closing_the_panel_hides_it_to_the_tray_whose_menu_shows_it_shows_all_and_quits() {
    let mut env = TestEnv::new();
    let tray = PrivateTray::start(&mut env);
    let ws = env.workspace_with("tray", &[("alpha", "desktop/index.html", json!({}))]);
    let mut shell = Shell::start_on_desktop(env, &["launch", ws.to_str().unwrap()]);
    shell.wait_ready(1);
    assert_eq!(
        tray.menu_labels(),
        ["Show panel", "Launcher…", "Show all windows", "Quit Weft"]
    );
    let panel = shell.window_of("Weft");

    // Closing the panel hides it to the tray; the shell and its app run on. A click on
    // the icon, or the menu's Show panel and Launcher, bring it back.
    for (how, reopen) in [
        ("a click on the icon", None),
        ("Show panel", Some("Show panel")),
        ("Launcher", Some("Launcher…")),
    ] {
        shell.close_window(&panel);
        until_seen("the panel hidden to the tray", || !panel_shown(&shell));
        assert_eq!(shell.ps().expect("the shell runs on").apps.len(), 1);
        match reopen {
            None => tray.click_icon(),
            Some(entry) => tray.click_menu(entry),
        }
        until_seen(&format!("the panel shown by {how}"), || panel_shown(&shell));
    }

    // Show all windows.
    let runtime = threaded_runtime();
    runtime.block_on(async {
        let client = shell.client().await;
        let alpha = page(&client, "alpha").await;
        weft_ok(&shell, &["window", "hide", "--all"]);
        until(&alpha, "seen", "alpha hidden", |v| v["visible"] == false).await;
        tray.click_menu("Show all windows");
        until(&alpha, "seen", "alpha shown from the tray", |v| {
            v["visible"] == true
        })
        .await;
    });

    // Quit: the apps stop, the session is saved, the shell exits.
    tray.click_menu("Quit Weft");
    assert!(shell.wait_exit(Duration::from_secs(60)).success());
    let log = shell.log_text();
    assert!(
        log.contains("shutting down: quit from the tray icon"),
        "{log}"
    );
    let saved = last_session(&shell.env);
    assert_eq!(saved["apps"][0]["appId"], "alpha", "{saved}");
}

#[test]
fn without_a_tray_closing_the_panel_asks_first_and_the_shell_stops_when_the_session_ends() {
    let mut env = TestEnv::new();
    // No session bus, so no tray.
    env.set_env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    let ws = env.workspace_with("asks", &[("alpha", "desktop/index.html", json!({}))]);
    let mut shell = Shell::start_on_desktop(env, &["launch", ws.to_str().unwrap()]);
    shell.wait_ready(1);
    let panel = shell.window_of("Weft");
    let key = |key: &str| {
        shell.xdotool(&[
            "windowactivate",
            "--sync",
            &panel,
            "key",
            "--clearmodifiers",
            key,
        ]);
    };
    // Closing asks "Quit Weft?": Escape keeps everything running; Enter quits.
    shell.close_window(&panel);
    key("Escape");
    assert!(panel_shown(&shell));
    assert_eq!(shell.ps().expect("the shell runs on").apps.len(), 1);
    shell.close_window(&panel);
    key("Return");
    assert!(shell.wait_exit(Duration::from_secs(60)).success());
    let log = shell.log_text();
    assert!(
        log.contains("shutting down: quit from the control panel"),
        "{log}"
    );
    assert!(log.contains("no tray icon"), "{log}");

    // The desktop session ends under a shell with the panel: the display goes away.
    // The shell stops by itself, and no app is left behind.
    let env = shell.into_env();
    forget_last_session(&env);
    let mut shell = Shell::start_on_desktop(env, &["launch", ws.to_str().unwrap()]);
    let pids: Vec<u32> = shell.wait_ready(1).iter().filter_map(|a| a.pid).collect();
    shell.window_of("Weft");
    shell.end_display();
    assert!(shell.wait_exit(Duration::from_secs(60)).success());
    let log = shell.log_text();
    assert!(
        log.contains("shutting down: the desktop session ended"),
        "{log}"
    );
    assert_eq!(
        weft_e2e::wait_gone(&pids, Duration::from_secs(30)),
        Vec::<u32>::new()
    );
    assert!(
        !shell.env.endpoint().socket_path().exists(),
        "the socket is removed"
    );

    // SIGHUP (the terminal or login session ended) stops a headless shell cleanly, and
    // it saves the session.
    let env = shell.into_env();
    forget_last_session(&env);
    let mut shell = Shell::start_on_desktop(env, &["launch", ws.to_str().unwrap(), "--no-panel"]);
    shell.wait_ready(1);
    shell.signal(libc::SIGHUP);
    assert!(shell.wait_exit(Duration::from_secs(60)).success());
    let log = shell.log_text();
    assert!(log.contains("shutting down: received SIGHUP"), "{log}");
    assert_eq!(last_session(&shell.env)["apps"][0]["appId"], "alpha");
}
