//! Fuzzes the `Authorization: Basic` client credentials of the token, introspection and
//! revocation endpoints (RFC 6749 §2.3.1: base64 of form-urlencoded id and secret). Any header
//! value must give credentials or a clean error, never a panic.
#![no_main]

use axum::http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use portcullis_oauth::client_auth::parse_basic;
use axum::http::{header::AUTHORIZATION, HeaderMap};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(value) = HeaderValue::from_bytes(bytes) {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value);
        let _ = parse_basic(&headers);
    }
});
