//! The command line: every command and option, as clap sees them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Flags;

/// Weft: a desktop interop platform. Launches workspaces of web apps, each in its own
/// process, connected by a secure local bus.
#[derive(Debug, Parser)]
#[command(name = "weft", version, propagate_version = true)]
pub struct Cli {
    /// Shared options.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Options of the shell started by a plain `weft`.
    #[command(flatten)]
    pub shell: ShellOptions,
    /// What to do; without a command, open the control panel with the demo workspace.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The data directory; one shell runs per data directory.
    #[arg(long, env = "WEFT_DATA_DIR", global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The settings file; `~/.config/weft/config.toml` (under `$XDG_CONFIG_HOME`) by
    /// default.
    #[arg(long, env = "WEFT_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Launch a workspace and stay in the foreground until `weft stop`, SIGTERM or
    /// SIGINT. If a shell already runs on this data directory, hand it the workspace.
    Launch(LaunchArgs),
    /// List the running shell's app instances.
    Ps {
        /// Print one JSON object: {"apps": [{"appId", "instanceId", "pid", "state", …}],
        /// "metrics_url"}.
        #[arg(long)]
        json: bool,
    },
    /// Print an app's log: what its host, page console and WebKit processes wrote.
    Logs {
        /// The app id, as in the workspace.
        app_id: String,
        /// Keep printing lines as they are written, across rotations, until interrupted.
        #[arg(long, short)]
        follow: bool,
        /// Print only the last N lines first (all by default).
        #[arg(long, short = 'n', value_name = "N")]
        lines: Option<usize>,
    },
    /// Write a support bundle (versions, settings without secrets, recent logs, app
    /// list and health) for the help desk.
    Diag {
        /// The bundle to write (a .tar.gz); `weft-diag-<time>.tar.gz` here by default.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Publish to and subscribe on the running shell's bus.
    #[command(subcommand)]
    Bus(BusCommand),
    /// Inspect the message journal of durable topics.
    #[command(subcommand)]
    Journal(JournalCommand),
    /// Manage the journal's encryption keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The running shell's dead-letter queue: messages that could not be delivered.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Check and read the tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Sign and check app manifests (workspace files, App Directory records).
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// The permission answers the user asked to remember, and what policy forces.
    #[command(subcommand)]
    Permissions(PermissionsCommand),
    /// The settings in force and where each came from.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Updates of Weft itself: the settings in force, and what the update repository
    /// offers this install.
    #[command(subcommand)]
    Update(UpdateCommand),
    /// Check, without a window, that this build works here: a broker on a private
    /// socket, a bus round trip, the settings and the data directory readable. Exits 1
    /// when a check fails.
    SelfTest {
        /// Print one JSON object: {"healthy", "version", "checks": [{"name", "ok", "detail"}]}.
        #[arg(long)]
        json: bool,
    },
    /// Save, restore, list and delete layout snapshots: every app's page, window,
    /// monitor, FDC3 channel and own state.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// The running shell's notification centre.
    #[command(subcommand)]
    Notifications(NotificationsCommand),
    /// Act on the running shell's app windows: `weft window focus chart`,
    /// `weft window hide --all`.
    Window(WindowArgs),
    /// Stop every app and the running shell.
    Stop,
}

/// Options of `weft launch`.
#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// The workspace file; the built-in demo when omitted (and no --appd is given).
    pub workspace: Option<PathBuf>,
    /// An FDC3 App Directory (a JSON file, a URL, or an AppD server's base URL) whose
    /// apps may be launched, after the workspace's own; repeatable.
    #[arg(long = "appd", value_name = "FILE_OR_URL")]
    pub app_directories: Vec<String>,
    /// An app of the App Directories to launch, by appId; repeatable.
    #[arg(long = "app", value_name = "APPID")]
    pub apps: Vec<String>,
    /// Run without the control panel window (for scripts and tests).
    #[arg(long)]
    pub no_panel: bool,
    /// Options of the shell.
    #[command(flatten)]
    pub shell: ShellOptions,
}

/// Options of a shell that starts (not of one handed a workspace).
#[derive(Debug, Args, Default, Clone)]
pub struct ShellOptions {
    /// Where to serve /metrics and /health: a loopback `IP:PORT`, a port (`0` for any free
    /// one), or `off`. Default: the config file's `metrics.addr`, else 127.0.0.1:9464, or
    /// a free port when that one is taken.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<String>,
    /// Set a configuration key for this run, over the settings file (not over what the
    /// desktop owner's policy locks): `--set log.level=debug`; repeatable. VALUE is TOML
    /// (`5`, `true`, `["a"]`) or else plain text.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl ShellOptions {
    /// The flags that set configuration keys.
    pub fn flags(&self) -> Flags {
        Flags {
            metrics_addr: self.metrics_addr.clone(),
            set: self.set.clone(),
        }
    }
}

/// `weft workspace …`
#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Save the running shell's apps as layout snapshot NAME (replacing one of that
    /// name); waits for apps still starting.
    Save {
        /// The snapshot's name.
        name: String,
    },
    /// Restore snapshot NAME: in the running shell (its apps are stopped first), or in a
    /// new shell that stays in the foreground, as `weft launch` does.
    Restore {
        /// The snapshot's name (`weft workspace list` shows them).
        name: String,
        /// Without the control panel (for a new shell).
        #[arg(long)]
        no_panel: bool,
        /// Options of a new shell.
        #[command(flatten)]
        shell: ShellOptions,
    },
    /// List the saved snapshots.
    List {
        /// Print one JSON object: {"workspaces": [{"name", "savedAt", "apps"}]}.
        #[arg(long)]
        json: bool,
    },
    /// Delete snapshot NAME.
    Delete {
        /// The snapshot's name.
        name: String,
    },
}

/// `weft notifications …`
#[derive(Debug, Subcommand)]
pub enum NotificationsCommand {
    /// List the notifications apps showed, newest first, with their app and whether
    /// they were read.
    List {
        /// Print one JSON object: {"notifications": [{"id", "appId", "instanceId",
        /// "appTitle", "title", "body", "actions": [{"id", "title"}], "at", "read"}],
        /// "unread"}.
        #[arg(long)]
        json: bool,
    },
}

/// `weft window ACTION (TARGET | --all)`
#[derive(Debug, Args)]
pub struct WindowArgs {
    /// What to do: focus (show, un-minimise, raise and focus), show, hide, minimize,
    /// maximize or restore.
    #[arg(value_parser = window_action)]
    pub action: weft_proto::frame::WindowAction,
    /// An appId (every running instance of it) or an instanceId.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub target: Option<String>,
    /// Every running app's window (`focus --all` brings them all to front).
    #[arg(long)]
    pub all: bool,
}

/// Reads a window action of `weft window`.
fn window_action(text: &str) -> Result<weft_proto::frame::WindowAction, String> {
    use weft_proto::frame::WindowAction;
    WindowAction::simple(text).ok_or_else(|| {
        let names: Vec<&str> = WindowAction::SIMPLE.iter().map(|a| a.name()).collect();
        format!("{text:?}: expected one of {}", names.join(", "))
    })
}

/// `weft config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective settings: every key, its value and where it came from
    /// (default, the settings file, a flag, or locked by the desktop owner's policy),
    /// and which values were overridden.
    Show {
        /// Print one JSON object: {"file", "fileFound", "policyFiles", "settings":
        /// [{"key", "value", "source", "locked", "overridden"}]}.
        #[arg(long)]
        json: bool,
        /// The flags a shell would be started with.
        #[command(flatten)]
        shell: ShellOptions,
    },
}

/// `weft journal …`
#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// Read every stored record, checking its checksum and authenticating it; list
    /// damage (including what was quarantined before). Exits 1 if a stream holds
    /// damage that is not yet quarantined. Safe while the shell runs.
    Check {
        /// Print one JSON object per stream.
        #[arg(long)]
        json: bool,
    },
}

/// `weft dlq …`
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List the dead letters, oldest first: id, reason, target, topic, time.
    List {
        /// Print one JSON object: {"letters": [{"id", "reason", "detail", "target",
        /// "ts", "topic", "data", "sender", "messageId"}], "bytes", "capacity"}.
        #[arg(long)]
        json: bool,
    },
    /// Deliver dead letters again on their topic (same message id, with a
    /// `weft-redriven` header) and take them out of the queue.
    Redrive {
        /// The letter's id, as `list` shows it.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<u64>,
        /// Every letter.
        #[arg(long)]
        all: bool,
    },
    /// Empty the queue.
    Purge,
}

/// `weft keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Start a new journal key: segments written from the shell's next start use it;
    /// older records stay readable with the old keys, which are kept.
    Rotate,
}

/// `weft manifest …`
#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Make a publisher's signing key (ed25519): FILE (mode 0600, keep it offline) and
    /// FILE.pub, whose line goes into the policy's `[manifests] trusted_keys`.
    Keygen {
        /// Where to write the signing key.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Sign a workspace file, or the records of an App Directory file, in place.
    Sign {
        /// The workspace or App Directory file.
        file: PathBuf,
        /// The signing key (from `weft manifest keygen`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Only these records of an App Directory (all by default); repeatable.
        #[arg(long = "app", value_name = "APPID")]
        apps: Vec<String>,
    },
    /// Check the signatures of a workspace file or of an App Directory file's records
    /// against the policy's trusted keys and any given. Exits 1 unless every manifest
    /// is signed, intact and (when any key is trusted) by a trusted key.
    Verify {
        /// The workspace or App Directory file.
        file: PathBuf,
        /// Also trust this public key (`ed25519:…`); repeatable.
        #[arg(long = "trust", value_name = "KEY")]
        trust: Vec<String>,
    },
}

/// `weft permissions …`
#[derive(Debug, Subcommand)]
pub enum PermissionsCommand {
    /// List the remembered answers ("Always allow", "Always deny") and the grants and
    /// denials the desktop owner's policy forces.
    List {
        /// Print one JSON object: {"remembered": [{"appId", "api", "answer", "at"}],
        /// "policy": [{"appId", "api", "granted"}]}.
        #[arg(long)]
        json: bool,
    },
    /// Forget the remembered answers of an app (the app is asked again next time);
    /// takes effect at once in a running shell.
    Revoke {
        /// The app id.
        app_id: String,
        /// Only this API (such as secureStorage); every API when omitted.
        #[arg(long, value_name = "NAME")]
        api: Option<String>,
    },
}

/// `weft audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every line's hash chain, the head file and the anchors; name the first bad
    /// line. Exits 1 when the log was edited, cut or rewritten.
    Verify {
        /// A file holding anchors (a syslog file, `journalctl` output, a collector's
        /// export); repeatable. The system journal is read too, when there is one.
        #[arg(long = "anchors", value_name = "FILE")]
        anchors: Vec<PathBuf>,
        /// Do not read anchors from the system journal.
        #[arg(long)]
        no_journal: bool,
    },
    /// Print the records since a time, oldest first.
    Export {
        /// An RFC 3339 time (`2026-11-22T09:00:00Z`) or a span back from now (`2h`,
        /// `7days`); everything when omitted.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Print the lines as stored (JSON, with their hashes) instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `weft bus …`
#[derive(Debug, Subcommand)]
pub enum BusCommand {
    /// Publish one JSON message; exits non-zero unless the broker accepted it.
    Pub {
        /// The topic, e.g. `fx.EURUSD`.
        topic: String,
        /// The message, as JSON text (quote it for the shell).
        json: String,
        /// Continue this W3C trace (`00-<trace id>-<span id>-<flags>`): the message is
        /// sent as a child of that span, in the same trace.
        #[arg(long, value_name = "TRACEPARENT")]
        traceparent: Option<String>,
    },
    /// Ask whoever subscribes to TOPIC and print the first answer as one JSON line
    /// (the shape `sub` prints); exits 2 on timeout, 1 when nobody answers.
    Request {
        /// The topic the question is published on.
        topic: String,
        /// The question, as JSON text.
        json: String,
        /// Seconds to wait for an answer.
        #[arg(long, value_name = "SECS", default_value_t = 10.0)]
        timeout: f64,
        /// Print only the answer's data.
        #[arg(long)]
        data_only: bool,
    },
    /// Print messages on the topics matching a pattern, one JSON line each:
    /// {"topic", "data", "sender": {"appId", "instanceId"}, "id", "ts"}.
    Sub {
        /// The topic or pattern to follow: `*` matches one segment, `#` zero or more
        /// (`fx.*.spot`, `fx.#`).
        pattern: String,
        /// Exit 0 after this many messages.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Exit 2 if no message (or not enough) arrived within this many seconds.
        #[arg(long, value_name = "SECS")]
        timeout: Option<f64>,
        /// Print only each message's data.
        #[arg(long)]
        data_only: bool,
        /// First print the messages stored in durable streams from this point:
        /// `last:N`, `since:RFC3339-TIME` or `after:SEQ`; then live ones, with no gap
        /// or duplicate between them. Stored messages carry `seq`.
        #[arg(long, value_name = "FROM", value_parser = parse_replay)]
        replay: Option<weft_proto::frame::Replay>,
    },
}

/// Reads `--replay`.
fn parse_replay(text: &str) -> Result<weft_proto::frame::Replay, String> {
    use weft_proto::frame::Replay;
    let (kind, value) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?}: expected last:N, since:TIME or after:SEQ"))?;
    let number = |v: &str| {
        v.parse::<u64>()
            .map_err(|_| format!("{v:?} is not a whole number"))
    };
    match kind {
        "last" => number(value).map(Replay::Last),
        "after" => number(value).map(Replay::AfterSeq),
        "since" => humantime::parse_rfc3339_weak(value)
            .map_err(|e| format!("{value:?} is not an RFC 3339 time (2026-11-22T09:30:00Z): {e}"))
            .and_then(|t| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .map(|d| Replay::Since(d.as_millis() as u64))
                    .map_err(|_| format!("{value:?} is before 1970"))
            }),
        other => Err(format!("{other:?}: expected last, since or after")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_proto::frame::Replay;

    #[test]
    fn window_actions_are_read_by_name_or_refused_with_the_names() {
        use weft_proto::frame::WindowAction;
        assert_eq!(window_action("focus"), Ok(WindowAction::Focus));
        assert_eq!(window_action("restore"), Ok(WindowAction::Restore));
        let e = window_action("setBounds").unwrap_err();
        assert!(
            e.contains("expected one of focus, show, hide, minimize, maximize, restore"),
            "{e}"
        );
    }

    #[test]
    fn replay_points_are_read_or_refused_with_the_reason() {
        assert_eq!(parse_replay("last:10"), Ok(Replay::Last(10)));
        assert_eq!(parse_replay("after:0"), Ok(Replay::AfterSeq(0)));
        assert_eq!(
            parse_replay("since:2026-11-22T09:30:00Z"),
            Ok(Replay::Since(1_795_339_800_000))
        );
        assert!(parse_replay("last").unwrap_err().contains("expected"));
        assert!(parse_replay("last:x").unwrap_err().contains("whole number"));
        assert!(
            parse_replay("since:yesterday")
                .unwrap_err()
                .contains("RFC 3339")
        );
        assert!(
            parse_replay("first:1")
                .unwrap_err()
                .contains("expected last")
        );
    }
}

/// `weft update …`
#[derive(Subcommand, Debug)]
pub enum UpdateCommand {
    /// The update settings in force (and where each came from) and the install's
    /// versions: current, kept to roll back to, on trial, refused.
    Status {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Download (by delta when possible, verified) and install what the repository
    /// offers, beside the running version; it runs from the next start, on trial.
    Apply {
        /// Past staged rollout (a halted release is still not offered).
        #[arg(long)]
        now: bool,
    },
    /// Return to the newest kept earlier version from the next start; the version left
    /// is never offered again.
    Rollback,
    /// Ask the update repository (TUF-verified) what it offers this install.
    Check {
        /// Check now, past staged rollout (a halted release is still not offered).
        #[arg(long)]
        now: bool,
        /// Print one JSON object: {"installed", "channel", "offer": {"version",
        /// "rolloutPercent", "full": {"name", "length"}, "delta"}|null, "newest",
        /// "rootVersion"}.
        #[arg(long)]
        json: bool,
    },
}
