//! Fuzzes the token endpoint's request parsing: an arbitrary body through the OAuth form rules
//! (RFC 6749 §3.1/§3.2, RFC 8707 repeatable `resource`) and then the client_credentials request
//! checks (RFC 6749 §4.4.2). Neither may panic, whatever the bytes; errors are expected.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_core::form::Form;
use portcullis_core::token::parse_token_request;

fuzz_target!(|body: &[u8]| {
    // The same repeatable list the token endpoint passes (crates/oauth/src/router.rs).
    if let Ok(form) = Form::parse(body, &["resource"]) {
        let _ = parse_token_request(&form);
    }
});
