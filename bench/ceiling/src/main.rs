//! The performance ceiling for Portcullis's token endpoint.
//!
//! Why it exists: a token request costs at least an HTTP round trip, a form parse, one ES256
//! signature and a JSON body. This server does exactly that and nothing else (no client
//! authentication, no storage, no audit), so its tokens per second bound what Portcullis can
//! reach on the same machine; `GET /` gives the bare axum number beneath that.
//!
//! Usage: `portcullis-bench-ceiling [ADDR]` (default `127.0.0.1:8090`). Prints
//! `ceiling listening on http://ADDR` once ready. Driven by `bench/token_load.sh`.

// A benchmark fixture, not a product: its inputs are the load generator's, and it must
// stay the same code across measurements.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;

/// Lifetime of the issued tokens, matching a typical machine token.
const TOKEN_TTL_SECS: u64 = 300;
/// Key id published in the JWS header.
const KID: &str = "ceiling-es256";

/// What every request shares: the signing key and the pre-encoded parts of the JWT.
struct Ceiling {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    /// base64url of the fixed JOSE header, followed by the `.` separator.
    header_b64: String,
    issuer: String,
    /// The public key as a JWK Set, so verifiers can check the ceiling's tokens are real.
    jwks: serde_json::Value,
}

/// Form fields of a client_credentials request that shape the token (RFC 6749 §4.4.2).
#[derive(Default)]
struct TokenForm {
    grant_type: Option<String>,
    scope: Option<String>,
    resource: Option<String>,
    client_id: Option<String>,
}

impl TokenForm {
    /// Splits an `application/x-www-form-urlencoded` body; decodes only `+` and `%XX`.
    fn parse(body: &[u8]) -> Self {
        let mut form = TokenForm::default();
        for pair in body.split(|b| *b == b'&') {
            let mut kv = pair.splitn(2, |b| *b == b'=');
            let key = kv.next().unwrap_or_default();
            let value = percent_decode(kv.next().unwrap_or_default());
            match key {
                b"grant_type" => form.grant_type = Some(value),
                b"scope" => form.scope = Some(value),
                b"resource" | b"audience" => form.resource = Some(value),
                b"client_id" => form.client_id = Some(value),
                _ => {}
            }
        }
        form
    }
}

/// Decodes `+` and `%XX` escapes; malformed escapes are kept literally.
fn percent_decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < raw.len() => {
                let hex = std::str::from_utf8(&raw[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The client id named by a Basic Authorization header (RFC 6749 §2.3.1), not checked.
fn basic_client_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let (id, _secret) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some(percent_decode(id.as_bytes()))
}

/// An RFC 6749 §5.2 error body.
fn oauth_error(status: StatusCode, code: &str) -> Response {
    let body = serde_json::json!({ "error": code });
    (status, axum::Json(body)).into_response()
}

/// `POST /token`: parse, sign one RFC 9068 access token, answer RFC 6749 §5.1 JSON.
async fn issue_token(
    State(ceiling): State<Arc<Ceiling>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = TokenForm::parse(&body);
    if form.grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let Some(client_id) = basic_client_id(&headers).or(form.client_id) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let mut jti = [0u8; 16];
    if ceiling.rng.fill(&mut jti).is_err() {
        return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error");
    }
    let audience = form
        .resource
        .unwrap_or_else(|| "urn:portcullis:bench".to_owned());
    // RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat, jti are required.
    let mut claims = serde_json::json!({
        "iss": ceiling.issuer,
        "sub": client_id,
        "aud": audience,
        "exp": now + TOKEN_TTL_SECS,
        "iat": now,
        "jti": URL_SAFE_NO_PAD.encode(jti),
        "client_id": client_id,
    });
    if let Some(scope) = &form.scope {
        claims["scope"] = serde_json::Value::String(scope.clone());
    }
    let payload = match serde_json::to_vec(&claims) {
        Ok(payload) => payload,
        Err(_) => return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
    };
    let mut jwt = String::with_capacity(ceiling.header_b64.len() + payload.len() * 4 / 3 + 90);
    jwt.push_str(&ceiling.header_b64);
    URL_SAFE_NO_PAD.encode_string(&payload, &mut jwt);
    let signature = match ceiling.key.sign(&ceiling.rng, jwt.as_bytes()) {
        Ok(signature) => signature,
        Err(_) => return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
    };
    jwt.push('.');
    URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut jwt);

    let mut response = serde_json::json!({
        "access_token": jwt,
        "token_type": "Bearer",
        "expires_in": TOKEN_TTL_SECS,
    });
    if let Some(scope) = form.scope {
        response["scope"] = serde_json::Value::String(scope);
    }
    let mut response = axum::Json(response).into_response();
    // RFC 6749 §5.1: token responses must not be cached.
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /jwks.json`: the signing key's public half (RFC 7517 §5).
async fn publish_jwks(State(ceiling): State<Arc<Ceiling>>) -> axum::Json<serde_json::Value> {
    axum::Json(ceiling.jwks.clone())
}

/// `GET /`: the bare axum round trip.
async fn bare() -> &'static str {
    "ok"
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".to_owned())
        .parse()?;
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| "cannot generate the P-256 key")?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .map_err(|_| "cannot load the P-256 key")?;
    // SEC 1 §2.3.3 uncompressed point: 0x04 || x || y, 32 bytes each for P-256.
    let point = key.public_key().as_ref();
    let (x, y) = point
        .get(1..65)
        .ok_or("unexpected public key encoding")?
        .split_at(32);
    let jwks = serde_json::json!({ "keys": [{
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": KID,
        "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
    }]});
    let jose_header = serde_json::json!({ "alg": "ES256", "typ": "at+jwt", "kid": KID });
    let mut header_b64 = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&jose_header)?);
    header_b64.push('.');

    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let ceiling = Arc::new(Ceiling {
        key,
        rng,
        header_b64,
        issuer: format!("http://{local}"),
        jwks,
    });
    let app = Router::new()
        .route("/", get(bare))
        .route("/token", post(issue_token))
        .route("/jwks.json", get(publish_jwks))
        .with_state(ceiling);
    println!("ceiling listening on http://{local}");
    axum::serve(listener, app).await?;
    Ok(())
}
