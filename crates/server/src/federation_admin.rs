//! The admin API's `/federation` routes over the authorization server's federation trust:
//! the configuration's part shown read-only, the admin part replaced whole (validated with
//! the configuration's, stored by compare-and-swap, audited `federation.changed`).

use std::sync::Arc;

use async_trait::async_trait;
use portcullis_admin::federation::{FederationAdmin, FederationView};
use portcullis_admin::AdminError;
use portcullis_core::federation::TrustSet;
use portcullis_oauth::federation::TrustError;
use portcullis_oauth::AuthServer;
use portcullis_store::StoreError;

/// The federation trust as the admin API manages it.
pub struct OAuthFederationAdmin {
    pub server: Arc<AuthServer>,
}

impl OAuthFederationAdmin {
    fn view(&self) -> FederationView {
        let (config, admin) = self.server.federation().parts();
        FederationView { config, admin }
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
        Ok(self.view())
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
        Ok(self.view())
    }
}
