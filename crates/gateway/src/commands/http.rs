//! The command routes, on both listeners.
//!
//! Principals (bearer access token of the client that sends, approves or reads):
//! - `POST /gateway/v1/devices/{id}/commands` `{"name", "args", "ttl_secs"}` → 202 with the
//!   command (`pending_approval` or `queued`), 403 naming the rule that refused it;
//! - `GET  /gateway/v1/devices/{id}/commands?after=&limit=` (scope `commands:read`);
//! - `GET  /gateway/v1/commands/{cid}` (its sender, its approver, a would-be approver, or
//!   `commands:read`);
//! - `POST /gateway/v1/commands/{cid}/approve`.
//!
//! Devices (device token or access token of the device, or its TLS client certificate):
//! - `GET /gateway/v1/commands?wait=SECS` — a long poll: the device's queued commands in
//!   sequence order, each as the signed `COSE_Sign1` (base64url), marked delivered; waits up
//!   to `wait` seconds (at most 60) for one when there is none.
//!
//! Results travel as messages (`POST /gateway/v1/results`, `http.rs`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portcullis_core::command::{CommandId, CommandRecord};
use portcullis_core::command_policy::Principal;
use portcullis_core::device::DeviceId;
use portcullis_core::ScopeSet;
use portcullis_http::{presented_access_token, AbuseLimits, Problem, SourceAddr};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{CommandError, NewCommand};
use crate::http::{problem, request_credential};
use crate::service::Gateway;
use crate::session::{Admitted, Transport};
use crate::GatewayError;

/// Longest a device's poll waits.
pub const MAX_WAIT_SECS: u64 = 60;
/// Most commands one poll hands out.
const POLL_BATCH: u32 = 32;

#[derive(Clone)]
pub(crate) struct CommandsHttp {
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) limits: Arc<AbuseLimits>,
    pub(crate) tls: bool,
}

/// The command routes.
pub fn router(gateway: Arc<Gateway>, limits: Arc<AbuseLimits>, tls: bool) -> Router {
    let state = CommandsHttp {
        gateway,
        limits,
        tls,
    };
    let settings = crate::device_settings::http::router(state.clone());
    let updates = crate::updates::http::router(state.clone());
    Router::new()
        .route(
            "/gateway/v1/devices/{id}/commands",
            post(send).get(list_for_device),
        )
        .route("/gateway/v1/commands", get(poll))
        .route("/gateway/v1/commands/{cid}", get(show))
        .route("/gateway/v1/commands/{cid}/approve", post(approve))
        .with_state(state)
        .merge(settings)
        .merge(updates)
}

/// A command as the API shows it: everything but the signed bytes, the state as of now.
fn view(record: &CommandRecord, now: i64) -> Value {
    json!({
        "command_id": record.command_id,
        "device_id": record.device_id,
        "name": record.name,
        "args": record.args,
        "state": record.state_at(now).as_str(),
        "sender": record.sender,
        "rule": record.rule,
        "approvals_required": record.approvals_required,
        "approver": record.approver,
        "seq": record.seq,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "queued_at": record.queued_at,
        "delivered_at": record.delivered_at,
        "finished_at": record.finished_at,
        "output": record.output,
    })
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A refusal of the principal's side as problem+json.
pub(crate) fn command_problem(error: &CommandError) -> Response {
    let (status, slug, title) = match error {
        CommandError::Invalid(_) => (
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "Invalid request",
        ),
        CommandError::Unauthenticated | CommandError::DpopRefused { .. } => (
            StatusCode::UNAUTHORIZED,
            "not-authenticated",
            "Not authenticated",
        ),
        CommandError::Denied { .. } => {
            (StatusCode::FORBIDDEN, "command-refused", "Command refused")
        }
        CommandError::NotReadable => (
            StatusCode::FORBIDDEN,
            "insufficient-scope",
            "Insufficient scope",
        ),
        CommandError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
        CommandError::DeviceInactive
        | CommandError::NotPending(_)
        | CommandError::Stale(_)
        | CommandError::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
        CommandError::RateLimited { .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many commands",
        ),
        CommandError::Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Temporarily unavailable",
        ),
    };
    let detail = match error {
        CommandError::Unavailable(why) => {
            tracing::warn!(error = %why, "a command request could not be served");
            // Custody and store messages stay in the log; a missing key is the operator's
            // to fix, and saying so helps.
            if why.contains("trust key create") {
                why.clone()
            } else {
                "the command service cannot be reached now; retry later".to_owned()
            }
        }
        other => other.to_string(),
    };
    let problem = Problem::new(status, slug, title, detail);
    let mut body = serde_json::to_value(&problem).unwrap_or_else(|_| json!({}));
    if let (CommandError::Denied { rule, reason }, Some(map)) = (error, body.as_object_mut()) {
        map.insert("rule".into(), json!(rule));
        map.insert("reason".into(), json!(reason.as_str()));
    }
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(portcullis_http::PROBLEM_JSON),
    );
    match error {
        CommandError::Unauthenticated => {
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"gateway\""),
            );
        }
        CommandError::DpopRefused { error, nonce } => {
            portcullis_http::insert_dpop_challenge(headers, "gateway", error, nonce.as_deref());
        }
        CommandError::RateLimited {
            retry_after_secs, ..
        } => {
            headers.insert(RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        _ => {}
    }
    response
}

/// The principal of a bearer access token (with the certificate it is bound to, if any).
pub(crate) struct Caller {
    pub(crate) client_id: String,
    pub(crate) scopes: ScopeSet,
}

impl Caller {
    pub(crate) fn principal(&self) -> Principal<'_> {
        Principal {
            client_id: &self.client_id,
            scopes: &self.scopes,
        }
    }
}

pub(crate) async fn caller(
    state: &CommandsHttp,
    source: IpAddr,
    request: &Parts,
) -> Result<Caller, CommandError> {
    if state.limits.check_lockout(source).is_err() {
        return Err(CommandError::Unauthenticated);
    }
    let (token, presented) =
        presented_access_token(request).ok_or(CommandError::Unauthenticated)?;
    let tokens = state.gateway.tokens();
    let claims = match tokens.presented_token(token, presented).await {
        Ok(claims) => claims,
        Err(rejection) => {
            state.limits.record_failure(source);
            return Err(match rejection.dpop_error() {
                Some(error) => CommandError::DpopRefused {
                    error,
                    nonce: tokens.dpop_nonce(),
                },
                None => CommandError::Unauthenticated,
            });
        }
    };
    let scopes = ScopeSet::parse(claims.scope.as_deref().unwrap_or_default())
        .map_err(|_| CommandError::Unauthenticated)?;
    Ok(Caller {
        client_id: claims.client_id,
        scopes,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    name: String,
    #[serde(default)]
    args: Map<String, Value>,
    ttl_secs: u32,
}

async fn send(
    State(state): State<CommandsHttp>,
    SourceAddr(source): SourceAddr,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let result = async {
        let (parts, body) = request.into_parts();
        let caller = caller(&state, source, &parts).await?;
        let device = DeviceId::parse(id).map_err(|_| CommandError::NotFound("device"))?;
        let body = axum::body::to_bytes(body, 64 * 1024)
            .await
            .map_err(|_| CommandError::Invalid("the body is larger than 64 KiB".into()))?;
        let body: SendBody = serde_json::from_slice(&body).map_err(|e| {
            CommandError::Invalid(format!(
                "the body must be {{\"name\", \"args\", \"ttl_secs\"}}: {}",
                json_problem(&e)
            ))
        })?;
        let new = NewCommand {
            name: body.name,
            args: body.args,
            ttl_secs: body.ttl_secs,
        };
        state
            .gateway
            .commands()
            .send(caller.principal(), &device, new)
            .await
    }
    .await;
    match result {
        Ok(record) => (StatusCode::ACCEPTED, Json(view(&record, now()))).into_response(),
        Err(e) => command_problem(&e),
    }
}

/// A JSON error's category and position, not its text (which may quote the input) — except
/// a missing field, whose text names one of our fields.
fn json_problem(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Data => {
            let text = e.to_string();
            match text
                .strip_prefix("missing field ")
                .and_then(|rest| rest.split(" at line").next())
            {
                Some(field) => format!("missing field {field}"),
                None => format!("wrong field or type at column {}", e.column()),
            }
        }
        _ => format!("not valid JSON at column {}", e.column()),
    }
}

async fn approve(
    State(state): State<CommandsHttp>,
    SourceAddr(source): SourceAddr,
    Path(cid): Path<String>,
    request: Request,
) -> Response {
    let result = async {
        let caller = caller(&state, source, &request.into_parts().0).await?;
        let cid = CommandId::parse(cid).map_err(|_| CommandError::NotFound("command"))?;
        state
            .gateway
            .commands()
            .approve(caller.principal(), &cid)
            .await
    }
    .await;
    match result {
        Ok(record) => Json(view(&record, now())).into_response(),
        Err(e) => command_problem(&e),
    }
}

async fn show(
    State(state): State<CommandsHttp>,
    SourceAddr(source): SourceAddr,
    Path(cid): Path<String>,
    request: Request,
) -> Response {
    let result = async {
        let caller = caller(&state, source, &request.into_parts().0).await?;
        let cid = CommandId::parse(cid).map_err(|_| CommandError::NotFound("command"))?;
        state.gateway.commands().get(caller.principal(), &cid).await
    }
    .await;
    match result {
        Ok(record) => Json(view(&record, now())).into_response(),
        Err(e) => command_problem(&e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    after: Option<String>,
    limit: Option<u32>,
}

async fn list_for_device(
    State(state): State<CommandsHttp>,
    SourceAddr(source): SourceAddr,
    Path(id): Path<String>,
    Query(query): Query<ListQuery>,
    request: Request,
) -> Response {
    let result = async {
        let caller = caller(&state, source, &request.into_parts().0).await?;
        let device = DeviceId::parse(id).map_err(|_| CommandError::NotFound("device"))?;
        let after = query
            .after
            .map(CommandId::parse)
            .transpose()
            .map_err(|_| CommandError::Invalid("after must be a command id".into()))?;
        state
            .gateway
            .commands()
            .list(
                caller.principal(),
                Some(&device),
                after.as_ref(),
                query.limit.unwrap_or(100),
            )
            .await
    }
    .await;
    match result {
        Ok(records) => {
            let now = now();
            Json(json!({ "commands": records.iter().map(|r| view(r, now)).collect::<Vec<_>>() }))
                .into_response()
        }
        Err(e) => command_problem(&e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PollQuery {
    #[serde(default)]
    wait: u64,
}

/// `GET /gateway/v1/commands?wait=SECS`: the calling device's commands.
async fn poll(
    State(state): State<CommandsHttp>,
    SourceAddr(source): SourceAddr,
    Query(query): Query<PollQuery>,
    request: Request,
) -> Response {
    let gateway = &state.gateway;
    let admitted = match calling_device(&state, source, request).await {
        Ok(admitted) => admitted,
        Err(refusal) => return refusal,
    };
    let device = admitted.device_id;
    let commands = gateway.commands();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(query.wait.min(MAX_WAIT_SECS));
    // Listening before the first look: a command queued between the look and the wait rings.
    let mut bell = commands.listen(&device);
    loop {
        let ready = match commands.deliverable(&device, POLL_BATCH).await {
            Ok(ready) => ready,
            Err(e) => return command_problem(&e),
        };
        let mut handed = Vec::with_capacity(ready.len());
        for record in ready {
            // Marked first: a command is handed out once, even to two polls at once.
            match commands.delivered(&record, "http").await {
                Ok(true) => handed.push(record),
                Ok(false) => {}
                Err(e) => return command_problem(&e),
            }
        }
        if !handed.is_empty() || !bell.wait_until(deadline).await {
            return delivery(&handed);
        }
    }
}

/// The device a request comes from (its device token, access token or TLS client
/// certificate), or the refusal to answer with (counted and audited).
pub(crate) async fn calling_device(
    state: &CommandsHttp,
    source: IpAddr,
    request: Request,
) -> Result<Admitted, Response> {
    let gateway = &state.gateway;
    let admitted = async {
        if let Err(limited) = state.limits.check_lockout(source) {
            return Err(GatewayError::RateLimited {
                retry_after_secs: limited.retry_after_secs,
            });
        }
        let (parts, _) = request.into_parts();
        let credential = request_credential(&parts, state.tls)?
            .ok_or(GatewayError::Unauthenticated("no_credential"))?;
        gateway
            .authenticate(Transport::Http, credential, source)
            .await
            .inspect_err(|e| {
                if matches!(e, GatewayError::Unauthenticated(_)) {
                    state.limits.record_failure(source);
                }
            })
    }
    .await;
    admitted.map_err(|e| {
        gateway.refused(Transport::Http, source, None, &e);
        problem(&e)
    })
}

fn delivery(records: &[CommandRecord]) -> Response {
    let commands: Vec<Value> = records
        .iter()
        .filter_map(|r| {
            Some(json!({
                "command_id": r.command_id,
                "seq": r.seq?,
                "expires_at": r.expires_at,
                "signed": URL_SAFE_NO_PAD.encode(r.signed.as_deref()?),
            }))
        })
        .collect();
    let mut response = Json(json!({ "commands": commands })).into_response();
    portcullis_http::insert_no_store(response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_field_is_named_and_no_error_quotes_the_input() {
        let missing = serde_json::from_str::<SendBody>(r#"{"name": "valve.open"}"#).unwrap_err();
        assert_eq!(json_problem(&missing), "missing field `ttl_secs`");
        for (body, secret) in [
            (r#"{"name": "x", "ttl_secs": 5, "s3cret": 1}"#, "s3cret"),
            (r#"{"name": "x", "ttl_secs": "s3cret"}"#, "s3cret"),
            (r#"{"name": "s3cret"#, "s3cret"),
        ] {
            let e = serde_json::from_str::<SendBody>(body).unwrap_err();
            let problem = json_problem(&e);
            assert!(!problem.contains(secret), "{problem}");
            assert!(problem.contains("column"), "{problem}");
        }
    }
}
