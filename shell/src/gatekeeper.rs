//! Whether an app instance's call of a sensitive API goes through: the desktop owner's
//! policy, then the app's manifest, then the user's remembered answer, then — with the
//! panel running — a consent prompt, which the call waits for (up to
//! [`PROMPT_DEADLINE`], then denied). Without the panel, what nobody decided is denied.
//! Every decision is audited; the caller's identity is the bus connection's.

use std::{sync::Arc, time::Duration};

use serde_json::json;
use weft_permissions::{Answer, Api, Policy, Reason, Verdict, decide, policy::origin_of};
use weft_proto::Identity;
use weft_supervisor::Supervisor;

use crate::{
    audit_trail::AuditTrail,
    consent::{ConsentAnswer, ConsentQuestion, Prompts},
    permission_store::PermissionStore,
};

/// How long a call waits for the user's answer before it is denied.
pub const PROMPT_DEADLINE: Duration = Duration::from_secs(60);

/// Decides sensitive API calls.
pub struct Gatekeeper {
    /// The desktop owner's policy.
    pub policy: Arc<Policy>,
    /// The user's remembered answers.
    pub store: Arc<PermissionStore>,
    /// Where questions go; `None` without the panel.
    pub prompts: Option<Prompts>,
    /// Where decisions are recorded.
    pub audit: AuditTrail,
    /// Who the callers are: their manifests and windows.
    pub supervisor: Supervisor,
}

impl Gatekeeper {
    /// `Ok` if `caller` may use `api` now; otherwise why not, for the page.
    pub async fn check(&self, caller: &Identity, api: Api) -> Result<(), String> {
        let Some((info, declared)) = self.supervisor.declared(&caller.instance_id) else {
            return Err(format!(
                "{caller} is not an app instance this shell started"
            ));
        };
        let remembered = self.store.answer_for(&caller.app_id, api);
        let record = |allowed: bool, by: &str, answer: Option<ConsentAnswer>| {
            self.audit.record(
                "permission.decision",
                json!({
                    "app": {"appId": caller.app_id, "instanceId": caller.instance_id},
                    "api": api,
                    "allowed": allowed,
                    "by": by,
                    "answer": answer.map(ConsentAnswer::as_str),
                }),
            );
        };
        match decide(&self.policy, &caller.app_id, &declared, api, remembered) {
            Verdict::Allow(reason) => {
                record(true, reason_name(reason), None);
                Ok(())
            }
            Verdict::Deny(reason) => {
                record(false, reason_name(reason), None);
                Err(format!(
                    "{} may not use {api}: {}",
                    caller.app_id,
                    reason.describe()
                ))
            }
            Verdict::Ask => {
                let Some(prompts) = &self.prompts else {
                    record(false, "noOneToAsk", None);
                    return Err(format!(
                        "{} may not use {api}: the user has not allowed it, and without the \
                         control panel nobody can be asked",
                        caller.app_id
                    ));
                };
                let origin = origin_of(&info.url)
                    .unwrap_or_else(|| format!("files of the workspace ({})", info.url));
                self.audit.record(
                    "permission.request",
                    json!({
                        "app": {"appId": caller.app_id, "instanceId": caller.instance_id},
                        "api": api,
                        "origin": origin,
                    }),
                );
                let question = ConsentQuestion {
                    app: caller.clone(),
                    title: info.title.clone(),
                    origin,
                    api,
                };
                let Some(answer) = prompts.ask(question, PROMPT_DEADLINE).await else {
                    record(false, "timeout", None);
                    return Err(format!(
                        "{} may not use {api}: the user did not answer within {}s",
                        caller.app_id,
                        PROMPT_DEADLINE.as_secs()
                    ));
                };
                let remember = match answer {
                    ConsentAnswer::AlwaysAllow => Some(Answer::AlwaysAllow),
                    ConsentAnswer::AlwaysDeny => Some(Answer::AlwaysDeny),
                    ConsentAnswer::AllowOnce | ConsentAnswer::Deny => None,
                };
                if let Some(remember) = remember
                    && let Err(e) = self.store.remember(&caller.app_id, api, remember)
                {
                    tracing::error!("cannot remember the answer: {e:#}");
                }
                record(answer.allows(), "user", Some(answer));
                match answer.allows() {
                    true => Ok(()),
                    false => Err(format!(
                        "{} may not use {api}: the user denied it",
                        caller.app_id
                    )),
                }
            }
        }
    }
}

fn reason_name(reason: Reason) -> &'static str {
    match reason {
        Reason::PolicyGranted | Reason::PolicyDenied => "policy",
        Reason::NotDeclared => "manifest",
        Reason::RememberedAllow | Reason::RememberedDeny => "remembered",
    }
}
