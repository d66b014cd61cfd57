//! The public keys of `private_key_jwt` clients (RFC 7523 §2.2), registered inline as a JWK
//! Set (`jwks`) or published at a URL (`jwks_uri`, RFC 7591 §2).
//!
//! Parsing a JWK Set costs more than checking the signature it verifies, so parsed sets are
//! cached: inline sets keyed by their text (an edited client brings new text, so no stale
//! entry can be used), fetched sets by URL for five minutes. A `kid` the cached set does not
//! know triggers one refetch (the client may have rotated its key), at most every
//! [`MIN_REFETCH_INTERVAL`] per URL so unknown kids cannot turn the server into a fetch
//! amplifier.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_core::client::Client;
use portcullis_keys::verify::{self, Decoded, VerifyingKey};
use portcullis_keys::{Algorithm, JwkSet, KeyError};

use crate::AuthServer;

/// How long a fetched JWK Set is trusted before it is fetched again.
pub const JWKS_URI_TTL: Duration = Duration::from_secs(300);
/// Shortest interval between two fetches of one URL caused by unknown kids.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// Time allowed for a whole fetch.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest JWK Set accepted from a URL.
pub const MAX_JWKS_BYTES: u64 = 64 * 1024;
/// Most JWK Sets (inline or fetched) kept parsed.
const MAX_CACHED_SETS: u64 = 10_000;
/// How long a failed fetch is remembered: a client whose `jwks_uri` is down or refused is
/// answered from this instead of making every attempt a new outbound request.
pub const FAILED_FETCH_TTL: Duration = Duration::from_secs(30);
/// Fetches running at once (each holds a blocking thread for up to [`FETCH_TIMEOUT`]); more
/// wait their turn, so many clients with slow URLs cannot exhaust the blocking pool.
const MAX_CONCURRENT_FETCHES: usize = 8;

/// Why a client's JWK Set could not be used (logged; the client is answered
/// `invalid_client`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientKeysError {
    #[error("not a JWK Set: {0}")]
    NotJwkSet(KeyError),
    #[error("fetching the JWK Set: {0}")]
    Fetch(String),
    #[error("the JWK Set is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("the JWK Set is not UTF-8")]
    NotUtf8,
    /// The fetch task could not run (the runtime is shutting down).
    #[error("the fetch did not run: {0}")]
    NotRun(String),
}

/// A parsed JWK Set: the keys usable for assertions, and when it was read.
pub struct ClientKeys {
    keys: Vec<VerifyingKey>,
    fetched_at: Instant,
}

impl ClientKeys {
    /// Keeps the keys of `set` that can verify one of `allowed`; others (encryption keys,
    /// algorithms policy refuses) are skipped rather than failing the whole set.
    fn parse(text: &str, allowed: &[Algorithm]) -> Result<Self, ClientKeysError> {
        let set = JwkSet::parse(text).map_err(ClientKeysError::NotJwkSet)?;
        let keys = set
            .keys
            .iter()
            .filter_map(|jwk| VerifyingKey::from_jwk(jwk, allowed).ok())
            .collect();
        Ok(Self {
            keys,
            fetched_at: Instant::now(),
        })
    }
}

/// What checking an assertion against one key set found.
#[derive(Debug, PartialEq, Eq)]
enum Check {
    Verified,
    UnknownKid,
    Failed,
}

/// RFC 7515 §4.1.4: with a `kid`, only the keys carrying it are tried; without one, every key
/// of the header's algorithm (the keys crate's rule).
fn check(keys: &ClientKeys, decoded: &Decoded) -> Check {
    match verify::verify_with_any(decoded, &keys.keys) {
        Ok(_) => Check::Verified,
        Err(KeyError::UnknownKid) => Check::UnknownKid,
        Err(_) => Check::Failed,
    }
}

/// The parsed key sets of clients, shared by every request.
#[derive(Clone)]
pub struct ClientKeyCache {
    inline: moka::sync::Cache<String, Arc<ClientKeys>>,
    fetched: moka::sync::Cache<String, Arc<ClientKeys>>,
    /// Issuer URL → the `jwks_uri` its discovery document names (federation).
    discovered: moka::sync::Cache<String, String>,
    failed: moka::sync::Cache<String, Arc<ClientKeysError>>,
    fetches: Arc<tokio::sync::Semaphore>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for ClientKeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKeyCache")
            .field("fetched", &self.fetched.entry_count())
            .finish_non_exhaustive()
    }
}

impl Default for ClientKeyCache {
    /// Fetches only from public addresses.
    fn default() -> Self {
        Self::new(false)
    }
}

impl ClientKeyCache {
    /// `allow_private`: whether `jwks_uri` may point at loopback, private or link-local
    /// addresses (`[oauth] jwks_uri_allow_private`; see `fetch_guard`).
    pub fn new(allow_private: bool) -> Self {
        Self {
            inline: moka::sync::Cache::builder()
                .max_capacity(MAX_CACHED_SETS)
                .build(),
            fetched: moka::sync::Cache::builder()
                .max_capacity(MAX_CACHED_SETS)
                .time_to_live(JWKS_URI_TTL)
                .build(),
            discovered: moka::sync::Cache::builder()
                .max_capacity(MAX_CACHED_SETS)
                .time_to_live(JWKS_URI_TTL)
                .build(),
            failed: moka::sync::Cache::builder()
                .max_capacity(MAX_CACHED_SETS)
                .time_to_live(FAILED_FETCH_TTL)
                .build(),
            fetches: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_FETCHES)),
            agent: ureq::AgentBuilder::new()
                .timeout(FETCH_TIMEOUT)
                .redirects(2)
                .resolver(crate::fetch_guard::GuardedResolver { allow_private })
                .build(),
        }
    }

    /// The parsed inline set, parsing it on first use.
    fn inline_keys(
        &self,
        text: &str,
        allowed: &[Algorithm],
    ) -> Result<Arc<ClientKeys>, ClientKeysError> {
        if let Some(keys) = self.inline.get(text) {
            return Ok(keys);
        }
        let keys = Arc::new(ClientKeys::parse(text, allowed)?);
        self.inline.insert(text.to_owned(), keys.clone());
        Ok(keys)
    }

    /// The set published at `uri`, from the cache or fetched.
    async fn uri_keys(
        &self,
        uri: &str,
        allowed: &[Algorithm],
    ) -> Result<Arc<ClientKeys>, Arc<ClientKeysError>> {
        let allowed = allowed.to_vec();
        self.cached_fetch(&self.fetched, uri, move |agent, uri| {
            fetch(agent, uri).and_then(|t| ClientKeys::parse(&t, &allowed).map(Arc::new))
        })
        .await
    }

    /// `cache[key]`, or what `load` fetches for it (concurrent callers share one load): a
    /// failure is remembered for [`FAILED_FETCH_TTL`], at most [`MAX_CONCURRENT_FETCHES`]
    /// loads run at once, each on the blocking pool (the HTTP client blocks).
    async fn cached_fetch<T: Clone + Send + Sync + 'static>(
        &self,
        cache: &moka::sync::Cache<String, T>,
        key: &str,
        load: impl FnOnce(&ureq::Agent, &str) -> Result<T, ClientKeysError> + Send + 'static,
    ) -> Result<T, Arc<ClientKeysError>> {
        if let Some(value) = cache.get(key) {
            return Ok(value);
        }
        if let Some(failure) = self.failed.get(key) {
            return Err(failure);
        }
        let _permit = self
            .fetches
            .acquire()
            .await
            .map_err(|e| Arc::new(ClientKeysError::NotRun(e.to_string())))?;
        let (cache_clone, agent, owned) = (cache.clone(), self.agent.clone(), key.to_owned());
        let result = tokio::task::spawn_blocking(move || {
            cache_clone.try_get_with(owned.clone(), || load(&agent, &owned))
        })
        .await
        .map_err(|e| Arc::new(ClientKeysError::NotRun(e.to_string())))?;
        if let Err(failure) = &result {
            self.failed.insert(key.to_owned(), failure.clone());
        }
        result
    }
}

/// Fetches a JWK Set: bounded in time ([`FETCH_TIMEOUT`]) and size ([`MAX_JWKS_BYTES`]).
fn fetch(agent: &ureq::Agent, uri: &str) -> Result<String, ClientKeysError> {
    let response = agent
        .get(uri)
        .set("Accept", "application/json")
        .call()
        .map_err(|e| ClientKeysError::Fetch(e.to_string()))?;
    let mut body = Vec::new();
    response
        .into_reader()
        .take(MAX_JWKS_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| ClientKeysError::Fetch(e.to_string()))?;
    if body.len() as u64 > MAX_JWKS_BYTES {
        return Err(ClientKeysError::TooLarge);
    }
    String::from_utf8(body).map_err(|_| ClientKeysError::NotUtf8)
}

/// Whether the assertion is signed by one of the client's registered keys. The algorithm
/// comes from the key, and only `settings.assertion_algorithms` are allowed.
pub async fn verify_assertion(server: &AuthServer, client: &Client, decoded: &Decoded) -> bool {
    let allowed = &server.settings.assertion_algorithms;
    let cache = &server.client_keys;
    if let Some(text) = client.jwks.as_deref() {
        return match cache.verify_inline(text, allowed, decoded) {
            Ok(verified) => verified,
            Err(e) => {
                tracing::warn!(client_id = %client.client_id, error = %e, "client has an unusable jwks");
                false
            }
        };
    }
    let Some(uri) = client.jwks_uri.as_deref() else {
        return false;
    };
    match cache.verify_with_uri(uri, allowed, decoded).await {
        Ok(verified) => verified,
        Err(e) => {
            tracing::warn!(client_id = %client.client_id, error = %e, "cannot fetch the client's jwks_uri");
            false
        }
    }
}

impl ClientKeyCache {
    /// Whether `decoded` verifies with a key of the inline JWK Set `text`.
    pub(crate) fn verify_inline(
        &self,
        text: &str,
        allowed: &[Algorithm],
        decoded: &Decoded,
    ) -> Result<bool, ClientKeysError> {
        let keys = self.inline_keys(text, allowed)?;
        Ok(check(&keys, decoded) == Check::Verified)
    }

    /// Whether `decoded` verifies with a key of the JWK Set published at `uri`; a `kid` the
    /// cached set lacks makes one refetch (the publisher may have rotated), at most every
    /// [`MIN_REFETCH_INTERVAL`].
    pub(crate) async fn verify_with_uri(
        &self,
        uri: &str,
        allowed: &[Algorithm],
        decoded: &Decoded,
    ) -> Result<bool, Arc<ClientKeysError>> {
        let keys = self.uri_keys(uri, allowed).await?;
        match check(&keys, decoded) {
            Check::Verified => Ok(true),
            Check::UnknownKid if keys.fetched_at.elapsed() >= MIN_REFETCH_INTERVAL => {
                self.fetched.invalidate(uri);
                let keys = self.uri_keys(uri, allowed).await?;
                Ok(check(&keys, decoded) == Check::Verified)
            }
            Check::UnknownKid | Check::Failed => Ok(false),
        }
    }

    /// The `jwks_uri` of an OpenID issuer, from its discovery document
    /// (`{issuer}/.well-known/openid-configuration`, OpenID Connect Discovery 1.0 §4), fetched
    /// under the same guard as every JWK Set and cached as long. The document must name the
    /// same `issuer` (§4.3), or a look-alike could hand out its own keys.
    pub(crate) async fn discovered_jwks_uri(
        &self,
        issuer: &str,
    ) -> Result<String, Arc<ClientKeysError>> {
        self.cached_fetch(&self.discovered, issuer, |agent, issuer| {
            let text = fetch(agent, &format!("{issuer}/.well-known/openid-configuration"))?;
            let doc: serde_json::Value = serde_json::from_str(&text)
                .map_err(|_| ClientKeysError::Fetch("the discovery document is not JSON".into()))?;
            if doc.get("issuer").and_then(|v| v.as_str()) != Some(issuer) {
                return Err(ClientKeysError::Fetch(
                    "the discovery document names another issuer".into(),
                ));
            }
            doc.get("jwks_uri")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .ok_or_else(|| {
                    ClientKeysError::Fetch("the discovery document has no jwks_uri".into())
                })
        })
        .await
    }
}
