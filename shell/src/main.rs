//! `weft`: the Weft shell and its command line.
//!
//! One binary is both the long-running shell (`weft`, `weft launch`), which runs the
//! broker, the supervisor and the control panel, and the short-lived commands that talk
//! to it over the bus (`weft ps`, `weft bus`, `weft stop`). A second `weft launch` on a
//! data directory whose shell is running hands its workspace to that shell and exits.
//!
//! Routing, supervision and workspace parsing live in their own crates; this one wires
//! them together and owns everything the user sees.

mod cli;
mod commands;
mod data_dir;
mod demo;
mod panel;
mod shell_process;
mod shutdown;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, LaunchArgs};

/// The broker allocates a little for every message it routes; mimalloc's thread-local
/// free lists make that markedly cheaper than glibc's malloc (see `weft-bench bus`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        None => commands::launch(
            cli.global.data_dir.as_deref(),
            LaunchArgs {
                workspace: None,
                no_panel: false,
            },
            true,
        ),
        Some(Command::Launch(args)) => {
            commands::launch(cli.global.data_dir.as_deref(), args, false)
        }
        Some(Command::Ps { json }) => commands::ps(cli.global.data_dir.as_deref(), json),
        Some(Command::Bus(bus)) => commands::bus(cli.global.data_dir.as_deref(), bus),
        Some(Command::Stop) => commands::stop(cli.global.data_dir.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("weft: {e:#}");
            ExitCode::FAILURE
        }
    }
}
