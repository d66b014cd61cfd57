//! Admitting a connection: which credential, verified how, for which active device.

use std::net::IpAddr;
use std::sync::Arc;

use portcullis_core::device::DeviceId;

use super::{ConnectCredential, Gateway};
use crate::credentials::{CredentialMethod, DeviceCredentials};
use crate::device_token::{self, DeviceTokenRules};
use crate::session::{Admitted, Transport};
use crate::GatewayError;

impl Gateway {
    /// Verifies a connection credential; the device must be registered and active.
    pub async fn authenticate(
        &self,
        transport: Transport,
        credential: ConnectCredential,
        source: IpAddr,
    ) -> Result<Admitted, GatewayError> {
        let claimed = match &credential {
            ConnectCredential::Token { claimed_device, .. } => claimed_device.clone(),
            ConnectCredential::Certificate(_) => None,
        };
        let result = self.admit(credential).await;
        let result = result.and_then(|admitted| match &claimed {
            Some(name) if name != admitted.device_id.as_str() => {
                Err(GatewayError::Unauthenticated("user_name_mismatch"))
            }
            _ => Ok(admitted),
        });
        if let Err(e) = &result {
            self.refused(transport, source, claimed.as_deref(), e);
        }
        result
    }

    async fn admit(&self, credential: ConnectCredential) -> Result<Admitted, GatewayError> {
        let now = self.now();
        match credential {
            ConnectCredential::Certificate(chain) => {
                let valid = self.certificates.validate(&chain, now).await?;
                let creds = self.active_credentials(&valid.device_id).await?;
                Ok(Admitted {
                    device_id: valid.device_id,
                    model: creds.model.clone(),
                    method: CredentialMethod::Certificate,
                    credential: Some(valid.serial),
                    expires_at: Some(valid.not_after),
                })
            }
            ConnectCredential::Token { token, leaf, .. } => {
                let unverified = device_token::peek(&token)?;
                if unverified.issuer() == Some(self.config.issuer.as_str()) {
                    return self.admit_access_token(&token, leaf.as_deref()).await;
                }
                let device_id = unverified.device_id()?;
                let creds = self.active_credentials(&device_id).await?;
                let rules = DeviceTokenRules {
                    audience: self.config.audience.clone(),
                    max_lifetime_secs: self.config.max_device_token_secs,
                    skew_secs: self.config.skew_secs,
                };
                let verified = unverified.verify(&creds, &rules, now)?;
                Ok(Admitted {
                    device_id: verified.device_id,
                    model: creds.model.clone(),
                    method: verified.method,
                    credential: Some(verified.key_id),
                    expires_at: Some(verified.expires_at),
                })
            }
        }
    }

    /// An access token this server issued to a device (`client_id` = device id, issue #12
    /// item 5): active, bound to the presented certificate if it is bound, and the device
    /// registered and active.
    async fn admit_access_token(
        &self,
        token: &str,
        leaf: Option<&[u8]>,
    ) -> Result<Admitted, GatewayError> {
        let claims = self
            .tokens
            .presented_token(token, leaf)
            .await
            .map_err(|_| GatewayError::Unauthenticated("access_token_inactive"))?;
        let device_id = DeviceId::parse(claims.client_id.as_str())
            .map_err(|_| GatewayError::Unauthenticated("access_token_not_a_device"))?;
        let creds = self.active_credentials(&device_id).await?;
        Ok(Admitted {
            device_id,
            model: creds.model.clone(),
            method: CredentialMethod::AccessToken,
            credential: None,
            expires_at: Some(claims.exp),
        })
    }

    /// The device's credentials if it is registered and active.
    pub(crate) async fn active_credentials(
        &self,
        id: &DeviceId,
    ) -> Result<Arc<DeviceCredentials>, GatewayError> {
        let creds = self
            .directory
            .credentials(id)
            .await?
            .ok_or(GatewayError::Unauthenticated("unknown_device"))?;
        if !creds.active {
            return Err(GatewayError::Forbidden("device_inactive"));
        }
        Ok(creds)
    }
}
