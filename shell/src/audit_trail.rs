//! What the shell records in the audit log (`weft-audit`) and with which details: the
//! shell's start and stop, app processes starting, ending and crashing, bus refusals,
//! refused clients, policy violations, command-line requests that change something,
//! and key rotations. The shell is the log's only writer; commands that run without a
//! shell write through [`record_offline`] while holding the data directory's lock.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use serde_json::json;
use weft_audit::{Anchor, AuditLog, AuditSettings, SyslogAnchor};
use weft_broker::BusAction;
use weft_proto::{
    Identity,
    frame::{AppInfo, ControlRequest, PageViolation, UpdateChange},
};
use weft_supervisor::LifecycleObserver;

use crate::{
    audit_collector::CollectorAnchor,
    config::{AuditConfig, Config},
    permission_store::Remembered,
};

/// The audit log's folder in a data directory.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("audit")
}

/// The running shell's audit log.
#[derive(Clone)]
pub struct AuditTrail {
    log: Arc<AuditLog>,
}

impl std::fmt::Debug for AuditTrail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditTrail({})", self.log.dir().display())
    }
}

fn app(identity: &Identity) -> serde_json::Value {
    json!({"appId": identity.app_id, "instanceId": identity.instance_id})
}

impl AuditTrail {
    /// Opens the log of `data_dir`, anchoring its head in the system log and at the
    /// policy's collector, if it names one.
    pub fn open(
        data_dir: &Path,
        config: &AuditConfig,
        collector: Option<&url::Url>,
    ) -> anyhow::Result<AuditTrail> {
        let dir = dir(data_dir);
        let log = AuditLog::open(&dir, settings(config, collector))
            .with_context(|| format!("opening the audit log in {}", dir.display()))?;
        Ok(AuditTrail { log: Arc::new(log) })
    }

    /// Records an event.
    pub fn record(&self, event: &str, data: serde_json::Value) {
        self.log.record(event, data);
    }

    /// Waits until everything recorded is on disk.
    pub fn flush(&self) {
        self.log.flush();
    }

    /// Writes everything recorded and anchors the head now (at shutdown).
    pub fn anchor_now(&self) {
        self.log.anchor_now();
    }

    /// An app's bus call refused by its permissions.
    pub fn bus_denied(
        &self,
        identity: &Identity,
        action: BusAction,
        subject: &str,
        suppressed: u64,
    ) {
        self.record(
            "bus.denied",
            json!({
                "app": app(identity),
                "action": action.as_str(),
                "subject": subject,
                "notRecordedBefore": suppressed,
            }),
        );
    }

    /// What an app's page tried and its host refused.
    pub fn page_violation(&self, identity: &Identity, violation: &PageViolation, unreported: u64) {
        let (event, details) = match violation {
            PageViolation::BridgeMessageDropped { reason, page } => (
                "identity.violation",
                json!({"reason": reason, "page": page}),
            ),
            PageViolation::NavigationBlocked { url } => ("navigation.blocked", json!({"url": url})),
            PageViolation::NewWindow {
                url,
                opened_in_browser,
            } => (
                "window.new",
                json!({"url": url, "openedInBrowser": opened_in_browser}),
            ),
        };
        self.record(
            event,
            json!({"app": app(identity), "details": details, "notRecordedBefore": unreported}),
        );
    }

    /// A client refused at the handshake.
    pub fn client_refused(&self, reason: &str, message: &str, peer: Option<(i32, u32)>) {
        self.record(
            "client.refused",
            json!({
                "reason": reason,
                "message": message,
                "peerPid": peer.map(|p| p.0),
                "peerUid": peer.map(|p| p.1),
            }),
        );
    }

    /// A command-line request; requests that only read are not recorded.
    pub fn cli_request(&self, from: &Identity, request: &ControlRequest) {
        let (action, details) = match request {
            ControlRequest::ListApps
            | ControlRequest::DlqList
            | ControlRequest::ListNotifications => return,
            ControlRequest::Launch {
                workspace,
                app_directories,
                apps,
            } => (
                "launch",
                json!({"workspace": workspace, "appDirectories": app_directories, "apps": apps}),
            ),
            ControlRequest::Activate => ("activate", json!({})),
            ControlRequest::StopApp { instance_id } => {
                ("stopApp", json!({"instanceId": instance_id}))
            }
            ControlRequest::OpenInspector { instance_id } => {
                ("openInspector", json!({"instanceId": instance_id}))
            }
            ControlRequest::SaveWorkspace { name } => ("saveWorkspace", json!({"name": name})),
            ControlRequest::RestoreWorkspace { name } => {
                ("restoreWorkspace", json!({"name": name}))
            }
            ControlRequest::Window { target, action } => {
                ("window", json!({"target": target, "action": action.name()}))
            }
            ControlRequest::Shutdown => ("stop", json!({})),
            ControlRequest::DlqRedrive { id } => ("dlqRedrive", json!({"id": id})),
            ControlRequest::DlqPurge => ("dlqPurge", json!({})),
            // Recorded, with what was revoked, once done.
            ControlRequest::RevokePermission { .. } => return,
            ControlRequest::KeysRotated { key_id, store } => {
                self.record(
                    "keys.rotate",
                    json!({"keyId": key_id, "store": store, "by": "cli"}),
                );
                return;
            }
            ControlRequest::UpdateChanged(change) => {
                self.update_changed(change);
                return;
            }
        };
        self.record(
            "cli.request",
            json!({"client": from.instance_id, "action": action, "details": details}),
        );
    }

    /// A change to the installed versions.
    pub fn update_changed(&self, change: &UpdateChange) {
        self.record(change.event.audit_name(), update_details(change));
    }

    /// A remembered permission answer forgotten, from the panel or the command line.
    pub fn permission_revoked(&self, remembered: &Remembered, by: &str) {
        self.record(
            "permission.revoke",
            json!({
                "appId": remembered.app_id,
                "api": remembered.api,
                "answer": remembered.answer,
                "by": by,
            }),
        );
    }

    /// A launch the policy refused.
    pub fn policy_violation(&self, app_id: &str, what: &str) {
        self.record(
            "policy.violation",
            json!({"appId": app_id, "violation": what}),
        );
    }
}

impl LifecycleObserver for AuditTrail {
    fn started(&self, info: &AppInfo, pid: u32) {
        self.record(
            "app.start",
            json!({
                "app": {"appId": info.app_id, "instanceId": info.instance_id},
                "pid": pid,
                "url": info.url,
                "restarts": info.restarts,
            }),
        );
    }

    fn exited(&self, info: &AppInfo, crashed: bool) {
        let event = if crashed { "app.crash" } else { "app.exit" };
        self.record(
            event,
            json!({
                "app": {"appId": info.app_id, "instanceId": info.instance_id},
                "exit": info.exit,
                "state": info.state,
            }),
        );
    }
}

fn settings(config: &AuditConfig, collector: Option<&url::Url>) -> AuditSettings {
    let mut anchors: Vec<Box<dyn Anchor>> =
        vec![Box::new(SyslogAnchor::new(&config.syslog_socket))];
    if let Some(url) = collector {
        anchors.push(Box::new(CollectorAnchor::new(url.clone())));
    }
    AuditSettings {
        max_file_bytes: config.max_file_mb * 1024 * 1024,
        anchor_every: Duration::from_secs(config.anchor_every_secs),
        anchors,
    }
}

/// Records one event when no shell runs; the caller holds the data directory's lock.
pub fn record_offline(
    data_dir: &Path,
    config: &Config,
    event: &str,
    data: serde_json::Value,
) -> anyhow::Result<()> {
    let trail = AuditTrail::open(
        data_dir,
        &config.audit,
        config.policy_in_force.audit_collector.as_ref(),
    )?;
    trail.record(event, data);
    trail.flush();
    Ok(())
}

/// The audit details of an update change.
pub fn update_details(change: &UpdateChange) -> serde_json::Value {
    json!({"version": change.version, "from": change.from, "how": change.how})
}
