//! Fuzzes the two other reports a device sends in its authenticated messages
//! (`docs/gateway-protocol.md`, "Desired settings" and "Software updates"): arbitrary bytes as
//! a settings report `{"ver": N}` and as an update report `{"release", "status", "detail"}`,
//! JSON or CBOR. None may panic; whatever parses keeps the invariants the store relies on:
//! versions and releases start at 1, a detail is at most 256 characters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_gateway::device_settings::parse_applied;
use portcullis_gateway::updates::parse_report;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = parse_applied(data) {
        assert!(report.ver >= 1);
    }
    if let Ok(report) = parse_report(data) {
        assert!(report.release >= 1);
        assert!(report.detail.is_none_or(|d| d.chars().count() <= 256));
    }
});
