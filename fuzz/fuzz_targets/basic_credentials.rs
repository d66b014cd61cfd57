//! Fuzzes the `Authorization: Basic` client credentials of the token, introspection and
//! revocation endpoints (RFC 6749 §2.3.1: base64 of form-urlencoded id and secret). Any header
//! value must give credentials or a clean error, never a panic. The Basic syntax itself is
//! `portcullis_http::basic_credentials`, which every surface shares (EST too).
#![no_main]

use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use portcullis_oauth::client_auth::parse_basic;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(value) = HeaderValue::from_bytes(bytes) {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value);
        let _ = parse_basic(&headers);
    }
});
