//! Fuzzes device tokens (connection authentication): arbitrary UTF-8 through
//! `gateway::device_token::peek`, its accessors, then `UnverifiedToken::verify` against a
//! fixed device (HS256 key and P-256 certificate), audience and time. None may panic.
#![no_main]

#[path = "gateway_credentials.rs"]
mod gateway_credentials;

use gateway_credentials::{credentials, NOW};
use libfuzzer_sys::fuzz_target;
use portcullis_gateway::device_token::{self, DeviceTokenRules};
use portcullis_gateway::DeviceCredentials;
use std::sync::LazyLock;

/// The `aud` of the fixture tokens.
const AUDIENCE: &str = "https://auth.example.test";

static DEVICE: LazyLock<Option<DeviceCredentials>> = LazyLock::new(credentials);

fuzz_target!(|token: &str| {
    let Ok(unverified) = device_token::peek(token) else {
        return;
    };
    let _ = (unverified.issuer(), unverified.kid(), unverified.alg());
    let claimed = unverified.device_id();
    let Some(device) = DEVICE.as_ref() else {
        return;
    };
    let rules = DeviceTokenRules {
        audience: AUDIENCE.to_owned(),
        max_lifetime_secs: 3600,
        skew_secs: 60,
    };
    if let Ok(verified) = unverified.verify(device, &rules, NOW) {
        assert_eq!(claimed.ok().as_ref(), Some(&verified.device_id));
        assert!(verified.expires_at > NOW - 60);
    }
});
