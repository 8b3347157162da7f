//! The agent against the FDC3 2.2 specification's wording, one behaviour at a time.

use proptest::strategy::Strategy as _;
use serde_json::{Value, json};
use weft_appd::{Base, Directory, DirectorySource};
use weft_proto::Identity;

use super::*;

fn id(app: &str, instance: &str) -> Identity {
    Identity {
        app_id: app.into(),
        instance_id: instance.into(),
    }
}

fn request(kind: &str, payload: Value) -> Value {
    json!({
        "type": kind,
        "meta": {"requestUuid": envelope::new_uuid(), "timestamp": "2026-11-22T10:00:00Z"},
        "payload": payload,
    })
}

/// An agent knowing the apps `blotter` (with full metadata) and `chart`.
fn agent() -> Agent {
    let mut directory = Directory::default();
    let doc = json!({"applications": [
        {"appId": "blotter", "title": "Order Blotter", "type": "web", "name": "blotter",
         "version": "1.2", "tooltip": "Orders", "description": "All orders",
         "details": {"url": "https://apps.example.com/blotter"},
         "icons": [{"src": "https://apps.example.com/i.png", "size": "64x64", "type": "image/png"}],
         "screenshots": [{"src": "https://apps.example.com/s.png", "label": "Main"}],
         "interop": {"intents": {"listensFor": {"ViewOrders": {"contexts": ["fdc3.instrument"]}}}},
         "hostManifests": {"weft": {"restart": "never"}}},
        {"appId": "chart", "title": "Chart", "type": "web", "details": {"url": "https://apps.example.com/chart"}}
    ]});
    let url = url::Url::parse("https://appd.example.com/").unwrap();
    directory.add_document(
        &DirectorySource::Url(url.clone()),
        doc.to_string().as_bytes(),
        &Base::Url(&url),
    );
    assert!(directory.problems.is_empty(), "{:?}", directory.problems);
    let mut agent = Agent::new();
    agent.add_apps(directory.apps());
    agent
}

/// Sends a request; returns the payload of the response to the sender and what
/// everyone else got.
fn call(agent: &mut Agent, from: &Identity, kind: &str, payload: Value) -> (Value, Vec<Outbound>) {
    let message = request(kind, payload);
    let mut out = agent.handle(from, &message);
    assert!(!out.is_empty(), "{kind} got no response");
    let reply = out.remove(0);
    assert_eq!(&reply.to, from);
    assert_eq!(reply.message["type"], envelope::response_type(kind));
    assert_eq!(
        reply.message["meta"]["requestUuid"],
        message["meta"]["requestUuid"]
    );
    (reply.message["payload"].clone(), out)
}

fn ok(agent: &mut Agent, from: &Identity, kind: &str, payload: Value) -> Value {
    let (answer, _) = call(agent, from, kind, payload);
    assert!(answer.get("error").is_none(), "{kind}: {answer}");
    answer
}

fn error(agent: &mut Agent, from: &Identity, kind: &str, payload: Value) -> String {
    let (answer, _) = call(agent, from, kind, payload);
    answer["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{kind}: no error in {answer}"))
        .to_owned()
}

fn listen(
    agent: &mut Agent,
    from: &Identity,
    channel: Option<&str>,
    context_type: Option<&str>,
) -> String {
    let answer = ok(
        agent,
        from,
        "addContextListenerRequest",
        json!({"channelId": channel, "contextType": context_type}),
    );
    answer["listenerUUID"].as_str().unwrap().to_owned()
}

fn broadcast(agent: &mut Agent, from: &Identity, channel: &str, context: Value) -> Vec<Outbound> {
    let (answer, events) = call(
        agent,
        from,
        "broadcastRequest",
        json!({"channelId": channel, "context": context}),
    );
    assert!(answer.get("error").is_none(), "{answer}");
    events
}

fn instrument(ticker: &str) -> Value {
    json!({"type": "fdc3.instrument", "id": {"ticker": ticker}})
}

#[test]
fn get_info_names_the_standard_the_provider_and_the_caller() {
    let mut agent = agent();
    let me = id("blotter", "b-1");
    let info = ok(&mut agent, &me, "getInfoRequest", json!({}))["implementationMetadata"].clone();
    assert_eq!(info["fdc3Version"], "2.2");
    assert_eq!(info["provider"], "Weft");
    assert_eq!(info["optionalFeatures"]["OriginatingAppMetadata"], true);
    assert_eq!(info["optionalFeatures"]["UserChannelMembershipAPIs"], true);
    assert_eq!(info["optionalFeatures"]["DesktopAgentBridging"], false);
    assert_eq!(info["appMetadata"]["appId"], "blotter");
    assert_eq!(info["appMetadata"]["instanceId"], "b-1");
    assert_eq!(info["appMetadata"]["title"], "Order Blotter");
}

#[test]
fn the_eight_user_channels_can_be_joined_and_left() {
    let mut agent = agent();
    let me = id("chart", "c-1");
    let channels = ok(&mut agent, &me, "getUserChannelsRequest", json!({}))["userChannels"].clone();
    let channels = channels.as_array().unwrap();
    assert_eq!(channels.len(), 8);
    assert_eq!(channels[0]["id"], "fdc3.channel.1");
    assert_eq!(channels[0]["type"], "user");
    assert_eq!(channels[0]["displayMetadata"]["color"], "red");
    assert_eq!(channels[7]["displayMetadata"]["name"], "Channel 8");

    let current = ok(&mut agent, &me, "getCurrentChannelRequest", json!({}));
    assert_eq!(
        current["channel"],
        Value::Null,
        "explicitly null before joining"
    );
    ok(
        &mut agent,
        &me,
        "joinUserChannelRequest",
        json!({"channelId": "fdc3.channel.3"}),
    );
    let current = ok(&mut agent, &me, "getCurrentChannelRequest", json!({}));
    assert_eq!(current["channel"]["id"], "fdc3.channel.3");
    assert_eq!(current["channel"]["displayMetadata"]["color"], "yellow");
    ok(&mut agent, &me, "leaveCurrentChannelRequest", json!({}));
    assert_eq!(agent.user_channel_of("c-1"), None);

    assert_eq!(
        error(
            &mut agent,
            &me,
            "joinUserChannelRequest",
            json!({"channelId": "fdc3.channel.9"})
        ),
        "NoChannelFound"
    );
    ok(
        &mut agent,
        &me,
        "getOrCreateChannelRequest",
        json!({"channelId": "orders"}),
    );
    assert_eq!(
        error(
            &mut agent,
            &me,
            "joinUserChannelRequest",
            json!({"channelId": "orders"})
        ),
        "NoChannelFound",
        "an app channel is not a user channel"
    );
    assert_eq!(
        error(&mut agent, &me, "joinUserChannelRequest", json!({})),
        "MalformedMessage"
    );
}

#[test]
fn a_broadcast_reaches_each_other_listening_instance_once_and_never_its_sender() {
    let mut agent = agent();
    let (a, b, c, d) = (
        id("chart", "a"),
        id("blotter", "b"),
        id("chart", "c"),
        id("chart", "d"),
    );
    for who in [&a, &b, &c, &d] {
        ok(
            &mut agent,
            who,
            "joinUserChannelRequest",
            json!({"channelId": "fdc3.channel.1"}),
        );
    }
    // a: two listeners that both match; b (the sender) listens too; c wants another
    // type; d does not listen at all.
    listen(&mut agent, &a, Some("fdc3.channel.1"), None);
    listen(&mut agent, &a, None, Some("fdc3.instrument"));
    listen(&mut agent, &b, None, None);
    listen(&mut agent, &c, None, Some("fdc3.contact"));

    let events = broadcast(&mut agent, &b, "fdc3.channel.1", instrument("AAPL"));
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].to, a);
    let e = &events[0].message;
    assert_eq!(e["type"], "broadcastEvent");
    assert_eq!(e["payload"]["channelId"], "fdc3.channel.1");
    assert_eq!(e["payload"]["context"], instrument("AAPL"));
    assert_eq!(
        e["payload"]["originatingApp"],
        json!({"appId": "blotter", "instanceId": "b"})
    );
    assert!(e["meta"]["eventUuid"].is_string());

    let events = broadcast(
        &mut agent,
        &a,
        "fdc3.channel.1",
        json!({"type": "fdc3.contact"}),
    );
    let to: Vec<_> = events.iter().map(|o| o.to.instance_id.as_str()).collect();
    assert_eq!(to, ["b", "c"]);
    assert!(broadcast(&mut agent, &a, "fdc3.channel.2", instrument("X")).is_empty());
}

#[test]
fn user_channel_listeners_follow_the_channel_the_instance_joins() {
    let mut agent = agent();
    let (me, other) = (id("chart", "me"), id("blotter", "other"));
    listen(&mut agent, &me, None, None);
    assert!(
        broadcast(&mut agent, &other, "fdc3.channel.1", instrument("A")).is_empty(),
        "not joined: nothing"
    );
    ok(
        &mut agent,
        &me,
        "joinUserChannelRequest",
        json!({"channelId": "fdc3.channel.2"}),
    );
    assert!(broadcast(&mut agent, &other, "fdc3.channel.1", instrument("B")).is_empty());
    assert_eq!(
        broadcast(&mut agent, &other, "fdc3.channel.2", instrument("C")).len(),
        1
    );
    ok(
        &mut agent,
        &me,
        "joinUserChannelRequest",
        json!({"channelId": "fdc3.channel.1"}),
    );
    assert_eq!(
        broadcast(&mut agent, &other, "fdc3.channel.1", instrument("D")).len(),
        1
    );
    assert!(broadcast(&mut agent, &other, "fdc3.channel.2", instrument("E")).is_empty());
    ok(&mut agent, &me, "leaveCurrentChannelRequest", json!({}));
    assert!(broadcast(&mut agent, &other, "fdc3.channel.1", instrument("F")).is_empty());
}

#[test]
fn current_context_is_the_latest_of_a_type_or_of_all() {
    let mut agent = agent();
    let me = id("chart", "me");
    let ask = |agent: &mut Agent, t: Option<&str>| {
        ok(
            agent,
            &id("blotter", "asker"),
            "getCurrentContextRequest",
            json!({"channelId": "fdc3.channel.4", "contextType": t}),
        )["context"]
            .clone()
    };
    assert_eq!(ask(&mut agent, None), Value::Null, "nothing broadcast yet");
    broadcast(&mut agent, &me, "fdc3.channel.4", instrument("AAPL"));
    broadcast(
        &mut agent,
        &me,
        "fdc3.channel.4",
        json!({"type": "fdc3.contact", "name": "Jane"}),
    );
    broadcast(&mut agent, &me, "fdc3.channel.4", instrument("MSFT"));
    broadcast(
        &mut agent,
        &me,
        "fdc3.channel.4",
        json!({"type": "fdc3.contact", "name": "Joe"}),
    );
    assert_eq!(ask(&mut agent, None)["name"], "Joe");
    assert_eq!(ask(&mut agent, Some("fdc3.instrument")), instrument("MSFT"));
    assert_eq!(ask(&mut agent, Some("fdc3.order")), Value::Null);
    assert_eq!(
        error(
            &mut agent,
            &me,
            "getCurrentContextRequest",
            json!({"channelId": "nope", "contextType": null})
        ),
        "NoChannelFound"
    );
}

#[test]
fn app_channels_are_created_once_and_reach_only_their_listeners() {
    let mut agent = agent();
    let (a, b) = (id("chart", "a"), id("blotter", "b"));
    let channel = ok(
        &mut agent,
        &a,
        "getOrCreateChannelRequest",
        json!({"channelId": "orders"}),
    );
    assert_eq!(channel["channel"], json!({"id": "orders", "type": "app"}));
    ok(
        &mut agent,
        &b,
        "getOrCreateChannelRequest",
        json!({"channelId": "orders"}),
    );
    assert_eq!(
        error(
            &mut agent,
            &a,
            "getOrCreateChannelRequest",
            json!({"channelId": "fdc3.channel.1"})
        ),
        "AccessDenied"
    );
    assert_eq!(
        error(
            &mut agent,
            &a,
            "getOrCreateChannelRequest",
            json!({"channelId": " "})
        ),
        "CreationFailed"
    );
    ok(
        &mut agent,
        &a,
        "joinUserChannelRequest",
        json!({"channelId": "fdc3.channel.1"}),
    );
    listen(&mut agent, &a, None, None);
    assert!(
        broadcast(&mut agent, &b, "orders", instrument("X")).is_empty(),
        "a user-channel listener hears nothing of an app channel"
    );
    listen(&mut agent, &a, Some("orders"), Some("fdc3.instrument"));
    let events = broadcast(&mut agent, &b, "orders", instrument("Y"));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].message["payload"]["channelId"], "orders");
    assert_eq!(
        error(
            &mut agent,
            &a,
            "addContextListenerRequest",
            json!({"channelId": "unknown", "contextType": null})
        ),
        "NoChannelFound"
    );
}

#[test]
fn bad_requests_get_the_standard_error_and_change_nothing() {
    let mut agent = agent();
    let me = id("chart", "me");
    for (payload, expected) in [
        (
            json!({"channelId": "fdc3.channel.1", "context": {"id": {}}}),
            "MalformedContext",
        ),
        (
            json!({"channelId": "fdc3.channel.1", "context": "text"}),
            "MalformedContext",
        ),
        (json!({"channelId": "fdc3.channel.1"}), "MalformedContext"),
        (
            json!({"channelId": "nowhere", "context": instrument("A")}),
            "NoChannelFound",
        ),
        (json!({"context": instrument("A")}), "MalformedMessage"),
    ] {
        assert_eq!(
            error(&mut agent, &me, "broadcastRequest", payload.clone()),
            expected,
            "{payload}"
        );
    }
    let current = ok(
        &mut agent,
        &me,
        "getCurrentContextRequest",
        json!({"channelId": "fdc3.channel.1", "contextType": null}),
    );
    assert_eq!(current["context"], Value::Null, "nothing was stored");
    assert_eq!(
        error(&mut agent, &me, "noSuchRequest", json!({})),
        "MalformedMessage"
    );
    assert_eq!(
        error(
            &mut agent,
            &me,
            "addContextListenerRequest",
            json!({"channelId": 5})
        ),
        "MalformedMessage"
    );
    for junk in [
        json!(null),
        json!([1, 2]),
        json!({"type": 7}),
        json!({"type": "x", "payload": []}),
    ] {
        assert!(agent.handle(&me, &junk).is_empty(), "{junk}");
    }
}

#[test]
fn listeners_belong_to_their_instance() {
    let mut agent = agent();
    let (a, b) = (id("chart", "a"), id("blotter", "b"));
    ok(
        &mut agent,
        &a,
        "joinUserChannelRequest",
        json!({"channelId": "fdc3.channel.1"}),
    );
    let mine = listen(&mut agent, &a, None, None);
    ok(
        &mut agent,
        &b,
        "contextListenerUnsubscribeRequest",
        json!({"listenerUUID": mine}),
    );
    assert_eq!(
        broadcast(&mut agent, &b, "fdc3.channel.1", instrument("A")).len(),
        1,
        "another instance cannot remove it"
    );
    ok(
        &mut agent,
        &a,
        "contextListenerUnsubscribeRequest",
        json!({"listenerUUID": mine}),
    );
    assert!(broadcast(&mut agent, &b, "fdc3.channel.1", instrument("B")).is_empty());

    listen(&mut agent, &a, None, None);
    agent.instance_gone("a");
    assert!(broadcast(&mut agent, &b, "fdc3.channel.1", instrument("C")).is_empty());
    assert_eq!(agent.instances().count(), 1);

    listen(&mut agent, &a, None, None);
    ok(
        &mut agent,
        &a,
        "joinUserChannelRequest",
        json!({"channelId": "fdc3.channel.1"}),
    );
    assert!(
        agent
            .handle(
                &a,
                &json!({"type": "WCP6Goodbye", "meta": {"timestamp": "2026-11-22T10:00:00Z"}})
            )
            .is_empty()
    );
    assert!(broadcast(&mut agent, &b, "fdc3.channel.1", instrument("D")).is_empty());
}

#[test]
fn the_source_in_a_message_is_never_believed() {
    let mut agent = agent();
    let (listener, real) = (id("chart", "l"), id("chart", "real"));
    ok(
        &mut agent,
        &listener,
        "joinUserChannelRequest",
        json!({"channelId": "fdc3.channel.1"}),
    );
    listen(&mut agent, &listener, None, None);
    let mut forged = request(
        "broadcastRequest",
        json!({"channelId": "fdc3.channel.1", "context": instrument("A")}),
    );
    forged["meta"]["source"] = json!({"appId": "blotter", "instanceId": "b-1"});
    let out = agent.handle(&real, &forged);
    let event = out.iter().find(|o| o.to == listener).unwrap();
    assert_eq!(
        event.message["payload"]["originatingApp"],
        json!({"appId": "chart", "instanceId": "real"})
    );
    let info = ok(&mut agent, &real, "getInfoRequest", json!({}));
    assert_eq!(
        info["implementationMetadata"]["appMetadata"]["appId"],
        "chart"
    );
}

#[test]
fn instances_and_metadata_of_apps() {
    let mut agent = agent();
    let asker = id("chart", "asker");
    let found = ok(
        &mut agent,
        &asker,
        "findInstancesRequest",
        json!({"app": {"appId": "blotter"}}),
    );
    assert_eq!(found["appIdentifiers"], json!([]));
    agent.instance_started(&id("blotter", "b-1"), "Order Blotter");
    agent.instance_started(&id("blotter", "b-2"), "Order Blotter");
    let found = ok(
        &mut agent,
        &asker,
        "findInstancesRequest",
        json!({"app": {"appId": "blotter"}}),
    );
    assert_eq!(
        found["appIdentifiers"],
        json!([{"appId": "blotter", "instanceId": "b-1"}, {"appId": "blotter", "instanceId": "b-2"}])
    );
    assert_eq!(
        error(
            &mut agent,
            &asker,
            "findInstancesRequest",
            json!({"app": {"appId": "nope"}})
        ),
        "NoAppsFound"
    );

    let meta = ok(
        &mut agent,
        &asker,
        "getAppMetadataRequest",
        json!({"app": {"appId": "blotter"}}),
    )["appMetadata"]
        .clone();
    let mut keys: Vec<&str> = meta
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "appId",
            "description",
            "icons",
            "name",
            "screenshots",
            "title",
            "tooltip",
            "version"
        ],
        "only the keys AppMetadata allows"
    );
    assert_eq!(
        meta["icons"][0],
        json!({"src": "https://apps.example.com/i.png", "size": "64x64", "type": "image/png"})
    );
    let meta = ok(
        &mut agent,
        &asker,
        "getAppMetadataRequest",
        json!({"app": {"appId": "blotter", "instanceId": "b-2"}}),
    );
    assert_eq!(meta["appMetadata"]["instanceId"], "b-2");
    assert_eq!(
        error(
            &mut agent,
            &asker,
            "getAppMetadataRequest",
            json!({"app": {"appId": "nope"}})
        ),
        "TargetAppUnavailable"
    );
    assert_eq!(
        error(
            &mut agent,
            &asker,
            "getAppMetadataRequest",
            json!({"app": {"appId": "blotter", "instanceId": "c-9"}})
        ),
        "TargetInstanceUnavailable"
    );
    // An app from a workspace, in no directory: known by its running instances.
    agent.instance_started(&id("ledger", "l-1"), "Ledger");
    let meta = ok(
        &mut agent,
        &asker,
        "getAppMetadataRequest",
        json!({"app": {"appId": "ledger"}}),
    );
    assert_eq!(
        meta["appMetadata"],
        json!({"appId": "ledger", "title": "Ledger"})
    );
}

proptest::proptest! {
    /// Whatever a page sends, the agent answers or drops it, and never panics.
    #[test]
    fn any_message_is_answered_or_dropped(
        kind in proptest::sample::select(vec![
            "broadcastRequest", "addContextListenerRequest", "getCurrentContextRequest",
            "joinUserChannelRequest", "getOrCreateChannelRequest", "findInstancesRequest",
            "getAppMetadataRequest", "contextListenerUnsubscribeRequest", "getInfoRequest",
            "addEventListenerRequest", "eventListenerUnsubscribeRequest", "other",
        ]),
        keys in proptest::collection::vec(
            proptest::sample::select(vec!["channelId", "contextType", "context", "app", "listenerUUID", "type"]),
            0..4,
        ),
        values in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::strategy::Just(json!(null)),
                proptest::strategy::Just(json!("fdc3.channel.1")),
                proptest::strategy::Just(json!({"type": "fdc3.instrument"})),
                proptest::strategy::Just(json!({"appId": "chart"})),
                proptest::strategy::Just(json!([1])),
                "\\PC{0,8}".prop_map(Value::from),
                proptest::num::i64::ANY.prop_map(Value::from),
            ],
            4,
        ),
    ) {
        let mut agent = agent();
        let me = id("chart", "me");
        let payload: serde_json::Map<String, Value> = keys
            .iter()
            .zip(values.iter())
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let out = agent.handle(&me, &request(kind, Value::Object(payload)));
        proptest::prop_assert!(!out.is_empty());
        proptest::prop_assert_eq!(&out[0].to, &me);
    }
}
