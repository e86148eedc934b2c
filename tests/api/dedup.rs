//! Duplicate suppression: repeats answered from the cache, never published twice, never
//! remembered after a failure; expiry and capacity.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{signed, spawn_app, spawn_app_with, PATIENT_DELIVERY, TOPIC};

#[actix_web::test]
async fn sequential_repeat_is_answered_from_the_cache_with_the_original_ack() {
    let app = spawn_app().await;
    let first = app.post_json(&signed(json!({"nonce": "1"}))).await;
    // ZEGOCLOUD's retry: new nonce and signature, same callback.
    let repeat = app.post_json(&signed(json!({"nonce": "2"}))).await;
    assert_eq!((first.status, repeat.status), (200, 200));
    assert_eq!(repeat.body["duplicate"], json!(true));
    assert_eq!(first.body["duplicate"], json!(null));
    for field in ["topic", "partition", "offset"] {
        assert_eq!(first.body[field], repeat.body[field], "{field}");
    }
    assert_eq!(app.records(TOPIC).len(), 1);
    assert_eq!(app.metric("zego_duplicates_total").await, 1.0);
}

#[actix_web::test]
async fn concurrent_repeat_waits_for_the_first_ack_instead_of_publishing() {
    let app = spawn_app_with(&[PATIENT_DELIVERY]).await;
    app.wait_for_readyz(200).await;
    app.cluster
        .broker_round_trip_time(1, Duration::from_millis(500))
        .unwrap();
    let first = signed(json!({"nonce": "1"}));
    let (a, b) = tokio::join!(app.post_json(&first), async {
        app.wait_for_in_flight().await;
        app.post_json(&signed(json!({"nonce": "2"}))).await
    });
    assert_eq!((a.status, b.status), (200, 200), "{a:?} {b:?}");
    assert_eq!(b.body["duplicate"], json!(true));
    assert_eq!(a.body["offset"], b.body["offset"]);
    assert_eq!(app.records(TOPIC).len(), 1);
}

#[actix_web::test]
async fn repeat_after_a_failed_publish_publishes() {
    let app = spawn_app().await;
    app.wait_for_readyz(200).await;
    app.cluster.broker_down(1).unwrap();
    assert_eq!(
        app.post_json(&signed(json!({"nonce": "1"}))).await.status,
        503
    );
    app.cluster.broker_up(1).unwrap();
    app.wait_for_readyz(200).await;
    let retry = app.post_json(&signed(json!({"nonce": "2"}))).await;
    assert_eq!(retry.status, 200);
    assert_eq!(retry.body["duplicate"], json!(null));
    assert_eq!(app.records(TOPIC).len(), 1);
}

#[actix_web::test]
async fn repeat_after_the_ttl_publishes_again() {
    // The TTL is the behaviour under test; 3 s leaves a busy machine ample time for the repeat
    // to arrive inside it (one loopback request).
    let app = spawn_app_with(&[("DEDUP_TTL_SECS", "3")]).await;
    assert_eq!(
        app.post_json(&signed(json!({"nonce": "1"}))).await.status,
        200
    );
    let acked = Instant::now();
    assert_eq!(
        app.post_json(&signed(json!({"nonce": "2"}))).await.body["duplicate"],
        json!(true)
    );
    // Wait it out (measured from after the first ack, so the id has surely expired).
    let expired_at = acked + Duration::from_millis(3100);
    tokio::time::sleep_until(expired_at.into()).await;
    let late = app.post_json(&signed(json!({"nonce": "3"}))).await;
    assert_eq!((late.status, &late.body["duplicate"]), (200, &json!(null)));
    assert_eq!(app.records(TOPIC).len(), 2);
}

#[actix_web::test]
async fn oldest_ids_are_evicted_beyond_the_capacity() {
    let app = spawn_app_with(&[("DEDUP_CAPACITY", "2")]).await;
    for call in ["a", "b", "c"] {
        assert_eq!(
            app.post_json(&signed(json!({"call_id": call})))
                .await
                .status,
            200
        );
    }
    assert_eq!(
        app.post_json(&signed(json!({"call_id": "c", "nonce": "9"})))
            .await
            .body["duplicate"],
        json!(true)
    );
    let evicted = app
        .post_json(&signed(json!({"call_id": "a", "nonce": "9"})))
        .await;
    assert_eq!(
        (evicted.status, &evicted.body["duplicate"]),
        (200, &json!(null))
    );
    assert_eq!(app.records(TOPIC).len(), 4);
}

#[actix_web::test]
async fn dedupe_off_publishes_every_repeat() {
    let app = spawn_app_with(&[("DEDUP_TTL_SECS", "0")]).await;
    for nonce in ["1", "2"] {
        let answer = app.post_json(&signed(json!({"nonce": nonce}))).await;
        assert_eq!(
            (answer.status, &answer.body["duplicate"]),
            (200, &json!(null))
        );
    }
    assert_eq!(app.records(TOPIC).len(), 2);
}
