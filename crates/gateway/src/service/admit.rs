//! Admitting a connection: which credential, verified how, for which active device.

use crate::credentials_memo::CredentialsMemo;
use std::net::IpAddr;
use std::sync::Arc;

use portcullis_core::device::DeviceId;

use super::DpopRequest;
use super::{ConnectCredential, Gateway};
use crate::credentials::{CredentialMethod, DeviceCredentials};
use crate::device_token::{self, DeviceTokenRules};
use crate::session::{Admitted, Transport};
use crate::GatewayError;
use portcullis_ports::Presentation;

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
        // A refusal because the device is not active names it (its certificate or access
        // token verified, or its device token claims it): attack detection counts an
        // inactive device that keeps trying.
        let (result, inactive) = match self.admit(credential, source).await {
            Ok(admitted) => (Ok(admitted), None),
            Err((e, device)) => (Err(e), device),
        };
        let result = result.and_then(|admitted| match &claimed {
            Some(name) if name != admitted.device_id.as_str() => {
                Err(GatewayError::Unauthenticated("user_name_mismatch"))
            }
            _ => Ok(admitted),
        });
        if let Err(e) = &result {
            let named = claimed.or_else(|| inactive.map(|d| d.to_string()));
            self.refused(transport, source, named.as_deref(), e);
        }
        result
    }

    /// Admits a credential; a refusal carries the device when it is refused for not being
    /// active.
    async fn admit(
        &self,
        credential: ConnectCredential,
        source: IpAddr,
    ) -> Result<Admitted, (GatewayError, Option<DeviceId>)> {
        let now = self.now();
        let plain = |e: GatewayError| (e, None);
        match credential {
            ConnectCredential::Certificate(chain) => {
                let valid = self
                    .certificates
                    .validate(&chain, now)
                    .await
                    .map_err(|refusal| (refusal.error, refusal.revoked_device))?;
                let creds = self.active_or_named(&valid.device_id).await?;
                Ok(Admitted {
                    device_id: valid.device_id,
                    model: creds.model.clone(),
                    method: CredentialMethod::Certificate,
                    credential: Some(valid.serial),
                    expires_at: Some(valid.not_after),
                })
            }
            ConnectCredential::Token {
                token, leaf, dpop, ..
            } => {
                let unverified = device_token::peek(&token).map_err(plain)?;
                if unverified.issuer() == Some(self.config.issuer.as_str()) {
                    let presented = Presentation {
                        certificate: leaf.as_deref(),
                        dpop: dpop.as_ref().map(DpopRequest::presentation),
                        // A bound token used without its certificate or proof is audited
                        // (`token.use_refused`) with the connection's address.
                        source: Some(source),
                    };
                    return self.admit_access_token(&token, presented).await;
                }
                if dpop.is_some() {
                    // A device token is the device's own signature already; `DPoP` is for
                    // access tokens bound to a key (RFC 9449 §7.1).
                    return Err(plain(GatewayError::Unauthenticated("not_dpop_bound")));
                }
                let device_id = unverified.device_id().map_err(plain)?;
                // Verified before the device's state is judged: a refusal for the state then
                // names a device that really signed, so nobody can run up another device's
                // `inactive_device_use` count with tokens they made up.
                let creds = self
                    .registered_credentials(&device_id)
                    .await
                    .map_err(plain)?;
                let rules = DeviceTokenRules {
                    audience: self.config.audience.clone(),
                    max_lifetime_secs: self.config.max_device_token_secs,
                    skew_secs: self.config.skew_secs,
                };
                let verified = unverified.verify(&creds, &rules, now).map_err(plain)?;
                if !creds.active {
                    return Err((GatewayError::Forbidden("device_inactive"), Some(device_id)));
                }
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
        presented: Presentation<'_>,
    ) -> Result<Admitted, (GatewayError, Option<DeviceId>)> {
        let claims = self
            .tokens
            .presented_token(token, presented)
            .await
            .map_err(|rejection| {
                // DPoP refusals keep their name: the HTTP adapter answers them with a DPoP
                // challenge (RFC 9449 §7.1) instead of a bearer one.
                let reason = rejection.dpop_error().unwrap_or("access_token_inactive");
                (GatewayError::Unauthenticated(reason), None)
            })?;
        let device_id = DeviceId::parse(claims.client_id.as_str()).map_err(|_| {
            (
                GatewayError::Unauthenticated("access_token_not_a_device"),
                None,
            )
        })?;
        let creds = self.active_or_named(&device_id).await?;
        Ok(Admitted {
            device_id,
            model: creds.model.clone(),
            method: CredentialMethod::AccessToken,
            credential: None,
            expires_at: Some(claims.exp),
        })
    }

    /// [`Self::active_credentials`], a refusal naming the device.
    async fn active_or_named(
        &self,
        id: &DeviceId,
    ) -> Result<Arc<DeviceCredentials>, (GatewayError, Option<DeviceId>)> {
        self.active_credentials(id).await.map_err(|e| match e {
            GatewayError::Forbidden("device_inactive") => (e, Some(id.clone())),
            other => (other, None),
        })
    }

    /// The device's credentials if it is registered and active.
    /// [`Self::active_credentials`], from the session's copy while it is current.
    pub(crate) async fn session_credentials(
        &self,
        memo: Option<&CredentialsMemo>,
        id: &DeviceId,
    ) -> Result<Arc<DeviceCredentials>, GatewayError> {
        let Some(memo) = memo else {
            return self.active_credentials(id).await;
        };
        // Read before the credentials: a change after this moment moves it again.
        let generation = self.directory.generation();
        if let Some(creds) = memo.get(generation) {
            return Ok(creds);
        }
        let creds = self.active_credentials(id).await?;
        memo.keep(generation, &creds);
        Ok(creds)
    }

    pub(crate) async fn active_credentials(
        &self,
        id: &DeviceId,
    ) -> Result<Arc<DeviceCredentials>, GatewayError> {
        let creds = self.registered_credentials(id).await?;
        if !creds.active {
            return Err(GatewayError::Forbidden("device_inactive"));
        }
        Ok(creds)
    }

    /// The device's credentials whatever its state, for a message that must be verified
    /// before the state is judged (see `verify`).
    pub(crate) async fn registered_credentials(
        &self,
        id: &DeviceId,
    ) -> Result<Arc<DeviceCredentials>, GatewayError> {
        self.directory
            .credentials(id)
            .await?
            .ok_or(GatewayError::Unauthenticated("unknown_device"))
    }
}
