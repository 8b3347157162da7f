//! `weft-app`: the process that hosts one web app.
//!
//! The supervisor starts one `weft-app` per app instance. It reads its launch spec from
//! an inherited file descriptor (see [`weft_proto::launch`]), opens one tao window with
//! one wry webview, injects the page bridge (`window.weft`) at document start, and
//! relays between the page and the bus: the page talks to this host over wry's IPC, the
//! host talks to the broker as a [`weft_client::Client`] authenticated with the app's
//! token.
//!
//! Nothing the page says is trusted: the host accepts page messages only with the
//! per-page-load secret ([`page_gate`]) and only from the app's own origin, checks
//! topics and payloads in Rust, and the broker stamps the identity itself.
//!
//! It is not a browser: no tabs, no address bar, no navigation UI.

mod bus;
mod channel_bar;
mod child_windows;
mod console_log;
mod content;
mod navigation;
mod page_gate;
mod page_probe;
mod page_queue;
mod page_script;
mod per_second;
mod placement;
mod snapshot;
mod window;
mod window_control;

use std::{fs::File, os::fd::FromRawFd, process::ExitCode};

use anyhow::{Context, bail};
use weft_proto::launch::LaunchSpec;

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--version") {
        // What `weft self-test` asks to know this host runs.
        println!("weft-app {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let log = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        log.init();
    } else {
        // Run by the shell, which stamps each line as it writes the app's log file.
        log.without_time().with_ansi(false).init();
    }
    match read_spec().and_then(window::run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft-app: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn read_spec() -> anyhow::Result<LaunchSpec> {
    let mut args = std::env::args().skip(1);
    let fd: i32 = match (args.next().as_deref(), args.next()) {
        (Some("--launch-fd"), Some(fd)) => fd
            .parse()
            .with_context(|| format!("--launch-fd takes a file descriptor number, not {fd:?}"))?,
        _ => bail!(
            "usage: weft-app --launch-fd FD | --version\n\
             weft-app is started by the Weft shell; run `weft` instead"
        ),
    };
    if fd < 3 {
        bail!("--launch-fd must name an inherited descriptor (3 or above), not {fd}");
    }
    // SAFETY: fcntl(F_GETFD) only queries the descriptor; it fails with EBADF when `fd`
    // is not open, which is checked before taking ownership below.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        bail!("file descriptor {fd} is not open; weft-app must be started by the Weft shell");
    }
    // SAFETY: `fd` is open (checked above) and was handed to this process for it alone;
    // the File owns it from here and closes it when dropped, right after reading.
    let file = unsafe { File::from_raw_fd(fd) };
    LaunchSpec::read_from(file).context("reading the launch spec")
}
