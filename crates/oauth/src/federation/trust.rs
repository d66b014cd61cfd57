//! The trust in force: issuers, policies and token exchange rules from the configuration, then
//! the admin API's.

use std::sync::{Arc, PoisonError, RwLock};

pub use portcullis_core::federation::TrustSet;
use portcullis_core::CoreError;
use portcullis_store::{swap_setting, Store, StoreError};

/// The store setting holding the admin API's trust (JSON [`TrustSet`]).
pub const TRUST_SETTING: &str = "oauth.federation";

/// Why the trust could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(transparent)]
    Invalid(#[from] CoreError),
    #[error("the federation trust changed meanwhile; read it again and retry")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored federation trust does not parse: {0}")]
    Corrupt(String),
    /// Stored and in force, but its audit record could not be committed in time.
    #[error("the change could not be audited in time")]
    AuditUnavailable,
}

/// The trust in force on this node.
pub struct FederationTrust {
    store: Arc<dyn Store>,
    config: TrustSet,
    /// (admin part, configuration + admin), swapped together.
    current: RwLock<(TrustSet, Arc<TrustSet>)>,
}

impl FederationTrust {
    /// No configured trust (the admin part is read by [`reload`](Self::reload)).
    pub fn empty(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            config: TrustSet::default(),
            current: RwLock::new((TrustSet::default(), Arc::new(TrustSet::default()))),
        }
    }

    /// The configuration's trust, checked; the admin part is read by [`reload`](Self::reload).
    pub fn new(store: Arc<dyn Store>, config: TrustSet) -> Result<Self, CoreError> {
        let all = Arc::new(checked(&config, &TrustSet::default())?);
        Ok(Self {
            store,
            config,
            current: RwLock::new((TrustSet::default(), all)),
        })
    }

    /// Configuration and admin trust together, in that order.
    pub fn in_force(&self) -> Arc<TrustSet> {
        Arc::clone(&self.read().1)
    }

    /// (configuration part, admin part).
    pub fn parts(&self) -> (TrustSet, TrustSet) {
        (self.config.clone(), self.read().0.clone())
    }

    /// Checks the admin part with the configuration's, stores it by compare-and-swap against
    /// what this node last read (two concurrent edits cannot both win silently), and puts it
    /// in force here.
    pub async fn set(&self, admin: TrustSet) -> Result<(), TrustError> {
        let all = checked(&self.config, &admin)?;
        let bytes = serde_json::to_vec(&admin).map_err(|e| TrustError::Corrupt(e.to_string()))?;
        let before = self.store.get_setting(TRUST_SETTING).await?;
        if !swap_setting(
            self.store.as_ref(),
            TRUST_SETTING,
            before.as_deref(),
            &bytes,
        )
        .await?
        {
            return Err(TrustError::Conflict);
        }
        *self.write() = (admin, Arc::new(all));
        Ok(())
    }

    /// Reads the admin part again (at start, and when another node changed it). A stored
    /// part that no longer fits this node's configuration is refused: the node keeps what it
    /// had and says so.
    pub async fn reload(&self) -> Result<(), TrustError> {
        let admin: TrustSet = match self.store.get_setting(TRUST_SETTING).await? {
            None => TrustSet::default(),
            Some(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| TrustError::Corrupt(e.to_string()))?
            }
        };
        let (usable, set_aside) = usable_here(&admin, portcullis_saml::SUPPORTED);
        if !set_aside.is_empty() {
            tracing::warn!(
                saml_issuers = ?set_aside,
                "the stored federation trust names SAML identity providers (set through a node \
                 built with SAML); this build has no SAML support: they and their policies are \
                 not in force here, the rest is"
            );
        }
        let all = checked(&self.config, &usable)?;
        *self.write() = (admin, Arc::new(all));
        Ok(())
    }

    /// The stored SAML identity providers this build cannot put in force (see
    /// [`usable_here`]): for the admin API's warnings.
    pub fn not_in_force(&self) -> Vec<String> {
        usable_here(&self.read().0, portcullis_saml::SUPPORTED).1
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, (TrustSet, Arc<TrustSet>)> {
        // Replaced whole under the lock: a panic cannot leave it half-written.
        self.current.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, (TrustSet, Arc<TrustSet>)> {
        self.current.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The admin part as this build can put it in force, and the names of the SAML identity
/// providers set aside. A build without SAML sets aside the stored SAML providers and the
/// policies naming them — another node of the cluster, built with SAML, may have stored them —
/// instead of refusing the whole trust, which took the JWT issuers and exchange rules out of
/// force on this node alone. Setting SAML providers through such a node is still refused
/// ([`FederationTrust::set`]), so it never stores what it cannot check.
fn usable_here(admin: &TrustSet, saml_supported: bool) -> (TrustSet, Vec<String>) {
    if saml_supported || admin.saml_issuers.is_empty() {
        return (admin.clone(), Vec::new());
    }
    let names: Vec<String> = admin.saml_issuers.iter().map(|i| i.name.clone()).collect();
    let mut usable = admin.clone();
    usable.saml_issuers.clear();
    usable.policies.retain(|p| !names.contains(&p.issuer));
    (usable, names)
}

/// Checks a configuration's trust on its own, as [`FederationTrust::new`] will: so a node can
/// refuse a bad `[federation]` before its first start creates anything.
pub fn check_configured(config: &TrustSet) -> Result<(), CoreError> {
    checked(config, &TrustSet::default()).map(drop)
}

/// `config` followed by `admin`, checked as a whole ([`TrustSet::combined`]), and SAML
/// identity providers only in a build that verifies their signatures, with certificates that
/// parse (a typo is caught when the trust is set, not at the first grant).
fn checked(config: &TrustSet, admin: &TrustSet) -> Result<TrustSet, CoreError> {
    let all = config.combined(admin)?;
    if !all.saml_issuers.is_empty() && !portcullis_saml::SUPPORTED {
        return Err(CoreError::invalid(
            "federation saml_issuers",
            "this build has no SAML support (build with --features saml)",
        ));
    }
    let bad = || {
        CoreError::invalid(
            "federation SAML certificates",
            "each must be a PEM X.509 certificate",
        )
    };
    for issuer in &all.saml_issuers {
        for pem in &issuer.certificates {
            for der in portcullis_saml::pem_certificates(pem).map_err(|_| bad())? {
                x509_parser::parse_x509_certificate(&der).map_err(|_| bad())?;
            }
        }
    }
    Ok(all)
}

impl crate::AuthServer {
    /// Replaces the admin part of the federation trust and audits it
    /// (`federation.changed`, with the issuer and policy names), committed before the answer.
    pub async fn set_federation(&self, actor: &str, admin: TrustSet) -> Result<(), TrustError> {
        let detail = serde_json::json!({
            "issuers": admin.issuers.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
            "policies": admin.policies.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            "saml_issuers": admin.saml_issuers.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
            "exchange_rules": admin.exchange_rules.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        });
        self.federation.set(admin).await?;
        self.audit
            .commit(portcullis_core::audit::AuditEvent {
                at: self.now(),
                actor: actor.to_owned(),
                action: portcullis_core::audit::AuditAction::FederationChanged.into(),
                subject: "federation".to_owned(),
                outcome: portcullis_core::audit::Outcome::Success.into(),
                detail,
            })
            .await
            .map_err(|_| TrustError::AuditUnavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a node built with SAML may store: a JWT issuer and a SAML provider, a policy each.
    fn mixed() -> TrustSet {
        serde_json::from_value(serde_json::json!({
            "issuers": [{"name": "k8s", "issuer": "https://k8s.example", "audience": "portcullis",
                         "jwks_uri": "https://k8s.example/jwks"}],
            "saml_issuers": [{"name": "corp", "entity_id": "https://idp.example",
                              "certificates": []}],
            "policies": [
                {"name": "pods", "issuer": "k8s", "claims": {"sub": "system:serviceaccount:*"},
                 "client_id": "api"},
                {"name": "billing", "issuer": "corp", "claims": {"sub": "billing-*"},
                 "client_id": "billing"}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn a_build_without_saml_sets_aside_only_the_saml_providers_and_their_policies() {
        let (usable, set_aside) = usable_here(&mixed(), false);
        assert_eq!(set_aside, ["corp"]);
        assert!(usable.saml_issuers.is_empty());
        let names: Vec<&str> = usable.policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["pods"]);
        assert_eq!(usable.issuers.len(), 1);
        // What is left is a trust this build can put in force.
        assert!(checked(&TrustSet::default(), &usable).is_ok());
        // A build with SAML uses it whole.
        let (whole, none) = usable_here(&mixed(), true);
        assert_eq!(whole, mixed());
        assert!(none.is_empty());
    }
}
