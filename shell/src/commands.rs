//! What each command does.

use std::{
    fs::{File, TryLockError},
    io::Write,
    path::Path,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::value::RawValue;
use weft_client::{Client, ClientError};
use weft_proto::{
    Identity, Pattern, Topic,
    endpoint::Endpoint,
    frame::{AppInfo, ControlReply, ControlRequest},
    trace_context::{MessageTrace, TraceParent},
};

use crate::{
    cli::DlqCommand,
    cli::{BusCommand, GlobalArgs, LaunchArgs, WindowArgs},
    config::{self, Config},
    data_dir,
    launch_request::LaunchRequest,
    logging,
    shell_process::{self, Initial, ShellSettings},
    workspace_snapshots,
};

/// Exit code of `weft bus sub` when its timeout passes.
const EXIT_TIMEOUT: u8 = 2;
/// How long a second `weft launch` waits for a starting shell to accept it.
const HANDOVER_DEADLINE: Duration = Duration::from_secs(20);

/// What starts a shell (or is handed to the running one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// A plain `weft`: the last session (the demo the first time), or bring the running
    /// shell forward.
    Plain,
    /// `weft launch`: the workspace, directories and apps named (the demo when none).
    Launch,
    /// `weft workspace restore NAME`.
    Restore(String),
}

/// `weft`, `weft launch` and `weft workspace restore`.
pub fn launch(global: &GlobalArgs, args: LaunchArgs, start: Start) -> anyhow::Result<ExitCode> {
    let data_dir = data_dir::resolve(global.data_dir.as_deref())?;
    if let Start::Restore(name) = &start {
        // Refused before anything starts: a snapshot that is not there or not valid.
        workspace_snapshots::read(&data_dir, name)?;
    }
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    // Broken settings stop the shell before it logs or starts anything.
    let config = Config::load(
        &config::user_file(global.config.as_deref())?,
        &args.shell.flags(),
    )?;
    let endpoint = data_dir::endpoint(&data_dir)?;
    endpoint
        .ensure_dir()
        .with_context(|| format!("preparing {}", endpoint.dir().display()))?;

    // Read first: a bad workspace or App Directory is refused before anything starts or
    // is handed on.
    let request = LaunchRequest::from_args(&args)?;
    let loaded = match request.is_empty() {
        true => None,
        false => Some(request.load()?),
    };

    let lock = lock_file(&endpoint)?;
    match lock.try_lock() {
        Ok(()) => logging::init_for_shell(&data_dir, &config),
        Err(TryLockError::WouldBlock) => {
            logging::init_for_command();
            let control = match start {
                Start::Plain => ControlRequest::Activate,
                Start::Launch => ControlRequest::Launch {
                    workspace: request.workspace,
                    app_directories: request.app_directories,
                    apps: request.apps,
                },
                Start::Restore(name) => ControlRequest::RestoreWorkspace { name },
            };
            return hand_over(&endpoint, control);
        }
        Err(TryLockError::Error(e)) => {
            logging::init_for_command();
            return Err(e).with_context(|| format!("locking {}", endpoint.lock_path().display()));
        }
    }
    let last_session = workspace_snapshots::file(&data_dir, workspace_snapshots::LAST_SESSION)?;
    let initial = match (loaded, start) {
        (Some(loaded), _) => Initial::Workspace(request, loaded),
        (None, Start::Restore(name)) => Initial::Snapshot(name),
        // A plain `weft` opens the last session as it was (the demo the first time).
        (None, Start::Plain) if last_session.exists() => Initial::LastSession,
        (None, _) => Initial::Demo,
    };
    let metrics_addr = config.metrics_addr().unwrap_or_default();
    shell_process::run(
        &data_dir,
        &endpoint,
        lock,
        initial,
        ShellSettings {
            show_panel: !args.no_panel,
            metrics_addr,
            config,
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Another shell owns the data directory: ask it to launch, and exit.
fn hand_over(endpoint: &Endpoint, request: ControlRequest) -> anyhow::Result<ExitCode> {
    let runtime = runtime()?;
    let launched = runtime.block_on(async {
        let client = connect_when_ready(endpoint).await?;
        client.control(request).await.map_err(anyhow::Error::from)
    })?;
    match launched {
        ControlReply::Launched(ids) if ids.is_empty() => {
            eprintln!("weft: handed over to the running shell; its apps are already running");
        }
        ControlReply::Launched(ids) => {
            let names: Vec<_> = ids.iter().map(|id| id.instance_id.as_str()).collect();
            eprintln!(
                "weft: handed over to the running shell, which launched {}",
                names.join(", ")
            );
        }
        ControlReply::Restored { started, notes } => {
            eprintln!(
                "weft: the running shell restored the layout: {} app instance(s) started",
                started.len()
            );
            for note in notes {
                eprintln!("weft: not restored: {note}");
            }
        }
        _ => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// Connects to a shell that holds the lock but may still be starting.
async fn connect_when_ready(endpoint: &Endpoint) -> anyhow::Result<Client> {
    let deadline = Instant::now() + HANDOVER_DEADLINE;
    loop {
        match Client::connect_cli(endpoint).await {
            Ok(client) => return Ok(client),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!("the running shell is not ready yet: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => {
                return Err(e).context("a shell holds this data directory but does not answer");
            }
        }
    }
}

/// `weft ps`.
pub fn ps(data_dir: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let reply = control(data_dir, ControlRequest::ListApps)?;
    let ControlReply::Apps { apps, metrics_url } = reply else {
        bail!("the shell gave an unexpected answer: {reply:?}");
    };
    let mut out = std::io::stdout().lock();
    if json {
        #[derive(Serialize)]
        struct Ps<'a> {
            apps: &'a [AppInfo],
            #[serde(skip_serializing_if = "Option::is_none")]
            metrics_url: Option<&'a str>,
        }
        let ps = Ps {
            apps: &apps,
            metrics_url: metrics_url.as_deref(),
        };
        serde_json::to_writer(&mut out, &ps)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "{:<20} {:<34} {:>8}  {:<14} {:>8} {:>6} {:>7}  URL",
            "APP", "INSTANCE", "PID", "STATE", "RESTARTS", "CPU%", "MEM(MB)"
        )?;
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        for a in &apps {
            writeln!(
                out,
                "{:<20} {:<34} {:>8}  {:<14} {:>8} {:>6} {:>7}  {}",
                a.app_id,
                a.instance_id,
                or_dash(a.pid.map(|p| p.to_string())),
                a.state.as_str(),
                a.restarts,
                or_dash(a.cpu_percent.map(|c| format!("{c:.1}"))),
                or_dash(a.memory_pss_kb.map(|kb| (kb / 1024).to_string())),
                a.url
            )?;
        }
        if let Some(url) = metrics_url {
            writeln!(out, "metrics: {url}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft stop`.
pub fn stop(data_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let dir = data_dir::resolve(data_dir)?;
    control(data_dir, ControlRequest::Shutdown)?;
    // The request only starts the shutdown; wait until the shell has released its lock.
    let endpoint = data_dir::endpoint(&dir)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match File::open(endpoint.lock_path()).map(|f| f.try_lock()) {
            Ok(Ok(())) | Err(_) => return Ok(ExitCode::SUCCESS),
            Ok(Err(_)) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    bail!("the shell did not stop within 30 seconds")
}

/// `weft notifications list`.
pub fn notifications(data_dir: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let reply = control(data_dir, ControlRequest::ListNotifications)?;
    let ControlReply::Notifications(list) = reply else {
        bail!("the shell gave an unexpected answer: {reply:?}");
    };
    let unread = list.iter().filter(|n| !n.read).count();
    let mut out = std::io::stdout().lock();
    if json {
        let doc = serde_json::json!({ "notifications": list, "unread": unread });
        writeln!(out, "{doc}")?;
    } else if list.is_empty() {
        writeln!(out, "no notifications")?;
    } else {
        writeln!(out, "{unread} unread")?;
        for n in list {
            let mark = if n.read { " " } else { "*" };
            writeln!(
                out,
                "{mark} {}\t{}\t{}: {}\t{}",
                n.id, n.at, n.app_title, n.title, n.body
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft window ACTION (TARGET | --all)`.
pub fn window(data_dir: Option<&Path>, args: &WindowArgs) -> anyhow::Result<ExitCode> {
    let action = args.action;
    let reply = control(
        data_dir,
        ControlRequest::Window {
            target: args.target.clone(),
            action,
        },
    )?;
    if let ControlReply::Count(n) = reply {
        let whose = args.target.as_deref().unwrap_or("every app");
        eprintln!(
            "weft: {} {n} window{} of {whose}",
            action.name(),
            if n == 1 { "" } else { "s" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft dlq …`.
pub fn dlq(data_dir: Option<&Path>, command: DlqCommand) -> anyhow::Result<ExitCode> {
    let request = match &command {
        DlqCommand::List { .. } => ControlRequest::DlqList,
        DlqCommand::Redrive { id, .. } => ControlRequest::DlqRedrive { id: *id },
        DlqCommand::Purge => ControlRequest::DlqPurge,
    };
    let reply = control(data_dir, request)?;
    let mut out = std::io::stdout().lock();
    match (command, reply) {
        (
            DlqCommand::List { json },
            ControlReply::DeadLetters {
                letters,
                bytes,
                capacity,
            },
        ) => {
            if json {
                let letters: Vec<_> = letters.iter().map(letter_json).collect();
                let all =
                    serde_json::json!({"letters": letters, "bytes": bytes, "capacity": capacity});
                writeln!(out, "{all}")?;
            } else {
                writeln!(
                    out,
                    "{} dead letters ({bytes} bytes; at most {capacity} are kept)",
                    letters.len()
                )?;
                for l in &letters {
                    writeln!(
                        out,
                        "{:>6}  {:<14} {:<28} {:<24} {}  {}",
                        l.id,
                        l.reason,
                        l.target,
                        l.message.topic,
                        humantime::format_rfc3339_millis(
                            std::time::UNIX_EPOCH + Duration::from_millis(l.ts_ms)
                        ),
                        l.detail
                    )?;
                }
            }
        }
        (DlqCommand::Redrive { .. }, ControlReply::Count(n)) => {
            writeln!(out, "{n} dead letters delivered again")?
        }
        (DlqCommand::Purge, ControlReply::Count(n)) => writeln!(out, "{n} dead letters purged")?,
        (_, reply) => bail!("the shell gave an unexpected answer: {reply:?}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// One dead letter, as `weft dlq list --json` prints it.
fn letter_json(l: &weft_proto::frame::DeadLetter) -> serde_json::Value {
    let data: serde_json::Value = serde_json::from_slice(&l.message.payload)
        .unwrap_or_else(|_| String::from_utf8_lossy(&l.message.payload).into());
    serde_json::json!({
        "id": l.id,
        "reason": l.reason,
        "detail": l.detail,
        "target": l.target,
        "ts": l.ts_ms,
        "topic": l.message.topic.as_str(),
        "data": data,
        "sender": &*l.message.sender,
        "messageId": l.message.id.to_string(),
    })
}

/// `weft bus …`.
pub fn bus(data_dir: Option<&Path>, command: BusCommand) -> anyhow::Result<ExitCode> {
    let dir = data_dir::resolve(data_dir)?;
    let endpoint = data_dir::endpoint(&dir)?;
    let runtime = runtime()?;
    match command {
        BusCommand::Pub {
            topic,
            json,
            traceparent,
        } => {
            let topic = Topic::new(topic).context("invalid topic")?;
            serde_json::from_str::<&RawValue>(&json)
                .with_context(|| format!("the message is not valid JSON: {json}"))?;
            let headers = match traceparent {
                Some(tp) => {
                    let cause = TraceParent::parse(&tp).context("invalid --traceparent")?;
                    MessageTrace::caused_by(Some(&cause)).headers()
                }
                None => Vec::new(),
            };
            runtime.block_on(async {
                let client = connect(&endpoint).await?;
                client
                    .publish_with(&topic, json, headers)
                    .await
                    .context("publishing failed")
            })?;
            Ok(ExitCode::SUCCESS)
        }
        BusCommand::Request {
            topic,
            json,
            timeout,
            data_only,
        } => {
            let topic = Topic::new(topic).context("invalid topic")?;
            serde_json::from_str::<&RawValue>(&json)
                .with_context(|| format!("the question is not valid JSON: {json}"))?;
            let timeout = Duration::try_from_secs_f64(timeout)
                .with_context(|| format!("--timeout must be a number of seconds, not {timeout}"))?;
            runtime.block_on(async {
                let client = connect(&endpoint).await?;
                match client.request(&topic, json, timeout).await {
                    Ok(answer) => {
                        println!("{}", message_line(&answer, data_only));
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(ClientError::Timeout(t)) => {
                        eprintln!("weft: no answer within {t:?}");
                        Ok(ExitCode::from(EXIT_TIMEOUT))
                    }
                    Err(e) => Err(anyhow::Error::from(e).context("the request failed")),
                }
            })
        }
        BusCommand::Sub {
            pattern,
            count,
            timeout,
            data_only,
            replay,
        } => {
            let pattern = Pattern::new(pattern).context("invalid pattern")?;
            let timeout = timeout
                .map(|t| {
                    Duration::try_from_secs_f64(t)
                        .with_context(|| format!("--timeout must be a number of seconds, not {t}"))
                })
                .transpose()?;
            let until = Until { count, timeout };
            runtime.block_on(subscribe(&endpoint, pattern, replay, until, data_only))
        }
    }
}

/// When `weft bus sub` stops.
struct Until {
    /// After this many messages.
    count: Option<u64>,
    /// When no message (or not enough) arrived by then.
    timeout: Option<Duration>,
}

async fn subscribe(
    endpoint: &Endpoint,
    pattern: Pattern,
    replay: Option<weft_proto::frame::Replay>,
    until: Until,
    data_only: bool,
) -> anyhow::Result<ExitCode> {
    let Until { count, timeout } = until;
    let client = connect(endpoint).await?;
    let mut sub = client
        .subscribe_with(pattern, None, replay)
        .await
        .context("subscribing failed")?;
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut seen = 0u64;
    while count.is_none_or(|c| seen < c) {
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d, sub.next()).await {
                Ok(next) => next,
                Err(_) => return Ok(ExitCode::from(EXIT_TIMEOUT)),
            },
            None => sub.next().await,
        };
        let Some(d) = next else {
            bail!("the shell closed the connection: {}", client.closed().await);
        };
        let line = message_line(&d, data_only);
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
        seen += 1;
    }
    Ok(ExitCode::SUCCESS)
}

/// One output line of `weft bus sub`.
fn message_line(d: &weft_proto::frame::Delivery, data_only: bool) -> String {
    #[derive(Serialize)]
    struct Line<'a> {
        topic: &'a str,
        data: &'a RawValue,
        sender: &'a Identity,
        id: String,
        ts: u64,
        /// The message's headers (a W3C `traceparent`, say), when it has any.
        #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        headers: std::collections::BTreeMap<&'a str, &'a str>,
        /// Its sequence number in its durable stream, when it was stored.
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
    }
    let text = String::from_utf8_lossy(&d.payload);
    let fallback;
    let data = match serde_json::from_str::<&RawValue>(&text) {
        Ok(raw) => raw,
        Err(_) => {
            // Not JSON (only Rust clients can send that): print it as a JSON string.
            fallback = serde_json::value::to_raw_value(&text).expect("a string serialises");
            &fallback
        }
    };
    if data_only {
        return data.get().to_owned();
    }
    serde_json::to_string(&Line {
        topic: d.topic.as_str(),
        data,
        sender: &d.sender,
        id: d.id.to_string(),
        ts: d.ts_ms,
        headers: d
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect(),
        seq: d.seq,
    })
    .expect("a line serialises")
}

/// The data directory's lock file (whoever locks it is the shell), opened.
fn lock_file(endpoint: &Endpoint) -> anyhow::Result<File> {
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(endpoint.lock_path())
        .with_context(|| format!("opening {}", endpoint.lock_path().display()))
}

/// Has the running shell carry out `request`, or, when none runs, does `offline`
/// while holding the data directory's lock (so that no shell starts meanwhile).
pub fn through_shell_or_locked(
    data_dir: &Path,
    request: ControlRequest,
    offline: impl FnOnce() -> anyhow::Result<ControlReply>,
) -> anyhow::Result<ControlReply> {
    let endpoint = data_dir::endpoint(data_dir)?;
    endpoint
        .ensure_dir()
        .with_context(|| format!("preparing {}", endpoint.dir().display()))?;
    let lock = lock_file(&endpoint)?;
    match lock.try_lock() {
        Ok(()) => offline(),
        Err(TryLockError::WouldBlock) => control(Some(data_dir), request),
        Err(TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", endpoint.lock_path().display()))
        }
    }
}

/// Sends one control request to the running shell and returns its answer.
pub fn control(data_dir: Option<&Path>, request: ControlRequest) -> anyhow::Result<ControlReply> {
    let dir = data_dir::resolve(data_dir)?;
    let endpoint = data_dir::endpoint(&dir)?;
    runtime()?.block_on(async {
        let client = connect(&endpoint).await?;
        client.control(request).await.map_err(anyhow::Error::from)
    })
}

async fn connect(endpoint: &Endpoint) -> anyhow::Result<Client> {
    match Client::connect_cli(endpoint).await {
        Ok(c) => Ok(c),
        Err(ClientError::NotRunning { .. }) => {
            bail!(
                "no Weft shell is running for this data directory (looked in {})",
                endpoint.dir().display()
            )
        }
        Err(e) => Err(e.into()),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn delivery(payload: &'static [u8]) -> weft_proto::frame::Delivery {
        let sender = Identity {
            app_id: "x".into(),
            instance_id: "x-1".into(),
        };
        let id = weft_proto::frame::MessageId { epoch: 0xe, seq: 1 };
        let topic = Topic::new("a.b").unwrap();
        weft_proto::frame::Delivery::published(id, 7, topic, sender, Bytes::from_static(payload))
    }

    #[test]
    fn sub_lines_follow_the_documented_shape() {
        assert_eq!(
            message_line(&delivery(br#"{"px": 1}"#), false),
            r#"{"topic":"a.b","data":{"px": 1},"sender":{"appId":"x","instanceId":"x-1"},"id":"0000000e-1","ts":7}"#
        );
        assert_eq!(message_line(&delivery(b"[1,2]"), true), "[1,2]");
        assert_eq!(message_line(&delivery(b"not json"), true), r#""not json""#);
    }
}
