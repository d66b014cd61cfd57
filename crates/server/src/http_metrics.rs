//! Request counts and latency histograms per endpoint and outcome, exported at `/metrics` in
//! the Prometheus text format. Recording is a few atomic operations, so it can sit on the
//! token endpoint's hot path.

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Histogram};
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

/// The `endpoint` label values; [`endpoint_index`] picks one.
const ENDPOINTS: [&str; 16] = [
    "token",
    "introspect",
    "revoke",
    "jwks",
    "discovery",
    "health",
    "metrics",
    "est_enroll",
    "est_reenroll",
    "est_cacerts",
    "est_csrattrs",
    "crl",
    "ca_certificates",
    "ocsp",
    "admin",
    "other",
];

/// The endpoint label of a request: the route pattern, never the raw path (unbounded label
/// values would let a scanner grow the metrics without limit).
fn endpoint_index(path: Option<&MatchedPath>) -> usize {
    let label = match path.map(MatchedPath::as_str) {
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
    };
    ENDPOINTS
        .iter()
        .position(|e| *e == label)
        .unwrap_or(ENDPOINTS.len() - 1)
}

/// The `outcome` label values, by status class.
const OUTCOMES: [&str; 5] = [
    "success",
    "unauthorized",
    "rate_limited",
    "client_error",
    "server_error",
];

fn outcome_index(status: u16) -> usize {
    match status {
        200..=299 => 0,
        401 | 403 => 1,
        429 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

/// The `status` label values: the statuses Portcullis answers, and `other` (last) for any
/// other.
const STATUSES: [(u16, &str); 15] = [
    (200, "200"),
    (201, "201"),
    (204, "204"),
    (400, "400"),
    (401, "401"),
    (403, "403"),
    (404, "404"),
    (405, "405"),
    (409, "409"),
    (413, "413"),
    (415, "415"),
    (429, "429"),
    (500, "500"),
    (503, "503"),
    (0, "other"),
];

fn status_index(status: u16) -> usize {
    STATUSES
        .iter()
        .position(|(s, _)| *s == status)
        .unwrap_or(STATUSES.len() - 1)
}

/// The request counter and latency histogram of every (endpoint, status) and (endpoint,
/// outcome), each registered on its first use. Why: a labelled `metrics::counter!` hashes
/// its name and labels, allocates the label set and takes a registry lock on every call;
/// with the handle kept here a request costs an atomic load and the recording itself, on a
/// path that runs tens of thousands of times a second.
pub struct HttpMetrics {
    requests: Box<[OnceLock<Counter>]>,
    durations: Box<[OnceLock<Histogram>]>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            requests: (0..ENDPOINTS.len() * STATUSES.len())
                .map(|_| OnceLock::new())
                .collect(),
            durations: (0..ENDPOINTS.len() * OUTCOMES.len())
                .map(|_| OnceLock::new())
                .collect(),
        }
    }
}

impl HttpMetrics {
    /// The endpoint a request is counted under, read before the handler consumes it.
    pub fn endpoint(request: &Request) -> usize {
        endpoint_index(request.extensions().get::<MatchedPath>())
    }

    /// Counts one answered request and records how long it took.
    pub fn record(&self, endpoint: usize, status: u16, elapsed: Duration) {
        let endpoint_label = ENDPOINTS.get(endpoint).copied().unwrap_or("other");
        let (s, o) = (status_index(status), outcome_index(status));
        if let Some(counter) = self.requests.get(endpoint * STATUSES.len() + s) {
            let status_label = STATUSES.get(s).map_or("other", |(_, label)| *label);
            counter
                .get_or_init(|| {
                    metrics::counter!("portcullis_http_requests_total", "endpoint" => endpoint_label, "status" => status_label)
                })
                .increment(1);
        }
        if let Some(histogram) = self.durations.get(endpoint * OUTCOMES.len() + o) {
            let outcome_label = OUTCOMES.get(o).copied().unwrap_or("server_error");
            histogram
                .get_or_init(|| {
                    metrics::histogram!("portcullis_http_request_duration_seconds", "endpoint" => endpoint_label, "outcome" => outcome_label)
                })
                .record(elapsed.as_secs_f64());
        }
    }
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
    use axum::middleware::Next;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    /// The label axum's matched route gets, read the way `record_request` reads it.
    async fn label_of(routes: Router, path: &str) -> &'static str {
        let app = routes.layer(axum::middleware::from_fn(
            |request: Request, next: Next| async move {
                let label = ENDPOINTS[HttpMetrics::endpoint(&request)];
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
