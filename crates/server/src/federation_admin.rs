//! The admin API's `/federation` routes over the authorization server's federation trust:
//! the configuration's part shown read-only, the admin part replaced whole (validated with
//! the configuration's, stored by compare-and-swap, audited `federation.changed`).

use std::sync::Arc;

use async_trait::async_trait;
use portcullis_admin::federation::{FederationAdmin, FederationView};
use portcullis_admin::AdminError;
use portcullis_core::federation::TrustSet;
use portcullis_core::ClientId;
use portcullis_oauth::federation::TrustError;
use portcullis_oauth::AuthServer;
use portcullis_ports::{ClientRegistry as _, PortError};
use portcullis_store::StoreError;

/// The federation trust as the admin API manages it.
pub struct OAuthFederationAdmin {
    pub server: Arc<AuthServer>,
}

impl OAuthFederationAdmin {
    async fn view(&self) -> Result<FederationView, AdminError> {
        let (config, admin) = self.server.federation().parts();
        let mut warnings: Vec<String> = self
            .server
            .federation()
            .not_in_force()
            .into_iter()
            .map(|name| {
                format!(
                    "SAML identity provider {name} (and its policies) is not in force on this \
                     node: this build has no SAML support"
                )
            })
            .collect();
        for policy in config.policies.iter().chain(&admin.policies) {
            let client = match ClientId::parse(policy.client_id.as_str()) {
                Ok(id) => match self.server.client(&id).await {
                    Ok(client) => Some(client),
                    Err(PortError::UnknownClient(_)) => None,
                    Err(e) => return Err(e.into()),
                },
                Err(_) => None,
            };
            match client {
                Some(client) if client.enabled => {}
                Some(_) => warnings.push(format!(
                    "policy {} maps to client {}, which is disabled: its tokens are refused",
                    policy.name, policy.client_id
                )),
                None => warnings.push(format!(
                    "policy {} maps to client {}, which does not exist: create it, or its \
                     tokens are refused",
                    policy.name, policy.client_id
                )),
            }
        }
        Ok(FederationView {
            config,
            admin,
            warnings,
        })
    }
}

fn admin_error(e: TrustError) -> AdminError {
    match e {
        TrustError::Invalid(e) => AdminError::Invalid(e),
        TrustError::Conflict => AdminError::Conflict(e.to_string()),
        TrustError::Store(e) => AdminError::Store(e),
        TrustError::AuditUnavailable => {
            AdminError::AuditUnavailable(portcullis_audit::AuditUnavailable)
        }
        TrustError::Corrupt(why) => AdminError::Store(StoreError::Corrupt(why)),
    }
}

#[async_trait]
impl FederationAdmin for OAuthFederationAdmin {
    async fn federation(&self) -> Result<FederationView, AdminError> {
        self.view().await
    }

    async fn set_federation(
        &self,
        actor: &str,
        admin: TrustSet,
    ) -> Result<FederationView, AdminError> {
        self.server
            .set_federation(actor, admin)
            .await
            .map_err(admin_error)?;
        self.view().await
    }
}
