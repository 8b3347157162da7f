//! Command-line behaviour that needs no display: refusing bad workspace files, and
//! commands run without a shell.

use std::path::Path;

use weft_e2e::TestEnv;

/// Runs `weft launch FILE --no-panel` and returns its stderr, asserting that it failed
/// and started nothing.
fn refused(env: &TestEnv, file: &Path) -> String {
    let out = env.run_weft(&["launch", file.to_str().unwrap(), "--no-panel"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "a bad workspace was accepted: {stderr}"
    );
    assert!(
        !env.endpoint().socket_path().exists(),
        "a broker was started for a bad workspace"
    );
    stderr
}

fn write(env: &TestEnv, name: &str, text: &str) -> std::path::PathBuf {
    let dir = env.path("ws");
    std::fs::create_dir_all(dir.join("app")).unwrap();
    std::fs::write(dir.join("app/index.html"), "<p>app</p>").unwrap();
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn bad_workspace_files_are_refused_with_file_field_and_problem() {
    let env = TestEnv::new();
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "syntax.json",
            r#"{"name": "W", "apps": [}"#,
            &["invalid JSON", "line 1"],
        ),
        (
            "missing.json",
            r#"{"name":"W","apps":[{"appId":"a"}]}"#,
            &[
                "apps[0].url",
                "no url, and the workspace lists no appDirectories",
            ],
        ),
        (
            "mistyped.json",
            r#"{"name":"W","apps":[{"appId":"a","url":"app/index.html","bounds":{"x":0,"y":0,"width":"big","height":2}}]}"#,
            &["apps[0].bounds.width", "invalid type"],
        ),
        (
            "duplicate.json",
            r#"{"name":"W","apps":[{"appId":"a","url":"app/index.html"},{"appId":"a","url":"app/index.html"}]}"#,
            &["apps[1].appId", "duplicate appId \"a\""],
        ),
        (
            "unreadable.json",
            r#"{"name":"W","apps":[{"appId":"a","url":"app/gone.html"}]}"#,
            &["apps[0].url", "cannot read", "gone.html"],
        ),
        (
            "escape.json",
            r#"{"name":"W","apps":[{"appId":"a","url":"../../etc/passwd"}]}"#,
            &["apps[0].url", "escapes the workspace folder"],
        ),
    ];
    for (name, text, expected) in cases {
        let file = write(&env, name, text);
        let stderr = refused(&env, &file);
        assert!(
            stderr.contains(&*file.to_string_lossy()),
            "{name}: the file is not named: {stderr}"
        );
        for e in *expected {
            assert!(stderr.contains(e), "{name}: expected {e:?} in: {stderr}");
        }
    }
    let stderr = refused(&env, &env.path("ws/nonexistent.json"));
    assert!(
        stderr.contains("nonexistent.json") && stderr.contains("cannot read"),
        "{stderr}"
    );
}

#[test]
fn commands_without_a_running_shell_say_so() {
    let env = TestEnv::new();
    for args in [
        &["ps"][..],
        &["ps", "--json"],
        &["stop"],
        &["bus", "pub", "a.b", "{}"],
        &["bus", "sub", "a.b", "--count", "1"],
    ] {
        let out = env.run_weft(args);
        assert!(!out.status.success(), "{args:?} succeeded without a shell");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("no Weft shell is running"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn bus_pub_checks_its_arguments_before_connecting() {
    let env = TestEnv::new();
    let out = env.run_weft(&["bus", "pub", "a..b", "{}"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("segment 1 of the topic is empty"));
    let out = env.run_weft(&["bus", "pub", "a.b", "{not json"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid JSON"));
    assert!(!out.status.success());
}

#[test]
fn every_command_has_help() {
    let env = TestEnv::new();
    for args in [
        &["--help"][..],
        &["launch", "--help"],
        &["ps", "--help"],
        &["bus", "--help"],
        &["bus", "pub", "--help"],
        &["bus", "sub", "--help"],
        &["stop", "--help"],
        &["logs", "--help"],
        &["diag", "--help"],
        &["self-test", "--help"],
        &["update", "check", "--help"],
    ] {
        let out = env.run_weft(args);
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage: weft"),
            "{args:?}"
        );
    }
}

#[test]
fn a_broken_config_file_or_metrics_address_stops_the_shell_before_it_starts() {
    let env = TestEnv::new();
    let ws = write(
        &env,
        "ok.json",
        r#"{"name": "W", "apps": [{"appId": "a", "url": "app/index.html"}]}"#,
    );
    let config = env.config_file();
    for (text, expected) in [
        ("[metrics]\nadress = \"0\"\n", "unknown field `adress`"),
        (
            "[metrics]\naddr = \"10.0.0.1:9464\"\n",
            "metrics.addr = \"10.0.0.1:9464\"",
        ),
        ("[log]\nlevel = \"[\"\n", "log.level"),
    ] {
        env.write_config(text);
        let stderr = refused(&env, &ws);
        assert!(stderr.contains(".config/weft/config.toml"), "{stderr}");
        assert!(stderr.contains(expected), "{text}: {stderr}");
    }
    std::fs::remove_file(&config).unwrap();
    let out = env.run_weft(&[
        "launch",
        ws.to_str().unwrap(),
        "--no-panel",
        "--metrics-addr",
        "0.0.0.0:1",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("(flag --metrics-addr)") && stderr.contains("not a loopback address"),
        "{stderr}"
    );
}

#[test]
fn diag_without_a_shell_still_writes_a_bundle_saying_so() {
    let env = TestEnv::new();
    let bundle = env.path("b.tar.gz");
    let out = env.run_weft(&["diag", "-o", bundle.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        bundle.to_str().unwrap()
    );
    let listing = std::process::Command::new("tar")
        .arg("-tzf")
        .arg(&bundle)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    for name in [
        "weft-diag/versions.json",
        "weft-diag/config.toml",
        "weft-diag/shell.txt",
    ] {
        assert!(listing.contains(name), "{name} missing: {listing}");
    }
    let out = std::process::Command::new("tar")
        .arg("-xzOf")
        .arg(&bundle)
        .arg("weft-diag/shell.txt")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("no running shell answered"));
}

#[test]
fn a_policy_locked_key_holds_against_the_file_and_flags_and_config_show_says_why() {
    let env = TestEnv::new();
    let ws = write(
        &env,
        "ok.json",
        r#"{"name": "W", "apps": [{"appId": "a", "url": "app/index.html"}]}"#,
    );
    let policy = env.path("policy.toml");
    std::fs::write(
        &policy,
        "[settings]\nmetrics = { addr = \"off\" }\nlog = { level = \"warn\" }\n",
    )
    .unwrap();
    env.write_config(format!(
        "[log]\nlevel = \"trace\"\n[app_logs]\nkeep_files = 2\n[policy]\nfile = {:?}\n",
        policy.display().to_string()
    ));

    let out = env.run_weft(&["config", "show", "--set", "app_logs.keep_files=5"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
            .to_owned()
    };
    let level = line("log.level");
    assert!(
        level.starts_with("log.level = \"warn\"")
            && level.contains(&format!("locked by policy {}", policy.display()))
            && level.contains("\"trace\" from")
            && level.contains("is not applied"),
        "{level}"
    );
    let keep = line("app_logs.keep_files");
    assert!(
        keep.starts_with("app_logs.keep_files = 5")
            && keep.contains("flag --set app_logs.keep_files=5")
            && keep.contains("2 from"),
        "{keep}"
    );
    assert!(line("metrics.addr").contains("locked by policy"));

    // --json says the same to scripts.
    let out = env.run_weft(&["config", "show", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let level = json["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "log.level")
        .unwrap()
        .clone();
    assert_eq!(level["locked"], true, "{level}");
    assert_eq!(level["overridden"][0]["value"], "trace", "{level}");

    // A flag cannot change a locked key, in `config show` or at launch; nothing starts.
    for args in [
        vec!["config", "show", "--set", "log.level=debug"],
        vec![
            "launch",
            ws.to_str().unwrap(),
            "--no-panel",
            "--metrics-addr",
            "0",
        ],
        vec![
            "launch",
            ws.to_str().unwrap(),
            "--no-panel",
            "--set",
            "metrics.addr=0",
        ],
    ] {
        let out = env.run_weft(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(
            stderr.contains("is locked by the desktop owner's policy")
                && stderr.contains("policy.toml"),
            "{args:?}: {stderr}"
        );
        assert!(!env.endpoint().socket_path().exists());
    }
}

#[test]
fn self_test_checks_the_bus_and_the_data_without_a_window_and_names_what_fails() {
    let env = TestEnv::new();
    let out = env.run_weft(&["self-test", "--json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["healthy"], true, "{report}");
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["settings", "bus", "app host", "permissions", "layouts"]
    );
    assert!(
        report["checks"][1]["detail"]
            .as_str()
            .unwrap()
            .contains("through a broker and back")
    );

    // A layout this version cannot read: not healthy, and it says which.
    let layouts = env.data_dir().join("workspaces");
    std::fs::create_dir_all(&layouts).unwrap();
    std::fs::write(layouts.join("Desk.json"), "{\"version\": 99}").unwrap();
    let out = env.run_weft(&["self-test"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL layouts"), "{stdout}");
    assert!(stdout.contains("Desk"), "{stdout}");
    assert!(stdout.contains("is not healthy"), "{stdout}");
}
