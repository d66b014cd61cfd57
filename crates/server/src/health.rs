//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: the store answers,
//! so a load balancer stops sending traffic to a node that lost its database).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use portcullis_store::Store;

/// `GET /healthz`.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// `GET /readyz`.
pub async fn readyz(State(store): State<Arc<dyn Store>>) -> (StatusCode, Json<serde_json::Value>) {
    match store.ping().await {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"status": "not ready", "reason": "store unavailable"})),
            )
        }
    }
}
