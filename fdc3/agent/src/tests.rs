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
        {"appId": "chart", "title": "Chart", "type": "web", "details": {"url": "https://apps.example.com/chart"},
         "interop": {"intents": {"listensFor": {
             "ViewChart": {"displayName": "View Chart", "contexts": ["fdc3.instrument"]}}}}},
        {"appId": "trader", "title": "Trader", "type": "web", "details": {"url": "https://apps.example.com/trader"},
         "interop": {"intents": {"listensFor": {
             "StartChat": {"contexts": ["fdc3.contact"]},
             "CreateOrder": {"contexts": ["fdc3.instrument"], "resultType": "channel<fdc3.order>"}}}}},
        {"appId": "pricer", "title": "Pricer", "type": "web", "details": {"url": "https://apps.example.com/pricer"},
         "interop": {"intents": {"listensFor": {
             "GetPrice": {"contexts": ["fdc3.instrument"], "resultType": "fdc3.valuation"},
             "ViewChart": {"contexts": []}}}}}
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
fn the_user_picks_a_channel_for_an_app_and_its_page_and_host_hear_of_it() {
    let mut agent = agent();
    let (me, other) = (id("chart", "me"), id("blotter", "other"));
    listen(&mut agent, &me, None, None);
    // The host asks for the selector: a question for the shell, nothing sent.
    let out = agent.handle(
        &me,
        &json!({"type": weft_proto::FDC3_CHOOSE_CHANNEL_TYPE, "meta": {}}),
    );
    assert!(out.is_empty());
    assert_eq!(
        agent.take_channel_questions(),
        [ChannelQuestion {
            instance: me.clone(),
            current: None
        }]
    );
    let out = agent.select_user_channel("me", Some("fdc3.channel.5"));
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|o| o.to == me));
    assert_eq!(out[0].message["type"], "channelChangedEvent");
    assert_eq!(
        out[0].message["payload"],
        json!({"newChannelId": "fdc3.channel.5"})
    );
    assert_eq!(out[1].message["type"], weft_proto::FDC3_HOST_CHANNEL_TYPE);
    assert_eq!(
        out[1].message["payload"]["channel"]["displayMetadata"]["color"],
        "cyan"
    );
    assert_eq!(agent.user_channel_of("me"), Some("fdc3.channel.5"));
    assert_eq!(
        broadcast(&mut agent, &other, "fdc3.channel.5", instrument("A")).len(),
        1
    );
    assert!(
        agent.select_user_channel("me", Some("orders")).is_empty(),
        "not a user channel"
    );
    assert_eq!(agent.user_channel_of("me"), Some("fdc3.channel.5"));
    let out = agent.select_user_channel("me", None);
    assert_eq!(out[0].message["payload"], json!({"newChannelId": null}));
    assert_eq!(
        out[1].message["payload"],
        json!({"channel": null, "rgb": null})
    );

    // The app's own join: only its host is told (the proxy moved its listeners).
    let (_, out) = call(
        &mut agent,
        &me,
        "joinUserChannelRequest",
        json!({"channelId": "fdc3.channel.2"}),
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].message["type"], weft_proto::FDC3_HOST_CHANNEL_TYPE);
    assert_eq!(out[0].message["payload"]["channel"]["id"], "fdc3.channel.2");
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

/// The apps in an AppIntent: `appId` or `appId/instanceId`.
fn apps_of(app_intent: &Value) -> Vec<String> {
    app_intent["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| match a["instanceId"].as_str() {
            Some(i) => format!("{}/{i}", a["appId"].as_str().unwrap()),
            None => a["appId"].as_str().unwrap().to_owned(),
        })
        .collect()
}

fn find(agent: &mut Agent, payload: Value) -> Result<Vec<String>, String> {
    let (answer, _) = call(agent, &id("chart", "asker"), "findIntentRequest", payload);
    match answer["error"].as_str() {
        Some(e) => Err(e.to_owned()),
        None => Ok(apps_of(&answer["appIntent"])),
    }
}

fn listen_for(agent: &mut Agent, who: &Identity, intent: &str) {
    ok(
        agent,
        who,
        "addIntentListenerRequest",
        json!({"intent": intent}),
    );
}

#[test]
fn find_intent_filters_by_context_and_result_type_and_prefers_running_listeners() {
    let mut agent = agent();
    let chart = find(
        &mut agent,
        json!({"intent": "ViewChart", "context": instrument("A")}),
    )
    .unwrap();
    assert_eq!(chart, ["chart", "pricer"]);
    let (answer, _) = call(
        &mut agent,
        &id("chart", "asker"),
        "findIntentRequest",
        json!({"intent": "ViewChart"}),
    );
    assert_eq!(
        answer["appIntent"]["intent"],
        json!({"name": "ViewChart", "displayName": "View Chart"})
    );
    assert_eq!(
        find(
            &mut agent,
            json!({"intent": "ViewChart", "context": {"type": "fdc3.contact"}})
        )
        .unwrap(),
        ["pricer"],
        "a record listing no contexts accepts any"
    );
    for (intent, result_type, expected) in [
        ("CreateOrder", "channel", Ok(vec!["trader".to_owned()])),
        (
            "CreateOrder",
            "channel<fdc3.order>",
            Ok(vec!["trader".to_owned()]),
        ),
        (
            "CreateOrder",
            "channel<fdc3.trade>",
            Err("NoAppsFound".to_owned()),
        ),
        ("GetPrice", "fdc3.valuation", Ok(vec!["pricer".to_owned()])),
        ("GetPrice", "channel", Err("NoAppsFound".to_owned())),
        ("ViewChart", "fdc3.valuation", Err("NoAppsFound".to_owned())),
    ] {
        assert_eq!(
            find(
                &mut agent,
                json!({"intent": intent, "resultType": result_type})
            ),
            expected,
            "{intent} {result_type}"
        );
    }
    let (answer, _) = call(
        &mut agent,
        &id("chart", "asker"),
        "findIntentRequest",
        json!({"intent": "GetPrice"}),
    );
    assert_eq!(
        answer["appIntent"]["apps"][0]["resultType"],
        "fdc3.valuation"
    );

    // A running chart listening: offered instead of launching another chart.
    listen_for(&mut agent, &id("chart", "c-1"), "ViewChart");
    assert_eq!(
        find(
            &mut agent,
            json!({"intent": "ViewChart", "context": instrument("A")})
        )
        .unwrap(),
        ["chart/c-1", "pricer"]
    );
    // An app in no directory is taken at its word, with no known result type.
    listen_for(&mut agent, &id("ledger", "l-1"), "Audit");
    assert_eq!(
        find(&mut agent, json!({"intent": "Audit"})).unwrap(),
        ["ledger/l-1"]
    );
    assert_eq!(
        find(
            &mut agent,
            json!({"intent": "Audit", "resultType": "fdc3.audit"})
        ),
        Err("NoAppsFound".into())
    );
    assert_eq!(
        find(&mut agent, json!({"intent": "Nothing"})),
        Err("NoAppsFound".into())
    );
    assert_eq!(
        find(
            &mut agent,
            json!({"intent": "ViewChart", "context": {"id": 1}})
        ),
        Err("MalformedContext".into())
    );
    assert_eq!(
        find(
            &mut agent,
            json!({"intent": "ViewChart", "resultType": "channel<>"})
        ),
        Err("MalformedMessage".into())
    );
}

#[test]
fn find_intents_by_context_lists_every_intent_that_takes_it() {
    let mut agent = agent();
    let me = id("chart", "me");
    let names = |answer: &Value| -> Vec<String> {
        answer["appIntents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["intent"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = ok(
        &mut agent,
        &me,
        "findIntentsByContextRequest",
        json!({"context": instrument("A")}),
    );
    assert_eq!(
        names(&all),
        ["CreateOrder", "GetPrice", "ViewChart", "ViewOrders"]
    );
    let priced = ok(
        &mut agent,
        &me,
        "findIntentsByContextRequest",
        json!({"context": instrument("A"), "resultType": "fdc3.valuation"}),
    );
    assert_eq!(names(&priced), ["GetPrice"]);
    let odd = ok(
        &mut agent,
        &me,
        "findIntentsByContextRequest",
        json!({"context": {"type": "x.odd"}}),
    );
    assert_eq!(names(&odd), ["ViewChart"]);
    assert_eq!(apps_of(&odd["appIntents"][0]), ["pricer"]);
    assert_eq!(
        error(
            &mut agent,
            &me,
            "findIntentsByContextRequest",
            json!({"context": {"type": "x.odd"}, "resultType": "channel"})
        ),
        "NoAppsFound"
    );
    assert_eq!(
        error(&mut agent, &me, "findIntentsByContextRequest", json!({})),
        "MalformedContext"
    );
}

/// The one message of `kind` in `out`, and who it is for.
fn only<'a>(out: &'a [Outbound], kind: &str) -> &'a Outbound {
    let found: Vec<&Outbound> = out.iter().filter(|o| o.message["type"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} in {out:?}");
    found[0]
}

#[test]
fn a_raised_intent_reaches_its_handler_and_the_result_only_its_raiser() {
    let mut agent = agent();
    let (raiser, handler, other) = (id("chart", "r"), id("blotter", "b-1"), id("chart", "o"));
    listen_for(&mut agent, &handler, "ViewOrders");
    let raise = request(
        "raiseIntentRequest",
        json!({"intent": "ViewOrders", "context": instrument("AAPL")}),
    );
    let out = agent.handle(&raiser, &raise);
    assert_eq!(out[0].to, raiser);
    assert_eq!(out[0].message["type"], "raiseIntentResponse");
    assert_eq!(
        out[0].message["payload"]["intentResolution"],
        json!({"intent": "ViewOrders", "source": {"appId": "blotter", "instanceId": "b-1"}})
    );
    let delivered = only(&out, "intentEvent");
    assert_eq!(delivered.to, handler);
    let p = &delivered.message["payload"];
    assert_eq!(p["intent"], "ViewOrders");
    assert_eq!(p["context"], instrument("AAPL"));
    assert_eq!(
        p["originatingApp"],
        json!({"appId": "chart", "instanceId": "r"})
    );
    let delivery = p["raiseIntentRequestUuid"].as_str().unwrap().to_owned();
    assert_ne!(
        delivery, raise["meta"]["requestUuid"],
        "the agent's own id for the delivery"
    );

    let result = json!({"intentEventUuid": "e", "raiseIntentRequestUuid": delivery,
                        "intentResult": {"context": {"type": "fdc3.valuation", "price": 1.5}}});
    assert_eq!(
        error(&mut agent, &other, "intentResultRequest", result.clone()),
        "MalformedMessage",
        "only the handler may answer"
    );
    let (answer, out) = call(&mut agent, &handler, "intentResultRequest", result.clone());
    assert_eq!(answer, json!({}));
    let to_raiser = only(&out, "raiseIntentResultResponse");
    assert_eq!(to_raiser.to, raiser);
    assert_eq!(
        to_raiser.message["meta"]["requestUuid"],
        raise["meta"]["requestUuid"]
    );
    assert_eq!(
        to_raiser.message["payload"]["intentResult"]["context"]["price"],
        1.5
    );
    assert_eq!(
        error(&mut agent, &handler, "intentResultRequest", result),
        "MalformedMessage",
        "one result per delivery"
    );

    // A void result; a handler that goes before answering.
    for (finish, expected) in [
        ("void", json!({"intentResult": {}})),
        ("gone", json!({"error": "NoResultReturned"})),
    ] {
        let out = agent.handle(
            &raiser,
            &request(
                "raiseIntentRequest",
                json!({"intent": "ViewOrders", "context": instrument("B")}),
            ),
        );
        let delivery =
            only(&out, "intentEvent").message["payload"]["raiseIntentRequestUuid"].clone();
        let out = if finish == "void" {
            call(
                &mut agent,
                &handler,
                "intentResultRequest",
                json!({"intentEventUuid": "e", "raiseIntentRequestUuid": delivery, "intentResult": {}}),
            )
            .1
        } else {
            agent.instance_gone("b-1")
        };
        assert_eq!(
            only(&out, "raiseIntentResultResponse").message["payload"],
            expected,
            "{finish}"
        );
    }
}

#[test]
fn raising_an_intent_resolves_its_target_or_says_why_not() {
    let mut agent = agent();
    let raiser = id("blotter", "r");
    let raise =
        |agent: &mut Agent, payload: Value| call(agent, &raiser, "raiseIntentRequest", payload);
    let err = |agent: &mut Agent, payload: Value| {
        raise(agent, payload).0["error"]
            .as_str()
            .unwrap_or("none")
            .to_owned()
    };
    assert_eq!(
        err(
            &mut agent,
            json!({"intent": "ViewChart", "context": instrument("A")})
        ),
        "ResolverUnavailable",
        "chart and pricer both can: the user would choose"
    );
    assert_eq!(
        err(
            &mut agent,
            json!({"intent": "Nothing", "context": instrument("A")})
        ),
        "NoAppsFound"
    );
    assert_eq!(
        err(
            &mut agent,
            json!({"intent": "ViewChart", "context": {"x": 1}})
        ),
        "MalformedContext"
    );
    assert_eq!(
        err(
            &mut agent,
            json!({"intent": "ViewChart", "context": instrument("A"), "app": {"appId": "nope"}})
        ),
        "TargetAppUnavailable"
    );
    assert_eq!(
        err(
            &mut agent,
            json!({"intent": "ViewChart", "context": instrument("A"), "app": {"appId": "chart", "instanceId": "c-0"}})
        ),
        "TargetInstanceUnavailable"
    );
    assert_eq!(
        err(
            &mut agent,
            json!({"intent": "ViewChart", "context": instrument("A"), "app": {"appId": "trader"}})
        ),
        "NoAppsFound"
    );

    // Targeting chart, which is not running: it is launched, and the intent waits for
    // the new instance's listener.
    let message = request(
        "raiseIntentRequest",
        json!({"intent": "ViewChart", "context": instrument("A"), "app": {"appId": "chart"}}),
    );
    assert!(
        agent.handle(&raiser, &message).is_empty(),
        "answered once delivered"
    );
    let launches = agent.take_launches();
    assert_eq!(launches.len(), 1);
    assert_eq!(launches[0].app.app_id, "chart");
    let new = id("chart", "c-9");
    assert!(agent.launched(launches[0].id, Ok(new.clone())).is_empty());
    let (_, out) = call(
        &mut agent,
        &new,
        "addIntentListenerRequest",
        json!({"intent": "ViewChart"}),
    );
    assert_eq!(only(&out, "intentEvent").to, new);
    let answer = only(&out, "raiseIntentResponse");
    assert_eq!(answer.to, raiser);
    assert_eq!(
        answer.message["meta"]["requestUuid"],
        message["meta"]["requestUuid"]
    );
    assert_eq!(
        answer.message["payload"]["intentResolution"]["source"]["instanceId"],
        "c-9"
    );

    // A launch that fails, and one whose app never listens.
    for outcome in ["fails", "never listens"] {
        agent.handle(
            &raiser,
            &request(
                "raiseIntentRequest",
                json!({"intent": "GetPrice", "context": instrument("A")}),
            ),
        );
        let launch = agent.take_launches().pop().unwrap();
        assert_eq!(launch.app.app_id, "pricer");
        let out = if outcome == "fails" {
            agent.launched(launch.id, Err("no such binary".into()))
        } else {
            assert!(
                agent
                    .launched(launch.id, Ok(id("pricer", "p-1")))
                    .is_empty()
            );
            assert!(agent.tick(std::time::Instant::now()).is_empty(), "not yet");
            agent.tick(std::time::Instant::now() + INTENT_DELIVERY_TIMEOUT)
        };
        let failed = only(&out, "raiseIntentResponse");
        assert_eq!(failed.to, raiser);
        assert_eq!(
            failed.message["payload"]["error"], "IntentDeliveryFailed",
            "{outcome}"
        );
    }
}

#[test]
fn with_several_handlers_the_user_chooses_and_may_have_the_choice_remembered() {
    let mut agent = agent();
    agent.set_resolver_available(true);
    let raiser = id("blotter", "r");
    let raise = |agent: &mut Agent| {
        let message = request(
            "raiseIntentRequest",
            json!({"intent": "ViewChart", "context": instrument("A")}),
        );
        let out = agent.handle(&raiser, &message);
        (message, out)
    };

    // Cancelled.
    let (message, out) = raise(&mut agent);
    assert!(out.is_empty(), "answered once the user chose");
    let asked = agent.take_resolve_requests();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].requester, raiser);
    assert_eq!(asked[0].context_type, "fdc3.instrument");
    let titles: Vec<(&str, &str)> = asked[0]
        .options
        .iter()
        .map(|o| (o.app_id.as_str(), o.title.as_str()))
        .collect();
    assert_eq!(titles, [("chart", "Chart"), ("pricer", "Pricer")]);
    let out = agent.resolved(asked[0].id, None);
    let answer = only(&out, "raiseIntentResponse");
    assert_eq!(
        answer.message["meta"]["requestUuid"],
        message["meta"]["requestUuid"]
    );
    assert_eq!(
        answer.message["payload"]["error"],
        "UserCancelledResolution"
    );

    // Unanswered.
    raise(&mut agent);
    agent.take_resolve_requests();
    let out = agent.tick(std::time::Instant::now() + RESOLVER_TIMEOUT);
    assert_eq!(
        only(&out, "raiseIntentResponse").message["payload"]["error"],
        "ResolverTimeout"
    );

    // Chosen and remembered: pricer is launched, and the next time nobody is asked.
    raise(&mut agent);
    let asked = agent.take_resolve_requests().pop().unwrap();
    assert!(
        agent.resolved(asked.id, Some((1, true))).is_empty(),
        "pricer is launched first"
    );
    assert_eq!(agent.take_launches().pop().unwrap().app.app_id, "pricer");
    assert_eq!(
        agent.remembered_choices().collect::<Vec<_>>(),
        [("ViewChart", "fdc3.instrument", "pricer")]
    );
    raise(&mut agent);
    assert!(agent.take_resolve_requests().is_empty());
    assert_eq!(agent.take_launches().pop().unwrap().app.app_id, "pricer");
    // A running pricer listening is the remembered app's handler then.
    listen_for(&mut agent, &id("pricer", "p-1"), "ViewChart");
    let (_, out) = raise(&mut agent);
    assert_eq!(only(&out, "intentEvent").to, id("pricer", "p-1"));

    agent.forget_choice("ViewChart", "fdc3.instrument");
    raise(&mut agent);
    assert_eq!(
        agent.take_resolve_requests().len(),
        1,
        "asked again once forgotten"
    );
    // The raiser goes while the user chooses: there is nobody to answer.
    agent.instance_gone("r");
    assert!(
        agent
            .tick(std::time::Instant::now() + RESOLVER_TIMEOUT)
            .is_empty()
    );
}

#[test]
fn raise_intent_for_context_picks_among_every_intent_for_it() {
    let mut agent = agent();
    let raiser = id("blotter", "r");
    let contact = json!({"type": "fdc3.contact", "name": "Jane"});
    assert_eq!(
        error(
            &mut agent,
            &raiser,
            "raiseIntentForContextRequest",
            json!({"context": contact})
        ),
        "ResolverUnavailable",
        "StartChat (trader) and ViewChart (pricer)"
    );
    let message = request(
        "raiseIntentForContextRequest",
        json!({"context": contact, "app": {"appId": "trader"}}),
    );
    assert!(agent.handle(&raiser, &message).is_empty());
    let launch = agent.take_launches().pop().unwrap();
    assert_eq!(launch.app.app_id, "trader");
    let trader = id("trader", "t-1");
    agent.launched(launch.id, Ok(trader.clone()));
    let (_, out) = call(
        &mut agent,
        &trader,
        "addIntentListenerRequest",
        json!({"intent": "StartChat"}),
    );
    let answer = only(&out, "raiseIntentForContextResponse");
    assert_eq!(
        answer.message["payload"]["intentResolution"]["intent"],
        "StartChat"
    );
    assert_eq!(
        only(&out, "intentEvent").message["payload"]["context"],
        contact
    );
}

#[test]
fn open_launches_a_new_instance_and_hands_it_the_context() {
    let mut agent = agent();
    let opener = id("blotter", "o");
    let open = |agent: &mut Agent, payload: Value| {
        let message = request("openRequest", payload);
        let out = agent.handle(&opener, &message);
        (message, out)
    };
    let (message, out) = open(&mut agent, json!({"app": {"appId": "chart"}}));
    assert!(out.is_empty());
    let launch = agent.take_launches().pop().unwrap();
    let out = agent.launched(launch.id, Ok(id("chart", "c-2")));
    let answer = only(&out, "openResponse");
    assert_eq!(answer.to, opener);
    assert_eq!(
        answer.message["meta"]["requestUuid"],
        message["meta"]["requestUuid"]
    );
    assert_eq!(
        answer.message["payload"]["appIdentifier"],
        json!({"appId": "chart", "instanceId": "c-2"})
    );

    let (_, out) = open(
        &mut agent,
        json!({"app": {"appId": "chart"}, "context": instrument("MSFT")}),
    );
    assert!(out.is_empty());
    let launch = agent.take_launches().pop().unwrap();
    let new = id("chart", "c-3");
    assert!(
        agent.launched(launch.id, Ok(new.clone())).is_empty(),
        "waits for its listener"
    );
    let (_, out) = call(
        &mut agent,
        &new,
        "addContextListenerRequest",
        json!({"channelId": null, "contextType": "fdc3.contact"}),
    );
    assert!(out.is_empty(), "a listener for another type does not count");
    let (_, out) = call(
        &mut agent,
        &new,
        "addContextListenerRequest",
        json!({"channelId": null, "contextType": "fdc3.instrument"}),
    );
    let handed = only(&out, "broadcastEvent");
    assert_eq!(handed.to, new);
    assert_eq!(handed.message["payload"]["channelId"], Value::Null);
    assert_eq!(handed.message["payload"]["context"], instrument("MSFT"));
    assert_eq!(only(&out, "openResponse").to, opener);

    assert_eq!(
        error(
            &mut agent,
            &opener,
            "openRequest",
            json!({"app": {"appId": "nope"}})
        ),
        "AppNotFound"
    );
    assert_eq!(
        error(
            &mut agent,
            &opener,
            "openRequest",
            json!({"app": {"appId": "chart"}, "context": 5})
        ),
        "MalformedContext"
    );
    assert!(
        agent.take_launches().is_empty(),
        "nothing launched for refused requests"
    );

    // With no chart running any more, open starts one again.
    agent.instance_gone("c-3");
    open(
        &mut agent,
        json!({"app": {"appId": "chart"}, "context": instrument("X")}),
    );
    let launch = agent.take_launches().pop().unwrap();
    agent.launched(launch.id, Ok(id("chart", "c-4")));
    let out = agent.tick(std::time::Instant::now() + OPEN_TIMEOUT);
    assert_eq!(
        only(&out, "openResponse").message["payload"]["error"],
        "AppTimeout"
    );
    open(&mut agent, json!({"app": {"appId": "chart"}}));
    let launch = agent.take_launches().pop().unwrap();
    let out = agent.launched(launch.id, Err("spawn failed".into()));
    assert_eq!(
        only(&out, "openResponse").message["payload"]["error"],
        "ErrorOnLaunch"
    );
}

#[test]
fn open_of_a_running_app_brings_it_to_front_instead_of_starting_another() {
    let mut agent = agent();
    let opener = id("blotter", "o");
    let (first, second) = (id("chart", "c-1"), id("chart", "c-2"));
    agent.instance_started(&first, "Chart");
    agent.instance_started(&second, "Chart");
    agent.take_raises();

    let out = agent.handle(
        &opener,
        &request("openRequest", json!({"app": {"appId": "chart"}})),
    );
    let answer = only(&out, "openResponse");
    assert_eq!(answer.to, opener);
    assert_eq!(
        answer.message["payload"]["appIdentifier"],
        json!({"appId": "chart", "instanceId": "c-1"})
    );
    assert!(agent.take_launches().is_empty(), "nothing new is started");
    assert_eq!(agent.take_raises(), std::slice::from_ref(&first));

    // The instance named is the one brought forward; with a context, the answer waits
    // for its listener, as for a new instance.
    let out = agent.handle(
        &opener,
        &request(
            "openRequest",
            json!({"app": {"appId": "chart", "instanceId": "c-2"}, "context": instrument("IBM")}),
        ),
    );
    assert!(out.is_empty(), "waits for the context listener: {out:?}");
    assert_eq!(agent.take_raises(), std::slice::from_ref(&second));
    let (_, out) = call(
        &mut agent,
        &second,
        "addContextListenerRequest",
        json!({"channelId": null, "contextType": "fdc3.instrument"}),
    );
    assert_eq!(only(&out, "broadcastEvent").to, second);
    assert_eq!(
        only(&out, "openResponse").message["payload"]["appIdentifier"]["instanceId"],
        "c-2"
    );

    // An instance of another app is not taken for this one.
    let out = agent.handle(
        &opener,
        &request(
            "openRequest",
            json!({"app": {"appId": "blotter", "instanceId": "c-1"}}),
        ),
    );
    assert!(out.is_empty());
    assert_eq!(agent.take_launches().len(), 1, "a new blotter is started");
    assert!(agent.take_raises().is_empty());
}

#[test]
fn an_intent_brings_its_target_to_front() {
    let mut agent = agent();
    let (raiser, trader) = (id("blotter", "r"), id("trader", "t"));
    listen_for(&mut agent, &trader, "CreateOrder");
    agent.take_raises();
    let out = agent.handle(
        &raiser,
        &request(
            "raiseIntentRequest",
            json!({"intent": "CreateOrder", "context": instrument("A")}),
        ),
    );
    assert_eq!(only(&out, "intentEvent").to, trader);
    assert_eq!(agent.take_raises(), [trader]);
}

#[test]
fn a_private_channel_is_for_its_participants_who_hear_each_other_come_and_go() {
    let mut agent = agent();
    let (raiser, trader, stranger) = (id("blotter", "r"), id("trader", "t"), id("chart", "s"));
    listen_for(&mut agent, &trader, "CreateOrder");
    let out = agent.handle(
        &raiser,
        &request(
            "raiseIntentRequest",
            json!({"intent": "CreateOrder", "context": instrument("A")}),
        ),
    );
    let delivery = only(&out, "intentEvent").message["payload"]["raiseIntentRequestUuid"].clone();
    let created = ok(
        &mut agent,
        &trader,
        "createPrivateChannelRequest",
        json!({}),
    );
    let channel = created["privateChannel"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["privateChannel"]["type"], "private");
    assert_eq!(
        error(
            &mut agent,
            &raiser,
            "addContextListenerRequest",
            json!({"channelId": channel, "contextType": null})
        ),
        "AccessDenied",
        "not a participant yet"
    );
    let (_, out) = call(
        &mut agent,
        &trader,
        "intentResultRequest",
        json!({"intentEventUuid": "e", "raiseIntentRequestUuid": delivery,
               "intentResult": {"channel": {"id": channel, "type": "private"}}}),
    );
    let result = only(&out, "raiseIntentResultResponse");
    assert_eq!(
        result.message["payload"]["intentResult"]["channel"],
        json!({"id": channel, "type": "private"})
    );

    // The raiser is in now; a stranger never is.
    for kind in ["addContextListener", "unsubscribe", "disconnect"] {
        ok(
            &mut agent,
            &raiser,
            "privateChannelAddEventListenerRequest",
            json!({"privateChannelId": channel, "listenerType": kind}),
        );
    }
    for (kind, payload) in [
        (
            "broadcastRequest",
            json!({"channelId": channel, "context": instrument("A")}),
        ),
        (
            "addContextListenerRequest",
            json!({"channelId": channel, "contextType": null}),
        ),
        (
            "getCurrentContextRequest",
            json!({"channelId": channel, "contextType": null}),
        ),
        (
            "privateChannelAddEventListenerRequest",
            json!({"privateChannelId": channel, "listenerType": null}),
        ),
        (
            "privateChannelDisconnectRequest",
            json!({"channelId": channel}),
        ),
    ] {
        assert_eq!(
            error(&mut agent, &stranger, kind, payload),
            "AccessDenied",
            "{kind}"
        );
    }

    let (answer, out) = call(
        &mut agent,
        &trader,
        "addContextListenerRequest",
        json!({"channelId": channel, "contextType": "fdc3.order"}),
    );
    let listener = answer["listenerUUID"].clone();
    let added = only(&out, "privateChannelOnAddContextListenerEvent");
    assert_eq!(added.to, raiser);
    assert_eq!(
        added.message["payload"],
        json!({"privateChannelId": channel, "contextType": "fdc3.order"})
    );
    let order = json!({"type": "fdc3.order", "id": {"orderId": "1"}});
    let events = broadcast(&mut agent, &raiser, &channel, order.clone());
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].to, trader);

    let (_, out) = call(
        &mut agent,
        &trader,
        "contextListenerUnsubscribeRequest",
        json!({"listenerUUID": listener}),
    );
    assert_eq!(
        only(&out, "privateChannelOnUnsubscribeEvent").message["payload"]["contextType"],
        "fdc3.order"
    );
    call(
        &mut agent,
        &trader,
        "addContextListenerRequest",
        json!({"channelId": channel, "contextType": null}),
    );
    let (_, out) = call(
        &mut agent,
        &trader,
        "privateChannelDisconnectRequest",
        json!({"channelId": channel}),
    );
    assert_eq!(only(&out, "privateChannelOnUnsubscribeEvent").to, raiser);
    assert_eq!(
        only(&out, "privateChannelOnDisconnectEvent").message["payload"],
        json!({"privateChannelId": channel})
    );
    assert_eq!(
        error(
            &mut agent,
            &trader,
            "broadcastRequest",
            json!({"channelId": channel, "context": order})
        ),
        "AccessDenied",
        "out for good"
    );
    // The last participant goes: the channel is forgotten.
    agent.instance_gone("r");
    assert_eq!(
        error(
            &mut agent,
            &trader,
            "getCurrentContextRequest",
            json!({"channelId": channel, "contextType": null})
        ),
        "NoChannelFound"
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
            "openRequest", "raiseIntentRequest", "raiseIntentForContextRequest",
            "findIntentRequest", "findIntentsByContextRequest", "addIntentListenerRequest",
            "intentResultRequest", "createPrivateChannelRequest",
            "privateChannelAddEventListenerRequest", "privateChannelDisconnectRequest",
        ]),
        keys in proptest::collection::vec(
            proptest::sample::select(vec![
                "channelId", "contextType", "context", "app", "listenerUUID", "type", "intent",
                "resultType", "raiseIntentRequestUuid", "intentResult", "privateChannelId", "listenerType",
            ]),
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
        // Answered now, or (open, an intent for an app to launch) once launched.
        let launched = !agent.take_launches().is_empty();
        proptest::prop_assert!(launched || !out.is_empty());
        if !out.is_empty() {
            proptest::prop_assert_eq!(&out[0].to, &me);
        }
    }
}
