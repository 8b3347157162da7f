//! `weft`: the Weft shell and its command line.
//!
//! One binary is both the long-running shell (`weft`, `weft launch`), which runs the
//! broker, the supervisor and the control panel, and the short-lived commands that talk
//! to it over the bus (`weft ps`, `weft bus`, `weft stop`). A second `weft launch` on a
//! data directory whose shell is running hands its workspace to that shell and exits.
//!
//! Routing, supervision and workspace parsing live in their own crates; this one wires
//! them together and owns everything the user sees.

mod app_catalogue;
mod audit_collector;
mod audit_command;
mod audit_trail;
mod cli;
mod clipboard;
mod commands;
mod config;
mod config_command;
mod consent;
mod data_dir;
mod data_versions;
mod demo;
mod desktop_session;
mod diag;
mod durable_streams;
mod fdc3_agent;
mod fdc3_prompts;
mod gatekeeper;
mod journal_command;
mod journal_keys;
mod launch_request;
mod locking;
mod logging;
mod logs_command;
mod manifest_command;
mod master_keys;
mod metrics;
mod notifications;
mod page_services;
mod panel;
mod permission_store;
mod permissions_command;
mod private_file;
mod prompt_window;
mod secure_storage;
mod self_test;
mod shell_process;
mod shutdown;
mod trace_export;
mod tray;
mod update_command;
mod update_service;
mod workspace_command;
mod workspace_snapshots;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, LaunchArgs};

/// The broker allocates a little for every message it routes; mimalloc's thread-local
/// free lists make that markedly cheaper than glibc's malloc (see `weft-bench bus`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `weft update …`, under the user's settings and the policy.
fn update(
    data_dir: Option<&std::path::Path>,
    config_file: Option<&std::path::Path>,
    command: cli::UpdateCommand,
) -> anyhow::Result<ExitCode> {
    let config = config::Config::load_user(config_file)?;
    let data_dir = data_dir::resolve(data_dir)?;
    match command {
        cli::UpdateCommand::Status { json } => update_command::status(&data_dir, &config, json),
        cli::UpdateCommand::Check { now, json } => {
            update_command::check(&data_dir, &config, now, json)
        }
        cli::UpdateCommand::Apply { now } => update_command::apply(&data_dir, &config, now),
        cli::UpdateCommand::Rollback => update_command::rollback(&data_dir, &config),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let global = &cli.global;
    let data_dir = global.data_dir.as_deref();
    let config_file = global.config.as_deref();
    let starts_shell = matches!(
        cli.command,
        None | Some(Command::Launch(_))
            | Some(Command::Workspace(cli::WorkspaceCommand::Restore { .. }))
    );
    if !starts_shell {
        logging::init_for_command();
    } else if let Err(e) = update_command::on_start(data_dir, config_file) {
        // The updater's bookkeeping never keeps the shell from starting.
        eprintln!("weft: the update state could not be used: {e:#}");
    }
    let result = match cli.command {
        None => commands::launch(
            global,
            LaunchArgs {
                workspace: None,
                app_directories: vec![],
                apps: vec![],
                no_panel: false,
                shell: cli.shell,
            },
            commands::Start::Plain,
        ),
        Some(Command::Launch(args)) => commands::launch(global, args, commands::Start::Launch),
        Some(Command::Workspace(command)) => workspace_command::run(global, command),
        Some(Command::Ps { json }) => commands::ps(data_dir, json),
        Some(Command::Bus(bus)) => commands::bus(data_dir, bus),
        Some(Command::Stop) => commands::stop(data_dir),
        Some(Command::Logs {
            app_id,
            follow,
            lines,
        }) => logs_command::run(data_dir, &app_id, follow, lines),
        Some(Command::Diag { output }) => diag::run(data_dir, config_file, output),
        Some(Command::Journal(cli::JournalCommand::Check { json })) => {
            journal_command::check(data_dir, config_file, json)
        }
        Some(Command::Keys(cli::KeysCommand::Rotate)) => {
            journal_command::rotate_keys(data_dir, config_file)
        }
        Some(Command::Dlq(dlq)) => commands::dlq(data_dir, dlq),
        Some(Command::Manifest(cli::ManifestCommand::Keygen { out })) => {
            manifest_command::keygen(&out)
        }
        Some(Command::Manifest(cli::ManifestCommand::Sign { file, key, apps })) => {
            manifest_command::sign_file(&file, &key, &apps)
        }
        Some(Command::Manifest(cli::ManifestCommand::Verify { file, trust })) => {
            manifest_command::verify(config_file, &file, &trust)
        }
        Some(Command::Permissions(cli::PermissionsCommand::List { json })) => {
            permissions_command::list(data_dir, config_file, json)
        }
        Some(Command::Permissions(cli::PermissionsCommand::Revoke { app_id, api })) => {
            permissions_command::revoke(data_dir, config_file, &app_id, api.as_deref())
        }
        Some(Command::Audit(cli::AuditCommand::Verify {
            anchors,
            no_journal,
        })) => audit_command::verify(data_dir, &anchors, no_journal),
        Some(Command::Audit(cli::AuditCommand::Export { since, json })) => {
            audit_command::export(data_dir, since.as_deref(), json)
        }
        Some(Command::Window(args)) => commands::window(data_dir, &args),
        Some(Command::Notifications(cli::NotificationsCommand::List { json })) => {
            commands::notifications(data_dir, json)
        }
        Some(Command::Config(cli::ConfigCommand::Show { json, shell })) => {
            config_command::show(config_file, &shell.flags(), json)
        }
        Some(Command::SelfTest { json }) => self_test::run(data_dir, config_file, json),
        Some(Command::Update(command)) => update(data_dir, config_file, command),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("weft: {e:#}");
            ExitCode::FAILURE
        }
    }
}
