//! Every answer that is not 200 is counted by code and product path, 404s and 405s included
//! (`path="unknown"`), from 0; and an event posted to another product's path is told where it
//! belongs.

use serde_json::json;
use zego_kafka_bridge::callback::catalogue::{EventKind, Product};
use zego_kafka_bridge::testing::sample_of;

use crate::helpers::{signed, spawn_app};

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
