//! The shell's services for pages' sensitive APIs, on the bus as the reserved app
//! `weft-shell`: app hosts call them for their page (`weft.secureStorage` now), the
//! broker stamps which instance called, and every call passes the
//! [`Gatekeeper`](crate::gatekeeper::Gatekeeper) first.
//!
//! Answers are `{"ok": value}` or `{"error": {"code", "message"}}` with the stable code
//! the page sees.

use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use serde_json::{Value, json};
use weft_broker::BrokerHandle;
use weft_client::Client;
use weft_permissions::Api;
use weft_proto::{Identity, SECURE_STORAGE_SERVICE, SHELL_APP_ID, Token, Topic};

use crate::{gatekeeper::Gatekeeper, secure_storage::SecureStorage};

/// Connects as `weft-shell` and serves the sensitive APIs until the broker stops.
pub async fn start(
    broker: &BrokerHandle,
    gate: Arc<Gatekeeper>,
    storage: Arc<SecureStorage>,
) -> anyhow::Result<()> {
    let token = Token::random();
    broker.grant_app(token.clone(), Identity::new_instance(SHELL_APP_ID));
    let client = Client::connect(broker.socket_path(), &token)
        .await
        .context("connecting the shell's page services to the bus")?;
    broker.revoke(&token);
    let service = Topic::new(SECURE_STORAGE_SERVICE).expect("a valid service name");
    let mut provider = client
        .provide(&service)
        .await
        .context("providing the secure storage service")?;
    tokio::spawn(async move {
        while let Some(call) = provider.next().await {
            let caller = (*call.message.sender).clone();
            let gate = gate.clone();
            let storage = storage.clone();
            let client = client.clone();
            // Each call on its own: one waiting for the user holds up no other.
            tokio::spawn(async move {
                let answer = match gate.check(&caller, Api::SecureStorage).await {
                    Err(message) => failure("AccessDenied", &message),
                    Ok(()) => {
                        let args = serde_json::from_slice::<Value>(&call.message.payload)
                            .unwrap_or(Value::Null);
                        let action = call.action.clone();
                        tokio::task::spawn_blocking(move || {
                            secure_storage(&storage, &caller.app_id, &action, &args)
                        })
                        .await
                        .unwrap_or_else(|e| failure("StorageFailed", &e.to_string()))
                    }
                };
                let _ = client
                    .respond(call.call, Ok(Bytes::from(answer.to_string())))
                    .await;
            });
        }
    });
    Ok(())
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
