//! Choosing among several handlers of an intent: the choice the user asked to have
//! remembered for that intent and context type, else the user's, in the shell's intent
//! resolver, else `ResolverUnavailable` (no resolver: a shell without its panel).
//!
//! The agent asks ([`Agent::take_resolve_requests`]) and is told what the user chose
//! ([`Agent::resolved`]); a question unanswered for [`RESOLVER_TIMEOUT`] fails with
//! `ResolverTimeout`.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use weft_proto::Identity;

use crate::{Agent, Outbound, envelope, errors, intents::Handler, launch::Awaited};

/// How long the user has to choose.
pub const RESOLVER_TIMEOUT: Duration = Duration::from_secs(100);

/// A choice for the user: which app (or running instance) handles the intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveRequest {
    /// Names the question in [`Agent::resolved`].
    pub id: u64,
    /// The instance that raised the intent (the resolver shows over its window).
    pub requester: Identity,
    /// The type of the context the intent was raised with.
    pub context_type: String,
    /// The choices, in order.
    pub options: Vec<ResolverOption>,
}

/// One choice of a [`ResolveRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverOption {
    /// The intent it handles.
    pub intent: String,
    /// The app.
    pub app_id: String,
    /// The running instance, or `None` for a new one.
    pub instance_id: Option<String>,
    /// The app's title.
    pub title: String,
}

/// A raised intent waiting for the user's choice.
#[derive(Debug)]
struct Pending {
    id: u64,
    requester: Identity,
    request_uuid: String,
    response_kind: String,
    context: Value,
    context_type: String,
    handlers: Vec<Handler>,
    deadline: Instant,
}

/// What the agent keeps for resolving.
#[derive(Debug, Default)]
pub(crate) struct Resolver {
    available: bool,
    next: u64,
    asked: Vec<ResolveRequest>,
    pending: Vec<Pending>,
    /// (intent, context type) → the app the user chose, asking to remember it.
    remembered: BTreeMap<(String, String), String>,
}

impl Resolver {
    /// `instance` is gone: what it raised is dropped.
    pub(crate) fn forget_instance(&mut self, instance: &str) {
        self.pending.retain(|p| p.requester.instance_id != instance);
    }
}

impl Agent {
    /// Whether the shell can ask the user (it shows its intent resolver).
    pub fn set_resolver_available(&mut self, available: bool) {
        self.resolver.available = available;
    }

    /// Remembers that intents of this name raised with contexts of this type go to
    /// `app_id` (when it is among the handlers).
    pub fn remember_choice(&mut self, intent: &str, context_type: &str, app_id: &str) {
        self.resolver
            .remembered
            .insert((intent.into(), context_type.into()), app_id.into());
    }

    /// Forgets a remembered choice.
    pub fn forget_choice(&mut self, intent: &str, context_type: &str) {
        self.resolver
            .remembered
            .remove(&(intent.to_owned(), context_type.to_owned()));
    }

    /// The remembered choices: intent, context type, app.
    pub fn remembered_choices(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.resolver
            .remembered
            .iter()
            .map(|((i, c), a)| (i.as_str(), c.as_str(), a.as_str()))
    }

    /// The questions the agent still waits on the user for.
    pub fn waiting_questions(&self) -> Vec<u64> {
        self.resolver.pending.iter().map(|p| p.id).collect()
    }

    /// The questions for the user, since the last call.
    pub fn take_resolve_requests(&mut self) -> Vec<ResolveRequest> {
        std::mem::take(&mut self.resolver.asked)
    }

    /// The user's answer to question `id`: the option chosen (and whether to remember
    /// it for this intent and context type), or `None` if they cancelled.
    pub fn resolved(&mut self, id: u64, choice: Option<(usize, bool)>) -> Vec<Outbound> {
        let mut out = Vec::new();
        let Some(i) = self.resolver.pending.iter().position(|p| p.id == id) else {
            return out;
        };
        let p = self.resolver.pending.remove(i);
        let handler = choice.and_then(|(n, remember)| {
            let h = p.handlers.get(n)?.clone();
            if remember {
                self.remember_choice(&h.intent, &p.context_type, &h.app_id);
            }
            Some(h)
        });
        let answer = match handler {
            None => Some(envelope::late_response(
                &p.response_kind,
                &p.request_uuid,
                json!({ "error": errors::USER_CANCELLED }),
            )),
            Some(h) => self.proceed(
                &h,
                &p.requester,
                &p.request_uuid,
                &p.response_kind,
                &p.context,
                &mut out,
            ),
        };
        if let Some(message) = answer {
            out.insert(
                0,
                Outbound {
                    to: p.requester,
                    message,
                },
            );
        }
        out
    }

    /// Picks the handler of a raised intent: the only one, the remembered one, or the
    /// user's (`Ok(None)`: asked, answered later). `Err` with the standard's error when
    /// there is none or nobody to ask.
    pub(crate) fn choose(
        &mut self,
        requester: &Identity,
        request_uuid: &str,
        response_kind: &str,
        context: &Value,
        context_type: &str,
        handlers: Vec<Handler>,
    ) -> Result<Option<Handler>, &'static str> {
        match handlers.as_slice() {
            [] => return Err(errors::NO_APPS_FOUND),
            [one] => return Ok(Some(one.clone())),
            _ => {}
        }
        let remembered: Vec<&Handler> = handlers
            .iter()
            .filter(|h| {
                self.resolver
                    .remembered
                    .get(&(h.intent.clone(), context_type.to_owned()))
                    == Some(&h.app_id)
            })
            .collect();
        if let [one] = remembered.as_slice() {
            return Ok(Some((*one).clone()));
        }
        if !self.resolver.available {
            return Err(errors::RESOLVER_UNAVAILABLE);
        }
        self.resolver.next += 1;
        let id = self.resolver.next;
        let options = handlers
            .iter()
            .map(|h| ResolverOption {
                intent: h.intent.clone(),
                app_id: h.app_id.clone(),
                instance_id: h.instance.clone(),
                title: self.title_of(&h.app_id, h.instance.as_deref()),
            })
            .collect();
        self.resolver.asked.push(ResolveRequest {
            id,
            requester: requester.clone(),
            context_type: context_type.to_owned(),
            options,
        });
        self.resolver.pending.push(Pending {
            id,
            requester: requester.clone(),
            request_uuid: request_uuid.to_owned(),
            response_kind: response_kind.to_owned(),
            context: context.clone(),
            context_type: context_type.to_owned(),
            handlers,
            deadline: Instant::now() + RESOLVER_TIMEOUT,
        });
        Ok(None)
    }

    /// Delivers the intent to the chosen handler, or launches its app for it; the
    /// raiser's answer when it is due now.
    pub(crate) fn proceed(
        &mut self,
        handler: &Handler,
        requester: &Identity,
        request_uuid: &str,
        response_kind: &str,
        context: &Value,
        out: &mut Vec<Outbound>,
    ) -> Option<Value> {
        let fail = |error: &str| {
            Some(envelope::late_response(
                response_kind,
                request_uuid,
                json!({ "error": error }),
            ))
        };
        match &handler.instance {
            Some(instance) => {
                let Some(target) = self.instances.get(instance).map(|i| i.identity.clone()) else {
                    return fail(errors::TARGET_INSTANCE_UNAVAILABLE);
                };
                let resolution = self.deliver(
                    requester,
                    request_uuid,
                    &handler.intent,
                    context,
                    &target,
                    out,
                );
                Some(envelope::late_response(
                    response_kind,
                    request_uuid,
                    resolution,
                ))
            }
            None => self
                .launch_for(
                    &handler.app_id,
                    requester,
                    request_uuid,
                    Awaited::Intent {
                        response_kind: response_kind.to_owned(),
                        intent: handler.intent.clone(),
                        context: context.clone(),
                    },
                )
                .err()
                .and_then(|_| fail(errors::INTENT_DELIVERY_FAILED)),
        }
    }

    /// Fails the questions unanswered past their deadline.
    pub(crate) fn resolver_tick(&mut self, now: Instant) -> Vec<Outbound> {
        let (expired, pending): (Vec<Pending>, Vec<Pending>) =
            std::mem::take(&mut self.resolver.pending)
                .into_iter()
                .partition(|p| p.deadline <= now);
        self.resolver.pending = pending;
        expired
            .into_iter()
            .map(|p| Outbound {
                to: p.requester,
                message: envelope::late_response(
                    &p.response_kind,
                    &p.request_uuid,
                    json!({ "error": errors::RESOLVER_TIMEOUT }),
                ),
            })
            .collect()
    }

    /// An app's (or instance's) title as the user knows it.
    fn title_of(&self, app_id: &str, instance: Option<&str>) -> String {
        self.app_metadata(app_id, instance)
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or(app_id)
            .to_owned()
    }
}
