//! End-to-end tests of Weft on the desktop: app windows under a real window manager
//! (Openbox on a private Xvfb display), driven from their pages (`weft.window`), the
//! command line (`weft window`) and FDC3 (`open` of a running app). Tests with pages
//! run one at a time (the nextest `webview` group).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weft_client::Client;
use weft_e2e::{PageService, Shell, TestEnv, threaded_runtime};

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
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = page.action(action, json!({})).await;
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

/// Runs `weft ARGS` against the shell; its stderr, after checking it succeeded.
fn weft_ok(shell: &Shell, args: &[&str]) -> String {
    let out = shell.env.run_weft(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "weft {args:?}: {stderr}");
    stderr
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
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let b = alpha.action("window", json!({"op": "getBounds"})).await;
            let b = &b["value"];
            if b["width"] == 500 && b["height"] == 360 && b["x"] == 100 && b["y"] == 120 {
                break;
            }
            assert!(Instant::now() < deadline, "bounds not applied: {b}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
