//! Fuzzes the JSON bodies of the admin API (a holder of an admin token is trusted to
//! administer, not to crash the server or store what the domain forbids): arbitrary bytes as
//! each request body, and every body that parses through the checks its handler runs before
//! anything is stored (for clients, the handler's own `client_to_register`). Nothing may
//! panic; a client that passes them must have an id and scopes that parse again from their
//! own text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_admin::clients::client_to_register;
use portcullis_admin::devices::{ImportDevicesRequest, RegisterDeviceRequest};
use portcullis_admin::dto::{CreateClientRequest, RotateSecretRequest, UpdateClientRequest};
use portcullis_core::device::DeviceId;
use portcullis_core::{ClientId, ScopeSet};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<CreateClientRequest>(data) {
        // The handler's own function; the registry's JWK Set check is `jwk_set`'s target.
        let registered = client_to_register(
            request,
            0,
            || Ok(ClientId::parse("c-fuzz")?),
            |_, jwks| Ok(jwks.to_string()),
        );
        if let Ok(client) = registered {
            assert!(client.validate().is_ok());
            assert!(ClientId::parse(client.client_id.as_str()).is_ok());
            assert!(ScopeSet::parse(&client.scopes.to_space_delimited()).is_ok());
            let mut changed = client.clone();
            changed.enabled = false;
            assert!(client.change_ends_tokens(&changed));
        }
    }
    if let Ok(request) = serde_json::from_slice::<UpdateClientRequest>(data) {
        let _ = request.tls_client_auth();
        if let Some(scopes) = request.scopes {
            let _ = ScopeSet::from_tokens(scopes);
        }
    }
    if let Ok(request) = serde_json::from_slice::<RegisterDeviceRequest>(data) {
        let _ = DeviceId::parse(&request.device_id);
    }
    let _ = serde_json::from_slice::<ImportDevicesRequest>(data);
    let _ = serde_json::from_slice::<RotateSecretRequest>(data);
});
