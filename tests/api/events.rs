//! The whole call-invitation family: per-event checks, unknown events, routing and ordering.

use serde_json::{json, Value};

use crate::helpers::{event_body, resign, signed, spawn_app, spawn_app_with, TOPIC};

const FAMILY: [&str; 5] = [
    "call_create",
    "call_cancel",
    "call_accept",
    "call_reject",
    "call_timeout",
];

/// (event, field, a wrong-typed value) for every required field.
fn required_fields() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("call_create", "caller", json!(5)),
        ("call_create", "user_ids", json!("u1")),
        ("call_create", "create_time", json!("soon")),
        ("call_create", "timeout", json!(1.5)),
        ("call_cancel", "user_ids", json!([1, 2])),
        ("call_accept", "user_id", json!(["abc"])),
        ("call_reject", "user_id", json!(false)),
        ("call_timeout", "user_ids", json!({"a": 1})),
    ]
}

#[actix_web::test]
async fn each_event_is_accepted_and_lands_with_its_event_header() {
    let app = spawn_app().await;
    for event in FAMILY {
        let answer = app
            .post_json(&event_body(event, &format!("call-{event}")))
            .await;
        assert_eq!(answer.status, 200, "{event}: {answer:?}");
    }
    let records = app.records(TOPIC);
    assert_eq!(records.len(), FAMILY.len());
    for event in FAMILY {
        let record = records
            .iter()
            .find(|r| r.headers["zego-event"] == event)
            .expect(event);
        assert_eq!(record.key, Some(format!("call-{event}")));
        assert_eq!(record.json()["event"], json!(event));
    }
}

fn schema(event: &str) -> jsonschema::Validator {
    let path = format!(
        "{}/schemas/call/{event}.schema.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).expect("valid schema")
}

#[actix_web::test]
async fn produced_records_match_the_published_schemas() {
    let app = spawn_app().await;
    for event in FAMILY {
        assert_eq!(
            app.post_json(&event_body(event, &format!("json-{event}")))
                .await
                .status,
            200
        );
    }
    // A form body: every value arrives as text and is published typed.
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let signature = zego_kafka_bridge::callback::signature::sign(crate::helpers::SECRET, &ts, "5");
    let form = format!(
        "appid=1&event=call_create&nonce=5&timestamp={ts}&signature={signature}&call_id=form-create\
         &caller=abc&user_ids=u1&user_ids=u2&create_time=17&timeout=60&payload=p"
    );
    let answer = app
        .post_raw(form, Some("application/x-www-form-urlencoded"))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");

    let records = app.records(TOPIC);
    assert_eq!(records.len(), FAMILY.len() + 1);
    for record in &records {
        let event = &record.headers["zego-event"];
        let value = record.json();
        let errors: Vec<String> = schema(event)
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{event} record {value} breaks its schema: {errors:?}"
        );
    }
    // The schemas are not vacuous: a wrong type is caught.
    let mut wrong = records[0].json();
    wrong["call_id"] = json!(5);
    assert!(!schema(&records[0].headers["zego-event"]).is_valid(&wrong));
}

#[actix_web::test]
async fn each_missing_or_mistyped_required_field_is_400() {
    let app = spawn_app().await;
    for (event, field, wrong) in required_fields() {
        let mut missing = event_body(event, "c");
        missing.as_object_mut().unwrap().remove(field);
        resign(&mut missing);
        let answer = app.post_json(&missing).await;
        assert_eq!(
            (answer.status, answer.body["error"].as_str()),
            (400, Some("missing_field")),
            "{event}.{field}"
        );
        let mut mistyped = event_body(event, "c");
        mistyped[field] = wrong;
        resign(&mut mistyped);
        let answer = app.post_json(&mistyped).await;
        assert_eq!(
            (answer.status, answer.body["error"].as_str()),
            (400, Some("invalid_field")),
            "{event}.{field}"
        );
    }
    // Optional fields are typed when present.
    let answer = app.post_json(&signed(json!({"extend_data": 12}))).await;
    assert_eq!(answer.status, 400);
    assert!(app.records(TOPIC).is_empty());
}

#[actix_web::test]
async fn unknown_events_are_rejected_by_default() {
    let app = spawn_app().await;
    let answer = app
        .post_json(&signed(json!({"event": "call_transfer"})))
        .await;
    assert_eq!(
        (answer.status, answer.body["error"].as_str()),
        (422, Some("unsupported_event"))
    );
    assert!(app.records(TOPIC).is_empty());
}

#[actix_web::test]
async fn unknown_events_are_forwarded_to_the_default_topic_when_asked() {
    let app = spawn_app_with(&[
        ("UNKNOWN_EVENTS", "forward"),
        ("KAFKA_TOPIC_CALL_ACCEPT", "accepts"),
    ])
    .await;
    assert_eq!(
        app.post_json(&signed(json!({"event": "call_transfer", "call_id": "t1"})))
            .await
            .status,
        200
    );
    let mut no_call = signed(json!({"event": "room_notice"}));
    no_call.as_object_mut().unwrap().remove("call_id");
    resign(&mut no_call);
    assert_eq!(app.post_json(&no_call).await.status, 200);
    let records = app.records(TOPIC);
    assert_eq!(
        records.len(),
        2,
        "forwarded events go to KAFKA_TOPIC, not an override"
    );
    let keys: Vec<_> = records.iter().map(|r| r.key.clone()).collect();
    assert!(
        keys.contains(&Some("t1".into())) && keys.contains(&None),
        "{keys:?}"
    );
    assert!(app.records("accepts").is_empty());
}

#[actix_web::test]
async fn per_event_topic_override_routes_only_that_event() {
    let app = spawn_app_with(&[("KAFKA_TOPIC_CALL_ACCEPT", "accepts")]).await;
    assert_eq!(
        app.post_json(&event_body("call_accept", "c1")).await.body["topic"],
        json!(app.topic("accepts"))
    );
    assert_eq!(
        app.post_json(&event_body("call_create", "c1")).await.body["topic"],
        json!(app.topic(TOPIC))
    );
    assert_eq!(app.records("accepts").len(), 1);
    assert_eq!(app.records(TOPIC).len(), 1);
}

#[actix_web::test]
async fn one_calls_events_land_in_one_partition_in_send_order() {
    let app = spawn_app().await;
    for call in ["call-a", "call-b", "call-c", "call-d"] {
        for event in FAMILY {
            assert_eq!(app.post_json(&event_body(event, call)).await.status, 200);
        }
    }
    let records = app.records(TOPIC);
    for call in ["call-a", "call-b", "call-c", "call-d"] {
        let mut mine: Vec<_> = records
            .iter()
            .filter(|r| r.key.as_deref() == Some(call))
            .collect();
        let partitions: std::collections::BTreeSet<_> = mine.iter().map(|r| r.partition).collect();
        assert_eq!(partitions.len(), 1, "{call} spread over {partitions:?}");
        mine.sort_by_key(|r| r.offset);
        let order: Vec<_> = mine
            .iter()
            .map(|r| r.headers["zego-event"].as_str())
            .collect();
        assert_eq!(order, FAMILY, "{call}");
    }
}
