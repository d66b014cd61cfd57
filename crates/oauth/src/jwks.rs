//! `GET /jwks.json`: the public keys that verify our tokens (RFC 7517 §5, RFC 8414 §2
//! `jwks_uri`), including the next key before it signs and retired keys until their last
//! token expires (the key ring decides which).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;

use crate::discovery::public_json;
use crate::AuthServer;

/// The key ring's encoded set, shared with the response body without a copy.
struct SharedJson(Arc<str>);

impl AsRef<[u8]> for SharedJson {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// `GET /jwks.json`. Resource servers cache it for five minutes; a new key is published
/// longer than that before it signs, so no verifier meets an unknown `kid`.
pub async fn jwks(State(server): State<Arc<AuthServer>>) -> Response {
    public_json(Bytes::from_owner(SharedJson(server.keys.jwks_json())))
}
