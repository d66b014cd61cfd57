//! The one middleware every HTTP request passes, after routing and before its handler: it
//! installs the trusted-proxy list the source address is resolved with, refuses an address
//! that attack detection blocked, and counts and times the request under its matched route.
//!
//! Why one layer and not three: axum wraps every route once per `Router::layer`, and each
//! wrapping costs every request a boxed clone of the service beneath it and a boxed future.
//! Three layers cost about twenty allocations per token request, one costs a handful
//! (`bench/token_instructions.sh` counts them).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use portcullis_core::forwarded::TrustedProxies;

use crate::blocklist::Blocklist;
use crate::http_metrics::HttpMetrics;

/// What the edge needs: shared by every route of one listener.
pub struct Edge {
    /// Installed as a request extension, so every surface resolves the source address alike
    /// (`portcullis_http::SourceAddr`).
    pub trusted_proxies: Arc<TrustedProxies>,
    /// Addresses attack detection blocked: refused before any handler.
    pub blocklist: Arc<Blocklist>,
    pub metrics: HttpMetrics,
}

/// The middleware (`axum::middleware::from_fn_with_state`). A refused request is counted
/// like any other (403 under its route), so a blocked scanner shows in the request metrics.
pub async fn edge(State(edge): State<Arc<Edge>>, mut request: Request, next: Next) -> Response {
    let endpoint = HttpMetrics::endpoint(&request);
    let start = Instant::now();
    request
        .extensions_mut()
        .insert(edge.trusted_proxies.clone());
    let (parts, body) = request.into_parts();
    let response = if edge
        .blocklist
        .is_blocked(portcullis_http::client_address(&parts))
    {
        crate::blocklist::refusal(parts.uri.path())
    } else {
        next.run(Request::from_parts(parts, body)).await
    };
    edge.metrics
        .record(endpoint, response.status().as_u16(), start.elapsed());
    response
}
