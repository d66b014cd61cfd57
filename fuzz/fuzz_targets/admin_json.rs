//! Fuzzes the JSON bodies of the admin API (a holder of an admin token is trusted to
//! administer, not to crash the server or store what the domain forbids): arbitrary bytes as
//! each request body, and every body that parses through the checks its handler runs before
//! anything is stored (for clients, the handlers' own `client_to_register` and
//! `apply_update`). Nothing may panic; a client that passes them must have an id and scopes
//! that parse again from their own text, and an update must list exactly the fields it
//! changed (the audit record) and touch no other.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portcullis_admin::clients::{apply_update, client_to_register};
use portcullis_admin::devices::{ImportDevicesRequest, RegisterDeviceRequest};
use portcullis_admin::dto::{CreateClientRequest, RotateSecretRequest, UpdateClientRequest};
use portcullis_admin::AdminError;
use portcullis_core::client::Client;
use portcullis_core::device::DeviceId;
use portcullis_core::{ClientId, ScopeSet};

/// A registration as the handler makes it; the registry's JWK Set check is `jwk_set`'s target.
fn register(request: CreateClientRequest) -> Result<Client, AdminError> {
    client_to_register(
        request,
        0,
        || Ok(ClientId::parse("c-fuzz")?),
        |_, jwks| Ok(jwks.to_string()),
    )
}

/// The client every update is applied to, registered once.
fn registered() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let request = serde_json::from_str(
            r#"{"name":"svc","scopes":["read"],"audiences":["https://api.example"]}"#,
        )
        .expect("fixed request");
        register(request).expect("fixed client")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<CreateClientRequest>(data) {
        // The handler's own function.
        if let Ok(client) = register(request) {
            assert!(ClientId::parse(client.client_id.as_str()).is_ok());
            assert!(ScopeSet::parse(&client.scopes.to_space_delimited()).is_ok());
            let mut changed = client.clone();
            changed.enabled = false;
            assert!(client.change_ends_tokens(&changed));
        }
    }
    if let Ok(request) = serde_json::from_slice::<UpdateClientRequest>(data) {
        // The handler's own function, on a fixed registered client.
        let original = registered();
        let mut client = original.clone();
        if let Ok(changed) = apply_update(&mut client, request, |_, jwks| Ok(jwks.to_string())) {
            // What the audit record lists is exactly what changed, and nothing else did.
            let differs = [
                ("name", client.name != original.name),
                ("scopes", client.scopes != original.scopes),
                ("audiences", client.audiences != original.audiences),
                (
                    "token_ttl_secs",
                    client.token_ttl_secs != original.token_ttl_secs,
                ),
                ("enabled", client.enabled != original.enabled),
                (
                    "dpop_bound_access_tokens",
                    client.dpop_bound_access_tokens != original.dpop_bound_access_tokens,
                ),
                (
                    "tls_client_auth",
                    client.tls_client_auth != original.tls_client_auth,
                ),
                ("jwks", client.jwks != original.jwks),
                ("jwks_uri", client.jwks_uri != original.jwks_uri),
            ];
            for (field, differs) in differs {
                let listed = changed.iter().filter(|name| **name == field).count();
                assert_eq!(
                    listed,
                    usize::from(differs),
                    "{field}: listed {listed} times"
                );
            }
            assert_eq!(changed.len(), differs.iter().filter(|(_, d)| *d).count());
            let mut unchanged = client.clone();
            unchanged.name = original.name.clone();
            unchanged.scopes = original.scopes.clone();
            unchanged.audiences = original.audiences.clone();
            unchanged.token_ttl_secs = original.token_ttl_secs;
            unchanged.enabled = original.enabled;
            unchanged.dpop_bound_access_tokens = original.dpop_bound_access_tokens;
            unchanged.tls_client_auth = original.tls_client_auth.clone();
            unchanged.jwks = original.jwks.clone();
            unchanged.jwks_uri = original.jwks_uri.clone();
            assert_eq!(
                &unchanged, original,
                "a field an update may not touch changed"
            );
        }
    }
    if let Ok(request) = serde_json::from_slice::<RegisterDeviceRequest>(data) {
        let _ = DeviceId::parse(&request.device_id);
    }
    let _ = serde_json::from_slice::<ImportDevicesRequest>(data);
    let _ = serde_json::from_slice::<RotateSecretRequest>(data);
});
