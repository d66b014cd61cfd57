//! The HTTP adapter: `POST /gateway/v1/telemetry[/{stream}]`, and the embedded sink's
//! resumable stream `GET /gateway/v1/telemetry/stream`.
//!
//! A message authenticates itself (`Content-Type: application/cose`: per-message
//! authentication, fine over plain HTTP), or rides on a bearer device token, or on the TLS
//! client certificate. Bearer credentials cross plain HTTP only from loopback (a local
//! TLS-terminating proxy): anywhere else they would be readable on the wire.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use portcullis_http::{
    has_media_type, presented_access_token, read_bounded, AbuseLimits, BodyError, PeerCertificates,
    Problem, SourceAddr,
};
use serde::Deserialize;
use serde_json::json;

use crate::broker_auth::BrokerHook;
use crate::service::{ConnectCredential, Destination, DpopRequest, Gateway};
use crate::session::Transport;
use crate::sink::embedded::EmbeddedLog;
use crate::GatewayError;

/// The media type of a COSE message (RFC 9052 §9).
pub const APPLICATION_COSE: &str = "application/cose";
/// The scope a client needs to read the embedded telemetry stream.
pub const TELEMETRY_READ_SCOPE: &str = "telemetry:read";

#[derive(Clone)]
struct HttpState {
    gateway: Arc<Gateway>,
    log: Option<EmbeddedLog>,
    limits: Arc<AbuseLimits>,
    tls: bool,
}

/// The gateway's routes for one listener (`tls`: the HTTPS one). `log` is the embedded sink
/// when it is the sink in use (its stream endpoint exists only then); `broker_hook` the
/// RabbitMQ auth back-end when `[gateway.broker_hook]` is enabled.
pub fn router(
    gateway: Arc<Gateway>,
    log: Option<EmbeddedLog>,
    limits: Arc<AbuseLimits>,
    tls: bool,
    broker_hook: Option<&BrokerHook>,
) -> Router {
    let trust = crate::trust_http::router(Arc::clone(&gateway));
    let state = HttpState {
        gateway,
        log,
        limits,
        tls,
    };
    let routes = Router::new()
        .route("/gateway/v1/telemetry", post(publish_default))
        .route("/gateway/v1/telemetry/stream", get(stream))
        .route("/gateway/v1/telemetry/{stream}", post(publish_stream))
        .route("/gateway/v1/results", post(publish_result))
        .route("/gateway/v1/settings/applied", post(publish_applied))
        .route("/gateway/v1/updates/status", post(publish_update_report))
        .with_state(state.clone())
        .merge(trust)
        .merge(crate::commands::http::router(
            state.gateway,
            state.limits,
            state.tls,
        ));
    match broker_hook {
        Some(hook) => routes.merge(hook.router()),
        None => routes,
    }
}

/// A refusal as problem+json; says which kind of check failed, never which detail.
pub(crate) fn problem(error: &GatewayError) -> Response {
    let (status, slug, title, detail) = match error {
        GatewayError::Malformed(_) => (
            StatusCode::BAD_REQUEST,
            "malformed-message",
            "Malformed message",
            "the message or credential does not parse",
        ),
        GatewayError::Unauthenticated(_) => (
            StatusCode::UNAUTHORIZED,
            "not-authenticated",
            "Not authenticated",
            "the credential or the message's authentication is not valid",
        ),
        GatewayError::Forbidden(_) => (
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            "the device may not send this message",
        ),
        GatewayError::Replay(_) => (
            StatusCode::CONFLICT,
            "replay",
            "Replayed or stale message",
            "the message's counter is not above the last one accepted, or its time is outside the window",
        ),
        GatewayError::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "Message too large",
            "the message exceeds the gateway's size limit",
        ),
        GatewayError::UnsupportedMediaType => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send application/cose, or authenticate the connection",
        ),
        GatewayError::RateLimited { .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
            "slow down and retry later",
        ),
        GatewayError::Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Temporarily unavailable",
            "the message was not stored; send it again later",
        ),
        GatewayError::Internal(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the message was not stored",
        ),
    };
    let mut response = Problem::new(status, slug, title, detail.to_owned()).into_response();
    let headers = response.headers_mut();
    match error {
        GatewayError::RateLimited { retry_after_secs } => {
            headers.insert(RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        GatewayError::Unavailable(_) => {
            headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        GatewayError::Unauthenticated(_) => {
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"gateway\""),
            );
        }
        _ => {}
    }
    response
}

async fn publish_default(
    State(state): State<HttpState>,
    SourceAddr(source): SourceAddr,
    request: Request,
) -> Response {
    publish(state, source, Destination::Telemetry(None), request).await
}

/// `POST /gateway/v1/settings/applied`: the settings version a device applied.
async fn publish_applied(
    State(state): State<HttpState>,
    SourceAddr(source): SourceAddr,
    request: Request,
) -> Response {
    publish(state, source, Destination::SettingsApplied, request).await
}

/// `POST /gateway/v1/updates/status`: what a device did with a release.
async fn publish_update_report(
    State(state): State<HttpState>,
    SourceAddr(source): SourceAddr,
    request: Request,
) -> Response {
    publish(state, source, Destination::UpdateReport, request).await
}

/// `POST /gateway/v1/results`: a device's result of a command, authenticated as telemetry is.
async fn publish_result(
    State(state): State<HttpState>,
    SourceAddr(source): SourceAddr,
    request: Request,
) -> Response {
    publish(state, source, Destination::CommandResult, request).await
}

async fn publish_stream(
    State(state): State<HttpState>,
    SourceAddr(source): SourceAddr,
    Path(stream): Path<String>,
    request: Request,
) -> Response {
    publish(
        state,
        source,
        Destination::Telemetry(Some(&stream)),
        request,
    )
    .await
}

async fn publish(
    state: HttpState,
    source: IpAddr,
    destination: Destination<'_>,
    request: Request,
) -> Response {
    match accept(&state, source, destination, request).await {
        Ok(message_id) => (
            StatusCode::ACCEPTED,
            Json(json!({ "message_id": message_id })),
        )
            .into_response(),
        Err(e) => {
            let mut response = problem(&e);
            if let GatewayError::Unauthenticated(reason) = e {
                add_dpop_challenge(&mut response, &state.gateway, reason);
            }
            response
        }
    }
}

/// A token refused for its DPoP proof is answered with a `DPoP` challenge and, for
/// `use_dpop_nonce`, the nonce to retry with (RFC 9449 §7.1, §9); `reason` is the refusal's
/// RFC 9449 error code then ([`portcullis_ports::TokenRejection::dpop_error`]).
pub(crate) fn add_dpop_challenge(response: &mut Response, gateway: &Gateway, reason: &str) {
    if matches!(reason, "invalid_dpop_proof" | "use_dpop_nonce") {
        let nonce = gateway.tokens().dpop_nonce();
        portcullis_http::insert_dpop_challenge(
            response.headers_mut(),
            "gateway",
            reason,
            nonce.as_deref(),
        );
    }
}

async fn accept(
    state: &HttpState,
    source: IpAddr,
    destination: Destination<'_>,
    request: Request,
) -> Result<String, GatewayError> {
    let gateway = &state.gateway;
    if let Err(limited) = state.limits.check_lockout(source) {
        let e = GatewayError::RateLimited {
            retry_after_secs: limited.retry_after_secs,
        };
        gateway.refused(Transport::Http, source, None, &e);
        return Err(e);
    }
    let (parts, body) = request.into_parts();
    let cose = has_media_type(&parts.headers, APPLICATION_COSE);
    let credential = match request_credential(&parts, state.tls) {
        Ok(credential) => credential,
        Err(e) => {
            gateway.refused(Transport::Http, source, None, &e);
            return Err(e);
        }
    };
    if credential.is_none() && !cose {
        // A body of another type could only be taken on an authenticated connection.
        let e = if parts.headers.contains_key(CONTENT_TYPE) {
            GatewayError::UnsupportedMediaType
        } else {
            GatewayError::Unauthenticated("no_credential")
        };
        gateway.refused(Transport::Http, source, None, &e);
        return Err(e);
    }
    let limit = gateway.limits().max_message_bytes;
    let payload = match read_bounded(&parts.headers, body, limit).await {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge(_)) => {
            let e = GatewayError::TooLarge;
            gateway.refused(Transport::Http, source, None, &e);
            return Err(e);
        }
        Err(_) => return Err(GatewayError::Malformed("unreadable_body")),
    };
    let admitted = match credential {
        Some(credential) => match gateway
            .authenticate(Transport::Http, credential, source)
            .await
        {
            Ok(a) => Some(a),
            Err(e) => {
                if matches!(e, GatewayError::Unauthenticated(_)) {
                    state.limits.record_failure(source);
                }
                return Err(e);
            }
        },
        None => None,
    };
    let result = gateway
        .accept(
            Transport::Http,
            source,
            admitted.as_ref(),
            destination,
            payload,
            cose,
        )
        .await;
    if let Err(GatewayError::Unauthenticated(_)) = &result {
        state.limits.record_failure(source);
    }
    result.map(|a| a.message_id)
}

/// The device credential a request carries: a bearer device (or access) token — refused over
/// plain HTTP except from loopback (a local TLS-terminating proxy), where anyone on the path
/// could read it — or else the TLS client certificate.
pub(crate) fn request_credential(
    parts: &Parts,
    tls: bool,
) -> Result<Option<ConnectCredential>, GatewayError> {
    let peer_is_loopback = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(addr)| addr.ip().is_loopback());
    if let Some((token, presented)) = presented_access_token(parts) {
        if !tls && !peer_is_loopback {
            return Err(GatewayError::Forbidden("bearer_over_plain_http"));
        }
        return Ok(Some(ConnectCredential::Token {
            token: token.to_owned(),
            claimed_device: None,
            leaf: presented.certificate.map(<[u8]>::to_vec),
            dpop: presented.dpop.map(|d| DpopRequest {
                proof: d.proof.map(str::to_owned),
                method: d.method.to_owned(),
                path: d.path.to_owned(),
            }),
        }));
    }
    Ok(parts
        .extensions
        .get::<PeerCertificates>()
        .filter(|p| p.leaf().is_some())
        .map(|p| ConnectCredential::Certificate(p.0.as_ref().clone())))
}

#[derive(Debug, Deserialize)]
struct StreamQuery {
    after: Option<u64>,
    device: Option<String>,
    limit: Option<usize>,
    #[serde(default)]
    follow: bool,
}

/// Most records one page (or one read of a followed stream) returns.
const MAX_PAGE: usize = 10_000;
/// How long a followed stream waits for new records before sending a keep-alive.
const FOLLOW_WAIT: Duration = Duration::from_secs(15);

fn read_problem(status: StatusCode, slug: &str, title: &str, detail: &str) -> Response {
    let mut r = Problem::new(status, slug, title, detail.to_owned()).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"gateway\""),
        );
    }
    r
}

/// `GET /gateway/v1/telemetry/stream?after=POSITION[&device=ID][&limit=N][&follow=true]`:
/// records after a position, as NDJSON or (with `Accept: text/event-stream`) Server-Sent
/// Events whose `id` is the position, so a reader resumes with `after` or `Last-Event-ID`.
async fn stream(
    State(state): State<HttpState>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let Some(log) = state.log.clone() else {
        return read_problem(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            "the telemetry stream is served only by the embedded sink",
        );
    };
    let (parts, _body) = request.into_parts();
    let Some((token, presented)) = presented_access_token(&parts) else {
        return read_problem(
            StatusCode::UNAUTHORIZED,
            "not-authenticated",
            "Not authenticated",
            "a bearer access token with scope telemetry:read is required",
        );
    };
    let claims = match state
        .gateway
        .tokens()
        .presented_token(token, presented)
        .await
    {
        Ok(claims) => claims,
        Err(rejection) => {
            let mut response = read_problem(
                StatusCode::UNAUTHORIZED,
                "not-authenticated",
                "Not authenticated",
                "the access token is not active, or its DPoP proof is missing or invalid",
            );
            if let Some(reason) = rejection.dpop_error() {
                add_dpop_challenge(&mut response, &state.gateway, reason);
            }
            return response;
        }
    };
    let allowed = claims
        .scope
        .as_deref()
        .is_some_and(|s| s.split(' ').any(|x| x == TELEMETRY_READ_SCOPE));
    if !allowed {
        return read_problem(
            StatusCode::FORBIDDEN,
            "insufficient-scope",
            "Insufficient scope",
            "the token lacks scope telemetry:read",
        );
    }
    let sse = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    let last_event = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let after = query.after.or(last_event).unwrap_or(0);
    let limit = query.limit.unwrap_or(1_000).clamp(1, MAX_PAGE);
    let device = query.device.clone();
    let follow = query.follow;

    let body = futures_util::stream::unfold((after, false), move |(after, done)| {
        let log = log.clone();
        let device = device.clone();
        async move {
            if done {
                return None;
            }
            let page = match log.read_after(after, limit, device).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the telemetry log failed");
                    return None;
                }
            };
            if page.is_empty() {
                if !follow {
                    return None;
                }
                log.wait_after(after, FOLLOW_WAIT).await;
                let keep_alive: &[u8] = if sse { b": keep-alive\n\n" } else { b"" };
                return Some((Ok::<_, std::io::Error>(keep_alive.to_vec()), (after, false)));
            }
            let next = page.last().map_or(after, |r| r.seq);
            let mut chunk = Vec::with_capacity(page.len() * 512);
            for record in &page {
                if sse {
                    chunk.extend_from_slice(format!("id: {}\ndata: ", record.seq).as_bytes());
                }
                if serde_json::to_writer(&mut chunk, record).is_err() {
                    return None;
                }
                chunk.extend_from_slice(if sse { b"\n\n" } else { b"\n" });
            }
            Some((Ok(chunk), (next, !follow)))
        }
    });
    let content_type = if sse {
        "text/event-stream"
    } else {
        "application/x-ndjson"
    };
    let mut response = Response::new(Body::from_stream(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    portcullis_http::insert_no_store(response.headers_mut());
    response
}
