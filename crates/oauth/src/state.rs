//! The shared state of the authorization server, built once by the `server` crate.

use std::sync::Arc;

use portcullis_audit::{AuditLog, AuditTrail};
use portcullis_core::client::Client;
use portcullis_core::{ClientId, UnixTime};
use portcullis_keys::software::MasterKey;
use portcullis_keys::{Algorithm, KeyRing};
use portcullis_store::{ClientCache, RevocationCache, Store, StoreError};
use zeroize::Zeroizing;

use crate::client_keys::ClientKeyCache;
use crate::discovery::Discovery;
use crate::mtls::CertificateValidator;
use portcullis_http::AbuseLimits;

/// Clients kept in memory by default; a hit costs no I/O.
pub const DEFAULT_CLIENT_CACHE_ENTRIES: u64 = 100_000;

/// Settings of the OAuth endpoints, taken from the server configuration.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// The `iss` of every token and the base of every endpoint URL in discovery
    /// (e.g. `http://127.0.0.1:8080`), without a trailing slash.
    pub issuer: String,
    /// Token requests per second allowed per client id; 0 disables the limit.
    pub rate_per_client: u32,
    /// Token requests per second allowed per source address; 0 disables the limit.
    pub rate_per_address: u32,
    /// Failed client authentications per source address per minute before the address is
    /// answered 429 for the rest of the minute; 0 disables the lock-out.
    pub auth_failures_per_minute: u32,
    /// Algorithms accepted in client assertions (`private_key_jwt`).
    pub assertion_algorithms: Vec<Algorithm>,
    /// Base URL of the mutual-TLS listener (e.g. `https://127.0.0.1:8443`), without a
    /// trailing slash; `None` when there is none. When set, discovery advertises the RFC 8705
    /// methods, certificate-bound tokens and `mtls_endpoint_aliases` under this base.
    pub mtls_base: Option<String>,
    /// Whether a client's `jwks_uri` may resolve to loopback, private or link-local
    /// addresses (`[oauth] jwks_uri_allow_private`, default false: see `fetch_guard`).
    pub jwks_uri_allow_private: bool,
    /// DPoP (RFC 9449): proof algorithms, freshness window and server nonces.
    pub dpop: crate::dpop::DpopSettings,
}

/// Everything the OAuth handlers need. Shared as `Arc<AuthServer>`; other crates reach it
/// only through its methods and the ports it implements (`ClientRegistry`,
/// `TokenValidator`), never its fields: the pepper and the master key stay here.
pub struct AuthServer {
    pub(crate) settings: OAuthSettings,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clients: ClientCache,
    pub(crate) revocations: RevocationCache,
    pub(crate) keys: Arc<KeyRing>,
    pub(crate) audit: AuditLog,
    /// The server pepper under which client secrets are HMACed.
    pub(crate) pepper: Zeroizing<Vec<u8>>,
    /// Unseals `client_secret_jwt` secrets.
    pub(crate) master: Arc<MasterKey>,
    /// The clock; tests inject their own.
    pub(crate) clock: Arc<dyn Fn() -> UnixTime + Send + Sync>,
    /// Rate limits and the authentication-failure lock-out.
    pub(crate) limits: AbuseLimits,
    /// Parsed JWK Sets of `private_key_jwt` clients.
    pub(crate) client_keys: ClientKeyCache,
    /// The discovery documents, encoded once.
    pub(crate) discovery: Discovery,
    /// `{issuer}/oauth2/token`, an accepted assertion audience (RFC 7523 §3 item 3).
    token_endpoint: String,
    /// Trusts client certificate chains for `tls_client_auth` (RFC 8705 §2.1); without one,
    /// such clients cannot authenticate.
    pub(crate) certificate_validator: Option<Arc<dyn CertificateValidator>>,
    /// Trusted outside issuers and the policies mapping their tokens to clients.
    pub(crate) federation: crate::federation::FederationTrust,
    /// Checks DPoP proofs and hands out nonces.
    pub(crate) dpop: crate::dpop::DpopVerifier,
    /// Spends DPoP proof and outside-token ids in batched store transactions.
    pub(crate) single_use: portcullis_store::SingleUseBatcher,
    /// Devices as `tls_client_auth` clients (issue #12), asked for ids no client has.
    pub(crate) device_clients: Option<Arc<dyn portcullis_ports::DeviceClients>>,
    /// `portcullis_tokens_issued_total` per authentication method.
    pub(crate) issued: crate::issued_metrics::IssuedCounters,
}

/// The system clock, in whole seconds since the Unix epoch.
fn system_clock() -> UnixTime {
    portcullis_core::time::unix_seconds(std::time::SystemTime::now())
}

impl AuthServer {
    /// Builds the server state with default caches and limits and the system clock. The
    /// revocation cache starts empty: the caller loads it (`revocations.load`) before serving.
    pub fn new(
        settings: OAuthSettings,
        store: Arc<dyn Store>,
        keys: Arc<KeyRing>,
        audit: AuditLog,
        pepper: Zeroizing<Vec<u8>>,
        master: Arc<MasterKey>,
    ) -> AuthServer {
        let mut settings = settings;
        // The issuer is a URL prefix of every endpoint; a trailing slash would double up.
        while settings.issuer.ends_with('/') {
            settings.issuer.pop();
        }
        if let Some(base) = settings.mtls_base.as_mut() {
            while base.ends_with('/') {
                base.pop();
            }
        }
        let discovery = Discovery::build(&settings, keys.active().algorithm());
        let dpop = crate::dpop::DpopVerifier::new(
            settings.dpop.clone(),
            &pepper,
            &settings.issuer,
            settings.mtls_base.as_deref(),
        );
        AuthServer {
            dpop,
            single_use: portcullis_store::SingleUseBatcher::start(store.clone()),
            federation: crate::federation::FederationTrust::empty(store.clone()),
            limits: AbuseLimits::new(
                settings.rate_per_client,
                settings.rate_per_address,
                settings.auth_failures_per_minute,
            ),
            client_keys: ClientKeyCache::new(settings.jwks_uri_allow_private),
            discovery,
            token_endpoint: format!("{}/oauth2/token", settings.issuer),
            settings,
            store,
            clients: ClientCache::new(DEFAULT_CLIENT_CACHE_ENTRIES),
            revocations: RevocationCache::new(),
            keys,
            audit,
            pepper,
            master,
            clock: Arc::new(system_clock),
            certificate_validator: None,
            device_clients: None,
            issued: Default::default(),
        }
    }

    /// Trusts the configuration's federation issuers and policies (checked here).
    pub fn with_federation(
        mut self,
        config: crate::federation::TrustSet,
    ) -> Result<Self, portcullis_core::CoreError> {
        self.federation = crate::federation::FederationTrust::new(self.store.clone(), config)?;
        Ok(self)
    }

    /// The federation trust in force (the admin API changes its admin part).
    pub fn federation(&self) -> &crate::federation::FederationTrust {
        &self.federation
    }

    /// Sets the validator of client certificate chains for `tls_client_auth` clients
    /// (RFC 8705 §2.1), normally the device PKI's.
    pub fn with_certificate_validator(mut self, validator: Arc<dyn CertificateValidator>) -> Self {
        self.certificate_validator = Some(validator);
        self
    }

    /// Lets registered devices authenticate as themselves with their certificates
    /// (`tls_client_auth`, `client_id` = device id) when no client of that id exists.
    pub fn with_device_clients(
        mut self,
        devices: Arc<dyn portcullis_ports::DeviceClients>,
    ) -> Self {
        self.device_clients = Some(devices);
        self
    }

    /// The client `id`: a registered one (cached), else a device of that id as a client.
    pub(crate) async fn find_client(
        &self,
        id: &ClientId,
    ) -> Result<Option<Arc<Client>>, StoreError> {
        if let Some(client) = self.clients.get(self.store.as_ref(), id).await? {
            return Ok(Some(client));
        }
        let Some(devices) = &self.device_clients else {
            return Ok(None);
        };
        match devices.device_client(id).await {
            Ok(client) => Ok(client.map(Arc::new)),
            Err(portcullis_ports::PortError::Store(e)) => Err(e),
            Err(e) => Err(StoreError::Unavailable(e.to_string())),
        }
    }

    /// Replaces the clock (tests, simulations).
    /// Replaces the client cache with one holding up to `entries` clients. Each cached client
    /// costs roughly a kilobyte; a miss costs one store lookup.
    pub fn with_client_cache_entries(mut self, entries: u64) -> AuthServer {
        self.clients = ClientCache::new(entries);
        self
    }

    /// Replaces the clock (tests).
    pub fn with_clock(
        mut self,
        clock: impl Fn() -> UnixTime + Send + Sync + 'static,
    ) -> AuthServer {
        self.clock = Arc::new(clock);
        self
    }

    /// The token endpoint URL, `{issuer}/oauth2/token`.
    pub fn token_endpoint(&self) -> &str {
        &self.token_endpoint
    }

    /// The current time according to the injected clock.
    pub fn now(&self) -> UnixTime {
        (self.clock)()
    }

    /// The settings the server was built with (the issuer trimmed of trailing slashes).
    pub fn settings(&self) -> &OAuthSettings {
        &self.settings
    }

    /// The signing keys of access tokens.
    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    /// The audit chain this server records to, for readers (the admin API).
    pub fn audit_trail(&self) -> AuditTrail {
        AuditTrail::new(self.audit.clone(), self.store.clone())
    }

    /// Loads every unexpired revocation from the store into this node's revocation set:
    /// before serving, and after the change feed was lost.
    pub async fn reload_revocations(&self) -> Result<(), StoreError> {
        self.revocations.load(self.store.as_ref(), self.now()).await
    }

    /// Forgets revocations of tokens that expired by now (their tokens fail on `exp`).
    pub fn purge_revocations(&self) {
        self.revocations.purge(self.now());
    }

    /// Another node revoked the token `jti`; it is refused here until `until`.
    pub fn token_revoked_elsewhere(&self, jti: String, until: UnixTime) {
        self.revocations.insert(jti, until);
    }

    /// Another node changed client `id`: the next lookup reads the store.
    pub fn client_changed(&self, id: &ClientId) {
        self.clients.invalidate(id);
    }

    /// Forgets every cached client (a lost change feed).
    pub fn clients_changed(&self) {
        self.clients.invalidate_all();
    }
}

impl std::fmt::Debug for AuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthServer")
            .field("settings", &self.settings)
            .field(
                "certificate_validator",
                &self.certificate_validator.is_some(),
            )
            .finish_non_exhaustive()
    }
}
