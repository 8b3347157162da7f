//! Updates: the installer under `kill -9` (whichever step it dies at, exactly one
//! complete version is current and starts, before the next start recovers and after),
//! and `weft update` against a repository made by `weft-release`, served over HTTP on
//! 127.0.0.1.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
};

use semver::Version;
use serde_json::Value;
use weft_e2e::TestEnv;
use weft_release::{
    keys::KeyDir,
    repository::{self, Lifetimes, RepoDir},
};
use weft_update_repo::{Release, archive::Files, current_platform};
use weft_updater::install::{Installation, Step};

const HELPER: &str = env!("CARGO_BIN_EXE_weft-install-helper");

fn helper(root: &Path, version: &str, stop: Option<Step>) -> std::process::Child {
    let mut cmd = Command::new(HELPER);
    cmd.arg(root).arg(version);
    if let Some(step) = stop {
        cmd.arg(format!("{step:?}"));
    }
    cmd.stdout(Stdio::piped())
        .spawn()
        .expect("starting the install helper")
}

/// What `ROOT/current/weft --version` says.
fn current_answers(root: &Path) -> String {
    let out = Command::new(root.join("current/weft"))
        .arg("--version")
        .output()
        .expect("the current version starts");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn kill_9_at_each_install_step_leaves_exactly_one_version_that_starts() {
    for step in Step::ALL {
        for round in 1..=3 {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            let first = helper(root, "1.0.0", None).wait_with_output().unwrap();
            assert!(String::from_utf8_lossy(&first.stdout).ends_with("done\n"));

            let mut child = helper(root, "2.0.0", Some(step));
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let wanted = format!("{step:?}");
            loop {
                let line = lines.next().expect("the helper reaches the step").unwrap();
                if line == wanted {
                    break;
                }
            }
            child.kill().expect("kill -9");
            child.wait().unwrap();

            // Before any recovery, the current version is whole and starts.
            let before = current_answers(root);
            assert!(
                ["1.0.0", "2.0.0"].contains(&before.as_str()),
                "{step:?} #{round}: {before}"
            );

            // The next start finishes or undoes the install.
            let (install, recovered) = Installation::open(root).unwrap();
            let current = install.status().current.unwrap().to_string();
            assert_eq!(
                current_answers(root),
                current,
                "{step:?} #{round}: {recovered:?}"
            );
            let expected = match step {
                Step::Journal | Step::Unpack => "1.0.0",
                Step::Switch | Step::Record | Step::Cleanup => "2.0.0",
            };
            assert_eq!(current, expected, "{step:?} #{round}: {recovered:?}");
            assert!(!root.join("journal.json").exists());
            let left: Vec<String> = std::fs::read_dir(root.join("versions"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.'))
                .collect();
            assert!(left.is_empty(), "{step:?} #{round}: {left:?}");
        }
    }
}

fn publish(repo: &RepoDir, keys: &KeyDir, version: &str, percent: u8) {
    let release = Release {
        version: Version::parse(version).unwrap(),
        channel: "stable".into(),
        platform: current_platform(),
        rollout_percent: percent,
        min_version: None,
    };
    let files = Files::from([(
        "weft".to_owned(),
        (format!("#!/bin/sh\necho {version}\n").into_bytes(), true),
    )]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(repository::publish(
            repo,
            keys,
            release,
            &files,
            &Lifetimes::default(),
        ))
        .unwrap();
}

/// A repository made by `weft-release` with `releases` (version, rollout %) in `env`,
/// served over HTTP on 127.0.0.1; the server and the `[updates]` settings naming it.
fn serve_releases(env: &TestEnv, releases: &[(&str, u8)]) -> (weft_e2e::StaticServer, String) {
    let repo = RepoDir::new(env.path("repo"));
    let keys = KeyDir::new(env.path("keys"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(repository::init(&repo, &keys, &Lifetimes::default()))
        .unwrap();
    for (version, percent) in releases {
        publish(&repo, &keys, version, *percent);
    }
    let server = weft_e2e::StaticServer::serve(&env.path("repo"));
    let config = format!(
        "[updates]\nmirror = {:?}\nroot = {:?}\n",
        server.base,
        repo.first_root().display().to_string()
    );
    (server, config)
}

/// This build's `weft` and `weft-app`, as a release's files.
fn this_build() -> Files {
    let read = |name: &str| (std::fs::read(weft_e2e::binary(name)).unwrap(), true);
    Files::from([
        ("weft".to_owned(), read("weft")),
        ("weft-app".to_owned(), read("weft-app")),
    ])
}

/// The audit log's records of updates (`update.*`), as `weft audit export --json`
/// prints them.
fn update_records(env: &TestEnv) -> Vec<Value> {
    env.audit_records()
        .into_iter()
        .filter(|r| {
            r["event"]
                .as_str()
                .is_some_and(|e| e.starts_with("update."))
        })
        .collect()
}

/// Installs `versions` (each this build's binaries) into `root`, the last current; all
/// but the last marked healthy.
fn install_this_build(root: &Path, versions: &[Version]) {
    let (mut install, _) = Installation::open(root).unwrap();
    let files = this_build();
    for (i, version) in versions.iter().enumerate() {
        install.install(version, &files, &mut |_| {}).unwrap();
        if i + 1 < versions.len() {
            install.mark_healthy(version).unwrap();
        }
    }
}

fn json_of(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn weft_update_check_offers_what_the_signed_repository_holds_and_policy_can_turn_it_off() {
    let env = TestEnv::new();
    let (server, config) = serve_releases(&env, &[("0.5.0", 100), ("0.6.0", 0)]);

    // Nothing configured: said, and nothing is fetched.
    let out = env.run_weft(&["update", "check"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no update repository is configured"));

    env.write_config(&config);
    let checked = json_of(&env.run_weft(&["update", "check", "--json"]));
    assert_eq!(checked["installed"], env!("CARGO_PKG_VERSION"));
    assert_eq!(checked["offer"]["version"], "0.5.0", "{checked}");
    assert_eq!(
        checked["newest"], "0.6.0",
        "the halted release is known, not offered"
    );
    let text = env.run_weft(&["update", "check"]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("0.5.0 is available on stable"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
    assert!(
        env.data_dir().join("updates/root.json").is_file(),
        "the trusted root is kept"
    );
    // A clock set two days back (Debian's faketime) is below the latest time this
    // install has seen: refused, so that expired metadata cannot come back to life.
    let out = env
        .command(Path::new("faketime"), None)
        .args(["-f", "-2d"])
        .arg(weft_e2e::binary("weft"))
        .args(["update", "check"])
        .output()
        .expect("faketime (Debian package faketime) runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.contains("the clock is earlier than a time already seen"),
        "{err}"
    );
    let status = json_of(&env.run_weft(&["update", "status", "--json"]));
    assert_eq!(status["enabled"], true);
    assert_eq!(status["mirror"], server.base.as_str());
    assert_eq!(
        status["installRoot"],
        Value::Null,
        "a build tree is not an install"
    );

    // The desktop owner turns updates off: the check says so and where.
    let policy = env.path("policy.toml");
    std::fs::write(&policy, "[settings]\nupdates = { enabled = false }\n").unwrap();
    env.write_config(format!(
        "{config}[policy]\nfile = {:?}\n",
        policy.display().to_string()
    ));
    let out = env.run_weft(&["update", "check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("updates are turned off") && err.contains("locked by policy"),
        "{err}"
    );
}

/// A shell started by the test; killed if the test ends without stopping it (its apps
/// die with it: they have a parent-death signal).
struct Started(std::process::Child);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `weft ARGS` from `binary` in `env` (on `display`), its output in `log`.
fn start_from(
    env: &TestEnv,
    binary: &Path,
    display: &weft_e2e::Display,
    args: &[&str],
    log: &Path,
) -> Started {
    let out = std::fs::File::create(log).unwrap();
    Started(
        env.command(binary, Some(display))
            .args(args)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("starting weft"),
    )
}

/// Waits until `log` holds `text`.
fn log_shows(log: &Path, text: &str) {
    weft_e2e::wait_for(
        &format!("{text:?} in {}", log.display()),
        std::time::Duration::from_secs(60),
        || {
            std::fs::read_to_string(log)
                .ok()
                .filter(|t| t.contains(text))
                .map(drop)
        },
    );
}

/// Stops the running shell and waits for it to end.
fn stop(env: &TestEnv, mut started: Started) {
    let out = env.run_weft(&["stop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = weft_e2e::wait_for(
        "the shell to exit",
        std::time::Duration::from_secs(60),
        || started.0.try_wait().unwrap(),
    );
    assert!(status.success(), "{status}");
}

#[test]
fn a_release_that_never_passes_its_self_test_is_reverted_after_its_trial_starts_and_not_offered_again()
 {
    let _serial = weft_e2e::webview_lock();
    let display = weft_e2e::Display::start();
    let env = TestEnv::new();
    let root = env.path("install");
    let good = this_build();
    // 9.0.0: this shell with an app host that does not run.
    let mut bad = good.clone();
    bad.insert(
        "weft-app".to_owned(),
        (b"#!/bin/sh\nexit 1\n".to_vec(), true),
    );
    let (mut install, _) = Installation::open(&root).unwrap();
    let (v1, v9) = (Version::new(0, 1, 0), Version::new(9, 0, 0));
    install.install(&v1, &good, &mut |_| {}).unwrap();
    install.mark_healthy(&v1).unwrap();
    install.install(&v9, &bad, &mut |_| {}).unwrap();
    drop(install);

    let ws = env.workspace("trial", &[("echo", "echo/index.html")]);
    let current = root.join("current/weft");
    let args = ["launch", ws.to_str().unwrap(), "--no-panel"];
    for start in 1..=3 {
        let log = env.path(&format!("start-{start}.log"));
        let child = start_from(&env, &current, &display, &args, &log);
        log_shows(
            &log,
            &format!("9.0.0 is on trial (start {start} of 3) and not healthy: app host"),
        );
        stop(&env, child);
    }
    // The fourth start runs 0.1.0 instead, which starts the app.
    let log = env.path("start-4.log");
    let child = start_from(&env, &current, &display, &args, &log);
    log_shows(&log, "back to 0.1.0, and 9.0.0 is not offered again");
    weft_e2e::wait_for("the app to run", std::time::Duration::from_secs(60), || {
        let out = env.run_weft(&["ps", "--json"]);
        let ps: Value = serde_json::from_slice(&out.stdout).ok()?;
        (ps["apps"][0]["state"] == "ready").then_some(())
    });
    stop(&env, child);
    let status = Installation::open(&root).unwrap().0.status();
    assert_eq!(status.current, Some(v1.clone()));
    assert!(status.refused.contains(&v9));
    assert_eq!(
        std::fs::read_link(root.join("current")).unwrap(),
        Path::new("versions/0.1.0")
    );

    let records = update_records(&env);
    let reverted: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"] == "update.reverted")
        .collect();
    assert_eq!(reverted.len(), 1, "{records:?}");
    assert_eq!(reverted[0]["data"]["from"], "9.0.0");
    assert_eq!(reverted[0]["data"]["version"], "0.1.0");

    // The repository still offers 9.0.0; this install never takes it again.
    let (_server, config) = serve_releases(&env, &[("9.0.0", 100)]);
    env.write_config(&config);
    let out = env
        .command(&current, None)
        .args(["update", "check", "--json", "--now"])
        .output()
        .unwrap();
    let checked = json_of(&out);
    assert_eq!(checked["installed"], "0.1.0");
    assert_eq!(checked["offer"], Value::Null, "{checked}");
    assert_eq!(checked["newest"], "9.0.0");
}

#[test]
fn weft_update_apply_installs_beside_the_running_version_and_rollback_returns_to_it() {
    let env = TestEnv::new();
    let root = env.path("install");
    let (mut install, _) = Installation::open(&root).unwrap();
    let v1 = Version::new(0, 1, 0);
    install.install(&v1, &this_build(), &mut |_| {}).unwrap();
    install.mark_healthy(&v1).unwrap();
    drop(install);

    let (_server, config) = serve_releases(&env, &[("0.2.0", 100)]);
    env.write_config(&config);
    let run = |binary: &Path, args: &[&str]| {
        let out = env.command(binary, None).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let current = root.join("current/weft");
    let old = root.join("versions/0.1.0/weft");
    assert_eq!(run(&current, &["--version"]).trim(), "weft 0.1.0");

    let said = run(&current, &["update", "apply"]);
    assert!(
        said.contains("weft 0.2.0 is installed (from the full archive"),
        "{said}"
    );
    assert!(
        said.contains("`weft update rollback` returns to 0.1.0"),
        "{said}"
    );
    assert_eq!(
        run(&current, &["--version"]).trim(),
        "0.2.0",
        "the new version starts"
    );
    let status: Value = serde_json::from_str(&run(&old, &["update", "status", "--json"])).unwrap();
    assert_eq!(status["current"], "0.2.0");
    assert_eq!(status["trial"], "0.2.0");
    assert_eq!(status["previous"][0], "0.1.0");

    // One step back: the previous version starts, reads its data, and is not offered
    // the version it left.
    let said = run(&old, &["update", "rollback"]);
    assert!(
        said.contains("back to weft 0.1.0") && said.contains("0.2.0 is not offered again"),
        "{said}"
    );
    assert_eq!(run(&current, &["--version"]).trim(), "weft 0.1.0");
    let healthy: Value = serde_json::from_str(&run(&current, &["self-test", "--json"])).unwrap();
    assert_eq!(healthy["healthy"], true, "{healthy}");
    let checked: Value =
        serde_json::from_str(&run(&current, &["update", "check", "--json"])).unwrap();
    assert_eq!(checked["offer"], Value::Null, "{checked}");
    // Nothing left to roll back to: said, not guessed.
    let out = env
        .command(&current, None)
        .args(["update", "rollback"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no earlier version"));
}

#[test]
fn a_running_shell_checks_on_its_schedule_and_installs_the_update_silently() {
    let _serial = weft_e2e::webview_lock();
    let display = weft_e2e::Display::start();
    let env = TestEnv::new();
    let root = env.path("install");
    let v1 = Version::new(0, 1, 0);
    install_this_build(&root, std::slice::from_ref(&v1));
    Installation::open(&root)
        .unwrap()
        .0
        .mark_healthy(&v1)
        .unwrap();
    let (_server, config) = serve_releases(&env, &[("0.2.0", 100)]);
    // Every minute (plus up to 6 s of jitter); the first check is due at once.
    env.write_config(format!("{config}check_every_minutes = 1\n"));

    let ws = env.workspace("scheduled", &[("echo", "echo/index.html")]);
    let log = env.path("shell.log");
    let shell = start_from(
        &env,
        &root.join("current/weft"),
        &display,
        &["launch", ws.to_str().unwrap(), "--no-panel"],
        &log,
    );
    weft_e2e::wait_for(
        "the scheduled check to install 0.2.0",
        std::time::Duration::from_secs(90),
        || {
            let status = Installation::peek(&root).ok()?;
            (status.current == Some(Version::new(0, 2, 0))).then_some(())
        },
    );
    // Beside the running version, which goes on running its app.
    let ps = json_of(&env.run_weft(&["ps", "--json"]));
    assert_eq!(ps["apps"][0]["state"], "ready", "{ps}");
    let status = Installation::peek(&root).unwrap();
    assert_eq!(status.previous, std::slice::from_ref(&v1));
    assert_eq!(status.trial.map(|t| t.version), Some(Version::new(0, 2, 0)));
    assert!(env.data_dir().join("updates/last-check.json").is_file());
    stop(&env, shell);

    let records = update_records(&env);
    let installed: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"] == "update.installed")
        .collect();
    assert_eq!(installed.len(), 1, "{records:?}");
    assert_eq!(installed[0]["data"]["version"], "0.2.0");
    assert_eq!(installed[0]["data"]["from"], "0.1.0");
    let how = installed[0]["data"]["how"].as_str().unwrap();
    assert!(how.contains("asked by the scheduled check"), "{how}");
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains("scheduled update check: weft 0.2.0 is installed"),
        "{said}"
    );
}

#[test]
fn data_the_new_version_wrote_is_read_by_the_previous_one_after_the_one_click_rollback() {
    let _serial = weft_e2e::webview_lock();
    let display = weft_e2e::Display::start();
    let env = TestEnv::new();
    let root = env.path("install");
    let (v1, v2) = (Version::new(0, 1, 0), Version::new(0, 2, 0));
    // 0.2.0 installed as an update of 0.1.0, on trial.
    install_this_build(&root, &[v1.clone(), v2.clone()]);
    let current = root.join("current/weft");
    let ws = env.workspace("desk", &[("echo", "echo/index.html")]);
    let app_ready = || {
        weft_e2e::wait_for("the app to run", std::time::Duration::from_secs(60), || {
            let ps: Value = serde_json::from_slice(&env.run_weft(&["ps", "--json"]).stdout).ok()?;
            (ps["apps"][0]["state"] == "ready").then_some(())
        });
    };

    // 0.2.0 starts, passes its self-test, and the user saves a layout with it.
    let log = env.path("v2.log");
    let shell = start_from(
        &env,
        &current,
        &display,
        &["launch", ws.to_str().unwrap(), "--no-panel"],
        &log,
    );
    log_shows(&log, "0.2.0 passed its self-test and is kept");
    app_ready();
    let saved = env.run_weft(&["workspace", "save", "written-by-0.2.0"]);
    assert!(
        saved.status.success(),
        "{}",
        String::from_utf8_lossy(&saved.stderr)
    );
    stop(&env, shell);

    // One click back (the panel's button runs the same step as this command).
    let out = env
        .command(&current, None)
        .args(["update", "rollback"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("back to weft 0.1.0"), "{said}");
    assert_eq!(
        std::fs::read_link(root.join("current")).unwrap(),
        Path::new("versions/0.1.0")
    );

    // 0.1.0 restores the layout 0.2.0 saved.
    let log = env.path("v1.log");
    let shell = start_from(
        &env,
        &current,
        &display,
        &["workspace", "restore", "written-by-0.2.0", "--no-panel"],
        &log,
    );
    app_ready();
    let version = env
        .command(&current, None)
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        "weft 0.1.0"
    );
    stop(&env, shell);
    let marker: Value =
        serde_json::from_slice(&std::fs::read(env.data_dir().join("data-format.json")).unwrap())
            .unwrap();
    assert_eq!(
        marker["writtenBy"], "0.2.0",
        "one format: nothing to restore"
    );

    let records = update_records(&env);
    let events: Vec<&str> = records
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["update.kept", "update.rolledBack"], "{records:?}");
    assert_eq!(records[1]["data"]["version"], "0.1.0");
    assert_eq!(records[1]["data"]["from"], "0.2.0");
}
