//! Fuzzes what a device sends back about a command (issue #13, `docs/gateway-protocol.md`,
//! "Commands and results"): arbitrary bytes as a result payload (JSON or CBOR). None may
//! panic; whatever parses has a valid command id, one of the two statuses and an output of at
//! most 4 KiB.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_core::command::{CommandId, MAX_OUTPUT_BYTES};
use portcullis_gateway::commands::parse_outcome;

fuzz_target!(|data: &[u8]| {
    if let Ok(outcome) = parse_outcome(data) {
        assert!(CommandId::parse(outcome.cid.as_str()).is_ok());
        if let Some(output) = &outcome.output {
            assert!(serde_json::to_vec(output).unwrap().len() <= MAX_OUTPUT_BYTES);
        }
    }
});
