//! Request counts and latency histograms per endpoint and outcome, exported at `/metrics` in
//! the Prometheus text format. Recording is a few atomic operations, so it can sit on the
//! token endpoint's hot path.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use portcullis_http::SourceAddr;

/// Latency buckets in seconds: the token endpoint lives in the sub-millisecond range.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Installs the process-wide Prometheus recorder (once) and returns its handle.
pub fn install_recorder() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("portcullis_http_request_duration_seconds".into()),
            LATENCY_BUCKETS,
        )?
        .install_recorder()
}

/// The endpoint label: the route pattern, never the raw path (unbounded label values would
/// let a scanner grow the metrics without limit).
fn endpoint_label(path: Option<&MatchedPath>) -> &'static str {
    match path.map(MatchedPath::as_str) {
        Some("/oauth2/token") => "token",
        Some("/oauth2/introspect") => "introspect",
        Some("/oauth2/revoke") => "revoke",
        Some("/jwks.json") => "jwks",
        Some("/.well-known/oauth-authorization-server")
        | Some("/.well-known/openid-configuration") => "discovery",
        Some("/healthz") | Some("/readyz") => "health",
        Some("/metrics") => "metrics",
        Some("/.well-known/est/simpleenroll") => "est_enroll",
        Some("/.well-known/est/simplereenroll") => "est_reenroll",
        Some("/.well-known/est/cacerts") => "est_cacerts",
        Some("/.well-known/est/csrattrs") => "est_csrattrs",
        Some("/pki/crl") | Some("/pki/crl.pem") => "crl",
        Some("/pki/ca.der") | Some("/pki/ca.pem") => "ca_certificates",
        Some("/ocsp") | Some("/ocsp/{*req}") => "ocsp",
        Some(p) if p.starts_with("/admin/v1") => "admin",
        // No route matched (404, 405): one label, so scanners cannot grow the metrics.
        _ => "other",
    }
}

fn outcome_label(status: u16) -> &'static str {
    match status {
        200..=299 => "success",
        401 | 403 => "unauthorized",
        429 => "rate_limited",
        400..=499 => "client_error",
        _ => "server_error",
    }
}

fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        201 => "201",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        413 => "413",
        415 => "415",
        429 => "429",
        500 => "500",
        503 => "503",
        _ => "other",
    }
}

/// Middleware that counts and times every request.
pub async fn record_request(request: Request, next: Next) -> Response {
    let endpoint = endpoint_label(request.extensions().get::<MatchedPath>());
    let start = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let outcome = outcome_label(status);
    metrics::counter!("portcullis_http_requests_total", "endpoint" => endpoint, "status" => status_label(status))
        .increment(1);
    metrics::histogram!("portcullis_http_request_duration_seconds", "endpoint" => endpoint, "outcome" => outcome)
        .record(start.elapsed().as_secs_f64());
    response
}

/// `GET /metrics` on its own listener (`[server] metrics_listen`): whoever can reach that
/// listener may read it.
pub async fn render(State(handle): State<PrometheusHandle>) -> Response {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

/// `GET /metrics` on the plain and TLS listeners (no `[server] metrics_listen`): only to a
/// source on this host. The source is resolved as everywhere else (a trusted proxy's
/// forwarded client counts, not the proxy), so a request relayed from outside by a local
/// reverse proxy that is configured as trusted is refused too. Metrics say which endpoints
/// fail how often and how fast keys are used: operators' data, not the public's.
pub async fn render_local(
    SourceAddr(addr): SourceAddr,
    handle: State<PrometheusHandle>,
) -> Response {
    if !addr.is_loopback() {
        return (
            StatusCode::FORBIDDEN,
            "metrics are served to this host only; set [server] metrics_listen to scrape from elsewhere\n",
        )
            .into_response();
    }
    render(handle).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    /// The label axum's matched route gets, read the way `record_request` reads it.
    async fn label_of(routes: Router, path: &str) -> &'static str {
        let app = routes.layer(axum::middleware::from_fn(
            |request: Request, next: Next| async move {
                let label = endpoint_label(request.extensions().get::<MatchedPath>());
                let mut response = next.run(request).await;
                response.extensions_mut().insert(label);
                response
            },
        ));
        let request = axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        response
            .extensions()
            .get::<&'static str>()
            .copied()
            .unwrap_or("unlabelled")
    }

    #[tokio::test]
    async fn every_surface_is_labelled_by_its_matched_route() {
        let ok = || async { "ok" };
        let routes = || {
            Router::new()
                .route("/oauth2/token", get(ok))
                .route("/.well-known/est/simpleenroll", get(ok))
                .route("/ocsp/{*req}", get(ok))
                .route("/pki/crl.pem", get(ok))
                .nest("/admin/v1", Router::new().route("/clients/{id}", get(ok)))
        };
        for (path, want) in [
            ("/oauth2/token", "token"),
            ("/.well-known/est/simpleenroll", "est_enroll"),
            ("/ocsp/MFMwUTBPME0wSzAJBgUrDgMCGgUABBQ", "ocsp"),
            ("/pki/crl.pem", "crl"),
            ("/admin/v1/clients/c-1", "admin"),
        ] {
            assert_eq!(label_of(routes(), path).await, want, "{path}");
        }
    }
}
