//! Fuzzes the JSON bodies of the admin API (a holder of an admin token is trusted to
//! administer, not to crash the server or store what the domain forbids): arbitrary bytes as
//! each request body, and every body that parses through the checks its handler runs before
//! anything is stored. Nothing may panic; a client that passes `Client::validate` must have
//! an id, scopes and audiences that parse again from their own text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_admin::devices::{ImportDevicesRequest, RegisterDeviceRequest};
use portcullis_admin::dto::{CreateClientRequest, RotateSecretRequest, UpdateClientRequest};
use portcullis_core::client::{AuthMethod, Client};
use portcullis_core::device::DeviceId;
use portcullis_core::{ClientId, ScopeSet};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<CreateClientRequest>(data) {
        let Ok(tls_client_auth) = request.tls_client_auth() else {
            return;
        };
        let client_id = match &request.client_id {
            Some(id) => match ClientId::parse(id.clone()) {
                Ok(id) => id,
                Err(_) => return,
            },
            None => ClientId::parse("c-fuzz").expect("valid id"),
        };
        let Ok(scopes) = ScopeSet::from_tokens(request.scopes.clone()) else {
            return;
        };
        let client = Client {
            client_id,
            name: request.name.clone(),
            auth_method: request.auth_method.unwrap_or(AuthMethod::ClientSecretBasic),
            scopes,
            audiences: request.audiences.clone(),
            token_ttl_secs: request.token_ttl_secs.unwrap_or(3600),
            enabled: request.enabled.unwrap_or(true),
            secret_hashes: Vec::new(),
            sealed_secret: None,
            jwks: request.jwks.as_ref().map(|j| j.to_string()),
            jwks_uri: request.jwks_uri.clone(),
            tls_client_auth,
            dpop_bound_access_tokens: request.dpop_bound_access_tokens.unwrap_or(false),
            created_at: 0,
            updated_at: 0,
            token_epoch: 0,
        };
        if client.validate().is_ok() {
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
