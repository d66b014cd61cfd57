//! Devices at the token endpoint (issue #12 item 5): the device PKI's registry as the OAuth
//! crate's `DeviceClients` port. A registered device authenticates with its certificate
//! (`tls_client_auth`, `client_id` = its id) and gets certificate-bound tokens for the scopes
//! of its model's `[gateway.models.<model>] scopes`.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use portcullis_core::client::{AuthMethod, Client, TlsClientAuthMatch, DEFAULT_TOKEN_TTL_SECS};
use portcullis_core::device::{DeviceId, DeviceState};
use portcullis_core::{ClientId, ScopeSet};
use portcullis_pki::{Pki, PkiError};
use portcullis_ports::{DeviceClients, PortError};

pub struct PkiDeviceClients {
    pub pki: Arc<Pki>,
    /// Scopes per model.
    pub scopes: BTreeMap<String, ScopeSet>,
}

#[async_trait]
impl DeviceClients for PkiDeviceClients {
    async fn device_client(&self, id: &ClientId) -> Result<Option<Client>, PortError> {
        let Ok(device_id) = DeviceId::parse(id.as_str()) else {
            return Ok(None);
        };
        let device = match self.pki.device(&device_id).await {
            Ok(device) => device,
            Err(PkiError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let scopes = device
            .model
            .as_ref()
            .and_then(|m| self.scopes.get(m))
            .cloned()
            .unwrap_or_default();
        Ok(Some(Client {
            client_id: id.clone(),
            name: format!("device {device_id}"),
            auth_method: AuthMethod::TlsClientAuth,
            scopes,
            audiences: Vec::new(),
            token_ttl_secs: DEFAULT_TOKEN_TTL_SECS,
            enabled: matches!(
                device.state,
                DeviceState::Registered | DeviceState::Enrolled
            ),
            secret_hashes: Vec::new(),
            sealed_secret: None,
            jwks: None,
            jwks_uri: None,
            tls_client_auth: Some(TlsClientAuthMatch::SanUri(device_id.uri())),
            created_at: device.created_at,
            updated_at: device.updated_at,
            // Any change to the device (suspension, resumption, re-enrollment) gives it a new
            // epoch, so the tokens it had end at once; never 0 (the epoch of clients stored
            // before epochs).
            dpop_bound_access_tokens: false,
            token_epoch: u32::try_from(device.updated_at.rem_euclid(i64::from(u32::MAX)))
                .unwrap_or(1)
                .max(1),
        }))
    }
}
