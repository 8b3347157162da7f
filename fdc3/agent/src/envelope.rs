//! The Desktop Agent Communication Protocol's envelopes: reading a request's type,
//! uuid and payload, and making responses and events (`@finos/fdc3-schema` shapes).
//!
//! A request is `{"type": "<name>Request", "meta": {"requestUuid", "timestamp",
//! "source"?}, "payload": {…}}`; its response is `{"type": "<name>Response", "meta":
//! {"requestUuid", "responseUuid", "timestamp"}, "payload": {…, "error"?}}`; an event is
//! `{"type": "<name>Event", "meta": {"eventUuid", "timestamp"}, "payload": {…}}`. The
//! request's `meta.source` is never read: who sent it is known from the connection.

use serde_json::{Map, Value, json};

/// A request, as far as the envelope goes.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    /// Its `type`.
    pub(crate) kind: &'a str,
    /// Its `meta.requestUuid`.
    pub(crate) uuid: &'a str,
    /// Its `payload` (an empty object when absent).
    pub(crate) payload: &'a Map<String, Value>,
}

/// Why a message is not a request at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotARequest(pub(crate) String);

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

/// Reads the envelope of `message`.
pub(crate) fn read(message: &Value) -> Result<Request<'_>, NotARequest> {
    let object = message
        .as_object()
        .ok_or_else(|| NotARequest("a message must be a JSON object".into()))?;
    let kind = object
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| NotARequest("`type` must be a string".into()))?;
    let uuid = object
        .get("meta")
        .and_then(|m| m.get("requestUuid"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let payload = match object.get("payload") {
        None => &*EMPTY,
        Some(Value::Object(p)) => p,
        Some(_) => return Err(NotARequest("`payload` must be an object".into())),
    };
    Ok(Request {
        kind,
        uuid,
        payload,
    })
}

/// The response type of a request type: `xRequest` → `xResponse`.
pub(crate) fn response_type(request_type: &str) -> String {
    let stem = request_type.strip_suffix("Request").unwrap_or(request_type);
    format!("{stem}Response")
}

/// A response to `request` carrying `payload`.
pub(crate) fn response(request: &Request<'_>, payload: Value) -> Value {
    json!({
        "type": response_type(request.kind),
        "meta": {
            "requestUuid": request.uuid,
            "responseUuid": new_uuid(),
            "timestamp": now(),
        },
        "payload": payload,
    })
}

/// A response of type `kind` to the request `request_uuid`, given later than the
/// request was handled.
pub(crate) fn late_response(kind: &str, request_uuid: &str, payload: Value) -> Value {
    json!({
        "type": kind,
        "meta": {
            "requestUuid": request_uuid,
            "responseUuid": new_uuid(),
            "timestamp": now(),
        },
        "payload": payload,
    })
}

/// A response to `request` failing with one of the standard's error names.
pub(crate) fn error_response(request: &Request<'_>, error: &str) -> Value {
    response(request, json!({ "error": error }))
}

/// An event of type `kind`.
pub(crate) fn event(kind: &str, payload: Value) -> Value {
    json!({
        "type": kind,
        "meta": { "eventUuid": new_uuid(), "timestamp": now() },
        "payload": payload,
    })
}

/// A fresh random UUID.
pub(crate) fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// A string field of a payload, which must be present.
pub(crate) fn string<'a>(payload: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    payload.get(field).and_then(Value::as_str)
}

/// A field that must be a string or null; `Err` for anything else. Missing counts
/// as null.
pub(crate) fn string_or_null<'a>(
    payload: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, ()> {
    match payload.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(()),
    }
}

/// An AppIdentifier `{appId, instanceId?}`: its app id and instance id.
pub(crate) fn app_identifier(value: &Value) -> Result<(&str, Option<&str>), ()> {
    let app = value.as_object().ok_or(())?;
    let app_id = app.get("appId").and_then(Value::as_str).ok_or(())?;
    let instance = match app.get("instanceId") {
        None | Some(Value::Null) => None,
        Some(Value::String(i)) => Some(i.as_str()),
        Some(_) => return Err(()),
    };
    Ok((app_id, instance))
}

/// Whether `context` is a valid FDC3 context: an object with a non-empty string
/// `type`.
pub(crate) fn context_type(context: &Value) -> Option<&str> {
    context
        .as_object()?
        .get("type")?
        .as_str()
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes() {
        let m =
            json!({"type": "broadcastRequest", "meta": {"requestUuid": "r1"}, "payload": {"a": 1}});
        let r = read(&m).unwrap();
        assert_eq!((r.kind, r.uuid), ("broadcastRequest", "r1"));
        let resp = response(&r, json!({}));
        assert_eq!(resp["type"], "broadcastResponse");
        assert_eq!(resp["meta"]["requestUuid"], "r1");
        assert!(resp["meta"]["responseUuid"].as_str().unwrap().len() == 36);
        assert!(resp["meta"]["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(
            error_response(&r, "NoChannelFound")["payload"]["error"],
            "NoChannelFound"
        );
        assert!(read(&json!([1])).is_err());
        assert!(read(&json!({"type": 3})).is_err());
        assert!(read(&json!({"type": "x", "payload": 3})).is_err());
        assert_eq!(
            context_type(&json!({"type": "fdc3.instrument"})),
            Some("fdc3.instrument")
        );
        assert_eq!(context_type(&json!({"type": ""})), None);
        assert_eq!(context_type(&json!({"id": {}})), None);
    }
}
