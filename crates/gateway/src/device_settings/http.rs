//! The settings routes, on both listeners.
//!
//! Principals (bearer access token):
//! - `GET /gateway/v1/devices/{id}/settings` (scope `settings:read` or `settings:write`);
//! - `PUT /gateway/v1/devices/{id}/settings` `{"values": {...}, "if_version": N?}` (scope
//!   `settings:write`) → the new version; 409 when `if_version` is not the current one.
//!
//! Devices (device token, access token of the device, or TLS client certificate):
//! - `GET /gateway/v1/settings?have=VER&wait=SECS` → `{"version", "signed"}` when a version
//!   above `have` exists, else after up to `wait` seconds (at most 60) `204 No Content`.
//!
//! The device's report travels as a message (`POST /gateway/v1/settings/applied`, `http.rs`).

use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use portcullis_core::device::DeviceId;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{DeviceSettingsRecord, MAX_SETTINGS_BYTES, SETTINGS_READ_SCOPE, SETTINGS_WRITE_SCOPE};
use crate::commands::http::{caller, calling_device, command_problem, CommandsHttp};
use crate::commands::CommandError;
use portcullis_http::SourceAddr;

/// Longest a device's poll waits.
const MAX_WAIT_SECS: u64 = 60;

pub(crate) fn router(state: CommandsHttp) -> Router {
    Router::new()
        .route("/gateway/v1/devices/{id}/settings", get(show).put(replace))
        .route("/gateway/v1/settings", get(poll))
        .with_state(state)
}

fn view(record: &DeviceSettingsRecord) -> Value {
    json!({
        "device_id": record.device_id,
        "version": record.version,
        "values": record.values,
        "updated_at": record.updated_at,
        "updated_by": record.updated_by,
        "applied_version": record.applied_version,
        "applied_at": record.applied_at,
    })
}

fn device_id(id: String) -> Result<DeviceId, CommandError> {
    DeviceId::parse(id).map_err(|_| CommandError::NotFound("device"))
}

async fn show(
    State(state): State<CommandsHttp>,
    SourceAddr(source): SourceAddr,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let result = async {
        let caller = caller(&state, source, &request.into_parts().0).await?;
        if !(caller.scopes.contains(SETTINGS_READ_SCOPE)
            || caller.scopes.contains(SETTINGS_WRITE_SCOPE))
        {
            return Err(CommandError::NotReadable);
        }
        let device = device_id(id)?;
        state
            .gateway
            .settings()
            .get(&device)
            .await?
            .ok_or(CommandError::NotFound("settings"))
    }
    .await;
    match result {
        Ok(record) => Json(view(&record)).into_response(),
        Err(e) => command_problem(&e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    values: Map<String, Value>,
    #[serde(default)]
    if_version: Option<u64>,
}

async fn replace(
    State(state): State<CommandsHttp>,
    SourceAddr(source): SourceAddr,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let result = async {
        let (parts, body) = request.into_parts();
        let caller = caller(&state, source, &parts).await?;
        if !caller.scopes.contains(SETTINGS_WRITE_SCOPE) {
            return Err(CommandError::NotReadable);
        }
        let device = device_id(id)?;
        let body = axum::body::to_bytes(body, MAX_SETTINGS_BYTES + 1024)
            .await
            .map_err(|_| CommandError::Invalid("settings are at most 16 KiB".into()))?;
        let body: PutBody = serde_json::from_slice(&body).map_err(|e| {
            CommandError::Invalid(format!(
                "the body must be {{\"values\": {{...}}, \"if_version\"?: N}} (column {})",
                e.column()
            ))
        })?;
        state
            .gateway
            .settings()
            .put(&caller.client_id, &device, body.values, body.if_version)
            .await
    }
    .await;
    match result {
        Ok(record) => Json(view(&record)).into_response(),
        Err(e) => command_problem(&e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PollQuery {
    #[serde(default)]
    have: u64,
    #[serde(default)]
    wait: u64,
}

/// `GET /gateway/v1/settings?have=VER&wait=SECS`: the calling device's settings, when newer.
async fn poll(
    State(state): State<CommandsHttp>,
    SourceAddr(source): SourceAddr,
    Query(query): Query<PollQuery>,
    request: Request,
) -> Response {
    let device = match calling_device(&state, source, request).await {
        Ok(admitted) => admitted.device_id,
        Err(refusal) => return refusal,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(query.wait.min(MAX_WAIT_SECS));
    let mut bell = state.gateway.commands().listen(&device);
    loop {
        match newer(&state, &device, query.have).await {
            Ok(Some(response)) => return response,
            Ok(None) => {}
            Err(e) => return command_problem(&e),
        }
        if !bell.wait_until(deadline).await {
            return StatusCode::NO_CONTENT.into_response();
        }
    }
}

async fn newer(
    state: &CommandsHttp,
    device: &DeviceId,
    have: u64,
) -> Result<Option<Response>, CommandError> {
    Ok(state
        .gateway
        .settings()
        .get(device)
        .await?
        .filter(|r| r.version > have)
        .map(|r| {
            let mut response =
                Json(json!({ "version": r.version, "signed": r.signed })).into_response();
            portcullis_http::insert_no_store(response.headers_mut());
            response
        }))
}
