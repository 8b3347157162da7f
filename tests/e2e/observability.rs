//! What operations teams see, end to end: the metrics and health endpoint, per-app log
//! files with `weft logs`, and the `weft diag` support bundle. Real shells and WebKit
//! pages under a private Xvfb; runs in the nextest `webview` group.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    process::Stdio,
    sync::mpsc,
    time::Duration,
};

use weft_e2e::{
    SLOW, Shell, TestEnv, http_get, parse_openmetrics, runtime, topic, wait_for, within,
};
use weft_proto::{Pattern, frame::Delivery, trace_context::MessageTrace};

/// Every sample of one scrape: (name, labels, value).
type Scrape = Vec<(String, HashMap<String, String>, f64)>;

/// GETs `/metrics` and parses it with the OpenMetrics reference parser (failing the
/// test if it does not conform).
fn scrape(url: &str) -> Scrape {
    let (status, body) = http_get(url);
    assert_eq!(status, 200, "{body}");
    parse_openmetrics(&body)
}

/// The value of the sample `name` whose labels include `labels`.
fn sample(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape.iter().find_map(|(n, l, v)| {
        (n == name
            && labels
                .iter()
                .all(|(k, want)| l.get(*k).map(String::as_str) == Some(*want)))
        .then_some(*v)
    })
}

fn counter(scrape: &Scrape, name: &str) -> f64 {
    sample(scrape, name, &[]).unwrap_or_else(|| panic!("no {name} in {scrape:?}"))
}

#[test]
fn metrics_parse_as_openmetrics_and_their_counters_move_with_the_messages() {
    let env = TestEnv::new();
    let ws = env.workspace(
        "metrics",
        &[("echo", "echo/index.html"), ("second", "echo/index.html")],
    );
    let mut shell = Shell::launch(env, &ws);
    shell.wait_ready(2);
    let url = shell
        .ps()
        .unwrap()
        .metrics_url
        .expect("the metrics endpoint is on by default");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let before = scrape(&url);
    for app in ["echo", "second"] {
        assert_eq!(
            sample(
                &before,
                "weft_app_state",
                &[("app_id", app), ("state", "ready")]
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &before,
                "weft_app_state",
                &[("app_id", app), ("state", "failed")]
            ),
            Some(0.0)
        );
        assert_eq!(
            sample(&before, "weft_app_restarts_total", &[("app_id", app)]),
            Some(0.0)
        );
        assert!(sample(&before, "weft_bus_queue_bytes", &[("app_id", app)]).is_some());
        assert!(sample(&before, "weft_app_uptime_seconds", &[("app_id", app)]).is_some());
    }

    // 20 pings, each answered by both pages: 40 pongs to the test's client.
    let rt = runtime();
    rt.block_on(async {
        let client = shell.client().await;
        let mut pongs = client.subscribe(&topic("e2e.pong")).await.unwrap();
        for i in 0..20 {
            client
                .publish(&topic("e2e.ping"), i.to_string())
                .await
                .unwrap();
        }
        for _ in 0..40 {
            within("a pong", pongs.next()).await.unwrap();
        }
    });

    let after = scrape(&url);
    let moved = |name: &str| counter(&after, name) - counter(&before, name);
    assert!(
        moved("weft_bus_messages_published_total") >= 60.0,
        "20 pings and 40 pongs: {}",
        moved("weft_bus_messages_published_total")
    );
    assert!(
        moved("weft_bus_messages_delivered_total") >= 80.0,
        "each ping to two pages, each pong to the client: {}",
        moved("weft_bus_messages_delivered_total")
    );
    assert!(moved("weft_bus_routing_latency_seconds_count") >= 1.0);
    assert_eq!(
        sample(
            &after,
            "weft_bus_routing_latency_seconds_bucket",
            &[("le", "+Inf")]
        ),
        Some(counter(&after, "weft_bus_routing_latency_seconds_count"))
    );
    assert_eq!(moved("weft_bus_messages_dropped_total"), 0.0);

    let health_url = url.replace("/metrics", "/health");
    let (status, body) = http_get(&health_url);
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok", "{body}");
    assert_eq!(health["apps"].as_array().unwrap().len(), 2);
    let (status, _) = http_get(&url.replace("/metrics", "/nothing"));
    assert_eq!(status, 404);
}

/// Waits until `weft logs APP` prints every one of `needles`; returns its output.
fn logs_containing(shell: &mut Shell, app: &str, needles: &[&str]) -> String {
    wait_for(&format!("{app}'s log to contain {needles:?}"), SLOW, || {
        shell.assert_alive();
        let out = shell.env.run_weft(&["logs", app]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        needles.iter().all(|n| text.contains(n)).then_some(text)
    })
}

#[test]
fn an_apps_console_and_errors_land_in_its_log_file_and_weft_logs_follows_it() {
    let env = TestEnv::new();
    env.write_config("[log]\nlevel = \"info\"\n[tracing]\notlp_endpoint = \"http://ops:hunter2@127.0.0.1:4318\"\n");
    let ws = env.workspace("logs", &[("chatty", "chatty/index.html")]);
    let mut shell = Shell::launch(env, &ws);
    shell.wait_ready(1);

    let text = logs_containing(
        &mut shell,
        "chatty",
        &[
            r#"console.log: chatty loaded {"answer":42}"#,
            "console.warn: chatty warns",
            "console.error: Error: chatty reports an error | ",
            "chatty.js:7",
            "uncaught Error: chatty did not catch this",
            "unhandled promise rejection: Error: chatty rejected a promise",
        ],
    );
    // Every line says when and which instance wrote it.
    let line = text.lines().find(|l| l.contains("chatty warns")).unwrap();
    assert!(line.starts_with("20"), "{line}");
    assert!(line.contains(" chatty-"), "{line}");

    // `--follow` prints what is written after it started.
    let mut follower = shell
        .env
        .weft(None)
        .args(["logs", "chatty", "--follow", "-n", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines_tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    // The last line first (-n 1), then the new one.
    lines
        .recv_timeout(SLOW)
        .expect("weft logs -n 1 printed nothing");
    let rt = runtime();
    rt.block_on(async {
        let client = shell.client().await;
        client
            .publish(&topic("e2e.say"), r#""over and out""#)
            .await
            .unwrap();
    });
    let heard = wait_for("the followed log to show the new line", SLOW, || {
        lines
            .recv_timeout(Duration::from_millis(100))
            .ok()
            .filter(|l| l.contains("chatty heard over and out"))
    });
    assert!(heard.contains("console.log"), "{heard}");
    let _ = follower.kill();
    let _ = follower.wait();

    // The shell keeps its own log too.
    let shell_log = std::fs::read_to_string(shell.env.data_dir().join("logs/weft.log")).unwrap();
    assert!(shell_log.contains("started app"), "{shell_log}");

    // Wrong app ids are refused with a message naming them.
    let out = shell.env.run_weft(&["logs", "nosuch"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no log for nosuch"));
    let out = shell.env.run_weft(&["logs", "../etc"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("`../etc` is not an app id"));

    // The support bundle holds the logs, the app list, health and settings, and no
    // secret.
    let bundle = shell.env.path("bundle.tar.gz");
    let out = shell
        .env
        .run_weft(&["diag", "--output", bundle.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = unpack(&bundle, &shell.env.path("unpacked"));
    for name in [
        "versions.json",
        "config.toml",
        "ps.json",
        "health.json",
        "logs/weft.log",
        "logs/apps/chatty.log",
    ] {
        assert!(
            files.contains_key(name),
            "{name} missing: {:?}",
            files.keys()
        );
    }
    assert!(files["logs/apps/chatty.log"].contains("chatty warns"));
    assert!(files["ps.json"].contains("\"chatty\""));
    assert!(files["health.json"].contains("\"status\""));
    assert!(files["versions.json"].contains("\"weft\""));
    assert!(files["config.toml"].contains("level = \"info\""));
    assert!(
        !files["config.toml"].contains("hunter2"),
        "{}",
        files["config.toml"]
    );
    assert!(
        files.values().all(|text| !text.contains("hunter2")),
        "a secret leaked into the bundle"
    );
}

/// Unpacks a `.tar.gz` with the system's tar; returns each file's text by its path
/// under the bundle's top directory.
fn unpack(bundle: &std::path::Path, into: &std::path::Path) -> HashMap<String, String> {
    std::fs::create_dir_all(into).unwrap();
    let status = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(bundle)
        .arg("-C")
        .arg(into)
        .status()
        .unwrap();
    assert!(status.success(), "the bundle does not unpack");
    let root = into.join("weft-diag");
    let mut files = HashMap::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let name = path.strip_prefix(&root).unwrap().display().to_string();
                files.insert(name, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    files
}

/// What the relay chain sent, by topic, and the trace it started from.
struct Chain {
    root: MessageTrace,
    messages: HashMap<String, Delivery>,
}

impl Chain {
    fn trace(&self, topic: &str) -> MessageTrace {
        MessageTrace::from_headers(&self.messages[topic].headers)
            .unwrap_or_else(|| panic!("{topic} carries no trace context"))
    }
}

/// Starts a traced message through two relay pages (`first` continues the trace
/// inside its handler, `second` after an await by naming the cause) and collects what
/// comes out.
fn run_chain(shell: &mut Shell) -> Chain {
    let rt = runtime();
    rt.block_on(async {
        let client = shell.client().await;
        let mut chain = client
            .subscribe(Pattern::new("e2e.chain.#").unwrap())
            .await
            .unwrap();
        let root = MessageTrace::caused_by(None);
        client
            .publish_with(&topic("e2e.chain.start"), r#"{"hop":0}"#, root.headers())
            .await
            .unwrap();
        let mut messages = HashMap::new();
        while messages.len() < 4 {
            let d = within("the relayed messages", chain.next()).await.unwrap();
            messages.insert(d.topic.as_str().to_owned(), d);
        }
        Chain { root, messages }
    })
}

fn launch_relays(env: TestEnv) -> Shell {
    let ws = env.workspace(
        "trace",
        &[
            ("first", "relay/first.html"),
            ("second", "relay/second.html"),
        ],
    );
    let mut shell = Shell::launch(env, &ws);
    shell.wait_ready(2);
    shell
}

#[test]
fn a_chain_of_messages_across_apps_shares_one_trace() {
    let mut shell = launch_relays(TestEnv::new());
    let chain = run_chain(&mut shell);
    let root = chain.root.span;

    let start = chain.trace("e2e.chain.start");
    assert_eq!(
        start.span, root,
        "the broker passes the context on unchanged"
    );
    let mid = chain.trace("e2e.chain.mid");
    assert_eq!(chain.messages["e2e.chain.mid"].sender.app_id, "first");
    assert_eq!(
        mid.span.trace_id, root.trace_id,
        "continued inside the handler"
    );
    assert_eq!(mid.caused_by, Some(root.span_id));
    assert_ne!(mid.span.span_id, root.span_id);
    let end = chain.trace("e2e.chain.end");
    assert_eq!(chain.messages["e2e.chain.end"].sender.app_id, "second");
    assert_eq!(
        end.span.trace_id, root.trace_id,
        "continued by naming the cause"
    );
    assert_eq!(end.caused_by, Some(mid.span.span_id));
    // Sent after an await without naming its cause: a trace of its own.
    let untraced = chain.trace("e2e.chain.untraced");
    assert_ne!(untraced.span.trace_id, root.trace_id);
    assert_eq!(untraced.caused_by, None);

    // A page naming a cause that is not a traceparent gets an error, in Rust's words.
    let rt = runtime();
    let code = rt.block_on(async {
        let client = shell.client().await;
        let mut answers = client
            .subscribe(&topic("e2e.chain.badtrace"))
            .await
            .unwrap();
        client
            .publish(&topic("e2e.relay.badtrace"), "1")
            .await
            .unwrap();
        within("the bad traceparent's answer", answers.next())
            .await
            .unwrap()
    });
    assert!(
        String::from_utf8_lossy(&code.payload).contains("not a W3C traceparent"),
        "{:?}",
        code.payload
    );
}

/// An OTLP/HTTP collector on 127.0.0.1 that keeps the spans it is sent (JSON).
#[cfg(feature = "otlp")]
struct Collector {
    server: std::sync::Arc<tiny_http::Server>,
    spans: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[cfg(feature = "otlp")]
impl Collector {
    fn start() -> Collector {
        let server = std::sync::Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let spans = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (srv, kept) = (server.clone(), spans.clone());
        let thread = std::thread::spawn(move || {
            for mut request in srv.incoming_requests() {
                let mut body = String::new();
                let _ = std::io::Read::read_to_string(request.as_reader(), &mut body);
                if request.url() == "/v1/traces"
                    && let Ok(json) = serde_json::from_str::<serde_json::Value>(&body)
                {
                    let found = json["resourceSpans"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(|r| r["scopeSpans"].as_array().into_iter().flatten())
                        .flat_map(|s| s["spans"].as_array().into_iter().flatten())
                        .cloned();
                    kept.lock().unwrap().extend(found);
                }
                let _ = request.respond(tiny_http::Response::from_string("{}"));
            }
        });
        Collector {
            server,
            spans,
            thread: Some(thread),
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.server.server_addr())
    }
}

#[cfg(feature = "otlp")]
impl Drop for Collector {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(feature = "otlp")]
#[test]
fn traced_messages_are_exported_as_one_trace_to_an_otlp_collector() {
    let collector = Collector::start();
    let env = TestEnv::new();
    env.write_config(format!(
        "[tracing]\notlp_endpoint = \"{}\"\n",
        collector.endpoint()
    ));
    let mut shell = launch_relays(env);
    let chain = run_chain(&mut shell);
    let trace_id = chain.root.span.trace_id_hex();

    // The export batches; poll what the collector has.
    let spans = wait_for("the chain's spans at the collector", SLOW, || {
        shell.assert_alive();
        let spans: Vec<serde_json::Value> = collector
            .spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s["traceId"] == trace_id.as_str())
            .cloned()
            .collect();
        (spans.len() >= 4).then_some(spans)
    });
    let span = |name: &str| {
        spans
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no span {name} in {spans:#?}"))
    };
    let start = span("publish e2e.chain.start");
    let mid = span("publish e2e.chain.mid");
    let end = span("publish e2e.chain.end");
    assert_eq!(start["spanId"], chain.root.span.span_id_hex().as_str());
    assert!(
        start["parentSpanId"].as_str().unwrap_or("").is_empty(),
        "{start}"
    );
    assert_eq!(mid["parentSpanId"], start["spanId"], "{mid}");
    assert_eq!(end["parentSpanId"], mid["spanId"], "{end}");
    // `second` published e2e.relay.noise from its handler before its first await: a
    // child of mid too. e2e.chain.untraced, sent later without a cause, is not here.
    let noise = span("publish e2e.relay.noise");
    assert_eq!(noise["parentSpanId"], mid["spanId"], "{noise}");
    let mut names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "publish e2e.chain.end",
            "publish e2e.chain.mid",
            "publish e2e.chain.start",
            "publish e2e.relay.noise"
        ]
    );
}
