//! `open`, and intents for apps that are not running: the agent asks the shell for a
//! new instance, then waits for it — for `open` with a context, until it adds a
//! context listener for it; for an intent, until it adds a listener for the intent —
//! and answers whoever asked, or tells them why not once the deadline passes. `open`
//! of an app that runs brings that instance to front instead (and waits the same way
//! for its context listener).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weft_appd::AppRecord;
use weft_proto::Identity;

use crate::{Agent, Outbound, envelope, errors, event};

/// How long `open` waits for the new instance (and, with a context, for its context
/// listener) before failing with `AppTimeout`.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(45);
/// How long a raised intent waits for a launched app's intent listener before failing
/// with `IntentDeliveryFailed`.
pub const INTENT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// A new instance the agent needs: the shell starts it and reports with
/// [`Agent::launched`].
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchRequest {
    /// Names this launch in [`Agent::launched`].
    pub id: u64,
    /// The app to start an instance of, as the agent knows it.
    pub app: AppRecord,
}

/// What a launch is for.
#[derive(Debug)]
pub(crate) enum Awaited {
    /// `open`, with the context to hand the new instance.
    Open { context: Option<Value> },
    /// A raised intent, to deliver once the new instance listens for it.
    Intent {
        response_kind: String,
        intent: String,
        context: Value,
    },
}

#[derive(Debug)]
struct Waiting {
    /// The launch it waits on; none when the instance was already running.
    launch: Option<u64>,
    instance: Option<Identity>,
    deadline: Instant,
    requester: Identity,
    request_uuid: String,
    awaited: Awaited,
}

/// Launches asked for and what waits on them.
#[derive(Debug, Default)]
pub(crate) struct Launches {
    next: u64,
    requested: Vec<LaunchRequest>,
    waiting: Vec<Waiting>,
}

impl Launches {
    /// `instance` is gone: what it asked for is dropped.
    pub(crate) fn forget_instance(&mut self, instance: &str) {
        self.waiting.retain(|w| w.requester.instance_id != instance);
    }
}

impl Agent {
    /// The new instances the agent needs, since the last call.
    pub fn take_launches(&mut self) -> Vec<LaunchRequest> {
        std::mem::take(&mut self.launches.requested)
    }

    /// How launch `id` went: the new instance, or why it did not start.
    pub fn launched(&mut self, id: u64, outcome: Result<Identity, String>) -> Vec<Outbound> {
        let mut out = Vec::new();
        let Some(i) = self
            .launches
            .waiting
            .iter()
            .position(|w| w.launch == Some(id))
        else {
            return out;
        };
        match outcome {
            Err(why) => {
                let w = self.launches.waiting.remove(i);
                tracing::warn!(launch = id, "FDC3: an app could not be launched: {why}");
                let error = match w.awaited {
                    Awaited::Open { .. } => errors::ERROR_ON_LAUNCH,
                    Awaited::Intent { .. } => errors::INTENT_DELIVERY_FAILED,
                };
                out.push(failure(&w, error));
            }
            Ok(identity) => {
                self.launches.waiting[i].instance = Some(identity.clone());
                self.launches_progress(&identity, &mut out);
            }
        }
        out
    }

    /// Fails what has waited past its deadline: launches, and questions for the user.
    pub fn tick(&mut self, now: Instant) -> Vec<Outbound> {
        let (expired, waiting): (Vec<Waiting>, Vec<Waiting>) =
            std::mem::take(&mut self.launches.waiting)
                .into_iter()
                .partition(|w| w.deadline <= now);
        self.launches.waiting = waiting;
        let mut out: Vec<Outbound> = expired
            .iter()
            .map(|w| {
                let error = match w.awaited {
                    Awaited::Open { .. } => errors::APP_TIMEOUT,
                    Awaited::Intent { .. } => errors::INTENT_DELIVERY_FAILED,
                };
                failure(w, error)
            })
            .collect();
        out.extend(self.resolver_tick(now));
        out
    }

    /// Asks for a new instance of `app_id`, for `awaited`; `Err(AppNotFound)` if the
    /// agent knows no such app.
    pub(crate) fn launch_for(
        &mut self,
        app_id: &str,
        requester: &Identity,
        request_uuid: &str,
        awaited: Awaited,
    ) -> Result<(), &'static str> {
        let app = self.apps.get(app_id).ok_or(errors::APP_NOT_FOUND)?.clone();
        self.launches.next += 1;
        let id = self.launches.next;
        let timeout = match awaited {
            Awaited::Open { .. } => OPEN_TIMEOUT,
            Awaited::Intent { .. } => INTENT_DELIVERY_TIMEOUT,
        };
        self.launches.requested.push(LaunchRequest { id, app });
        self.launches.waiting.push(Waiting {
            launch: Some(id),
            instance: None,
            deadline: Instant::now() + timeout,
            requester: requester.clone(),
            request_uuid: request_uuid.to_owned(),
            awaited,
        });
        Ok(())
    }

    /// `open`: the instance named, else the app's first running instance, is brought
    /// to front; else a new instance of an app of the directories is started. Answered
    /// once it runs (with a context: once it listens for it).
    pub(crate) fn open(
        &mut self,
        from: &Identity,
        request: &envelope::Request<'_>,
        out: &mut Vec<Outbound>,
    ) -> Option<Value> {
        let p = request.payload;
        let fail = |error| Some(envelope::error_response(request, error));
        let Some((app_id, instance_id)) =
            p.get("app").and_then(|a| envelope::app_identifier(a).ok())
        else {
            return fail(errors::MALFORMED_MESSAGE);
        };
        let context = match p.get("context") {
            None | Some(Value::Null) => None,
            Some(c) if envelope::context_type(c).is_some() => Some(c.clone()),
            Some(_) => return fail(errors::MALFORMED_CONTEXT),
        };
        let awaited = Awaited::Open { context };
        let Some(running) = self.running_instance(app_id, instance_id) else {
            return self
                .launch_for(app_id, from, request.uuid, awaited)
                .err()
                .and_then(fail);
        };
        self.raises.push(running.clone());
        self.launches.waiting.push(Waiting {
            launch: None,
            instance: Some(running.clone()),
            deadline: Instant::now() + OPEN_TIMEOUT,
            requester: from.clone(),
            request_uuid: request.uuid.to_owned(),
            awaited,
        });
        self.launches_progress(&running, out);
        None
    }

    /// The running instance `open` would bring forward: the one named, else the app's
    /// first.
    fn running_instance(&self, app_id: &str, instance_id: Option<&str>) -> Option<Identity> {
        let of_app = |i: &&crate::Instance| i.identity.app_id == app_id;
        match instance_id {
            Some(id) => self.instances.get(id).filter(of_app),
            None => self.instances.values().find(of_app),
        }
        .map(|i| i.identity.clone())
    }

    /// `instance` did something (sent a request, or was reported launched): answers
    /// whoever waits on it, when what they wait for is now there.
    pub(crate) fn launches_progress(&mut self, instance: &Identity, out: &mut Vec<Outbound>) {
        let mut i = 0;
        while i < self.launches.waiting.len() {
            let w = &self.launches.waiting[i];
            let ours = w
                .instance
                .as_ref()
                .is_some_and(|id| id.instance_id == instance.instance_id);
            if !ours || !self.satisfied(instance, &w.awaited) {
                i += 1;
                continue;
            }
            let w = self.launches.waiting.remove(i);
            let answer = match &w.awaited {
                Awaited::Open { context } => {
                    if let Some(context) = context {
                        out.push(Outbound {
                            to: instance.clone(),
                            message: event(
                                "broadcastEvent",
                                json!({
                                    "channelId": null,
                                    "context": context,
                                    "originatingApp": {
                                        "appId": w.requester.app_id,
                                        "instanceId": w.requester.instance_id,
                                    },
                                }),
                            ),
                        });
                    }
                    envelope::late_response(
                        "openResponse",
                        &w.request_uuid,
                        json!({ "appIdentifier": {
                            "appId": instance.app_id, "instanceId": instance.instance_id,
                        }}),
                    )
                }
                Awaited::Intent {
                    response_kind,
                    intent,
                    context,
                } => {
                    let resolution = self.deliver(
                        &w.requester,
                        &w.request_uuid,
                        intent,
                        context,
                        instance,
                        out,
                    );
                    envelope::late_response(response_kind, &w.request_uuid, resolution)
                }
            };
            out.push(Outbound {
                to: w.requester.clone(),
                message: answer,
            });
        }
    }

    /// Whether the new instance has what `awaited` waits for.
    fn satisfied(&self, instance: &Identity, awaited: &Awaited) -> bool {
        match awaited {
            Awaited::Open { context: None } => true,
            Awaited::Open {
                context: Some(context),
            } => {
                let wanted = envelope::context_type(context);
                self.context_listeners.values().any(|l| {
                    l.instance == instance.instance_id
                        && l.channel.is_none()
                        && (l.context_type.is_none() || l.context_type.as_deref() == wanted)
                })
            }
            Awaited::Intent { intent, .. } => self.listens_for(&instance.instance_id, intent),
        }
    }
}

/// The failure answer to what `w` waited for.
fn failure(w: &Waiting, error: &str) -> Outbound {
    let kind = match &w.awaited {
        Awaited::Open { .. } => "openResponse",
        Awaited::Intent { response_kind, .. } => response_kind.as_str(),
    };
    Outbound {
        to: w.requester.clone(),
        message: envelope::late_response(kind, &w.request_uuid, json!({ "error": error })),
    }
}
