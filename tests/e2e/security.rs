//! End-to-end tests of Weft's security: each tries the attack against a real shell
//! (and real WebKit pages where a page is the attacker) and asserts the refusal and the
//! audit record. Tests with pages run one at a time (the nextest `webview` group).

use std::{os::unix::net::UnixDatagram, path::Path, process::Output, time::Duration};

use serde_json::{Value, json};
use weft_client::{Client, ClientError};
use weft_e2e::{
    PageService, PrivateKeyring, Shell, TestEnv, threaded_runtime, topic, wait_for, within,
};
use weft_proto::{Pattern, Token, handshake::Refusal};

/// The `security` fixture page of one app, driven through its RPC service.
async fn page(client: &Client, app_id: &str) -> PageService {
    PageService::connect(client, &format!("e2e.security.{app_id}")).await
}

fn records_of<'a>(records: &'a [Value], event: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["event"] == event).collect()
}

/// `config.toml` that anchors the audit log in a "system log" the test reads.
fn with_syslog(env: &TestEnv) -> UnixDatagram {
    let socket = env.path("syslog.sock");
    let listener = UnixDatagram::bind(&socket).unwrap();
    listener.set_nonblocking(true).unwrap();
    env.write_config(format!(
        "[audit]\nsyslog_socket = {:?}\nanchor_every_secs = 1\n",
        socket.display().to_string()
    ));
    listener
}

/// Everything the "system log" received, as text.
fn syslog_text(listener: &UnixDatagram) -> String {
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = listener.recv(&mut buf) {
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        text.push('\n');
    }
    text
}

/// Writes `policy` as the desktop owner's policy file and a `config.toml` naming it,
/// followed by `more_config`; returns the policy file.
fn use_policy(env: &TestEnv, policy: &str, more_config: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(env.data_dir()).unwrap();
    let file = env.path("policy.toml");
    std::fs::write(&file, policy).unwrap();
    env.write_config(format!(
        "[policy]\nfile = {:?}\n{more_config}",
        file.display().to_string()
    ));
    file
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_app_is_held_to_its_declared_bus_patterns_and_every_refusal_is_audited() {
    let env = TestEnv::new();
    std::fs::create_dir_all(env.data_dir()).unwrap();
    let syslog = with_syslog(&env);
    let workspace = env.workspace_with(
        "held",
        &[
            (
                "quotes",
                "security/index.html",
                json!({"permissions": {
                    "publish": ["allowed.#"],
                    "subscribe": ["allowed.#", "e2e.security.quotes"]
                }}),
            ),
            ("open", "security/index.html", json!({})),
        ],
    );
    let mut shell = Shell::launch(env, &workspace);
    shell.wait_ready(2);
    let runtime = threaded_runtime();
    runtime.block_on(async {
        let client = shell.client().await;
        let mut watch = client.subscribe(&Pattern::new("#").unwrap()).await.unwrap();
        let quotes = page(&client, "quotes").await;
        let open = page(&client, "open").await;

        let ok = quotes
            .action("publish", json!({"topic": "allowed.fx", "data": 1}))
            .await;
        assert_eq!(ok["ok"], true, "{ok}");
        for (refused, args) in [
            ("publish", json!({"topic": "secret.fx", "data": 2})),
            ("subscribe", json!({"pattern": "#"})),
            ("subscribe", json!({"pattern": "*.fx"})),
        ] {
            let answer = quotes.action(refused, args.clone()).await;
            assert_eq!(answer["code"], "AccessDenied", "{refused} {args}: {answer}");
        }
        let narrower = quotes
            .action("subscribe", json!({"pattern": "allowed.*"}))
            .await;
        assert_eq!(narrower["ok"], true, "{narrower}");
        // An app that declares nothing keeps the open bus.
        let free = open
            .action("publish", json!({"topic": "secret.fx", "data": 3}))
            .await;
        assert_eq!(free["ok"], true, "{free}");

        // The watcher saw the allowed messages, and not the refused one, in order.
        let mut seen = vec![];
        while seen.len() < 2 {
            let d = within("a message", watch.next()).await.unwrap();
            if !d.topic.as_str().starts_with("e2e.") {
                seen.push((d.topic.as_str().to_owned(), d.sender.app_id.clone()));
            }
        }
        assert_eq!(
            seen,
            [
                ("allowed.fx".to_owned(), "quotes".to_owned()),
                ("secret.fx".to_owned(), "open".to_owned())
            ]
        );

        // A local client with a made-up token, or none, is refused.
        let socket = shell.env.endpoint().socket_path();
        match Client::connect(&socket, &Token::random()).await {
            Err(ClientError::Refused { reason, .. }) => assert_eq!(reason, Refusal::BadToken),
            other => panic!("a made-up token was accepted: {:?}", other.is_ok()),
        }
        let mut hello = weft_proto::handshake::Hello::new(&Token::random());
        hello.token.clear();
        match Client::connect_with_hello(&socket, &hello.encode()).await {
            Err(ClientError::Refused { reason, .. }) => assert_eq!(reason, Refusal::Malformed),
            other => panic!("a missing token was accepted: {:?}", other.is_ok()),
        }
    });

    let stop = shell.env.run_weft(&["stop"]);
    assert!(stop.status.success(), "{}", stderr(&stop));
    assert!(shell.wait_exit(Duration::from_secs(60)).success());

    let records = shell.env.audit_records();
    let denied: Vec<(Value, Value, Value)> = records_of(&records, "bus.denied")
        .iter()
        .map(|r| {
            (
                r["data"]["app"]["appId"].clone(),
                r["data"]["action"].clone(),
                r["data"]["subject"].clone(),
            )
        })
        .collect();
    assert_eq!(
        denied,
        [
            (json!("quotes"), json!("publish"), json!("secret.fx")),
            (json!("quotes"), json!("subscribe"), json!("#")),
            (json!("quotes"), json!("subscribe"), json!("*.fx")),
        ]
    );
    let refused: Vec<(Value, Value)> = records_of(&records, "client.refused")
        .iter()
        .map(|r| (r["data"]["reason"].clone(), r["data"]["peerPid"].clone()))
        .collect();
    let me = json!(std::process::id());
    assert_eq!(
        refused,
        [(json!("BadToken"), me.clone()), (json!("Malformed"), me)]
    );
    let started: Vec<&Value> = records_of(&records, "app.start")
        .into_iter()
        .map(|r| &r["data"]["app"]["appId"])
        .collect();
    assert_eq!(started, [&json!("quotes"), &json!("open")]);
    assert_eq!(records_of(&records, "app.exit").len(), 2);
    let stops: Vec<_> = records_of(&records, "cli.request")
        .into_iter()
        .filter(|r| r["data"]["action"] == "stop")
        .collect();
    assert_eq!(stops.len(), 1);
    assert_eq!(records.first().unwrap()["event"], "shell.start");
    assert_eq!(records.last().unwrap()["event"], "shell.stop");

    // The chain verifies against the head file and the anchors the shell wrote to the
    // system log — the last of them at shutdown, at the final line.
    let anchors = shell.env.path("anchors.txt");
    let syslog = syslog_text(&syslog);
    assert!(syslog.contains("weft-audit["), "{syslog}");
    std::fs::write(&anchors, &syslog).unwrap();
    let anchors_arg = anchors.to_str().unwrap();
    let ok = shell
        .env
        .run_weft(&["audit", "verify", "--no-journal", "--anchors", anchors_arg]);
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{}{text}", stderr(&ok));
    assert!(text.contains("chain intact"), "{text}");

    // Cutting the last lines and rewriting the head file to match passes the chain but
    // not the system log's anchor.
    let log_file = audit_file(&shell.env.data_dir());
    let content = std::fs::read_to_string(&log_file).unwrap();
    let lines: Vec<&str> = content.lines().collect();
    let kept = &lines[..lines.len() - 2];
    std::fs::write(&log_file, kept.join("\n") + "\n").unwrap();
    let last: Value = serde_json::from_str(kept.last().unwrap()).unwrap();
    std::fs::write(
        shell.env.data_dir().join("audit/head"),
        format!("{} {}\n", last["seq"], sha256_hex(kept.last().unwrap())),
    )
    .unwrap();
    let cut = shell
        .env
        .run_weft(&["audit", "verify", "--no-journal", "--anchors", anchors_arg]);
    assert_eq!(cut.status.code(), Some(1));
    assert!(stderr(&cut).contains("cut off the end"), "{}", stderr(&cut));

    // An edited line is named.
    std::fs::write(&log_file, &content).unwrap();
    std::fs::remove_file(shell.env.data_dir().join("audit/head")).unwrap();
    let edited = content.replacen("\"secret.fx\"", "\"public.fx\"", 1);
    std::fs::write(&log_file, &edited).unwrap();
    let bad_line = content
        .lines()
        .position(|l| l.contains("\"secret.fx\""))
        .unwrap()
        + 1;
    let out = shell.env.run_weft(&["audit", "verify", "--no-journal"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("{}:{bad_line}:", log_file.display())),
        "{}",
        stderr(&out)
    );
}

/// The audit log's only file (the test's log is far below the rotation size).
fn audit_file(data_dir: &Path) -> std::path::PathBuf {
    let mut files: Vec<_> = std::fs::read_dir(data_dir.join("audit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.pop().unwrap()
}

fn sha256_hex(line: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(line.as_bytes()))
}

#[test]
fn a_malformed_policy_stops_the_shell_and_a_policy_refuses_apps_it_does_not_allow() {
    let env = TestEnv::new();
    let policy = use_policy(&env, "", "");
    let workspace = env.workspace("one", &[("echo", "echo/index.html")]);
    let launch = || env.run_weft(&["launch", workspace.to_str().unwrap(), "--no-panel"]);

    // A typo in the policy: nothing starts, and the message says where.
    std::fs::write(&policy, "[apps]\nalow = [\"echo\"]\n").unwrap();
    let out = launch();
    assert!(!out.status.success());
    let why = stderr(&out);
    assert!(why.contains(&*policy.to_string_lossy()), "{why}");
    assert!(
        why.contains("alow") && why.contains("does not start"),
        "{why}"
    );
    assert!(!env.endpoint().socket_path().exists());
    assert!(
        !env.data_dir().join("audit").exists(),
        "nothing ran, nothing to audit"
    );

    // A policy that allows only another app: refused at launch, and audited.
    std::fs::write(&policy, "[apps]\nallow = [\"blotter\"]\n").unwrap();
    let out = launch();
    assert!(!out.status.success());
    let why = stderr(&out);
    assert!(
        why.contains("the desktop owner's policy does not allow the app `echo`"),
        "{why}"
    );
    let records = env.audit_records();
    let violations = records_of(&records, "policy.violation");
    assert_eq!(violations.len(), 1, "{records:?}");
    assert_eq!(violations[0]["data"]["appId"], "echo");
    assert!(records_of(&records, "app.start").is_empty());

    // Origins too: a remote app from an origin the policy does not list.
    std::fs::write(
        &policy,
        "[apps]\norigins = [\"https://apps.bank.example\"]\n",
    )
    .unwrap();
    let remote = env.fixtures().join("remote.json");
    std::fs::write(
        &remote,
        json!({"name": "remote", "apps": [{"appId": "news", "url": "https://news.example.org/"}]})
            .to_string(),
    )
    .unwrap();
    let out = env.run_weft(&["launch", remote.to_str().unwrap(), "--no-panel"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("does not allow apps from https://news.example.org"),
        "{}",
        stderr(&out)
    );
    let verified = env.run_weft(&["audit", "verify", "--no-journal"]);
    assert!(verified.status.success(), "{}", stderr(&verified));
}

/// How long a consent prompt ignores input after it appears (`consent::ARMING_DELAY`
/// in the shell), with a margin.
const PROMPT_ARMING: Duration = Duration::from_millis(900);

/// Answers the consent prompt on screen with the keyboard: Tab `tabs` times (1 Allow
/// once, 2 Always allow, 3 Deny, 4 Always deny), then Enter.
fn answer_prompt(shell: &Shell, tabs: usize, screenshot: Option<&str>) {
    let window = shell.window_of("Weft: permission request");
    // Not synchronisation: the prompt ignores input for a fixed time after it appears
    // (so that a click meant for the app cannot answer it); this waits that time out.
    std::thread::sleep(PROMPT_ARMING);
    if let Some(name) = screenshot {
        let dir = weft_e2e::screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        assert!(
            shell.display.screenshot(&dir.join(name)),
            "screenshot {name}"
        );
    }
    let mut keys = vec!["windowfocus", "--sync", &window, "key", "--delay", "100"];
    keys.extend(std::iter::repeat_n("Tab", tabs));
    keys.push("Return");
    shell.xdotool(&keys);
    wait_for("the prompt to be answered", Duration::from_secs(30), || {
        let left = shell.xdotool(&[
            "search",
            "--onlyvisible",
            "--name",
            "^Weft: permission request$",
        ]);
        (!left.lines().any(|w| w == window)).then_some(())
    });
}

#[test]
fn consent_answers_behave_as_labelled_survive_a_restart_and_revocation_is_immediate() {
    let mut env = TestEnv::new();
    let keyring = PrivateKeyring::start(&mut env);
    let workspace = env.workspace_with(
        "vaults",
        &[
            (
                "vault",
                "security/index.html",
                json!({"permissions": {"api": ["secureStorage"]}}),
            ),
            (
                "reader",
                "security/index.html",
                json!({"permissions": {"api": ["secureStorage"]}}),
            ),
            ("nosy", "security/index.html", json!({})),
        ],
    );
    let ws = workspace.to_str().unwrap().to_owned();
    let runtime = threaded_runtime();
    let secure = |page: &PageService, action: &str, key: &str, value: Value| {
        runtime.block_on(page.action(
            "secure",
            json!({"action": action, "key": key, "value": value}),
        ))
    };
    let pages = |shell: &Shell, ids: &[&str]| -> Vec<PageService> {
        runtime.block_on(async {
            let client = shell.client().await;
            let mut pages = vec![];
            for id in ids {
                pages.push(page(&client, id).await);
            }
            pages
        })
    };

    let mut shell = Shell::start(env, &["launch", &ws]);
    shell.wait_ready(3);
    let p = pages(&shell, &["vault", "reader", "nosy"]);
    let (vault, reader, nosy) = (&p[0], &p[1], &p[2]);

    // Undeclared: refused at once, no prompt.
    let refused = secure(nosy, "get", "token", json!(null));
    assert_eq!(refused["code"], "AccessDenied", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("not declared"),
        "{refused}"
    );

    // Deny: this call only.
    let call = std::thread::scope(|s| {
        let call = s.spawn(|| secure(vault, "set", "token", json!("abc-123")));
        answer_prompt(&shell, 3, Some("consent-prompt.png"));
        call.join().unwrap()
    });
    assert_eq!(call["code"], "AccessDenied", "{call}");
    // Allow once: this call, and the next one asks again.
    let call = std::thread::scope(|s| {
        let call = s.spawn(|| secure(vault, "set", "token", json!("abc-123")));
        answer_prompt(&shell, 1, None);
        call.join().unwrap()
    });
    assert_eq!(call["ok"], true, "{call}");
    // Always allow: this call and every later one, without asking.
    let call = std::thread::scope(|s| {
        let call = s.spawn(|| secure(vault, "get", "token", json!(null)));
        answer_prompt(&shell, 2, None);
        call.join().unwrap()
    });
    assert_eq!(call["value"], "abc-123", "{call}");
    assert_eq!(
        secure(vault, "keys", "", json!(null))["value"],
        json!(["token"])
    );

    // Another app allowed secure storage sees only its own entries.
    let call = std::thread::scope(|s| {
        let call = s.spawn(|| secure(reader, "get", "token", json!(null)));
        answer_prompt(&shell, 2, None);
        call.join().unwrap()
    });
    assert_eq!(
        call,
        json!({"ok": true, "value": null}),
        "reader must not see vault's token"
    );
    assert_eq!(secure(reader, "keys", "", json!(null))["value"], json!([]));

    // The key is in the keychain; the value is nowhere in clear.
    assert!(
        keyring.search("weft").contains("secure-storage"),
        "{}",
        keyring.search("weft")
    );
    for entry in std::fs::read_dir(shell.env.data_dir().join("secure-storage")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("abc-123"));
    }

    // Restart: "Always allow" holds without a prompt.
    let stop = shell.env.run_weft(&["stop"]);
    assert!(stop.status.success(), "{}", stderr(&stop));
    assert!(shell.wait_exit(Duration::from_secs(60)).success());
    let env = shell.into_env();
    let list = env.run_weft(&["permissions", "list", "--json"]);
    let listed: Value = serde_json::from_slice(&list.stdout).unwrap();
    let remembered: Vec<(Value, Value)> = listed["remembered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["appId"].clone(), r["answer"].clone()))
        .collect();
    assert_eq!(
        remembered,
        [
            (json!("vault"), json!("alwaysAllow")),
            (json!("reader"), json!("alwaysAllow"))
        ]
    );
    let mut shell = Shell::start(env, &["launch", &ws]);
    shell.wait_ready(3);
    let p = pages(&shell, &["vault"]);
    let vault = &p[0];
    assert_eq!(
        secure(vault, "get", "token", json!(null))["value"],
        "abc-123"
    );

    // Revocation takes effect at once: the next call asks again; Always deny sticks.
    let out = shell
        .env
        .run_weft(&["permissions", "revoke", "vault", "--api", "secureStorage"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let call = std::thread::scope(|s| {
        let call = s.spawn(|| secure(vault, "get", "token", json!(null)));
        answer_prompt(&shell, 4, None);
        call.join().unwrap()
    });
    assert_eq!(call["code"], "AccessDenied", "{call}");
    let again = secure(vault, "delete", "token", json!(null));
    assert_eq!(again["code"], "AccessDenied", "{again}");
    assert!(
        again["message"].as_str().unwrap().contains("always denied"),
        "{again}"
    );

    let stop = shell.env.run_weft(&["stop"]);
    assert!(stop.status.success(), "{}", stderr(&stop));
    assert!(shell.wait_exit(Duration::from_secs(60)).success());
    let records = shell.env.audit_records();
    let decisions: Vec<(String, String, bool, Value)> = records_of(&records, "permission.decision")
        .iter()
        .map(|r| {
            let d = &r["data"];
            (
                d["app"]["appId"].as_str().unwrap().to_owned(),
                d["by"].as_str().unwrap().to_owned(),
                d["allowed"].as_bool().unwrap(),
                d["answer"].clone(),
            )
        })
        .collect();
    let expected = [
        ("nosy", "manifest", false, json!(null)),
        ("vault", "user", false, json!("deny")),
        ("vault", "user", true, json!("allowOnce")),
        ("vault", "user", true, json!("alwaysAllow")),
        ("vault", "remembered", true, json!(null)),
        ("reader", "user", true, json!("alwaysAllow")),
        ("reader", "remembered", true, json!(null)),
        ("vault", "remembered", true, json!(null)),
        ("vault", "user", false, json!("alwaysDeny")),
        ("vault", "remembered", false, json!(null)),
    ]
    .map(|(a, b, c, d)| (a.to_owned(), b.to_owned(), c, d));
    assert_eq!(decisions, expected);
    assert_eq!(records_of(&records, "permission.request").len(), 5);
    let revoked = records_of(&records, "permission.revoke");
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["data"]["by"], "cli");
}

/// A web server on 127.0.0.1 serving one page, whose script reports whether it got a
/// bridge and then calls the host directly, as a hostile frame would.
struct FramePage {
    port: u16,
}

impl FramePage {
    fn start() -> FramePage {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                // The raw handler WebKit exposes to every frame, behind wry's `ipc`.
                let body = "<!doctype html><script>\
                    const raw = window.webkit && window.webkit.messageHandlers && window.webkit.messageHandlers.ipc;\
                    if (raw) raw.postMessage(JSON.stringify({s: '0123456789abcdef0123456789abcdef', t: 'pub', id: 1, topic: 'e2e.forged', data: '\"from-frame\"'}));\
                    parent.postMessage({weft: typeof window.weft, ipc: typeof window.ipc, raw: typeof raw}, '*');\
                    </script>";
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        FramePage { port }
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

#[test]
fn a_page_cannot_forge_its_identity_leave_its_origins_or_open_windows_inside_weft() {
    let mut env = TestEnv::new();
    let frames = FramePage::start();
    // The desktop's browser, as far as the app host can tell: records what it is given.
    let bin = env.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let opened = env.path("opened.txt");
    let opener = bin.join("xdg-open");
    std::fs::write(
        &opener,
        format!("#!/bin/sh\necho \"$1\" >> {}\n", opened.display()),
    )
    .unwrap();
    std::fs::set_permissions(&opener, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    env.set_env(
        "PATH",
        &format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    let workspace = env.workspace_with(
        "held",
        &[(
            "held",
            "security/index.html",
            json!({"permissions": {"origins": [frames.origin()]}}),
        )],
    );
    let mut shell = Shell::launch(env, &workspace);
    shell.wait_ready(1);
    let runtime = threaded_runtime();
    runtime.block_on(async {
        let client = shell.client().await;
        let mut forged = client.subscribe(&topic("e2e.forged")).await.unwrap();
        let held = page(&client, "held").await;
        let home = held.action("where", json!({})).await["value"].clone();

        assert_eq!(held.action("forge", json!({})).await["ok"], true);

        // A frame of a declared origin loads, but gets no bridge, and what it sends the
        // host directly is dropped.
        let frame = held
            .action(
                "frame",
                json!({"url": format!("{}/frame.html", frames.origin())}),
            )
            .await;
        assert_eq!(frame["value"]["weft"], "undefined", "{frame}");
        assert_eq!(frame["value"]["ipc"], "undefined", "{frame}");
        assert_eq!(
            frame["value"]["raw"], "object",
            "the frame can reach the host: {frame}"
        );

        // Navigation outside the app's origins is blocked: the page stays.
        held.action("navigate", json!({"url": "https://evil.example/phish"}))
            .await;
        let blocked = wait_for_record(&shell, "navigation.blocked");
        assert_eq!(
            blocked["data"]["details"]["url"],
            "https://evil.example/phish"
        );
        assert_eq!(held.action("where", json!({})).await["value"], home);

        // A new window opens in the system browser, never inside Weft.
        held.action("open", json!({"url": "https://example.org/report"}))
            .await;
        let opened_text = wait_for(
            "the system browser to be asked",
            Duration::from_secs(30),
            || {
                std::fs::read_to_string(&opened)
                    .ok()
                    .filter(|t| !t.is_empty())
            },
        );
        assert_eq!(opened_text.trim(), "https://example.org/report");

        // Nothing forged reached the bus: the host handles the page's messages in
        // order, so the first message there is the genuine one sent after them all.
        let genuine = held
            .action("publish", json!({"topic": "e2e.forged", "data": "genuine"}))
            .await;
        assert_eq!(genuine["ok"], true, "{genuine}");
        let first = within("the genuine message", forged.next()).await.unwrap();
        assert_eq!(&first.payload[..], b"\"genuine\"");
        assert_eq!(first.sender.app_id, "held");
    });
    let windows = shell.xdotool(&["search", "--onlyvisible", "--name", "."]);
    assert_eq!(
        windows.lines().count(),
        1,
        "only the app's own window: {windows}"
    );

    let stop = shell.env.run_weft(&["stop"]);
    assert!(stop.status.success(), "{}", stderr(&stop));
    assert!(shell.wait_exit(Duration::from_secs(60)).success());
    let records = shell.env.audit_records();
    let dropped = records_of(&records, "identity.violation");
    assert_eq!(
        dropped.len(),
        3,
        "two forged by the page, one by the frame: {dropped:?}"
    );
    let reasons: Vec<&str> = dropped
        .iter()
        .map(|r| {
            assert_eq!(r["data"]["app"]["appId"], "held");
            r["data"]["details"]["reason"].as_str().unwrap()
        })
        .collect();
    assert!(reasons[0].contains("unknown field `sender`"), "{reasons:?}");
    assert!(
        reasons[1..].iter().all(|r| r.contains("secret")),
        "{reasons:?}"
    );
    let windows = records_of(&records, "window.new");
    assert_eq!(windows.len(), 1);
    assert_eq!(windows[0]["data"]["details"]["openedInBrowser"], true);
}

/// Waits until the running shell's audit log holds an `event` record; returns it.
fn wait_for_record(shell: &Shell, event: &str) -> Value {
    wait_for(
        &format!("an audit record {event}"),
        Duration::from_secs(30),
        || {
            records_of(&shell.env.audit_records(), event)
                .first()
                .map(|r| (*r).clone())
        },
    )
}

#[test]
fn without_the_panel_only_policy_and_remembered_answers_decide() {
    let env = TestEnv::new();
    // No keychain here: the key file, as the user allowed.
    use_policy(
        &env,
        "[permissions]\ngrant = { owner = [\"secureStorage\"] }\ndeny = { blocked = [\"secureStorage\"] }\n",
        "[secure_storage]\nkey_file = true\n",
    );
    let remembered = json!({"remembered": [
        {"appId": "vault", "api": "secureStorage", "answer": "alwaysAllow", "at": "2026-11-01T00:00:00Z"},
        {"appId": "blocked", "api": "secureStorage", "answer": "alwaysAllow", "at": "2026-11-01T00:00:00Z"}
    ]});
    std::fs::write(
        env.data_dir().join("permissions.json"),
        remembered.to_string(),
    )
    .unwrap();
    let declares = json!({"permissions": {"api": ["secureStorage"]}});
    let workspace = env.workspace_with(
        "headless",
        &[
            ("vault", "security/index.html", declares.clone()),
            ("asker", "security/index.html", declares.clone()),
            ("owner", "security/index.html", json!({})),
            ("blocked", "security/index.html", declares),
        ],
    );
    let mut shell = Shell::launch(env, &workspace);
    shell.wait_ready(4);
    let runtime = threaded_runtime();
    runtime.block_on(async {
        let client = shell.client().await;
        let set = json!({"action": "set", "key": "k", "value": 1});
        for (app, allowed, why) in [
            ("vault", true, ""),
            ("asker", false, "nobody can be asked"),
            ("owner", true, ""),
            ("blocked", false, "desktop owner's policy"),
        ] {
            let answer = page(&client, app).await.action("secure", set.clone()).await;
            if allowed {
                assert_eq!(answer["ok"], true, "{app}: {answer}");
            } else {
                assert_eq!(answer["code"], "AccessDenied", "{app}: {answer}");
                assert!(
                    answer["message"].as_str().unwrap().contains(why),
                    "{app}: {answer}"
                );
            }
        }
    });
    let key = shell.env.data_dir().join("secure-storage/key");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let out = shell.env.run_weft(&["permissions", "list"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("owner\tsecureStorage\tgranted by policy"),
        "{listed}"
    );
    assert!(
        listed.contains("blocked\tsecureStorage\tdenied by policy"),
        "{listed}"
    );
}

#[test]
fn manifests_must_be_signed_by_a_trusted_key_when_policy_says_so() {
    let env = TestEnv::new();
    std::fs::create_dir_all(env.data_dir()).unwrap();
    let run = |args: &[&str]| {
        let out = env.run_weft(args);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        (out.status.success(), text)
    };
    let key = env.path("publisher.key");
    let (ok, text) = run(&["manifest", "keygen", "--out", key.to_str().unwrap()]);
    assert!(ok, "{text}");
    let public = std::fs::read_to_string(env.path("publisher.key.pub")).unwrap();
    let other = env.path("other.key");
    assert!(run(&["manifest", "keygen", "--out", other.to_str().unwrap()]).0);
    use_policy(
        &env,
        &format!(
            "[manifests]\nrequire_signed = true\ntrusted_keys = [\"{}\"]\n",
            public.trim()
        ),
        "",
    );
    let ws = env.workspace("signed", &[("echo", "echo/index.html")]);
    let ws_arg = ws.to_str().unwrap();
    let launch = || run(&["launch", ws_arg, "--no-panel"]);

    let (ok, text) = launch();
    assert!(!ok);
    assert!(
        text.contains("requires signed manifests, and the workspace file")
            && text.contains("is not signed"),
        "{text}"
    );

    // Signed, then reformatted (compact, keys reordered): still valid.
    let (ok, text) = run(&["manifest", "sign", ws_arg, "--key", key.to_str().unwrap()]);
    assert!(ok, "{text}");
    let mut value: Value = serde_json::from_slice(&std::fs::read(&ws).unwrap()).unwrap();
    let apps = value["apps"].take();
    value.as_object_mut().unwrap().remove("apps");
    value.as_object_mut().unwrap().insert("apps".into(), apps);
    std::fs::write(&ws, value.to_string()).unwrap();
    let (ok, text) = run(&["manifest", "verify", ws_arg]);
    assert!(ok && text.contains("trusted by the policy"), "{text}");

    // Tampered after signing: refused, naming the file.
    let signed = std::fs::read_to_string(&ws).unwrap();
    std::fs::write(
        &ws,
        signed.replace("echo/index.html", "echo/index.html?evil=1"),
    )
    .unwrap();
    let (ok, text) = launch();
    assert!(!ok);
    assert!(text.contains("its signature is invalid"), "{text}");
    assert!(!run(&["manifest", "verify", ws_arg]).0);

    // Signed, but by a key the policy does not trust.
    std::fs::write(&ws, &signed).unwrap();
    assert!(run(&["manifest", "sign", ws_arg, "--key", other.to_str().unwrap()]).0);
    let (ok, text) = launch();
    assert!(!ok);
    assert!(text.contains("which the policy does not trust"), "{text}");

    let records = env.audit_records();
    let refused = records_of(&records, "policy.violation");
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(refused.iter().all(|r| r["data"]["appId"] == "echo"));

    // Signed by the trusted key: it starts.
    std::fs::write(&ws, &signed).unwrap();
    let mut shell = Shell::launch(env, &ws);
    shell.wait_ready(1);
}

/// An audit collector on 127.0.0.1: keeps the body of every POST.
struct Collector {
    port: u16,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Collector {
    fn start() -> Collector {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    line.clear();
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_ok() {
                    kept.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&body).into_owned());
                }
                let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            }
        });
        Collector { port, bodies }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/anchors", self.port)
    }
}

#[test]
fn the_policys_collector_receives_the_chain_head_and_catches_a_rewritten_log() {
    let env = TestEnv::new();
    let collector = Collector::start();
    use_policy(
        &env,
        &format!(
            "[apps]\nallow = [\"nothing\"]\n[audit]\ncollector = {:?}\n",
            collector.url()
        ),
        "",
    );
    let ws = env.workspace("refused", &[("echo", "echo/index.html")]);
    let out = env.run_weft(&["launch", ws.to_str().unwrap(), "--no-panel"]);
    assert!(!out.status.success());

    // The shell anchored its last line there before it exited.
    let bodies = collector.bodies.lock().unwrap().clone();
    let last: Value = serde_json::from_str(bodies.last().expect("an anchor was posted")).unwrap();
    let records = env.audit_records();
    assert_eq!(records.last().unwrap()["event"], "shell.stop");
    assert_eq!(last["seq"], records.last().unwrap()["seq"]);
    let anchors = env.path("collected.txt");
    std::fs::write(
        &anchors,
        bodies
            .iter()
            .map(|b| {
                serde_json::from_str::<Value>(b).unwrap()["anchor"]
                    .as_str()
                    .unwrap()
                    .to_owned()
                    + "\n"
            })
            .collect::<String>(),
    )
    .unwrap();
    let anchors_arg = anchors.to_str().unwrap();
    let ok = env.run_weft(&["audit", "verify", "--no-journal", "--anchors", anchors_arg]);
    assert!(ok.status.success(), "{}", stderr(&ok));

    // The whole log rewritten consistently, one line shorter, head file included:
    // only the collector's anchor tells.
    let file = audit_file(&env.data_dir());
    let content = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = content.lines().collect();
    let kept = &lines[..lines.len() - 1];
    std::fs::write(&file, kept.join("\n") + "\n").unwrap();
    let last_kept: Value = serde_json::from_str(kept.last().unwrap()).unwrap();
    std::fs::write(
        env.data_dir().join("audit/head"),
        format!(
            "{} {}\n",
            last_kept["seq"],
            sha256_hex(kept.last().unwrap())
        ),
    )
    .unwrap();
    let alone = env.run_weft(&["audit", "verify", "--no-journal"]);
    assert!(
        alone.status.success(),
        "the forgery is self-consistent: {}",
        stderr(&alone)
    );
    let caught = env.run_weft(&["audit", "verify", "--no-journal", "--anchors", anchors_arg]);
    assert_eq!(caught.status.code(), Some(1));
    assert!(
        stderr(&caught).contains("cut off the end"),
        "{}",
        stderr(&caught)
    );
}
