//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: the store answers
//! and the gateway's embedded log takes messages), so a load balancer stops sending traffic
//! to a node that lost its database or its disk.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use portcullis_gateway::sink::embedded::EmbeddedLog;
use portcullis_store::Store;

/// What readiness looks at.
#[derive(Clone)]
pub struct Readiness {
    pub store: Arc<dyn Store>,
    /// The gateway's embedded log, when it is the gateway's sink. A NATS sink is left out on
    /// purpose: NATS away is every node's trouble at once, and taking them all out of the
    /// load balancer would stop the token server too; the gateway answers 503 with
    /// `Retry-After` meanwhile.
    pub log: Option<EmbeddedLog>,
}

/// `GET /healthz`.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// How long readiness waits for the store: a load balancer needs a prompt "no" while the
/// database is away, not a probe that hangs until the connection pool gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(1);

/// `GET /readyz`.
pub async fn readyz(State(ready): State<Readiness>) -> (StatusCode, Json<serde_json::Value>) {
    if let Some(why) = ready.log.as_ref().and_then(EmbeddedLog::stopped) {
        // Only a restart brings it back (`EmbeddedLog::stopped`); the error itself was
        // logged when it happened and stays out of an unauthenticated answer.
        tracing::warn!(error = %why, "readiness check failed: the telemetry log is stopped");
        return not_ready("telemetry log stopped; restart the node");
    }
    match tokio::time::timeout(READY_TIMEOUT, ready.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, Json(serde_json::json!({"status": "ready"}))),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            not_ready("store unavailable")
        }
        Err(_) => {
            tracing::warn!("readiness check timed out: the store does not answer");
            not_ready("store unavailable")
        }
    }
}

fn not_ready(reason: &str) -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({"status": "not ready", "reason": reason})),
    )
}
