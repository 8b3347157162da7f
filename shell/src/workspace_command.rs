//! `weft workspace save|restore|list|delete`: layout snapshots from the command line.

use std::{io::Write, process::ExitCode};

use anyhow::bail;
use serde_json::json;
use weft_proto::frame::{ControlReply, ControlRequest};

use crate::{
    cli::{GlobalArgs, LaunchArgs, WorkspaceCommand},
    commands::{self, Start},
    data_dir, workspace_snapshots,
};

/// Runs one `weft workspace` command.
pub fn run(global: &GlobalArgs, command: WorkspaceCommand) -> anyhow::Result<ExitCode> {
    let data_dir = global.data_dir.as_deref();
    match command {
        WorkspaceCommand::Save { name } => {
            workspace_snapshots::check_name(&name)?;
            let reply = commands::control(data_dir, ControlRequest::SaveWorkspace { name })?;
            let ControlReply::Saved { file, apps, notes } = reply else {
                bail!("the shell gave an unexpected answer: {reply:?}");
            };
            eprintln!("weft: saved {apps} app instance(s) in {file}");
            for note in notes {
                eprintln!("weft: {note}");
            }
            Ok(ExitCode::SUCCESS)
        }
        WorkspaceCommand::Restore {
            name,
            no_panel,
            shell,
        } => commands::launch(
            global,
            LaunchArgs {
                workspace: None,
                app_directories: vec![],
                apps: vec![],
                no_panel,
                shell,
            },
            Start::Restore(name),
        ),
        WorkspaceCommand::List { json } => {
            let listed = workspace_snapshots::list(&data_dir::resolve(data_dir)?)?;
            let mut out = std::io::stdout().lock();
            if json {
                writeln!(out, "{}", json!({ "workspaces": listed }))?;
            } else if listed.is_empty() {
                writeln!(out, "no saved workspaces")?;
            } else {
                for l in listed {
                    writeln!(out, "{}\t{} app(s)\tsaved {}", l.name, l.apps, l.saved_at)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        WorkspaceCommand::Delete { name } => {
            workspace_snapshots::delete(&data_dir::resolve(data_dir)?, &name)?;
            eprintln!("weft: deleted {name:?}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
