//! Fuzzes the gateway's per-message authentication (RFC 9052): arbitrary bytes through
//! `gateway::cose::parse`, its accessors, then `CoseMessage::verify` against a fixed device
//! (a symmetric key and a P-256 certificate). None may panic; a message that verifies must
//! carry what the wire format promises.
#![no_main]

#[path = "gateway_credentials.rs"]
mod gateway_credentials;

use gateway_credentials::{credentials, NOW};
use libfuzzer_sys::fuzz_target;
use portcullis_gateway::cose;
use portcullis_gateway::DeviceCredentials;
use std::sync::LazyLock;

static DEVICE: LazyLock<Option<DeviceCredentials>> = LazyLock::new(credentials);

fuzz_target!(|bytes: &[u8]| {
    let Ok(message) = cose::parse(bytes) else {
        return;
    };
    let (counter, timestamp, kind) = (message.counter(), message.timestamp(), message.kind());
    let _ = (message.device_id(), message.key_id());
    assert!(counter > 0);
    let Some(device) = DEVICE.as_ref() else {
        return;
    };
    if let Ok(verified) = message.verify(device, NOW) {
        assert_eq!(verified.device_id, device.device_id);
        assert_eq!((verified.counter, verified.timestamp), (counter, timestamp));
        assert_eq!(verified.method, kind.method());
    }
});
