//! The services of one node, built from its configuration and what bootstrap prepared: the
//! device PKI, the authorization server and the key manager, over one store and one audit
//! log. `serve::run` builds them once before it listens; unit tests build them the same way
//! on a scratch store, so what they exercise is what a node runs.

use std::net::SocketAddr;
use std::sync::Arc;

use portcullis_audit::AuditLog;
use portcullis_keys::KeyRing;
use portcullis_oauth::{AuthServer, OAuthSettings};
use portcullis_store::Store;

use crate::bootstrap::Node;
use crate::config::{Config, ConfigError};
use crate::key_manager::KeyManager;
use crate::pki_setup::NodePki;
use crate::serve_error::ServeError;

/// What a node serves with.
pub struct NodeServices {
    pub store: Arc<dyn Store>,
    /// The signing keys of access tokens (the key manager keeps it current).
    pub ring: Arc<KeyRing>,
    pub audit: AuditLog,
    pub server: Arc<AuthServer>,
    pub keys: Arc<KeyManager>,
    pub pki: Arc<NodePki>,
    /// What the attack detector reads (`None` with `[detection] enabled = false`): the
    /// signals observed since its last flush and the key that names counters and incidents.
    pub detection: Option<(crate::detection::SharedTally, zeroize::Zeroizing<Vec<u8>>)>,
    /// Addresses attack detection blocked (loaded from the store).
    pub blocklist: Arc<crate::blocklist::Blocklist>,
}

impl NodeServices {
    /// Builds the services, loads the revocation set and applies any due key transition.
    /// `tls_local` is the bound HTTPS address, if any (the RFC 8705 endpoint aliases).
    pub async fn start(
        config: &Config,
        node: Node,
        tls_local: Option<SocketAddr>,
    ) -> Result<NodeServices, ServeError> {
        let sealer = if config.audit.encrypt {
            Some(
                portcullis_audit::AuditSealer::load_or_create(
                    node.store.clone(),
                    node.lifecycle.custody().clone(),
                    crate::bootstrap::unix_now(),
                )
                .await?,
            )
        } else {
            None
        };
        let mut audit = AuditLog::start_sealed(
            node.store.clone(),
            config.audit.mode,
            portcullis_audit::log::QUEUE_CAPACITY,
            sealer,
        );
        // Before any clone of the log is handed out: every component's events pass it.
        let blocklist = crate::blocklist::Blocklist::new(
            node.store.clone(),
            crate::detection::naming_key(&node.pepper),
        );
        if let Err(e) = blocklist.reload().await {
            tracing::warn!(error = %e, "the blocked addresses could not be read; none are blocked");
        }
        let detection = config.detection.enabled.then(|| {
            let (observer, rx) =
                crate::detection::DetectionObserver::new(Arc::new(config.detection.clone()));
            audit.set_observer(Arc::new(observer));
            (rx, crate::detection::naming_key(&node.pepper))
        });
        // The PKI first: its CA keys come from the same custody the key manager takes over,
        // and mTLS client authentication checks certificates against its CA.
        let public_url = config
            .pki
            .public_url
            .clone()
            .unwrap_or_else(|| node.issuer.clone());
        let pki =
            Arc::new(crate::pki_setup::start(config, &node, &public_url, audit.clone()).await?);
        let validator = crate::mtls_validator::PkiCertificateValidator(
            portcullis_pki::chain::IssuedCertificateValidator {
                anchor: pki.pki.issuing_anchor().clone(),
                store: node.store.clone(),
            },
        );
        let settings = OAuthSettings {
            issuer: node.issuer.clone(),
            rate_per_client: config.rate_limit.per_client,
            rate_per_address: config.rate_limit.per_address,
            auth_failures_per_minute: config.rate_limit.auth_failures_per_minute,
            assertion_algorithms: config.assertion_algorithms().to_vec(),
            mtls_base: tls_local.map(|a| format!("https://{a}")),
            jwks_uri_allow_private: config.oauth.jwks_uri_allow_private,
            dpop: config.dpop.settings()?,
        };
        let server = Arc::new(
            AuthServer::new(
                settings,
                node.store.clone(),
                node.keys.clone(),
                audit.clone(),
                node.pepper.clone(),
                node.master.clone(),
            )
            .with_client_cache_entries(config.store.client_cache_entries)
            .with_certificate_validator(Arc::new(validator))
            .with_device_clients(Arc::new(crate::device_clients::PkiDeviceClients {
                pki: pki.pki.clone(),
                scopes: config
                    .gateway
                    .models
                    .iter()
                    .filter_map(|(model, policy)| {
                        let scopes =
                            portcullis_core::ScopeSet::from_tokens(policy.scopes.iter().cloned())
                                .ok()?;
                        Some((model.clone(), scopes))
                    })
                    .collect(),
            }))
            .with_federation(config.configured_trust())
            .map_err(|e| ConfigError::Invalid(format!("federation: {e}")))?,
        );
        server.reload_revocations().await?;
        let spent = server.load_single_use().await?;
        tracing::debug!(spent, "single-use ids loaded");
        if let Err(e) = server.federation().reload().await {
            tracing::warn!(error = %e, "the stored federation trust cannot be used; only the configuration's is in force");
        }

        let keys = Arc::new(KeyManager::new(
            node.lifecycle,
            node.keys.clone(),
            node.published_kids,
            audit.clone(),
        ));
        keys.reconcile().await?;
        Ok(NodeServices {
            store: node.store,
            ring: node.keys,
            audit,
            server,
            keys,
            pki,
            detection,
            blocklist,
        })
    }
}
