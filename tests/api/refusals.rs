//! Every answer that is not 200 is counted by code and product path, 404s and 405s included
//! (`path="unknown"`), from 0; and an event posted to another product's path is told where it
//! belongs.

use serde_json::json;
use zego_kafka_bridge::callback::catalogue::{EventKind, Product};
use zego_kafka_bridge::testing::sample_of;

use crate::helpers::{signed, spawn_app, spawn_app_with, TOPIC};

#[actix_web::test]
async fn refusals_are_counted_by_code_and_path_from_zero() {
    let app = spawn_app().await;
    let series =
        |code: &str, path: &str| format!("zego_refusals_total{{code=\"{code}\",path=\"{path}\"}}");
    let metrics = app.get("/metrics").await.1;
    // Present before the first one, so increase() and the alerts see it.
    for (code, path) in [
        ("invalid_signature", "rtc"),
        ("not_found", "unknown"),
        ("publish_failed", "zim"),
    ] {
        assert!(
            metrics.contains(&format!("{} 0", series(code, path))),
            "{code} {path}"
        );
    }
    let mut forged = sample_of(EventKind::lookup(Product::Rtc, "room_login").unwrap(), "r");
    forged["signature"] = json!("0".repeat(40));
    assert_eq!(app.post_json_to(Product::Rtc, &forged).await.status, 401);
    // A typo in the callback URL: a POST to a path the bridge does not serve.
    let typo = app
        .client
        .post(format!("{}/zego/callbak", app.address))
        .send_json(&signed(json!({})))
        .await
        .unwrap();
    assert_eq!(typo.status().as_u16(), 404);
    let wrong_method = app
        .client
        .get(format!("{}/zego/callback", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status().as_u16(), 405);
    assert_eq!(app.metric(&series("invalid_signature", "rtc")).await, 1.0);
    assert_eq!(app.metric(&series("not_found", "unknown")).await, 1.0);
    assert_eq!(
        app.metric(&series("method_not_allowed", "unknown")).await,
        1.0
    );
    // A browser's GET of an unknown page is not a callback: not counted.
    let _ = app
        .client
        .get(format!("{}/favicon.ico", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(app.metric(&series("not_found", "unknown")).await, 1.0);
}

#[actix_web::test]
async fn an_event_posted_to_another_products_path_is_told_its_path() {
    let app = spawn_app().await;
    let rtc_event = sample_of(EventKind::lookup(Product::Rtc, "room_login").unwrap(), "r");
    let answer = app.post_json_to(Product::Zim, &rtc_event).await;
    assert_eq!(
        (answer.status, answer.body["error"].as_str()),
        (422, Some("unsupported_event")),
        "{answer:?}"
    );
    let message = answer.body["message"].as_str().unwrap();
    assert!(
        message.contains("Express (RTC)") && message.contains("CALLBACK_PATH/rtc"),
        "{message}"
    );
    // An event no product has keeps the plain refusal.
    let unknown = app.post_json(&signed(json!({"event": "call_dance"}))).await;
    assert_eq!(unknown.status, 422);
    assert!(!unknown.body["message"]
        .as_str()
        .unwrap()
        .contains("post it to"));
}

/// With `KAFKA_TOPIC_REFUSED`, a callback refused after its body was read is kept there with
/// its bytes unchanged and headers saying why, where and when; the answer is still the
/// refusal, nothing reaches a callback topic, and what is refused before the body is
/// understood (malformed) is not kept.
#[actix_web::test]
async fn refused_callbacks_are_kept_with_their_bytes_and_why_and_the_answer_is_unchanged() {
    let app = spawn_app_with(&[("KAFKA_TOPIC_REFUSED", "refused")]).await;
    let mut forged = sample_of(
        EventKind::lookup(Product::Rtc, "room_login").unwrap(),
        "r-1",
    );
    forged["signature"] = json!("0".repeat(40));
    let forged_bytes = serde_json::to_vec(&forged).unwrap();
    let answer = app.post_json_to(Product::Rtc, &forged).await;
    assert_eq!(
        (answer.status, answer.body["error"].as_str()),
        (401, Some("invalid_signature"))
    );
    let missing = signed(json!({"call_id": null}));
    assert_eq!(app.post_json(&missing).await.status, 400);
    let form = "appid=1&event=call_accept&nonce=1&timestamp=1&signature=x&call_id=c";
    let answer = app
        .post_raw(form, Some("application/x-www-form-urlencoded"))
        .await;
    assert_eq!(answer.status, 401, "{answer:?}");
    assert_eq!(
        app.post_raw("{not json", Some("application/json"))
            .await
            .status,
        400
    );

    app.wait_for_metric(r#"zego_refused_kept_total{outcome="kept"}"#, 3.0)
        .await;
    let kept = app.records("refused");
    assert_eq!(kept.len(), 3, "the malformed body is not kept");
    let rtc = kept
        .iter()
        .find(|r| r.headers["zego-product"] == "rtc")
        .expect("the forged rtc callback");
    assert_eq!(rtc.value, forged_bytes, "kept byte for byte");
    assert_eq!(rtc.key.as_deref(), Some("rtc"));
    assert_eq!(rtc.headers["zego-refused-code"], "invalid_signature");
    assert_eq!(rtc.headers["zego-refused-status"], "401");
    assert!(rtc.headers["zego-path"].ends_with("/rtc"));
    assert_eq!(rtc.headers["zego-source"], "127.0.0.1");
    assert_eq!(rtc.headers["content-type"], "application/json");
    let received: i64 = rtc.headers["received-at"].parse().unwrap();
    assert!((received - zego_kafka_bridge::clock::unix_ms()).abs() < 120_000);
    let form_kept = kept
        .iter()
        .find(|r| r.headers["content-type"] == "application/x-www-form-urlencoded")
        .expect("the form callback");
    assert_eq!(form_kept.value, form.as_bytes());
    assert!(kept
        .iter()
        .any(|r| r.headers["zego-refused-code"] == "missing_field"));
    assert!(
        app.records(TOPIC).is_empty(),
        "nothing refused reaches the callback topic"
    );
}

/// A flood of forged callbacks past `KAFKA_REFUSED_PER_SECOND` is counted and dropped from the
/// refused topic, and genuine callbacks during it are answered and published as usual.
#[actix_web::test]
async fn a_flood_past_the_refused_rate_is_counted_and_dropped_and_genuine_callbacks_land() {
    let app = spawn_app_with(&[
        ("KAFKA_TOPIC_REFUSED", "refused"),
        ("KAFKA_REFUSED_PER_SECOND", "2"),
    ])
    .await;
    let flood = 200;
    for n in 0..flood {
        let mut forged = signed(json!({"call_id": format!("forged-{n}")}));
        forged["signature"] = json!("0".repeat(40));
        assert_eq!(app.post_json(&forged).await.status, 401);
        if n % 50 == 0 {
            let genuine = signed(json!({"call_id": format!("genuine-{n}")}));
            assert_eq!(app.post_json(&genuine).await.status, 200);
        }
    }
    let series = |outcome: &str| format!("zego_refused_kept_total{{outcome=\"{outcome}\"}}");
    // Every one is counted once its publish (if any) is over.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (kept, dropped) = loop {
        let (kept, dropped, failed) = (
            app.metric(&series("kept")).await,
            app.metric(&series("dropped")).await,
            app.metric(&series("failed")).await,
        );
        if kept + dropped + failed == f64::from(flood) {
            assert_eq!(failed, 0.0);
            break (kept, dropped);
        }
        assert!(std::time::Instant::now() < deadline, "never all counted");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    // Burst of 5 × 2, plus at most 2 a second for as long as the flood took.
    assert!(
        dropped >= f64::from(flood) - 10.0 - 2.0 * 120.0,
        "dropped {dropped}"
    );
    assert_eq!(app.records(TOPIC).len(), 4, "the genuine callbacks landed");
    assert!(app.records("refused").len() as f64 <= kept);
}
