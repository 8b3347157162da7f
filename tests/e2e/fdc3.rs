//! End-to-end tests of FDC3 with real shells and real WebKit pages under a private
//! Xvfb display: apps launched from App Directories. They run one at a time (the
//! nextest `webview` test group).

use serde_json::json;
use weft_e2e::{Shell, TestEnv};

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
