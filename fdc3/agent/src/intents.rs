//! Intents: who can handle what (App Directory records and running listeners), finding
//! them, raising intents, and carrying results back to the raiser.
//!
//! A handler is a running instance with a listener for the intent, or an app of a
//! directory whose record lists the intent (a new instance is launched for it). A
//! record's `contexts` (empty: any) and `resultType` filter both; an instance of an app
//! whose record does not list the intent is taken at its word for any context, and has
//! no known result type. When an app has a running handler, launching another instance
//! of it is not offered too.
//!
//! One handler: the intent is delivered. More: see `resolver.rs`. None: `NoAppsFound`.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};
use weft_proto::Identity;

use crate::{Agent, Answer, Outbound, envelope, errors, event, result_type_matches};

/// A listener for an intent.
#[derive(Debug)]
pub(crate) struct IntentListener {
    pub(crate) instance: String,
    intent: String,
}

/// An intent delivered, awaiting its result.
#[derive(Debug)]
pub(crate) struct Delivered {
    raiser: Identity,
    raiser_uuid: String,
    target: String,
}

/// Who can handle an intent: a running instance, or a new instance of an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Handler {
    pub(crate) app_id: String,
    pub(crate) instance: Option<String>,
    pub(crate) intent: String,
}

impl Agent {
    pub(crate) fn add_intent_listener(
        &mut self,
        from: &Identity,
        p: &Map<String, Value>,
    ) -> Answer {
        let intent = envelope::string(p, "intent")
            .filter(|i| !i.trim().is_empty())
            .ok_or(errors::MALFORMED_MESSAGE)?;
        let uuid = envelope::new_uuid();
        self.intent_listeners.insert(
            uuid.clone(),
            IntentListener {
                instance: from.instance_id.clone(),
                intent: intent.to_owned(),
            },
        );
        Ok(json!({ "listenerUUID": uuid }))
    }

    /// Whether `instance` listens for `intent`.
    pub(crate) fn listens_for(&self, instance: &str, intent: &str) -> bool {
        self.intent_listeners
            .values()
            .any(|l| l.instance == instance && l.intent == intent)
    }

    /// Whether an app's declaration of `intent` (if its record has one) accepts the
    /// context type and result type asked for.
    fn declared_accepts(
        &self,
        app_id: &str,
        intent: &str,
        context_type: Option<&str>,
        result_type: Option<&str>,
        running: bool,
    ) -> bool {
        let declared = self
            .apps
            .get(app_id)
            .and_then(|r| r.interop.listens_for.get(intent));
        match declared {
            Some(d) => {
                let context_ok = context_type
                    .is_none_or(|t| d.contexts.is_empty() || d.contexts.iter().any(|c| c == t));
                let result_ok = result_type
                    .is_none_or(|wanted| result_type_matches(d.result_type.as_deref(), wanted));
                context_ok && result_ok
            }
            // Only a running listener can handle what no record declares.
            None => running && result_type.is_none(),
        }
    }

    /// The handlers of `intent` for a context of `context_type`.
    pub(crate) fn handlers(
        &self,
        intent: &str,
        context_type: Option<&str>,
        result_type: Option<&str>,
    ) -> Vec<Handler> {
        let mut out: Vec<Handler> = self
            .instances
            .values()
            .filter(|i| self.listens_for(&i.identity.instance_id, intent))
            .filter(|i| {
                self.declared_accepts(&i.identity.app_id, intent, context_type, result_type, true)
            })
            .map(|i| Handler {
                app_id: i.identity.app_id.clone(),
                instance: Some(i.identity.instance_id.clone()),
                intent: intent.to_owned(),
            })
            .collect();
        let running: BTreeSet<String> = out.iter().map(|h| h.app_id.clone()).collect();
        out.extend(
            self.apps
                .keys()
                .filter(|app_id| !running.contains(*app_id))
                .filter(|app_id| {
                    self.apps[*app_id].interop.listens_for.contains_key(intent)
                        && self.declared_accepts(app_id, intent, context_type, result_type, false)
                })
                .map(|app_id| Handler {
                    app_id: app_id.clone(),
                    instance: None,
                    intent: intent.to_owned(),
                }),
        );
        out
    }

    /// Every intent name known: declared in a record or listened for.
    fn intent_names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self
            .apps
            .values()
            .flat_map(|r| r.interop.listens_for.keys().cloned())
            .collect();
        names.extend(self.intent_listeners.values().map(|l| l.intent.clone()));
        names
    }

    /// The AppIntent of `intent` with these handlers.
    fn app_intent(&self, intent: &str, handlers: &[Handler]) -> Value {
        let display_name = self
            .apps
            .values()
            .find_map(|r| r.interop.listens_for.get(intent)?.display_name.clone());
        let mut metadata = json!({ "name": intent });
        if let Some(d) = display_name {
            metadata["displayName"] = d.into();
        }
        let apps: Vec<Value> = handlers
            .iter()
            .map(|h| {
                let mut app = self.app_metadata(&h.app_id, h.instance.as_deref());
                let result_type = self
                    .apps
                    .get(&h.app_id)
                    .and_then(|r| r.interop.listens_for.get(intent)?.result_type.clone());
                if let Some(rt) = result_type {
                    app["resultType"] = rt.into();
                }
                app
            })
            .collect();
        json!({ "intent": metadata, "apps": apps })
    }

    pub(crate) fn find_intent(&self, p: &Map<String, Value>) -> Answer {
        let intent = envelope::string(p, "intent").ok_or(errors::MALFORMED_MESSAGE)?;
        let context_type = match p.get("context") {
            None | Some(Value::Null) => None,
            Some(c) => Some(envelope::context_type(c).ok_or(errors::MALFORMED_CONTEXT)?),
        };
        let result_type = result_type(p)?;
        let handlers = self.handlers(intent, context_type, result_type);
        if handlers.is_empty() {
            return Err(errors::NO_APPS_FOUND);
        }
        Ok(json!({ "appIntent": self.app_intent(intent, &handlers) }))
    }

    pub(crate) fn find_intents_by_context(&self, p: &Map<String, Value>) -> Answer {
        let context = p.get("context").ok_or(errors::MALFORMED_CONTEXT)?;
        let context_type = envelope::context_type(context).ok_or(errors::MALFORMED_CONTEXT)?;
        let result_type = result_type(p)?;
        let app_intents: Vec<Value> = self
            .intent_names()
            .iter()
            .filter_map(|intent| {
                let handlers = self.handlers(intent, Some(context_type), result_type);
                (!handlers.is_empty()).then(|| self.app_intent(intent, &handlers))
            })
            .collect();
        if app_intents.is_empty() {
            return Err(errors::NO_APPS_FOUND);
        }
        Ok(json!({ "appIntents": app_intents }))
    }

    /// `raiseIntent` and `raiseIntentForContext`: answered now when the intent is
    /// delivered or cannot be, later when an app is launched for it.
    pub(crate) fn raise_intent(
        &mut self,
        from: &Identity,
        request: &envelope::Request<'_>,
        out: &mut Vec<Outbound>,
    ) -> Option<Value> {
        let p = request.payload;
        let fail = |error| Some(envelope::error_response(request, error));
        let Some(context) = p.get("context") else {
            return fail(errors::MALFORMED_CONTEXT);
        };
        let Some(context_type) = envelope::context_type(context) else {
            return fail(errors::MALFORMED_CONTEXT);
        };
        let target = match target_app(p) {
            Ok(t) => t,
            Err(e) => return fail(e),
        };
        let mut handlers = match request.kind {
            "raiseIntentRequest" => match envelope::string(p, "intent") {
                Some(intent) => self.handlers(intent, Some(context_type), None),
                None => return fail(errors::MALFORMED_MESSAGE),
            },
            _ => self
                .intent_names()
                .iter()
                .flat_map(|intent| self.handlers(intent, Some(context_type), None))
                .collect(),
        };
        if let Some((app_id, instance)) = &target {
            let known = self.apps.contains_key(*app_id)
                || self
                    .instances
                    .values()
                    .any(|i| i.identity.app_id == *app_id);
            if !known {
                return fail(errors::TARGET_APP_UNAVAILABLE);
            }
            if let Some(instance) = instance
                && self
                    .instances
                    .get(*instance)
                    .is_none_or(|i| i.identity.app_id != *app_id)
            {
                return fail(errors::TARGET_INSTANCE_UNAVAILABLE);
            }
            handlers.retain(|h| {
                h.app_id == *app_id && instance.is_none_or(|i| h.instance.as_deref() == Some(i))
            });
        }
        let response_kind = envelope::response_type(request.kind);
        match self.choose(
            from,
            request.uuid,
            &response_kind,
            context,
            context_type,
            handlers,
        ) {
            Err(error) => fail(error),
            Ok(None) => None,
            Ok(Some(handler)) => {
                self.proceed(&handler, from, request.uuid, &response_kind, context, out)
            }
        }
    }

    /// Delivers an intent to `target`; returns the raiser's answer payload (its
    /// IntentResolution).
    pub(crate) fn deliver(
        &mut self,
        raiser: &Identity,
        raiser_uuid: &str,
        intent: &str,
        context: &Value,
        target: &Identity,
        out: &mut Vec<Outbound>,
    ) -> Value {
        // The delivery gets an id of the agent's own, which the target echoes with its
        // result: a raiser's uuid is the raiser's choice and may repeat another's.
        let delivery = envelope::new_uuid();
        self.raises.push(target.clone());
        out.push(Outbound {
            to: target.clone(),
            message: event(
                "intentEvent",
                json!({
                    "intent": intent,
                    "context": context,
                    "originatingApp": { "appId": raiser.app_id, "instanceId": raiser.instance_id },
                    "raiseIntentRequestUuid": delivery,
                }),
            ),
        });
        self.delivered.insert(
            delivery,
            Delivered {
                raiser: raiser.clone(),
                raiser_uuid: raiser_uuid.to_owned(),
                target: target.instance_id.clone(),
            },
        );
        json!({
            "intentResolution": {
                "intent": intent,
                "source": { "appId": target.app_id, "instanceId": target.instance_id },
            }
        })
    }

    /// A handler's result: checked, and passed on to the raiser only.
    pub(crate) fn intent_result(
        &mut self,
        from: &Identity,
        p: &Map<String, Value>,
        out: &mut Vec<Outbound>,
    ) -> Answer {
        let delivery =
            envelope::string(p, "raiseIntentRequestUuid").ok_or(errors::MALFORMED_MESSAGE)?;
        match self.delivered.get(delivery) {
            Some(d) if d.target == from.instance_id => {}
            _ => return Err(errors::MALFORMED_MESSAGE),
        }
        let result = match p.get("intentResult") {
            None | Some(Value::Null) => json!({}),
            Some(Value::Object(r)) => {
                if let Some(context) = r.get("context")
                    && envelope::context_type(context).is_none()
                {
                    return Err(errors::MALFORMED_CONTEXT);
                }
                if let Some(channel) = r.get("channel") {
                    let id = channel
                        .get("id")
                        .and_then(Value::as_str)
                        .ok_or(errors::MALFORMED_MESSAGE)?;
                    self.may_use(&from.instance_id, id)?;
                    let raiser = &self.delivered[delivery].raiser.instance_id.clone();
                    self.grant_private(id, raiser);
                    let described = self.channels.get(id).map(|c| c.describe(id));
                    json!({ "channel": described })
                } else {
                    Value::Object(r.clone())
                }
            }
            Some(_) => return Err(errors::MALFORMED_MESSAGE),
        };
        let d = self
            .delivered
            .remove(delivery)
            .expect("checked to be there above");
        out.push(Outbound {
            to: d.raiser,
            message: envelope::late_response(
                "raiseIntentResultResponse",
                &d.raiser_uuid,
                json!({ "intentResult": result }),
            ),
        });
        Ok(json!({}))
    }

    /// `instance` is gone: intents delivered to it will have no result, and results
    /// for intents it raised have nobody to go to.
    pub(crate) fn intents_lost(&mut self, instance: &str, out: &mut Vec<Outbound>) {
        let lost: Vec<String> = self
            .delivered
            .iter()
            .filter(|(_, d)| d.target == instance || d.raiser.instance_id == instance)
            .map(|(k, _)| k.clone())
            .collect();
        for key in lost {
            let d = self.delivered.remove(&key).expect("listed above");
            if d.raiser.instance_id != instance {
                out.push(Outbound {
                    to: d.raiser,
                    message: envelope::late_response(
                        "raiseIntentResultResponse",
                        &d.raiser_uuid,
                        json!({ "error": errors::NO_RESULT_RETURNED }),
                    ),
                });
            }
        }
    }
}

/// The `resultType` filter of a request, if any.
fn result_type(p: &Map<String, Value>) -> Result<Option<&str>, &'static str> {
    match envelope::string_or_null(p, "resultType") {
        Ok(Some(t)) if !weft_appd::valid_result_type(t) => Err(errors::MALFORMED_MESSAGE),
        Ok(t) => Ok(t),
        Err(()) => Err(errors::MALFORMED_MESSAGE),
    }
}

/// The app (and instance) a raise targets, if any.
fn target_app(p: &Map<String, Value>) -> Result<Option<(&str, Option<&str>)>, &'static str> {
    match p.get("app") {
        None | Some(Value::Null) => Ok(None),
        Some(app) => envelope::app_identifier(app)
            .map(Some)
            .map_err(|()| errors::MALFORMED_MESSAGE),
    }
}
