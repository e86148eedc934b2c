//! Every catalogued ZEGOCLOUD callback family: each event's sample lands keyed, with its family
//! and ordering ids in headers; each is refused for a bad signature, a missing or mistyped
//! field with nothing published; families can be switched off and routed; `before_send_msg`
//! is refused; millisecond timestamps are windowed.

use serde_json::{json, Value};
use zego_kafka_bridge::callback::catalogue::{EventKind, Family, Product};
use zego_kafka_bridge::callback::event::FieldType;
use zego_kafka_bridge::testing::{expected_callback_id, now_secs, sample_of};

use crate::helpers::{resign, signed, spawn_app, spawn_app_with, Consumed, TOPIC};

fn product_of(kind: EventKind) -> Product {
    kind.family().product()
}

fn schema(kind: EventKind) -> jsonschema::Validator {
    let path = format!("{}/{}", env!("CARGO_MANIFEST_DIR"), kind.schema_path());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).expect("valid schema")
}

fn find<'a>(records: &'a [Consumed], body: &Value) -> &'a Consumed {
    let id = expected_callback_id(body);
    records
        .iter()
        .find(|r| r.headers["zego-callback-id"] == id)
        .unwrap_or_else(|| panic!("no record with callback id {id} for {body}"))
}

/// A value of the wrong JSON type for a field of `kind`.
fn wrong_value(kind: FieldType) -> Value {
    match kind {
        FieldType::Text => json!(5),
        FieldType::Integer => json!("soon"),
        FieldType::TextOrInteger => json!([1]),
        FieldType::TextList => json!({"a": 1}),
        FieldType::Object | FieldType::ObjectOrEmpty | FieldType::ObjectList => json!(5),
    }
}

#[actix_web::test]
async fn every_event_of_every_family_lands_keyed_with_family_and_ids() {
    let app = spawn_app().await;
    let mut sent = Vec::new();
    for (n, kind) in EventKind::all().enumerate() {
        let body = sample_of(kind, &format!("key-{n}"));
        let answer = app.post_json_to(product_of(kind), &body).await;
        assert_eq!(answer.status, 200, "{}: {answer:?}", kind.name());
        sent.push((kind, format!("key-{n}"), body));
    }
    let records = app.records(TOPIC);
    assert_eq!(records.len(), sent.len());
    for (kind, key, body) in &sent {
        let record = find(&records, body);
        let name = kind.name();
        assert_eq!(record.key.as_deref(), Some(key.as_str()), "{name}");
        assert_eq!(
            record.headers["zego-family"],
            kind.family().name(),
            "{name}"
        );
        let event_field = product_of(*kind).envelope().event;
        let sent_name = event_field.map_or("recording_status", |f| body[f].as_str().unwrap());
        assert_eq!(record.headers["zego-event"], sent_name, "{name}");
        for (field, header) in kind.spec().headers {
            if let Some(value) = body.get(*field) {
                let text = value
                    .as_str()
                    .map_or_else(|| value.to_string(), String::from);
                assert_eq!(record.headers.get(*header), Some(&text), "{name}: {header}");
            }
        }
        let value = record.json();
        assert_eq!(&value, body, "{name}: the value is the callback as sent");
        let errors: Vec<String> = schema(*kind)
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
    }
    // The samples carry their ids: a stream event's ordering headers are really there.
    let stream = sent
        .iter()
        .find(|(k, ..)| k.name() == "stream_create")
        .unwrap();
    let record = find(&records, &stream.2);
    assert_eq!(record.headers["zego-stream-seq"], "17");
    assert_eq!(record.headers["zego-room-session-id"], "858993459200000001");
}

#[actix_web::test]
async fn each_event_refuses_bad_signature_missing_and_mistyped_fields_publishing_nothing() {
    let app = spawn_app().await;
    for kind in EventKind::all() {
        let product = product_of(kind);
        let names = product.envelope();
        let name = kind.name();
        let mut forged = sample_of(kind, "k");
        forged[names.signature] = json!("0".repeat(40));
        let answer = app.post_json_to(product, &forged).await;
        assert_eq!(
            (answer.status, answer.body["error"].as_str()),
            (401, Some("invalid_signature")),
            "{name}"
        );

        // Missing: the first required field, or (for events keyed by one of several fields)
        // every key field.
        let mut missing = sample_of(kind, "k");
        match kind.spec().rules.iter().find(|r| r.required) {
            Some(rule) => {
                missing.as_object_mut().unwrap().remove(rule.name);
            }
            None => {
                for key in kind.spec().key {
                    missing.as_object_mut().unwrap().remove(*key);
                }
            }
        }
        resign(&mut missing);
        let answer = app.post_json_to(product, &missing).await;
        assert_eq!(answer.status, 400, "{name}: {answer:?}");
        assert!(
            matches!(
                answer.body["error"].as_str(),
                Some("missing_field" | "invalid_field")
            ),
            "{name}: {answer:?}"
        );

        // Mistyped: every rule, one at a time.
        for rule in kind.spec().rules {
            let mut mistyped = sample_of(kind, "k");
            mistyped[rule.name] = wrong_value(rule.kind);
            resign(&mut mistyped);
            let answer = app.post_json_to(product, &mistyped).await;
            assert_eq!(
                (answer.status, answer.body["error"].as_str()),
                (400, Some("invalid_field")),
                "{name}.{}",
                rule.name
            );
            assert!(
                answer.body["message"].as_str().unwrap().contains(rule.name),
                "{answer:?}"
            );
        }
    }
    assert!(app.records(TOPIC).is_empty());
}

#[actix_web::test]
async fn switched_off_families_are_refused_and_families_route_to_their_topics() {
    let app = spawn_app_with(&[
        ("ZEGO_FAMILIES", "call,rtc"),
        ("KAFKA_TOPIC_RTC", "rtc-events"),
        ("KAFKA_TOPIC_ROOM_LOGOUT", "logouts"),
    ])
    .await;
    let login = sample_of(Family::Login.events().next().unwrap(), "u1");
    let answer = app.post_json_to(Product::Zim, &login).await;
    assert_eq!(
        (answer.status, answer.body["error"].as_str()),
        (422, Some("family_disabled"))
    );
    let agent = sample_of(Family::AiAgent.events().next().unwrap(), "agent-1");
    let answer = app.post_json_to(Product::AiAgent, &agent).await;
    assert_eq!(answer.body["error"], "family_disabled");

    let rtc = |name: &str| Family::Rtc.events().find(|k| k.name() == name).unwrap();
    let room_login = sample_of(rtc("room_login"), "r1");
    let room_logout = sample_of(rtc("room_logout"), "r1");
    for body in [&room_login, &room_logout] {
        assert_eq!(app.post_json_to(Product::Rtc, body).await.status, 200);
    }
    assert_eq!(app.post_json(&signed(json!({}))).await.status, 200);

    let rtc_records = app.records("rtc-events");
    assert_eq!(
        rtc_records.len(),
        1,
        "the family topic holds the family's other events"
    );
    assert_eq!(
        find(&rtc_records, &room_login).headers["zego-family"],
        "rtc"
    );
    assert_eq!(app.records("logouts").len(), 1, "the event override wins");
    let default = app.records(TOPIC);
    assert_eq!(default.len(), 1);
    assert_eq!(default[0].headers["zego-family"], "call");
}

/// `before_send_msg` holds the user's message until ZIM has a verdict (2.5 s at most), and a
/// failed answer drops the message: the bridge answers "send" (`{"result":0}`) in time whatever
/// Kafka does, and publishes the record when the ack comes in time.
#[actix_web::test]
async fn before_send_msg_gets_the_send_verdict_in_time_and_is_published_when_kafka_takes_it() {
    let app = spawn_app().await;
    app.wait_for_readyz(200).await;
    let kind = EventKind::lookup(Product::Zim, "before_send_msg").unwrap();
    let body = sample_of(kind, "conv-1");
    let answer = app.post_json(&body).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["result"], json!(0), "{answer:?}");
    assert_eq!(answer.body["published"], json!(true), "{answer:?}");
    let records = app.records(TOPIC);
    let record = find(&records, &body);
    assert_eq!(record.key.as_deref(), Some("conv-1"));
    assert_eq!(record.headers["zego-event"], "before_send_msg");

    // Kafka gone: still the verdict, inside ZIM's 2.5 s, counted as not published.
    app.cluster.broker_down(1).unwrap();
    let down = sample_of(kind, "conv-2");
    let started = std::time::Instant::now();
    let answer = app.post_json(&down).await;
    let took = started.elapsed();
    assert_eq!(
        (answer.status, answer.body["result"].clone()),
        (200, json!(0)),
        "{answer:?}"
    );
    assert_eq!(answer.body["published"], json!(false), "{answer:?}");
    assert!(
        took < std::time::Duration::from_millis(2500),
        "answered after {took:?}"
    );
    assert_eq!(
        app.metric("zego_before_send_msg_unpublished_total").await,
        1.0
    );
}

#[actix_web::test]
async fn one_event_name_on_two_products_is_two_families() {
    let app = spawn_app().await;
    let zim = sample_of(
        EventKind::lookup(Product::Zim, "room_create").unwrap(),
        "room-9",
    );
    let rtc = sample_of(
        EventKind::lookup(Product::Rtc, "room_create").unwrap(),
        "room-9",
    );
    assert_eq!(app.post_json_to(Product::Zim, &zim).await.status, 200);
    assert_eq!(app.post_json_to(Product::Rtc, &rtc).await.status, 200);
    // In-app Chat's room_create sent to the RTC path is read by RTC's rules, not guessed at.
    let mut wrong_door = zim.clone();
    wrong_door["room_id"] = json!(7);
    resign(&mut wrong_door);
    assert_eq!(
        app.post_json_to(Product::Rtc, &wrong_door).await.status,
        400
    );
    let records = app.records(TOPIC);
    assert_eq!(find(&records, &zim).headers["zego-family"], "room");
    assert_eq!(find(&records, &rtc).headers["zego-family"], "rtc");
    assert_eq!(records.len(), 2);
    // The metrics tell them apart too: the family label.
    for family in ["room", "rtc"] {
        let answered = format!(
            r#"zego_callbacks_total{{code="ok",event="room_create",family="{family}",status="200"}}"#
        );
        assert_eq!(app.metric(&answered).await, 1.0, "{family}");
    }
}

#[actix_web::test]
async fn millisecond_timestamps_are_windowed_like_seconds() {
    let app = spawn_app().await;
    let kind = Family::AiAgent.events().next().unwrap();
    let fresh = sample_of(kind, "agent-1");
    assert!(
        fresh["Timestamp"].as_i64().unwrap() > 100_000_000_000,
        "AI Agent stamps in ms"
    );
    assert_eq!(app.post_json_to(Product::AiAgent, &fresh).await.status, 200);
    let mut stale = sample_of(kind, "agent-2");
    stale["Timestamp"] = json!((now_secs() - 600) * 1000);
    resign(&mut stale);
    let answer = app.post_json_to(Product::AiAgent, &stale).await;
    assert_eq!(
        (answer.status, answer.body["error"].as_str()),
        (401, Some("stale_timestamp"))
    );
    // The same instant in seconds on the same event passes: the magnitude decides the unit.
    let mut seconds = sample_of(kind, "agent-3");
    seconds["Timestamp"] = json!(now_secs());
    resign(&mut seconds);
    assert_eq!(
        app.post_json_to(Product::AiAgent, &seconds).await.status,
        200
    );
}

/// The callbacks the previous catalogue refused, each as its ZEGOCLOUD page's own sample (only
/// the timestamp made current and the signature computed): accepted on its product's path,
/// keyed, with its headers, valid against its schema; a forged copy refused.
/// - `room_close`: "Room destroyed Callback" (Express),
///   https://www.zegocloud.com/docs/real-time-video-server/callback/room/destroyed
/// - `record`: "Recording File Generated Callback" (Express, CDN recording),
///   https://www.zegocloud.com/docs/real-time-video-server/callback/cdn/cdn-record-completed
/// - `call_invite`: "Callback on call invitation during a call" (In-app Chat; the stored page's
///   sample ends after `user_ids`, so `inviter` and `invite_time` follow its table),
///   https://www.zegocloud.com/docs/zim-server/callbacks/call-invitation-during-a-call
/// - `Apply_join_group`: "Callback on group joined" (In-app Chat),
///   https://www.zegocloud.com/docs/zim-server/callbacks/group/group-joined
#[actix_web::test]
async fn the_pages_samples_of_the_events_refused_before_now_land() {
    let app = spawn_app().await;
    let now = now_secs();
    let cases = [
        (
            Product::Rtc,
            "room_close",
            "rid_1242649",
            json!({"event": "room_close", "appid": 1, "timestamp": now, "nonce": "350176",
                   "signature": "signature", "room_id": "rid_1242649",
                   "room_session_id": 858012925204410400_u64, "close_reason": 1,
                   "room_close_time": "1499676989909"}),
            vec![("zego-room-session-id", "858012925204410400")],
        ),
        (
            Product::Rtc,
            "record",
            "aaaa",
            json!({"stream_alias": "aaaa", "replay_url": "replay_url", "begin_time": "1481597358",
                   "end_time": "1481597358", "timestamp": now.to_string(), "nonce": "158273",
                   "signature": "signature", "appid": "1", "event": "record",
                   "extra_params": "extra_params"}),
            vec![("zego-stream-id", "aaaa")],
        ),
        (
            Product::Zim,
            "call_invite",
            "3501761173612493269",
            json!({"appid": "1", "event": "call_invite", "nonce": "350176", "signature": "signature",
                   "timestamp": now, "call_id": "3501761173612493269", "user_ids": ["abc", "def"],
                   "inviter": "abc", "invite_time": now * 1000}),
            vec![],
        ),
        (
            Product::Zim,
            "group_join",
            "1",
            json!({"appid": "1", "event": "Apply_join_group", "group_id": "1", "nonce": "350176",
                   "signature": "signature", "operator_account": "userA", "join_type": "Apply",
                   "new_user_ids": ["Tony", "Jenny"], "timestamp": now.to_string()}),
            vec![],
        ),
    ];
    for (product, name, key, mut body, headers) in cases {
        resign(&mut body);
        let mut forged = body.clone();
        forged["signature"] = json!("0".repeat(40));
        let refused = app.post_json_to(product, &forged).await;
        assert_eq!(refused.status, 401, "{name}: {refused:?}");
        let answer = app.post_json_to(product, &body).await;
        assert_eq!(answer.status, 200, "{name}: {answer:?}");
        let records = app.records(TOPIC);
        let record = find(&records, &body);
        assert_eq!(record.key.as_deref(), Some(key), "{name}");
        // Recorded under the catalogue's name, whatever spelling the body used.
        assert_eq!(record.headers["zego-event"], name);
        for (header, value) in headers {
            assert_eq!(record.headers[header], value, "{name}: {header}");
        }
        let kind = EventKind::lookup(product, name).unwrap();
        let value = record.json();
        assert_eq!(value, body, "{name}: the value is the callback as sent");
        let errors: Vec<String> = schema(kind)
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
    }
    assert_eq!(
        app.records(TOPIC).len(),
        4,
        "the forged copies landed nothing"
    );
}

/// Cloud recording's two callback formats, "Recording status callback",
/// https://www.zegocloud.com/docs/cloud-recording-server/recording-status-callback: the current
/// one (files under `detail`, which the page calls empty for `event_type` 4) and the one
/// accounts that enabled recording before 2021-11-29 get (`file_info` at the top level). Each
/// lands, keyed by its task, with `zego-recording-format` saying which; a forged one does not.
#[actix_web::test]
async fn both_cloud_recording_formats_land_and_say_which_they_are() {
    let app = spawn_app().await;
    let now = now_secs().to_string();
    let envelope = |task: &str, event_type: i64| {
        json!({"app_id": 1, "task_id": task, "room_id": "room-1", "event_type": event_type,
               "message": "m", "nonce": "350176", "timestamp": now, "signature": "s",
               "sequence": 0})
    };
    let mut current = envelope("task-current", 5);
    current["detail"] = json!({"file_info": [{"file_id": "a.mp4", "stream_id": "800221"}]});
    let mut no_streams = envelope("task-empty", 4);
    no_streams["detail"] = json!("");
    let mut no_streams_object = envelope("task-empty-object", 4);
    no_streams_object["detail"] = json!({});
    let mut legacy = envelope("task-legacy", 1);
    legacy["file_info"] = json!([{"file_id": "b.mp4", "stream_id": "800221"}]);
    let mut without_files = envelope("task-plain", 2);
    without_files.as_object_mut().unwrap().remove("message");
    let cases = [
        (current, "current"),
        (no_streams, "current"),
        (no_streams_object, "current"),
        (legacy, "legacy"),
        (without_files, "unknown"),
    ];
    for (mut body, format) in cases {
        resign(&mut body);
        let mut forged = body.clone();
        forged["signature"] = json!("0".repeat(40));
        assert_eq!(
            app.post_json_to(Product::Recording, &forged).await.status,
            401
        );
        let answer = app.post_json_to(Product::Recording, &body).await;
        assert_eq!(answer.status, 200, "{body}: {answer:?}");
        let records = app.records(TOPIC);
        let record = find(&records, &body);
        assert_eq!(record.key.as_deref(), body["task_id"].as_str());
        assert_eq!(record.headers["zego-recording-format"], format, "{body}");
        assert_eq!(record.json(), body, "the value is the callback as sent");
    }
    assert_eq!(
        app.records(TOPIC).len(),
        5,
        "the forged copies landed nothing"
    );
}
