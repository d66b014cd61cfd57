//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: the store answers,
//! so a load balancer stops sending traffic to a node that lost its database).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use portcullis_store::Store;

/// `GET /healthz`.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// How long readiness waits for the store: a load balancer needs a prompt "no" while the
/// database is away, not a probe that hangs until the connection pool gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(1);

/// `GET /readyz`.
pub async fn readyz(State(store): State<Arc<dyn Store>>) -> (StatusCode, Json<serde_json::Value>) {
    match tokio::time::timeout(READY_TIMEOUT, store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, Json(serde_json::json!({"status": "ready"}))),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            not_ready()
        }
        Err(_) => {
            tracing::warn!("readiness check timed out: the store does not answer");
            not_ready()
        }
    }
}

fn not_ready() -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({"status": "not ready", "reason": "store unavailable"})),
    )
}
