//! The shell's services for pages' sensitive APIs, on the bus as the reserved app
//! `weft-shell`: app hosts call them for their page (`weft.secureStorage`,
//! `weft.notifications`, `weft.clipboard`), the broker stamps which instance called,
//! and every call passes the [`Gatekeeper`](crate::gatekeeper::Gatekeeper) first.
//!
//! Answers are `{"ok": value}` or `{"error": {"code", "message"}}` with the stable code
//! the page sees.

use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use weft_broker::BrokerHandle;
use weft_client::Client;
use weft_permissions::Api;
use weft_proto::{
    CLIPBOARD_SERVICE, Identity, NOTIFICATION_EVENTS_TOPIC, NOTIFICATIONS_SERVICE,
    SECURE_STORAGE_SERVICE, SHELL_APP_ID, Token, Topic, frame::IdentityFilter,
};

use crate::{
    clipboard::Clipboard,
    gatekeeper::Gatekeeper,
    notifications::{NotificationCentre, PageEvent},
    secure_storage::SecureStorage,
};

/// What serves the sensitive APIs.
pub struct Services {
    /// Who may call.
    pub gate: Arc<Gatekeeper>,
    /// `weft.secureStorage`.
    pub storage: Arc<SecureStorage>,
    /// `weft.notifications`.
    pub notifications: Arc<NotificationCentre>,
    /// `weft.clipboard`.
    pub clipboard: Arc<Clipboard>,
}

/// A service's handler: the caller (already allowed), the action and its arguments, to
/// the answer. Runs on a blocking thread.
type Handler = Arc<dyn Fn(&Identity, &str, &Value) -> Value + Send + Sync>;

/// Connects as `weft-shell` and serves the sensitive APIs until the broker stops; sends
/// the pages the events `events` carries (`(instance, payload)` on
/// [`NOTIFICATION_EVENTS_TOPIC`]).
pub async fn start(
    broker: &BrokerHandle,
    services: Services,
    mut events: mpsc::UnboundedReceiver<PageEvent>,
) -> anyhow::Result<()> {
    let token = Token::random();
    broker.grant_app(token.clone(), Identity::new_instance(SHELL_APP_ID));
    let client = Client::connect(broker.socket_path(), &token)
        .await
        .context("connecting the shell's page services to the bus")?;
    broker.revoke(&token);
    let Services {
        gate,
        storage,
        notifications,
        clipboard,
    } = services;
    let secure: Handler = Arc::new(move |caller, action, args| {
        secure_storage(&storage, &caller.app_id, action, args)
    });
    let notify: Handler = Arc::new(move |caller, action, args| match action {
        "create" => result(notifications.create(caller, args).map(|id| json!(id))),
        other => no_action("notifications", other, "create"),
    });
    let copy: Handler = Arc::new(move |_, action, args| match action {
        "readText" => result(clipboard.read_text().map(|t| json!(t))),
        "writeText" => match args.get("text").and_then(Value::as_str) {
            Some(text) => result(clipboard.write_text(text).map(|()| Value::Null)),
            None => failure("InvalidArgument", "writeText takes a string"),
        },
        other => no_action("clipboard", other, "readText, writeText"),
    });
    for (name, api, handler) in [
        (SECURE_STORAGE_SERVICE, Api::SecureStorage, secure),
        (NOTIFICATIONS_SERVICE, Api::Notifications, notify),
        (CLIPBOARD_SERVICE, Api::Clipboard, copy),
    ] {
        let topic = Topic::new(name).expect("a valid service name");
        let provider = client
            .provide(&topic)
            .await
            .with_context(|| format!("providing the {name} service"))?;
        tokio::spawn(serve(client.clone(), provider, api, gate.clone(), handler));
    }
    let topic = Topic::new(NOTIFICATION_EVENTS_TOPIC).expect("a valid topic");
    tokio::spawn(async move {
        while let Some((instance, payload)) = events.recv().await {
            let to = IdentityFilter {
                app_id: instance.app_id.clone(),
                instance_id: Some(instance.instance_id.clone()),
            };
            if let Err(e) = client.send(&to, &topic, payload.to_string()).await {
                tracing::info!(%instance, "a page event was not delivered: {e}");
            }
        }
    });
    Ok(())
}

/// Answers the calls of one service: each call on its own (one waiting for the user
/// holds up no other), through the gate first.
async fn serve(
    client: Client,
    mut provider: weft_client::Provider,
    api: Api,
    gate: Arc<Gatekeeper>,
    handler: Handler,
) {
    while let Some(call) = provider.next().await {
        let caller = (*call.message.sender).clone();
        let (gate, handler, client) = (gate.clone(), handler.clone(), client.clone());
        tokio::spawn(async move {
            let answer = match gate.check(&caller, api).await {
                Err(message) => failure("AccessDenied", &message),
                Ok(()) => {
                    let args = serde_json::from_slice::<Value>(&call.message.payload)
                        .unwrap_or(Value::Null);
                    let action = call.action.clone();
                    tokio::task::spawn_blocking(move || handler(&caller, &action, &args))
                        .await
                        .unwrap_or_else(|e| failure("Unavailable", &e.to_string()))
                }
            };
            let _ = client
                .respond(call.call, Ok(Bytes::from(answer.to_string())))
                .await;
        });
    }
}

/// `{"ok": value}`, or the error.
fn result(outcome: Result<Value, (&'static str, String)>) -> Value {
    match outcome {
        Ok(value) => json!({"ok": value}),
        Err((code, message)) => failure(code, &message),
    }
}

fn no_action(api: &str, action: &str, known: &str) -> Value {
    failure(
        "InvalidArgument",
        &format!("{api} has no action {action:?} ({known})"),
    )
}

fn failure(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message}})
}

/// One secure storage call of `app_id`.
fn secure_storage(storage: &SecureStorage, app_id: &str, action: &str, args: &Value) -> Value {
    let key = || {
        args.get("key")
            .and_then(Value::as_str)
            .ok_or_else(|| failure("InvalidArgument", "the entry's name must be a string"))
    };
    let result = match action {
        "get" => key().map(|k| storage.get(app_id, k).map(|v| v.unwrap_or(Value::Null))),
        "set" => key().map(|k| {
            let value = args.get("value").cloned().unwrap_or(Value::Null);
            storage.set(app_id, k, value).map(|()| Value::Null)
        }),
        "delete" => key().map(|k| storage.delete(app_id, k).map(Value::Bool)),
        "keys" => Ok(storage.keys(app_id).map(|keys| json!(keys))),
        other => Err(failure(
            "InvalidArgument",
            &format!("secureStorage has no action {other:?} (get, set, delete, keys)"),
        )),
    };
    match result {
        Err(bad) => bad,
        Ok(Ok(value)) => json!({"ok": value}),
        Ok(Err(e)) => failure(e.code(), &e.to_string()),
    }
}
