//! `GET /healthz` (the process serves), `GET /readyz` (the broker answers), `GET /metrics`.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::routes::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"ok": true}))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.is_ready() {
        HttpResponse::Ok().json(json!({"ok": true}))
    } else {
        let why = if state.delivery.readiness.is_shutting_down() {
            "shutting down"
        } else if state.delivery.spool.is_some() {
            "the broker has not answered a metadata request recently and the spool does not accept (full, or its writes fail)"
        } else {
            "the broker has not answered a metadata request recently"
        };
        HttpResponse::ServiceUnavailable()
            .json(json!({"ok": false, "error": "not_ready", "message": why}))
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state
        .metrics
        .dedup_entries
        .set(state.delivery.dedup.len() as i64);
    let held = state.limits.max_buffered_bytes - state.buffered.available_permits();
    state.metrics.buffered_bytes.set(held as i64);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
