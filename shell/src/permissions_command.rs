//! `weft permissions list` and `weft permissions revoke`.
//!
//! Listing reads the answers' file (replaced atomically by the shell). Revoking goes
//! through the running shell, so that it takes effect at once; without one, the file is
//! changed and the revocation audited while holding the data directory's lock.

use std::{path::Path, process::ExitCode};

use anyhow::Context as _;
use serde_json::json;
use weft_permissions::Api;
use weft_proto::frame::{ControlReply, ControlRequest};

use crate::{
    audit_trail::AuditTrail, commands, config::Config, data_dir, permission_store,
    permission_store::PermissionStore,
};

/// `weft permissions list`.
pub fn list(
    data_dir: Option<&Path>,
    config_file: Option<&Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let data_dir = data_dir::resolve(data_dir)?;
    let config = Config::load_user(config_file)?;
    let remembered = permission_store::load(&permission_store::file(&data_dir))?;
    let forced = config.policy_in_force.forced();
    if json {
        let policy: Vec<_> = forced
            .iter()
            .map(|(app, api, granted)| json!({"appId": app, "api": api, "granted": granted}))
            .collect();
        println!("{}", json!({"remembered": remembered, "policy": policy}));
        return Ok(ExitCode::SUCCESS);
    }
    if remembered.is_empty() {
        println!("no remembered answers");
    }
    for r in &remembered {
        println!(
            "{}\t{}\t{}\tsince {}",
            r.app_id,
            r.api,
            serde_json::to_value(r.answer)?.as_str().unwrap_or_default(),
            r.at
        );
    }
    for (app, api, granted) in forced {
        let what = if granted { "granted" } else { "denied" };
        println!(
            "{app}\t{api}\t{what} by policy ({})",
            crate::config::describe_sources(&config.policy_in_force)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft permissions revoke`.
pub fn revoke(
    data_dir: Option<&Path>,
    config_file: Option<&Path>,
    app_id: &str,
    api: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let data_dir = data_dir::resolve(data_dir)?;
    let config = Config::load_user(config_file)?;
    let parsed = api
        .map(|name| {
            Api::from_name(name).with_context(|| {
                format!(
                    "`{name}` is not an API Weft knows (known: {})",
                    Api::names()
                )
            })
        })
        .transpose()?;
    let request = ControlRequest::RevokePermission {
        app_id: app_id.to_owned(),
        api: api.map(str::to_owned),
    };
    let count = commands::through_shell_or_locked(&data_dir, request, || {
        let store = PermissionStore::open(&data_dir)?;
        let gone = store.revoke(app_id, parsed)?;
        let audit = AuditTrail::open(
            &data_dir,
            &config.audit,
            config.policy_in_force.audit_collector.as_ref(),
        )?;
        for r in &gone {
            audit.permission_revoked(r, "cli");
        }
        audit.flush();
        Ok(ControlReply::Count(gone.len() as u64))
    })?;
    match count {
        ControlReply::Count(0) => println!("{app_id} had no remembered answer to revoke"),
        ControlReply::Count(n) => println!(
            "revoked {n} remembered answer(s) of {app_id}; it will be asked again next time"
        ),
        other => anyhow::bail!("unexpected answer from the shell: {other:?}"),
    }
    Ok(ExitCode::SUCCESS)
}
