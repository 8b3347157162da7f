//! JavaScript the host hands to the page: the bridge at document start, and batches of
//! answers and messages afterwards.

use serde::Serialize;
use serde_json::value::RawValue;
use weft_proto::{
    Identity,
    frame::Delivery,
    trace_context::{TRACEPARENT, TraceParent},
};

/// The bridge source, wrapped by [`init_script`].
const BRIDGE: &str = include_str!("../../../assets/bridge/weft-bridge.js");

/// The FDC3 Desktop Agent proxy, bundled (`assets/fdc3`): a script defining
/// `weftFdc3`, whose `install` the bridge calls.
const FDC3: &str = include_str!("../../../assets/fdc3/dist/weft-fdc3.js");

/// The script injected into the top frame at document start: the bridge and the FDC3
/// proxy in one function scope, so that no page script can reach either's internals.
/// `restored_state` (JSON text) becomes `weft.workspace.restoredState`; anything that
/// is not JSON is left out.
pub fn init_script(identity: &Identity, restored_state: Option<&str>) -> String {
    let identity = serde_json::to_string(identity).expect("an identity always serialises");
    let restored = restored_state
        .and_then(|text| serde_json::from_str::<&RawValue>(text).ok())
        .map_or("null", RawValue::get);
    format!(
        "(function () {{\n{FDC3}\n{}({identity}, weftFdc3, {restored});\n}})();",
        BRIDGE.trim_end().trim_end_matches(';')
    )
}

/// One item of a batch for the page's `__weftHost` receiver, already JSON.
pub struct ToPage(String);

#[derive(Serialize)]
struct Response<'a> {
    t: &'static str,
    id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    err: Option<ErrorBody<'a>>,
}

#[derive(Serialize)]
struct ValueResponse<'a> {
    t: &'static str,
    id: u64,
    value: &'a RawValue,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct Message<'a> {
    t: &'static str,
    sub: u64,
    data: Data<'a>,
    meta: Meta<'a>,
    /// Set when the message is a request: the bridge answers it with the handler's
    /// result.
    #[serde(skip_serializing_if = "Option::is_none")]
    call: Option<u64>,
    /// Set when the message is a durable consumer's: the bridge acknowledges it when
    /// the handler returns (or its promise settles).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    ack: bool,
}

#[derive(Serialize)]
struct Reply<'a> {
    t: &'static str,
    id: u64,
    value: ReplyValue<'a>,
}

#[derive(Serialize)]
struct ReplyValue<'a> {
    data: Data<'a>,
    meta: Meta<'a>,
}

#[derive(Serialize)]
struct Invoke<'a> {
    t: &'static str,
    svc: &'a str,
    call: u64,
    action: &'a str,
    data: Data<'a>,
    meta: Meta<'a>,
}

#[derive(Serialize)]
struct Dropped {
    t: &'static str,
    count: u64,
}

#[derive(Serialize)]
struct Fdc3<'a> {
    t: &'static str,
    m: &'a RawValue,
}

#[derive(Serialize)]
struct ServiceGone<'a> {
    t: &'static str,
    svc: &'a str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Data<'a> {
    Json(&'a RawValue),
    Text(String),
}

#[derive(Serialize)]
struct Meta<'a> {
    topic: &'a str,
    sender: &'a Identity,
    id: String,
    ts: u64,
    /// Present (true) when the payload was not JSON and `data` is its text.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    raw: bool,
    /// The message's W3C `traceparent`, when it is traced.
    #[serde(skip_serializing_if = "Option::is_none")]
    traceparent: Option<&'a str>,
    /// Its sequence number in its durable stream, when it was stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
}

fn data_and_meta(d: &Delivery) -> (Data<'_>, Meta<'_>) {
    let text = std::str::from_utf8(&d.payload).ok();
    let json = text.and_then(|t| serde_json::from_str::<&RawValue>(t).ok());
    let (data, raw) = match json {
        Some(json) => (Data::Json(json), false),
        None => (
            Data::Text(String::from_utf8_lossy(&d.payload).into_owned()),
            true,
        ),
    };
    let meta = Meta {
        topic: d.topic.as_str(),
        sender: &d.sender,
        id: d.id.to_string(),
        ts: d.ts_ms,
        raw,
        // Only a valid one: the page hands it back as the cause of what it sends.
        traceparent: d
            .headers
            .iter()
            .find(|(k, _)| k == TRACEPARENT)
            .map(|(_, v)| v.as_str())
            .filter(|v| TraceParent::parse(v).is_ok()),
        seq: d.seq,
    };
    (data, meta)
}

#[derive(Serialize)]
struct SaveRequest {
    t: &'static str,
    request: u64,
}

impl ToPage {
    /// The shell saves a layout: the page's `weft.workspace.onSave` hook is asked for
    /// its state, which it answers with `saved`.
    pub fn save(request: u64) -> Self {
        Self::encode(&SaveRequest { t: "save", request })
    }

    /// A request succeeded.
    pub fn ok(id: u64) -> Self {
        Self::encode(&Response {
            t: "res",
            id,
            err: None,
        })
    }

    /// A request succeeded with `value` (JSON text, already checked to be JSON).
    pub fn value(id: u64, value: &RawValue) -> Self {
        Self::encode(&ValueResponse {
            t: "res",
            id,
            value,
        })
    }

    /// A request failed with a stable `code`.
    pub fn err(id: u64, code: &str, message: &str) -> Self {
        Self::encode(&Response {
            t: "res",
            id,
            err: Some(ErrorBody { code, message }),
        })
    }

    /// A message for the page's subscription `sub`. A payload that is not JSON (only
    /// Rust clients can publish one) reaches the page as text, with `meta.raw` set.
    pub fn message(sub: u64, d: &Delivery) -> Self {
        Self::delivered(sub, d, false)
    }

    /// A durable consumer's message for the page's subscription `sub`, to be
    /// acknowledged once its handler is done.
    pub fn consumed(sub: u64, d: &Delivery) -> Self {
        Self::delivered(sub, d, true)
    }

    fn delivered(sub: u64, d: &Delivery, ack: bool) -> Self {
        let (data, meta) = data_and_meta(d);
        Self::encode(&Message {
            t: "msg",
            sub,
            data,
            meta,
            call: if ack { None } else { d.reply_to },
            ack,
        })
    }

    /// The answer to the page's request or dispatch `id`: `{data, meta}`.
    pub fn reply(id: u64, d: &Delivery) -> Self {
        let (data, meta) = data_and_meta(d);
        Self::encode(&Reply {
            t: "res",
            id,
            value: ReplyValue { data, meta },
        })
    }

    /// A call of `action` of the page's service `svc`, to answer as `call`.
    pub fn invoke(svc: &str, call: u64, action: &str, d: &Delivery) -> Self {
        let (data, meta) = data_and_meta(d);
        Self::encode(&Invoke {
            t: "invoke",
            svc,
            call,
            action,
            data,
            meta,
        })
    }

    /// `count` messages for the page were dropped because it did not keep up.
    pub fn dropped(count: u64) -> Self {
        Self::encode(&Dropped {
            t: "dropped",
            count,
        })
    }

    /// Its size in bytes, as it will be embedded in a script.
    pub fn size_bytes(&self) -> usize {
        self.0.len()
    }

    /// An item of arbitrary text, for queue tests.
    #[cfg(test)]
    pub fn raw_for_tests(text: String) -> Self {
        Self(text)
    }

    /// The item's JSON, for tests.
    #[cfg(test)]
    pub fn json(&self) -> &str {
        &self.0
    }

    /// The provider of the page's connected service `svc` has gone.
    pub fn service_gone(svc: &str) -> Self {
        Self::encode(&ServiceGone { t: "svcgone", svc })
    }

    /// A message of the FDC3 agent for the page's Desktop Agent proxy; `None` unless
    /// it is a JSON object.
    pub fn fdc3(message: &[u8]) -> Option<Self> {
        let raw: &RawValue = serde_json::from_slice(message).ok()?;
        raw.get()
            .starts_with('{')
            .then(|| Self::encode(&Fdc3 { t: "fdc3", m: raw }))
    }

    fn encode(value: &impl Serialize) -> Self {
        Self(serde_json::to_string(value).expect("page messages always serialise"))
    }
}

/// One script delivering `batch` to the page. JSON is valid JavaScript, so the items
/// are embedded as they are.
pub fn batch_script(batch: &[ToPage]) -> String {
    let mut js = String::with_capacity(32 + batch.iter().map(|b| b.0.len() + 1).sum::<usize>());
    js.push_str("window.__weftHost([");
    for (i, item) in batch.iter().enumerate() {
        if i > 0 {
            js.push(',');
        }
        js.push_str(&item.0);
    }
    js.push_str("]);");
    js
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use weft_proto::Topic;

    fn delivery(payload: &'static [u8]) -> weft_proto::frame::Delivery {
        let sender = Identity {
            app_id: "x".into(),
            instance_id: "x-1".into(),
        };
        let id = weft_proto::frame::MessageId { epoch: 0xe, seq: 1 };
        let topic = Topic::new("a.b").unwrap();
        weft_proto::frame::Delivery::published(id, 5, topic, sender, Bytes::from_static(payload))
    }

    #[test]
    fn batches_embed_json_verbatim() {
        let js = batch_script(&[
            ToPage::ok(1),
            ToPage::err(2, "InvalidTopic", "bad \"topic\"\u{2028}"),
            ToPage::message(3, &delivery(br#"{"px":[1,2]}"#)),
        ]);
        assert_eq!(
            js,
            concat!(
                r#"window.__weftHost([{"t":"res","id":1},"#,
                r#"{"t":"res","id":2,"err":{"code":"InvalidTopic","message":"bad \"topic\""#,
                "\u{2028}",
                r#""}},"#,
                r#"{"t":"msg","sub":3,"data":{"px":[1,2]},"meta":{"topic":"a.b","sender":{"appId":"x","instanceId":"x-1"},"id":"0000000e-1","ts":5}}]);"#
            )
        );
    }

    #[test]
    fn non_json_payloads_arrive_as_marked_text() {
        let js = batch_script(&[ToPage::message(1, &delivery(b"});alert(1);//"))]);
        assert!(js.contains(r#""data":"});alert(1);//""#), "{js}");
        assert!(js.contains(r#""raw":true"#), "{js}");
    }

    #[test]
    fn init_script_calls_the_bridge_with_the_identity_and_the_restored_state() {
        let me = Identity {
            app_id: "a".into(),
            instance_id: "a-1".into(),
        };
        let js = init_script(&me, None);
        // One function scope holds the FDC3 proxy bundle, then the bridge called with
        // the identity and the bundle.
        assert!(js.starts_with("(function () {\n"), "{}", &js[..40]);
        let fdc3 = js.find("var weftFdc3=").expect("the FDC3 bundle");
        let bridge = js.find("// Weft's page bridge").expect("the bridge");
        assert!(fdc3 < bridge);
        assert!(
            js.ends_with("({\"appId\":\"a\",\"instanceId\":\"a-1\"}, weftFdc3, null);\n})();"),
            "{}",
            &js[js.len() - 80..]
        );
        let js = init_script(&me, Some(r#"{"tab": 2}"#));
        assert!(js.ends_with(
            r#"weftFdc3, {"tab": 2});
})();"#
        ));
        // Not JSON (it would be code): left out.
        let js = init_script(&me, Some("alert(1)"));
        assert!(js.ends_with("weftFdc3, null);\n})();"));
    }
}
